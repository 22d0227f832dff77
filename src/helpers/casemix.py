"""Case-mix adjustment by indirect standardisation, fitted on aggregated cells.

One model of the outcome on case mix only (age band, sex, admission method,
HRG, frailty band; deprivation only if asked), pooled over all providers with
no provider term. Each spell's expected value is the model's prediction for
its cell; a provider's expected E is the sum over its spells and its observed
O the sum of the outcome; the indicator is O/E (METHODS.md section 1; the
approach of NHS Digital's SHMI).

Fitting on cells: spells are grouped by the case-mix covariates and the model
is fitted to the cells' totals - a binomial GLM on (events, non-events), a
Poisson GLM on the total with log(spells) as offset. For categorical
covariates this is the same maximum-likelihood fit as the row-level model
(the cell totals are sufficient statistics), and it is hundreds of times
smaller. The negative binomial likelihood is not a function of cell totals,
so it is fitted on (cell, outcome value) counts with frequency weights -
again exactly the row-level fit - with its shape profiled. Continuous
covariates are banded: age in the bands 0-17, 18-44, 45-64, 65-74, 75-84,
85+; the Hospital Frailty Risk Score in its published risk groups < 5, 5-15,
> 15 (Gilbert et al., Lancet 2018;391:1775-82).

Deprivation is left out by default: adjusting for it treats worse outcomes
of deprived patients as expected and so hides inequality (NHS England's
Core20PLUS5). ``include_deprivation=True`` adds the IMD decile.

Diagnostics: the c-statistic (Harrell's concordance; the area under the ROC
curve for a binary outcome) and calibration by decile of predicted risk.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import gammaln

from helpers import comorbidity, indicators, periods
from helpers.engine import DuckDB, literal, query_frame, quote
from helpers.io import InputError, table_columns

Family = Literal["binomial", "poisson", "negative_binomial"]

AGE_BREAKS = [0, 18, 45, 65, 75, 85, np.inf]
AGE_LABELS = ["0-17", "18-44", "45-64", "65-74", "75-84", "85+"]
FRAILTY_BREAKS = [-np.inf, 5, 15.0000001, np.inf]
FRAILTY_LABELS = ["<5", "5-15", ">15"]

#: Default case-mix terms (columns after :func:`add_casemix_bands`).
DEFAULT_TERMS: tuple[str, ...] = indicators.DEFAULT_TERMS
#: The deprivation term added by ``include_deprivation=True``.
DEPRIVATION_TERM = "imd_decile"
#: Levels with fewer spells than this are pooled into "other" (stabilises the fit).
MIN_LEVEL_SPELLS = 30
MISSING = "missing"
OTHER = "other"

#: How an indicator is built from spells: the records of :mod:`helpers.indicators`.
IndicatorDefinition = indicators.Indicator
#: The indicators the variation notebook offers (published definitions and their generic versions).
INDICATORS: dict[str, IndicatorDefinition] = indicators.INDICATORS


def indicator_definition(
    name: str,
    aggregate: bool = False,
    higher_is_better: bool | None = None,
    resolved: IndicatorDefinition | None = None,
) -> IndicatorDefinition:
    """The definition of an indicator by name.

    From spells, only the :data:`INDICATORS` can be built. An aggregate
    ``indicator`` file may carry any measure (four-hour breaches, say): it then
    gets a plain definition named after it, lower being better unless
    ``higher_is_better`` says otherwise. ``resolved``: the definition that
    applied to the spells (:func:`helpers.indicators.resolve`), to keep its label.
    """
    if name in INDICATORS:
        d = resolved if resolved is not None else INDICATORS[name]
        return d if higher_is_better is None else replace(d, higher_is_better=bool(higher_is_better))
    if not aggregate:
        raise InputError(
            f"indicator must be one of {', '.join(INDICATORS)} when built from spells; got {name!r}."
        )
    label = str(name).replace("_", " ")
    return IndicatorDefinition(
        name, name, "binomial", "as supplied in the indicator file", bool(higher_is_better), "events", label
    )


# --------------------------------------------------------------------------- preparing spells
def add_casemix_bands(spells: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``spells`` with ``age_band``, and ``frailty_band`` and ``charlson_band`` where their scores exist.

    Bands as in the module docstring; a missing frailty score becomes
    ``"missing"`` (a level of its own, not a dropped row). The bands are the
    SQL of :func:`term_sql`, run on the frame by DuckDB (the same SQL the
    engines run on a file).
    """
    out = spells.copy()
    bands = [(band, need) for band, need in BANDS if need in spells.columns]
    if not bands:
        return out
    frame = pd.DataFrame(
        {need: pd.to_numeric(spells[need]).astype("Float64").to_numpy() for _, need in bands}
    )
    frame["_rownum"] = np.arange(len(frame))
    be = DuckDB()
    try:
        be.con.register("bands_frame", frame)
        present = [need for _, need in bands]
        cols = ", ".join(f"{term_sql(band, present)} AS {band}" for band, _ in bands)
        result = be.arrow(f"SELECT {cols} FROM bands_frame ORDER BY _rownum").to_pandas()
    finally:
        be.close()
    for band, _ in bands:
        out[band] = result[band].astype("str").to_numpy()
    return out


#: The case-mix bands and the column each is cut from (:func:`term_sql` holds the cut points' SQL).
BANDS: tuple[tuple[str, str], ...] = (
    ("age_band", "age"),
    ("frailty_band", "frailty_score"),
    ("charlson_band", "charlson_index"),
)


def indicator_population(spells: pd.DataFrame, indicator: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spells in the indicator's population, with its outcome in ``outcome``.

    ``spells`` must carry the derived fields of
    :func:`helpers.derive.add_spell_fields` (and, for a published indicator,
    the outcome of :func:`helpers.indicators.add_outcome`, added here when
    missing). The definition is :func:`helpers.indicators.resolve` for the
    spells' columns. Returns the population and an ``exclusions`` table
    (step, rows_before, rows_excluded, rows_after, reason), one row per step
    of the definition, so that nothing is dropped silently.
    """
    if indicator not in INDICATORS:
        raise ValueError(f"indicator must be one of {', '.join(INDICATORS)}; got {indicator!r}.")
    d = indicators.resolve(indicator, list(spells.columns), deaths="died_30d" in spells.columns)
    needed = {
        "los": ["los_days", "day_case"],
        "readmission": ["readmission_eligible", "emergency"],
        "day_case": ["day_case", "elective"],
        "mortality": ["died"],
    }[d.kind]
    missing = [c for c in needed if c not in spells.columns]
    if missing:
        raise KeyError(
            f"Spells: column(s) {', '.join(missing)} missing; run helpers.derive.add_spell_fields first."
        )
    if d.outcome not in spells.columns:
        spells = indicators.add_outcome(spells, d)
    return indicators.population(spells, d)


def restrict_to_year(
    spells: pd.DataFrame, financial_year: str | None = None
) -> tuple[pd.DataFrame, float, pd.DataFrame]:
    """Spells discharged in one NHS financial year, or all of them.

    Returns the spells, the length in years of the period they cover (so an
    opportunity can be expressed per year: the extract's coverage of
    :func:`helpers.periods.coverage`, inferred from the admission dates, cut
    to the financial year when one is chosen; not the number of financial
    years that some discharge touches) and an exclusions table (step,
    rows_before, rows_excluded, rows_after, reason). Needs ``financial_year``
    from :func:`helpers.derive.add_spell_fields`.
    """
    if "financial_year" not in spells.columns:
        raise KeyError("Spells: column 'financial_year' missing; run helpers.derive.add_spell_fields first.")
    cover = periods.coverage(spells)
    if financial_year is None:
        keep = pd.Series(True, index=spells.index)
    else:
        keep = spells["financial_year"] == financial_year
        if not keep.any():
            years = ", ".join(sorted(spells["financial_year"].dropna().unique()))
            raise ValueError(
                f"Spells: no spell discharged in financial year {financial_year!r}; the data cover {years}."
            )
        cover = cover.clip(*periods.financial_year_bounds(financial_year))
    out = spells.loc[keep]
    exclusions = pd.DataFrame(
        {
            "step": [f"financial year {financial_year}" if financial_year else "all financial years"],
            "rows_before": [len(spells)],
            "rows_excluded": [int((~keep).sum())],
            "rows_after": [len(out)],
            "reason": ["discharged in another financial year" if financial_year else "none excluded"],
        }
    )
    return out, cover.years, exclusions


#: Bed days one avoided event releases, by kind of indicator, as SQL over the derived spells
#: (``{where}``: the spells it is measured on): what :func:`bed_days_per_event` and
#: :func:`helpers.variation.prepare_variation` compute. ``los`` is 1 and ``mortality`` has none.
BED_DAYS_PER_EVENT_SQL: dict[str, str] = {
    "readmission": "AVG(CASE WHEN {where} AND emergency THEN los_days END)",
    "day_case": "AVG(CASE WHEN {where} AND elective AND NOT day_case THEN los_days END)",
}


def bed_days_per_event(spells: pd.DataFrame, indicator: str) -> float | None:
    """Bed days that one avoided event releases, to convert an opportunity to bed days.

    ``los``: 1 (the opportunity is already in bed days). ``readmission_30d``:
    the mean length of stay of emergency spells (what an avoided emergency
    admission would have used). ``day_case``: the mean length of stay of
    ordinary elective spells (a spell converted to a day case releases it).
    ``mortality``: None - a death is not converted to bed days or pounds.
    The means are the SQL of :data:`BED_DAYS_PER_EVENT_SQL`, run on the frame by DuckDB.
    """
    kind = INDICATORS[indicator].kind if indicator in INDICATORS else None
    if kind == "los":
        return 1.0
    if kind in BED_DAYS_PER_EVENT_SQL:
        frame = pd.DataFrame(
            {
                "los_days": spells["los_days"].to_numpy(),
                **{c: spells[c].astype(bool).to_numpy() for c in ("emergency", "elective", "day_case")},
            }
        )
        mean = query_frame(frame, BED_DAYS_PER_EVENT_SQL[kind].format(where="TRUE") + " AS m", per_row=False)
        value = mean["m"].iloc[0]
        return float("nan") if pd.isna(value) else float(value)
    if kind == "mortality":
        return None
    raise ValueError(f"indicator must be one of {', '.join(INDICATORS)}; got {indicator!r}.")


def model_terms(terms: Sequence[str], include_deprivation: bool = False) -> list[str]:
    """The model's terms: ``terms`` without repeats, with :data:`DEPRIVATION_TERM` added or removed."""
    terms = list(dict.fromkeys(terms))
    if include_deprivation and DEPRIVATION_TERM not in terms:
        terms.append(DEPRIVATION_TERM)
    if not include_deprivation and DEPRIVATION_TERM in terms:
        terms.remove(DEPRIVATION_TERM)
    return terms


#: Why an indicator's population can be empty, in plain words (see :func:`empty_population_message`).
_EMPTY_BECAUSE: dict[str, str] = {
    "los": "every spell is a day case (planned same-day care), and day cases are not part of length of stay",
    "readmission": (
        "no spell has a full 30-day follow-up inside the extract: a spell counts only if the patient left "
        "hospital alive and the 30 days from discharge end by the last admission date in the file, so a short "
        "extract (a few thousand rows, or a few weeks of admissions) may have none"
    ),
    "day_case": "the spells include no elective admission",
    "mortality": "no spell has a recorded discharge method",
}


def empty_population_message(indicator: str | None = None) -> str:
    """The message of the :class:`helpers.io.InputError` raised when an indicator's population is empty."""
    if indicator in INDICATORS:
        d = INDICATORS[indicator]
        return (
            f"Cannot fit the case-mix model for {d.label} ({d.name}): the indicator's population is empty - "
            f"there are no {d.population} - so there is no spell to compare providers on. This can happen when "
            f"{_EMPTY_BECAUSE[d.kind]}; or when the financial year chosen has none. "
            "Use a longer extract, another financial year or another indicator."
        )
    return (
        "Cannot fit the case-mix model: the indicator's population is empty, so there is no spell to compare "
        "providers on. This can happen when no spell in the extract meets the indicator's definition - for "
        "emergency readmission within 30 days, when no spell has a full 30-day follow-up inside the extract. "
        "Use a longer extract, another financial year or another indicator."
    )


def _level_text(values: pd.Series) -> pd.Series:
    """Term values as text, missing as ``"missing"``."""
    return pd.Series(
        [
            MISSING if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v)
            for v in values
        ],
        index=values.index,
        dtype="str",
    )


def _design(cells: pd.DataFrame, terms: Sequence[str]) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """Intercept plus treatment dummies; the reference is each term's most common level."""
    cols = [np.ones(len(cells))]
    names = ["intercept"]
    refs = {}
    for term in terms:
        weight = cells.groupby(term, observed=True)["n"].sum()
        ref = str(weight.idxmax())
        refs[term] = ref
        for level in sorted(weight.index.astype("str")):
            if level == ref:
                continue
            cols.append((cells[term].astype("str") == level).to_numpy(float))
            names.append(f"{term}[{level}]")
    return np.column_stack(cols), names, refs


# --------------------------------------------------------------------------- diagnostics
def concordance(score: np.ndarray, outcome: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Harrell's C from (possibly weighted) observations.

    Among pairs with different outcomes, the share in which the higher score
    goes with the higher outcome, ties in score counting one half (Harrell et
    al., Stat Med 1996;15:361). For a binary outcome this is the area under
    the ROC curve (the Mann-Whitney U / (n1 n0)). ``weight`` counts identical
    observations, so cells can be passed instead of rows; computed from a
    score-by-outcome table with cumulative sums.
    """
    score = np.asarray(score, float)
    outcome = np.asarray(outcome, float)
    w = np.ones(len(score)) if weight is None else np.asarray(weight, float)
    a_vals, a = np.unique(score, return_inverse=True)
    b_vals, b = np.unique(outcome, return_inverse=True)
    if len(b_vals) < 2:
        return float("nan")
    table = np.zeros((len(a_vals), len(b_vals)))
    np.add.at(table, (a, b), w)
    cum = table.cumsum(axis=0).cumsum(axis=1)  # cum[i, j] = sum over score <= i, outcome <= j
    col_tot = table.sum(axis=0).cumsum()  # outcome <= j, any score
    below_both = np.zeros_like(table)
    below_both[1:, 1:] = cum[:-1, :-1]
    # pairs with lower outcome and higher score: outcome <= j-1 minus (score <= i and outcome <= j-1)
    lower_outcome = np.zeros_like(table)
    lower_outcome[:, 1:] = col_tot[None, :-1] - cum[:, :-1]
    row_cum = table.cumsum(axis=1)
    same_score_lower = np.zeros_like(table)
    same_score_lower[:, 1:] = row_cum[:, :-1]
    conc = float((table * below_both).sum())
    disc = float((table * lower_outcome).sum())
    tied = float((table * same_score_lower).sum())
    return (conc + 0.5 * tied) / (conc + disc + tied)


def calibration_by_decile(
    predicted: np.ndarray, observed_total: np.ndarray, n: np.ndarray, groups: int = 10
) -> pd.DataFrame:
    """Observed against expected by decile of predicted value, from cells.

    Cells are ordered by predicted mean per spell and cut into ``groups``
    groups of about equal numbers of spells (a cell is not split, so groups
    are only about equal). Columns: decile, spells, expected_mean,
    observed_mean, ratio (observed / expected).
    """
    order = np.argsort(predicted, kind="stable")
    mu, y, m = (
        np.asarray(predicted)[order],
        np.asarray(observed_total, float)[order],
        np.asarray(n, float)[order],
    )
    mid = np.cumsum(m) - m / 2
    decile = np.minimum((mid / m.sum() * groups).astype(int) + 1, groups)
    frame = pd.DataFrame({"decile": decile, "spells": m, "expected": mu * m, "observed": y})
    out = frame.groupby("decile", as_index=False)[["spells", "expected", "observed"]].sum()
    out["expected_mean"] = out["expected"] / out["spells"]
    out["observed_mean"] = out["observed"] / out["spells"]
    out["ratio"] = out["observed"] / out["expected"]
    out["spells"] = out["spells"].astype("int64")
    return out[["decile", "spells", "expected_mean", "observed_mean", "ratio"]]


# --------------------------------------------------------------------------- the model
@dataclass
class CasemixModel:
    """A fitted case-mix model and its result tables.

    ``providers``: provider_code, denominator (spells), observed (O, sum of
    the outcome), expected (E, sum of predictions), observed_mean,
    expected_mean. ``diagnostics``: one row - indicator outcome, family,
    terms, spells, cells, parameters, c_statistic, pearson_dispersion
    (row-level Pearson chi-squared / residual df; 1 for a binomial
    outcome), nb_alpha (negative binomial only), converged. ``calibration``: see
    :func:`calibration_by_decile`. ``coefficients``: term, estimate,
    std_error (log odds or log rate against the reference level).
    ``pooled_levels``: rare levels pooled into "other", and missing values
    kept as a level.
    """

    providers: pd.DataFrame
    diagnostics: pd.DataFrame
    calibration: pd.DataFrame
    coefficients: pd.DataFrame
    pooled_levels: pd.DataFrame
    terms: list[str] = field(default_factory=list)
    family: str = "poisson"

    @property
    def dispersion(self) -> float:
        """Within-provider dispersion to pass to :func:`helpers.funnel.funnel` as ``scale``."""
        return float(self.diagnostics.loc[0, "pearson_dispersion"])


#: Ridge penalty on the non-intercept coefficients (on the summed log-likelihood).
#: Negligible for levels with events; it keeps a level with no events (an HRG
#: with no deaths: "separation") at a large finite negative coefficient
#: instead of letting the fit diverge, and makes a rank-deficient design
#: (an HRG that only occurs with one admission method) solvable.
RIDGE = 1e-4


@dataclass
class _Fit:
    params: np.ndarray
    bse: np.ndarray
    iterations: int
    converged: bool


def _irls(
    X: np.ndarray,
    y: np.ndarray,
    family: str,
    *,
    trials: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    alpha: float = 0.0,
    ridge: float = RIDGE,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> _Fit:
    """Penalised iteratively reweighted least squares (Newton) for the three GLMs.

    ``binomial``: y events out of ``trials``, logit link. ``poisson``: y counts
    with log link and ``offset``. ``negative_binomial``: NB2 with variance
    mu + alpha mu^2, log link, frequency ``weights`` (McCullagh & Nelder 1989,
    section 2.5). Penalty ``ridge`` x ||beta[1:]||^2 / 2.
    """
    n_obs, p = X.shape
    off = np.zeros(n_obs) if offset is None else offset
    f = np.ones(n_obs) if weights is None else weights
    pen = np.full(p, ridge)
    pen[0] = 0.0
    beta = np.zeros(p)
    if family == "binomial":
        rate = np.clip(y.sum() / trials.sum(), 1e-6, 1 - 1e-6)
        beta[0] = np.log(rate / (1 - rate))
    else:
        beta[0] = np.log(max((f * y).sum(), 1e-9) / (f * np.exp(off)).sum())

    def loglik(b: np.ndarray) -> float:
        eta = X @ b + off
        if family == "binomial":
            ll = y * eta - trials * np.logaddexp(0, eta)
        elif family == "poisson":
            ll = y * eta - np.exp(eta)
        else:
            mu = np.exp(eta)
            ll = y * np.log(mu) - (y + 1 / alpha) * np.log1p(alpha * mu)
        return float((f * ll).sum() - 0.5 * (pen * b**2).sum())

    current = loglik(beta)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count of iterations is returned
        eta = X @ beta + off
        if family == "binomial":
            prob = 1 / (1 + np.exp(-eta))
            w = trials * prob * (1 - prob)
            score_resid = y - trials * prob
        elif family == "poisson":
            mu = np.exp(eta)
            w, score_resid = mu, y - mu
        else:
            mu = np.exp(eta)
            w = f * mu / (1 + alpha * mu)
            score_resid = f * (y - mu) / (1 + alpha * mu)
        grad = X.T @ score_resid - pen * beta
        hess = (X * w[:, None]).T @ X + np.diag(pen) + 1e-12 * np.eye(p)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while True:
            cand = beta + scale * step
            new = loglik(cand)
            if new >= current - 1e-12 or scale < 1e-4:
                break
            scale /= 2
        beta, gain, current = cand, new - current, new
        if np.max(np.abs(scale * step)) < tol or abs(gain) < tol * (1 + abs(current)):
            converged = True
            break
    cov = np.linalg.inv(hess)
    return _Fit(beta, np.sqrt(np.clip(np.diag(cov), 0, None)), it, converged)


def _nb_loglik(y: np.ndarray, mu: np.ndarray, alpha: float, f: np.ndarray) -> float:
    r = 1 / alpha
    ll = gammaln(y + r) - gammaln(r) - gammaln(y + 1) + r * np.log(r / (r + mu)) + y * np.log(mu / (r + mu))
    return float((f * ll).sum())


def _fit_negative_binomial(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[_Fit, float]:
    """NB2 on (cell, value) rows with frequency weights; alpha by profile likelihood."""

    def neg(log_alpha: float) -> float:
        a = float(np.exp(log_alpha))
        fit = _irls(X, y, "negative_binomial", weights=w, alpha=a)
        return -_nb_loglik(y, np.exp(X @ fit.params), a, w)

    best = optimize.minimize_scalar(
        neg, bounds=(np.log(1e-4), np.log(50.0)), method="bounded", options={"xatol": 1e-5}
    )
    alpha = float(np.exp(best.x))
    return _irls(X, y, "negative_binomial", weights=w, alpha=alpha), alpha


def fit_cells(
    pcells: pd.DataFrame,
    terms: Sequence[str] = DEFAULT_TERMS,
    family: Family = "poisson",
    *,
    vcells: pd.DataFrame | None = None,
    include_deprivation: bool = False,
    min_level_spells: int = MIN_LEVEL_SPELLS,
    provider: str = "provider_code",
    outcome: str = "outcome",
    indicator: str | None = None,
) -> CasemixModel:
    """Fit the case-mix model on aggregated cells and return O and E by provider.

    The one implementation of the fit: :func:`fit_casemix` builds the cells
    from rows and calls it; :mod:`helpers.engine` builds them in SQL.

    ``pcells``: one row per case-mix cell and provider with the ``terms``
    (text, missing as null), ``provider``, ``n`` (spells) and ``events`` (sum
    of the outcome). ``vcells`` (needed for the Poisson and negative binomial
    families): one row per case-mix cell and outcome value, with ``_y`` (the
    value) and ``w`` (spells). An optional ``_first`` column (the position of
    the cell's first spell in the rows) orders the sums as a row-level fit
    would, so the result is the same to the last bit whoever made the cells.

    Steps (module docstring; METHODS.md section 1): levels with fewer than
    ``min_level_spells`` spells pooled into "other", missing kept as a level
    "missing"; the GLM fitted on cell totals - binomial on events and
    non-events, Poisson with log(spells) as offset, negative binomial on
    (cell, value) counts with frequency weights (McCullagh & Nelder 1989,
    section 2.5); then O (sum of the outcome) and E (sum of the predictions)
    by provider. ``outcome`` names the outcome in the diagnostics table;
    ``indicator`` (a key of :data:`INDICATORS`) words the error raised when
    there are no spells. Raises :class:`helpers.io.InputError` when the cells
    hold no spell (an empty population).
    """
    terms = model_terms(terms, include_deprivation)
    if family not in ("binomial", "poisson", "negative_binomial"):
        raise ValueError(f"family must be 'binomial', 'poisson' or 'negative_binomial'; got {family!r}.")
    count_outcome = family != "binomial"
    if count_outcome and vcells is None:
        raise ValueError(f"The {family} family needs vcells (spells by case-mix cell and outcome value).")
    for term in terms:
        if term not in pcells.columns:
            raise KeyError(
                f"Case-mix term {term!r} is not a column of the cells; columns: {', '.join(map(str, pcells.columns))}."
            )
    if len(pcells) == 0 or int(pd.to_numeric(pcells["n"]).sum()) == 0:
        raise InputError(empty_population_message(indicator))
    # in the order of the cells' first rows, when known: sums then run as over the rows (bit for bit)
    pc = (
        pcells.sort_values("_first", kind="stable").reset_index(drop=True)
        if "_first" in pcells
        else pcells.copy()
    )
    pc["n"] = pc["n"].astype("int64")
    pc["events"] = pc["events"].astype("float64")
    vc = None
    if vcells is not None:
        vc = (
            vcells.sort_values("_first", kind="stable").reset_index(drop=True)
            if "_first" in vcells
            else vcells.copy()
        )
        vc["_y"] = vc["_y"].astype("float64")
        vc["w"] = vc["w"].astype("int64")
    log = []
    for term in terms:
        col = _level_text(pc[term])
        missing = pc[term].isna()
        counts = pc.groupby(col, sort=False)["n"].sum()
        rare = counts[counts < min_level_spells]
        if len(rare) and len(rare) < len(counts):
            col = col.where(~col.isin(rare.index), OTHER)
            log.append(
                {
                    "term": term,
                    "levels_pooled": len(rare),
                    "spells_pooled": int(rare.sum()),
                    "levels_kept": int(len(counts) - len(rare)),
                }
            )
        n_missing = int(pc.loc[missing, "n"].sum())
        if n_missing:
            log.append(
                {
                    "term": term,
                    "levels_pooled": 0,
                    "spells_pooled": 0,
                    "levels_kept": int(col.nunique()),
                    "missing_as_level": n_missing,
                }
            )
        if vc is not None:
            vcol = _level_text(vc[term])
            if len(rare) and len(rare) < len(counts):
                vcol = vcol.where(~vcol.isin(rare.index), OTHER)
            vc[term] = vcol
        pc[term] = col
    pooled = pd.DataFrame(log)
    pc[provider] = pc[provider].astype("str")
    pcells = pc.groupby(terms + [provider], sort=False)[["n", "events"]].sum().reset_index()
    cells = pcells.groupby(terms, observed=True, sort=True)[["n", "events"]].sum().reset_index()
    X, names, refs = _design(cells, terms)
    n = cells["n"].to_numpy(float)
    ev = cells["events"].to_numpy(float)
    total = int(pcells["n"].sum())
    alpha = np.nan
    if family == "binomial":
        res = _irls(X, ev, "binomial", trials=n)
        mu = 1 / (1 + np.exp(-(X @ res.params)))  # probability per spell
    elif family == "poisson":
        res = _irls(X, ev, "poisson", offset=np.log(n))
        mu = np.exp(X @ res.params)  # mean per spell
    else:
        vcell = vc.groupby(terms + ["_y"], sort=False)["w"].sum().reset_index()
        idx = cells[terms].reset_index().merge(vcell, on=terms, how="right")
        res, alpha = _fit_negative_binomial(
            X[idx["index"].to_numpy()], idx["_y"].to_numpy(float), idx["w"].to_numpy(float)
        )
        mu = np.exp(X @ res.params)
    cells["mu"] = mu

    # diagnostics from (cell, outcome value) counts
    if count_outcome:
        v = vc.groupby(terms + ["_y"], sort=False)["w"].sum().reset_index()
        v = v.merge(cells[terms + ["mu"]], on=terms, how="left")
        c_stat = concordance(v["mu"].to_numpy(), v["_y"].to_numpy(), v["w"].to_numpy())
        pearson = float((v["w"] * (v["_y"] - v["mu"]) ** 2 / v["mu"]).sum())
        dispersion = pearson / max(total - len(names), 1)
    else:
        c_stat = concordance(
            np.concatenate([mu, mu]),
            np.concatenate([np.ones(len(mu)), np.zeros(len(mu))]),
            np.concatenate([ev, n - ev]),
        )
        dispersion = 1.0
    calibration = calibration_by_decile(mu, ev, n)

    pcells = pcells.merge(cells[terms + ["mu"]], on=terms, how="left")
    pcells["expected"] = pcells["mu"] * pcells["n"]
    prov = (
        pcells.groupby(provider, sort=True)
        .agg(denominator=("n", "sum"), observed=("events", "sum"), expected=("expected", "sum"))
        .reset_index()
    )
    prov = prov.rename(columns={provider: "provider_code"})
    prov["observed_mean"] = prov["observed"] / prov["denominator"]
    prov["expected_mean"] = prov["expected"] / prov["denominator"]
    prov["denominator"] = prov["denominator"].astype("int64")
    diagnostics = pd.DataFrame(
        {
            "outcome": [outcome],
            "family": [family],
            "terms": [", ".join(terms)],
            "spells": [total],
            "cells": [int(len(cells))],
            "parameters": [len(names)],
            "c_statistic": [c_stat],
            "pearson_dispersion": [dispersion],
            "nb_alpha": [alpha],
            "converged": [res.converged],
        }
    )
    coefficients = pd.DataFrame(
        {"term": names, "estimate": np.asarray(res.params), "std_error": np.asarray(res.bse)}
    )
    coefficients["reference"] = [""] + [refs[nm.split("[")[0]] for nm in names[1:]]
    return CasemixModel(prov, diagnostics, calibration, coefficients, pooled, terms, family)


def fit_casemix(
    frame: pd.DataFrame,
    terms: Sequence[str] = DEFAULT_TERMS,
    family: Family = "poisson",
    *,
    outcome: str = "outcome",
    provider: str = "provider_code",
    include_deprivation: bool = False,
    min_level_spells: int = MIN_LEVEL_SPELLS,
    indicator: str | None = None,
) -> CasemixModel:
    """Fit the case-mix model on aggregated cells and return O and E by provider.

    ``frame`` holds one row per spell with the outcome (0/1 for binomial, a
    count such as length of stay for Poisson / negative binomial), the
    ``terms`` and the provider. ``include_deprivation`` adds
    :data:`DEPRIVATION_TERM`. Rows with a missing outcome are an error, not
    dropped. The rows are grouped into cells (case mix by provider, and for
    count outcomes case mix by outcome value) and fitted by :func:`fit_cells`.
    An empty ``frame`` (an indicator whose population has no spells) raises
    :class:`helpers.io.InputError`, worded for ``indicator`` when given.
    """
    terms = model_terms(terms, include_deprivation)
    for col in (outcome, provider):
        if col not in frame.columns:
            raise KeyError(f"Case-mix model: column {col!r} not found.")
    if len(frame) == 0:
        raise InputError(empty_population_message(indicator))
    y_all = pd.to_numeric(frame[outcome], errors="coerce")
    bad = y_all.isna() | (y_all < 0)
    if family == "binomial":
        bad |= ~y_all.isin([0, 1])
    if bad.any():
        rows = frame.loc[bad, [provider, outcome]].head(5).to_dict("records")
        raise ValueError(
            f"Case-mix model: column {outcome!r} must be {'0 or 1' if family == 'binomial' else 'a count >= 0'} in every row; "
            f"{int(bad.sum())} row(s) are not, for example {rows}."
        )
    if family not in ("binomial", "poisson", "negative_binomial"):
        raise ValueError(f"family must be 'binomial', 'poisson' or 'negative_binomial'; got {family!r}.")
    for term in terms:
        if term not in frame.columns:
            raise KeyError(
                f"Case-mix term {term!r} is not a column of the spells; columns: {', '.join(map(str, frame.columns))}."
            )
    # the terms as text (missing stays missing: fit_cells keeps it as a level); rows numbered in order
    rows = pd.DataFrame(
        {term: frame[term].astype("str").where(frame[term].notna(), None).to_numpy() for term in terms}
    )
    rows["_prov"] = frame[provider].astype("str").to_numpy()
    rows["_y"] = y_all.to_numpy(float)
    rows["_pos"] = np.arange(len(rows))
    pcells = (
        rows.groupby(terms + ["_prov"], sort=False, dropna=False)
        .agg(n=("_y", "size"), events=("_y", "sum"), _first=("_pos", "min"))
        .reset_index()
    )
    vcells = None
    if family != "binomial":
        vcells = (
            rows.groupby(terms + ["_y"], sort=False, dropna=False)
            .agg(w=("_pos", "size"), _first=("_pos", "min"))
            .reset_index()
        )
    return fit_cells(
        pcells,
        terms,
        family,
        vcells=vcells,
        include_deprivation=include_deprivation,
        min_level_spells=min_level_spells,
        provider="_prov",
        outcome=outcome,
        indicator=indicator,
    )


# --------------------------------------------------------------------------- terms the data allow
#: Case-mix terms computed from a column: term -> the column it needs.
BANDED_TERMS: dict[str, str] = {
    "age_band": "age",
    "frailty_band": "frailty_score",
    "charlson_band": "charlson_index",
}

#: Why a term cannot be used when its column is absent, in plain words.
_ABSENT_BECAUSE: dict[str, str] = {
    "frailty_band": (
        "the spells have no frailty score (frailty_score, HFRS) and no diagnosis columns to compute "
        "the Hospital Frailty Risk Score from"
    ),
    "charlson_band": (
        "the spells have no Charlson index (charlson_index) and no diagnosis columns to compute it from"
    ),
    "hrg": "the spells have no HRG column (hrg, SUSHRG, Spell_Core_HRG, ...)",
    DEPRIVATION_TERM: "the spells have no IMD decile column (imd_decile, IMD19_DECILE, ...)",
}


def resolve_terms(
    terms: Sequence[str],
    columns: Sequence[str],
    include_deprivation: bool = False,
    non_missing: dict[str, int] | None = None,
) -> tuple[list[str], pd.DataFrame]:
    """The case-mix terms the data allow, and a table saying which were used and why others were not.

    A term is used when its column is in the spells (``age_band`` needs
    ``age``, ``frailty_band`` ``frailty_score``, ``charlson_band``
    ``charlson_index``: :data:`BANDED_TERMS`) and, when ``non_missing``
    (column -> count of non-missing values) is given, holds at least one value.
    A term that cannot be used is dropped with its reason: a missing optional
    column never stops the run. A name that is neither a spells column nor a
    band is a mistake in the parameter and raises ``ValueError``.

    Returns the terms to fit (``imd_decile`` added when ``include_deprivation``
    and present) and a table with columns term, column, used (yes/no), reason.
    """
    known = set(table_columns("spells")) | set(BANDED_TERMS)
    if isinstance(terms, str):  # `--param case_mix=age_band`: one term, not its letters
        terms = [terms]
    wanted = model_terms(terms, include_deprivation)
    unknown = [t for t in wanted if t not in known]
    if unknown:
        hints = [
            f"{t!r} (did you mean {m[0]!r}?)"
            if (m := difflib.get_close_matches(t, sorted(known), n=1))
            else repr(t)
            for t in unknown
        ]
        raise ValueError(
            f"Case-mix term(s) {', '.join(hints)} unknown; a term is a spells column or one of "
            f"{', '.join(BANDED_TERMS)}."
        )
    present = set(map(str, columns))
    used, rows = [], []
    for term in wanted:
        column = BANDED_TERMS.get(term, term)
        if column not in present:
            reason = _ABSENT_BECAUSE.get(term, f"the spells have no {column} column")
            rows.append({"term": term, "column": column, "used": "no", "reason": reason})
        elif non_missing is not None and int(non_missing.get(column, 1)) == 0:
            rows.append(
                {
                    "term": term,
                    "column": column,
                    "used": "no",
                    "reason": f"every value of {column} is missing",
                }
            )
        else:
            used.append(term)
            rows.append({"term": term, "column": column, "used": "yes", "reason": ""})
    table = pd.DataFrame(rows, columns=["term", "column", "used", "reason"])
    return used, table


def describe_terms(table: pd.DataFrame) -> str:
    """The table of :func:`resolve_terms` in words: the terms used, and each term left out with its reason."""
    used = table.loc[table["used"] == "yes", "term"].tolist()
    lines = [f"Case mix adjusted for: {', '.join(used) if used else 'nothing (no term could be used)'}."]
    for row in table.loc[table["used"] != "yes"].itertuples():
        lines.append(f"Not used: {row.term}, because {row.reason}.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the bands in SQL
def term_sql(term: str, present: Sequence[str]) -> str:
    """A case-mix term as text, in SQL: a band of :data:`BANDS` (age missing: NULL; a score missing: "missing") or a column."""
    if term == "age_band" and "age" in present:
        edges = list(zip(AGE_BREAKS[1:-1], AGE_LABELS[:-1]))
        whens = " ".join(f"WHEN age < {int(b)} THEN {literal(lab)}" for b, lab in edges)
        return f"CASE WHEN age IS NULL THEN NULL {whens} ELSE {literal(AGE_LABELS[-1])} END"
    if term == "frailty_band" and "frailty_score" in present:
        lo, mid = FRAILTY_BREAKS[1], FRAILTY_BREAKS[2]
        a, b, c = FRAILTY_LABELS
        return (
            f"CASE WHEN frailty_score IS NULL THEN {literal(MISSING)} WHEN frailty_score < {lo!r} THEN {literal(a)} "
            f"WHEN frailty_score < {mid!r} THEN {literal(b)} ELSE {literal(c)} END"
        )
    if term == "charlson_band" and "charlson_index" in present:
        edges = list(zip(comorbidity.CHARLSON_BREAKS[1:-1], comorbidity.CHARLSON_LABELS[:-1]))
        whens = " ".join(f"WHEN charlson_index < {int(b)} THEN {literal(lab)}" for b, lab in edges)
        return (
            f"CASE WHEN charlson_index IS NULL THEN {literal(MISSING)} {whens} "
            f"ELSE {literal(comorbidity.CHARLSON_LABELS[-1])} END"
        )
    if term in present:
        return f"CAST({quote(term)} AS VARCHAR)"
    bands = [b for b, need in (("age_band", "age"), ("frailty_band", "frailty_score")) if need in present]
    raise KeyError(
        f"Case-mix term {term!r} is not a column of the spells; columns: {', '.join([*present, *bands])}."
    )
