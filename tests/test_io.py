"""Loaders: every validation rule of the data contract has a bad file and a message.

Each bad file must stop the load with an InputError naming the file, the column,
what was expected and the offending rows (numbered as in a spreadsheet). Awkward
but valid files (Excel, Parquet, cp1252 with BOM, dd/mm/yyyy, HES names, trailing
spaces, extra columns) must load to the same table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from helpers.io import InputError, load_frame, load_input, load_table, table_columns

GOOD = pd.DataFrame(
    {
        "spell_id": ["S1", "S2", "S3", "S4", "S5", "S6"],
        "patient_id": ["P1", "P1", "P2", "P3", "P4", "P5"],
        "provider_code": ["T01", "T02", "T01", "T03", "T01", "T02"],
        "admission_date": [
            "2024-03-01",
            "2024-03-20",
            "2024-01-01",
            "2024-01-05",
            "2024-05-01",
            "2024-06-01",
        ],
        "discharge_date": [
            "2024-03-10",
            "2024-03-22",
            "2024-01-05",
            "2024-01-06",
            "2024-05-02",
            "2024-06-01",
        ],
        "admission_method": ["21", "22", "11", "21", "2A", "12"],
        "patient_classification": ["1", "1", "1", "1", "1", "2"],
        "age": ["80", "80", "45", "67", "90", "30"],
        "sex": ["1", "1", "2", "2", "1", "2"],
        "primary_diagnosis": ["J181", "J189", "K409", "I500", "R54", "H251"],
        "discharge_method": ["1", "1", "1", "4", "1", "1"],
        "imd_decile": ["1", "1", "5", "10", "3", "7"],
        "frailty_score": ["12.5", "12.5", "0", "4.2", "20", "0"],
        "spell_cost": ["3400", "1200", "2500", "900", "4100", "800"],
    }
)


def write_csv(tmp_path: Path, df: pd.DataFrame, name: str = "spells.csv", **kw) -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False, **kw)
    return path


def load_error(tmp_path: Path, df: pd.DataFrame, table: str = "spells", **kw) -> str:
    path = write_csv(tmp_path, df)
    with pytest.raises(InputError) as info:
        load_table(table, path, **kw)
    message = str(info.value)
    assert path.name in message  # every message names the file
    return message


def test_good_file_loads_with_types(tmp_path):
    loaded = load_input("spells", write_csv(tmp_path, GOOD))
    df = loaded.frame
    assert len(df) == 6
    assert str(df["admission_date"].dtype).startswith("datetime64")
    assert df["age"].tolist() == [80, 80, 45, 67, 90, 30]
    assert df["frailty_score"].iloc[0] == pytest.approx(12.5)
    assert loaded.summary.rows_read == 6 and loaded.summary.file == "spells.csv"


# --- one bad file per rule -------------------------------------------------
def test_missing_required_column_suggests_a_close_name(tmp_path):
    bad = GOOD.rename(columns={"admission_date": "ADMIDTE"})
    msg = load_error(tmp_path, bad)
    assert "column 'admission_date'" in msg
    assert "Did you mean 'ADMIDTE'" in msg


def test_blank_required_value(tmp_path):
    bad = GOOD.copy()
    bad.loc[2, "provider_code"] = ""
    msg = load_error(tmp_path, bad)
    assert "column 'provider_code'" in msg and "a value in every row" in msg
    assert "row 4:" in msg  # data row 3 is spreadsheet row 4


def test_duplicate_identifier(tmp_path):
    bad = GOOD.copy()
    bad.loc[3, "spell_id"] = "S1"
    msg = load_error(tmp_path, bad)
    assert "column 'spell_id'" in msg and "each value only once" in msg
    assert "row 2: spell_id=S1" in msg and "row 5: spell_id=S1" in msg


def test_unknown_code(tmp_path):
    bad = GOOD.copy()
    bad.loc[1, "admission_method"] = "99"
    msg = load_error(tmp_path, bad)
    assert "column 'admission_method'" in msg and "one of 11, 12, 13, 21" in msg
    assert "row 3: admission_method=99" in msg


def test_bad_icd10_pattern(tmp_path):
    bad = GOOD.copy()
    bad.loc[0, "primary_diagnosis"] = "181J"
    msg = load_error(tmp_path, bad)
    assert "column 'primary_diagnosis'" in msg and "row 2: primary_diagnosis=181J" in msg


def test_age_out_of_range_and_not_whole(tmp_path):
    bad = GOOD.copy()
    bad.loc[0, "age"] = "130"
    bad.loc[1, "age"] = "45.5"
    msg = load_error(tmp_path, bad)
    assert "a value between 0 and 120" in msg and "row 2: age=130" in msg
    assert "a whole number" in msg and "row 3: age=45.5" in msg


def test_negative_cost(tmp_path):
    bad = GOOD.copy()
    bad.loc[4, "spell_cost"] = "-10"
    msg = load_error(tmp_path, bad)
    assert "column 'spell_cost'" in msg and "at least 0" in msg and "row 6: spell_cost=-10" in msg


def test_not_a_number(tmp_path):
    bad = GOOD.copy()
    bad.loc[0, "frailty_score"] = "high"
    msg = load_error(tmp_path, bad)
    assert "column 'frailty_score': expected a number" in msg


def test_bad_dates(tmp_path):
    bad = GOOD.copy()
    bad.loc[0, "admission_date"] = "31/02/2024"
    bad.loc[1, "admission_date"] = "March 2024"
    msg = load_error(tmp_path, bad)
    assert "column 'admission_date': expected a date as yyyy-mm-dd or dd/mm/yyyy (2 rows)" in msg


def test_discharge_before_admission(tmp_path):
    bad = GOOD.copy()
    bad.loc[2, "discharge_date"] = "2023-12-25"
    msg = load_error(tmp_path, bad)
    assert "column 'discharge_date': expected a date not before admission_date (1 row)" in msg
    assert "row 4: admission_date=2024-01-01, discharge_date=2023-12-25" in msg


def test_step_down_needs_linked_spell(tmp_path):
    vw = pd.DataFrame(
        {
            "vw_stay_id": ["V1", "V2"],
            "patient_id": ["P1", "P2"],
            "provider_code": ["T01", "T01"],
            "vw_admission_date": ["2024-03-10", "2024-03-11"],
            "vw_discharge_date": ["2024-03-15", "2024-03-20"],
            "pathway": ["frailty", "heart failure"],
            "route": ["Step down", "step_up"],
            "linked_spell_id": ["", ""],
        }
    )
    msg = load_error(tmp_path, vw, table="virtual_ward")
    assert "column 'linked_spell_id': expected a value where route is step_down" in msg
    assert "row 2" in msg and "row 3" not in msg


def test_many_problems_in_one_message_showing_five_rows(tmp_path):
    bad = pd.concat([GOOD] * 3, ignore_index=True)
    bad["spell_id"] = [f"S{i}" for i in range(len(bad))]
    bad["sex"] = "7"
    msg = load_error(tmp_path, bad)
    assert "column 'sex'" in msg and "(18 rows)" in msg
    assert msg.count("sex=7") == 5 and "and 13 more" in msg


def test_empty_file(tmp_path):
    path = tmp_path / "spells.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="the file is empty"):
        load_table("spells", path)


def test_header_only(tmp_path):
    path = write_csv(tmp_path, GOOD.head(0))
    with pytest.raises(InputError, match="has a header but no rows"):
        load_table("spells", path)


def test_binary_file_renamed_csv(tmp_path):
    path = tmp_path / "spells.csv"
    GOOD.to_parquet(tmp_path / "real.parquet")
    path.write_bytes((tmp_path / "real.parquet").read_bytes())
    with pytest.raises(InputError, match="not a text file"):
        load_table("spells", path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="Cannot find"):
        load_table("spells", tmp_path / "nope.csv")


# --- awkward but valid -----------------------------------------------------
def test_hes_names_uk_dates_cp1252_bom_spaces_and_extra_columns(tmp_path):
    hes = GOOD.rename(
        columns={
            "provider_code": "PROCODE3",
            "admission_date": "ADMIDATE",
            "discharge_date": "DISDATE",
            "admission_method": "ADMIMETH",
            "age": "STARTAGE",
            "sex": "SEX",
            "primary_diagnosis": "DIAG_4_01",
            "discharge_method": "DISMETH",
        }
    ).copy()
    for col in ["ADMIDATE", "DISDATE"]:
        hes[col] = pd.to_datetime(hes[col]).dt.strftime("%d/%m/%Y")
    hes["SEX"] = hes["SEX"].map({"1": "M", "2": "F"})
    hes["PROCODE3"] = hes["PROCODE3"] + "  "
    hes["Ward name £"] = "Ward £"  # a non-ASCII extra column, cp1252 encoded
    path = tmp_path / "spells.csv"
    path.write_bytes(b"\xef\xbb\xbf" + hes.to_csv(index=False).encode("cp1252"))  # BOM + cp1252 body
    loaded = load_input("spells", path)
    df = loaded.frame
    ref = load_table("spells", write_csv(tmp_path, GOOD, "ref.csv"))
    pd.testing.assert_frame_equal(df.reset_index(drop=True), ref.reset_index(drop=True))
    assert loaded.summary.columns_ignored == ("Ward name £",)


def test_excel_and_parquet_load_the_same(tmp_path):
    ref = load_table("spells", write_csv(tmp_path, GOOD))
    xl = tmp_path / "spells.xlsx"
    excel = GOOD.copy()
    excel["admission_date"] = pd.to_datetime(excel["admission_date"])  # real Excel dates
    excel["age"] = excel["age"].astype(int)
    excel.to_excel(xl, index=False)
    pq = tmp_path / "spells.parquet"
    GOOD.to_parquet(pq)
    pd.testing.assert_frame_equal(load_table("spells", xl), ref)
    pd.testing.assert_frame_equal(load_table("spells", pq), ref)


def test_column_map_from_users_own_names(tmp_path):
    own = GOOD.rename(columns={"spell_id": "Episode key", "patient_id": "Person"})
    df = load_table(
        "spells", write_csv(tmp_path, own), column_map={"Episode key": "spell_id", "Person": "patient_id"}
    )
    assert df["spell_id"].tolist()[:2] == ["S1", "S2"]


def test_input_file_is_not_modified(tmp_path):
    path = write_csv(tmp_path, GOOD)
    before = path.read_bytes()
    load_table("spells", path)
    assert path.read_bytes() == before


def test_sample_data_meet_the_contract():
    for table in ["spells", "virtual_ward", "outcomes"]:
        df = load_table(table)
        assert len(df) > 0
        assert set(df.columns) <= set(table_columns(table))


def test_load_frame_for_a_notebook_input(tmp_path):
    path = tmp_path / "series.csv"
    pd.DataFrame({"Date": ["01/04/2024", "01/05/2024"], "value": ["3", "x"]}).to_csv(path, index=False)
    with pytest.raises(InputError) as info:
        load_frame(path, {"date": "date", "value": "number"}, "series")
    assert re.search(r"column 'value': expected a number \(1 row\)\n\s+row 3: value=x", str(info.value))


def test_na_like_text_in_a_required_column_is_reported_like_a_blank(tmp_path):
    bad = GOOD.copy()
    bad.loc[1, "provider_code"] = "NA"
    bad.loc[4, "provider_code"] = " na "  # any case, spaces around
    bad.loc[3, "admission_date"] = "NULL"
    msg = load_error(tmp_path, bad)
    assert "2 problems found" in msg
    assert re.search(
        r"column 'provider_code': expected a value in every row \(it is required\) \(2 rows\)\n"
        r"\s+row 3: provider_code=NA\n\s+row 6: provider_code=' na '\n",
        msg,
    )
    assert re.search(
        r"column 'admission_date': expected a value in every row \(it is required\) \(1 row\)\n"
        r"\s+row 5: admission_date=NULL\n",
        msg,
    )
    # in an optional column the same text is simply a missing value
    ok = GOOD.copy()
    ok.loc[2, "imd_decile"] = "None"
    assert load_table("spells", write_csv(tmp_path, ok, "ok.csv"))["imd_decile"].isna().tolist() == [
        False,
        False,
        True,
        False,
        False,
        False,
    ]


def test_load_frame_reports_na_like_text_in_a_required_column(tmp_path):
    path = tmp_path / "series.csv"
    pd.DataFrame({"date": ["2024-04-01", "NaN", "2024-06-01"], "value": ["3", "4", "NULL"]}).to_csv(
        path, index=False
    )
    with pytest.raises(InputError) as info:
        load_frame(path, {"date": "date", "value": "number"}, "series")
    message = str(info.value)
    assert re.search(
        r"column 'date': expected a value in every row \(it is required\) \(1 row\)\n\s+row 3: date=NaN",
        message,
    )
    assert re.search(
        r"column 'value': expected a value in every row \(it is required\) \(1 row\)\n\s+row 4: value=NULL",
        message,
    )
