"""Tests of helpers.casemix: peer-package fits, hand calculations and simulator truths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from helpers import SAMPLE_DIR, casemix


def _rows(n: int, seed: int, kind: str) -> pd.DataFrame:
    """Row-level data with three categorical covariates and a known model."""
    rng = np.random.default_rng(seed)
    a = rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])
    b = rng.choice(["1", "2"], n)
    c = rng.choice(["p", "q", "r", "s"], n)
    eta = 0.3 * (a == "y") - 0.5 * (a == "z") + 0.2 * (b == "2") + 0.4 * (c == "q") - 0.3 * (c == "s")
    if kind == "binary":
        y = rng.binomial(1, 1 / (1 + np.exp(-(eta - 1.0))))
    elif kind == "poisson":
        y = rng.poisson(np.exp(eta + 1.0))
    else:  # negative binomial, alpha = 0.5
        mu = np.exp(eta + 1.2)
        y = rng.poisson(rng.gamma(2.0, mu / 2.0))
    return pd.DataFrame(
        {
            "a": a,
            "b": b,
            "c": c,
            "outcome": y.astype(float),
            "provider_code": rng.choice(["P1", "P2", "P3"], n),
        }
    )


def _row_design(d: pd.DataFrame, model: casemix.CasemixModel) -> tuple[np.ndarray, list[str]]:
    """Row-level dummies with the same reference levels as the cell fit."""
    names = list(model.coefficients["term"])
    cols = [np.ones(len(d))]
    for nm in names[1:]:
        term, level = nm[:-1].split("[")
        cols.append((d[term] == level).to_numpy(float))
    return np.column_stack(cols), names


def test_binomial_on_cells_equals_row_level_logistic():
    d = _rows(4000, 1, "binary")
    m = casemix.fit_casemix(d, ["a", "b", "c"], "binomial")
    X, _ = _row_design(d, m)
    ref = sm.GLM(d["outcome"], X, family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(m.coefficients["estimate"], ref.params, atol=2e-4)
    np.testing.assert_allclose(m.coefficients["std_error"], ref.bse, rtol=1e-3)
    # expected deaths by provider: sum of the row-level predictions
    e_rows = pd.Series(ref.predict(X)).groupby(d["provider_code"].to_numpy()).sum()
    np.testing.assert_allclose(m.providers.set_index("provider_code")["expected"], e_rows, rtol=1e-4)


def test_poisson_on_cells_equals_row_level_poisson():
    d = _rows(4000, 2, "poisson")
    m = casemix.fit_casemix(d, ["a", "b", "c"], "poisson")
    X, _ = _row_design(d, m)
    ref = sm.GLM(d["outcome"], X, family=sm.families.Poisson()).fit()
    np.testing.assert_allclose(m.coefficients["estimate"], ref.params, atol=2e-4)
    # an unpenalised intercept with the canonical link: total expected = total observed
    assert m.providers["expected"].sum() == pytest.approx(d["outcome"].sum(), rel=1e-8)
    # row-level Pearson dispersion
    pearson = ((d["outcome"] - ref.mu) ** 2 / ref.mu).sum() / (len(d) - X.shape[1])
    assert m.dispersion == pytest.approx(pearson, rel=1e-3)


def test_negative_binomial_on_value_cells_equals_row_level_fit():
    d = _rows(3000, 3, "nb")
    m = casemix.fit_casemix(d, ["a", "b", "c"], "negative_binomial")
    X, _ = _row_design(d, m)
    ref = sm.NegativeBinomial(d["outcome"].to_numpy(), X).fit(disp=0, maxiter=200)
    np.testing.assert_allclose(m.coefficients["estimate"], ref.params[:-1], atol=1e-3)
    assert m.diagnostics.loc[0, "nb_alpha"] == pytest.approx(ref.params[-1], rel=5e-3)
    assert m.diagnostics.loc[0, "nb_alpha"] == pytest.approx(0.5, abs=0.1)  # the simulated alpha


def test_concordance_is_the_mann_whitney_auc_for_a_binary_outcome():
    rng = np.random.default_rng(4)
    score = rng.integers(0, 20, 600).astype(float)  # many ties
    y = rng.binomial(1, 1 / (1 + np.exp(-(score - 10) / 4)))
    u = stats.mannwhitneyu(score[y == 1], score[y == 0]).statistic
    auc = u / ((y == 1).sum() * (y == 0).sum())
    assert casemix.concordance(score, y) == pytest.approx(auc, rel=1e-12)


def test_concordance_by_brute_force_for_counts_and_weights():
    rng = np.random.default_rng(5)
    score = rng.integers(0, 6, 120).astype(float)
    y = rng.poisson(1 + score / 3)
    conc = disc = tie = 0.0
    for i in range(len(y)):
        for j in range(len(y)):
            if y[i] > y[j]:
                conc += score[i] > score[j]
                disc += score[i] < score[j]
                tie += score[i] == score[j]
    brute = (conc + 0.5 * tie) / (conc + disc + tie)
    assert casemix.concordance(score, y) == pytest.approx(brute, rel=1e-12)
    # weights count repeated observations
    w = rng.integers(1, 4, 120)
    assert casemix.concordance(score, y, w) == pytest.approx(
        casemix.concordance(np.repeat(score, w), np.repeat(y, w)), rel=1e-12
    )


def test_calibration_table_by_hand():
    table = casemix.calibration_by_decile(
        np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 4, 3, 8]), np.array([10, 10, 10, 10]), groups=2
    )
    # two groups of 20 spells: expected (1 + 2) and (3 + 4); observed 5 and 11
    np.testing.assert_allclose(table["expected_mean"], [3 / 20, 7 / 20])
    np.testing.assert_allclose(table["observed_mean"], [5 / 20, 11 / 20])
    np.testing.assert_allclose(table["ratio"], [5 / 3, 11 / 7])


def test_separation_gives_finite_expected_values():
    d = _rows(3000, 6, "binary")
    d.loc[d["c"] == "s", "outcome"] = 0.0  # a level with no events at all
    m = casemix.fit_casemix(d, ["a", "b", "c"], "binomial")
    assert bool(m.diagnostics.loc[0, "converged"])
    assert np.isfinite(m.providers["expected"]).all()
    assert m.calibration["expected_mean"].min() < 0.01  # the no-event level predicts nearly 0


def test_rare_levels_pooled_and_missing_kept_as_a_level():
    d = _rows(2000, 7, "binary")
    d.loc[:9, "c"] = "rare"
    d["c"] = d["c"].astype("object")
    d.loc[10:19, "c"] = None
    m = casemix.fit_casemix(d, ["a", "b", "c"], "binomial", min_level_spells=15)
    terms = set(m.coefficients["term"])
    assert "c[other]" in terms or m.coefficients["reference"].eq("other").any()
    assert "c[rare]" not in terms
    assert m.providers["denominator"].sum() == 2000  # nothing dropped
    row = m.pooled_levels[m.pooled_levels["term"] == "c"]
    assert int(row["spells_pooled"].sum()) == 20  # the 10 rare and the 10 missing (pooled as too rare)


def test_bad_outcome_is_an_error_naming_column_and_rows():
    d = _rows(100, 8, "binary")
    d.loc[3, "outcome"] = 2.0
    with pytest.raises(ValueError, match="'outcome'.*0 or 1"):
        casemix.fit_casemix(d, ["a"], "binomial")
    with pytest.raises(KeyError, match="zz"):
        casemix.fit_casemix(d.assign(outcome=0.0), ["zz"], "binomial")


# --------------------------------------------------------------------------- the sample data
@pytest.fixture(scope="module")
def sample():
    from helpers import derive, io

    if not (SAMPLE_DIR / "spells.csv").exists() and not (SAMPLE_DIR / "spells.parquet").exists():
        pytest.skip("sample spells not written yet (helpers.simulate)")
    spells = casemix.add_casemix_bands(derive.add_spell_fields(io.load_table("spells")))
    truth = json.loads((SAMPLE_DIR / "truth.json").read_text())
    return spells, truth


def test_sample_los_model_recovers_simulator_coefficients(sample):
    spells, truth = sample
    pop, exclusions = casemix.indicator_population(spells, "los")
    assert exclusions.loc[0, "rows_after"] + exclusions.loc[0, "rows_excluded"] == len(spells)
    m = casemix.fit_casemix(pop, family="poisson")
    coef = m.coefficients.set_index("term")["estimate"]
    model = truth["los_model"]
    # frailty bands against < 5 (the reference, the commonest band)
    assert coef["frailty_band[5-15]"] == pytest.approx(model["frailty_band"]["5-15"], abs=0.04)
    assert coef["frailty_band[>15]"] == pytest.approx(model["frailty_band"][">15"], abs=0.04)
    # adult age bands against 85+
    for band in ("45-64", "65-74", "75-84"):
        assert coef[f"age_band[{band}]"] == pytest.approx(
            model["age_band"][band] - model["age_band"]["85+"], abs=0.04
        )
    assert m.diagnostics.loc[0, "c_statistic"] > 0.7
    assert m.calibration["ratio"].between(0.95, 1.05).all()
    # bed days are over-dispersed: shape 1.8 / 4 negative binomial gives Pearson phi well above 1
    assert m.dispersion > 2


def test_sample_provider_ratios_track_true_multipliers(sample):
    spells, truth = sample
    pop, _ = casemix.indicator_population(spells, "los")
    m = casemix.fit_casemix(pop, family="poisson")
    ratio = (m.providers["observed"] / m.providers["expected"]).to_numpy()
    true = m.providers["provider_code"].map(truth["los_provider_multiplier"]).to_numpy()
    assert np.corrcoef(ratio, true)[0, 1] > 0.9
    for code in truth["los_outliers"]["high"] + truth["los_outliers"]["low"]:
        got = ratio[m.providers["provider_code"] == code][0]
        assert got == pytest.approx(truth["los_provider_multiplier"][code], abs=0.08)


def test_sample_deprivation_term_only_when_asked(sample):
    spells, truth = sample
    pop, _ = casemix.indicator_population(spells, "los")
    without = casemix.fit_casemix(pop, family="poisson", terms=list(casemix.DEFAULT_TERMS) + ["imd_decile"])
    assert not without.coefficients["term"].str.startswith("imd_decile").any()
    with_dep = casemix.fit_casemix(pop, family="poisson", include_deprivation=True)
    coef = with_dep.coefficients.set_index("term")["estimate"]
    # the simulator lengthens stays by 0.02 on the log scale per decile more deprived:
    # least (10) against most (1) deprived is about -0.18; omitted provider effects blur it
    assert -0.3 < coef["imd_decile[10]"] < -0.1


def test_sample_year_restriction_and_bed_days_per_event(sample):
    spells, truth = sample
    one, years, excl = casemix.restrict_to_year(spells, "2024/25")
    assert years == 1 and (one["financial_year"] == "2024/25").all()
    assert excl.loc[0, "rows_excluded"] == (spells["financial_year"] != "2024/25").sum()
    _, all_years, _ = casemix.restrict_to_year(spells)
    # per-year figures divide by the coverage (first to last admission: two whole years), not by the
    # number of financial years some discharge touches
    days = (spells["admission_date"].max() - spells["admission_date"].min()).days + 1
    assert all_years == round(days / 365.25, 2) == 2.0
    with pytest.raises(ValueError, match="1999/00"):
        casemix.restrict_to_year(spells, "1999/00")
    # by hand: mean stay of ordinary elective spells
    ordinary = spells["elective"] & ~spells["day_case"]
    assert casemix.bed_days_per_event(spells, "day_case") == pytest.approx(
        spells.loc[ordinary, "los_days"].mean()
    )
    assert casemix.bed_days_per_event(spells, "mortality") is None


def test_empty_population_is_a_plain_input_error_before_any_fitting():
    from helpers.io import InputError

    d = _rows(200, 9, "binary")
    with pytest.raises(InputError, match="population is empty") as generic:
        casemix.fit_casemix(d.iloc[:0], ["a", "b"], "binomial")
    assert "full 30-day follow-up" in str(generic.value)
    with pytest.raises(InputError) as named:
        casemix.fit_casemix(d.iloc[:0], ["a", "b"], "poisson", indicator="readmission_30d")
    message = str(named.value)
    assert message == casemix.empty_population_message("readmission_30d")
    assert (
        "emergency readmission within 30 days" in message
        and "no spell has a full 30-day follow-up inside the extract" in message
    )
    # the cell-level fit (the engines' path) says the same
    pcells = pd.DataFrame(
        {
            "a": pd.Series([], dtype="str"),
            "b": pd.Series([], dtype="str"),
            "provider_code": pd.Series([], dtype="str"),
            "n": pd.Series([], dtype="int64"),
            "events": pd.Series([], dtype="float64"),
        }
    )
    with pytest.raises(InputError) as cells:
        casemix.fit_cells(pcells, ["a", "b"], "binomial", indicator="readmission_30d")
    assert str(cells.value) == message


def test_bands_at_their_boundaries():
    """The bands (helpers.casemix.term_sql, run on the frame by DuckDB) at each cut point, worked by hand."""
    spells = pd.DataFrame(
        {
            "age": pd.array([0, 17, 18, 44, 45, 64, 65, 74, 75, 84, 85, 120], dtype="Int64"),
            "frailty_score": pd.array([0, 4.9, 5, 15, 15.5, None, 0, 0, 0, 0, 0, 0], dtype="Float64"),
            "charlson_index": pd.array([0, 1, 2, 3, 4, 5, None, 0, 0, 0, 0, 0], dtype="Int64"),
        },
        index=range(100, 112),
    )
    out = casemix.add_casemix_bands(spells)
    assert list(out.index) == list(spells.index)  # the frame's own index and order are kept
    assert out["age_band"].tolist() == [
        "0-17",
        "0-17",
        "18-44",
        "18-44",
        "45-64",
        "45-64",
        "65-74",
        "65-74",
        "75-84",
        "75-84",
        "85+",
        "85+",
    ]
    assert out["frailty_band"].tolist()[:6] == ["<5", "<5", "5-15", "5-15", ">15", "missing"]
    assert out["charlson_band"].tolist()[:7] == ["0", "1-2", "1-2", "3-4", "3-4", "5+", "missing"]
    assert str(out["age_band"].dtype) == "str"
