"""helpers.value: the value equation, quadrant, equity, three Es, allocative value and CIP plans.

Every expected number is worked by hand on a tiny table (the working is in the
comments), taken from a peer package (scipy, statsmodels), or is a truth of the
simulator in data/sample/truth.json.
"""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

matplotlib.use("Agg")

from helpers import SAMPLE_DIR
from helpers import value as hv
from helpers.io import InputError


def outcomes_frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (pathway, provider, before, after, cost[, age, sex, imd])."""
    out = []
    for i, r in enumerate(rows):
        pathway, provider, before, after, cost, *rest = r
        age, sex, imd = (rest + [70, "2", pd.NA][len(rest):])[:3]
        out.append({
            "outcome_id": f"o{i}", "patient_id": f"p{i}", "provider_code": provider, "pathway": pathway,
            "procedure_date": pd.Timestamp("2024-06-01"), "age": age, "sex": sex, "imd_decile": imd,
            "eq5d_before": before, "eq5d_after": after, "cost": cost,
        })
    df = pd.DataFrame(out)
    df["imd_decile"] = df["imd_decile"].astype("Int64")
    return df


# Three hip patients at provider A:
#   gains 0.4, 0.2, 0.6 -> mean 0.4, sd sqrt((0 + .04 + .04)/2) = 0.2
#   costs 5000, 7000, 6000 -> mean 6000, sd sqrt((1e6 + 1e6 + 0)/2) = 1000
#   covariance: ((-1000)(0) + (1000)(-0.2) + 0(0.2)) / 2 = -100
TINY = outcomes_frame([
    ("hip", "A", 0.2, 0.6, 5000.0),
    ("hip", "A", 0.4, 0.6, 7000.0),
    ("hip", "A", 0.3, 0.9, 6000.0),
    ("cataract", "A", 0.7, 0.8, 900.0),
    ("cataract", "A", 0.6, 0.8, 1100.0),
])
T975_2 = 4.302652729749464  # t quantile, 2 degrees of freedom (statistical tables)


# --------------------------------------------------------------------------- value equation
def test_pathway_value_means_intervals_and_ratio_by_hand():
    t = hv.pathway_value(TINY).set_index("pathway")
    hip = t.loc["hip"]
    assert hip["n"] == 3
    assert hip["total_cost"] == pytest.approx(18_000)
    assert hip["mean_cost"] == pytest.approx(6000)
    assert hip["mean_gain"] == pytest.approx(0.4)
    half_cost = T975_2 * 1000 / math.sqrt(3)  # 2,484.14
    assert hip["cost_ci_lower"] == pytest.approx(6000 - half_cost)
    assert hip["cost_ci_upper"] == pytest.approx(6000 + half_cost)
    half_gain = T975_2 * 0.2 / math.sqrt(3)  # 0.4968
    assert hip["gain_ci_lower"] == pytest.approx(0.4 - half_gain)
    assert hip["gain_ci_upper"] == pytest.approx(0.4 + half_gain)
    assert hip["cost_per_unit_gain"] == pytest.approx(15_000)  # 6000 / 0.4
    assert hip["share_improved"] == pytest.approx(1.0)
    assert hip["mean_before"] == pytest.approx(0.3) and hip["mean_after"] == pytest.approx(0.7)
    # the gain interval crosses zero, so Fieller's set is unbounded: no interval
    assert math.isnan(hip["cpug_ci_lower"]) and math.isnan(hip["cpug_ci_upper"])
    cat = t.loc["cataract"]
    assert cat["mean_gain"] == pytest.approx(0.15) and cat["cost_per_unit_gain"] == pytest.approx(1000 / 0.15)


def test_cost_per_unit_gain_is_missing_when_nobody_gains():
    df = outcomes_frame([("knee", "A", 0.5, 0.5, 100.0), ("knee", "A", 0.6, 0.5, 100.0)])
    row = hv.pathway_value(df).iloc[0]
    assert row["mean_gain"] == pytest.approx(-0.05)
    assert math.isnan(row["cost_per_unit_gain"])
    assert row["share_improved"] == 0


def test_fieller_with_a_known_denominator_is_the_interval_of_the_numerator_scaled():
    # var_den = cov = 0: roots are (m_c ± t sqrt(v_c / n)) / m_g
    n, mc, mg, vc = 30, 6000.0, 0.4, 1_000_000.0
    t = stats.t.ppf(0.975, n - 1)
    lo, hi = hv.fieller_ci(mc, mg, vc, 0.0, 0.0, n)
    assert lo == pytest.approx((mc - t * math.sqrt(vc / n)) / mg)
    assert hi == pytest.approx((mc + t * math.sqrt(vc / n)) / mg)


def test_fieller_limits_solve_fiellers_equation():
    n, mc, mg, vc, vg, cov = 30, 6000.0, 0.4, 1_000_000.0, 0.04, -100.0
    t2 = stats.t.ppf(0.975, n - 1) ** 2
    lo, hi = hv.fieller_ci(mc, mg, vc, vg, cov, n)
    for r in (lo, hi):
        assert (mc - r * mg) ** 2 == pytest.approx(t2 * (vc - 2 * r * cov + r * r * vg) / n)
    assert lo < mc / mg < hi
    # worked by hand with t(29) = 2.045230: a = 0.16 - t²(0.04)/30 = 0.154423,
    # b = -2(2400 + t²(100)/30) = -4827.886, c = 36e6 - t²(1e6)/30 = 35,860,568,
    # b² - 4ac = 1,157,742 -> roots (4827.886 ∓ 1075.98) / 0.308845 = 12,148 and 19,116
    assert lo == pytest.approx(12_148.2, abs=0.5) and hi == pytest.approx(19_115.9, abs=0.5)


def test_missing_cost_is_an_error_naming_column_and_row():
    df = TINY.copy()
    df.loc[3, "cost"] = np.nan
    with pytest.raises(InputError, match=r"column 'cost'.*rows 5"):
        hv.pathway_value(df)
    with pytest.raises(InputError, match="eq5d_after"):
        hv.pathway_value(TINY.drop(columns="eq5d_after"))


# --------------------------------------------------------------------------- case-mix adjustment
# One pathway, same age and sex; baseline in a low band (0.3) or a high band (0.7).
#   low band:  A gains 0.5, 0.5 (costs 1000, 1000); B gains 0.3 (cost 1600)
#   high band: A gains 0.1 (cost 2000);             B gains 0.2, 0.2 (costs 2600, 2600)
# Cell means: low gain 1.3/3, high gain 0.5/3; low cost 1200, high cost 2400.
# Pathway means: gain 1.8/6 = 0.3, cost 10800/6 = 1800.
# A: observed gain 1.1/3, expected (2(1.3/3) + 0.5/3)/3 = 3.1/9 -> adjusted 0.3 + 1.1/3 - 3.1/9 = 2.9/9
#    observed cost 4000/3, expected (2400 + 2400)/3 = 1600 -> ratio 5/6, adjusted 1500
# B: observed gain 0.7/3, expected (1.3/3 + 1.0/3)/3 = 2.3/9 -> adjusted 0.3 - 0.2/9 = 2.5/9
#    observed cost 6800/3, expected (1200 + 4800)/3 = 2000 -> ratio 17/15, adjusted 2040
CASEMIX = outcomes_frame([
    ("hip", "A", 0.3, 0.8, 1000.0), ("hip", "A", 0.3, 0.8, 1000.0), ("hip", "B", 0.3, 0.6, 1600.0),
    ("hip", "A", 0.7, 0.8, 2000.0), ("hip", "B", 0.7, 0.9, 2600.0), ("hip", "B", 0.7, 0.9, 2600.0),
])


def test_provider_value_indirect_standardisation_by_hand():
    t = hv.provider_value(CASEMIX).set_index("provider_code")
    assert t.loc["A", "expected_gain"] == pytest.approx(3.1 / 9)
    assert t.loc["A", "adjusted_gain"] == pytest.approx(2.9 / 9)
    assert t.loc["B", "adjusted_gain"] == pytest.approx(2.5 / 9)
    assert t.loc["A", "cost_ratio"] == pytest.approx(5 / 6)
    assert t.loc["A", "adjusted_cost"] == pytest.approx(1500)
    assert t.loc["B", "adjusted_cost"] == pytest.approx(2040)
    assert t.loc["A", "adjusted_cost_per_unit_gain"] == pytest.approx(1500 / (2.9 / 9))
    # raw means are unadjusted
    assert t.loc["A", "mean_gain"] == pytest.approx(1.1 / 3)
    # residuals of A's gains: 0.5 - 1.3/3 (twice), 0.1 - 0.5/3 -> interval from their sd
    res = np.array([0.5 - 1.3 / 3, 0.5 - 1.3 / 3, 0.1 - 0.5 / 3])
    half = T975_2 * res.std(ddof=1) / math.sqrt(3)
    assert t.loc["A", "adjusted_gain_ci_upper"] == pytest.approx(2.9 / 9 + half)


def test_expected_values_equal_row_level_ols_from_statsmodels():
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(7)
    n = 400
    df = pd.DataFrame({
        "outcome_id": [f"o{i}" for i in range(n)], "patient_id": "p",
        "provider_code": rng.choice(["A", "B", "C"], n), "pathway": "hip",
        "age": rng.integers(40, 95, n), "sex": rng.choice(["1", "2"], n),
        "eq5d_before": rng.uniform(-0.5, 0.99, n),
    })
    df["eq5d_after"] = np.clip(df["eq5d_before"] + rng.normal(0.3, 0.2, n), -0.594, 1)
    df["cost"] = rng.gamma(10, 600, n)
    got = hv.expected_values(df)
    d = df.assign(gain=df["eq5d_after"] - df["eq5d_before"],
                  age_band=hv.age_band(df["age"]), base=hv.baseline_band(df["eq5d_before"]))
    for y, col in (("gain", "expected_gain"), ("cost", "expected_cost")):
        fit = smf.ols(f"{y} ~ C(age_band) + C(sex) + C(base)", data=d).fit()
        np.testing.assert_allclose(got[col].to_numpy(), fit.fittedvalues.to_numpy(), rtol=1e-9, atol=1e-9)


def test_bands():
    assert list(hv.age_band(pd.Series([44, 45, 84, 85, 120]))) == ["0-44", "45-54", "75-84", "85+", "85+"]
    assert list(hv.baseline_band(pd.Series([-0.594, 0.0, 0.05, 1.0]))) == [
        "(-0.601, 0.0]", "(-0.601, 0.0]", "(0.0, 0.2]", "(0.8, 1.0]"]


# --------------------------------------------------------------------------- quadrant
def _provider_table(rows):
    """rows: (provider, n, gain, cost); intervals ±0.01 gain and ±£50 cost."""
    return pd.DataFrame([{
        "pathway": "hip", "provider_code": p, "n": n,
        "adjusted_gain": g, "adjusted_gain_ci_lower": g - 0.01, "adjusted_gain_ci_upper": g + 0.01,
        "adjusted_cost": c, "adjusted_cost_ci_lower": c - 50, "adjusted_cost_ci_upper": c + 50,
    } for p, n, g, c in rows])


def test_quadrant_medians_labels_and_small_providers():
    # medians over A-D (E is too small): gain median(0.30,0.40,0.35,0.20) = 0.325, cost median(5000,6000,7000,5500) = 5750
    t = hv.quadrant(_provider_table([
        ("A", 100, 0.30, 5000), ("B", 100, 0.40, 6000), ("C", 100, 0.35, 7000),
        ("D", 100, 0.20, 5500), ("E", 5, 0.90, 100),
    ]), min_patients=30).set_index("provider_code")
    assert t["median_gain"].iloc[0] == pytest.approx(0.325)
    assert t["median_cost"].iloc[0] == pytest.approx(5750)
    assert t.loc["A", "quadrant"] == "lower gain, lower cost"
    assert t.loc["B", "quadrant"] == "higher gain, higher cost"
    assert t.loc["C", "quadrant"] == "higher gain, higher cost"
    assert t.loc["D", "quadrant"] == "lower gain, lower cost"
    assert t.loc["E", "quadrant"] == "too few patients"
    # A: gain interval 0.29-0.31 excludes 0.325; cost 4950-5050 excludes 5750
    assert t.loc["A", "gain_clear"] and t.loc["A", "cost_clear"]
    # C: gain interval 0.34-0.36 excludes 0.325 too
    assert bool(t.loc["C", "gain_clear"])
    assert not t.loc["E", "gain_clear"]


def test_quadrant_worse_value_and_its_sentence():
    t = hv.quadrant(_provider_table([
        ("A", 100, 0.40, 5000), ("B", 100, 0.35, 5500), ("C", 100, 0.20, 8000),
    ]))
    # medians: gain 0.35, cost 5500; B sits on both median lines
    q = t.set_index("provider_code")["quadrant"]
    assert q["C"] == "lower gain, higher cost" and q["A"] == "higher gain, lower cost" and q["B"] == hv.ON_MEDIAN
    assert hv.describe_quadrant(t, "hip") == "hip: C has clearly lower gain at higher cost than the median provider"


# --------------------------------------------------------------------------- equity
EQUITY = outcomes_frame([
    ("hip", "A", 0.2, 0.4, 5000.0, 70, "1", 1),   # gain 0.2
    ("hip", "A", 0.2, 0.5, 5000.0, 70, "1", 1),   # gain 0.3
    ("hip", "B", 0.2, 0.6, 6000.0, 70, "2", 2),   # gain 0.4
    ("hip", "B", 0.2, 0.7, 6000.0, 70, "2", 7),   # gain 0.5
    ("hip", "B", 0.2, 0.8, 6000.0, 70, "2", 10),  # gain 0.6
    ("hip", "A", 0.2, 0.9, 7000.0, 70, "2", pd.NA),  # gain 0.7, no decile
])


def test_equity_by_decile_keeps_unknown_deprivation():
    t = hv.equity(EQUITY)
    assert t["n"].sum() == len(EQUITY)  # nothing dropped
    assert list(t["imd_decile"].astype("object").where(t["imd_decile"].notna(), None)) == [1, 2, 7, 10, None]
    assert list(t["group"]) == ["Core20", "Core20", "other", "other", "unknown"]
    d1 = t.iloc[0]
    assert d1["n"] == 2 and d1["mean_gain"] == pytest.approx(0.25)
    assert d1["share_of_patients"] == pytest.approx(2 / 6)
    # two values 0.2 and 0.3: sd = 0.0707, t(1) = 12.706 -> half width 12.706 * 0.0707 / sqrt(2) = 0.6353
    assert d1["gain_ci_upper"] - d1["mean_gain"] == pytest.approx(stats.t.ppf(0.975, 1) * 0.05, rel=1e-9)
    assert t.iloc[4]["mean_gain"] == pytest.approx(0.7)


def test_deprivation_gradient_matches_scipy_linregress():
    t = hv.deprivation_gradient(EQUITY, "gain").iloc[0]
    # known deciles 1, 1, 2, 7, 10 with gains 0.2, 0.3, 0.4, 0.5, 0.6; the unknown row is counted, not used
    ref = stats.linregress([1, 1, 2, 7, 10], [0.2, 0.3, 0.4, 0.5, 0.6])
    assert t["n"] == 5 and t["n_unknown"] == 1
    assert t["slope_per_decile"] == pytest.approx(ref.slope)
    half = stats.t.ppf(0.975, 3) * ref.stderr
    assert (t["slope_ci_lower"], t["slope_ci_upper"]) == pytest.approx((ref.slope - half, ref.slope + half))


def test_equity_sentence_never_pools_pathways():
    e = hv.equity(EQUITY)
    # Core20 gains 0.2, 0.3, 0.4 -> 0.3; others 0.5, 0.6 -> 0.55
    assert hv.describe_equity(e, "hip") == (
        "hip: patients from the most deprived fifth of areas gain 0.250 less on the EQ-5D index "
        "than other patients (0.300 against 0.550)"
    )
    assert hv.describe_equity(e) == "Patients from the most deprived fifth of areas gain less than other patients in 1 of 1 pathways"


def test_three_es_economy_efficiency_effectiveness_and_equity():
    inputs = pd.DataFrame({
        "provider_code": ["A", "B", "C"], "input": ["hip prosthesis"] * 3,
        "quantity": [10, 5, 4], "total_cost": [20_000, 12_500, 6_000],
    })
    econ = hv.economy(inputs).set_index("provider_code")
    # unit costs 2000, 2500, 1500; median 2000
    assert list(econ["unit_cost"]) == [2000, 2500, 1500]
    assert list(econ["economy_index"]) == [1.0, 1.25, 0.75]
    t = hv.three_es(EQUITY, inputs).set_index("provider_code")
    assert t.loc["A", "economy_index"] == 1.0 and t.loc["B", "economy_index"] == 1.25
    # an input tied to another pathway does not count for this one
    other = hv.three_es(EQUITY, inputs.assign(pathway=["knee", "hip", "hip"])).set_index("provider_code")
    assert math.isnan(other.loc["A", "economy_index"]) and other.loc["B", "economy_index"] == 1.25
    # A: costs 5000, 5000, 7000 -> 5,666.67; gains 0.2, 0.3, 0.7 -> 0.4
    assert t.loc["A", "efficiency_cost_per_patient"] == pytest.approx(17_000 / 3)
    assert t.loc["A", "effectiveness_mean_gain"] == pytest.approx(0.4)
    assert t.loc["A", "cost_per_unit_gain"] == pytest.approx(17_000 / 3 / 0.4)
    # B: Core20 (decile 2) gain 0.4; other (7, 10) gains 0.5, 0.6 -> gap 0.4 - 0.55 = -0.15
    assert t.loc["B", "n_core20"] == 1
    assert t.loc["B", "equity_gain_core20"] == pytest.approx(0.4)
    assert t.loc["B", "equity_gain_other"] == pytest.approx(0.55)
    assert t.loc["B", "equity_gap"] == pytest.approx(-0.15)
    # A has no patient in deciles 3-10 with a known decile: no comparison
    assert math.isnan(t.loc["A", "equity_gain_other"])
    no_inputs = hv.three_es(EQUITY)
    assert no_inputs["economy_index"].isna().all()


def test_economy_rejects_bad_quantities():
    bad = pd.DataFrame({"provider_code": ["A"], "input": ["x"], "quantity": [0], "total_cost": [10]})
    with pytest.raises(InputError, match="row 2"):
        hv.economy(bad)


def test_welch_interval_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.3, 0.2, 40), rng.normal(0.35, 0.1, 25)
    diff, lo, hi = hv.welch_difference(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert (lo, hi) == pytest.approx((ref.low, ref.high))


# --------------------------------------------------------------------------- allocative value
def test_annuity_factor_by_hand():
    assert hv.annuity_factor(3, 0.0) == pytest.approx(3)
    assert hv.annuity_factor(2.5, 0.0) == pytest.approx(2.5)
    # 1 + 1/1.035 + 1/1.035^2 = 1 + 0.966184 + 0.933511
    assert hv.annuity_factor(3, 0.035) == pytest.approx(2.899694, abs=1e-6)
    # 1 + 1/1.035 + 0.5/1.035^2
    assert hv.annuity_factor(2.5, 0.035) == pytest.approx(2.432939, abs=1e-6)
    assert hv.annuity_factor(0, 0.035) == 0
    with pytest.raises(ValueError):
        hv.annuity_factor(-1)


def _value_table():
    return pd.DataFrame({
        "pathway": ["hip", "cheap tweak", "dear tweak", "harm"],
        "n": [100, 100, 100, 100],
        "mean_cost": [6000.0, 12000.0, 12000.0, 500.0],
        "mean_gain": [0.4, 0.02, 0.01, -0.01],
        "gain_ci_lower": [0.35, 0.01, 0.0, -0.02],
        "gain_ci_upper": [0.45, 0.03, 0.02, 0.0],
        "cpug_ci_lower": [14000.0, 8000.0, np.nan, np.nan],
        "cpug_ci_upper": [16000.0, 1.2e6, np.nan, np.nan],
    })


def test_allocative_qalys_per_thousand_pounds_and_verdicts():
    t = hv.allocative(_value_table(), duration_years=20, discount_rate=0.0).set_index("pathway")
    # hip: 0.4 x 20 = 8 QALYs for £6,000 -> £750 per QALY; £1,000 buys 8 / 6 = 1.333 QALYs
    assert t.loc["hip", "qalys_per_patient"] == pytest.approx(8)
    assert t.loc["hip", "cost_per_qaly"] == pytest.approx(750)
    assert t.loc["hip", "qalys_per_budget"] == pytest.approx(8 / 6)
    assert t.loc["hip", "patients_per_budget"] == pytest.approx(1 / 6)
    assert t.loc["hip", "cost_per_qaly_ci_lower"] == pytest.approx(14000 / 20)
    assert t.loc["hip", "verdict"] == "below £20,000 per QALY"
    # 0.02 x 20 = 0.4 QALYs for £12,000 -> £30,000: the top of the range counts as within
    assert t.loc["cheap tweak", "cost_per_qaly"] == pytest.approx(30_000)
    assert t.loc["cheap tweak", "verdict"] == "within £20,000-£30,000 per QALY"
    assert t.loc["dear tweak", "cost_per_qaly"] == pytest.approx(60_000)
    assert t.loc["dear tweak", "verdict"] == "above £30,000 per QALY"
    assert t.loc["harm", "verdict"] == "no gain" and math.isnan(t.loc["harm", "cost_per_qaly"])


def test_allocative_duration_is_the_assumption_that_drives_the_answer():
    short = hv.allocative(_value_table(), duration_years=1, discount_rate=0.0).set_index("pathway")
    long = hv.allocative(_value_table(), duration_years=10, discount_rate=0.0).set_index("pathway")
    assert long.loc["hip", "cost_per_qaly"] == pytest.approx(short.loc["hip", "cost_per_qaly"] / 10)


def test_incremental_icer_net_benefit_and_dominance():
    table = pd.DataFrame({
        "pathway": ["ward", "home", "cheaper home"],
        "mean_cost": [6000.0, 9000.0, 5000.0], "qalys_per_patient": [1.2, 1.35, 1.3],
        "threshold_lower": 20_000.0, "threshold_upper": 30_000.0,
    })
    row = hv.incremental(table, "ward", "home").iloc[0]
    # ΔC = 3000, ΔQ = 0.15 -> £20,000 per QALY; NMB at £20k = 0, at £30k = 4500 - 3000 = 1500
    assert row["delta_cost"] == pytest.approx(3000) and row["delta_qalys"] == pytest.approx(0.15)
    assert row["icer"] == pytest.approx(20_000)
    assert row["nmb_at_lower"] == pytest.approx(0, abs=1e-9)
    assert row["nmb_at_upper"] == pytest.approx(1500)
    assert "within" in row["verdict"]
    assert hv.incremental(table, "ward", "cheaper home").iloc[0]["verdict"].startswith("dominant")
    assert hv.incremental(table, "cheaper home", "ward").iloc[0]["verdict"].startswith("dominated")
    with pytest.raises(InputError, match="'nowhere' is not a value"):
        hv.incremental(table, "ward", "nowhere")


# --------------------------------------------------------------------------- CIP plan
PLAN = [
    {"scheme": "Prosthesis price", "value_gbp": 120_000, "cash_releasing": "yes", "recurrent": "yes",
     "qia_status": "approved", "qia_rating": "low"},
    {"scheme": "Agency cap", "value_gbp": 300_000, "cash_releasing": "Yes", "recurrent": "Y",
     "qia_status": "Pending"},
    {"scheme": "Estate sale", "value_gbp": 50_000, "cash_releasing": True, "recurrent": "no",
     "qia_status": "approved"},
    {"scheme": "Theatre list", "value_gbp": 80_000, "cash_releasing": "no", "recurrent": "yes",
     "qia_status": "approved", "qia_rating": "high"},
    {"scheme": "Ward skill mix", "value_gbp": 90, "cash_releasing": "yes", "recurrent": "yes",
     "qia_status": "not started"},
]


def test_cip_plan_classifies_and_flags_every_scheme_without_an_approved_qia():
    t = hv.cip_plan(PLAN).set_index("scheme")
    assert t.loc["Agency cap", "cip_class"] == "cash-releasing, recurrent"
    assert t.loc["Estate sale", "cip_class"] == "cash-releasing, non-recurrent"
    assert t.loc["Theatre list", "cip_class"] == "non-cash-releasing, recurrent"
    assert t.loc["Agency cap", "flag"] == "no approved quality impact assessment (status: pending)"
    # however small the saving (Bolton: £90 or £90,000)
    assert t.loc["Ward skill mix", "flag"].startswith("no approved quality impact assessment")
    assert t.loc["Theatre list", "flag"] == "high quality risk: check the mitigation"
    assert t.loc["Prosthesis price", "flag"] == ""


def test_cip_summary_totals_by_class_by_hand():
    s = hv.cip_summary(PLAN, target_gbp=700_000).set_index("cip_class")
    # cash-releasing recurrent: 120,000 + 300,000 + 90 = 420,090; approved only 120,000
    assert s.loc["cash-releasing, recurrent", "n_schemes"] == 3
    assert s.loc["cash-releasing, recurrent", "value_gbp"] == pytest.approx(420_090)
    assert s.loc["cash-releasing, recurrent", "value_qia_approved"] == pytest.approx(120_000)
    assert s.loc["cash-releasing, recurrent", "value_not_approved"] == pytest.approx(300_090)
    assert s.loc["cash-releasing, recurrent", "n_flagged"] == 2
    assert s.loc["non-cash-releasing, non-recurrent", "n_schemes"] == 0  # empty class still shown
    total = s.loc["total"]
    assert total["value_gbp"] == pytest.approx(550_090)
    assert total["value_not_approved"] == pytest.approx(300_090)
    assert total["n_flagged"] == 3
    assert total["gap_to_target_gbp"] == pytest.approx(149_910)
    assert s.loc["cash-releasing, recurrent", "share_of_plan"] == pytest.approx(420_090 / 550_090)
    assert hv.describe_cip(s.reset_index()) == (
        "£300,090 of the £550,090 plan has no approved quality impact assessment; £420,090 is recurrent cash; "
        "the plan is £149,910 short of its £700,000 target"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"cash_releasing": "maybe"}, r"cash_releasing.*yes or no.*'Agency cap'"),
        ({"value_gbp": -5}, r"value_gbp.*0 or more"),
        ({"qia_status": "signed off"}, r"qia_status.*one of approved"),
        ({"qia_rating": "awful"}, r"qia_rating"),
    ],
)
def test_cip_plan_bad_entries_name_column_and_scheme(change, message):
    plan = [dict(p) for p in PLAN]
    plan[1].update(change)
    with pytest.raises(InputError, match=message):
        hv.cip_plan(plan)


def test_cip_plan_missing_column():
    with pytest.raises(InputError, match="missing column.*qia_status"):
        hv.cip_plan([{"scheme": "x", "value_gbp": 1, "cash_releasing": "yes", "recurrent": "no"}])


# --------------------------------------------------------------------------- figures
def test_figures_carry_the_finding_as_title():
    from helpers.plots import value as pv

    q = hv.quadrant(_provider_table([("A", 100, 0.40, 5000), ("B", 100, 0.35, 5500), ("C", 100, 0.20, 8000)]))
    fig = pv.quadrant_plot(q, "hip")
    assert fig.axes[0].get_title(loc="left").replace("\n", " ") == hv.describe_quadrant(q, "hip")
    assert len(fig.axes[0].containers) == 3  # one error-bar point per provider
    fig = pv.cip_plot(hv.cip_summary(PLAN))
    assert fig.axes[0].get_title(loc="left").replace("\n", " ") == hv.describe_cip(hv.cip_summary(PLAN))


# --------------------------------------------------------------------------- sample data vs simulator truth
SAMPLE = SAMPLE_DIR / "outcomes.csv"
TRUTH = SAMPLE_DIR / "truth.json"


@pytest.fixture(scope="module")
def sample():
    if not SAMPLE.exists() or not TRUTH.exists():
        pytest.skip("data/sample/outcomes.csv or truth.json not written yet (run `handbook simulate`)")
    from helpers.io import load_table

    truth = json.loads(TRUTH.read_text())
    if "outcomes" not in truth:
        pytest.skip("truth.json has no 'outcomes' section yet")
    return load_table("outcomes"), truth["outcomes"]


def test_sample_pathway_means_recover_the_simulator_truth(sample):
    df, truth = sample
    t = hv.pathway_value(df).set_index("pathway")
    assert set(t.index) == set(truth["pathways"])
    for name, true in truth["pathways"].items():
        row = t.loc[name]
        assert row["n"] == true["n"]
        # the truth is an expectation; the sample mean should sit within 4 standard errors of it
        se_gain = (row["gain_ci_upper"] - row["gain_ci_lower"]) / (2 * stats.t.ppf(0.975, row["n"] - 1))
        se_cost = (row["cost_ci_upper"] - row["cost_ci_lower"]) / (2 * stats.t.ppf(0.975, row["n"] - 1))
        assert abs(row["mean_gain"] - true["mean_gain"]) < 4 * se_gain, name
        assert abs(row["mean_cost"] - true["mean_cost"]) < 4 * se_cost, name


def test_sample_high_cost_low_gain_provider_lands_in_that_quadrant(sample):
    df, truth = sample
    q = hv.quadrant(hv.provider_value(df), min_patients=20)
    worst, best = truth["high_cost_low_gain"], truth["low_cost_high_gain"]
    for code, label in ((worst, "lower gain, higher cost"), (best, "higher gain, lower cost")):
        rows = q[q["provider_code"] == code]
        gain_effect = truth["provider_gain_effect"][code]
        cost_effect = truth["provider_cost_multiplier"][code] - 1
        for r in rows.itertuples():
            path = truth["pathways"][r.pathway]
            # the simulated shift in standard errors of the provider's adjusted value
            se_gain = (r.adjusted_gain_ci_upper - r.adjusted_gain_ci_lower) / (2 * 1.96)
            se_cost = (r.adjusted_cost_ci_upper - r.adjusted_cost_ci_lower) / (2 * 1.96)
            if abs(gain_effect * path["mean_gain"]) > 2.5 * se_gain:  # large enough to be found every time
                assert r.gain_position == ("higher" if gain_effect > 0 else "lower"), (code, r.pathway)
            if abs(cost_effect * path["mean_cost"]) > 2.5 * se_cost:
                assert r.cost_position == ("higher" if cost_effect > 0 else "lower"), (code, r.pathway)
        # where the effect is small against the noise (cataract, hernia gains) one pathway may miss
        assert (rows["quadrant"] == label).sum() >= len(rows) - 1, code
    clear = q[(q["provider_code"] == worst) & q["gain_clear"] & q["cost_clear"]]
    assert len(clear) >= 1


def test_sample_adjusted_cost_tracks_the_simulated_cost_multiplier(sample):
    df, truth = sample
    t = hv.provider_value(df)
    mult = pd.Series(truth["provider_cost_multiplier"])
    for pathway, part in t.groupby("pathway"):
        # 25 providers: the rank correlation must be clearly positive (p < 0.01), not chance
        res = stats.spearmanr(part["cost_ratio"], mult[part["provider_code"]].to_numpy())
        assert res.statistic > 0 and res.pvalue < 0.01, pathway


def test_sample_deprivation_gradient_of_the_starting_score(sample):
    df, truth = sample
    g = hv.deprivation_gradient(df, "eq5d_before")
    # the simulator lowers the score before the procedure by a fixed amount per decile more deprived
    # (clipping at full health flattens it a little)
    for r in g.itertuples():
        assert r.slope_ci_lower < truth["deprivation_gradient_before"] + 0.005, r.pathway
        assert r.slope_per_decile > truth["deprivation_gradient_before"] / 2, r.pathway
