"""Opportunity in the style of GIRFT and the Model Health System, with its uncertainty.

The national packs say: "if every trust worse than the benchmark matched it,
this many bed days would be released". This module computes that figure
(``naive``), the same figure restricted to providers beyond the funnel's
outlier limit on the worse side (``outliers_only``), and an interval for the total
(``interval``) that allows for chance. Dropkin (J Public Health 2017) showed
why the interval matters: RightCare's "best five of ten" method counted 1,842
avoidable lung cancer deaths where proper intervals left 168 - most of the
naive opportunity was noise, because max(0, noise) is always positive.

Definitions
-----------
* Benchmark (a parameter): the median of the providers' case-mix adjusted
  indicator (national, or over a peer list - Model Hospital compares with ten
  recommended peers), or the better quartile (the 25th percentile where lower
  is better). Small providers (expected below ``min_expected``) do not set
  the benchmark.
* A provider's opportunity, for an indicator where lower is better:
  max(0, O - b x E) for a ratio O/E with benchmark ratio b, and
  max(0, O - b x n) for a proportion with benchmark rate b. For length of
  stay, O - b x E = (mean LOS - benchmark LOS for this provider's case mix) x
  spells, since E / spells is the provider's expected mean stay. Never
  negative, never netted: a provider better than the benchmark does not
  offset one that is worse.
* The interval: the providers' true indicators are drawn from their
  empirical Bayes posteriors under the random-effects model of the funnel
  (normal on the transformed scale, between-provider variance tau^2 from
  the funnel's own estimator, :data:`helpers.funnel.DEFAULT_TAU2_METHOD`
  unless the analysis chose another; its own
  uncertainty is drawn too), the benchmark is recomputed in each draw, and
  the total opportunity is summed; the 2.5th, 50th and
  97.5th percentiles are reported. ``method="bootstrap"`` instead redraws each
  provider's indicator around its observed value (a parametric bootstrap of
  the naive figure: its spread, not its bias).

Small providers (expected below the funnel's ``min_expected``) can never be
flagged, so they are left out of the naive total, the outliers-only total and
the interval, and their opportunity is reported apart (``small_providers``).

Opportunities for different indicators overlap - a shorter stay and a higher
day-case rate release the same beds - so they must never be added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from helpers import finance
from helpers.funnel import (
    FunnelResult,
    back_transform,
    estimate_dispersion,
    level_label,
    limits_at,
    transform,
)

Benchmark = str | Sequence[str]

#: Printed under every opportunity table.
DOUBLE_COUNTING_WARNING = (
    "Opportunities for different indicators overlap (a shorter stay and a higher day-case rate "
    "release the same beds): never add them together."
)
#: What the £ figure is.
CAPACITY_NOTE = (
    "Capacity released (non-cash-releasing) unless beds and their staff are removed; "
    "the cash-releasing figure applies the marginal cost share."
)


def _value_column(providers: pd.DataFrame) -> str:
    for col in ("ratio", "rate"):
        if col in providers.columns:
            return col
    raise KeyError(
        "The provider table needs a 'ratio' or 'rate' column (the output of helpers.funnel.funnel)."
    )


def benchmark_value(
    providers: pd.DataFrame,
    benchmark: Benchmark = "median",
    higher_is_better: bool = False,
    value_column: str | None = None,
) -> float:
    """The benchmark value of the indicator.

    ``"median"``: median over providers that are not small; ``"better_quartile"``:
    the 25th percentile (75th where higher is better); a list of provider codes:
    the median of that peer group (every code must be in the table).
    """
    col = value_column or _value_column(providers)
    pool = providers[~providers["small"]] if "small" in providers.columns else providers
    if isinstance(benchmark, str):
        if benchmark == "median":
            return float(np.median(pool[col]))
        if benchmark == "better_quartile":
            return float(np.quantile(pool[col], 0.75 if higher_is_better else 0.25))
        raise ValueError(
            f"benchmark must be 'median', 'better_quartile' or a list of peer provider codes; got {benchmark!r}."
        )
    peers = [str(p) for p in benchmark]
    missing = sorted(set(peers) - set(providers["provider_code"].astype("str")))
    if missing:
        raise ValueError(f"Peer group: provider code(s) {', '.join(missing)} are not in the provider table.")
    if not peers:
        raise ValueError("Peer group: the list of peer provider codes is empty.")
    return float(np.median(providers.loc[providers["provider_code"].isin(peers), col]))


def _base(providers: pd.DataFrame, col: str) -> np.ndarray:
    """E for a ratio, n for a proportion: value x base = count."""
    return (providers["expected"] if col == "ratio" else providers["denominator"]).to_numpy(float)


def _excess(
    values: np.ndarray, bench: np.ndarray | float, base: np.ndarray, higher_is_better: bool
) -> np.ndarray:
    gap = (bench - values) if higher_is_better else (values - bench)
    return np.maximum(gap, 0.0) * base


def provider_opportunity(
    providers: pd.DataFrame,
    bench: float,
    higher_is_better: bool = False,
    bed_days_per_unit: float | None = 1.0,
    cost_per_bed_day: float | finance.UnitCost = finance.COST_PER_BED_DAY,
) -> pd.DataFrame:
    """Add benchmark, opportunity, opportunity_bed_days and opportunity_gbp to a provider table.

    ``opportunity`` is in the indicator's unit (bed days for length of stay,
    events otherwise); ``bed_days_per_unit`` converts it to bed days (1 for
    LOS; the mean stay of an avoided admission for readmissions; None where
    no bed days follow, as for deaths, giving missing values).
    ``opportunity_gbp`` is capacity released (see :mod:`helpers.finance`).
    """
    col = _value_column(providers)
    out = providers.copy()
    out["benchmark"] = bench
    out["opportunity"] = _excess(out[col].to_numpy(float), bench, _base(out, col), higher_is_better)
    if bed_days_per_unit is None:
        out["opportunity_bed_days"] = np.nan
    else:
        out["opportunity_bed_days"] = out["opportunity"] * float(bed_days_per_unit)
    out["opportunity_gbp"] = finance.capacity_released_gbp(out["opportunity_bed_days"], cost_per_bed_day)
    return out


def opportunity_draws(
    result: FunnelResult,
    benchmark: Benchmark = "median",
    higher_is_better: bool = False,
    method: Literal["empirical_bayes", "bootstrap"] = "empirical_bayes",
    tau2_method: str | None = None,
    draws: int = 2000,
    seed: int = 2026,
) -> np.ndarray:
    """Simulated totals of the opportunity (indicator units), one per draw.

    See the module docstring for the two methods. ``tau2_method`` defaults to
    the funnel's. Small providers are drawn (they can set a peer benchmark)
    but not summed. Randomness only from ``seed``.
    """
    tau2_method = tau2_method or result.spec.dispersion.tau2_method
    p = result.providers
    spec = result.spec
    col = _value_column(p)
    base = _base(p, col)
    y, s, theta = transform(
        spec.indicator_type, p["observed"].to_numpy(float), base, spec.target, spec.transform, spec.scale
    )
    if tau2_method == spec.dispersion.tau2_method and spec.dispersion.model == "additive":
        disp = spec.dispersion  # the funnel's own estimate
    else:
        disp = estimate_dispersion(
            y, s, theta, "additive", tau2_method, spec.dispersion.trim, spec.dispersion.trim_method
        )
    rng = np.random.default_rng(seed)
    if method == "empirical_bayes":
        # tau^2 is itself uncertain: draw it from its large-sample distribution,
        # var(tau2) = 2 / sum (s^2 + tau2)^-2 (the inverse Fisher information of
        # the normal random-effects likelihood), truncated at 0
        se_tau2 = np.sqrt(2.0 / np.sum((s**2 + disp.tau2) ** -2.0))
        tau2 = np.maximum(disp.tau2 + se_tau2 * rng.standard_normal((draws, 1)), 0.0)
        shrink = tau2 / (tau2 + s[None, :] ** 2)
        mean = theta + shrink * (y[None, :] - theta)
        sd = np.sqrt(shrink * s[None, :] ** 2)
    elif method == "bootstrap":
        mean, sd = y, s
    else:
        raise ValueError(f"method must be 'empirical_bayes' or 'bootstrap'; got {method!r}.")
    sims = back_transform(spec.transform, mean + sd * rng.standard_normal((draws, len(p))))
    small = p["small"].to_numpy(bool) if "small" in p.columns else np.zeros(len(p), bool)
    if isinstance(benchmark, str):
        pool = sims[:, ~small]
        if benchmark == "median":
            bench = np.median(pool, axis=1)
        elif benchmark == "better_quartile":
            bench = np.quantile(pool, 0.75 if higher_is_better else 0.25, axis=1)
        else:
            raise ValueError(
                f"benchmark must be 'median', 'better_quartile' or a list of peer codes; got {benchmark!r}."
            )
    else:
        benchmark_value(p, benchmark, higher_is_better)  # validates the peer list
        peers = p["provider_code"].isin([str(x) for x in benchmark]).to_numpy()
        bench = np.median(sims[:, peers], axis=1)
    return _excess(sims[:, ~small], bench[:, None], base[None, ~small], higher_is_better).sum(axis=1)


@dataclass
class OpportunityResult:
    """``providers``: the provider table with opportunity columns; ``summary``:
    the ``opportunity_summary`` table; ``benchmark``: the benchmark value."""

    providers: pd.DataFrame
    summary: pd.DataFrame
    benchmark: float


def opportunity(
    result: FunnelResult,
    benchmark: Benchmark = "median",
    higher_is_better: bool = False,
    bed_days_per_unit: float | None = 1.0,
    cost_per_bed_day: float | finance.UnitCost = finance.COST_PER_BED_DAY,
    occupancy: float = finance.TARGET_OCCUPANCY,
    marginal_cost_share: float = finance.MARGINAL_COST_SHARE,
    outlier_level: float | None = None,
    method: Literal["empirical_bayes", "bootstrap"] = "empirical_bayes",
    tau2_method: str | None = None,
    draws: int = 2000,
    seed: int = 2026,
    years: float = 1.0,
    price_year: str | None = None,
) -> OpportunityResult:
    """Opportunity by provider and the ``opportunity_summary`` table.

    ``opportunity_summary`` has one row per estimate - ``naive`` (every
    provider worse than the benchmark and large enough to be flagged),
    ``outliers_only`` (only providers beyond the ``outlier_level`` funnel
    limit on the worse side; default the funnel's own outlier level),
    ``interval`` (see :func:`opportunity_draws`; its ``opportunity`` is the
    median draw) and ``small_providers`` (providers worse than the benchmark
    but too small to be flagged, counted in none of the others) - with
    columns estimate, providers (count contributing; missing for the
    interval), opportunity, opportunity_lower,
    opportunity_upper (indicator units), bed_days, bed_days_lower,
    bed_days_upper, beds_equivalent, capacity_released_gbp,
    cash_releasing_gbp, benchmark, years, price_year, note.

    ``years`` is the length of the period the data cover: every opportunity
    figure (by provider and in the summary) is divided by it, so the table is
    per year and beds equivalent (bed days / 365 / occupancy) is right. Give
    the length of the extract's coverage (:attr:`helpers.periods.Coverage.years`),
    not the number of financial years some discharge touches; the summary
    states it in its ``years`` column.
    """
    if years <= 0:
        raise ValueError(f"years must be above 0; got {years!r}.")
    p = result.providers
    col = _value_column(p)
    outlier_level = result.spec.outlier_level if outlier_level is None else float(outlier_level)
    tau2_method = tau2_method or result.spec.dispersion.tau2_method
    bench = benchmark_value(p, benchmark, higher_is_better, col)
    table = provider_opportunity(p, bench, higher_is_better, bed_days_per_unit, cost_per_bed_day)
    for c in ("opportunity", "opportunity_bed_days", "opportunity_gbp"):
        table[c] = table[c] / years
    lab = level_label(outlier_level)
    if {f"lower_{lab}", f"upper_{lab}"} <= set(p.columns):
        lower, upper = p[f"lower_{lab}"].to_numpy(float), p[f"upper_{lab}"].to_numpy(float)
    else:
        lower, upper = limits_at(result.spec, _base(p, col), outlier_level)
    small = table["small"].to_numpy(bool) if "small" in table.columns else np.zeros(len(table), bool)
    worse = (table[col] < lower) if higher_is_better else (table[col] > upper)
    flagged = np.asarray(worse) & ~small & (table["opportunity"].to_numpy() > 0)
    table[f"worse_than_{lab}"] = flagged

    totals = opportunity_draws(result, benchmark, higher_is_better, method, tau2_method, draws, seed) / years
    lo, mid, hi = np.percentile(totals, [2.5, 50, 97.5])
    positive = table["opportunity"].to_numpy() > 0
    naive = float(table.loc[~small, "opportunity"].sum())
    outl = float(table.loc[flagged, "opportunity"].sum())
    rows = [
        ("naive", int((positive & ~small).sum()), naive, np.nan, np.nan),
        ("outliers_only", int(flagged.sum()), outl, np.nan, np.nan),
        ("interval", pd.NA, float(mid), float(lo), float(hi)),
        (
            "small_providers",
            int((positive & small).sum()),
            float(table.loc[small, "opportunity"].sum()),
            np.nan,
            np.nan,
        ),
    ]
    summary = pd.DataFrame(
        rows, columns=["estimate", "providers", "opportunity", "opportunity_lower", "opportunity_upper"]
    )
    summary["providers"] = summary["providers"].astype("Int64")
    per = np.nan if bed_days_per_unit is None else float(bed_days_per_unit)
    for c in ("", "_lower", "_upper"):
        summary[f"bed_days{c}"] = summary[f"opportunity{c}"] * per
    money = finance.bed_days_value(
        summary["bed_days"].to_numpy(float), cost_per_bed_day, occupancy, marginal_cost_share, price_year
    )
    summary["beds_equivalent"] = money["beds_equivalent"].to_numpy()
    summary["capacity_released_gbp"] = money["capacity_released_gbp"].to_numpy()
    summary["cash_releasing_gbp"] = money["cash_releasing_gbp"].to_numpy()
    summary["benchmark"] = bench
    summary["years"] = float(years)  # the divisor of every per-year figure, stated in the table
    summary["price_year"] = money["price_year"].iloc[0]
    summary["note"] = [
        "Every provider worse than the benchmark (and large enough to be flagged), as the national packs count it; "
        "inflated by chance.",
        f"Only providers beyond the {outlier_level:g}% funnel limit on the worse side.",
        f"95% interval (and median) of the total allowing for chance ({method.replace('_', ' ')}, {draws:,} draws, "
        f"tau2 {tau2_method}).",
        "Providers worse than the benchmark but too small to be flagged: shown apart, in no total above.",
    ]
    return OpportunityResult(table, summary, bench)


def describe(summary: pd.DataFrame, unit: str = "bed days", per: str = "a year") -> str:
    """Plain-English sentences from an ``opportunity_summary`` table (numbers formatted, nothing computed anew)."""
    s = summary.set_index("estimate")
    naive, outl, interval = s.loc["naive"], s.loc["outliers_only"], s.loc["interval"]
    has_days = pd.notna(naive["bed_days"])
    col = "bed_days" if has_days else "opportunity"
    text = (
        f"If every provider worse than the benchmark matched it, {finance.format_number(naive[col])} {unit} {per} "
        f"would be released ({int(naive['providers'])} providers): the naive figure the national packs report. "
        f"Only {finance.format_number(outl[col])} of them come from the {int(outl['providers'])} providers beyond the funnel limit, "
        f"and allowing for chance the total lies between {finance.format_number(interval[f'{col}_lower'])} and "
        f"{finance.format_number(interval[f'{col}_upper'])}."
    )
    if "small_providers" in s.index and int(s.loc["small_providers", "providers"]) > 0:
        small = s.loc["small_providers"]
        text += (
            f" A further {finance.format_number(small[col])} {unit} come from {int(small['providers'])} "
            f"provider{'s' if int(small['providers']) != 1 else ''} too small to be flagged, left out of every total."
        )
    if has_days:
        text += (
            f" The naive figure is {finance.format_number(naive['beds_equivalent'], 1)} beds at the target occupancy and "
            f"{finance.format_gbp(naive['capacity_released_gbp'])} of capacity at {naive['price_year']} prices. "
            "That is capacity released, not cash: the money stays spent until beds and their staff are removed; "
            f"the cash-releasing figure at the chosen marginal cost share is {finance.format_gbp(naive['cash_releasing_gbp'])}."
        )
    return text
