"""Derived fields, checked against hand-worked spells."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.derive import add_spell_fields, financial_year


def spells(rows):
    df = pd.DataFrame(
        rows,
        columns=[
            "spell_id",
            "patient_id",
            "provider_code",
            "admission_date",
            "discharge_date",
            "admission_method",
            "discharge_method",
        ],
    )
    for col in ["admission_date", "discharge_date"]:
        df[col] = pd.to_datetime(df[col])
    return df


CASES = spells(
    [
        # p1: discharged 28 March 2024 from T01, readmitted as an emergency to T02 on 5 April (8 days, across the year end)
        ("a", "p1", "T01", "2024-03-20", "2024-03-28", "21", "1"),
        ("b", "p1", "T02", "2024-04-05", "2024-04-07", "21", "1"),
        # p2: elective readmission does not count; emergency 29 days later counts; 30 days later would not
        ("c", "p2", "T01", "2024-01-01", "2024-01-03", "21", "1"),
        ("d", "p2", "T01", "2024-01-10", "2024-01-10", "11", "1"),
        ("e", "p2", "T01", "2024-02-01", "2024-02-02", "22", "1"),
        # p3: emergency 30 days after discharge: outside the 0-29 day window
        ("f", "p3", "T03", "2024-06-01", "2024-06-01", "21", "1"),
        ("g", "p3", "T03", "2024-07-01", "2024-07-04", "21", "4"),
        # p4: same-day emergency spell must not count as its own readmission
        ("h", "p4", "T03", "2024-08-01", "2024-08-01", "21", "1"),
        # p5: last spell near the end of the data: not eligible (window not observed)
        ("i", "p5", "T02", "2025-03-20", "2025-03-25", "21", "1"),
        ("j", "p6", "T02", "2025-03-31", "2025-03-31", "12", "1"),
    ]
)


def test_length_of_stay_from_dates():
    out = add_spell_fields(CASES).set_index("spell_id")
    assert out.loc["a", "los_days"] == 8
    assert out.loc["d", "los_days"] == 0


def test_readmission_linked_across_providers_and_year_end():
    out = add_spell_fields(CASES).set_index("spell_id")
    assert out.loc["a", "readmission_days"] == 8 and out.loc["a", "readmit_30d"]
    assert out.loc["a", "financial_year"] == "2023/24" and out.loc["b", "financial_year"] == "2024/25"


def test_only_emergency_admissions_count_and_window_is_0_to_29_days():
    out = add_spell_fields(CASES).set_index("spell_id")
    assert out.loc["c", "readmission_days"] == 29 and out.loc["c", "readmit_30d"]  # skips elective d
    assert out.loc["d", "readmission_days"] == 22 and out.loc["d", "readmit_30d"]
    assert out.loc["f", "readmission_days"] == 30 and not out.loc["f", "readmit_30d"]
    assert not out.loc["b", "readmit_30d"] and pd.isna(out.loc["b", "readmission_days"])


def test_same_day_spell_is_not_its_own_readmission():
    out = add_spell_fields(CASES).set_index("spell_id")
    assert pd.isna(out.loc["h", "readmission_days"]) and not out.loc["h", "readmit_30d"]


def test_eligibility_excludes_deaths_and_unobserved_windows():
    out = add_spell_fields(CASES).set_index("spell_id")
    assert out.loc["g", "died"] and not out.loc["g", "readmission_eligible"]
    # data end = last admission 2025-03-31; 2025-03-25 + 29 days is after it
    assert not out.loc["i", "readmission_eligible"]
    assert out.loc["a", "readmission_eligible"]
    assert out["readmission_eligible"].sum() == 7


def test_window_is_a_parameter():
    out = add_spell_fields(CASES, readmission_window_days=31).set_index("spell_id")
    assert out.loc["f", "readmit_30d"]


def test_emergency_and_day_case_flags():
    out = add_spell_fields(CASES).set_index("spell_id")
    assert out.loc["a", "emergency"] and not out.loc["d", "emergency"] and out.loc["d", "elective"]
    # no patient_classification column: a same-day elective spell is a day case
    assert out.loc["d", "day_case"] and out.loc["j", "day_case"] and not out.loc["a", "day_case"]


def test_died_is_missing_when_discharge_method_absent():
    out = add_spell_fields(CASES.drop(columns="discharge_method"))
    assert out["died"].isna().all()


@pytest.mark.parametrize(
    "date,label", [("2024-03-31", "2023/24"), ("2024-04-01", "2024/25"), ("2000-01-15", "1999/00")]
)
def test_financial_year(date, label):
    assert financial_year(pd.Series(pd.to_datetime([date]))).iloc[0] == label
