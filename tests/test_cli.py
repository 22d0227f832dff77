"""The `handbook` command end to end on the sample data, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from board_report import check_board_report
from openpyxl import load_workbook
from shared_runs import run_spec, sample_run

from helpers.cli import available_notebooks, main, notebook_parameters

NOTEBOOKS = sorted(available_notebooks())


def handbook(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "helpers.cli", *args], capture_output=True, text=True, timeout=900
    )


def test_every_notebook_has_a_parameters_cell_with_output_dir():
    assert NOTEBOOKS, "no notebooks found"
    for name in NOTEBOOKS:
        params = notebook_parameters(available_notebooks()[name])
        assert "output_dir" in params, name
        assert any(k.startswith("data_") for k in params), name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_on_sample_writes_the_report_folder(handbook_runs, name):
    out = handbook_runs.get(
        sample_run(name)
    )  # `handbook run NAME --out DIR --quiet` (shared_runs.sample_run)
    for f in ["report.html", "results.xlsx", "run.json", f"{name}.ipynb"]:
        assert (out / f).is_file(), f
    tables = sorted(p.stem for p in (out / "tables").glob("*.csv"))
    assert tables, "the notebook published no result table"
    wb = load_workbook(out / "results.xlsx", read_only=True)
    assert wb.sheetnames == ["about", *tables]
    record = json.loads((out / "run.json").read_text())
    assert record["notebook"] == name and set(record["tables"]) == set(tables)
    html = (out / "report.html").read_text()
    assert "<img" in html or "data:image" in html  # figures embedded
    assert "import helpers" not in html  # code hidden
    check_board_report(out)  # findings first, every summary number from its table, readable tables
    # no identifiers of the sample's patients in any output
    patients = set(
        pd.read_csv(
            Path(__file__).resolve().parents[1] / "data/sample/spells.csv", usecols=["patient_id"], dtype=str
        )["patient_id"].head(2000)
    )
    for table in (out / "tables").glob("*.csv"):
        text = table.read_text()
        assert not any(p in text for p in list(patients)[:200]), table.name


def test_bad_input_exits_2_with_the_loader_message_and_writes_nothing(tmp_path):
    name = next(n for n in NOTEBOOKS if "data_spells" in notebook_parameters(available_notebooks()[n]))
    sample = pd.read_csv(Path(__file__).resolve().parents[1] / "data/sample/spells.csv", dtype=str, nrows=50)
    sample.loc[3, "discharge_date"] = "1999-01-01"
    bad = tmp_path / "bad.csv"
    sample.to_csv(bad, index=False)
    out = tmp_path / "out"
    result = handbook("run", name, "--data", f"spells={bad}", "--out", str(out), "--quiet")
    assert result.returncode == 2
    assert "column 'discharge_date': expected a date not before admission_date" in result.stderr
    assert "row 5:" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_refusals(tmp_path, capsys):
    name = NOTEBOOKS[0]
    assert main(["run", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "No notebook called 'nope'" in capsys.readouterr().err
    assert main(["run", name, "--param", "output_dirr=1", "--out", str(tmp_path / "x")]) == 2
    assert "Did you mean 'output_dir'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["run", name, "--out", str(tmp_path / "full"), "--force"]) == 2
    assert "holds files that are not a previous run (no run.json)" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_template_map_round_trip(tmp_path):
    from helpers.io import load_table

    tpl = tmp_path / "map.yaml"
    assert main(["template", "spells", "--out", str(tpl)]) == 0
    text = tpl.read_text()
    assert "# YOUR_ADMISSION_DATE: admission_date" in text and "ADMIDATE" in text
    # the user fills in one line; the map then loads their file
    tpl.write_text(text + "Date In: admission_date\n")
    from helpers.cli import _read_map

    mapping = _read_map(tpl)
    assert mapping == {"Date In": "admission_date"}
    sample = pd.read_csv(Path(__file__).resolve().parents[1] / "data/sample/spells.csv", dtype=str, nrows=20)
    own = tmp_path / "own.csv"
    sample.rename(columns={"admission_date": "Date In"}).to_csv(own, index=False)
    assert len(load_table("spells", own, mapping)) == 20


AE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ae_attendances.csv"
needs_ae = pytest.mark.skipif(
    not AE.is_file(), reason=f"real A&E data not found at {AE} (it sits beside the repository)"
)


def type1_2018_19() -> pd.DataFrame:
    ae = pd.read_csv(AE, dtype={"type": str})
    ae["period"] = pd.to_datetime(ae["period"])
    return ae[(ae["type"] == "1") & ae["period"].between("2018-04-01", "2019-03-01")]


def ae_indicator_run(folder: Path) -> list:
    src = folder / "ae_type1_2018_19.csv"
    type1_2018_19()[["org_code", "period", "breaches", "attendances"]].to_csv(
        src, index=False
    )  # monthly rows, summed by the notebook
    return [
        run_spec(
            "variation",
            {"indicator": src},
            [
                "column_map={org_code: provider_code, breaches: numerator, attendances: denominator}",
                "indicator=four_hour_breaches",
            ],
        )
    ]


def rf4_series(ae: pd.DataFrame) -> pd.DataFrame:
    return ae[(ae["org_code"] == "RF4") & (ae["type"] == "1")][["period", "breaches"]].sort_values("period")


def rf4_spc_run(folder: Path) -> list:
    src = folder / "rf4.csv"
    rf4_series(pd.read_csv(AE, dtype={"type": str})).rename(
        columns={"period": "date", "breaches": "value"}
    ).to_csv(src, index=False)
    return [run_spec("spc", {"series": src}, ["better=decrease"])]


#: The runs this module's tests read, started in the background when the session starts (tests/conftest.py).
PREFETCH_RUNS = {
    "test_run_on_sample_writes_the_report_folder": lambda folder: [sample_run(n) for n in NOTEBOOKS],
    "test_variation_on_an_aggregate_indicator_file_of_real_ae_data": ae_indicator_run,
    "test_spc_on_a_real_trust_series": rf4_spc_run,
}


@needs_ae
def test_variation_on_an_aggregate_indicator_file_of_real_ae_data(tmp_path, handbook_runs):
    """The Model Health System shape: one row per provider (or per month) with numerator and denominator."""
    ae = type1_2018_19()
    out = handbook_runs.get(ae_indicator_run(tmp_path)[0])
    table = pd.read_csv(out / "tables" / "provider_indicator.csv")
    # every type 1 trust of 2018/19 appears once, and the pooled target is the hand-computed breach proportion
    assert len(table) == ae["org_code"].nunique()
    totals = ae.groupby("org_code")[["breaches", "attendances"]].sum()
    assert table["denominator"].astype(float).sum() == pytest.approx(totals["attendances"].sum(), rel=1e-3)


@needs_ae
def test_spc_on_a_real_trust_series(tmp_path, handbook_runs):
    ae = pd.read_csv(AE, dtype={"type": str})
    rf4 = rf4_series(ae)
    out = handbook_runs.get(rf4_spc_run(tmp_path)[0])
    spc_table = pd.read_csv(out / "tables" / "spc.csv")
    values = rf4["breaches"].to_numpy()
    mean = values.mean()
    limit = 2.66 * abs(pd.Series(values).diff()).mean()
    # the hand-computed XmR centre and limits (no screening, one period)
    assert spc_table["mean"].iloc[0] == pytest.approx(mean, rel=1e-9)
    assert spc_table["upper_limit"].iloc[0] == pytest.approx(mean + limit, rel=1e-9)
    assert len(spc_table) == 36


def test_template_charts_each_providers_emergency_bed_days_by_discharge_month(handbook_runs):
    """The template's latest point per provider is the sample's emergency bed days in that discharge month,
    counted here from the raw file (admission methods 21-28 and 2A-2D; discharge minus admission date)."""
    out = handbook_runs.get(sample_run("template"))
    summary = pd.read_csv(out / "tables" / "spc_summary.csv", dtype={"group": str})
    raw = pd.read_csv(Path(__file__).resolve().parents[1] / "data/sample/spells.csv", dtype=str)
    assert set(summary["group"]) == set(raw["provider_code"])
    admitted, discharged = pd.to_datetime(raw["admission_date"]), pd.to_datetime(raw["discharge_date"])
    emergency = raw["admission_method"].isin([*(str(c) for c in range(21, 29)), "2A", "2B", "2C", "2D"])
    latest = pd.Timestamp(summary["latest_date"].iloc[0])
    assert (
        summary["latest_date"].nunique() == 1 and latest < discharged.max()
    )  # the last month is not complete
    in_month = emergency & (discharged.dt.to_period("M") == latest.to_period("M"))
    expected = (discharged - admitted).dt.days[in_month].groupby(raw["provider_code"][in_month]).sum()
    got = summary.set_index("group")["latest_value"].astype(float)
    pd.testing.assert_series_equal(
        got.sort_index(), expected.astype(float).reindex(got.index).sort_index(), check_names=False
    )
