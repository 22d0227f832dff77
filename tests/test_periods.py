"""Tests of helpers.periods: coverage, complete months, and the monthly measures that use them.

The truth: an extract built from the sample whose admissions stop on 31
December 2024 while its discharges, and the emergency readmissions of its
patients, run on into 2025 (as any real extract does). No month after
December may be charted, the readmission rate stops a month earlier (its
30-day windows), and per-year figures divide by the coverage.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from shared_runs import RunSpec, run_spec

from helpers import derive, evaluation, io, periods, quality, spc

CUT = pd.Timestamp("2024-12-31")


def write_tail_extract(folder: Path) -> Path:
    """Sample spells admitted up to CUT, plus emergency readmissions (0-29 days) admitted after it."""
    d = derive.add_spell_fields(io.load_table("spells"))
    before = d["admission_date"] <= CUT
    last_discharge = d["patient_id"].map(d[before].groupby("patient_id")["discharge_date"].max())
    readmission = d["emergency"] & (d["admission_date"] - last_discharge).dt.days.between(0, 29)
    keep = (before | readmission).to_numpy()
    raw = pd.read_csv(io.sample_path("spells"), dtype=str, keep_default_na=False)[keep]
    path = folder / "spells.csv"
    raw.to_csv(path, index=False)
    return path


def readmission_spc_run(extract: Path) -> RunSpec:
    return run_spec("spc", {"spells": extract}, ["measure=readmission_rate", "chart=p"])


#: The run, started in the background when the session starts (tests/conftest.py).
PREFETCH_RUNS = {
    "test_handbook_run_spc_readmissions_on_an_extract_whose_admissions_stop": lambda folder: [
        readmission_spc_run(write_tail_extract(folder))
    ]
}


@pytest.fixture(scope="module")
def tail_extract(tmp_path_factory) -> Path:
    """Sample spells admitted up to CUT, plus emergency readmissions (0-29 days) admitted after it."""
    path = write_tail_extract(tmp_path_factory.mktemp("tail"))
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert (pd.to_datetime(raw["admission_date"]) > CUT).sum() > 50  # readmissions do run on
    assert pd.to_datetime(raw["discharge_date"]).max() > CUT + pd.Timedelta(days=30)
    return path


@pytest.fixture(scope="module")
def tail_spells(tail_extract) -> pd.DataFrame:
    return derive.add_spell_fields(io.load_table("spells", tail_extract))


def test_coverage_ignores_the_trailing_readmissions(tail_spells):
    cover = periods.coverage(tail_spells)
    assert (cover.start, cover.end) == (pd.Timestamp("2023-04-01"), CUT)
    assert not cover.stated and cover.years == round(641 / 365.25, 2)
    stated = periods.coverage(tail_spells, "2023-04-01", "2025-03-31")
    assert stated.stated and stated.years == 2.0
    # the whole sample: two years exactly, whatever financial years its discharges touch
    assert periods.coverage(io.load_table("spells")).years == 2.0
    assert cover.clip(*periods.financial_year_bounds("2024/25")).days == 275  # 1 April to 31 December 2024


def test_month_status_by_hand():
    cover = periods.Coverage(pd.Timestamp("2024-01-15"), pd.Timestamp("2024-06-30"))
    months = pd.date_range("2024-01-01", "2024-08-01", freq="MS")
    status = periods.month_status(months, cover, lead_in_days=30, follow_up_days=29).set_index("month")[
        "reason"
    ]
    assert status["2024-01-01"].startswith("only partly inside")  # starts before the 15th
    assert status["2024-02-01"].startswith("less than 30 days")  # 1 February is 17 days after the start
    assert status["2024-03-01"] == status["2024-04-01"] == ""
    assert status["2024-05-01"] == ""  # 31 May + 29 days = 29 June, inside
    assert "follow-up" in status["2024-06-01"]  # 30 June + 29 days is past the end
    assert status["2024-07-01"] == status["2024-08-01"] == "outside the extract's admissions"
    assert periods.month_list(pd.Series(months[3:8])) == "Apr 2024 to Aug 2024"
    assert periods.month_list(pd.Series(months[[0, 2]])) == "Jan 2024, Mar 2024"


def test_spc_bed_days_stop_at_the_last_complete_month(tail_spells):
    with pytest.warns(spc.SPCWarning, match="Jan 2025, Feb 2025, Mar 2025 \\(outside"):
        monthly = spc.build_monthly_series(tail_spells, "emergency_bed_days")
    series = monthly.frame
    assert series["date"].max() == pd.Timestamp("2024-12-01")
    assert monthly.label == "Emergency bed days"
    # the last month is a full month: its bed days are in line with the months before, not a collapse
    totals = series.groupby("date")["value"].sum()
    assert totals.iloc[-1] > 0.8 * totals.iloc[-13:-1].mean()
    summary = spc.summarise(spc.spc(series, group="group", better="decrease"), better="decrease")
    assert (pd.to_datetime(summary["latest_date"]) == pd.Timestamp("2024-12-01")).all()
    steps = quality.monthly_series_steps(tail_spells, series, months_left_out=monthly.months_left_out)
    assert "Jan 2025, Feb 2025, Mar 2025 (outside the extract's admissions)" in steps.loc[0, "reason"]
    assert steps.loc[0, "rows_excluded"] == int((~tail_spells["month"].isin(series["date"].unique())).sum())


def test_spc_readmission_rate_stops_where_its_follow_up_does(tail_spells):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", spc.SPCWarning)
        monthly = spc.build_monthly_series(tail_spells, "readmission_rate")
    assert monthly.frame["date"].max() == pd.Timestamp("2024-11-01")  # December's windows run into 2025
    left = dict(monthly.months_left_out)
    assert "follow-up" in left[pd.Timestamp("2024-12-01")]
    assert spc.measure_label("readmission_rate") == "Emergency readmissions within 30 days"
    assert spc.measure_label("readmission_rate", label="My words") == "My words"
    assert spc.measure_label(None, value="breaches") == "Breaches"


def test_virtual_ward_monthly_series_is_cut_to_complete_months(tail_spells):
    monthly = evaluation.monthly_bed_days(tail_spells)
    kept, left_out = periods.complete_months(monthly, periods.coverage(tail_spells), "month")
    assert kept["month"].max() == pd.Timestamp("2024-12-01") and kept["month"].min() == pd.Timestamp(
        "2023-05-01"
    )
    assert set(left_out["month"]) == {
        pd.Timestamp("2023-04-01"),
        *pd.date_range("2025-01-01", monthly["month"].max(), freq="MS"),
    }
    caption = periods.caption(left_out, periods.coverage(tail_spells))
    assert caption.startswith("Extract's admissions: 1 April 2023 to 31 December 2024")


def test_handbook_run_spc_readmissions_on_an_extract_whose_admissions_stop(tail_extract, handbook_runs):
    """Done-when of issue 19: no month after admissions stop, the headline on the last complete month,
    and the title names readmissions."""
    out = handbook_runs.get(readmission_spc_run(tail_extract))
    table = pd.read_csv(out / "tables" / "spc.csv")
    assert pd.to_datetime(table["date"]).max() == pd.Timestamp("2024-11-01")
    summary = pd.read_csv(out / "tables" / "spc_summary.csv")
    assert (pd.to_datetime(summary["latest_date"]) == pd.Timestamp("2024-11-01")).all()
    html = (out / "report.html").read_text()
    assert "Emergency readmissions within 30 days at " in html and "Emergency bed days" not in html
    assert "Jan 2025, Feb 2025, Mar 2025 (outside the extract" in html  # named in the caption and the flow
