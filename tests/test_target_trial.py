"""The target-trial design of the virtual ward evaluation (METHODS.md section 5).

By hand on small tables (risk sets, outcomes from time zero, prior use), then
on simulated economies where the step-down is decided on hospital day 2 to 4
(``simulate_economy(step_down="mid_stay")``): the new design recovers the
true effect in repeated runs, the naive comparison and the old all-spells
design do not, and ``handbook run virtual_ward`` writes the estimates.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_runs import RunSpec, run_spec

from helpers import cohort as co
from helpers import evaluation as ev
from helpers import simulate

REPO = Path(__file__).resolve().parents[1]


def _spell(spell_id, patient, adm, dis, diag="J18", method="21", provider="AAA", dismeth="1", age=80):
    return {
        "spell_id": spell_id,
        "patient_id": patient,
        "provider_code": provider,
        "admission_date": pd.Timestamp(adm),
        "discharge_date": pd.Timestamp(dis),
        "admission_method": method,
        "age": age,
        "sex": "2",
        "primary_diagnosis": diag,
        "discharge_method": dismeth,
        "imd_decile": 3,
        "frailty_score": 6.0,
    }


def _stay(stay_id, patient, adm, dis, linked, referral=None):
    return {
        "vw_stay_id": stay_id,
        "patient_id": patient,
        "provider_code": "AAA",
        "vw_admission_date": pd.Timestamp(adm),
        "vw_discharge_date": pd.Timestamp(dis),
        "pathway": "acute respiratory infection",
        "route": "step_down",
        "linked_spell_id": linked,
        "referral_date": pd.Timestamp(referral) if referral else pd.NaT,
    }


@pytest.fixture()
def tables():
    spells = pd.DataFrame(
        [
            # T1 treated: decided on day 2 (3 Mar), home on the ward 6-10 Mar, escalated back 9 Mar
            _spell("T1", "P1", "2024-03-01", "2024-03-06"),
            _spell("T1R", "P1", "2024-03-09", "2024-03-12", diag="K35"),
            # C1: in hospital 5-12 Mar, so at risk on day 2 (7 Mar) and day 5 (10 Mar); readmitted 8 Apr
            _spell("C1", "P2", "2024-03-05", "2024-03-12"),
            _spell("C1R", "P2", "2024-04-08", "2024-04-09", diag="K35"),
            # C1's history: an emergency spell 98 days before (4 nights), an elective one (2 nights),
            # and an elective one more than a year before (not counted)
            _spell("C1P", "P2", "2023-11-28", "2023-12-02", diag="J18"),
            _spell("C1E", "P2", "2024-01-10", "2024-01-12", method="11", diag="K40"),
            _spell("C1O", "P2", "2023-02-01", "2023-02-03", method="11", diag="K40"),
            # C2: discharged on day 1: never at risk on day 2 or day 5
            _spell("C2", "P3", "2024-03-10", "2024-03-11"),
            # C3: died in hospital on day 2: alive on day 2, so a control, and the death is an outcome
            _spell("C3", "P4", "2024-03-02", "2024-03-04", dismeth="4"),
            # C4: died on day 1: not alive on day 2
            _spell("C4", "P5", "2024-03-01", "2024-03-02", dismeth="4"),
            # T2 treated with no referral date: time zero is the step-down day, day 5 (9 Mar)
            _spell("T2", "P6", "2024-03-04", "2024-03-09"),
            # heart failure at AAA: no treated spell on that pathway, so no risk set
            _spell("H1", "P7", "2024-03-01", "2024-03-10", diag="I50"),
            # T3: referral date after the acute discharge: set aside and counted
            _spell("T3", "P8", "2024-03-01", "2024-03-05"),
            # the data run to 30 Jun
            _spell("END", "P99", "2024-06-30", "2024-06-30", method="11"),
        ]
    )
    vw = pd.DataFrame(
        [
            _stay("V1", "P1", "2024-03-06", "2024-03-10", "T1", referral="2024-03-03"),
            _stay("V2", "P6", "2024-03-09", "2024-03-12", "T2"),
            _stay("V3", "P8", "2024-03-05", "2024-03-07", "T3", referral="2024-03-06"),
        ]
    )
    return spells, vw


def test_risk_sets_hold_patients_in_hospital_and_alive_on_the_day(tables):
    spells, vw = tables
    tt = co.build_target_trial(spells, vw)
    rows = tt.rows.set_index(["risk_set", "spell_id"])
    day2, day5 = "AAA | acute respiratory infection | day 2", "AAA | acute respiratory infection | day 5"
    assert sorted(rows.loc[day2].index) == ["C1", "C3", "T1", "T2"]
    # T1 was stepped down on day 2, so it is not a control on day 5; C3 died on day 2
    assert sorted(rows.loc[day5].index) == ["C1", "T2"]
    assert rows.loc[(day2, "T1"), "treated"] == 1 and rows.loc[(day5, "T2"), "treated"] == 1
    # T2, stepped down later, is a control on day 2 ("treat now or wait")
    assert rows.loc[(day2, "T2"), "treated"] == 0
    assert tt.time_zero == "mixed" and tt.time_zero_counts == {"referral_date": 1, "step-down day": 1}
    assert "step-down day" in co.describe_time_zero(tt)
    ex = tt.exclusions[tt.exclusions["table"] == "spells"].set_index("step")["rows_removed"]
    assert ex["referral_date within the linked spell"] == 1  # T3
    assert ex["in a risk set"] == 3  # C2, C4, H1


def test_outcomes_count_from_time_zero_in_both_arms(tables):
    spells, vw = tables
    rows = co.build_target_trial(spells, vw).rows.set_index(["landmark_day", "spell_id"])
    t1, c1, c3, t2 = rows.loc[(2, "T1")], rows.loc[(2, "C1")], rows.loc[(2, "C3")], rows.loc[(5, "T2")]
    assert t1["time_zero"] == pd.Timestamp("2024-03-03") and c1["time_zero"] == pd.Timestamp("2024-03-07")
    assert (t1["acute_los"], t1["total_los"]) == (3, 7)  # acute to 6 Mar, virtual ward to 10 Mar
    assert (c1["acute_los"], c1["total_los"]) == (5, 5)
    assert (t2["acute_los"], t2["total_los"]) == (0, 3)
    assert rows.loc[(5, "C1"), "acute_los"] == 2
    # T1's escalation on 9 Mar is a readmission; C1's on 8 Apr is 32 days after its time zero
    assert t1["readmission_30d"] == 1 and c1["readmission_30d"] == 0 and c1["readmission_90d"] == 1
    # C3 died on its time zero: a death, not an exclusion
    assert (c3["death_30d"], c3["readmission_or_death_30d"], c3["acute_los"]) == (1, 1, 0)
    # days alive and out of hospital in 30: T1 3 acute nights + 3 readmission nights; C3 dead all 30
    assert t1["days_alive_out_of_hospital_30d"] == 24
    assert c1["days_alive_out_of_hospital_30d"] == 25 and c3["days_alive_out_of_hospital_30d"] == 0
    assert c1["month"] == pd.Timestamp("2024-03-01")  # admission month


def test_prior_year_use_is_measured_before_admission(tables):
    spells, vw = tables
    rows = co.build_target_trial(spells, vw).rows.drop_duplicates("spell_id").set_index("spell_id")
    assert rows.loc["C1", "prior_emergency_admissions"] == 1  # the November spell; electives not counted
    assert rows.loc["C1", "prior_bed_days"] == 4 + 2  # the old elective spell is more than a year before
    assert rows.loc["T1", "prior_emergency_admissions"] == 0 and rows.loc["T1", "prior_bed_days"] == 0


def test_build_cohort_without_deaths_or_discharge_method(tables):
    """No spell ends in death, or no discharge_method column: no TypeError, death outcomes are 0."""
    spells, vw = tables
    alive = spells.assign(discharge_method="1")
    for frame in (alive, spells.drop(columns=["discharge_method"])):
        c = co.build_cohort(frame, vw).spells
        assert c["death_30d"].sum() == 0
        tt = co.build_target_trial(frame, vw)
        assert tt.rows["death_30d"].sum() == 0


def test_death_window_is_the_same_for_both_groups_in_the_all_spells_design(tables):
    spells, vw = tables
    # T1 (acute discharge 6 Mar, ward to 10 Mar): a death on 5 Apr is day 30 after acute discharge
    deaths = pd.DataFrame({"patient_id": ["P1", "P2"], "date_of_death": ["2024-04-05", "2024-04-10"]})
    c = co.build_cohort(spells, vw, deaths=deaths).spells.set_index("spell_id")
    assert c.loc["T1", "treated"] == 1 and c.loc["T1", "death_30d"] == 0  # the old window ran to 9 Apr
    # C1 (discharged 12 Mar): 10 Apr is day 29: counted
    assert c.loc["C1", "death_30d"] == 1
    on_day_29 = deaths.assign(date_of_death=["2024-04-04", "2024-04-10"])
    assert (
        co.build_cohort(spells, vw, deaths=on_day_29).spells.set_index("spell_id").loc["T1", "death_30d"] == 1
    )


def test_month_covariate_is_the_admission_month(tables):
    spells, vw = tables
    spells = spells.copy()
    spells.loc[spells["spell_id"] == "C1", "discharge_date"] = pd.Timestamp("2024-04-02")
    c = co.build_cohort(spells, vw).spells.set_index("spell_id")
    assert c.loc["C1", "month"] == pd.Timestamp("2024-03-01")


# ---------------------------------------------------------------------------
# The simulator's mid-stay economy
# ---------------------------------------------------------------------------


@functools.cache
def mid_stay_economy() -> dict:
    """The 20,000-spell mid-stay economy, simulated once per session (tests read it, never change it)."""
    return simulate.simulate_economy(20_000, seed=3, step_down="mid_stay", readmission_or=1.0)


@pytest.fixture(scope="module")
def mid_stay():
    return mid_stay_economy()


def test_mid_stay_simulator_decides_on_day_2_to_4_for_patients_still_in_hospital(mid_stay):
    sp, vw, truth = mid_stay["spells"], mid_stay["virtual_ward"], mid_stay["truth"]["virtual_ward"]
    down = vw[vw["route"] == "step_down"].merge(sp, left_on="linked_spell_id", right_on="spell_id")
    day = (down["referral_date"] - down["admission_date"]).dt.days
    assert day.between(2, 4).all() and len(down) == truth["n_treated"] > 100
    assert (down["discharge_date"] >= down["referral_date"]).all()  # still in hospital that day
    assert (down["vw_admission_date"] == down["discharge_date"]).all()
    # one review day per provider and pathway, and all three days occur
    assert down.assign(day=day).groupby(["provider_code_x", "pathway"])["day"].nunique().eq(1).all()
    assert set(day) == {2, 3, 4}
    assert truth["step_down"] == "mid_stay" and truth["decision_days"] == [2, 4]
    assert -2.5 < truth["att_acute_los_days"] < -1.5 and truth["att_readmission_30d_rd"] == 0.0
    # every death in hospital is in the deaths records; some treated patients died on the ward
    in_hospital = sp[sp["discharge_method"] == "4"]
    deaths = mid_stay["deaths"]
    assert set(in_hospital["patient_id"]) <= set(deaths["patient_id"])
    assert len(set(deaths["patient_id"]) & set(down["patient_id_x"])) > 0
    assert vw.loc[vw["route"] == "step_up", "referral_date"].isna().all()


def test_shipped_economy_refers_at_admission():
    res = simulate.simulate_economy(5_000, seed=5)
    vw, sp = res["virtual_ward"], res["spells"]
    down = vw[vw["route"] == "step_down"].merge(sp, left_on="linked_spell_id", right_on="spell_id")
    assert (down["referral_date"] == down["admission_date"]).all()
    assert res["truth"]["virtual_ward"]["decision_days"] == [0, 0]
    with pytest.raises(ValueError, match="step_down"):
        simulate.simulate_economy(5_000, step_down="later")


def test_risk_set_without_a_control_is_left_out_and_said_so(mid_stay):
    tt = co.build_target_trial(mid_stay["spells"], mid_stay["virtual_ward"])
    first = sorted(tt.rows["risk_set"].unique())[0]
    n_first = int(tt.rows.loc[tt.rows["risk_set"] == first, "treated"].sum())
    tt.rows = tt.rows[(tt.rows["risk_set"] != first) | (tt.rows["treated"] == 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = ev.estimate_target_trial(tt, ["acute_los"], methods=["aipw", "ipw", "matching"]).effects
    r = e.set_index("method").loc["ipw"]
    assert r["n_treated"] == int(tt.rows["treated"].sum()) - n_first
    assert f"{n_first:,} treated rows in risk sets without a control left out" in r["note"]


def _estimates(seed: int, n: int = 40_000) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    res = simulate.simulate_economy(n, seed=seed, step_down="mid_stay", readmission_or=1.0)
    tt = co.build_target_trial(res["spells"], res["virtual_ward"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = ev.estimate_target_trial(
            tt, ["acute_los", "readmission_30d"], methods=["naive", "aipw", "ipw", "matching"]
        ).effects
        old_cohort = co.build_cohort(res["spells"], res["virtual_ward"])
        old = ev.estimate_effects(old_cohort.spells, ["acute_los"], methods=["ipw"]).effects
    return (
        res["truth"]["virtual_ward"],
        new.set_index(["outcome", "method"]),
        old.set_index(["outcome", "method"]),
    )


def test_repeated_simulation_new_design_recovers_truth_and_the_old_ones_do_not():
    """Three economies (fixed seeds): intervals cover the truth, the mean error is small;
    the naive comparison and the old all-spells design (adjusted by IPW) are far off."""
    errors = {m: [] for m in ("aipw", "ipw", "matching")}
    for seed in (1, 2, 3):
        truth, new, old = _estimates(seed)
        att = truth["att_acute_los_days"]
        for m in errors:
            r = new.loc[("acute_los", m)]
            assert r["ci_lower"] <= att <= r["ci_upper"], (seed, m, r["estimate"], att)
            errors[m].append(r["estimate"] - att)
        assert new.loc[("acute_los", "naive"), "estimate"] > att + 3, seed  # clocks started at admission
        assert old.loc[("acute_los", "ipw"), "estimate"] > att + 1.5, seed  # adjustment does not repair it
        readmit = new.loc[("readmission_30d", "ipw")]
        rd = 100 * truth["att_readmission_30d_from_time_zero_rd"]
        assert readmit["ci_lower"] <= rd <= readmit["ci_upper"], (seed, readmit["estimate"], rd)
    for m, e in errors.items():
        assert abs(np.mean(e)) < 0.5, (m, e)


_ECONOMY_FILES: dict[str, Path] = {}


def economy_files(folder: Path) -> Path:
    """The 200,000-spell economy's files, written once per session (into the first caller's folder)."""
    if "200k" not in _ECONOMY_FILES:
        simulate.write_sample(folder, seed=12, n_spells=200_000, step_down="mid_stay", readmission_or=1.0)
        _ECONOMY_FILES["200k"] = folder
    return _ECONOMY_FILES["200k"]


def virtual_ward_run(spells: Path, virtual_ward: Path) -> RunSpec:
    return run_spec("virtual_ward", {"spells": spells, "virtual_ward": virtual_ward})


def test_handbook_run_on_a_mid_stay_economy(tmp_path, handbook_runs):
    """The issue's check: a 200,000-spell economy (not the sample), step-down decided on day 2-4,
    referral_date given, true readmission odds ratio 1."""
    data = economy_files(tmp_path / "economy")
    truth = json.loads((data / "truth.json").read_text())["virtual_ward"]
    out = handbook_runs.get(virtual_ward_run(data / "spells.csv", data / "virtual_ward.csv"))
    e = pd.read_csv(out / "tables" / "effect_estimates.csv").set_index(["outcome", "method"])
    att = truth["att_acute_los_days"]
    for m in ("ipw", "matching"):
        r = e.loc[("acute_los", m)]
        assert r["ci_lower"] <= att <= r["ci_upper"] and abs(r["estimate"] - att) < 0.5, (
            m,
            r["estimate"],
            att,
        )
    assert abs(e.loc[("acute_los", "naive"), "estimate"] - att) > 3
    r = e.loc[("readmission_30d", "ipw")]
    assert r["ci_lower"] <= 0 <= r["ci_upper"]
    assert r["ci_lower"] <= 100 * truth["att_readmission_30d_from_time_zero_rd"] <= r["ci_upper"]


def test_provider_level_skip_reason():
    month = pd.date_range("2024-01-01", periods=8, freq="MS")
    series = pd.DataFrame({"month": month, "bed_days": range(8)})
    assert ev.provider_level_skip_reason(series, "2024-04-15") == ""
    note = ev.provider_level_skip_reason(series, "2024-02-01")
    assert "skipped" in note and "1 before" in note
    assert "no comparison provider" in ev.provider_level_skip_reason(series, "2024-04-01", comparators=[])


def wards_opened_before_the_data(folder: Path) -> RunSpec:
    """The mid-stay economy from September 2024 on: every ward opened before its first month."""
    economy = mid_stay_economy()
    sp = economy["spells"]
    sp = sp[sp["admission_date"] >= pd.Timestamp("2024-09-01")]
    vw = economy["virtual_ward"]
    vw = vw[
        vw["linked_spell_id"].isin(sp["spell_id"])
        | vw["linked_spell_id"].isna() & (vw["vw_admission_date"] >= pd.Timestamp("2024-09-01"))
    ]
    sp.to_csv(folder / "spells.csv", index=False, date_format="%Y-%m-%d")
    vw.to_csv(folder / "vw.csv", index=False, date_format="%Y-%m-%d")
    return virtual_ward_run(folder / "spells.csv", folder / "vw.csv")


#: The runs, started in the background when the session starts (tests/conftest.py).
PREFETCH_RUNS = {
    "test_handbook_run_on_a_mid_stay_economy": lambda folder: [
        virtual_ward_run(economy_files(folder) / "spells.csv", economy_files(folder) / "virtual_ward.csv")
    ],
    "test_handbook_run_when_every_ward_opened_before_the_data": lambda folder: [
        wards_opened_before_the_data(folder)
    ],
}


def test_handbook_run_when_every_ward_opened_before_the_data(tmp_path, handbook_runs):
    """Too few months before any ward opened: the run skips ITS and DiD with a note and still
    writes the patient-level tables (it used to stop with 'need 3 months either side')."""
    out = handbook_runs.get(wards_opened_before_the_data(tmp_path))
    tables = {p.stem for p in (out / "tables").glob("*.csv")}
    assert {"effect_estimates", "balance", "financial_impact"} <= tables
    assert not {"its", "did", "before_after"} & tables
    assert "skipped" in (out / "report.html").read_text()


def test_time_zero_figure_draws_both_designs():
    from helpers.plots.evaluation import time_zero_figure

    fig = time_zero_figure()
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("All spells") and titles[1].startswith("Target trial")
    # the top panel's clocks all start at 0; the bottom panel's at day 3 (the patient home on day 1 has none)
    starts = [[line.get_xdata()[0] for line in ax.lines if line.get_marker() == "o"] for ax in fig.axes]
    assert starts == [[0, 0, 0], [3, 3]]


def test_without_referral_date_the_step_down_day_is_time_zero_and_the_report_says_why_it_is_weaker(mid_stay):
    vw = mid_stay["virtual_ward"].drop(columns=["referral_date"])
    tt = co.build_target_trial(mid_stay["spells"], vw)
    assert tt.time_zero == "step-down day" and tt.time_zero_counts["referral_date"] == 0
    treated = tt.rows[tt.rows["treated"] == 1]
    assert (treated["time_zero"] == treated["discharge_date"]).all() and (treated["acute_los"] == 0).all()
    text = co.describe_time_zero(tt)
    assert "step-down day" in text and "flatters the ward" in text and "referral_date" in text
