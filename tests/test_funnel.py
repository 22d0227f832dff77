"""Tests of helpers.funnel against reference values, hand calculations and simulation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers import funnel as fn
from helpers.io import InputError

AE_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "ae_attendances.csv"


# --------------------------------------------------------------------------- exact limits
def test_poisson_limits_match_published_reference_values():
    # METHODS.md section 2 (the values FunnelPlotR's tests also use)
    lower, upper = fn.poisson_ratio_limits(np.array([15.0, 20.0, 30.0]), 95)
    np.testing.assert_allclose(lower, [0.5596924, 0.6108260, 0.6746958], atol=5e-7)
    np.testing.assert_allclose(upper, [1.649348, 1.544419, 1.427562], atol=5e-7)


def test_binomial_interpolation_by_hand():
    # n = 100, target 0.1, lower 95% tail q = 0.025: r_q = 5 because F(4) < q <= F(5);
    # alpha = (F(5) - q) / (F(5) - F(4)); limit = (5 - alpha) / 100 (Spiegelhalter 2005, appendix)
    def cdf(r: int, n: int = 100, p: float = 0.1) -> float:
        return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(r + 1))

    q = 0.025
    assert cdf(4) < q <= cdf(5)
    alpha = (cdf(5) - q) / (cdf(5) - cdf(4))
    lower, upper = fn.binomial_limits(100, 0.1, 95)
    assert float(lower) == pytest.approx((5 - alpha) / 100, abs=1e-12)
    r_hi = next(r for r in range(101) if cdf(r) >= 1 - q)
    alpha_hi = (cdf(r_hi) - (1 - q)) / (cdf(r_hi) - cdf(r_hi - 1))
    assert float(upper) == pytest.approx((r_hi - alpha_hi) / 100, abs=1e-12)


def test_binomial_limits_approach_normal_limits_for_large_n():
    n, p = 1_000_000, 0.2
    lower, upper = fn.binomial_limits(n, p, 99.8)
    half = stats.norm.ppf(0.999) * math.sqrt(p * (1 - p) / n)
    assert float(lower) == pytest.approx(p - half, abs=2e-5)
    assert float(upper) == pytest.approx(p + half, abs=2e-5)


def test_level_labels_follow_requested_levels():
    data = pd.DataFrame(
        {"provider_code": list("ABCDE"), "observed": [10, 20, 30, 40, 50], "expected": [12, 18, 33, 37, 52]}
    )
    res = fn.funnel(data, levels=[90, 99.9], overdispersion="none")
    for col in ["lower_90", "upper_90", "lower_999", "upper_999", "flag_90", "flag_999"]:
        assert col in res.providers.columns
    # 90% limits sit inside the 99.9% limits
    assert (res.providers["lower_999"] < res.providers["lower_90"]).all()
    assert (res.providers["upper_90"] < res.providers["upper_999"]).all()


# --------------------------------------------------------------------------- transforms and back-transforms
@pytest.mark.parametrize("how", ["log", "sqrt"])
def test_overdispersed_ratio_limits_are_back_transformed(how):
    tau2 = 0.01
    disp = fn.Dispersion("additive", "shmi", 0.1, "truncate", 2.0, tau2, 10, 10)
    spec = fn.FunnelSpec("ratio", how, 1.0, (95.0,), disp)
    e = np.array([100.0, 10_000.0])
    lower, upper = fn.limits_at(spec, e, 95)
    z = stats.norm.ppf(0.975)
    if how == "log":
        expect_lo, expect_hi = np.exp(-z * np.sqrt(1 / e + tau2)), np.exp(z * np.sqrt(1 / e + tau2))
    else:  # square-root scale: theta = 1, s = 1 / (2 sqrt E), squared back
        half = z * np.sqrt(1 / (4 * e) + tau2)
        expect_lo, expect_hi = (1 - half) ** 2, (1 + half) ** 2
    np.testing.assert_allclose(lower, expect_lo, rtol=1e-12)
    np.testing.assert_allclose(upper, expect_hi, rtol=1e-12)
    # FunnelPlotR's "CQC" limits (1 +/- z s, not squared) are about half as wide
    if how == "sqrt":
        unsquared = 2 * z * np.sqrt(1 / (4 * e) + tau2)
        assert np.all((upper - lower) / unsquared > 1.9)


def test_square_root_lower_limit_is_clipped_at_zero_not_reflected():
    disp = fn.Dispersion("additive", "shmi", 0.1, "truncate", 2.0, 0.5, 10, 10)
    spec = fn.FunnelSpec("ratio", "sqrt", 1.0, (99.8,), disp)
    lower, upper = fn.limits_at(spec, np.array([1.0]), 99.8)
    # 1 - 3.09 * sqrt(0.25 + 0.5) < 0, so the lower limit is 0 (squaring would give about 2.8)
    assert float(lower[0]) == 0.0
    assert float(upper[0]) > 1


def test_arcsine_limits_back_transform_with_sin_squared():
    tau2 = 0.002
    disp = fn.Dispersion("additive", "shmi", 0.1, "truncate", 2.0, tau2, 10, 10)
    spec = fn.FunnelSpec("proportion", "arcsine", 0.2, (95.0,), disp)
    n = np.array([400.0])
    lower, upper = fn.limits_at(spec, n, 95)
    theta = math.asin(math.sqrt(0.2))
    half = stats.norm.ppf(0.975) * math.sqrt(1 / (4 * 400) + tau2)
    assert float(lower[0]) == pytest.approx(math.sin(theta - half) ** 2, rel=1e-12)
    assert float(upper[0]) == pytest.approx(math.sin(theta + half) ** 2, rel=1e-12)


# --------------------------------------------------------------------------- dispersion estimators
def test_dl_tau2_by_hand_on_shmi_scale():
    # ten providers, no trimming: phi = mean z^2, tau2 = (I phi - (I-1)) / (sum w - sum w^2 / sum w)
    e = np.array([50, 80, 120, 200, 300, 450, 600, 800, 1000, 1500.0])
    o = np.array([70, 60, 150, 170, 360, 400, 700, 720, 1150, 1400.0])
    z = np.sqrt(e) * np.log(o / e)
    phi = np.mean(z**2)
    tau2 = (10 * phi - 9) / (e.sum() - (e**2).sum() / e.sum())
    y, s, theta = fn.transform("ratio", o, e, 1.0, "log")
    d = fn.estimate_dispersion(y, s, theta, "additive", "shmi", trim=0.0)
    assert d.phi == pytest.approx(phi, rel=1e-12)
    assert d.tau2 == pytest.approx(tau2, rel=1e-12)
    assert d.kept == 10


def test_shmi_truncation_keeps_rank_groups_1_to_8_as_funnelplotr():
    # FunnelPlotR truncation(): group = floor(rank x 10 / (n + 1)), keep groups 1 to 8.
    # n = 21: ranks 1 and 2 are group 0 (2 x 10 / 22 < 1), ranks 20 and 21 group 9: 17 kept
    # (type-7 quantiles would keep 15).
    z_target = np.linspace(-3, 3, 21)
    e = np.full(21, 100.0)
    o = e * np.exp(z_target / 10)  # z = sqrt(E) ln(O/E) = z_target
    y, s, theta = fn.transform("ratio", o, e, 1.0, "log")
    d = fn.estimate_dispersion(y, s, theta, "additive", "shmi", trim=0.1)
    group = np.floor(np.arange(1, 22) * 10 / 22)
    kept = z_target[(group >= 1) & (group <= 8)]
    assert d.kept == len(kept) == 17
    assert d.phi == pytest.approx(np.mean(kept**2), rel=1e-9)
    with pytest.raises(ValueError, match="now called"):
        fn.estimate_dispersion(y, s, theta, "additive", "dl")


def test_shmi_reproduces_funnelplotr_six_unit_reference():
    # FunnelPlotR 0.5.0, funnel_plot(data_type = "SR", sr_method = "SHMI"): phi 2.948033, tau2 0.01947753;
    # its rank-group truncation keeps all six units
    data = pd.DataFrame(
        {
            "provider_code": list("ABCDEF"),
            "observed": [100, 150, 180, 80, 120, 225],
            "expected": [108, 112, 165, 95, 100, 220.0],
        }
    )
    res = fn.funnel(data, "ratio", tau2_method="shmi")
    d = res.dispersion.iloc[0]
    assert d["phi"] == pytest.approx(2.948033, abs=1e-6)
    assert d["tau2"] == pytest.approx(0.01947753, abs=1e-6)
    assert d["providers_kept"] == 6 and bool(d["applied"])
    # limits as FunnelPlotR draws them: exp(+/- 3.090232 sqrt(1/E + tau2))
    e = data["expected"].to_numpy()
    np.testing.assert_allclose(
        res.providers["upper_998"], np.exp(3.090232 * np.sqrt(1 / e + d["tau2"])), rtol=1e-6
    )
    assert (res.providers["outlier"] == "none").all()


def _null_simulation(reps: int, providers: int, tau: float, seed: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        e = rng.uniform(50, 2000, providers)
        o = rng.poisson(e * np.exp(rng.normal(0.0, tau, providers)))
        out.append(
            pd.DataFrame(
                {"provider_code": [f"P{i:03d}" for i in range(providers)], "observed": o, "expected": e}
            )
        )
    return out


def _share_outside_95(frames: list[pd.DataFrame], method: str | None) -> float:
    shares = []
    for data in frames:
        kwargs = {} if method is None else {"tau2_method": method}
        p = fn.funnel(data, "ratio", min_expected=0, **kwargs).providers
        shares.append(np.mean((p["ratio"] > p["upper_95"]) | (p["ratio"] < p["lower_95"])))
    return float(np.mean(shares))


def test_calibrated_tau2_flags_about_5_percent_without_true_outliers():
    # Known between-provider SD 0.1 on the log scale, no outliers: 100 x 150 providers.
    frames = _null_simulation(reps=100, providers=150, tau=0.1, seed=20260401)
    robust = _share_outside_95(frames, "robust")
    paule_mandel = _share_outside_95(frames, "paule_mandel")
    trimmed_dl = _share_outside_95(frames, "shmi")
    # 15,000 provider-draws: the standard error of a 5% share is 0.0018
    assert robust == pytest.approx(0.05, abs=0.01)
    assert paule_mandel == pytest.approx(0.05, abs=0.01)
    # SHMI / FunnelPlotR truncation removes the largest 20% of z^2 and so about 56% of
    # their sum (1 - 0.4377 for a normal): tau2 comes out far too small
    assert trimmed_dl > 0.15


def test_default_is_calibrated_on_400_providers_without_outliers():
    # Done-when of issue 13: no parameters, 400 providers, tau = 0.1, at most 8% outside 95% limits
    assert fn.DEFAULT_TAU2_METHOD == "robust"
    frames = _null_simulation(reps=5, providers=400, tau=0.1, seed=13)
    shares = [_share_outside_95([f], None) for f in frames]
    assert max(shares) <= 0.08
    assert np.mean(shares) == pytest.approx(0.05, abs=0.015)


def _tail_shares(limits, lo: float, hi: float, seed: int, size: int = 200_000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    e = rng.uniform(lo, hi, size)
    ratio = rng.poisson(e) / e
    lower, upper = limits(e, 95)
    return float(np.mean(ratio < lower)), float(np.mean(ratio > upper))


def test_count_limits_have_both_tails_near_nominal_by_simulation():
    # In-control Poisson providers with E spread over 20 to 500: each tail of the interpolated
    # quantile limits is within 0.5 points of 2.5%; the chi-squared interval is lopsided.
    below, above = _tail_shares(fn.poisson_limits, 20, 500, seed=1)
    assert below == pytest.approx(0.025, abs=0.005) and above == pytest.approx(0.025, abs=0.005)
    assert below + above == pytest.approx(0.05, abs=0.005)
    chi_below, chi_above = _tail_shares(fn.poisson_ratio_limits, 20, 500, seed=1)
    assert chi_below - chi_above > 0.005 and abs(chi_below - chi_above) > abs(below - above)
    # at E = 15 exactly (Seaton & Manktelow 2012): chi-squared 3.7% below, 1.1% above
    lo, hi = fn.poisson_ratio_limits(15.0, 95)
    assert stats.poisson.cdf(np.ceil(15 * lo) - 1, 15) == pytest.approx(0.037, abs=0.001)
    assert stats.poisson.sf(np.floor(15 * hi), 15) == pytest.approx(0.011, abs=0.001)
    # by construction, an interpolated lower limit never holds more than the nominal tail below it
    e = np.linspace(5, 400, 300)
    lower, upper = fn.poisson_limits(e, 95)
    assert np.all(stats.poisson.cdf(np.ceil(e * lower) - 1, e) <= 0.025 + 1e-12)
    assert np.all(stats.poisson.sf(np.floor(e * upper), e) >= 0.025 - 1e-12)


def test_binomial_count_limits_have_both_tails_near_nominal_by_simulation():
    rng = np.random.default_rng(2)
    n = rng.integers(50, 2000, 200_000)
    events = rng.binomial(n, 0.1)
    lower, upper = fn.binomial_limits(n, 0.1, 95)
    rate = events / n
    assert np.mean(rate < lower) == pytest.approx(0.025, abs=0.005)
    assert np.mean(rate > upper) == pytest.approx(0.025, abs=0.005)


def test_one_outlier_level_sets_the_outlier_column():
    frames = _null_simulation(reps=1, providers=60, tau=0.15, seed=9)
    res = fn.funnel(frames[0], levels=[95, 99.8], outlier_level=95)
    assert res.spec.outlier_level == 95
    assert (res.providers["outlier"] == res.providers["flag_95"]).all()
    # a level that is not among the limits is added to them
    res = fn.funnel(frames[0], levels=[95], outlier_level=99.8)
    assert (
        "upper_998" in res.providers.columns and (res.providers["outlier"] == res.providers["flag_998"]).all()
    )
    assert fn.funnel(frames[0]).spec.outlier_level == fn.DEFAULT_OUTLIER_LEVEL == 99.8


def test_trimmed_second_moment_of_a_normal():
    # E[Z^2 | |Z| < 1.2816] = 1 - 2 c phi(c) / 0.8 = 0.4377 (c = Phi^-1(0.9))
    assert fn._trimmed_second_moment(0.1, "truncate") == pytest.approx(0.43774, abs=1e-4)
    rng = np.random.default_rng(7)
    z = rng.standard_normal(400_000)
    lo, hi = np.quantile(z, [0.1, 0.9])
    assert fn._trimmed_second_moment(0.1, "winsorise") == pytest.approx(
        np.mean(np.clip(z, lo, hi) ** 2), abs=0.01
    )


def test_robust_tau2_resists_true_outliers_while_paule_mandel_inflates():
    rng = np.random.default_rng(11)
    tau = 0.1
    robust, pm = [], []
    for _ in range(40):
        e = rng.uniform(200, 3000, 150)
        u = rng.normal(0, tau, 150)
        u[:8] += 0.6  # eight true outliers, 6 SDs out
        o = rng.poisson(e * np.exp(u))
        y, s, theta = fn.transform("ratio", o, e, 1.0, "log")
        robust.append(fn.estimate_dispersion(y, s, theta, "additive", "robust").tau2)
        pm.append(fn.estimate_dispersion(y, s, theta, "additive", "paule_mandel").tau2)
    assert np.mean(robust) == pytest.approx(tau**2, rel=0.3)
    assert np.mean(pm) > 1.5 * tau**2


def test_no_overdispersion_falls_back_to_exact_limits():
    # Poisson data without between-provider variation: tau2 is usually 0 and limits are exact
    frames = _null_simulation(reps=1, providers=60, tau=0.0, seed=3)
    res = fn.funnel(frames[0], "ratio", tau2_method="paule_mandel")
    if res.dispersion.loc[0, "tau2"] == 0:
        lo, hi = fn.poisson_limits(res.providers["expected"].to_numpy(), 95)
        np.testing.assert_allclose(res.providers["lower_95"], lo)
        np.testing.assert_allclose(res.providers["upper_95"], hi)
    assert not res.dispersion.loc[0, "applied"] or res.dispersion.loc[0, "tau2"] > 0


# --------------------------------------------------------------------------- table behaviour
def test_small_providers_are_shown_not_flagged():
    data = pd.DataFrame(
        {
            "provider_code": ["A", "B", "C", "D"],
            "observed": [30, 100, 100, 100],
            "expected": [5.0, 100, 95, 105],
        }
    )
    res = fn.funnel(data, overdispersion="none", min_expected=10)
    p = res.providers.set_index("provider_code")
    # A: O/E = 6 with E = 5 is far above its 99.8% limit, but E < 10
    assert p.loc["A", "ratio"] > p.loc["A", "upper_998"]
    assert bool(p.loc["A", "small"]) and p.loc["A", "outlier"] == "none"
    assert list(res.providers["provider_code"]) == ["A", "B", "C", "D"]  # input order, not ranked


def test_bad_input_names_column_and_rows():
    data = pd.DataFrame({"provider_code": ["A", "B"], "observed": [3, -1], "expected": [2.0, 4.0]})
    with pytest.raises(ValueError, match="observed.*'B'"):
        fn.funnel(data)
    with pytest.raises(InputError, match="expected"):
        fn.funnel(data.drop(columns="expected"))
    with pytest.raises(ValueError, match="provider_code"):
        fn.funnel(pd.concat([data, data]).assign(observed=1))


def test_from_indicator_table_accepts_both_shapes_and_sums_repeated_rows():
    ratio = pd.DataFrame(
        {"provider_code": ["A", "A", "B"], "observed": [1, 2, 3], "expected": [1.5, 1.5, 2.0]}
    )
    frame, kind = fn.from_indicator_table(ratio)
    assert kind == "ratio"
    assert frame.set_index("provider_code").loc["A", "observed"] == 3
    assert frame.set_index("provider_code").loc["A", "rows"] == 2
    prop = pd.DataFrame({"provider_code": ["A", "B"], "numerator": [1, 2], "denominator": [10, 20]})
    frame, kind = fn.from_indicator_table(prop)
    assert kind == "proportion" and "observed" in frame.columns
    with pytest.raises(InputError, match="numerator and denominator"):
        fn.from_indicator_table(pd.DataFrame({"provider_code": ["A"], "x": [1]}))


def test_curves_cover_the_providers_and_narrow_with_precision():
    frames = _null_simulation(reps=1, providers=40, tau=0.1, seed=5)
    res = fn.funnel(frames[0])
    c = res.curves[res.curves["level"] == 95.0].sort_values("precision")
    assert c["precision"].min() <= res.providers["expected"].min()
    assert c["precision"].max() >= res.providers["expected"].max()
    width = (c["upper"] - c["lower"]).to_numpy()
    assert np.all(np.diff(width) <= 1e-12)


# --------------------------------------------------------------------------- real data: A&E 2018/19
@pytest.fixture(scope="module")
def ae_2018_19() -> pd.DataFrame:
    if not AE_PATH.exists():
        pytest.skip(f"Real A&E data not found at {AE_PATH} (it sits beside the repository in shared/data).")
    ae = pd.read_csv(AE_PATH, dtype={"type": "str", "org_code": "str"})
    ae["period"] = pd.to_datetime(ae["period"])
    year = ae[(ae["type"] == "1") & (ae["period"] >= "2018-04-01") & (ae["period"] < "2019-04-01")]
    out = year.groupby("org_code", as_index=False).agg(
        observed=("breaches", "sum"), denominator=("attendances", "sum")
    )
    return out.rename(columns={"org_code": "provider_code"})


def test_ae_pooled_target_by_hand(ae_2018_19):
    res = fn.funnel(ae_2018_19, "proportion")
    # target = all type 1 breaches / all type 1 attendances in 2018/19
    assert res.spec.target == pytest.approx(
        ae_2018_19["observed"].sum() / ae_2018_19["denominator"].sum(), rel=1e-12
    )
    assert 0.15 < res.spec.target < 0.25  # about 18% of type 1 attendances waited over four hours
    assert len(res.providers) == ae_2018_19["provider_code"].nunique()


def test_ae_limits_contain_target_and_widen_as_n_falls(ae_2018_19):
    res = fn.funnel(ae_2018_19, "proportion")
    p = res.providers.sort_values("denominator")
    t = res.spec.target
    for lab in ("95", "998"):
        assert (p[f"lower_{lab}"] < t).all() and (p[f"upper_{lab}"] > t).all()
        assert np.all(np.diff((p[f"upper_{lab}"] - p[f"lower_{lab}"]).to_numpy()) <= 1e-12)
    # limits are on the proportion scale (sin^2 back-transform), not on the arcsine scale
    assert (p["upper_998"] < 1).all() and (p["lower_998"] > 0).all()
    assert res.dispersion.loc[0, "phi"] > 1


def test_ae_shmi_reproduces_funnelplotr_and_the_default_agrees(ae_2018_19):
    """FunnelPlotR 0.5.0 on type 1 four-hour breaches, 2018/19 (data_type = "PR"): target 0.184614,
    phi 3828.85, tau2 0.00843625, no trust beyond 99.8%.

    Its proportion method winsorises the arcsine z-scores at their type-7 10th and 90th
    percentiles (every trust kept) before the DerSimonian-Laird step. Trusts differ hugely in
    four-hour performance (rates 3% to 42%), so without an overdispersion allowance nearly every
    trust would be flagged.
    """
    d = ae_2018_19
    assert len(d) == 137
    t = d["observed"].sum() / d["denominator"].sum()
    # hand calculation of FunnelPlotR's recipe on the arcsine scale
    s = 1 / (2 * np.sqrt(d["denominator"].to_numpy(float)))
    z = (np.arcsin(np.sqrt(d["observed"] / d["denominator"])).to_numpy() - math.asin(math.sqrt(t))) / s
    lo, hi = np.quantile(z, [0.1, 0.9])
    phi = np.mean(np.clip(z, lo, hi) ** 2)
    w = 1 / s**2
    tau2 = (137 * phi - 136) / (w.sum() - (w**2).sum() / w.sum())

    res = fn.funnel(d, "proportion", tau2_method="shmi")
    disp = res.dispersion.iloc[0]
    assert res.spec.target == pytest.approx(0.184614, abs=1e-6)
    assert disp["phi"] == pytest.approx(3828.85, abs=5e-3)
    assert disp["phi"] == pytest.approx(phi, rel=1e-12)
    assert disp["tau2"] == pytest.approx(0.00843625, abs=1e-6)
    assert disp["tau2"] == pytest.approx(tau2, rel=1e-12)
    assert disp["trim_method"] == "winsorise" and disp["providers_kept"] == 137
    assert (res.providers["outlier"] == "none").all()

    robust = fn.funnel(d, "proportion")
    assert robust.dispersion.loc[0, "tau2_method"] == "robust"
    assert robust.dispersion.loc[0, "tau2"] > disp["tau2"]
    assert (robust.providers["outlier"] != "none").sum() == 0
    naive = fn.funnel(d, "proportion", overdispersion="none")
    assert (naive.providers["outlier"] != "none").mean() > 0.9


# --------------------------------------------------------------------------- the sample: simulator truths
def test_sample_true_los_outliers_are_flagged_and_few_others():
    import json

    from helpers import SAMPLE_DIR, casemix, derive, io

    if not (SAMPLE_DIR / "truth.json").exists():
        pytest.skip("sample data not written yet (helpers.simulate)")
    truth = json.loads((SAMPLE_DIR / "truth.json").read_text())
    spells = casemix.add_casemix_bands(derive.add_spell_fields(io.load_table("spells")))
    pop, _ = casemix.indicator_population(spells, "los")
    model = casemix.fit_casemix(pop)
    high, low = set(truth["los_outliers"]["high"]), set(truth["los_outliers"]["low"])
    for method in ("shmi", "robust"):
        p = fn.funnel(model.providers, scale=model.dispersion, tau2_method=method).providers.set_index(
            "provider_code"
        )
        assert set(p.index[p["outlier"] == "high"]) >= high
        assert set(p.index[p["outlier"] == "low"]) >= low
        # the simulator's other providers vary by exp(N(0, 0.04)): at most two false alarms at 99.8%
        others = p[(p["outlier"] != "none") & ~p.index.isin(high | low)]
        assert len(others) <= 2, others
    # the chapter's statements: the default flags exactly the simulated four; Paule-Mandel, inflated
    # by them, flags none of them
    default = fn.funnel(model.providers, scale=model.dispersion).providers.set_index("provider_code")
    assert set(default.index[default["outlier"] != "none"]) == high | low
    pm = fn.funnel(model.providers, scale=model.dispersion, tau2_method="paule_mandel").providers
    assert not set(pm.loc[pm["outlier"] != "none", "provider_code"]) & (high | low)


def test_two_providers_get_exact_limits_without_overdispersion():
    data = pd.DataFrame({"provider_code": ["A", "B"], "observed": [15, 40], "expected": [15.0, 20.0]})
    res = fn.funnel(data, overdispersion="none")
    np.testing.assert_allclose(res.providers["lower_95"], fn.poisson_limits(np.array([15.0, 20.0]), 95)[0])
    # the shmi method draws FunnelPlotR's chi-squared limits
    shmi = fn.funnel(data, overdispersion="none", tau2_method="shmi")
    np.testing.assert_allclose(shmi.providers["lower_95"], [0.5596924, 0.6108260], atol=5e-7)
    assert list(res.providers["outlier"]) == ["none", "high"]  # 40 against 20 expected is beyond 99.8%
    with pytest.raises(ValueError, match="At least 3 providers"):
        fn.funnel(data)


def test_compare_flags_lists_every_provider_flagged_by_either_method():
    frames = _null_simulation(reps=1, providers=150, tau=0.1, seed=20260401)
    data = frames[0]
    table = fn.compare_flags(data, "ratio", min_expected=0, levels=[95, 99.8], outlier_level=95)
    robust = fn.funnel(data, min_expected=0, outlier_level=95).providers
    shmi = fn.funnel(data, tau2_method="shmi", min_expected=0, outlier_level=95).providers
    either = set(robust.loc[robust["outlier"] != "none", "provider_code"]) | set(
        shmi.loc[shmi["outlier"] != "none", "provider_code"]
    )
    assert set(table["provider_code"]) == either
    # SHMI's trimmed tau2 is smaller, so it flags everything robust flags and more
    assert (table["outlier_shmi"] != "none").sum() > (table["outlier_robust"] != "none").sum()
    assert list(table.columns) == ["provider_code", "ratio", "outlier_robust", "outlier_shmi", "agree"]
    assert (table["agree"] == (table["outlier_robust"] == table["outlier_shmi"])).all()
