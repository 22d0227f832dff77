"""Monthly bed days counted by the engine are :func:`helpers.evaluation.monthly_bed_days`, to the last digit.

:func:`helpers.evaluation.monthly_bed_days_sql` is what the virtual ward
notebook's provider-level table comes from at national size (the pathway
spells never reach pandas); the pandas function stays for frames (the
training pages). Checked on spells built by hand to hit the edges (nights
split across two and three months, a same-day spell, a discharge on the first
of a month, a provider with no spells in the early months, a chosen start and
end that cut stays), on the shipped sample and on a mid-stay simulation.
"""

from __future__ import annotations

import pandas as pd

from helpers import cohort, derive, simulate
from helpers import evaluation as ev
from helpers.engine import DuckDB

DAYS = "DATE_DIFF('day', DATE '1970-01-01', CAST({} AS DATE))"


def _by_sql(spells: pd.DataFrame, **kw) -> pd.DataFrame:
    be = DuckDB(threads=1)
    try:
        be.con.register("spells_frame", spells[["provider_code", "admission_date", "discharge_date"]])
        source = (
            f"SELECT provider_code, {DAYS.format('admission_date')} AS adm, "
            f"{DAYS.format('discharge_date')} AS dis FROM spells_frame"
        )
        return ev.monthly_bed_days_sql(be, source, **kw)
    finally:
        be.close()


def _same(spells: pd.DataFrame, **kw) -> pd.DataFrame:
    by_pandas = ev.monthly_bed_days(spells, **kw)
    by_sql = _by_sql(spells, **kw)
    pd.testing.assert_frame_equal(by_pandas, by_sql, check_exact=True)
    return by_sql


def _hand_built() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "provider_code": ["A", "A", "A", "B", "B", "C"],
            "admission_date": pd.to_datetime(
                ["2024-01-30", "2024-02-10", "2024-01-31", "2024-02-01", "2024-02-27", "2024-03-15"]
            ),
            "discharge_date": pd.to_datetime(
                ["2024-03-02", "2024-02-10", "2024-02-01", "2024-03-01", "2024-02-28", "2024-03-20"]
            ),
        }
    )


def test_hand_built_nights_split_across_months_as_in_pandas():
    m = _same(_hand_built()).set_index(["provider_code", "month"])
    jan, feb, mar = (pd.Timestamp(d) for d in ("2024-01-01", "2024-02-01", "2024-03-01"))
    # A: 30 Jan-2 Mar gives 2 January nights, all 29 of February and 1 of March; 31 Jan-1 Feb one more
    # January night; the same-day spell none
    assert m.loc[("A", jan), "bed_days"] == 3 and m.loc[("A", jan), "admissions"] == 2
    assert m.loc[("A", feb), "bed_days"] == 29 and m.loc[("A", feb), "admissions"] == 1
    assert m.loc[("A", mar), "bed_days"] == 1
    # B: discharged on 1 March, so no March night; 27-28 Feb adds one
    assert m.loc[("B", feb), "bed_days"] == 30 and m.loc[("B", mar), "bed_days"] == 0
    # C has spells only in March: its January and February are kept with 0
    assert m.loc[("C", jan), ["bed_days", "admissions"]].tolist() == [0, 0]
    assert m.loc[("C", mar), "bed_days"] == 5
    assert len(m) == 9


def test_a_chosen_start_and_end_cut_stays_as_in_pandas():
    m = _same(_hand_built(), start="2024-02-15", end="2024-02-20").set_index(["provider_code", "month"])
    assert list(m.index.get_level_values("month").unique()) == [pd.Timestamp("2024-02-01")]
    assert m.loc[("A", pd.Timestamp("2024-02-01")), "bed_days"] == 29
    _same(_hand_built(), start="2023-11-01", end="2024-05-31")  # months with no spell at all


def test_sample_pathway_spells_as_in_pandas():
    spells = cohort.pathway_spells(derive.load_spells(None).frame)
    assert len(spells) > 1000
    m = _same(spells)
    assert m["bed_days"].sum() == (spells["discharge_date"] - spells["admission_date"]).dt.days.sum()


def test_mid_stay_simulation_as_in_pandas():
    econ = simulate.simulate_economy(5_000, seed=4, step_down="mid_stay")
    spells = cohort.pathway_spells(derive.add_spell_fields(econ["spells"]))
    m = _same(spells)
    assert m["provider_code"].nunique() > 1
    # every night of every spell is counted once, in some month
    assert m["bed_days"].sum() == (spells["discharge_date"] - spells["admission_date"]).dt.days.sum()
    assert m["admissions"].sum() == len(spells)


def test_no_spells_give_an_empty_table():
    empty = _hand_built().iloc[:0]
    got = _by_sql(empty)
    assert len(got) == 0 and list(got.columns) == ["provider_code", "month", "bed_days", "admissions"]
