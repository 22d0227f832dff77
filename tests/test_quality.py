"""The data quality table and the exclusion flow (helpers.quality), checked by hand counts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from helpers import casemix, derive, io, quality
from helpers import cohort as co
from helpers.io import LoadedTable, LoadSummary
from helpers.report import publish, publish_data_quality

# 20 spells written with HES names, UK dates and one optional column left out (spell_cost).
N = 20
HES = pd.DataFrame(
    {
        "SPELL_ID": [f"S{i:03d}" for i in range(N)],
        "PATIENT_ID": [f"P{i % 15:03d}" for i in range(N)],
        "PROCODE3": ["T01"] * 12 + ["T02"] * 8,
        "ADMIDATE": ["03/04/2024"] * 10 + ["15/01/2025"] * 10,
        "DISDATE": ["05/04/2024"] * 10 + ["20/01/2025"] * 9 + ["02/02/2025"],
        "ADMIMETH": ["21"] * 16 + ["11"] * 4,
        "STARTAGE": ["70"] * N,
        "SEX": ["1"] * 13 + ["2"] * 7,
        "DISMETH": ["1"] * 10 + [""] * 10,
        "HFRS": ["3.5"] * 18 + ["", ""],
        "Ward": ["A"] * N,
    }
)


@pytest.fixture()
def loaded(tmp_path: Path) -> LoadedTable:
    path = tmp_path / "extract.csv"
    HES.to_csv(path, index=False)
    return io.load_input("spells", path)


@pytest.fixture()
def spells(loaded: LoadedTable) -> pd.DataFrame:
    return loaded.frame


def test_data_quality_by_hand(loaded):
    dq = quality.data_quality(loaded).set_index("column")
    assert list(dq.index) == list(io.table_columns("spells"))  # every contract column, in order
    assert (dq["rows"] == N).all()
    assert dq.loc["admission_date", "source_column"] == "ADMIDATE"
    assert (dq.loc["admission_date", "first"], dq.loc["admission_date", "last"]) == (
        "2024-04-03",
        "2025-01-15",
    )
    assert (dq.loc["discharge_date", "first"], dq.loc["discharge_date", "last"]) == (
        "2024-04-05",
        "2025-02-02",
    )
    # 10 of 20 discharge methods blank: 50.0% complete; the code list is 1: 10 (nothing small)
    assert (
        dq.loc["discharge_method", "n_missing"] == 10 and dq.loc["discharge_method", "pct_complete"] == 50.0
    )
    assert dq.loc["discharge_method", "values_seen"] == "1: 10"
    # sex 13 and 7: the 7 is starred and 13 rounded to 15, so 7 cannot be found from the 20 rows
    assert dq.loc["sex", "values_seen"] == "1: 15; 2: *"
    # providers found, with counts 12 and 8 (neither small)
    assert (
        dq.loc["provider_code", "values_seen"] == "T01: 12; T02: 8"
        and dq.loc["provider_code", "distinct_values"] == 2
    )
    # two blank frailty scores: a count of 2 is starred, and the % complete made from it too
    assert dq.loc["frailty_score", "n_missing"] == "*" and dq.loc["frailty_score", "pct_complete"] == "*"
    # an optional column the file lacks is listed, not hidden
    assert dq.loc["spell_cost", "n_missing"] == N and dq.loc["spell_cost", "pct_complete"] == 0.0
    assert (
        dq.loc["spell_cost", "note"] == "not in the file (optional)"
        and dq.loc["spell_cost", "source_column"] == ""
    )
    # identifiers: counted, never listed
    assert dq.loc["patient_id", "distinct_values"] == 15 and dq.loc["patient_id", "values_seen"] == ""


def test_data_quality_publishes_without_further_suppression(loaded, tmp_path):
    published, _ = publish_data_quality(loaded, output_dir=tmp_path)
    text = (tmp_path / "data_quality.csv").read_text()
    assert "spells,sex,SEX,string,yes,20,0,100.0,,,2,1: 15; 2: *," in text
    assert (
        published.set_index("column").loc["discharge_method", "n_missing"] == 10
    )  # not starred a second time


def test_derived_fields_are_not_profiled_and_describe_says_what_was_read(loaded):
    dq = quality.data_quality(replace(loaded, frame=derive.add_spell_fields(loaded.frame)))
    assert "los_days" not in set(dq["column"])
    text = quality.describe(loaded)
    assert text.startswith(
        "spells: 20 rows read from extract.csv; 10 of 17 columns present; renamed: PROCODE3 → provider_code, "
    )
    assert "PROCODE3 → provider_code" in text and "1 column(s) not used: Ward" in text
    assert "admission_date: 3 April 2024 to 15 January 2025." in text and "2 providers." in text


def test_a_notebooks_own_input_without_contract():
    series = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-04-01", "2024-05-01", None]),
            "value": [3.0, None, 5.0],
            "group": ["A", "A", "B"],
        }
    )
    loaded = LoadedTable(series, LoadSummary("series", "s.csv", 3))
    # an aggregate file (rows are months, not people): small counts are shown as they are
    dq, flow = publish_data_quality(loaded)
    dq = dq.set_index("column")
    assert dq.loc["date", "type"] == "date" and dq.loc["date", "last"] == "2024-05-01"
    assert dq.loc["value", "n_missing"] == 1 and dq.loc["value", "pct_complete"] == pytest.approx(66.7)
    assert dq.loc["group", "values_seen"] == "A: 2; B: 1" and dq.loc["group", "required"] == ""
    assert flow["rows_after"].tolist() == [3, 3]
    with pytest.raises(TypeError, match="helpers.io.load_input"):  # a bare frame does not say what was read
        quality.data_quality(series)


# --------------------------------------------------------------------------- the flow
def test_flow_joins_the_notebooks_steps_from_rows_read_to_rows_analysed(loaded, spells):
    s = casemix.add_casemix_bands(derive.add_spell_fields(spells))
    s, _, year_ex = casemix.restrict_to_year(
        s, "2024/25"
    )  # the 10 April spells are 2024/25, January 2025 too
    population, pop_ex = casemix.indicator_population(s, "day_case")  # elective only: 4 of 20
    flow = quality.exclusion_flow(loaded, pd.concat([year_ex, pop_ex], ignore_index=True))
    assert flow["step"].tolist() == [
        "read from extract.csv",
        "financial year 2024/25",
        "day_case: elective admissions",
        "analysed",
    ]
    assert flow["rows_excluded"].tolist() == [0, 0, 16, 0]
    assert flow["rows_after"].tolist() == [20, 20, 4, 4]
    assert flow["rows_after"].iloc[-1] == len(population)


def test_flow_refuses_steps_that_do_not_add_up(loaded):
    gap = pd.DataFrame(
        {"step": ["a", "b"], "rows_before": [20, 15], "rows_excluded": [3, 1], "rows_after": [17, 14]}
    )
    with pytest.raises(
        ValueError, match=r"step 'b' .* 15 rows, excludes 1 and keeps 14, but 17 rows reached it"
    ):
        quality.exclusion_flow(loaded, gap)
    wrong = pd.DataFrame({"step": ["a"], "rows_before": [20], "rows_excluded": [3], "rows_after": [16]})
    with pytest.raises(ValueError, match="does not add up"):
        quality.exclusion_flow(loaded, wrong)
    with pytest.raises(ValueError, match="not given"):
        quality.exclusion_flow(loaded, gap.assign(table="virtual_ward"))


def test_small_exclusions_are_starred_and_the_whole_flow_rounded(loaded, tmp_path):
    # 3 of 20 excluded: "*"; the flow's rows are linked by subtraction, so every other count is rounded to 5
    step = pd.DataFrame({"step": ["under 18"], "rows_before": [20], "rows_removed": [3], "rows_after": [17]})
    _, safe = publish_data_quality(loaded, step, output_dir=tmp_path)
    assert safe["rows_excluded"].tolist() == [0, "*", 0]
    assert safe["rows_after"].tolist() == [
        20,
        15,
        15,
    ]  # 17 -> 15 everywhere, or 20 - 17 would give the 3 back
    assert safe["rows_before"].tolist() == [20, 20, 15]


def test_cohort_exclusions_of_two_tables_become_one_flow_each():
    loaded = {"spells": io.load_input("spells"), "virtual_ward": io.load_input("virtual_ward")}
    spells, stays = derive.add_spell_fields(loaded["spells"].frame), loaded["virtual_ward"].frame
    built = co.build_cohort(spells, stays)
    flow = quality.exclusion_flow(loaded, built.exclusions)
    analysed = flow[flow["step"] == "analysed"].set_index("table")["rows_after"]
    assert analysed["spells"] == len(built.spells)
    assert analysed["virtual_ward"] == int(
        built.spells["treated"].sum()
    )  # every linked stay in the cohort is one treated spell
    read = flow[flow["step"].str.startswith("read from")].set_index("table")["rows_after"]
    assert (read["spells"], read["virtual_ward"]) == (len(spells), len(stays))


def test_monthly_series_steps_by_hand():
    months = pd.to_datetime(["2024-04-01"] * 3 + ["2024-05-01"] * 4 + ["2024-06-01"] * 3)
    spells = pd.DataFrame(
        {
            "month": months,
            "emergency": [True, False, True, True, True, False, False, True, True, True],
            "readmission_eligible": [True] * 7 + [False] * 3,
        }
    )
    counts = pd.DataFrame({"date": pd.to_datetime(["2024-05-01", "2024-06-01"]), "value": [1.0, 2.0]})
    steps = quality.monthly_series_steps(
        spells, counts
    )  # April left out; 2 of the 7 spells left are not emergencies
    assert steps["rows_excluded"].tolist() == [3, 2] and steps["rows_after"].tolist() == [7, 5]
    rates = pd.DataFrame(
        {"date": pd.to_datetime(["2024-04-01", "2024-05-01"]), "numerator": [0, 1], "denominator": [3, 4]}
    )
    steps = quality.monthly_series_steps(
        spells, rates
    )  # June left out (open windows); all 7 left are eligible
    assert steps["step"].tolist() == [
        "discharged in a month on the chart",
        "eligible for readmission follow-up",
    ]
    assert steps["rows_excluded"].tolist() == [3, 0]


# --------------------------------------------------------------------------- the notebooks' data quality block
def test_the_data_quality_block_is_one_call(loaded, spells, tmp_path, capsys):
    step = casemix.restrict_to_year(derive.add_spell_fields(spells), "2024/25")[2]
    old, new = tmp_path / "old", tmp_path / "new"
    # the block the four notebooks used to spell out, cell by cell
    text = quality.describe(loaded)
    publish(quality.data_quality(loaded), "data_quality", old, counts=[])
    publish(
        quality.exclusion_flow(loaded, step),
        "exclusions",
        old,
        counts=quality.flow_counts(loaded),
        linked=True,
    )
    shown_before = capsys.readouterr().out
    data_quality, exclusions = publish_data_quality(loaded, step, output_dir=new)
    shown = capsys.readouterr().out
    for name in ("data_quality", "exclusions"):  # the published tables do not change
        assert (new / f"{name}.csv").read_bytes() == (old / f"{name}.csv").read_bytes()
    assert shown_before == "" and shown.startswith(text + "\n")  # what was read, then the two tables
    assert list(exclusions["step"]) == ["read from extract.csv", "financial year 2024/25", "analysed"]
    # every discharge of the 20 spells falls in 2024/25 (April 2024 and January-February 2025)
    assert exclusions["rows_after"].tolist() == [N, N, N] and data_quality["table"].eq("spells").all()


def test_the_data_quality_block_of_two_inputs_and_of_an_engine_profile(tmp_path, capsys):
    from helpers import variation

    loaded, stays = io.load_input("spells"), io.load_input("virtual_ward")
    spells = loaded.frame
    data_quality, exclusions = publish_data_quality(
        {"spells": loaded, "virtual_ward": stays}, output_dir=tmp_path
    )
    assert list(data_quality["table"].unique()) == ["spells", "virtual_ward"]
    assert exclusions.loc[exclusions["step"] == "analysed", "rows_after"].tolist() == [
        len(spells),
        len(stays.frame),
    ]
    # DuckDB profiles a national file in SQL and hands on no rows: the block reads the profile
    duck = variation.prepare_variation(None, "los", engine="duckdb")
    assert duck.loaded.frame is None
    capsys.readouterr()
    data_quality, _ = publish_data_quality(duck.loaded, duck.exclusions)
    assert capsys.readouterr().out.startswith(f"spells: {len(spells):,} rows read from spells.csv")
    pd.testing.assert_frame_equal(
        data_quality, publish(quality.data_quality(loaded), "data_quality", counts=[])
    )
