"""Tests of helpers.opportunity: hand calculations and simulator truths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import finance
from helpers.funnel import funnel
from helpers.opportunity import (
    DOUBLE_COUNTING_WARNING,
    benchmark_value,
    opportunity,
    provider_opportunity,
)


def _table(ratios, expected, small=None) -> pd.DataFrame:
    e = np.asarray(expected, float)
    return pd.DataFrame(
        {
            "provider_code": [f"P{i}" for i in range(len(e))],
            "denominator": (e / 4).round(),
            "observed": np.asarray(ratios) * e,
            "expected": e,
            "ratio": np.asarray(ratios, float),
            "small": np.zeros(len(e), bool) if small is None else small,
        }
    )


def test_benchmarks_by_hand():
    t = _table([0.8, 0.9, 1.0, 1.1, 1.3, 5.0], [100] * 6, small=[False] * 5 + [True])
    # the small provider (ratio 5) does not set the benchmark
    assert benchmark_value(t, "median") == pytest.approx(1.0)
    # better quartile of [0.8, 0.9, 1.0, 1.1, 1.3] (lower is better): 25th percentile = 0.9
    assert benchmark_value(t, "better_quartile") == pytest.approx(0.9)
    assert benchmark_value(t, "better_quartile", higher_is_better=True) == pytest.approx(1.1)
    assert benchmark_value(t, ["P0", "P1"]) == pytest.approx(0.85)
    with pytest.raises(ValueError, match="P9"):
        benchmark_value(t, ["P0", "P9"])


def test_opportunity_never_negative_never_netted():
    # ratios 0.8, 1.0, 1.2 with E = 1,000 bed days each; benchmark 1.0
    t = _table([0.8, 1.0, 1.2], [1000, 1000, 1000])
    out = provider_opportunity(t, 1.0, cost_per_bed_day=300.0)
    # only P2 is worse: (1.2 - 1.0) x 1,000 = 200 bed days; P0 does not offset it
    np.testing.assert_allclose(out["opportunity"], [0, 0, 200])
    np.testing.assert_allclose(out["opportunity_gbp"], [0, 0, 60_000])
    assert out["opportunity"].sum() == pytest.approx(200)  # the netted figure would be 0


def test_los_opportunity_equals_mean_stay_gap_times_spells():
    # 500 spells, expected 5 days each (E = 2,500), observed mean 6 days (O = 3,000), benchmark ratio 1.1:
    # (6 - 1.1 x 5) x 500 = 250 bed days = O - b E
    t = pd.DataFrame(
        {
            "provider_code": ["A"],
            "denominator": [500],
            "observed": [3000.0],
            "expected": [2500.0],
            "ratio": [1.2],
            "small": [False],
        }
    )
    out = provider_opportunity(t, 1.1)
    assert out.loc[0, "opportunity"] == pytest.approx((6 - 1.1 * 5) * 500)


def test_higher_is_better_for_proportions():
    # day-case rates: a provider below the benchmark rate has the opportunity
    t = pd.DataFrame(
        {
            "provider_code": ["A", "B"],
            "denominator": [200, 400],
            "observed": [120, 320],
            "rate": [0.6, 0.8],
            "expected": [140.0, 280.0],
            "small": [False, False],
        }
    )
    out = provider_opportunity(t, 0.8, higher_is_better=True, bed_days_per_unit=2.5)
    # A: (0.8 - 0.6) x 200 = 40 more day cases, each saving 2.5 bed days
    np.testing.assert_allclose(out["opportunity"], [40, 0])
    np.testing.assert_allclose(out["opportunity_bed_days"], [100, 0])
    deaths = provider_opportunity(t, 0.8, higher_is_better=True, bed_days_per_unit=None)
    assert deaths["opportunity_gbp"].isna().all()


def _simulate(
    rng: np.random.Generator, providers: int = 100, tau: float = 0.05
) -> tuple[pd.DataFrame, float]:
    e = rng.uniform(30, 300, providers)
    r = np.exp(rng.normal(0, tau, providers))
    o = rng.poisson(e * r)
    truth = float((np.maximum(r - np.median(r), 0) * e).sum())
    return pd.DataFrame(
        {"provider_code": [f"P{i:03d}" for i in range(providers)], "observed": o, "expected": e}
    ), truth


def test_naive_opportunity_overstates_and_interval_covers_the_truth():
    # Small providers, modest true variation: chance makes the naive total far larger
    # than the true one (the Dropkin 2017 point); the interval allows for it.
    rng = np.random.default_rng(2026)
    naive_ratio, covered, outliers_ratio = [], [], []
    for rep in range(40):
        data, truth = _simulate(rng)
        res = opportunity(funnel(data, tau2_method="robust", min_expected=0), draws=1000, seed=rep)
        s = res.summary.set_index("estimate")
        naive_ratio.append(s.loc["naive", "opportunity"] / truth)
        outliers_ratio.append(s.loc["outliers_only", "opportunity"] / truth)
        covered.append(
            s.loc["interval", "opportunity_lower"] <= truth <= s.loc["interval", "opportunity_upper"]
        )
    assert np.mean(naive_ratio) > 1.4
    assert np.mean(covered) >= 0.85
    assert np.mean(outliers_ratio) < 1  # counting only funnel outliers misses true but hidden gaps


def test_summary_columns_money_and_reproducibility():
    rng = np.random.default_rng(4)
    data, _ = _simulate(rng)
    f = funnel(data, min_expected=0)
    a = opportunity(f, cost_per_bed_day=400.0, marginal_cost_share=0.25, draws=500, seed=9)
    b = opportunity(f, cost_per_bed_day=400.0, marginal_cost_share=0.25, draws=500, seed=9)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    s = a.summary.set_index("estimate")
    assert list(s.index) == ["naive", "outliers_only", "interval", "small_providers"]
    naive = s.loc["naive"]
    assert naive["opportunity"] == pytest.approx(a.providers["opportunity"].sum())
    assert naive["capacity_released_gbp"] == pytest.approx(naive["bed_days"] * 400)
    assert naive["cash_releasing_gbp"] == pytest.approx(naive["bed_days"] * 400 * 0.25)
    assert naive["beds_equivalent"] == pytest.approx(finance.beds_equivalent(naive["bed_days"]))
    assert s.loc["outliers_only", "opportunity"] <= naive["opportunity"]
    assert (
        s.loc["interval", "opportunity_lower"]
        <= s.loc["interval", "opportunity"]
        <= s.loc["interval", "opportunity_upper"]
    )
    assert "never add" in DOUBLE_COUNTING_WARNING


def test_peer_benchmark_is_used_in_the_draws_too():
    rng = np.random.default_rng(8)
    data, _ = _simulate(rng, tau=0.1)
    f = funnel(data, min_expected=0)
    peers = list(f.providers.nsmallest(10, "ratio")["provider_code"])  # a demanding peer group
    res = opportunity(f, benchmark=peers, draws=300, seed=1)
    med = opportunity(f, draws=300, seed=1)
    assert res.benchmark == pytest.approx(
        np.median(f.providers.set_index("provider_code").loc[peers, "ratio"])
    )
    assert res.summary.loc[0, "opportunity"] > med.summary.loc[0, "opportunity"]


def test_two_years_of_data_give_a_yearly_opportunity():
    rng = np.random.default_rng(12)
    data, _ = _simulate(rng)
    f = funnel(data, min_expected=0)
    one = opportunity(f, draws=200, seed=3)
    two = opportunity(f, draws=200, seed=3, years=2)
    pd.testing.assert_series_equal(
        two.providers["opportunity_bed_days"], one.providers["opportunity_bed_days"] / 2
    )
    assert two.summary.loc[0, "beds_equivalent"] == pytest.approx(one.summary.loc[0, "beds_equivalent"] / 2)
    assert two.summary.loc[2, "opportunity_upper"] == pytest.approx(
        one.summary.loc[2, "opportunity_upper"] / 2
    )


def test_describe_quotes_the_summary_numbers():
    from helpers.opportunity import describe

    rng = np.random.default_rng(21)
    data, _ = _simulate(rng)
    res = opportunity(
        funnel(data, min_expected=0), draws=200, seed=2, cost_per_bed_day=400.0, price_year="2024/25"
    )
    s = res.summary.set_index("estimate")
    text = describe(res.summary)
    assert finance.format_number(s.loc["naive", "bed_days"]) in text
    assert finance.format_gbp(s.loc["naive", "capacity_released_gbp"]) in text
    assert "2024/25 prices" in text and "not cash" in text


def test_naive_counts_only_providers_large_enough_to_be_flagged():
    # P3 (E = 5, ratio 3) is worse than the benchmark but too small to be flagged: shown apart
    t = pd.DataFrame(
        {
            "provider_code": ["P0", "P1", "P2", "P3", "P4"],
            "observed": [80.0, 100, 130, 15, 95],
            "expected": [100.0, 100, 100, 5, 100],
        }
    )
    f = funnel(t, min_expected=10)
    res = opportunity(f, draws=200, seed=1)
    s = res.summary.set_index("estimate")
    # benchmark: median of the four large providers' ratios (0.8, 0.95, 1.0, 1.3) = 0.975
    assert res.benchmark == pytest.approx(0.975)
    # naive: P2 (1.3 - 0.975) x 100 and P1 (1.0 - 0.975) x 100; P3's (3 - 0.975) x 5 apart
    assert s.loc["naive", "opportunity"] == pytest.approx(32.5 + 2.5)
    assert s.loc["naive", "providers"] == 2
    assert s.loc["small_providers", "opportunity"] == pytest.approx((3 - 0.975) * 5)
    assert s.loc["small_providers", "providers"] == 1


def test_outlier_level_and_tau2_method_follow_the_funnel():
    rng = np.random.default_rng(5)
    data, _ = _simulate(rng, tau=0.15)
    for level in (95.0, 99.8):
        f = funnel(data, min_expected=0, outlier_level=level)
        res = opportunity(f, draws=200, seed=1)
        lab = "95" if level == 95 else "998"
        flagged = res.providers[f"worse_than_{lab}"]
        assert (flagged == ((f.providers["outlier"] == "high") & (res.providers["opportunity"] > 0))).all()
        assert f"{level:g}% funnel limit" in res.summary.loc[1, "note"]
    shmi = funnel(data, min_expected=0, tau2_method="shmi")
    assert "tau2 shmi" in opportunity(shmi, draws=100, seed=1).summary.loc[2, "note"]
    assert (
        "tau2 robust" in opportunity(funnel(data, min_expected=0), draws=100, seed=1).summary.loc[2, "note"]
    )
