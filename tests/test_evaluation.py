"""Tests of helpers.evaluation against hand calculations, published values and known truths.

Synthetic cohorts are drawn here with a known effect on the treated, so each
estimator can be checked against the truth it should recover.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from helpers import evaluation as ev


# --------------------------------------------------------------------------- synthetic data
def synthetic_cohort(n: int = 6000, seed: int = 11, los_ratio: float = 0.7, rd: float = -0.03):
    """Confounded cohort: frailer, older patients are more often treated and stay longer.

    Returns (cohort, truth) with truth the effect on the treated implied by the
    simulation's own potential-outcome means.
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(78, 8, n).round()
    sex = rng.choice(["1", "2"], n)
    frail = rng.gamma(3, 2.5, n)
    imd = rng.integers(1, 11, n)
    pathway = rng.choice(["frailty", "heart failure", "acute respiratory infection"], n)
    month = rng.choice(["2024-01", "2024-02", "2024-03", "2024-04"], n)
    lp = -1.4 + 0.04 * (age - 78) + 0.15 * (frail - 7.5) + 0.5 * (pathway == "frailty") - 0.04 * (imd - 5)
    t = rng.binomial(1, expit(lp))
    mu0 = np.exp(1.6 + 0.02 * (age - 78) + 0.07 * (frail - 7.5) + 0.3 * (pathway == "frailty"))
    mu1 = mu0 * los_ratio
    size = 3.0
    y = np.where(
        t == 1,
        rng.negative_binomial(size, size / (size + mu1)),
        rng.negative_binomial(size, size / (size + mu0)),
    )
    p0 = expit(-1.8 + 0.03 * (age - 78) + 0.09 * (frail - 7.5))
    p1 = np.clip(p0 + rd, 0, 1)
    readm = rng.binomial(1, np.where(t == 1, p1, p0))
    df = pd.DataFrame(
        {
            "age": age,
            "sex": sex,
            "frailty_score": frail,
            "imd_decile": imd,
            "pathway": pathway,
            "month": month,
            "treated": t,
            "acute_los": y,
            "readmission_30d": readm,
        }
    )
    truth = {
        "acute_los": float((mu1 - mu0)[t == 1].mean()),
        "readmission_30d": 100 * float((p1 - p0)[t == 1].mean()),
    }
    return df, truth


@pytest.fixture(scope="module")
def fitted():
    df, truth = synthetic_cohort()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ev.estimate_effects(df, outcomes=["acute_los", "readmission_30d"], seed=3)
    return df, truth, res


# --------------------------------------------------------------------------- SMD and weights by hand
def test_smd_continuous_by_hand():
    # treated 1,2,3 (mean 2, var 1); control 2,4,6 (mean 4, var 4): -2 / sqrt(2.5)
    x = np.array([1, 2, 3, 2, 4, 6], float)
    t = np.array([1, 1, 1, 0, 0, 0])
    assert ev.standardised_mean_difference(x, t) == pytest.approx(-2 / np.sqrt(2.5))


def test_smd_binary_by_hand():
    # p1 = 2/4, p0 = 1/4: 0.25 / sqrt((0.25 + 0.1875) / 2)
    x = np.array([1, 1, 0, 0, 1, 0, 0, 0], float)
    t = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    assert ev.standardised_mean_difference(x, t) == pytest.approx(0.25 / np.sqrt(0.21875))


def test_smd_weighted_by_hand():
    # controls 0 and 10 with weights 3 and 1: weighted mean 2.5; reliability-weighted variance
    # sum w (x - m)^2 * V1 / (V1^2 - V2) = (3*6.25 + 1*56.25) * 4 / (16 - 10) = 50
    x = np.array([4.0, 6.0, 0.0, 10.0])
    t = np.array([1, 1, 0, 0])
    w = np.array([1.0, 1.0, 3.0, 1.0])
    expected = (5.0 - 2.5) / np.sqrt((2.0 + 50.0) / 2)
    assert ev.standardised_mean_difference(x, t, w, binary=False) == pytest.approx(expected)


def test_att_weights_by_hand():
    w = ev.att_weights(np.array([1, 1, 0, 0]), np.array([0.8, 0.5, 0.2, 0.5]))
    np.testing.assert_allclose(w, [1.0, 1.0, 0.25, 1.0])


def test_ipw_att_equals_stratified_estimate_with_saturated_score():
    # With one binary covariate the fitted score is the treated share in each stratum, and the
    # ATT weighting estimate equals the stratum differences averaged over the treated.
    x = np.array([0] * 6 + [1] * 6)
    t = np.array([1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
    y = np.array([5, 7, 2, 4, 3, 3, 10, 12, 11, 9, 6, 8], float)
    # stratum 0: treated mean 6, control mean 3 -> 3 (2 treated); stratum 1: 10.5 - 7 = 3.5 (4 treated)
    expected = (2 * 3 + 4 * 3.5) / 6
    out = ev.ipw_att(y, t, np.column_stack([np.ones(12), x]))
    assert out["estimate"] == pytest.approx(expected, rel=1e-6)


def test_ipw_sandwich_standard_error_matches_sampling_spread():
    # 300 replicate studies: the stacked sandwich SE should equal the spread of the estimates,
    # and the 95% intervals should cover the effect on the treated about 95% of the time.
    rng = np.random.default_rng(5)
    est, se, cover = [], [], 0
    reps = 300
    for _ in range(reps):
        n = 800
        x1, x2 = rng.normal(size=n), rng.binomial(1, 0.4, n)
        t = rng.binomial(1, expit(-0.5 + 0.8 * x1 + 0.5 * x2))
        y = 2 + 1.5 * x1 + x2 + t * (1 + 0.5 * x1) + rng.normal(size=n) * 1.5
        out = ev.ipw_att(y, t, np.column_stack([np.ones(n), x1, x2]))
        truth = 1 + 0.5 * x1[t == 1].mean()
        est.append(out["estimate"])
        se.append(out["se"])
        cover += out["ci_lower"] <= truth <= out["ci_upper"]
    assert np.mean(se) / np.std(est) == pytest.approx(1.0, abs=0.15)
    assert 0.91 <= cover / reps <= 0.98


# --------------------------------------------------------------------------- matching
def test_matching_caliper_and_no_replacement():
    # logit scores: treated 0.0, 0.02, 3.0; controls 0.01, 0.5, 10.0
    lp = np.array([0.0, 0.02, 3.0, 0.01, 0.5, 10.0])
    t = np.array([1, 1, 1, 0, 0, 0])
    sd = np.sqrt((np.var(lp[:3], ddof=1) + np.var(lp[3:], ddof=1)) / 2)
    pairs = ev.match_nearest(lp, t, caliper_sd=0.2, seed=1).set_index("treated_pos")
    assert pairs["caliper"].iloc[0] == pytest.approx(0.2 * sd)
    # without replacement, 0.0 and 0.02 cannot both take control 0.01: one takes it, the other 0.5
    assert sorted(pairs.loc[[0, 1], "control_pos"]) == [3, 4]
    # 3.0 is 2.5 from 0.5 and 7 from 10: outside a caliper of 0.2 SD (about 1.0)
    assert pairs.loc[2, "control_pos"] == -1
    # a wide caliper matches it to the only control left
    wide = ev.match_nearest(lp, t, caliper_sd=10, seed=1).set_index("treated_pos")
    assert (wide["control_pos"] >= 0).all() and len(set(wide["control_pos"])) == 3


def test_matching_takes_nearest_available_both_sides():
    lp = np.array([1.0, 0.0, 0.9, 1.2, 5.0])
    t = np.array([1, 0, 0, 0, 0])
    pairs = ev.match_nearest(lp, t, caliper_sd=5)
    assert pairs.loc[0, "control_pos"] == 2 and pairs.loc[0, "distance"] == pytest.approx(0.1)


def test_matched_difference_by_hand():
    y = np.array([5.0, 7.0, 9.0, 4.0, 4.0, 5.0, 100.0])
    pairs = pd.DataFrame({"treated_pos": [0, 1, 2], "control_pos": [3, 4, 5], "distance": 0.0})
    out = ev.matched_difference(y, pairs)
    d = np.array([1.0, 3.0, 4.0])
    assert out["estimate"] == pytest.approx(d.mean())
    assert out["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))


# --------------------------------------------------------------------------- regression
def test_regression_without_covariates_reproduces_crude_measures():
    rng = np.random.default_rng(2)
    t = rng.binomial(1, 0.4, 500)
    yb = rng.binomial(1, np.where(t == 1, 0.2, 0.3))
    yc = rng.poisson(np.where(t == 1, 3.0, 5.0))
    X = np.ones((500, 1))
    b = ev.regression_adjusted(yb, t, X, "binary")
    p1, p0 = yb[t == 1].mean(), yb[t == 0].mean()
    assert b["estimate"] == pytest.approx(p1 - p0, abs=1e-8)
    assert b["ratio"] == pytest.approx(p1 / (1 - p1) / (p0 / (1 - p0)), rel=1e-6)
    c = ev.regression_adjusted(yc, t, X, "count")
    assert c["estimate"] == pytest.approx(yc[t == 1].mean() - yc[t == 0].mean(), abs=1e-8)
    assert c["ratio"] == pytest.approx(yc[t == 1].mean() / yc[t == 0].mean(), rel=1e-6)


# --------------------------------------------------------------------------- the whole table on known truth
def test_adjusted_estimates_recover_truth_and_naive_does_not(fitted):
    _, truth, res = fitted
    e = res.effects.set_index(["outcome", "method"])
    for method in ["regression", "ipw", "matching"]:
        row = e.loc[("acute_los", method)]
        assert row["ci_lower"] <= truth["acute_los"] <= row["ci_upper"], method
        row = e.loc[("readmission_30d", method)]
        assert row["ci_lower"] <= truth["readmission_30d"] <= row["ci_upper"], method
    naive = e.loc[("acute_los", "naive")]
    assert not naive["ci_lower"] <= truth["acute_los"] <= naive["ci_upper"]
    assert list(res.effects.columns[:8]) == [
        "outcome",
        "method",
        "estimate",
        "ci_lower",
        "ci_upper",
        "p_value",
        "n_treated",
        "n_control",
    ]
    assert set(e.loc["readmission_30d", "unit"]) == {"percentage points"}


def test_balance_improves_and_overlap_counts(fitted):
    df, _, res = fitted
    b = res.balance.set_index("covariate")
    assert b.loc["frailty_score", "smd_before"] > 0.3
    assert (b["smd_after_ipw"].abs() < 0.1).all()
    assert (b["smd_after_matching"].abs() < 0.1).all()
    o = res.overlap
    assert o.loc[o["group"] == "treated", "count"].sum() == df["treated"].sum()
    assert o.groupby("group")["share"].sum().to_numpy() == pytest.approx([1.0, 1.0])


def test_balance_warns_above_threshold():
    df, _ = synthetic_cohort(n=600, seed=4)
    ps = ev.propensity_scores(df, ["age"])  # leaves frailty unadjusted
    pairs = ev.match_nearest(logit(ps.to_numpy()), df["treated"].to_numpy())
    with pytest.warns(UserWarning, match="SMD"):
        b = ev.balance_table(df, ["age", "frailty_score"], "treated", ps, pairs)
    assert bool(b.set_index("covariate").loc["frailty_score", "imbalanced"])


def test_design_matrix_refuses_missing_values():
    df = pd.DataFrame({"age": [70, None, 80], "sex": ["1", "2", "1"]})
    with pytest.raises(ValueError, match="'age' has 1 missing"):
        ev.design_matrix(df, ["age", "sex"])


# --------------------------------------------------------------------------- E-value
def test_e_value_vanderweele_ding_worked_example():
    # VanderWeele & Ding (2017): RR 3.9 (95% CI 1.8 to 8.7) gives E-values 7.26 and 3.0
    out = ev.e_value(3.9, 1.8, 8.7, measure="rr").iloc[0]
    assert out["e_value"] == pytest.approx(7.26, abs=0.005)
    assert out["e_value_ci"] == pytest.approx(3.0, abs=0.005)


def test_e_value_protective_and_null_crossing():
    # RR 0.8: 1/0.8 = 1.25 -> 1.25 + sqrt(1.25 * 0.25)
    assert ev.e_value_rr(0.8) == pytest.approx(1.25 + np.sqrt(0.3125))
    out = ev.e_value(0.8, 0.6, 1.1).iloc[0]
    assert out["e_value_ci"] == 1.0


def test_e_value_difference_in_means_conversion():
    # d = 1.0 / 2.0 = 0.5, se_d = 0.2 / 2 = 0.1: RR = exp(0.91 * 0.5), lower exp(0.455 - 0.178)
    out = ev.e_value(1.0, 0.6, 1.4, measure="difference", sd=2.0, se=0.2).iloc[0]
    rr = np.exp(0.455)
    assert out["rr"] == pytest.approx(rr)
    assert out["e_value"] == pytest.approx(rr + np.sqrt(rr * (rr - 1)))
    lo = np.exp(0.455 - 0.178)
    assert out["e_value_ci"] == pytest.approx(lo + np.sqrt(lo * (lo - 1)))
    orc = ev.e_value(4.0, 2.25, 9.0, measure="or_common").iloc[0]
    assert orc["rr"] == pytest.approx(2.0) and orc["rr_ci_lower"] == pytest.approx(1.5)


# --------------------------------------------------------------------------- provider level
def test_monthly_bed_days_split_across_months():
    spells = pd.DataFrame(
        {
            "provider_code": ["A", "A", "B"],
            "admission_date": pd.to_datetime(["2024-01-30", "2024-02-10", "2024-02-01"]),
            "discharge_date": pd.to_datetime(["2024-02-02", "2024-02-10", "2024-03-01"]),
        }
    )
    m = ev.monthly_bed_days(spells).set_index(["provider_code", "month"])
    # A: nights of 30 and 31 Jan, then 1 Feb; the same-day spell adds none. B: all 29 nights of Feb 2024
    assert m.loc[("A", pd.Timestamp("2024-01-01")), "bed_days"] == 2
    assert m.loc[("A", pd.Timestamp("2024-02-01")), "bed_days"] == 1
    assert m.loc[("A", pd.Timestamp("2024-02-01")), "admissions"] == 1
    assert m.loc[("B", pd.Timestamp("2024-02-01")), "bed_days"] == 29
    assert m.loc[("B", pd.Timestamp("2024-03-01")), "bed_days"] == 0


def _series(level=-40.0, slope=-2.0, noise=0.0, seed=0, n=36, k0=20):
    rng = np.random.default_rng(seed)
    month = pd.date_range("2022-04-01", periods=n, freq="MS")
    time = np.arange(n)
    post = (time >= k0).astype(float)
    y = (
        600
        + 1.5 * time
        + level * post
        + slope * (time - k0) * post
        + 30 * np.sin(2 * np.pi * month.month / 12)
    )
    y = y + noise * rng.standard_normal(n)
    return pd.DataFrame({"month": month, "bed_days": y}), month[k0]


def test_its_recovers_exact_level_and_slope_change():
    s, start = _series()
    coef, fitted = ev.interrupted_time_series(s, start)
    c = coef.set_index("term")["estimate"]
    assert c["level_change"] == pytest.approx(-40.0, abs=1e-8)
    assert c["slope_change"] == pytest.approx(-2.0, abs=1e-8)
    assert c["baseline_slope"] == pytest.approx(1.5, abs=1e-8)
    # effect at the last month = level + slope x 15 months
    assert c["effect_last_month"] == pytest.approx(-40 - 2 * 15, abs=1e-8)
    assert (fitted["fitted"] - fitted["counterfactual"]).iloc[-1] == pytest.approx(-70, abs=1e-8)


def test_its_interval_covers_truth_with_noise():
    s, start = _series(noise=10.0, seed=7)
    coef, _ = ev.interrupted_time_series(s, start)
    row = coef.set_index("term").loc["level_change"]
    assert row["ci_lower"] <= -40 <= row["ci_upper"]


def test_difference_in_differences_by_hand():
    month = pd.date_range("2023-01-01", periods=8, freq="MS")
    season = np.array([10, 20, 0, -5, 5, 15, -10, 0], float)
    rows = []
    for unit, base, eff in (("T", 100, -12.0), ("C1", 80, 0.0), ("C2", 60, 0.0)):
        for i, m in enumerate(month):
            rows.append(
                {"provider_code": unit, "month": m, "bed_days": base + season[i] + (eff if i >= 4 else 0)}
            )
    est, series = ev.difference_in_differences(pd.DataFrame(rows), "T", month[4], ["C1", "C2"])
    # gap is 30 before and 18 after: DiD -12
    assert est.set_index("term").loc["did", "estimate"] == pytest.approx(-12.0)
    assert series["gap"].iloc[0] == pytest.approx(30.0)


# --------------------------------------------------------------------------- the sample: simulator truth
@pytest.fixture(scope="module")
def sample_effects():
    import json

    from helpers import SAMPLE_DIR, io
    from helpers.cohort import build_cohort

    truth_path = SAMPLE_DIR / "truth.json"
    if not truth_path.exists():
        pytest.skip("sample data not written yet")
    truth = json.loads(truth_path.read_text())["virtual_ward"]
    cohort = build_cohort(
        io.load_table("spells"), io.load_table("virtual_ward"), covariates=ev.DEFAULT_COVARIATES
    ).spells
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ev.estimate_effects(cohort, outcomes=["acute_los", "total_los", "readmission_30d"])
    return truth, res.effects.set_index(["outcome", "method"])


def test_sample_adjusted_estimates_recover_true_los_effect_naive_does_not(sample_effects):
    truth, e = sample_effects
    att = truth["att_acute_los_days"]
    for method in ["ipw", "matching"]:
        row = e.loc[("acute_los", method)]
        assert row["ci_lower"] <= att <= row["ci_upper"], (method, row["estimate"], att)
    naive = e.loc[("acute_los", "naive")]
    assert not naive["ci_lower"] <= att <= naive["ci_upper"]
    # total LOS: days moved to the virtual ward are not days saved
    row = e.loc[("total_los", "ipw")]
    assert row["ci_lower"] <= truth["att_total_los_days"] <= row["ci_upper"]


def test_sample_readmission_estimate_consistent_with_truth(sample_effects):
    truth, e = sample_effects
    rd = 100 * truth["att_readmission_30d_rd"]  # percentage points
    for method in ["regression", "ipw", "matching"]:
        row = e.loc[("readmission_30d", method)]
        assert row["ci_lower"] <= rd <= row["ci_upper"], (method, row["estimate"], rd)


def test_before_after_by_hand():
    s = pd.DataFrame(
        {"month": pd.date_range("2024-01-01", periods=6, freq="MS"), "bed_days": [10, 20, 30, 5, 5, 8]}
    )
    out = ev.before_after(s, "2024-04-15", months=2).iloc[0]
    assert out["before_mean"] == 25 and out["after_mean"] == 5 and out["difference"] == -20
    with pytest.raises(ValueError, match="3 months"):
        ev.before_after(s, "2024-03-01", months=3)


def test_e_value_for_effect_converts_days_and_risk_differences():
    cohort = pd.DataFrame(
        {
            "treated": [1, 1, 0, 0, 0, 0],
            "acute_los": [2, 4, 3, 5, 7, 9],
            "readmission_30d": [0, 1, 0, 0, 1, 1],
        }
    )
    effects = pd.DataFrame(
        [
            {
                "outcome": "acute_los",
                "method": "ipw",
                "estimate": -2.0,
                "ci_lower": -3.0,
                "ci_upper": -1.0,
                "se": 0.5,
                "unit": "days",
            },
            {
                "outcome": "readmission_30d",
                "method": "ipw",
                "estimate": -25.0,
                "ci_lower": -40.0,
                "ci_upper": 10.0,
                "se": 12.0,
                "unit": "percentage points",
            },
        ]
    )
    days = ev.e_value_for_effect(effects, cohort, "acute_los").iloc[0]
    sd = np.std([3, 5, 7, 9], ddof=1)  # controls' SD, 2.582
    assert days["rr"] == pytest.approx(np.exp(0.91 * -2.0 / sd))
    risk = ev.e_value_for_effect(effects, cohort, "readmission_30d").iloc[0]
    # control risk 0.5; RD -0.25 -> RR 0.5 -> E-value 2 + sqrt(2); interval crosses 1 -> 1
    assert risk["rr"] == pytest.approx(0.5) and risk["e_value"] == pytest.approx(2 + np.sqrt(2))
    assert risk["e_value_ci"] == 1.0


def test_finance_inputs_scale_vw_days_to_matched_spells():
    cohort = pd.DataFrame({"treated": [1, 1, 1, 1, 0], "vw_days": [4, 6, 8, 2, 0]})
    effects = pd.DataFrame(
        [
            {
                "outcome": "acute_los",
                "method": "matching",
                "estimate": -1.0,
                "ci_lower": -2.0,
                "ci_upper": 0.0,
                "n_treated": 2,
            }
        ]
    )
    got = ev.finance_inputs(effects, cohort, method="matching")
    assert got["treated_spells"] == 2 and got["vw_patient_days"] == pytest.approx(20 * 2 / 4)
    assert got["effect_ci"] == (-2.0, 0.0)


def test_balanced_provider_maximises_the_shorter_side():
    monthly = pd.DataFrame({"month": pd.date_range("2023-04-01", periods=24, freq="MS")})
    periods = pd.DataFrame(
        {
            "provider_code": ["A", "B", "C"],
            "vw_start": pd.to_datetime(["2023-05-01", "2024-03-10", "2025-01-01"]),
        }
    )
    # A: 1 month before; B: 11 before, 13 after; C: 21 before, 3 after
    assert ev.balanced_provider(periods, monthly) == "B"


def _its_coverage(phi: float, reps: int, seed: int, n: int = 24) -> float:
    """Share of simulated series whose 95% interval for the level change holds the truth (-50)."""
    rng = np.random.default_rng(seed)
    month = pd.date_range("2023-04-01", periods=n, freq="MS")
    t = np.arange(n, dtype=float)
    k0 = n // 2
    post = (t >= k0).astype(float)
    base = (
        1000
        + 2 * t
        - 50 * post
        - 3 * np.where(post == 1, t - k0, 0)
        + 40 * np.sin(2 * np.pi * month.month / 12)
    )
    hits = 0
    for _ in range(reps):
        u = rng.normal(0, 30, n)
        e = np.zeros(n)
        for i in range(n):
            e[i] = (phi * e[i - 1] if i else 0.0) + u[i]
        coef, _ = ev.interrupted_time_series(pd.DataFrame({"month": month, "bed_days": base + e}), month[k0])
        row = coef.set_index("term").loc["level_change"]
        hits += row["ci_lower"] <= -50 <= row["ci_upper"]
    return hits / reps


def test_its_interval_coverage_in_repeated_simulation():
    """24-month series, 100 each: independent errors and AR(1) errors of 0.6 (Newey-West gave 70-76%)."""
    assert _its_coverage(0.0, 100, seed=1) >= 0.90
    assert _its_coverage(0.6, 100, seed=3) >= 0.90


def test_regression_fit_agrees_with_statsmodels_glm():
    """The IRLS of regression_adjusted (normal equations, for national size) gives statsmodels' GLM
    coefficients and HC0 covariance: negative binomial (log link, not canonical) and logistic."""
    import statsmodels.api as sm

    rng = np.random.default_rng(7)
    n = 3000
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n), rng.uniform(0, 5, n)])
    y_count = rng.negative_binomial(2, 2 / (2 + np.exp(0.5 + 0.3 * X[:, 1] - 0.2 * X[:, 2])))
    y_binary = (rng.random(n) < 1 / (1 + np.exp(-(-1 + 0.8 * X[:, 1] + 0.1 * X[:, 3])))).astype(float)
    for y, family in (
        (y_count.astype(float), sm.families.NegativeBinomial(alpha=0.5)),
        (y_binary, sm.families.Binomial()),
    ):
        fit = sm.GLM(y, X, family=family).fit(cov_type="HC0")
        beta = ev._glm_irls(y, X, family)
        np.testing.assert_allclose(beta, fit.params, rtol=1e-9, atol=1e-12)
        t = X[:, 2]
        kind = "count" if isinstance(family, sm.families.NegativeBinomial) else "binary"
        r = ev.regression_adjusted(y, t, X[:, [0, 1, 3]], kind)
        Xt = np.column_stack([t, X[:, [0, 1, 3]]])
        if kind == "count":
            mu0 = sm.GLM(y, Xt, family=sm.families.Poisson()).fit().fittedvalues
            family = sm.families.NegativeBinomial(alpha=ev._nb_alpha(y, mu0))
        ref = sm.GLM(y, Xt, family=family).fit(cov_type="HC0")
        assert r["ratio"] == pytest.approx(float(np.exp(ref.params[0])), rel=1e-9)
        ci = np.exp(ref.params[0] + np.array([-1, 1]) * 1.959963984540054 * ref.bse[0])
        assert (r["ratio_ci_lower"], r["ratio_ci_upper"]) == pytest.approx(tuple(ci), rel=1e-9)


# --------------------------------------------------------------------------- fast paths against the direct computations
def _simulated_design(n: int = 2000, seed: int = 3):
    """A confounded design: treatment and outcomes depend on x1 and a three-level factor; effect on the
    treated 1.5 (continuous), a count and a binary outcome."""
    rng = np.random.default_rng(seed)
    x1, level = rng.normal(size=n), rng.integers(0, 3, n)
    X = np.column_stack([np.ones(n), x1, level == 1, level == 2]).astype(float)
    t = rng.binomial(1, expit(-0.6 + 0.7 * x1 + 0.5 * (level == 2))).astype(float)
    y = 2 + x1 + 0.5 * (level == 1) + 1.5 * t + rng.normal(size=n)
    count = rng.poisson(np.exp(0.8 + 0.3 * x1 - 0.2 * t)).astype(float)
    binary = rng.binomial(1, expit(-1 + 0.5 * x1 + 0.4 * t)).astype(float)
    return X, t, y, count, binary


def test_glm_hc0_covariance_agrees_with_statsmodels():
    """The HC0 covariance from the family's score and observed Hessian is statsmodels' GLM HC0."""
    import statsmodels.api as sm

    X, t, _, count, binary = _simulated_design()
    Xt = np.column_stack([t, X])
    for y, family in ((count, sm.families.NegativeBinomial(alpha=0.3)), (binary, sm.families.Binomial())):
        ref = sm.GLM(y, Xt, family=family).fit(cov_type="HC0")
        beta = ev._glm_irls(y, Xt, family)
        np.testing.assert_allclose(ev._glm_hc0_covariance(y, Xt, beta, family), ref.cov_params(), rtol=1e-8)


def _ipw_reference(y, t, X, e, cluster):
    """The stacked sandwich of ipw_att written out directly: psi summed within clusters by pandas' groupby."""
    n, p = X.shape
    w0 = (1 - t) * e / (1 - e)
    mu1, mu0 = y[t == 1].mean(), np.sum(w0 * y) / np.sum(w0)
    psi = np.column_stack([(t - e)[:, None] * X, t * (y - mu1), w0 * (y - mu0)])
    psi = pd.DataFrame(psi).groupby(cluster).sum().to_numpy()
    A = np.zeros((p + 2, p + 2))
    A[:p, :p] = -(X * (e * (1 - e))[:, None]).T @ X / n
    A[p, p], A[p + 1, :p], A[p + 1, p + 1] = -t.mean(), (w0 * (y - mu0)) @ X / n, -w0.mean()
    Ainv = np.linalg.pinv(A)
    V = Ainv @ (psi.T @ psi / n) @ Ainv.T / n
    return mu1 - mu0, float(np.sqrt(V[p, p] + V[p + 1, p + 1] - 2 * V[p, p + 1]))


def test_ipw_and_aipw_cluster_sums_agree_with_pandas_groupby_and_lstsq():
    """IPW and AIPW from the shared parts (sparse cluster sums, factored controls) equal the direct formulas."""
    X, t, y, _, _ = _simulated_design()
    e = ev._logistic_fitted(t, X)
    cluster = np.random.default_rng(1).integers(0, 700, len(t))  # about three rows a cluster
    est, se = _ipw_reference(y, t, X, e, cluster)
    out = ev.ipw_att(y, t, X, propensity=e, cluster=cluster)
    assert (out["estimate"], out["se"]) == pytest.approx((est, se), rel=1e-10)
    beta, *_ = np.linalg.lstsq(X[t == 0], y[t == 0], rcond=None)
    est, se = _ipw_reference(y - X @ beta, t, X, e, cluster)
    out = ev.aipw_att(y, t, X, propensity=e, cluster=cluster)
    assert (out["estimate"], out["se"]) == pytest.approx((est, se), rel=1e-10)
    assert out["estimate"] == pytest.approx(1.5, abs=0.15)  # the simulated effect on the treated


def test_clustering_exact_duplicates_gives_the_unclustered_standard_error():
    """Each row twice, the two copies one cluster: same estimate and the same standard error as the
    original rows unclustered (the cluster sums double psi, B doubles and n doubles)."""
    X, t, y, _, _ = _simulated_design(800)
    once = ev.ipw_att(y, t, X)
    twice = ev.ipw_att(
        np.tile(y, 2), np.tile(t, 2), np.tile(X, (2, 1)), cluster=np.tile(np.arange(len(t)), 2)
    )
    assert (twice["estimate"], twice["se"]) == pytest.approx((once["estimate"], once["se"]), rel=1e-9)


def test_control_least_squares_is_lstsq_also_when_rank_deficient():
    """The factored control design gives np.linalg.lstsq's solution, the minimum-norm one included."""
    X, t, y, count, _ = _simulated_design()
    X0 = X[t == 0]
    collinear = np.column_stack([X0, X0[:, 2] + X0[:, 3]])  # a column that adds nothing
    for design in (X0, collinear):
        controls = ev._ControlLeastSquares(design)
        for outcome in (y[t == 0], count[t == 0]):
            ref, *_ = np.linalg.lstsq(design, outcome, rcond=None)
            np.testing.assert_allclose(controls.coefficients(outcome), ref, rtol=1e-8, atol=1e-12)


def test_full_rank_columns_are_those_of_the_pivoted_qr_of_x():
    """Pivoting R of X = QR keeps the columns scipy's pivoted QR of X keeps (collinear columns dropped)."""
    from scipy.linalg import qr

    X, *_ = _simulated_design()
    X = np.column_stack([X, X[:, 1] * 2, np.zeros(len(X)), 1 - X[:, 2] - X[:, 3]])
    _, R, piv = qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    expected = np.sort(piv[: int((d > 1e-9 * d[0]).sum())])
    got = ev.full_rank_columns(X)
    np.testing.assert_array_equal(got, expected)
    assert len(got) == 4
