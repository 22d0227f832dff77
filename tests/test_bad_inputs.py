"""A catalogue of bad files run through `handbook run`, and awkward files that must work.

Each bad file must exit with status 2, print the loader's message (the file, the
column, what was expected, the rows) and write nothing at all: inputs are checked
before the notebook starts, so these runs take a moment each. One awkward but
valid extract (HES names, Windows cp1252 with a byte-order mark, dd/mm/yyyy,
trailing spaces, an extra column, sexes as M/F) goes through the whole SPC
notebook; the awkward features are checked one by one at the loader level.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from helpers import derive, io, quality, report, spc
from helpers.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "spells.csv"
HES_NAMES = {
    "provider_code": "PROCODE3",
    "admission_date": "ADMIDATE",
    "discharge_date": "DISDATE",
    "admission_method": "ADMIMETH",
    "patient_classification": "CLASSPAT",
    "age": "STARTAGE",
    "sex": "SEX",
    "primary_diagnosis": "DIAG_4_01",
    "discharge_method": "DISMETH",
}


def sample(n: int | None = 60) -> pd.DataFrame:
    return pd.read_csv(SAMPLE, dtype=str, keep_default_na=False, nrows=n)


def write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def change(column: str, row: int, value: str):
    def bad(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, column] = value
        return df

    return bad


# name -> (how to make the bad file from 60 sample rows, or its raw bytes; phrases the message must hold)
CATALOGUE = {
    "missing column": (
        lambda df: df.rename(columns={"admission_date": "ADMIDTE"}),
        ["column 'admission_date': expected a column named admission_date", "Did you mean 'ADMIDTE'?"],
    ),
    "wrong type": (
        change("age", 4, "eighty"),
        ["column 'age': expected a number (1 row)", "row 6: age=eighty"],
    ),
    "bad date": (
        change("admission_date", 2, "31/02/2024"),
        [
            "column 'admission_date': expected a date as yyyy-mm-dd or dd/mm/yyyy",
            "row 4: admission_date=31/02/2024",
        ],
    ),
    "discharge before admission": (
        change("discharge_date", 3, "1999-01-01"),
        ["column 'discharge_date': expected a date not before admission_date", "row 5:"],
    ),
    "duplicate id": (
        change("spell_id", 7, "S00000001"),
        [
            "column 'spell_id': expected each value only once",
            "row 2: spell_id=S00000001",
            "row 9: spell_id=S00000001",
        ],
    ),
    "negative cost": (
        change("spell_cost", 10, "-250.00"),
        ["column 'spell_cost': expected a value at least 0", "row 12: spell_cost=-250.00"],
    ),
    "unknown code": (
        change("admission_method", 5, "99"),
        ["column 'admission_method': expected one of 11, 12, 13, 21", "row 7: admission_method=99"],
    ),
    "empty file": (b"", ["the file is empty"]),
    "header only": (lambda df: df.head(0), ["has a header but no rows of data"]),
    "binary renamed .csv": (None, ["it is not a text file (it contains binary data)"]),
}


@pytest.mark.parametrize("case", list(CATALOGUE))
def test_bad_file_exits_2_with_its_message_and_writes_nothing(case, tmp_path, capsys):
    make, phrases = CATALOGUE[case]
    bad = tmp_path / "extract.csv"
    if isinstance(make, bytes):
        bad.write_bytes(make)
    elif make is None:  # a Parquet file saved under a .csv name
        sample().to_parquet(tmp_path / "real.parquet")
        bad.write_bytes((tmp_path / "real.parquet").read_bytes())
        (tmp_path / "real.parquet").unlink()
    else:
        write(make(sample()), bad)
    before = bad.read_bytes()
    out = tmp_path / "out"
    status = main(["run", "spc", "--data", f"spells={bad}", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "extract.csv" in err and "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, f"{case}: {phrase!r} not in\n{err}"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extract.csv"]  # no staging folder either
    assert bad.read_bytes() == before  # the input is never written to


# --------------------------------------------------------------------------- awkward but valid
def awkward(df: pd.DataFrame) -> bytes:
    """The same spells as a SUS-style export: HES names, dd/mm/yyyy, M/F, trailing spaces, an extra
    column with a pound sign, written in Windows cp1252 behind a UTF-8 byte-order mark."""
    out = df.rename(columns=HES_NAMES)
    for col in ["ADMIDATE", "DISDATE"]:
        out[col] = pd.to_datetime(out[col]).dt.strftime("%d/%m/%Y")
    out["SEX"] = out["SEX"].map({"1": "M", "2": "F"}).fillna(out["SEX"])
    out["PROCODE3"] = out["PROCODE3"] + "  "
    out["Ward name £"] = "Ward £"
    return b"\xef\xbb\xbf" + out.to_csv(index=False).encode("cp1252")


def excel(df: pd.DataFrame, folder: Path) -> Path:
    df.to_excel(folder / "x.xlsx", index=False)
    return folder / "x.xlsx"


def cp1252_bom(df: pd.DataFrame, folder: Path) -> Path:
    """A UTF-8 byte-order mark before Windows text holding a non-ASCII character."""
    (folder / "x.csv").write_bytes(
        b"\xef\xbb\xbf"
        + df.assign(hrg=df["hrg"].where(df.index != 0, "É1")).to_csv(index=False).encode("cp1252")
    )
    return folder / "x.csv"


VARIANTS = {
    "Excel": excel,
    "cp1252 with BOM": cp1252_bom,
    "dd/mm/yyyy": lambda df, d: write(
        df.assign(admission_date=pd.to_datetime(df["admission_date"]).dt.strftime("%d/%m/%Y")), d / "x.csv"
    ),
    "trailing spaces": lambda df, d: write(
        df.assign(provider_code=df["provider_code"] + "   ", sex=" " + df["sex"]), d / "x.csv"
    ),
    "extra columns": lambda df, d: write(df.assign(ward="A", **{"Local ref": "x"}), d / "x.csv"),
    "HES names": lambda df, d: write(df.rename(columns=HES_NAMES), d / "x.csv"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_awkward_but_valid_file_loads_to_the_same_table(variant, tmp_path):
    df = sample(40)
    reference = io.load_table("spells", write(df, tmp_path / "ref.csv"))
    loaded = io.load_table("spells", VARIANTS[variant](df, tmp_path))
    if variant == "cp1252 with BOM":
        reference.loc[0, "hrg"] = "É1"
    pd.testing.assert_frame_equal(loaded, reference)


def test_an_awkward_extract_runs_through_the_notebook_as_the_sample_does(tmp_path, capsys):
    df = sample(None)
    # three emergency spells recoded 21 -> 2B: still emergencies, so the charts are unchanged,
    # but a code seen only three times must be starred in the data quality table
    rows = df.index[df["admission_method"] == "21"][:3]
    df.loc[rows, "admission_method"] = "2B"
    extract = tmp_path / "SUS extract.csv"
    extract.write_bytes(awkward(df))
    out = tmp_path / "run"
    assert main(["run", "spc", "--data", f"spells={extract}", "--out", str(out), "--quiet"]) == 0, (
        capsys.readouterr().err
    )

    # the same chart table as the sample gives, byte for byte
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = io.load_input("spells")
        spells = derive.add_spell_fields(loaded.frame)
        monthly = spc.build_monthly_series(spells, None, group="provider_code")
        series = monthly.frame
        table = spc.spc(series, group="group", better="decrease")
    report.publish(
        table,
        "spc",
        tmp_path / "expected",
        counts=["numerator", "denominator"],
        derived={"value": ["numerator"]},
    )
    assert (out / "tables" / "spc.csv").read_bytes() == (tmp_path / "expected" / "spc.csv").read_bytes()

    dq = pd.read_csv(out / "tables" / "data_quality.csv", dtype=str, keep_default_na=False).set_index(
        "column"
    )
    assert (
        dq.loc["admission_date", "source_column"] == "ADMIDATE"
        and dq.loc["admission_date", "first"] == "2023-04-01"
    )
    assert dq.loc["sex", "values_seen"] == "1: 23,556; 2: 26,444"  # M and F recoded, no small count
    method = dict(part.split(": ") for part in dq.loc["admission_method", "values_seen"].split("; "))
    assert method["2B"] == "*"  # 3 spells: suppressed
    assert (
        method["21"] == "21,510"
    )  # 21,514 - 3 = 21,511, rounded to 5 so the 3 cannot be found by subtraction
    flow = pd.read_csv(out / "tables" / "exclusions.csv")
    assert flow["step"].iloc[0] == "read from SUS extract.csv" and flow["rows_after"].iloc[0] == 50_000
    steps = quality.monthly_series_steps(spells, series, months_left_out=monthly.months_left_out)
    expected = quality.exclusion_flow(loaded, steps)
    assert flow["rows_after"].tolist() == expected["rows_after"].tolist()
    assert "Ward name £" in (out / "report.html").read_text()  # the ignored column is named in the report
