"""Value, made computable: cost, outcome gain and the ratios between them.

The definitions follow the HFMA *Introductory guide to NHS finance*, chapter 18
("Value and efficiency") and The King's Fund, *Approaches to better value in the
NHS* (2018); METHODS.md section 7 lists what each function must compute.

Input is the ``outcomes`` table of the data contract (``data/data_dictionary.yaml``):
one row per patient episode of an elective pathway, with the EQ-5D index before
and after the procedure and the patient-level (PLICS) cost in pounds.

Every public function is pure: it takes DataFrames and returns a new tidy
DataFrame whose columns are documented in its docstring. The one random step,
the bootstrap of :func:`incremental_within`, takes a seed.

Result tables (the names a notebook publishes them under):

``pathway_value``  cost, outcome gain and cost per unit of gain by pathway
``provider_value`` the same by pathway and provider, with case-mix adjustment
``quadrant``       each provider placed on the quality-cost plane of its pathway
``quadrant_counts`` providers per quadrant, counting only clear placements
``equity``         outcome gain by deprivation (IMD) decile
``deprivation_gradient`` change per IMD decile in the score before, or the gain
``three_es``       the NAO's economy, efficiency and effectiveness, and equity
                   (economy from a small table of input prices, :func:`economy`)
``allocative``     what the same pound buys in each pathway, in QALYs
``incremental``    two options for the same patients of one pathway (an ICER with
                   a bootstrap interval), or two pathways side by side in QALYs
                   per £ with no ICER (:func:`compare_options`)
``cip_summary``    a cost improvement plan: approved schemes by class of saving,
                   the gap to target in recurrent cash, rejected schemes apart
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from helpers.io import InputError

#: The NICE threshold range in pounds per QALY (NICE, *NICE health technology
#: evaluations: the manual*, PMG36, 2022, section 6.2).
NICE_THRESHOLD_GBP_PER_QALY: tuple[float, float] = (20_000.0, 30_000.0)
#: NICE reference-case discount rate for costs and health effects (PMG36, 2022, 4.5.1).
NICE_DISCOUNT_RATE: float = 0.035
#: Age bands used for case-mix adjustment (years; the last band is open).
AGE_BAND_EDGES: tuple[int, ...] = (0, 45, 55, 65, 75, 85, 121)
#: Bands of the baseline EQ-5D index used for case-mix adjustment. The baseline
#: score is the strongest predictor of gain in PROMs (NHS Digital, *PROMs
#: case-mix adjustment methodology*); METHODS.md section 1 asks for continuous
#: covariates to be banded.
BASELINE_BAND_EDGES: tuple[float, ...] = (-0.6, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: The Core20 group of Core20PLUS5: the most deprived 20% of the national
#: population, i.e. IMD deciles 1 and 2 (NHS England, *Core20PLUS5*).
CORE20_DECILES: tuple[int, ...] = (1, 2)

#: Quadrant labels of the quality-cost plane (gain against cost, medians as cross-hairs).
QUADRANTS: dict[tuple[str, str], str] = {
    ("higher", "lower"): "higher gain, lower cost",
    ("higher", "higher"): "higher gain, higher cost",
    ("lower", "lower"): "lower gain, lower cost",
    ("lower", "higher"): "lower gain, higher cost",
}
ON_MEDIAN = "on a median line"
TOO_FEW = "too few patients"
#: The label of a provider whose interval reaches the median on gain or on cost.
NOT_DISTINGUISHABLE = "not distinguishable"

#: Classes of cost reduction (HFMA chapter 18, section 18.6).
CIP_CLASSES: tuple[str, ...] = (
    "cash-releasing, recurrent",
    "cash-releasing, non-recurrent",
    "non-cash-releasing, recurrent",
    "non-cash-releasing, non-recurrent",
)
#: Accepted quality impact assessment statuses; only ``approved`` counts a scheme in the plan.
QIA_STATUSES: tuple[str, ...] = ("approved", "pending", "not started", "rejected")
#: Accepted quality impact assessment risk ratings (blank allowed).
QIA_RATINGS: tuple[str, ...] = ("low", "moderate", "high")

OUTCOME_COLUMNS: tuple[str, ...] = ("pathway", "provider_code", "eq5d_before", "eq5d_after", "cost")
_MAX_SHOWN = 5


# --------------------------------------------------------------------------- checks
def _check_outcomes(outcomes: pd.DataFrame, needed: Iterable[str] = OUTCOME_COLUMNS) -> pd.DataFrame:
    """Check the columns a computation needs; return a float-typed copy.

    Raises :class:`helpers.io.InputError` naming the column and up to five rows
    (numbered as in a spreadsheet) when a value is missing. Nothing is dropped.
    """
    needed = list(needed)
    missing = [c for c in needed if c not in outcomes.columns]
    if missing:
        raise InputError(
            f"outcomes table: missing column(s) {', '.join(missing)}; expected the columns of the "
            f"'outcomes' table in data/data_dictionary.yaml (found: {', '.join(map(str, outcomes.columns))})"
        )
    out = outcomes.copy()
    problems = []
    for col in needed:
        if col in ("eq5d_before", "eq5d_after", "cost", "age"):
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
            bad = out[col].isna()
        else:
            bad = out[col].isna()
        if bad.any():
            rows = ", ".join(str(i + 2) for i in np.flatnonzero(bad.to_numpy())[:_MAX_SHOWN])
            problems.append(
                f"column '{col}': expected a value in every row; {int(bad.sum()):,} missing (rows {rows})"
            )
    if problems:
        raise InputError("outcomes table: " + "; ".join(problems))
    out["gain"] = out["eq5d_after"] - out["eq5d_before"]
    return out


def _t(conf: float, n: np.ndarray | pd.Series) -> np.ndarray:
    """Two-sided Student t quantile for a ``conf`` interval with ``n - 1`` df (NaN when n < 2)."""
    n = np.asarray(n, dtype="float64")
    with np.errstate(invalid="ignore"):
        return np.where(n >= 2, stats.t.ppf(0.5 + conf / 2, np.maximum(n - 1, 1)), np.nan)


def fieller_ci(
    mean_num: float, mean_den: float, var_num: float, var_den: float, cov: float, n: int, conf: float = 0.95
) -> tuple[float, float]:
    """Fieller confidence interval for a ratio of two means from the same patients.

    ``var_*`` and ``cov`` are the sample (co)variances of the patient values;
    the variances of the means are these divided by ``n``. The limits are the
    roots of ``(m_c - R m_g)^2 = t^2 (v_c - 2 R c + R^2 v_g) / n``
    (Fieller EC, J R Stat Soc B 1954;16:175-85; for cost-effectiveness ratios
    Willan AR, O'Brien BJ, Health Econ 1996;5:297-305). When the denominator is
    not clearly different from zero the set is unbounded and (NaN, NaN) is returned.
    """
    if n < 2:
        return np.nan, np.nan
    t2 = float(_t(conf, n)) ** 2
    a = mean_den**2 - t2 * var_den / n
    b = -2.0 * (mean_num * mean_den - t2 * cov / n)
    c = mean_num**2 - t2 * var_num / n
    disc = b * b - 4 * a * c
    if a <= 0 or disc < 0:
        return np.nan, np.nan
    r1 = (-b - np.sqrt(disc)) / (2 * a)
    r2 = (-b + np.sqrt(disc)) / (2 * a)
    return float(min(r1, r2)), float(max(r1, r2))


def _summarise(df: pd.DataFrame, by: list[str], conf: float) -> pd.DataFrame:
    """Counts, means and t intervals of cost and gain, and the cost per unit of gain."""
    d = df.assign(_cg=df["cost"] * df["gain"], _improved=(df["gain"] > 0).astype("float64"))
    g = d.groupby(by, sort=True, observed=True, dropna=False)
    out = g.agg(
        n=("gain", "size"),
        total_cost=("cost", "sum"),
        mean_cost=("cost", "mean"),
        sd_cost=("cost", "std"),
        mean_before=("eq5d_before", "mean"),
        mean_after=("eq5d_after", "mean"),
        mean_gain=("gain", "mean"),
        sd_gain=("gain", "std"),
        share_improved=("_improved", "mean"),
        _sum_cg=("_cg", "sum"),
    ).reset_index()
    # sample covariance of cost and gain: (sum(xy) - n * mean(x) * mean(y)) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["cov"] = np.where(
            out["n"] > 1,
            (out["_sum_cg"] - out["n"] * out["mean_cost"] * out["mean_gain"]) / (out["n"] - 1),
            np.nan,
        )
    t = _t(conf, out["n"])
    se_c = out["sd_cost"] / np.sqrt(out["n"])
    se_g = out["sd_gain"] / np.sqrt(out["n"])
    out["cost_ci_lower"] = out["mean_cost"] - t * se_c
    out["cost_ci_upper"] = out["mean_cost"] + t * se_c
    out["gain_ci_lower"] = out["mean_gain"] - t * se_g
    out["gain_ci_upper"] = out["mean_gain"] + t * se_g
    out["cost_per_unit_gain"] = np.where(out["mean_gain"] > 0, out["mean_cost"] / out["mean_gain"], np.nan)
    limits = [
        fieller_ci(r.mean_cost, r.mean_gain, r.sd_cost**2, r.sd_gain**2, r.cov, int(r.n), conf)
        if r.mean_gain > 0
        else (np.nan, np.nan)
        for r in out.itertuples()
    ]
    out["cpug_ci_lower"] = [lo for lo, _ in limits]
    out["cpug_ci_upper"] = [hi for _, hi in limits]
    return out


_VALUE_COLUMNS = [
    "n",
    "total_cost",
    "mean_cost",
    "cost_ci_lower",
    "cost_ci_upper",
    "mean_before",
    "mean_after",
    "mean_gain",
    "gain_ci_lower",
    "gain_ci_upper",
    "share_improved",
    "cost_per_unit_gain",
    "cpug_ci_lower",
    "cpug_ci_upper",
]


# --------------------------------------------------------------------------- value equation
def pathway_value(
    outcomes: pd.DataFrame, conf: float = 0.95, by: Sequence[str] = ("pathway",)
) -> pd.DataFrame:
    """The value equation by pathway: outcome gain and cost per patient, and their ratio.

    Porter's value equation is outcomes that matter to patients divided by the
    cost of the full cycle of care (Porter ME, *What is value in health care?*,
    N Engl J Med 2010;363:2477-81; HFMA chapter 18.2). Here the outcome is the
    EQ-5D gain (``eq5d_after - eq5d_before``) and the cost is the PLICS cost.

    Columns: the ``by`` columns (default ``pathway``); ``n`` patients;
    ``total_cost`` (£); ``mean_cost`` with ``cost_ci_lower``/``cost_ci_upper``
    (£ per patient, Student t interval); ``mean_before``, ``mean_after`` (EQ-5D
    index); ``mean_gain`` with ``gain_ci_lower``/``gain_ci_upper``;
    ``share_improved`` (share of patients whose score rose); ``cost_per_unit_gain``
    (£ per 1.0 of EQ-5D gain, ``mean_cost / mean_gain``; NaN when the mean gain is
    not positive) with its Fieller interval ``cpug_ci_lower``/``cpug_ci_upper``
    (NaN when the gain is not clearly above zero).
    """
    by = list(by)
    df = _check_outcomes(outcomes, list(dict.fromkeys([*by, "eq5d_before", "eq5d_after", "cost"])))
    return _summarise(df, by, conf)[by + _VALUE_COLUMNS]


def age_band(age: pd.Series, edges: Sequence[int] = AGE_BAND_EDGES) -> pd.Series:
    """Age in years as a band label such as ``65-74`` (the last band reads ``85+``)."""
    labels = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-2], edges[1:-1])] + [f"{edges[-2]}+"]
    return pd.cut(pd.to_numeric(age), bins=list(edges), right=False, labels=labels).astype("str")


def baseline_band(score: pd.Series, edges: Sequence[float] = BASELINE_BAND_EDGES) -> pd.Series:
    """Baseline EQ-5D index as a band label such as ``(0.2, 0.4]``."""
    return pd.cut(pd.to_numeric(score), bins=list(edges), right=True, include_lowest=True).astype("str")


def _casemix_frame(df: pd.DataFrame, adjust_for_deprivation: bool) -> tuple[pd.DataFrame, list[str]]:
    cols = []
    out = df.copy()
    if "age" in out.columns:
        out["_age_band"] = age_band(out["age"])
        cols.append("_age_band")
    if "sex" in out.columns:
        out["_sex"] = out["sex"].astype("str").fillna("unknown")
        cols.append("_sex")
    out["_baseline"] = baseline_band(out["eq5d_before"])
    cols.append("_baseline")
    if adjust_for_deprivation:
        if "imd_decile" not in out.columns:
            raise InputError("outcomes table: adjust_for_deprivation=True needs the column 'imd_decile'")
        out["_imd"] = out["imd_decile"].astype("string").fillna("unknown").astype("str")
        cols.append("_imd")
    return out, cols


def _wls_fit_predict(cells: pd.DataFrame, factors: list[str], y: str) -> np.ndarray:
    """Fitted cell means of an additive main-effects linear model, weighted by cell size.

    Least squares on cell means weighted by ``n`` gives the same coefficients as
    ordinary least squares on the patient rows when every covariate is
    categorical (METHODS.md section 1: fit on aggregated cells).
    """
    design = pd.get_dummies(cells[factors], drop_first=True, dtype="float64")
    x = np.column_stack([np.ones(len(cells)), design.to_numpy()])
    w = np.sqrt(cells["n"].to_numpy(dtype="float64"))
    beta, *_ = np.linalg.lstsq(x * w[:, None], cells[y].to_numpy(dtype="float64") * w, rcond=None)
    return x @ beta


def expected_values(outcomes: pd.DataFrame, adjust_for_deprivation: bool = False) -> pd.DataFrame:
    """Each patient's expected gain and cost given case mix, pooled over providers.

    Indirect standardisation (METHODS.md section 1): within each pathway one
    linear model of the outcome on case mix only (age band, sex, baseline EQ-5D
    band, and IMD decile only if ``adjust_for_deprivation``), with no provider
    term, fitted on aggregated cells. Deprivation is left out by default because
    adjusting for it hides inequality (the Core20PLUS5 point).

    Returns the input rows (same index) with ``gain``, ``expected_gain`` and
    ``expected_cost`` added.
    """
    df = _check_outcomes(outcomes)
    df, factors = _casemix_frame(df, adjust_for_deprivation)
    df["expected_gain"] = np.nan
    df["expected_cost"] = np.nan
    for _, part in df.groupby("pathway", sort=True):
        cells = (
            part.groupby(factors, observed=True)
            .agg(n=("gain", "size"), gain=("gain", "mean"), cost=("cost", "mean"))
            .reset_index()
        )
        cells["expected_gain"] = _wls_fit_predict(cells, factors, "gain")
        cells["expected_cost"] = _wls_fit_predict(cells, factors, "cost")
        merged = part[factors].merge(
            cells[factors + ["expected_gain", "expected_cost"]], on=factors, how="left"
        )
        df.loc[part.index, "expected_gain"] = merged["expected_gain"].to_numpy()
        df.loc[part.index, "expected_cost"] = merged["expected_cost"].to_numpy()
    return df.drop(columns=factors)


def provider_value(
    outcomes: pd.DataFrame, conf: float = 0.95, adjust_for_deprivation: bool = False
) -> pd.DataFrame:
    """The value equation by pathway and provider, raw and adjusted for case mix.

    Columns: ``pathway``, ``provider_code`` and every column of
    :func:`pathway_value`, then the indirectly standardised results
    (METHODS.md section 1, applied within pathway):

    - ``expected_gain``: the provider's mean expected gain given its case mix;
    - ``adjusted_gain`` = pathway mean gain + (``mean_gain`` − ``expected_gain``),
      with ``adjusted_gain_ci_lower``/``_upper`` from the spread of the
      provider's residuals (observed − expected);
    - ``expected_cost``: the provider's mean expected cost given its case mix;
    - ``cost_ratio`` = observed ÷ expected cost (the O/E ratio);
    - ``adjusted_cost`` = pathway mean cost × ``cost_ratio`` (£ per patient),
      with ``adjusted_cost_ci_lower``/``_upper`` (residual spread, E held fixed);
    - ``adjusted_cost_per_unit_gain`` = ``adjusted_cost`` ÷ ``adjusted_gain``
      (NaN when the adjusted gain is not positive).
    """
    df = expected_values(outcomes, adjust_for_deprivation)
    by = ["pathway", "provider_code"]
    out = _summarise(df, by, conf)[by + _VALUE_COLUMNS]
    df["_res_gain"] = df["gain"] - df["expected_gain"]
    df["_res_cost"] = df["cost"] - df["expected_cost"]
    pw = df.groupby("pathway").agg(pathway_gain=("gain", "mean"), pathway_cost=("cost", "mean"))
    adj = (
        df.groupby(by, sort=True)
        .agg(
            expected_gain=("expected_gain", "mean"),
            expected_cost=("expected_cost", "mean"),
            sd_res_gain=("_res_gain", "std"),
            sd_res_cost=("_res_cost", "std"),
        )
        .reset_index()
    )
    out = out.merge(adj, on=by, how="left").merge(pw, left_on="pathway", right_index=True, how="left")
    t = _t(conf, out["n"])
    out["adjusted_gain"] = out["pathway_gain"] + out["mean_gain"] - out["expected_gain"]
    half_g = t * out["sd_res_gain"] / np.sqrt(out["n"])
    out["adjusted_gain_ci_lower"] = out["adjusted_gain"] - half_g
    out["adjusted_gain_ci_upper"] = out["adjusted_gain"] + half_g
    out["cost_ratio"] = out["mean_cost"] / out["expected_cost"]
    out["adjusted_cost"] = out["pathway_cost"] * out["cost_ratio"]
    half_c = t * out["sd_res_cost"] / np.sqrt(out["n"]) * out["pathway_cost"] / out["expected_cost"]
    out["adjusted_cost_ci_lower"] = out["adjusted_cost"] - half_c
    out["adjusted_cost_ci_upper"] = out["adjusted_cost"] + half_c
    out["adjusted_cost_per_unit_gain"] = np.where(
        out["adjusted_gain"] > 0, out["adjusted_cost"] / out["adjusted_gain"], np.nan
    )
    return out.drop(columns=["sd_res_gain", "sd_res_cost", "pathway_gain", "pathway_cost"])


# --------------------------------------------------------------------------- quadrant
def _position(value: pd.Series, median: pd.Series) -> pd.Series:
    return pd.Series(
        np.select([value > median, value < median], ["higher", "lower"], default="equal"), index=value.index
    )


def quadrant(provider_table: pd.DataFrame, min_patients: int = 30) -> pd.DataFrame:
    """Place each provider on the quality-cost plane of its pathway.

    The "two sides of the same coin" picture (AoMRC/FMLM/HFMA/NHS Confederation,
    2014; METHODS.md section 7): adjusted outcome gain against adjusted cost,
    with the median provider of the pathway as cross-hairs. Providers with
    fewer than ``min_patients`` patients are kept, labelled ``too few patients``,
    and left out of the medians.

    A provider gets a quadrant label only when its 95% intervals clear the
    median on both axes; every other provider is ``not distinguishable`` from
    the median provider, whatever side of the lines its point estimate falls.

    Takes the :func:`provider_value` table. Columns: ``pathway``,
    ``provider_code``, ``n``, ``adjusted_gain`` (with CI columns),
    ``adjusted_cost`` (with CI columns), ``median_gain``, ``median_cost`` (the
    cross-hairs), ``gain_position`` and ``cost_position`` (``higher``, ``lower``
    or ``equal`` against the median), ``gain_clear`` / ``cost_clear`` (True when
    the interval excludes the median), ``point_quadrant`` (where the point
    estimate falls: one of :data:`QUADRANTS` or ``on a median line``; not a
    finding on its own) and ``quadrant`` (one of :data:`QUADRANTS` when both
    are clear, otherwise ``not distinguishable``, or ``too few patients``).
    """
    need = [
        "pathway",
        "provider_code",
        "n",
        "adjusted_gain",
        "adjusted_gain_ci_lower",
        "adjusted_gain_ci_upper",
        "adjusted_cost",
        "adjusted_cost_ci_lower",
        "adjusted_cost_ci_upper",
    ]
    missing = [c for c in need if c not in provider_table.columns]
    if missing:
        raise InputError(
            f"quadrant() needs the provider_value table; missing column(s): {', '.join(missing)}"
        )
    out = provider_table[need].copy()
    big = out["n"] >= min_patients
    med = (
        out[big]
        .groupby("pathway")
        .agg(median_gain=("adjusted_gain", "median"), median_cost=("adjusted_cost", "median"))
    )
    out = out.merge(med, left_on="pathway", right_index=True, how="left")
    out["gain_position"] = _position(out["adjusted_gain"], out["median_gain"])
    out["cost_position"] = _position(out["adjusted_cost"], out["median_cost"])
    out["gain_clear"] = big & (
        (out["adjusted_gain_ci_lower"] > out["median_gain"])
        | (out["adjusted_gain_ci_upper"] < out["median_gain"])
    )
    out["cost_clear"] = big & (
        (out["adjusted_cost_ci_lower"] > out["median_cost"])
        | (out["adjusted_cost_ci_upper"] < out["median_cost"])
    )
    label = pd.Series(
        [QUADRANTS.get((g, c), ON_MEDIAN) for g, c in zip(out["gain_position"], out["cost_position"])],
        index=out.index,
    )
    out["point_quadrant"] = np.where(big, label, TOO_FEW)
    out["quadrant"] = np.select(
        [~big, out["gain_clear"] & out["cost_clear"]], [TOO_FEW, label], default=NOT_DISTINGUISHABLE
    )
    return out.sort_values(["pathway", "provider_code"], ignore_index=True)


def quadrant_counts(quadrant_table: pd.DataFrame) -> pd.DataFrame:
    """How many providers of each pathway fall in each quadrant, counting only clear placements.

    Takes :func:`quadrant`. One row per pathway; columns ``pathway``, one column
    per label of :data:`QUADRANTS` (providers whose intervals clear both
    medians), ``not distinguishable``, ``too few patients`` and ``providers``
    (all providers of the pathway). Every label is a column even when its count is 0.
    """
    labels = [*QUADRANTS.values(), NOT_DISTINGUISHABLE, TOO_FEW]
    counts = pd.crosstab(quadrant_table["pathway"], quadrant_table["quadrant"]).reindex(
        columns=labels, fill_value=0
    )
    counts["providers"] = counts.sum(axis=1)
    counts.columns.name = None
    return counts.reset_index().astype({c: "int64" for c in [*labels, "providers"]})


def describe_quadrant(quadrant_table: pd.DataFrame, pathway: str) -> str:
    """One sentence stating the finding of a pathway's quadrant, for a figure title."""
    part = quadrant_table[quadrant_table["pathway"] == pathway]
    worse = part[
        (part["quadrant"] == QUADRANTS[("lower", "higher")]) & part["gain_clear"] & part["cost_clear"]
    ]
    better = part[
        (part["quadrant"] == QUADRANTS[("higher", "lower")]) & part["gain_clear"] & part["cost_clear"]
    ]
    if len(worse):
        who = ", ".join(worse["provider_code"])
        verb = "has" if len(worse) == 1 else "have"
        return f"{pathway}: {who} {verb} clearly lower gain at higher cost than the median provider"
    if len(better):
        who = ", ".join(better["provider_code"])
        verb = "has" if len(better) == 1 else "have"
        return f"{pathway}: {who} {verb} clearly higher gain at lower cost than the median provider"
    return f"{pathway}: no provider is clearly apart from the median on both gain and cost"


# --------------------------------------------------------------------------- equity
def equity(outcomes: pd.DataFrame, conf: float = 0.95) -> pd.DataFrame:
    """Outcome gain and cost by deprivation decile within each pathway.

    Equity, "spending fairly", the fourth E that the National Audit Office adds
    to its three when it assesses value for money (NAO, *Assessing value for
    money*; the HFMA guide, chapter 18.7, lists only the three), and the Core20
    part of Core20PLUS5 (HFMA chapter 18.8). Rows with no IMD decile are
    kept as their own group (``imd_decile`` missing, ``group`` = ``unknown``).

    Columns: ``pathway``, ``imd_decile`` (1 = most deprived; nullable),
    ``group`` (``Core20`` for deciles 1-2, ``other`` for 3-10, ``unknown``),
    ``n``, ``share_of_patients`` (within the pathway), ``mean_before``,
    ``mean_after``, ``mean_gain`` with ``gain_ci_lower``/``gain_ci_upper``, and
    ``mean_cost`` with ``cost_ci_lower``/``cost_ci_upper``.
    """
    df = _check_outcomes(outcomes)
    if "imd_decile" not in df.columns:
        raise InputError("outcomes table: the equity analysis needs the optional column 'imd_decile'")
    df["imd_decile"] = pd.to_numeric(df["imd_decile"]).astype("Int64")
    out = _summarise(df, ["pathway", "imd_decile"], conf)
    out["imd_decile"] = out["imd_decile"].astype("Int64")
    out["group"] = np.select(
        [
            out["imd_decile"].isna().to_numpy(),
            out["imd_decile"].isin(CORE20_DECILES).fillna(False).to_numpy(),
        ],
        ["unknown", "Core20"],
        default="other",
    )
    out["share_of_patients"] = out["n"] / out.groupby("pathway")["n"].transform("sum")
    cols = [
        "pathway",
        "imd_decile",
        "group",
        "n",
        "share_of_patients",
        "mean_before",
        "mean_after",
        "mean_gain",
        "gain_ci_lower",
        "gain_ci_upper",
        "mean_cost",
        "cost_ci_lower",
        "cost_ci_upper",
    ]
    return out[cols].sort_values(["pathway", "imd_decile"], na_position="last", ignore_index=True)


def deprivation_gradient(outcomes: pd.DataFrame, column: str = "gain", conf: float = 0.95) -> pd.DataFrame:
    """How a patient-level measure changes per IMD decile, within each pathway.

    The least-squares slope of ``column`` (``gain``, ``eq5d_before``,
    ``eq5d_after`` or ``cost``) on the IMD decile over patients with a known
    decile, with its Student t interval (simple linear regression, e.g. Altman
    1991, 11.5). A positive slope for ``eq5d_before`` means patients from less
    deprived areas arrive in better health.

    Columns: ``pathway``, ``measure``, ``n`` (patients with a decile),
    ``n_unknown`` (without one, not used), ``slope_per_decile``,
    ``slope_ci_lower``, ``slope_ci_upper``.
    """
    df = _check_outcomes(outcomes)
    if "imd_decile" not in df.columns:
        raise InputError("outcomes table: the deprivation gradient needs the optional column 'imd_decile'")
    if column not in df.columns:
        raise InputError(f"outcomes table: no column '{column}' to relate to deprivation")
    rows = []
    for pathway, part in df.groupby("pathway", sort=True):
        known = part["imd_decile"].notna()
        x = pd.to_numeric(part.loc[known, "imd_decile"]).to_numpy(dtype="float64")
        y = pd.to_numeric(part.loc[known, column]).to_numpy(dtype="float64")
        n = x.size
        slope = lo = hi = np.nan
        if n >= 3 and x.var() > 0:
            res = stats.linregress(x, y)
            slope = float(res.slope)
            half = float(_t(conf, n - 1)) * float(res.stderr)  # n - 2 degrees of freedom
            lo, hi = slope - half, slope + half
        rows.append((pathway, column, n, int((~known).sum()), slope, lo, hi))
    return pd.DataFrame(
        rows,
        columns=[
            "pathway",
            "measure",
            "n",
            "n_unknown",
            "slope_per_decile",
            "slope_ci_lower",
            "slope_ci_upper",
        ],
    )


def _core20_gap(df: pd.DataFrame, by: list[str], conf: float) -> pd.DataFrame:
    """Mean gain in Core20 (deciles 1-2) against deciles 3-10, Welch interval of the gap."""
    d = df[df["imd_decile"].notna()].copy()
    d["_core20"] = d["imd_decile"].isin(CORE20_DECILES)
    rows = []
    for key, part in d.groupby(by, sort=True):
        a = part.loc[part["_core20"], "gain"].to_numpy(dtype="float64")
        b = part.loc[~part["_core20"], "gain"].to_numpy(dtype="float64")
        gap, lo, hi = welch_difference(a, b, conf)
        rows.append(
            (
                *np.atleast_1d(key),
                a.size,
                a.mean() if a.size else np.nan,
                b.mean() if b.size else np.nan,
                gap,
                lo,
                hi,
            )
        )
    return pd.DataFrame(
        rows,
        columns=by
        + [
            "n_core20",
            "equity_gain_core20",
            "equity_gain_other",
            "equity_gap",
            "equity_gap_ci_lower",
            "equity_gap_ci_upper",
        ],
    )


def welch_difference(a: np.ndarray, b: np.ndarray, conf: float = 0.95) -> tuple[float, float, float]:
    """Difference in means ``mean(a) - mean(b)`` with a Welch t interval.

    Welch BL, Biometrika 1947;34:28-35 (Satterthwaite degrees of freedom).
    Returns NaNs when either group has fewer than two values.
    """
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    if a.size < 2 or b.size < 2:
        return (a.mean() - b.mean() if a.size and b.size else np.nan), np.nan, np.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = a.mean() - b.mean()
    se = np.sqrt(va + vb)
    if se == 0:
        return float(diff), float(diff), float(diff)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf(0.5 + conf / 2, dof) * se
    return float(diff), float(diff - half), float(diff + half)


# --------------------------------------------------------------------------- three Es
def economy(input_costs: pd.DataFrame) -> pd.DataFrame:
    """Economy: what each provider pays per unit of the same input.

    NAO's first E, "spending less": minimising the cost of resources used
    (HFMA chapter 18.7). ``input_costs`` has one row per provider and input with
    ``provider_code``, ``input`` (e.g. ``hip prosthesis``), ``quantity`` (units
    bought) and ``total_cost`` (£), and optionally ``pathway`` (the pathway the
    input belongs to; without it an input counts for all the provider's pathways).

    Columns: ``provider_code``, ``pathway`` (if given), ``input``, ``quantity``, ``total_cost``,
    ``unit_cost`` (£ per unit), ``median_unit_cost`` (over providers, per input)
    and ``economy_index`` (``unit_cost / median_unit_cost``; above 1 pays more
    than the median provider).
    """
    need = ["provider_code", "input", "quantity", "total_cost"]
    missing = [c for c in need if c not in input_costs.columns]
    if missing:
        raise InputError(
            f"input costs table: missing column(s) {', '.join(missing)}; expected {', '.join(need)}"
        )
    out = input_costs[(["pathway"] if "pathway" in input_costs.columns else []) + need].copy()
    out["quantity"] = pd.to_numeric(out["quantity"], errors="coerce").astype("float64")
    out["total_cost"] = pd.to_numeric(out["total_cost"], errors="coerce").astype("float64")
    bad = out["quantity"].isna() | (out["quantity"] <= 0) | out["total_cost"].isna() | (out["total_cost"] < 0)
    if bad.any():
        rows = "; ".join(
            f"row {i + 2}: quantity={out['quantity'].iloc[i]}, total_cost={out['total_cost'].iloc[i]}"
            for i in np.flatnonzero(bad.to_numpy())[:_MAX_SHOWN]
        )
        raise InputError(
            f"input costs table: columns 'quantity' (> 0) and 'total_cost' (>= 0) must be numbers; {rows}"
        )
    out["unit_cost"] = out["total_cost"] / out["quantity"]
    out["median_unit_cost"] = out.groupby("input")["unit_cost"].transform("median")
    out["economy_index"] = out["unit_cost"] / out["median_unit_cost"]
    return out.sort_values(["input", "provider_code"], ignore_index=True)


def three_es(
    outcomes: pd.DataFrame,
    input_costs: pd.DataFrame | None = None,
    conf: float = 0.95,
    intended_gain: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The NAO's three Es as indicators by pathway and provider, with equity as the fourth.

    Economy, efficiency and effectiveness are the National Audit Office's
    three criteria as the HFMA guide gives them (chapter 18.7); equity,
    "spending fairly", is the fourth E that the NAO itself adds (*Assessing
    value for money*), not the HFMA's. METHODS.md section 7.

    - economy, "spending less": ``economy_index``, the provider's mean over
      inputs of its unit price relative to the median provider (:func:`economy`),
      matched on pathway too when ``input_costs`` has a ``pathway`` column;
      NaN when no ``input_costs`` are given or none match;
    - efficiency, "spending well": ``efficiency_cost_per_patient``, cost per
      output, the output being one completed pathway (£);
    - effectiveness, "spending wisely", the relationship between intended and
      actual results: ``effectiveness_mean_gain`` (mean EQ-5D gain, the actual
      result) with ``effectiveness_gain_ci_lower``/``_upper``; when
      ``intended_gain`` gives a pathway's intended mean gain,
      ``effectiveness_intended_gain`` and ``effectiveness_vs_intended`` (=
      actual ÷ intended: 1.00 achieves the intention) with
      ``effectiveness_vs_intended_ci_lower``/``_upper`` (the gain interval
      divided by the intention); NaN for pathways without one.
      ``cost_per_unit_gain`` links efficiency and effectiveness;
    - equity: ``equity_gain_core20`` and ``equity_gain_other`` (mean gain of
      patients in IMD deciles 1-2 and 3-10), ``equity_gap`` (Core20 minus
      other; negative means the most deprived gain less) with a Welch interval
      ``equity_gap_ci_lower``/``_upper``, and ``n_core20``. NaN when the table
      has no ``imd_decile``.

    Also ``pathway``, ``provider_code`` and ``n``.
    """
    df = _check_outcomes(outcomes)
    by = ["pathway", "provider_code"]
    base = _summarise(df, by, conf)
    out = base[by + ["n"]].copy()
    if input_costs is not None:
        econ = economy(input_costs)
        keys = ["pathway", "provider_code"] if "pathway" in econ.columns else ["provider_code"]
        index = econ.groupby(keys)["economy_index"].mean().rename("economy_index").reset_index()
        out = out.merge(index, on=keys, how="left")
    else:
        out["economy_index"] = np.nan
    out["efficiency_cost_per_patient"] = base["mean_cost"].to_numpy()
    out["effectiveness_mean_gain"] = base["mean_gain"].to_numpy()
    out["effectiveness_gain_ci_lower"] = base["gain_ci_lower"].to_numpy()
    out["effectiveness_gain_ci_upper"] = base["gain_ci_upper"].to_numpy()
    intended = {str(k): float(v) for k, v in (intended_gain or {}).items()}
    unknown = sorted(set(intended) - set(map(str, out["pathway"])))
    if unknown:
        raise InputError(
            f"intended_gain: no pathway called {', '.join(map(repr, unknown))}; "
            f"the pathways are {', '.join(sorted(map(str, out['pathway'].unique())))}"
        )
    bad = sorted(k for k, v in intended.items() if not np.isfinite(v) or v <= 0)
    if bad:
        raise InputError(
            f"intended_gain: the intended mean EQ-5D gain must be above 0; check {', '.join(map(repr, bad))}"
        )
    out["effectiveness_intended_gain"] = out["pathway"].astype("str").map(intended).astype("float64")
    for suffix, col in (
        ("", "effectiveness_mean_gain"),
        ("_ci_lower", "effectiveness_gain_ci_lower"),
        ("_ci_upper", "effectiveness_gain_ci_upper"),
    ):
        out[f"effectiveness_vs_intended{suffix}"] = out[col] / out["effectiveness_intended_gain"]
    out["cost_per_unit_gain"] = base["cost_per_unit_gain"].to_numpy()
    if "imd_decile" in df.columns:
        gap = _core20_gap(df, by, conf)
        out = out.merge(gap, on=by, how="left")
        out["n_core20"] = out["n_core20"].fillna(0).astype("int64")
    else:
        for c in [
            "n_core20",
            "equity_gain_core20",
            "equity_gain_other",
            "equity_gap",
            "equity_gap_ci_lower",
            "equity_gap_ci_upper",
        ]:
            out[c] = np.nan
    return out.reset_index(drop=True)


#: For :func:`helpers.report.publish`: which count each ``three_es`` column is
#: made from, so that small-number suppression hides exactly what it must.
THREE_ES_DERIVED: dict[str, list[str]] = {
    "economy_index": ["n"],
    "efficiency_cost_per_patient": ["n"],
    "effectiveness_mean_gain": ["n"],
    "effectiveness_gain_ci_lower": ["n"],
    "effectiveness_gain_ci_upper": ["n"],
    "effectiveness_vs_intended": ["n"],
    "effectiveness_vs_intended_ci_lower": ["n"],
    "effectiveness_vs_intended_ci_upper": ["n"],
    "cost_per_unit_gain": ["n"],
    "equity_gain_core20": ["n_core20"],
    "equity_gain_other": ["n", "n_core20"],
    "equity_gap": ["n", "n_core20"],
    "equity_gap_ci_lower": ["n", "n_core20"],
    "equity_gap_ci_upper": ["n", "n_core20"],
}


# --------------------------------------------------------------------------- allocative value
def annuity_factor(
    duration_years: float, discount_rate: float = NICE_DISCOUNT_RATE, first_discounted_year: int = 1
) -> float:
    """Discounted years of a constant annual benefit lasting ``duration_years``.

    ``sum_t w_t / (1 + r)^e_t`` over years t = 0, 1, ... counted from the
    procedure (year 0 is its first twelve months), where ``w_t`` is the share of
    year t in the duration (1 for whole years, the remainder for the last) and
    ``e_t = max(0, t - first_discounted_year + 1)``.

    The default ``first_discounted_year=1`` leaves year 0 undiscounted and
    discounts year t by t years, as HM Treasury's Green Book tables do (the
    discount factor of year 0 is 1): over 10 years at 3.5% the factor is 8.608.
    ``first_discounted_year=0`` discounts every year, year 0 included, by one
    year more (8.317 over 10 years; the default is 1 + r times this). With ``r = 0`` the factor is the
    duration itself. The rate follows the NICE reference case (PMG36, 2022,
    4.5.1: 3.5% a year).
    """
    if duration_years < 0:
        raise ValueError(f"duration_years must be >= 0, got {duration_years}")
    if discount_rate <= -1:
        raise ValueError(f"discount_rate must be > -1, got {discount_rate}")
    if int(first_discounted_year) != first_discounted_year or first_discounted_year < 0:
        raise ValueError(
            f"first_discounted_year must be a whole number of years, 0 or more; got {first_discounted_year}"
        )
    whole = int(np.floor(duration_years))
    part = duration_years - whole
    years = np.arange(whole + (1 if part > 0 else 0))
    weights = np.where(years < whole, 1.0, part)
    exponents = np.maximum(0, years - int(first_discounted_year) + 1)
    return float(np.sum(weights / (1 + discount_rate) ** exponents))


def allocative(
    value_table: pd.DataFrame,
    duration_years: float,
    discount_rate: float = NICE_DISCOUNT_RATE,
    thresholds: Sequence[float] = NICE_THRESHOLD_GBP_PER_QALY,
    budget_gbp: float = 1_000.0,
    by: str = "pathway",
    first_discounted_year: int = 1,
) -> pd.DataFrame:
    """What the same pounds buy in each pathway (or setting), in QALY-like units.

    Allocative value asks where a pound does most good across pathways (HFMA
    chapter 18.2; King's Fund 2018). A QALY counts a year in full health as 1.
    An EQ-5D gain is a change in health *per year*; turning it into QALYs needs
    an assumption about how long it lasts. Here the gain is assumed to hold
    constant for ``duration_years`` after the procedure and to be zero
    afterwards, discounted at ``discount_rate`` from ``first_discounted_year``
    (see :func:`annuity_factor`: by default the first year after the procedure
    is not discounted), against a comparator of no treatment at no cost (the
    patient staying at their "before" score). These are assumptions, not data;
    change them and the table changes.

    Takes :func:`pathway_value` (or any table with ``by``, ``n``,
    ``mean_cost``, ``mean_gain``, ``gain_ci_lower``, ``gain_ci_upper``,
    ``cpug_ci_lower``, ``cpug_ci_upper``).

    Columns: ``by``; ``n``; ``mean_cost``; ``mean_gain``; ``duration_years``;
    ``discount_rate``; ``first_discounted_year``; ``qalys_per_patient`` (= ``mean_gain`` × annuity factor)
    with ``qalys_ci_lower``/``_upper``; ``patients_per_budget`` (= budget ÷
    mean cost); ``qalys_per_budget`` (QALYs bought by ``budget_gbp``, £1,000
    by default); ``cost_per_qaly`` (£) with ``cost_per_qaly_ci_lower``/``_upper``
    (Fieller interval of the cost per unit gain, divided by the annuity factor);
    ``threshold_lower``, ``threshold_upper`` (£ per QALY); ``verdict``: one of
    ``below £20,000 per QALY``, ``within £20,000-£30,000 per QALY``,
    ``above £30,000 per QALY`` (using the given thresholds), or ``no gain``.
    """
    need = [
        by,
        "n",
        "mean_cost",
        "mean_gain",
        "gain_ci_lower",
        "gain_ci_upper",
        "cpug_ci_lower",
        "cpug_ci_upper",
    ]
    missing = [c for c in need if c not in value_table.columns]
    if missing:
        raise InputError(
            f"allocative() needs the pathway_value table; missing column(s): {', '.join(missing)}"
        )
    lower, upper = (float(x) for x in thresholds)
    if not 0 < lower <= upper:
        raise ValueError(f"thresholds must be two positive numbers, lower first; got {thresholds}")
    af = annuity_factor(duration_years, discount_rate, first_discounted_year)
    out = value_table[need].copy()
    out["duration_years"] = float(duration_years)
    out["discount_rate"] = float(discount_rate)
    out["first_discounted_year"] = int(first_discounted_year)
    out["qalys_per_patient"] = out["mean_gain"] * af
    out["qalys_ci_lower"] = out["gain_ci_lower"] * af
    out["qalys_ci_upper"] = out["gain_ci_upper"] * af
    out["patients_per_budget"] = budget_gbp / out["mean_cost"]
    out["qalys_per_budget"] = out["qalys_per_patient"] * out["patients_per_budget"]
    positive = out["qalys_per_patient"] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cost_per_qaly"] = np.where(positive, out["mean_cost"] / out["qalys_per_patient"], np.nan)
        out["cost_per_qaly_ci_lower"] = out["cpug_ci_lower"] / af if af > 0 else np.nan
        out["cost_per_qaly_ci_upper"] = out["cpug_ci_upper"] / af if af > 0 else np.nan
    out["threshold_lower"] = lower
    out["threshold_upper"] = upper
    cpq = out["cost_per_qaly"]
    # the ends of the range count as within it (np.isclose absorbs rounding in the division)
    out["verdict"] = np.select(
        [~positive, (cpq < lower) & ~np.isclose(cpq, lower), (cpq <= upper) | np.isclose(cpq, upper)],
        ["no gain", f"below £{lower:,.0f} per QALY", f"within £{lower:,.0f}-£{upper:,.0f} per QALY"],
        default=f"above £{upper:,.0f} per QALY",
    )
    return out.drop(columns=["gain_ci_lower", "gain_ci_upper", "cpug_ci_lower", "cpug_ci_upper"])


def _icer_verdict(dc: float, dq: float, lower: float, upper: float) -> str:
    """Where a point estimate of (Δcost, ΔQALY) sits on the cost-effectiveness plane."""
    icer = dc / dq if dq != 0 else np.nan
    if dc <= 0 and dq >= 0 and (dc < 0 or dq > 0):
        return "dominant: cheaper and at least as effective"
    if dc >= 0 and dq <= 0 and (dc > 0 or dq < 0):
        return "dominated: dearer and no more effective"
    if dq > 0:
        return (
            f"more effective at £{icer:,.0f} per extra QALY: "
            + (
                "below"
                if icer < lower and not np.isclose(icer, lower)
                else "within"
                if icer <= upper or np.isclose(icer, upper)
                else "above"
            )
            + f" the £{lower:,.0f}-£{upper:,.0f} range"
        )
    if dq < 0:
        return f"less effective, saving £{icer:,.0f} per QALY lost"
    return "no difference in cost or effect"


def _refuse_pathways(by: str, comparator: str, intervention: str) -> None:
    if by == "pathway" and comparator != intervention:
        raise InputError(
            f"no ICER between '{comparator}' and '{intervention}': different pathways treat different patients, "
            "so neither is an alternative to the other. Compare them allocatively (QALYs per £, allocative() and "
            "across_pathways()), or compare two options for the same patients within one pathway (incremental_within())"
        )


def incremental(
    allocative_table: pd.DataFrame, comparator: str, intervention: str, by: str = "setting"
) -> pd.DataFrame:
    """Incremental cost-effectiveness of ``intervention`` against ``comparator`` from summary rows.

    ICER = (cost_B − cost_A) ÷ (QALYs_B − QALYs_A); net monetary benefit at a
    threshold λ is ``λ × ΔQALY − Δcost`` (Drummond MF et al, *Methods for the
    Economic Evaluation of Health Care Programmes*, 4th ed, 2015, ch. 4; NICE
    PMG36, 2022). The two rows must be alternatives for the same patients (two
    settings or models of care for one condition): with ``by="pathway"`` the
    function refuses (an :class:`~helpers.io.InputError`), because different
    pathways treat different patients; :func:`across_pathways` answers that
    allocative question instead. :func:`incremental_within` does the same sum
    from patient rows, with a bootstrap interval.

    Takes :func:`allocative` (or any table with ``by``, ``mean_cost``,
    ``qalys_per_patient``, ``threshold_lower``, ``threshold_upper``). One row
    with columns: ``comparator``, ``intervention``, ``cost_comparator``,
    ``cost_intervention``, ``qalys_comparator``, ``qalys_intervention`` (per
    patient), ``delta_cost`` (£), ``delta_qalys``, ``icer`` (£ per QALY; NaN
    when ``delta_qalys`` is 0), ``threshold_lower``, ``threshold_upper``,
    ``nmb_at_lower``, ``nmb_at_upper`` (£ per patient) and ``verdict``
    (``dominant``: cheaper and better; ``dominated``: dearer and worse;
    otherwise whether the ICER sits below, within or above the threshold range).
    """
    _refuse_pathways(by, comparator, intervention)
    rows = allocative_table.set_index(by)
    for name in (comparator, intervention):
        if name not in rows.index:
            raise InputError(
                f"incremental(): '{name}' is not a value of '{by}'; found: {', '.join(map(str, rows.index))}"
            )
    a, b = rows.loc[comparator], rows.loc[intervention]
    dc = float(b["mean_cost"] - a["mean_cost"])
    dq = float(b["qalys_per_patient"] - a["qalys_per_patient"])
    lower, upper = float(b["threshold_lower"]), float(b["threshold_upper"])
    return pd.DataFrame(
        [
            {
                "comparator": comparator,
                "intervention": intervention,
                "cost_comparator": float(a["mean_cost"]),
                "cost_intervention": float(b["mean_cost"]),
                "qalys_comparator": float(a["qalys_per_patient"]),
                "qalys_intervention": float(b["qalys_per_patient"]),
                "delta_cost": dc,
                "delta_qalys": dq,
                "icer": dc / dq if dq != 0 else np.nan,
                "threshold_lower": lower,
                "threshold_upper": upper,
                "nmb_at_lower": lower * dq - dc,
                "nmb_at_upper": upper * dq - dc,
                "verdict": _icer_verdict(dc, dq, lower, upper),
            }
        ]
    )


#: Bootstrap replicates and seed of :func:`incremental_within` by default.
BOOTSTRAP_REPLICATES: int = 1000
BOOTSTRAP_SEED: int = 2026


def _adjusted_means(
    cost: np.ndarray,
    gain: np.ndarray,
    exp_cost: np.ndarray,
    exp_gain: np.ndarray,
    pathway_cost: float,
    pathway_gain: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Indirectly standardised mean cost and gain along the last axis (as in :func:`provider_value`)."""
    adj_cost = pathway_cost * cost.mean(axis=-1) / exp_cost.mean(axis=-1)
    adj_gain = pathway_gain + gain.mean(axis=-1) - exp_gain.mean(axis=-1)
    return adj_cost, adj_gain


def incremental_within(
    outcomes: pd.DataFrame,
    pathway: str,
    comparator: str,
    intervention: str,
    by: str = "provider_code",
    duration_years: float = 10.0,
    discount_rate: float = NICE_DISCOUNT_RATE,
    thresholds: Sequence[float] = NICE_THRESHOLD_GBP_PER_QALY,
    first_discounted_year: int = 1,
    adjust_for_case_mix: bool = True,
    n_bootstrap: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
    conf: float = 0.95,
) -> pd.DataFrame:
    """Incremental cost-effectiveness of two options for the same patients, with bootstrap uncertainty.

    The two options are two values of ``by`` (by default two providers: the
    same procedure at two prices, under two models of care) among the patients
    of one ``pathway``. With ``adjust_for_case_mix`` each option's mean cost and
    gain are indirectly standardised to the pathway's case mix exactly as in
    :func:`provider_value`, so both describe the same (average) patients.
    QALYs per patient are the gain times :func:`annuity_factor`; Δ is
    intervention minus comparator; ICER = Δcost ÷ ΔQALY and net monetary
    benefit NMB(λ) = λ × ΔQALY − Δcost (Drummond MF et al, 2015, ch. 4).

    Uncertainty: a non-parametric bootstrap that resamples patients with
    replacement within each option, ``n_bootstrap`` times with ``seed``, keeping
    each patient's cost and gain together (Briggs AH, Wonderling DE, Mooney CZ,
    Health Econ 1997;6:327-40). Percentile intervals of Δcost and ΔQALY; the
    probability of being cost-effective at λ is the share of replicates with
    NMB(λ) > 0 (a point on the cost-effectiveness acceptability curve; Fenwick
    E, O'Brien BJ, Briggs A, Health Econ 2004;13:405-15). The case-mix model is
    held fixed across replicates.

    One row with columns: ``comparison`` (``incremental: same pathway``),
    ``pathway``, ``by``, ``comparator``, ``intervention``, ``n_comparator``,
    ``n_intervention``, ``cost_comparator``, ``cost_intervention`` (£ per
    patient), ``qalys_comparator``, ``qalys_intervention``, ``delta_cost`` with
    ``delta_cost_ci_lower``/``_upper``, ``delta_qalys`` with
    ``delta_qalys_ci_lower``/``_upper``, ``icer`` (£ per QALY, NaN when ΔQALY
    is 0), ``threshold_lower``, ``threshold_upper``, ``nmb_at_lower``,
    ``nmb_at_upper`` (£ per patient), ``prob_cost_effective_at_lower``,
    ``prob_cost_effective_at_upper``, ``duration_years``, ``discount_rate``,
    ``first_discounted_year``, ``case_mix_adjusted``, ``n_bootstrap``,
    ``seed`` and ``verdict`` (the point estimate's place on the plane, then the
    two probabilities; it starts ``no clear difference`` when both intervals
    include zero).
    """
    lower, upper = (float(x) for x in thresholds)
    if not 0 < lower <= upper:
        raise ValueError(f"thresholds must be two positive numbers, lower first; got {thresholds}")
    if n_bootstrap < 100:
        raise ValueError(f"n_bootstrap must be at least 100 for a percentile interval; got {n_bootstrap}")
    if by == "pathway":
        _refuse_pathways(by, comparator, intervention)
    if by not in outcomes.columns:
        raise InputError(f"outcomes table: no column '{by}' to tell the two options apart")
    df = expected_values(outcomes) if adjust_for_case_mix else _check_outcomes(outcomes)
    if not adjust_for_case_mix:
        df["expected_cost"] = 1.0
        df["expected_gain"] = 0.0
    part = df[df["pathway"] == pathway]
    if part.empty:
        raise InputError(
            f"incremental_within(): no patients on pathway '{pathway}'; found: {', '.join(sorted(map(str, df['pathway'].unique())))}"
        )
    pathway_cost = float(part["cost"].mean()) if adjust_for_case_mix else 1.0
    pathway_gain = float(part["gain"].mean()) if adjust_for_case_mix else 0.0
    arms = {}
    for name in (comparator, intervention):
        arm = part[part[by].astype("str") == str(name)]
        if len(arm) < 2:
            found = ", ".join(sorted(map(str, part[by].unique())))
            raise InputError(
                f"incremental_within(): '{name}' has {len(arm)} patient(s) on {pathway} (at least 2 needed); "
                f"values of '{by}' found: {found}"
            )
        arms[name] = [
            arm[c].to_numpy(dtype="float64") for c in ("cost", "gain", "expected_cost", "expected_gain")
        ]
    if comparator == intervention:
        raise InputError(f"incremental_within(): the comparator and the intervention are both '{comparator}'")
    af = annuity_factor(duration_years, discount_rate, first_discounted_year)
    rng = np.random.default_rng(seed)
    point, boot = {}, {}
    for name, cols in arms.items():
        point[name] = _adjusted_means(*cols, pathway_cost, pathway_gain)
        idx = rng.integers(0, cols[0].size, size=(n_bootstrap, cols[0].size))
        boot[name] = _adjusted_means(*(c[idx] for c in cols), pathway_cost, pathway_gain)
    (ca, ga), (cb, gb) = point[comparator], point[intervention]
    dc, dq = float(cb - ca), float((gb - ga) * af)
    dc_b = boot[intervention][0] - boot[comparator][0]
    dq_b = (boot[intervention][1] - boot[comparator][1]) * af
    tail = (1 - conf) / 2 * 100
    dc_lo, dc_hi = np.percentile(dc_b, [tail, 100 - tail])
    dq_lo, dq_hi = np.percentile(dq_b, [tail, 100 - tail])
    p_lower = float(np.mean(lower * dq_b - dc_b > 0))
    p_upper = float(np.mean(upper * dq_b - dc_b > 0))
    verdict = _icer_verdict(dc, dq, lower, upper)
    if dc_lo <= 0 <= dc_hi and dq_lo <= 0 <= dq_hi:
        verdict = "no clear difference (both intervals include zero); point estimate " + verdict
    verdict += f"; probability cost-effective {p_lower:.2f} at £{lower:,.0f} and {p_upper:.2f} at £{upper:,.0f} per QALY"
    return pd.DataFrame(
        [
            {
                "comparison": "incremental: same pathway",
                "pathway": pathway,
                "by": by,
                "comparator": str(comparator),
                "intervention": str(intervention),
                "n_comparator": int(arms[comparator][0].size),
                "n_intervention": int(arms[intervention][0].size),
                "cost_comparator": float(ca),
                "cost_intervention": float(cb),
                "qalys_comparator": float(ga * af),
                "qalys_intervention": float(gb * af),
                "delta_cost": dc,
                "delta_cost_ci_lower": float(dc_lo),
                "delta_cost_ci_upper": float(dc_hi),
                "delta_qalys": dq,
                "delta_qalys_ci_lower": float(dq_lo),
                "delta_qalys_ci_upper": float(dq_hi),
                "icer": dc / dq if dq != 0 else np.nan,
                "threshold_lower": lower,
                "threshold_upper": upper,
                "nmb_at_lower": lower * dq - dc,
                "nmb_at_upper": upper * dq - dc,
                "prob_cost_effective_at_lower": p_lower,
                "prob_cost_effective_at_upper": p_upper,
                "duration_years": float(duration_years),
                "discount_rate": float(discount_rate),
                "first_discounted_year": int(first_discounted_year),
                "case_mix_adjusted": bool(adjust_for_case_mix),
                "n_bootstrap": int(n_bootstrap),
                "seed": int(seed),
                "verdict": verdict,
            }
        ]
    )


def across_pathways(allocative_table: pd.DataFrame, comparator: str, intervention: str) -> pd.DataFrame:
    """Two different pathways side by side as an allocative comparison: QALYs per £, never an ICER.

    Different pathways treat different patients, so one is not an alternative
    to the other and their cost difference over their QALY difference means
    nothing; what can be compared is what the same budget buys in each (HFMA
    chapter 18.2, allocative value). Takes :func:`allocative`.

    One row: ``comparison`` (``allocative: different pathways, no ICER``),
    ``comparator``, ``intervention``, ``cost_comparator``, ``cost_intervention``,
    ``qalys_comparator``, ``qalys_intervention`` (per patient),
    ``budget_gbp``, ``qalys_per_budget_comparator``,
    ``qalys_per_budget_intervention``, ``icer`` (always NaN) and ``verdict``
    (a sentence saying which buys more health per pound, and that it is not an
    ICER).
    """
    rows = allocative_table.set_index("pathway")
    for name in (comparator, intervention):
        if name not in rows.index:
            raise InputError(
                f"across_pathways(): '{name}' is not a pathway; found: {', '.join(map(str, rows.index))}"
            )
    a, b = rows.loc[comparator], rows.loc[intervention]
    budget = float(a["patients_per_budget"] * a["mean_cost"])
    qa, qb = float(a["qalys_per_budget"]), float(b["qalys_per_budget"])
    more, less = (intervention, comparator) if qb > qa else (comparator, intervention)
    verdict = (
        f"not an ICER: {comparator} and {intervention} treat different patients; "
        f"£{budget:,.0f} buys {max(qa, qb):.2f} QALYs in {more} and {min(qa, qb):.2f} in {less}"
    )
    return pd.DataFrame(
        [
            {
                "comparison": "allocative: different pathways, no ICER",
                "comparator": comparator,
                "intervention": intervention,
                "cost_comparator": float(a["mean_cost"]),
                "cost_intervention": float(b["mean_cost"]),
                "qalys_comparator": float(a["qalys_per_patient"]),
                "qalys_intervention": float(b["qalys_per_patient"]),
                "budget_gbp": budget,
                "qalys_per_budget_comparator": qa,
                "qalys_per_budget_intervention": qb,
                "icer": np.nan,
                "verdict": verdict,
            }
        ]
    )


def compare_options(
    outcomes: pd.DataFrame,
    allocative_table: pd.DataFrame,
    comparison: Sequence[str] = (),
    pathway: str | None = None,
    by: str = "provider_code",
    **kwargs: Any,
) -> pd.DataFrame:
    """The notebook's incremental step: an ICER within one pathway, or an allocative row across two.

    - ``comparison`` names two pathways: :func:`across_pathways` (no ICER);
    - ``comparison`` names two values of ``by`` (providers by default):
      :func:`incremental_within` on ``pathway``;
    - ``comparison`` empty: :func:`incremental_within` on ``pathway`` between
      the two values of ``by`` with most patients there (ties by name), the
      larger as comparator.

    ``kwargs`` go to :func:`incremental_within` (duration, discounting,
    thresholds, bootstrap). ``pathway`` is required unless two pathways are named.
    """
    comparison = [str(x) for x in comparison]
    if comparison and len(comparison) != 2:
        raise InputError(f"comparison: give two names, [comparator, intervention], or none; got {comparison}")
    pathways = set(map(str, allocative_table["pathway"]))
    if comparison and set(comparison) <= pathways and comparison[0] != comparison[1]:
        return across_pathways(allocative_table, *comparison)
    if pathway is None:
        raise InputError("compare_options(): name the pathway whose two options are compared")
    if not comparison:
        part = outcomes[outcomes["pathway"] == pathway]
        sizes = part.groupby(by).size().reset_index(name="n")
        sizes[by] = sizes[by].astype("str")
        top = sizes.sort_values(["n", by], ascending=[False, True])[by].head(2).tolist()
        if len(top) < 2:
            raise InputError(f"compare_options(): {pathway} has fewer than two values of '{by}' to compare")
        comparison = top
    return incremental_within(outcomes, pathway, comparison[0], comparison[1], by=by, **kwargs)


# --------------------------------------------------------------------------- CIP plan
_YES = {"yes", "y", "true", "1", "t"}
_NO = {"no", "n", "false", "0", "f"}


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    return True if text in _YES else False if text in _NO else None


#: The quality impact assessment status that lets a scheme count in the plan total.
#: Pending and not-started schemes are shown beside the plan, not in it; rejected
#: schemes are listed apart and never counted.
QIA_COUNTED: str = "approved"
QIA_AWAITING: tuple[str, ...] = ("pending", "not started")
QIA_REJECTED: str = "rejected"
PLAN_TOTAL = "plan total"
REJECTED_LINE = "rejected (not counted)"
_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}


def financial_month(value: Any) -> int | None:
    """Month of the NHS financial year (1 = April ... 12 = March) from how a plan writes a start month.

    Accepts ``M1``-``M12`` (financial-year months, M1 = April, as NHS finance
    reports number them), a month name or its first three letters
    (``October``, ``Oct``) and a date (``2025-10-01``, ``2025-10``, or a
    spreadsheet date). Blank gives None (no start month). A bare number is
    refused (it could be a calendar month or a financial one): ValueError.
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64)) or hasattr(value, "month"):
        return (pd.Timestamp(value).month - 4) % 12 + 1
    text = str(value).strip().lower()
    if text in ("", "nan", "none", "nat"):
        return None
    if text.startswith("m") and text[1:].isdigit() and 1 <= int(text[1:]) <= 12:
        return int(text[1:])
    for name, number in _MONTHS.items():
        if text == name or text == name[:3]:
            return (number - 4) % 12 + 1
    is_date = text[:4].isdigit() and len(text) >= 7 and text[4] in "-/"
    stamp = pd.to_datetime(text, errors="coerce", format="ISO8601") if is_date else pd.NaT
    if pd.notna(stamp):
        return (stamp.month - 4) % 12 + 1
    raise ValueError(value)


def cip_plan(plan: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Check and classify a cost improvement plan (CIP) that a finance business partner fills in.

    One row per scheme with ``scheme`` (name), ``value_gbp`` (planned saving in
    the financial year, £ ≥ 0), ``cash_releasing`` (yes/no), ``recurrent``
    (yes/no), ``qia_status`` (quality impact assessment: approved, pending, not
    started, rejected), and optionally ``qia_rating`` (low, moderate, high risk
    to quality) and ``start_month`` (when the saving starts: ``M7`` or
    ``October`` or a date; see :func:`financial_month`). Classes follow HFMA
    chapter 18.6 (cash-releasing or not; recurrent or one-off); every scheme
    needs a quality impact assessment, however small, as at Bolton, where the
    assessments often halted or changed schemes (King's Fund 2018).

    Counting rule: a scheme counts in the plan only when its assessment is
    approved (:data:`QIA_COUNTED`); pending and not-started schemes await one
    and are shown beside the plan; rejected schemes never count.

    Full-year effect: a recurrent scheme that starts in financial month m saves
    ``value_gbp`` in the 13 − m months left of the year, so over a full twelve
    months it saves ``value_gbp × 12 ÷ (13 − m)``. Without a start month the
    value is taken to be the full-year value. A non-recurrent saving has no
    full-year effect (0): it does not carry into next year.

    Raises :class:`helpers.io.InputError` naming the column and schemes for
    anything it cannot read. Returns the schemes with ``cash_releasing`` and
    ``recurrent`` as booleans, ``cip_class`` (one of :data:`CIP_CLASSES`),
    ``qia_status``, ``qia_rating``, ``qia_approved`` (bool), ``counted_in_plan``
    (bool, = approved), ``start_month`` (financial month 1-12, nullable),
    ``months_in_year``, ``full_year_effect_gbp`` and ``flag`` (empty,
    ``rejected at quality impact assessment: not counted``, ``no approved
    quality impact assessment (status: ...): not counted`` or ``high quality
    risk: check the mitigation``).
    """
    df = pd.DataFrame(plan) if not isinstance(plan, pd.DataFrame) else plan.copy()
    need = ["scheme", "value_gbp", "cash_releasing", "recurrent", "qia_status"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(
            f"CIP plan: missing column(s) {', '.join(missing)}; each scheme needs {', '.join(need)} "
            "(and optionally qia_rating, start_month)"
        )
    if "qia_rating" not in df.columns:
        df["qia_rating"] = ""
    if "start_month" not in df.columns:
        df["start_month"] = None
    problems: list[str] = []

    def report(col: str, bad: pd.Series, expected: str) -> None:
        if bad.any():
            idx = np.flatnonzero(bad.to_numpy())
            shown = ", ".join(f"{df['scheme'].iloc[i]!r} ({df[col].iloc[i]!r})" for i in idx[:_MAX_SHOWN])
            problems.append(f"column '{col}': expected {expected}; {len(idx)} scheme(s): {shown}")

    value = pd.to_numeric(df["value_gbp"], errors="coerce")
    report("value_gbp", value.isna() | (value < 0), "a saving in £ of 0 or more")
    report("scheme", df["scheme"].isna() | (df["scheme"].astype("str").str.strip() == ""), "a scheme name")
    flags = {}
    for col in ("cash_releasing", "recurrent"):
        flags[col] = df[col].map(_yes_no)
        report(col, flags[col].isna(), "yes or no")
    status = df["qia_status"].astype("str").str.strip().str.lower()
    report("qia_status", ~status.isin(QIA_STATUSES), "one of " + ", ".join(QIA_STATUSES))
    rating = df["qia_rating"].fillna("").astype("str").str.strip().str.lower()
    report("qia_rating", ~rating.isin(("", *QIA_RATINGS)), "blank or one of " + ", ".join(QIA_RATINGS))
    months: list[int | None] = []
    unreadable = []
    for raw in df["start_month"]:
        try:
            months.append(financial_month(raw))
            unreadable.append(False)
        except ValueError:
            months.append(None)
            unreadable.append(True)
    report(
        "start_month",
        pd.Series(unreadable, index=df.index),
        "blank, M1-M12 (M1 = April), a month name such as October, or a date",
    )
    if problems:
        raise InputError("CIP plan: " + "; ".join(problems))

    out = pd.DataFrame(
        {
            "scheme": df["scheme"].astype("str").str.strip(),
            "value_gbp": value.astype("float64"),
            "cash_releasing": flags["cash_releasing"].astype("bool"),
            "recurrent": flags["recurrent"].astype("bool"),
            "qia_status": status,
            "qia_rating": rating,
        }
    )
    out["cip_class"] = [
        f"{'cash-releasing' if c else 'non-cash-releasing'}, {'recurrent' if r else 'non-recurrent'}"
        for c, r in zip(out["cash_releasing"], out["recurrent"])
    ]
    out["qia_approved"] = out["qia_status"] == QIA_COUNTED
    out["counted_in_plan"] = out["qia_approved"]
    out["start_month"] = pd.array(months, dtype="Int64")
    out["months_in_year"] = (13 - out["start_month"]).fillna(12).astype("int64")
    out["full_year_effect_gbp"] = np.where(
        out["recurrent"], out["value_gbp"] * 12 / out["months_in_year"], 0.0
    )
    out["flag"] = [
        "rejected at quality impact assessment: not counted"
        if s == QIA_REJECTED
        else f"no approved quality impact assessment (status: {s}): not counted"
        if not ok
        else "high quality risk: check the mitigation"
        if r == "high"
        else ""
        for s, ok, r in zip(out["qia_status"], out["qia_approved"], out["qia_rating"])
    ]
    return out


def cip_summary(
    plan: pd.DataFrame | Iterable[Mapping[str, Any]], target_gbp: float | None = None
) -> pd.DataFrame:
    """A CIP plan totalled by class of saving, with the gap to target in recurrent cash.

    Takes the same input as :func:`cip_plan`. Only schemes with an approved
    quality impact assessment count (:data:`QIA_COUNTED`). Rows: one per class
    in :data:`CIP_CLASSES` (zero rows included), then ``plan total`` (the four
    classes added up), then ``rejected (not counted)`` (schemes whose assessment
    rejected them, listed apart so that no total includes them).

    Columns: ``cip_class``; ``counted_in_plan`` (False only on the rejected
    row); ``n_schemes``; ``value_gbp`` (£ this financial year);
    ``full_year_effect_gbp`` (£ over twelve months, see :func:`cip_plan`);
    ``share_of_plan``; ``n_high_risk`` (counted schemes rated high risk to
    quality); ``awaiting_qia_gbp`` and ``n_awaiting_qia`` (schemes of that
    class whose assessment is pending or not started: beside the plan, not in
    it). On the ``plan total`` row, when a target is given: ``target_gbp``;
    ``recurrent_cash_gbp`` (the counted cash-releasing, recurrent savings this
    year, the only kind that lowers next year's cost base);
    ``gap_to_target_gbp`` = target − recurrent cash (positive: short);
    ``other_savings_gbp`` (the rest of the plan: one-off cash and
    non-cash-releasing savings) and ``gap_after_other_savings_gbp`` = target −
    plan total (what would still be missing if the one-off and non-cash
    savings were counted too).
    """
    checked = cip_plan(plan)
    counted = checked[checked["counted_in_plan"]]
    awaiting = checked[checked["qia_status"].isin(QIA_AWAITING)]
    rejected = checked[checked["qia_status"] == QIA_REJECTED]
    g = (
        counted.assign(_high=counted["qia_rating"] == "high")
        .groupby("cip_class")
        .agg(
            n_schemes=("scheme", "size"),
            value_gbp=("value_gbp", "sum"),
            full_year_effect_gbp=("full_year_effect_gbp", "sum"),
            n_high_risk=("_high", "sum"),
        )
        .reindex(list(CIP_CLASSES), fill_value=0)
    )
    w = (
        awaiting.groupby("cip_class")
        .agg(awaiting_qia_gbp=("value_gbp", "sum"), n_awaiting_qia=("scheme", "size"))
        .reindex(list(CIP_CLASSES), fill_value=0)
    )
    classes = g.join(w).reset_index().rename(columns={"index": "cip_class"})
    total = classes.drop(columns="cip_class").sum().to_frame().T.assign(cip_class=PLAN_TOTAL)
    rejected_row = pd.DataFrame(
        [
            {
                "cip_class": REJECTED_LINE,
                "n_schemes": len(rejected),
                "value_gbp": float(rejected["value_gbp"].sum()),
                "full_year_effect_gbp": float(rejected["full_year_effect_gbp"].sum()),
                "n_high_risk": 0,
                "awaiting_qia_gbp": np.nan,
                "n_awaiting_qia": 0,
            }
        ]
    )
    out = pd.concat([classes, total, rejected_row], ignore_index=True)
    out["counted_in_plan"] = out["cip_class"] != REJECTED_LINE
    for col in ("n_schemes", "n_high_risk", "n_awaiting_qia"):
        out[col] = out[col].astype("int64")
    for col in ("value_gbp", "full_year_effect_gbp", "awaiting_qia_gbp"):
        out[col] = out[col].astype("float64")
    plan_total = float(classes["value_gbp"].sum())
    out["share_of_plan"] = np.where(
        out["counted_in_plan"], out["value_gbp"] / plan_total if plan_total > 0 else np.nan, np.nan
    )
    recurrent_cash = float(classes.set_index("cip_class").loc["cash-releasing, recurrent", "value_gbp"])
    at_total = out["cip_class"] == PLAN_TOTAL
    for col in (
        "target_gbp",
        "recurrent_cash_gbp",
        "gap_to_target_gbp",
        "other_savings_gbp",
        "gap_after_other_savings_gbp",
    ):
        out[col] = np.nan
    out.loc[at_total, "recurrent_cash_gbp"] = recurrent_cash
    out.loc[at_total, "other_savings_gbp"] = plan_total - recurrent_cash
    if target_gbp is not None:
        out.loc[at_total, "target_gbp"] = float(target_gbp)
        out.loc[at_total, "gap_to_target_gbp"] = float(target_gbp) - recurrent_cash
        out.loc[at_total, "gap_after_other_savings_gbp"] = float(target_gbp) - plan_total
    cols = [
        "cip_class",
        "counted_in_plan",
        "n_schemes",
        "value_gbp",
        "full_year_effect_gbp",
        "share_of_plan",
        "n_high_risk",
        "awaiting_qia_gbp",
        "n_awaiting_qia",
        "target_gbp",
        "recurrent_cash_gbp",
        "gap_to_target_gbp",
        "other_savings_gbp",
        "gap_after_other_savings_gbp",
    ]
    return out[cols]


# --------------------------------------------------------------------------- findings in words
def describe_pathway_value(value_table: pd.DataFrame, by: str = "pathway") -> str:
    """One sentence: where a unit of health gain costs least and most (for a figure title)."""
    t = value_table.dropna(subset=["cost_per_unit_gain"]).sort_values("cost_per_unit_gain")
    if t.empty:
        return "No group shows a positive mean health gain"
    lo, hi = t.iloc[0], t.iloc[-1]
    if len(t) == 1:
        return f"{lo[by]}: £{lo['cost_per_unit_gain']:,.0f} per unit of EQ-5D gain"
    return (
        f"A unit of EQ-5D gain costs least in {lo[by]} (£{lo['cost_per_unit_gain']:,.0f}) "
        f"and most in {hi[by]} (£{hi['cost_per_unit_gain']:,.0f})"
    )


def describe_equity(equity_table: pd.DataFrame, pathway: str | None = None) -> str:
    """One sentence: mean gain of the Core20 group (IMD deciles 1-2) against everyone else.

    With ``pathway`` the sentence gives that pathway's two means; without it,
    it counts the pathways in which the Core20 group gains less (pathways are
    never pooled, because their gains are on different scales).
    """

    def gap(t: pd.DataFrame) -> tuple[float, float] | None:
        known = t[t["group"] != "unknown"]
        if not {"Core20", "other"} <= set(known["group"]):
            return None
        m = {g: np.average(d["mean_gain"], weights=d["n"]) for g, d in known.groupby("group")}
        return float(m["Core20"]), float(m["other"])

    if pathway is not None:
        g = gap(equity_table[equity_table["pathway"] == pathway])
        if g is None:
            return f"{pathway}: not enough deprivation data to compare groups"
        word = "less" if g[0] < g[1] else "more"
        return (
            f"{pathway}: patients from the most deprived fifth of areas gain {abs(g[0] - g[1]):.3f} {word} "
            f"on the EQ-5D index than other patients ({g[0]:.3f} against {g[1]:.3f})"
        )
    gaps = {p: gap(t) for p, t in equity_table.groupby("pathway", sort=True)}
    gaps = {p: g for p, g in gaps.items() if g is not None}
    if not gaps:
        return "Not enough deprivation data to compare groups"
    less = sum(g[0] < g[1] for g in gaps.values())
    return (
        f"Patients from the most deprived fifth of areas gain less than other patients "
        f"in {less} of {len(gaps)} pathways"
    )


def describe_allocative(
    allocative_table: pd.DataFrame, by: str = "pathway", budget_gbp: float = 1_000.0
) -> str:
    """One sentence: what the same budget buys in the best and worst group."""
    t = allocative_table.dropna(subset=["qalys_per_budget"]).sort_values("qalys_per_budget", ascending=False)
    if t.empty:
        return "No group shows a health gain"
    hi, lo = t.iloc[0], t.iloc[-1]
    years = float(hi["duration_years"])
    return (
        f"£{budget_gbp:,.0f} buys {hi['qalys_per_budget']:.2f} QALYs in {hi[by]} and "
        f"{lo['qalys_per_budget']:.2f} in {lo[by]} (gain assumed to last {years:g} years)"
    )


def describe_cip(summary: pd.DataFrame) -> str:
    """One sentence: what the plan counts, what awaits assessment, and the gap in recurrent cash."""
    rows = summary.set_index("cip_class")
    total = rows.loc[PLAN_TOTAL]
    text = (
        f"The plan counts £{total['value_gbp']:,.0f} of schemes with an approved quality impact assessment, "
        f"£{total['recurrent_cash_gbp']:,.0f} of it recurrent cash"
    )
    if total["awaiting_qia_gbp"] > 0:
        text += f"; £{total['awaiting_qia_gbp']:,.0f} more awaits assessment"
    if REJECTED_LINE in rows.index and rows.loc[REJECTED_LINE, "n_schemes"] > 0:
        text += f"; £{rows.loc[REJECTED_LINE, 'value_gbp']:,.0f} was rejected"
    gap = total.get("gap_to_target_gbp", np.nan)
    if pd.notna(gap) and gap > 0:
        text += f"; recurrent cash is £{gap:,.0f} short of the £{total['target_gbp']:,.0f} target"
    return text
