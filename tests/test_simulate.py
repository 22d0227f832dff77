"""Tests of the simulated health economy (helpers.simulate).

Each statistical test checks that the data recover a truth the simulator
wrote in ``truth.json``: the provider length-of-stay multipliers, the
virtual ward's effect on the treated, the pathways' EQ-5D gains and costs,
and the readmission and death bookkeeping counted again from the rows.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from helpers import SAMPLE_DIR
from helpers.derive import add_spell_fields
from helpers.io import load_table
from helpers.simulate import simulate_economy, write_sample, write_spells_file

TABLES = ("spells", "virtual_ward", "outcomes")
AGE_EDGES = [18, 45, 65, 75, 85]  # the simulator's age bands 0-17, ..., 85+


@pytest.fixture(scope="module")
def sample() -> dict:
    """The shipped sample, loaded through the contract loader, with its truths."""
    data = {t: load_table(t, SAMPLE_DIR / f"{t}.csv") for t in TABLES}
    data["truth"] = json.loads((SAMPLE_DIR / "truth.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """A small economy written to CSV and read back through the contract loader."""
    out = tmp_path_factory.mktemp("small")
    write_sample(out, seed=11, n_spells=8_000)
    data = {t: load_table(t, out / f"{t}.csv") for t in TABLES}
    data["truth"] = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    data["dir"] = out
    return data


def _end_of_care(spells: pd.DataFrame, vw: pd.DataFrame) -> pd.Series:
    """Acute discharge, or the virtual ward discharge after a step-down stay."""
    down = vw[vw["route"] == "step_down"].set_index("linked_spell_id")["vw_discharge_date"]
    return spells["spell_id"].map(down).fillna(spells["discharge_date"])


def _next_spell(spells: pd.DataFrame) -> pd.DataFrame:
    s = spells.sort_values(["patient_id", "admission_date", "spell_id"]).reset_index(drop=True)
    same = s["patient_id"].eq(s["patient_id"].shift(-1))
    s["next_admission"] = s["admission_date"].shift(-1).where(same)
    s["next_provider"] = s["provider_code"].shift(-1).where(same)
    s["next_method"] = s["admission_method"].shift(-1).where(same)
    return s


def _fy(d: pd.Series) -> pd.Series:
    return d.dt.year - (d.dt.month < 4).astype(int)


# --------------------------------------------------------------------------- files
def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, small):
    write_sample(tmp_path / "again", seed=11, n_spells=8_000)
    write_sample(tmp_path / "other", seed=12, n_spells=8_000)
    for name in [f"{t}.csv" for t in TABLES] + ["truth.json"]:
        first = (small["dir"] / name).read_bytes()
        assert (tmp_path / "again" / name).read_bytes() == first, name
        assert (tmp_path / "other" / name).read_bytes() != first, name


def test_shipped_sample_is_what_write_sample_writes(tmp_path, sample):
    # the committed files must be the simulator's current output for seed 2026
    write_sample(tmp_path, seed=sample["truth"]["seed"], n_spells=sample["truth"]["n_spells"])
    for name in [f"{t}.csv" for t in TABLES] + ["truth.json"]:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), (
            f"data/sample/{name} is stale: rerun write_sample('data/sample')"
        )
    total = sum((SAMPLE_DIR / n).stat().st_size for n in [f"{t}.csv" for t in TABLES] + ["truth.json"])
    assert total < 8_000_000


def test_sample_sizes_and_shares(sample):
    s, t = sample["spells"], sample["truth"]
    assert len(s) == t["n_spells"] == 50_000
    assert s["patient_id"].nunique() == t["n_patients"]
    assert sorted(s["provider_code"].unique()) == t["providers"] == [f"T{k:02d}" for k in range(1, 26)]
    d = add_spell_fields(s)
    assert 0.55 < d["emergency"].mean() < 0.65
    assert d["day_case"].mean() > 0.2
    assert (d.loc[d["day_case"], "los_days"] == 0).all()
    assert s["admission_date"].min() >= pd.Timestamp(t["period_start"])
    assert s["discharge_date"].max() <= pd.Timestamp(t["period_end"])
    size = s["provider_code"].value_counts()
    assert 2.5 < size.max() / size.min() < 4.5
    # case mix differs between providers
    by = d.groupby("provider_code").agg(
        age=("age", "mean"), imd=("imd_decile", "mean"), em=("emergency", "mean")
    )
    assert by["age"].max() - by["age"].min() > 5
    assert by["imd"].max() - by["imd"].min() > 1.5
    assert by["em"].max() - by["em"].min() > 0.15
    assert 1_200 <= t["virtual_ward"]["n_treated"] <= 2_000
    assert 5_000 <= len(sample["outcomes"]) <= 7_000


def test_identifiers_are_synthetic_and_codes_follow_the_contract(small):
    s, vw, o = small["spells"], small["virtual_ward"], small["outcomes"]
    assert s["spell_id"].str.fullmatch(r"S\d{8}").all()
    assert s["patient_id"].str.fullmatch(r"P\d{7}").all()
    assert vw["vw_stay_id"].str.fullmatch(r"V\d{6}").all()
    assert o["outcome_id"].str.fullmatch(r"O\d{6}").all()
    assert s["provider_code"].str.fullmatch(r"T\d{2}").all()
    assert set(s["admission_method"]) <= {"21", "22", "23", "24", "28", "2A", "11", "12", "13"}
    assert set(s["patient_classification"]) == {"1", "2"}
    assert set(s["sex"]) == set(o["sex"]) == {"1", "2"}
    assert set(s["discharge_method"]) == {"1", "4"}
    assert s["primary_diagnosis"].str.fullmatch(r"[A-Z]\d{2}[0-9X]").all()
    assert s["imd_decile"].between(1, 10).all() and (s["frailty_score"] >= 0).all()
    assert (s["spell_cost"] > 0).all() and (o["cost"] > 0).all()
    assert o[["eq5d_before", "eq5d_after"]].stack().between(-0.594, 1).all()
    raw = (small["dir"] / "spells.csv").read_text().splitlines()
    assert re.fullmatch(r"S\d{8},P\d{7},T\d\d,\d{4}-\d\d-\d\d,\d{4}-\d\d-\d\d,.*", raw[1])
    # every patient in the other tables is a patient of the economy
    assert set(o["patient_id"]) <= set(s["patient_id"])
    down = vw[vw["route"] == "step_down"]
    assert down["linked_spell_id"].isin(s["spell_id"]).all()
    assert vw.loc[vw["route"] == "step_up", "linked_spell_id"].isna().all()
    linked = s.set_index("spell_id").loc[down["linked_spell_id"]]
    assert (linked["patient_id"].to_numpy() == down["patient_id"].to_numpy()).all()
    assert (linked["discharge_date"].to_numpy() == down["vw_admission_date"].to_numpy()).all()
    days = (vw["vw_discharge_date"] - vw["vw_admission_date"]).dt.days
    assert days.between(2, 14).all()


def test_simulate_economy_returns_exactly_n_spells_and_rejects_tiny_n():
    res = simulate_economy(n_spells=1_234, seed=3)
    assert set(res) == {"spells", "virtual_ward", "outcomes", "deaths", "truth"}
    assert len(res["spells"]) == 1_234 and res["spells"]["spell_id"].is_unique
    with pytest.raises(ValueError, match="n_spells"):
        simulate_economy(n_spells=10)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_spells_file_meets_the_contract_across_chunks(tmp_path, fmt):
    path = tmp_path / f"spells.{fmt}"
    write_spells_file(path, n_spells=6_001, seed=5, fmt=fmt, chunk_spells=2_500)
    s = load_table("spells", path)
    assert len(s) == 6_001
    assert s["spell_id"].is_unique
    # patients never straddle two chunks, so no patient has overlapping spells
    s = s.sort_values(["patient_id", "admission_date"])
    same = s["patient_id"].eq(s["patient_id"].shift())
    assert (s["admission_date"] > s["discharge_date"].shift())[same].all()


# ----------------------------------------------------------------- readmissions
def test_readmissions_are_later_emergency_spells_of_the_same_patient(sample):
    s, vw, t = sample["spells"], sample["virtual_ward"], sample["truth"]["readmissions"]
    s = s.assign(end_of_care=_end_of_care(s, vw))
    n = _next_spell(s)
    gap = (n["next_admission"] - n["end_of_care"]).dt.days
    emergency_next = n["next_method"].str.startswith("2").fillna(False).astype(bool)
    re = emergency_next & gap.between(0, t["window_days"] - 1)
    assert re.sum() == t["n_readmissions"] > 1_000
    assert (re & n["next_provider"].ne(n["provider_code"])).sum() == t["n_cross_provider"]
    share = t["n_cross_provider"] / t["n_readmissions"]
    assert 0.10 < share < 0.20  # the simulator sends 15% elsewhere
    fy_change = _fy(n["next_admission"]) != _fy(n["discharge_date"])
    assert (re & fy_change).sum() == t["n_across_year_end"] > 20
    # a spell admitted while the previous one (or its virtual ward stay) was open never happens
    assert (gap.dropna() >= 1).all()
    # for spells without a virtual ward stay, the shared definition (helpers.derive) agrees
    d = add_spell_fields(n[list(sample["spells"].columns)])
    plain = ~n["spell_id"].isin(vw["linked_spell_id"])
    assert (d.loc[plain, "readmit_30d"].to_numpy() == re[plain].to_numpy()).all()


def test_no_spell_after_death_and_deaths_follow_risk(sample):
    s = sample["spells"]
    n = _next_spell(s)
    died = n["discharge_method"].eq("4")
    assert died.sum() == sample["truth"]["readmissions"]["n_deaths_in_hospital"] > 0
    assert n.loc[died, "next_admission"].isna().all()
    d = add_spell_fields(s)
    old = d["age"] >= 85
    assert d.loc[old & d["emergency"], "died"].mean() > 2 * d.loc[~old & d["emergency"], "died"].mean()
    assert d.loc[d["elective"], "died"].mean() < 0.005


def test_readmission_rises_with_frailty_and_deprivation(sample):
    d = add_spell_fields(sample["spells"])
    e = d[d["emergency"] & d["readmission_eligible"]]
    assert (
        e.loc[e["frailty_score"] > 15, "readmit_30d"].mean()
        > 1.5 * e.loc[e["frailty_score"] < 5, "readmit_30d"].mean()
    )
    assert (
        e.loc[e["imd_decile"] <= 2, "readmit_30d"].mean() > e.loc[e["imd_decile"] >= 9, "readmit_30d"].mean()
    )


# ------------------------------------------------------------ length of stay
def _los_design(d: pd.DataFrame, los_model: dict, extra: list[str]) -> pd.DataFrame:
    """Dummy-coded design of the simulator's true case-mix terms of log LOS."""
    x = pd.DataFrame(index=d.index)
    x["age_band"] = np.searchsorted(AGE_EDGES, d["age"].to_numpy(), side="right").astype(str)
    x["frailty_band"] = (
        (d["frailty_score"] >= 5).astype(int) + (d["frailty_score"] > 15).astype(int)
    ).astype(str)
    x["group"] = d["primary_diagnosis"].map(los_model["diagnosis_group"])
    x["method"] = d["admission_method"]
    cats = pd.get_dummies(x.drop(columns="method").join(d[extra]), drop_first=True, dtype=float)
    # methods relative to "21" and "11" (the group dummies already carry elective versus emergency)
    method = pd.get_dummies(x["method"], prefix="method", dtype=float)
    cats = cats.join(method.drop(columns=["method_21", "method_11"], errors="ignore"))
    cats["male"] = d["sex"].eq("1").astype(float)
    cats["imd"] = (5.5 - d["imd_decile"]).astype(float)
    cats["winter"] = d["admission_date"].dt.month.isin([12, 1, 2]).astype(float)
    return sm.add_constant(cats.astype(float))


def test_glm_with_true_case_mix_recovers_outlier_provider_multipliers(sample):
    t = sample["truth"]
    vw = sample["virtual_ward"]
    d = add_spell_fields(sample["spells"])
    d = d[~d["day_case"] & ~d["spell_id"].isin(vw["linked_spell_id"])]
    x = _los_design(d, t["los_model"], ["provider_code"])
    fit = sm.GLM(d["los_days"].to_numpy(), x, family=sm.families.Poisson()).fit()
    # provider dummies are relative to T01: compare both sides centred on their mean over providers
    est = pd.Series(0.0, index=t["providers"])
    for code in t["providers"][1:]:
        est[code] = fit.params[f"provider_code_{code}"]
    true = np.log(pd.Series(t["los_provider_multiplier"]))[t["providers"]]
    est, true = est - est.mean(), true - true.mean()
    for code in t["los_outliers"]["high"] + t["los_outliers"]["low"]:
        # about three standard errors of a log multiplier from 1,500 ordinary spells
        assert abs(est[code] - true[code]) < 0.08, (code, np.exp(est[code]), np.exp(true[code]))
    # the case-mix coefficients come back too
    assert abs(fit.params["frailty_band_2"] - t["los_model"]["frailty_band"][">15"]) < 0.08
    assert abs(fit.params["winter"] - t["los_model"]["winter"]) < 0.05
    # and the outliers stand out from the other providers
    others = est.drop(t["los_outliers"]["high"] + t["los_outliers"]["low"])
    assert est[t["los_outliers"]["high"]].min() > others.max()
    assert est[t["los_outliers"]["low"]].max() < others.min()


# ------------------------------------------------------------- virtual wards
def _vw_cohort(sample) -> pd.DataFrame:
    """Adult emergency pathway spells alive at discharge; ``eligible`` where a ward was open."""
    t = sample["truth"]["virtual_ward"]
    vw = sample["virtual_ward"]
    d = add_spell_fields(sample["spells"])
    prefix = {p: name for name, ps in t["pathways"].items() for p in ps}
    d["pathway"] = d["primary_diagnosis"].str[:3].map(prefix)
    start = d["provider_code"].map({k: pd.Timestamp(v) for k, v in t["providers"].items()})
    keep = d["emergency"] & d["pathway"].notna() & (d["age"] >= 18) & ~d["died"].astype(bool)
    c = d[keep.fillna(False)].copy()
    c["eligible"] = (c["admission_date"] >= start[c.index]).fillna(False).astype(bool)
    c["treated"] = c["spell_id"].isin(vw.loc[vw["route"] == "step_down", "linked_spell_id"]).astype(float)
    return c


def test_regression_adjustment_recovers_the_virtual_ward_effect_and_naive_does_not(sample):
    t = sample["truth"]["virtual_ward"]
    c = _vw_cohort(sample)
    assert c["eligible"].sum() == t["n_eligible"] and c["treated"].sum() == t["n_treated"]
    assert (c.loc[c["treated"] == 1, "eligible"]).all()
    tr = c["treated"] == 1
    naive = c.loc[tr, "los_days"].mean() - c.loc[c["eligible"] & ~tr, "los_days"].mean()
    assert naive == pytest.approx(t["naive_acute_los_difference_days"], abs=1e-3)
    naive_all = c.loc[tr, "los_days"].mean() - c.loc[~tr, "los_days"].mean()
    assert naive_all == pytest.approx(t["naive_acute_los_difference_all_controls_days"], abs=1e-3)
    assert t["att_acute_los_days"] < -1.5 and abs(naive - t["att_acute_los_days"]) > 2.5
    # the treated really are older, frailer and less deprived
    ctrl = c["eligible"] & ~tr
    assert c.loc[tr, "frailty_score"].mean() > c.loc[ctrl, "frailty_score"].mean() + 2
    assert c.loc[tr, "age"].mean() > c.loc[ctrl, "age"].mean() + 3
    assert c.loc[tr, "imd_decile"].mean() > c.loc[ctrl, "imd_decile"].mean() + 0.3
    # outcome regression on every pathway spell (untreated spells elsewhere follow the same model)
    x = _los_design(c, sample["truth"]["los_model"], ["provider_code"])
    x["treated"] = c["treated"]
    fit = sm.GLM(c["los_days"].to_numpy(), x, family=sm.families.Poisson()).fit()
    x0 = x[tr].assign(treated=0.0)
    att = c.loc[tr, "los_days"].mean() - fit.predict(x0).mean()
    # about 0.3 days standard error with 1,200 treated spells; the naive answer is 3 days off
    assert att == pytest.approx(t["att_acute_los_days"], abs=0.8)
    # total length of stay: the ward days more than undo the saving
    vw = sample["virtual_ward"].set_index("linked_spell_id")
    ward_days = (vw["vw_discharge_date"] - vw["vw_admission_date"]).dt.days
    total = t["att_acute_los_days"] + ward_days.loc[c.loc[tr, "spell_id"]].mean()
    assert total == pytest.approx(t["att_total_los_days"], abs=1e-3)
    assert -0.05 < t["att_readmission_30d_rd"] <= 0


def test_step_up_stays_only_at_open_virtual_wards(sample):
    t = sample["truth"]["virtual_ward"]
    vw = sample["virtual_ward"]
    up = vw[vw["route"] == "step_up"]
    assert len(up) == t["n_step_up"] > 50
    start = vw["provider_code"].map({k: pd.Timestamp(v) for k, v in t["providers"].items()})
    assert (vw["vw_admission_date"] >= start).all()
    assert set(vw["pathway"]) == set(t["pathways"])


# ------------------------------------------------------------------ outcomes
def test_outcome_gains_and_costs_by_pathway_match_the_truth(sample):
    o = sample["outcomes"].assign(gain=lambda f: f["eq5d_after"] - f["eq5d_before"])
    truth = sample["truth"]["outcomes"]
    for name, tr in truth["pathways"].items():
        g = o.loc[o["pathway"] == name]
        assert len(g) == tr["n"]
        se = g["gain"].std() / np.sqrt(len(g))
        assert abs(g["gain"].mean() - tr["mean_gain"]) < 3.5 * se, name
        se_c = g["cost"].std() / np.sqrt(len(g))
        assert abs(g["cost"].mean() - tr["mean_cost"]) < 3.5 * se_c, name
    gains = {k: v["mean_gain"] for k, v in truth["pathways"].items()}
    assert (
        gains["hip replacement"]
        > gains["knee replacement"]
        > gains["groin hernia repair"]
        > gains["cataract surgery"]
        > 0
    )
    # deprivation: the most deprived start worse
    assert (
        o.loc[o["imd_decile"] <= 2, "eq5d_before"].mean()
        < o.loc[o["imd_decile"] >= 9, "eq5d_before"].mean() - 0.05
    )
    # the provider with high cost and low gain, and its opposite
    hip = o[o["pathway"].isin(["hip replacement", "knee replacement"])]
    by = hip.groupby("provider_code").agg(gain=("gain", "mean"), cost=("cost", "mean"))
    bad, good = truth["high_cost_low_gain"], truth["low_cost_high_gain"]
    assert by.loc[bad, "cost"] > by["cost"].median() * 1.1 and by.loc[bad, "gain"] < by["gain"].median()
    assert by.loc[good, "cost"] < by["cost"].median() and by.loc[good, "gain"] > by["gain"].median()


def test_national_file_in_one_chunk_is_the_same_economy_as_simulate_economy(tmp_path):
    # one chunk uses the same seeds, so the rows are the same (only the numbering differs)
    path = tmp_path / "spells.parquet"
    write_spells_file(path, n_spells=3_000, seed=9)
    national = pd.read_parquet(path)
    sample = simulate_economy(n_spells=3_000, seed=9)["spells"]
    cols = ["provider_code", "admission_date", "discharge_date", "primary_diagnosis", "age", "spell_cost"]
    dates = {"admission_date": "datetime64[s]", "discharge_date": "datetime64[s]"}
    a = national[cols].astype(dates).sort_values(cols).reset_index(drop=True)
    b = sample[cols].astype(dates).sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_the_command_writes_the_economy_in_the_format_asked_with_deaths_in_mid_stay_mode(tmp_path):
    """`handbook simulate --format parquet` is honoured for the economy, not only --spells-only,
    and the mid-stay mode writes the deaths table its evaluation reads; both load through the contract."""
    from helpers.cli import main

    out = tmp_path / "economy"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(out),
                "--spells",
                "3000",
                "--format",
                "parquet",
                "--step-down",
                "mid_stay",
            ]
        )
        == 0
    )
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "deaths.parquet",
        "outcomes.parquet",
        "spells.parquet",
        "truth.json",
        "virtual_ward.parquet",
    ]
    spells = load_table("spells", out / "spells.parquet")
    deaths = load_table("deaths", out / "deaths.parquet")
    assert len(spells) == 3000
    assert set(deaths["patient_id"]) <= set(spells["patient_id"])
    assert len(deaths) > 0
    plain = tmp_path / "plain"
    assert main(["simulate", "--out", str(plain), "--spells", "3000"]) == 0
    assert sorted(p.name for p in plain.iterdir()) == [
        "outcomes.csv",
        "spells.csv",
        "truth.json",
        "virtual_ward.csv",
    ]
