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
        age, sex, imd = (rest + [70, "2", pd.NA][len(rest) :])[:3]
        out.append(
            {
                "outcome_id": f"o{i}",
                "patient_id": f"p{i}",
                "provider_code": provider,
                "pathway": pathway,
                "procedure_date": pd.Timestamp("2024-06-01"),
                "age": age,
                "sex": sex,
                "imd_decile": imd,
                "eq5d_before": before,
                "eq5d_after": after,
                "cost": cost,
            }
        )
    df = pd.DataFrame(out)
    df["imd_decile"] = df["imd_decile"].astype("Int64")
    return df


# Three hip patients at provider A:
#   gains 0.4, 0.2, 0.6 -> mean 0.4, sd sqrt((0 + .04 + .04)/2) = 0.2
#   costs 5000, 7000, 6000 -> mean 6000, sd sqrt((1e6 + 1e6 + 0)/2) = 1000
#   covariance: ((-1000)(0) + (1000)(-0.2) + 0(0.2)) / 2 = -100
TINY = outcomes_frame(
    [
        ("hip", "A", 0.2, 0.6, 5000.0),
        ("hip", "A", 0.4, 0.6, 7000.0),
        ("hip", "A", 0.3, 0.9, 6000.0),
        ("cataract", "A", 0.7, 0.8, 900.0),
        ("cataract", "A", 0.6, 0.8, 1100.0),
    ]
)
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
CASEMIX = outcomes_frame(
    [
        ("hip", "A", 0.3, 0.8, 1000.0),
        ("hip", "A", 0.3, 0.8, 1000.0),
        ("hip", "B", 0.3, 0.6, 1600.0),
        ("hip", "A", 0.7, 0.8, 2000.0),
        ("hip", "B", 0.7, 0.9, 2600.0),
        ("hip", "B", 0.7, 0.9, 2600.0),
    ]
)


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
    df = pd.DataFrame(
        {
            "outcome_id": [f"o{i}" for i in range(n)],
            "patient_id": "p",
            "provider_code": rng.choice(["A", "B", "C"], n),
            "pathway": "hip",
            "age": rng.integers(40, 95, n),
            "sex": rng.choice(["1", "2"], n),
            "eq5d_before": rng.uniform(-0.5, 0.99, n),
        }
    )
    df["eq5d_after"] = np.clip(df["eq5d_before"] + rng.normal(0.3, 0.2, n), -0.594, 1)
    df["cost"] = rng.gamma(10, 600, n)
    got = hv.expected_values(df)
    d = df.assign(
        gain=df["eq5d_after"] - df["eq5d_before"],
        age_band=hv.age_band(df["age"]),
        base=hv.baseline_band(df["eq5d_before"]),
    )
    for y, col in (("gain", "expected_gain"), ("cost", "expected_cost")):
        fit = smf.ols(f"{y} ~ C(age_band) + C(sex) + C(base)", data=d).fit()
        np.testing.assert_allclose(got[col].to_numpy(), fit.fittedvalues.to_numpy(), rtol=1e-9, atol=1e-9)


def test_bands():
    assert list(hv.age_band(pd.Series([44, 45, 84, 85, 120]))) == ["0-44", "45-54", "75-84", "85+", "85+"]
    assert list(hv.baseline_band(pd.Series([-0.594, 0.0, 0.05, 1.0]))) == [
        "(-0.601, 0.0]",
        "(-0.601, 0.0]",
        "(0.0, 0.2]",
        "(0.8, 1.0]",
    ]


# --------------------------------------------------------------------------- quadrant
def _provider_table(rows):
    """rows: (provider, n, gain, cost); intervals ±0.01 gain and ±£50 cost."""
    return pd.DataFrame(
        [
            {
                "pathway": "hip",
                "provider_code": p,
                "n": n,
                "adjusted_gain": g,
                "adjusted_gain_ci_lower": g - 0.01,
                "adjusted_gain_ci_upper": g + 0.01,
                "adjusted_cost": c,
                "adjusted_cost_ci_lower": c - 50,
                "adjusted_cost_ci_upper": c + 50,
            }
            for p, n, g, c in rows
        ]
    )


def test_quadrant_medians_labels_and_small_providers():
    # medians over A-D (E is too small): gain median(0.30,0.40,0.35,0.20) = 0.325, cost median(5000,6000,7000,5500) = 5750
    t = hv.quadrant(
        _provider_table(
            [
                ("A", 100, 0.30, 5000),
                ("B", 100, 0.40, 6000),
                ("C", 100, 0.35, 7000),
                ("D", 100, 0.20, 5500),
                ("E", 5, 0.90, 100),
            ]
        ),
        min_patients=30,
    ).set_index("provider_code")
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
    t = hv.quadrant(
        _provider_table(
            [
                ("A", 100, 0.40, 5000),
                ("B", 100, 0.35, 5500),
                ("C", 100, 0.20, 8000),
            ]
        )
    )
    # medians: gain 0.35, cost 5500; B sits on both median lines
    q = t.set_index("provider_code")
    assert (
        q.loc["C", "quadrant"] == "lower gain, higher cost"
        and q.loc["A", "quadrant"] == "higher gain, lower cost"
    )
    # B's intervals contain both medians: on the lines as a point, not distinguishable as a finding
    assert q.loc["B", "point_quadrant"] == hv.ON_MEDIAN and q.loc["B", "quadrant"] == hv.NOT_DISTINGUISHABLE
    assert (
        hv.describe_quadrant(t, "hip")
        == "hip: C has clearly lower gain at higher cost than the median provider"
    )


def test_quadrant_labels_and_counts_only_providers_clear_of_both_medians():
    table = _provider_table(
        [
            ("A", 100, 0.40, 5000),
            ("B", 100, 0.35, 5500),
            ("C", 100, 0.20, 8000),
            ("D", 100, 0.25, 7000),
            ("F", 100, 0.45, 4000),
            ("E", 5, 0.90, 100),
        ]
    )
    # D: cost interval £6,950-£7,050 is clear of the median, but widen its gain interval across the median
    table.loc[table["provider_code"] == "D", "adjusted_gain_ci_upper"] = 0.40
    # F: gain clear, but a cost interval from £3,000 to £6,000 reaches the median cost
    table.loc[table["provider_code"] == "F", ["adjusted_cost_ci_lower", "adjusted_cost_ci_upper"]] = [
        3000,
        6000,
    ]
    t = hv.quadrant(table).set_index("provider_code")
    # medians over A, B, C, D, F: gain 0.35, cost 5500
    assert t["median_gain"].iloc[0] == pytest.approx(0.35) and t["median_cost"].iloc[0] == pytest.approx(5500)
    assert (
        t.loc["D", "point_quadrant"] == "lower gain, higher cost"
        and t.loc["D", "quadrant"] == hv.NOT_DISTINGUISHABLE
    )
    assert (
        t.loc["F", "point_quadrant"] == "higher gain, lower cost"
        and t.loc["F", "quadrant"] == hv.NOT_DISTINGUISHABLE
    )
    assert t.loc["E", "quadrant"] == hv.TOO_FEW == t.loc["E", "point_quadrant"]
    counts = hv.quadrant_counts(hv.quadrant(table)).set_index("pathway").loc["hip"]
    assert counts.to_dict() == {
        "higher gain, lower cost": 1,
        "higher gain, higher cost": 0,
        "lower gain, lower cost": 0,
        "lower gain, higher cost": 1,
        "not distinguishable": 3,
        "too few patients": 1,
        "providers": 6,
    }


# --------------------------------------------------------------------------- equity
EQUITY = outcomes_frame(
    [
        ("hip", "A", 0.2, 0.4, 5000.0, 70, "1", 1),  # gain 0.2
        ("hip", "A", 0.2, 0.5, 5000.0, 70, "1", 1),  # gain 0.3
        ("hip", "B", 0.2, 0.6, 6000.0, 70, "2", 2),  # gain 0.4
        ("hip", "B", 0.2, 0.7, 6000.0, 70, "2", 7),  # gain 0.5
        ("hip", "B", 0.2, 0.8, 6000.0, 70, "2", 10),  # gain 0.6
        ("hip", "A", 0.2, 0.9, 7000.0, 70, "2", pd.NA),  # gain 0.7, no decile
    ]
)


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
    assert (
        hv.describe_equity(e)
        == "Patients from the most deprived fifth of areas gain less than other patients in 1 of 1 pathways"
    )


def test_three_es_economy_efficiency_effectiveness_and_equity():
    inputs = pd.DataFrame(
        {
            "provider_code": ["A", "B", "C"],
            "input": ["hip prosthesis"] * 3,
            "quantity": [10, 5, 4],
            "total_cost": [20_000, 12_500, 6_000],
        }
    )
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


def test_annuity_factor_first_discounted_year():
    # default: year 0 undiscounted, as in the Green Book's discount factor tables (year 0 = 1.000);
    # ten years at 3.5%: sum of 1.035^-t for t = 0..9 = (1 - 1.035^-10) / (1 - 1/1.035) = 8.6077
    assert hv.annuity_factor(10, 0.035) == pytest.approx((1 - 1.035**-10) / (1 - 1 / 1.035), rel=1e-12)
    assert hv.annuity_factor(10, 0.035) == pytest.approx(8.607687, abs=1e-6)
    # every year discounted, the first included: 1/1.035 + 1/1.035^2 + 1/1.035^3
    assert hv.annuity_factor(3, 0.035, first_discounted_year=0) == pytest.approx(2.801637, abs=1e-6)
    # one whole year more undiscounted in front: 1 + 1 + 1/1.035
    assert hv.annuity_factor(3, 0.035, first_discounted_year=2) == pytest.approx(2.966184, abs=1e-6)
    # whole years: discounting the first year too divides the factor by exactly 1 + r
    assert hv.annuity_factor(10, 0.035) / hv.annuity_factor(10, 0.035, 0) == pytest.approx(1.035, rel=1e-12)
    with pytest.raises(ValueError):
        hv.annuity_factor(3, 0.035, first_discounted_year=-1)
    t = hv.allocative(_value_table(), duration_years=10, first_discounted_year=0).set_index("pathway")
    assert t.loc["hip", "first_discounted_year"] == 0
    assert t.loc["hip", "qalys_per_patient"] == pytest.approx(0.4 * hv.annuity_factor(10, 0.035, 0))


def _value_table():
    return pd.DataFrame(
        {
            "pathway": ["hip", "cheap tweak", "dear tweak", "harm"],
            "n": [100, 100, 100, 100],
            "mean_cost": [6000.0, 12000.0, 12000.0, 500.0],
            "mean_gain": [0.4, 0.02, 0.01, -0.01],
            "gain_ci_lower": [0.35, 0.01, 0.0, -0.02],
            "gain_ci_upper": [0.45, 0.03, 0.02, 0.0],
            "cpug_ci_lower": [14000.0, 8000.0, np.nan, np.nan],
            "cpug_ci_upper": [16000.0, 1.2e6, np.nan, np.nan],
        }
    )


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
    table = pd.DataFrame(
        {
            "setting": ["ward", "home", "cheaper home"],
            "mean_cost": [6000.0, 9000.0, 5000.0],
            "qalys_per_patient": [1.2, 1.35, 1.3],
            "threshold_lower": 20_000.0,
            "threshold_upper": 30_000.0,
        }
    )
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


def test_no_icer_between_two_pathways():
    allocative = hv.allocative(_value_table(), duration_years=20, discount_rate=0.0)
    with pytest.raises(InputError, match="no ICER between 'hip' and 'cheap tweak'.*different patients"):
        hv.incremental(allocative, "hip", "cheap tweak", by="pathway")
    row = hv.compare_options(TINY, allocative, ["cheap tweak", "hip"]).iloc[0]
    assert row["comparison"] == "allocative: different pathways, no ICER"
    assert math.isnan(row["icer"]) and "delta_cost" not in row.index
    # hip: 8 QALYs for £6,000 -> 1.333 per £1,000; cheap tweak: 0.4 QALYs for £12,000 -> 0.0333
    assert row["qalys_per_budget_intervention"] == pytest.approx(8 / 6)
    assert row["qalys_per_budget_comparator"] == pytest.approx(0.4 / 12)
    assert row["verdict"] == (
        "not an ICER: cheap tweak and hip treat different patients; £1,000 buys 1.33 QALYs in hip and 0.03 in cheap tweak"
    )


def test_compare_options_defaults_and_refusals():
    df = _two_arms(n=60)
    df = pd.concat([df, outcomes_frame([("hip", "C", 0.3, 0.6, 6000.0)] * 30)], ignore_index=True)
    allocative = hv.allocative(hv.pathway_value(df), duration_years=10)
    # no names: the two providers of the pathway with most patients (A and B, 60 each; C has 30), by name on a tie
    row = hv.compare_options(df, allocative, [], "hip", adjust_for_case_mix=False, n_bootstrap=200).iloc[0]
    assert (row["comparator"], row["intervention"]) == ("A", "B")
    with pytest.raises(InputError, match="give two names"):
        hv.compare_options(df, allocative, ["A"], "hip")
    with pytest.raises(InputError, match="name the pathway"):
        hv.compare_options(df, allocative, ["A", "B"])
    with pytest.raises(InputError, match="no ICER between"):
        hv.incremental_within(df.assign(provider_code="X"), "hip", "hip", "knee", by="pathway")


def _two_arms(n: int = 400, seed: int = 11) -> pd.DataFrame:
    """One pathway, two providers; costs and gains drawn with known means (no case mix)."""
    rng = np.random.default_rng(seed)
    rows = []
    for provider, cost, gain in (("A", 6000.0, 0.30), ("B", 6300.0, 0.33)):
        before = rng.uniform(0.2, 0.5, n)
        g = rng.normal(gain, 0.12, n)
        c = rng.normal(cost, 900.0, n) + 2000 * (g - gain)  # cost and gain correlated within a patient
        rows += [("hip", provider, b, b + x, y) for b, x, y in zip(before, g, c)]
    return outcomes_frame(rows)


def test_incremental_within_bootstrap_matches_the_normal_theory_of_two_means():
    df = _two_arms()
    row = hv.incremental_within(
        df,
        "hip",
        "A",
        "B",
        duration_years=1,
        discount_rate=0.0,
        adjust_for_case_mix=False,
        n_bootstrap=4000,
        seed=5,
    ).iloc[0]
    a, b = df[df["provider_code"] == "A"], df[df["provider_code"] == "B"]
    ga, gb = a["eq5d_after"] - a["eq5d_before"], b["eq5d_after"] - b["eq5d_before"]
    dc, dq = b["cost"].mean() - a["cost"].mean(), gb.mean() - ga.mean()
    assert row["delta_cost"] == pytest.approx(dc) and row["delta_qalys"] == pytest.approx(dq)
    assert row["icer"] == pytest.approx(dc / dq)
    assert row["n_comparator"] == 400 and row["n_intervention"] == 400
    # percentile interval against the normal-theory interval of a difference of independent means
    se_c = math.sqrt(a["cost"].var() / 400 + b["cost"].var() / 400)
    se_q = math.sqrt(ga.var() / 400 + gb.var() / 400)
    assert row["delta_cost_ci_lower"] == pytest.approx(dc - 1.96 * se_c, abs=0.1 * se_c)
    assert row["delta_cost_ci_upper"] == pytest.approx(dc + 1.96 * se_c, abs=0.1 * se_c)
    assert row["delta_qalys_ci_lower"] == pytest.approx(dq - 1.96 * se_q, abs=0.1 * se_q)
    # probability cost-effective against the normal approximation of net benefit:
    # var(NMB) = λ² var(ΔQ) + var(ΔC) − 2λ cov(ΔQ, ΔC), with the within-arm covariances of cost and gain
    cov = np.cov(a["cost"], ga)[0, 1] / 400 + np.cov(b["cost"], gb)[0, 1] / 400
    for lam, col in ((20_000, "prob_cost_effective_at_lower"), (30_000, "prob_cost_effective_at_upper")):
        nmb = lam * dq - dc
        sd = math.sqrt(lam**2 * se_q**2 + se_c**2 - 2 * lam * cov)
        assert row[col] == pytest.approx(stats.norm.cdf(nmb / sd), abs=0.03), lam
    assert row["verdict"].endswith(
        f"probability cost-effective {row['prob_cost_effective_at_lower']:.2f} at £20,000 and "
        f"{row['prob_cost_effective_at_upper']:.2f} at £30,000 per QALY"
    )
    # the same seed gives the same answer
    again = hv.incremental_within(
        df,
        "hip",
        "A",
        "B",
        duration_years=1,
        discount_rate=0.0,
        adjust_for_case_mix=False,
        n_bootstrap=4000,
        seed=5,
    ).iloc[0]
    assert again["delta_cost_ci_lower"] == row["delta_cost_ci_lower"]


def test_incremental_within_says_when_neither_difference_is_clear():
    rng = np.random.default_rng(2)
    rows = [
        ("hip", p, 0.3, 0.3 + g, c)
        for p in ("A", "B")
        for g, c in zip(rng.normal(0.3, 0.1, 40), rng.normal(6000, 800, 40))
    ]
    row = hv.incremental_within(
        outcomes_frame(rows), "hip", "A", "B", adjust_for_case_mix=False, n_bootstrap=500
    ).iloc[0]
    assert row["delta_cost_ci_lower"] < 0 < row["delta_cost_ci_upper"]
    assert row["delta_qalys_ci_lower"] < 0 < row["delta_qalys_ci_upper"]
    assert row["verdict"].startswith("no clear difference (both intervals include zero)")
    with pytest.raises(InputError, match="'C' has 0 patient"):
        hv.incremental_within(outcomes_frame(rows), "hip", "A", "C", n_bootstrap=500)


def test_incremental_within_compares_the_case_mix_adjusted_values_of_provider_value(sample):
    df, _ = sample
    row = hv.incremental_within(df, "hip replacement", "T06", "T15", n_bootstrap=200).iloc[0]
    pv = hv.provider_value(df).set_index(["pathway", "provider_code"])
    a, b = pv.loc[("hip replacement", "T06")], pv.loc[("hip replacement", "T15")]
    af = hv.annuity_factor(10, 0.035)
    assert row["cost_comparator"] == pytest.approx(a["adjusted_cost"])
    assert row["delta_cost"] == pytest.approx(b["adjusted_cost"] - a["adjusted_cost"])
    assert row["delta_qalys"] == pytest.approx((b["adjusted_gain"] - a["adjusted_gain"]) * af)


# --------------------------------------------------------------------------- CIP plan
PLAN = [
    {
        "scheme": "Prosthesis price",
        "value_gbp": 120_000,
        "cash_releasing": "yes",
        "recurrent": "yes",
        "qia_status": "approved",
        "qia_rating": "low",
    },
    {
        "scheme": "Agency cap",
        "value_gbp": 300_000,
        "cash_releasing": "Yes",
        "recurrent": "Y",
        "qia_status": "Pending",
    },
    {
        "scheme": "Estate sale",
        "value_gbp": 50_000,
        "cash_releasing": True,
        "recurrent": "no",
        "qia_status": "approved",
    },
    {
        "scheme": "Theatre list",
        "value_gbp": 80_000,
        "cash_releasing": "no",
        "recurrent": "yes",
        "qia_status": "approved",
        "qia_rating": "high",
    },
    {
        "scheme": "Ward skill mix",
        "value_gbp": 90,
        "cash_releasing": "yes",
        "recurrent": "yes",
        "qia_status": "not started",
    },
]


def test_cip_plan_classifies_and_flags_every_scheme_without_an_approved_qia():
    t = hv.cip_plan(PLAN).set_index("scheme")
    assert t.loc["Agency cap", "cip_class"] == "cash-releasing, recurrent"
    assert t.loc["Estate sale", "cip_class"] == "cash-releasing, non-recurrent"
    assert t.loc["Theatre list", "cip_class"] == "non-cash-releasing, recurrent"
    assert (
        t.loc["Agency cap", "flag"] == "no approved quality impact assessment (status: pending): not counted"
    )
    # however small the saving (Bolton: £90 or £90,000)
    assert t.loc["Ward skill mix", "flag"].startswith("no approved quality impact assessment")
    assert t.loc["Theatre list", "flag"] == "high quality risk: check the mitigation"
    assert t.loc["Prosthesis price", "flag"] == ""
    assert list(t["counted_in_plan"]) == [True, False, True, True, False]


def test_cip_summary_counts_approved_schemes_and_measures_the_gap_in_recurrent_cash():
    s = hv.cip_summary(PLAN, target_gbp=700_000).set_index("cip_class")
    # counted (approved): Prosthesis price 120,000 (cash, recurrent), Estate sale 50,000 (cash, one-off),
    # Theatre list 80,000 (non-cash, recurrent) -> plan total 250,000
    assert s.loc["cash-releasing, recurrent", "n_schemes"] == 1
    assert s.loc["cash-releasing, recurrent", "value_gbp"] == pytest.approx(120_000)
    # beside it, not in it: Agency cap 300,000 (pending) and Ward skill mix 90 (not started)
    assert s.loc["cash-releasing, recurrent", "awaiting_qia_gbp"] == pytest.approx(300_090)
    assert s.loc["cash-releasing, recurrent", "n_awaiting_qia"] == 2
    assert s.loc["non-cash-releasing, non-recurrent", "n_schemes"] == 0  # empty class still shown
    total = s.loc["plan total"]
    assert total["value_gbp"] == pytest.approx(250_000) and total["n_schemes"] == 3
    assert total["awaiting_qia_gbp"] == pytest.approx(300_090)
    assert total["n_high_risk"] == 1
    # gap in recurrent cash: 700,000 - 120,000; the rest of the plan (50,000 + 80,000) beside it
    assert total["recurrent_cash_gbp"] == pytest.approx(120_000)
    assert total["gap_to_target_gbp"] == pytest.approx(580_000)
    assert total["other_savings_gbp"] == pytest.approx(130_000)
    assert total["gap_after_other_savings_gbp"] == pytest.approx(450_000)
    assert s.loc["cash-releasing, recurrent", "share_of_plan"] == pytest.approx(120_000 / 250_000)
    assert hv.describe_cip(s.reset_index()) == (
        "The plan counts £250,000 of schemes with an approved quality impact assessment, £120,000 of it "
        "recurrent cash; £300,090 more awaits assessment; recurrent cash is £580,000 short of the £700,000 target"
    )


def test_a_rejected_scheme_is_listed_apart_and_never_counted():
    # the case: £1.0m approved, £0.5m rejected, £0.2m approved but not cash-releasing
    plan = [
        {
            "scheme": "Procurement",
            "value_gbp": 1_000_000,
            "cash_releasing": "yes",
            "recurrent": "yes",
            "qia_status": "approved",
        },
        {
            "scheme": "Ward closure",
            "value_gbp": 500_000,
            "cash_releasing": "yes",
            "recurrent": "yes",
            "qia_status": "rejected",
        },
        {
            "scheme": "Theatre lists",
            "value_gbp": 200_000,
            "cash_releasing": "no",
            "recurrent": "yes",
            "qia_status": "approved",
        },
    ]
    s = hv.cip_summary(plan, target_gbp=1_500_000).set_index("cip_class")
    assert s.loc["plan total", "value_gbp"] == pytest.approx(1_200_000)
    assert s.loc["rejected (not counted)", "value_gbp"] == pytest.approx(500_000)
    assert (
        s.loc["rejected (not counted)", "n_schemes"] == 1
        and not s.loc["rejected (not counted)", "counted_in_plan"]
    )
    assert s.loc[list(hv.CIP_CLASSES), "value_gbp"].sum() == pytest.approx(1_200_000)
    assert s.loc["plan total", "gap_to_target_gbp"] == pytest.approx(500_000)  # 1.5m - 1.0m recurrent cash
    assert s.loc["plan total", "other_savings_gbp"] == pytest.approx(200_000)
    assert hv.cip_plan(plan).set_index("scheme").loc["Ward closure", "flag"] == (
        "rejected at quality impact assessment: not counted"
    )
    assert hv.describe_cip(s.reset_index()).endswith(
        "£500,000 was rejected; recurrent cash is £500,000 short of the £1,500,000 target"
    )


@pytest.mark.parametrize(
    "written, month",
    [
        ("M1", 1),
        ("m7", 7),
        ("April", 1),
        ("oct", 7),
        ("October", 7),
        ("March", 12),
        ("2025-10-01", 7),
        ("2026-01", 10),
        (pd.Timestamp("2025-12-15"), 9),
        (None, None),
        ("", None),
        (float("nan"), None),
    ],
)
def test_financial_month(written, month):
    assert hv.financial_month(written) == month


def test_full_year_effect_where_a_start_month_is_given():
    plan = [
        # starts in October (M7): £300,000 in the 6 months left -> £600,000 over a full year
        {
            "scheme": "Agency cap",
            "value_gbp": 300_000,
            "cash_releasing": "yes",
            "recurrent": "yes",
            "qia_status": "approved",
            "start_month": "October",
        },
        # starts in July (M4): £90,000 in 9 months -> £120,000
        {
            "scheme": "Theatre list",
            "value_gbp": 90_000,
            "cash_releasing": "no",
            "recurrent": "yes",
            "qia_status": "approved",
            "start_month": "M4",
        },
        # no start month: the value is the full-year value
        {
            "scheme": "Prosthesis price",
            "value_gbp": 120_000,
            "cash_releasing": "yes",
            "recurrent": "yes",
            "qia_status": "approved",
            "start_month": "",
        },
        # one-off: nothing carries into a full year
        {
            "scheme": "Estate sale",
            "value_gbp": 50_000,
            "cash_releasing": "yes",
            "recurrent": "no",
            "qia_status": "approved",
            "start_month": "M10",
        },
    ]
    t = hv.cip_plan(plan).set_index("scheme")
    assert t.loc["Agency cap", "months_in_year"] == 6
    assert t.loc["Agency cap", "full_year_effect_gbp"] == pytest.approx(600_000)
    assert t.loc["Theatre list", "full_year_effect_gbp"] == pytest.approx(120_000)
    assert t.loc["Prosthesis price", "full_year_effect_gbp"] == pytest.approx(120_000)
    assert t.loc["Estate sale", "full_year_effect_gbp"] == 0
    s = hv.cip_summary(plan).set_index("cip_class")
    assert s.loc["cash-releasing, recurrent", "full_year_effect_gbp"] == pytest.approx(720_000)
    assert s.loc["plan total", "full_year_effect_gbp"] == pytest.approx(840_000)
    assert s.loc["plan total", "value_gbp"] == pytest.approx(560_000)
    with pytest.raises(InputError, match=r"start_month.*M1-M12.*'Agency cap' \('7'\)"):
        hv.cip_plan([dict(plan[0], start_month="7")])


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
def test_effectiveness_against_an_intended_gain():
    # HFMA 18.7: effectiveness relates intended and actual results. Provider A's hip gain is 0.4 (see above)
    t = hv.three_es(EQUITY, intended_gain={"hip": 0.5}).set_index("provider_code")
    assert t.loc["A", "effectiveness_intended_gain"] == 0.5
    assert t.loc["A", "effectiveness_vs_intended"] == pytest.approx(0.4 / 0.5)
    assert t.loc["A", "effectiveness_vs_intended_ci_lower"] == pytest.approx(
        t.loc["A", "effectiveness_gain_ci_lower"] / 0.5
    )
    assert hv.three_es(EQUITY)["effectiveness_vs_intended"].isna().all()  # optional
    with pytest.raises(InputError, match="no pathway called 'knee'"):
        hv.three_es(EQUITY, intended_gain={"knee": 0.3})
    with pytest.raises(InputError, match="above 0"):
        hv.three_es(EQUITY, intended_gain={"hip": 0})


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
        assert (rows["point_quadrant"] == label).sum() >= len(rows) - 1, code
    clear = q[(q["provider_code"] == worst) & q["gain_clear"] & q["cost_clear"]]
    assert len(clear) >= 1


def test_sample_quadrant_labels_only_what_the_intervals_support(sample):
    df, truth = sample
    q = hv.quadrant(hv.provider_value(df))
    placed = q[q["quadrant"] != hv.TOO_FEW]
    labelled = placed[placed["quadrant"] != hv.NOT_DISTINGUISHABLE]
    # 82 point estimates sit in a quadrant (4 more are the median provider itself), yet only 3
    # providers have intervals clear of both medians
    assert len(placed) == 86 and placed["point_quadrant"].isin(hv.QUADRANTS.values()).sum() == 82
    assert len(labelled) == 3
    assert (labelled["gain_clear"] & labelled["cost_clear"]).all()
    # every provider given a label is one the simulator built to differ, in the direction it was built
    for r in labelled.itertuples():
        gain_up = truth["provider_gain_effect"][r.provider_code] > 0
        cost_up = truth["provider_cost_multiplier"][r.provider_code] > 1
        assert (
            r.quadrant == hv.QUADRANTS[("higher" if gain_up else "lower", "higher" if cost_up else "lower")]
        )
    counts = hv.quadrant_counts(q).set_index("pathway")
    assert counts[hv.NOT_DISTINGUISHABLE].sum() == 83 and counts["providers"].sum() == len(q)


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
