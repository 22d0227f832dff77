"""Statistical process control in the NHS England *Making Data Count* style.

The XmR ("individuals") chart, the p-chart (with Laney's p′ variant for large
denominators), u- and c-charts and the run chart, with the Making Data Count
(MDC) special-cause rules, improvement / concern labelling, variation and
assurance icons, baseline fixing and rebasing.

Sources
-------
* NHS England, *Making Data Count* guides and Excel "Plot the Dots" /
  single chart tools; the two-of-three rule as redefined in November 2023
  (points beyond the process limits count towards it).
* NHS-R Community, NHSRplotthedots (R package): its documented behaviour, and
  where it differs from the current guidance (noted at each choice below).
* Wheeler DJ, *Understanding Variation* (2000): the XmR constants 2.66 and
  3.267 (= 3/d2 and D4 for moving ranges of two points).
* Nelson LS, "Control charts for individual measurements", J Qual Technol
  1982;14:172-173: screening large moving ranges.
* Perla RJ, Provost LP, Murray SK, "The run chart: a simple analytical tool
  for learning from variation in healthcare processes", BMJ Qual Saf
  2011;20:46-51: like values neither make nor break a trend; values on the
  centre line neither add to nor break a run.
* Montgomery DC, *Introduction to Statistical Quality Control* (p-, u- and
  c-chart limits); Laney DB, "Improved control charts for attributes",
  Quality Engineering 2002;14:531-537 (p′ chart).

Choices the handbook makes (also stated in ``book/spc.md``)
-----------------------------------------------------------
* **Moving-range screening is off by default** (``screen_moving_ranges=False``),
  as in the MDC Excel tool. A finance business partner's chart then matches
  the trust's board report built with the national tool, and a genuine step
  change (the usual cause of a huge moving range) is better handled by
  rebasing than by screening. Screening (NHSRplotthedots' default) is one
  switch away.
* **Two of three** follows the MDC November 2023 definition by default
  (``two_of_three="current"``): points beyond the process limits count. The
  older rule, still used by NHSRplotthedots, counts only points between the
  2σ line and the limit (``two_of_three="old"``). Either way all three points
  must lie on the same side of the mean, and only the points beyond 2σ are
  flagged.
* **Ties in a trend**: a point equal to the one before it neither counts
  towards a trend nor breaks it (Perla et al. 2011; NHS Institute guide to run
  and control charts). A tie inside a trend is flagged with it; ties at either
  end are not part of it. NHSRplotthedots differs: a tie breaks its trend.
* **Points on the mean**: a point exactly on the centre line (within 1e-9
  relative) neither counts towards a run nor breaks it, and is not flagged
  (Perla et al. 2011). NHSRplotthedots differs: such a point breaks the run.
* **Trend length** counts points, not steps: a trend of 7 is 7 points with 6
  consecutive rises (or falls), as in NHSRplotthedots.
* **Precedence**: each point is labelled by the first rule that flags it, in
  the order outside the limits, trend, two of three, run; its side (high or
  low) and so its improvement / concern label come from that rule. Where a
  single point ends one trend and starts the opposite one, the earlier trend
  labels it, so a point's label does not change when later data arrive.
  (The MDC single chart tool instead shows improvement whenever improvement
  and concern both fire.)
* **At least 12 points** (``min_points``) are needed for limits. With fewer,
  the points are shown, no centre line, limits or rules are computed, a
  warning is raised and the ``note`` column says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from helpers import disclosure, io, periods

#: XmR limit constant: 3 / d2 with d2 = 1.128 for ranges of two (Wheeler 2000).
XMR_LIMIT = 2.66
#: Moving-range screening constant: D4 for ranges of two (Nelson 1982).
MR_SCREEN = 3.267
#: d2 for ranges of two points (Laney 2002 uses it for the p′ chart).
D2 = 1.128
#: Fewest points from which Making Data Count computes limits and icons.
MIN_POINTS = 12

CHARTS = ("xmr", "p", "pprime", "u", "c", "run")
RULES = ("outside_limits", "trend", "two_of_three", "run")
BETTER = ("increase", "decrease", None)

Chart = Literal["xmr", "p", "pprime", "u", "c", "run"]
Better = Literal["increase", "decrease"] | None
TwoOfThree = Literal["current", "old"]

#: Columns of the ``spc`` result table, in order.
SPC_COLUMNS = [
    "group",
    "chart",
    "date",
    "period",
    "period_start",
    "numerator",
    "denominator",
    "value",
    "moving_range",
    "baseline",
    "mean",
    "lower_limit",
    "upper_limit",
    "lower_2sigma",
    "upper_2sigma",
    "special_cause",
    "side",
    "rules",
    "point_type",
    "note",
]

#: Columns of the ``spc_summary`` result table, in order.
SUMMARY_COLUMNS = [
    "group",
    "chart",
    "better",
    "n_points",
    "n_periods",
    "latest_date",
    "latest_numerator",
    "latest_denominator",
    "latest_value",
    "mean",
    "lower_limit",
    "upper_limit",
    "target",
    "variation_icon",
    "assurance_icon",
    "n_special_cause",
    "n_improvement",
    "n_concern",
    "note",
]


class SPCWarning(UserWarning):
    """A series or period is too short for limits (it is shown without them)."""


# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------


def moving_ranges(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Moving ranges mRᵢ = |xᵢ − xᵢ₋₁| (length n − 1), Wheeler (2000)."""
    x = np.asarray(values, dtype=float)
    return np.abs(np.diff(x))


def mean_moving_range(values: Sequence[float] | np.ndarray, screen: bool = False) -> tuple[float, int]:
    """Mean moving range, optionally after screening, and how many were used.

    Screening (Nelson 1982; NHSRplotthedots ``screen_outliers``) drops every
    moving range ≥ 3.267 × the mean of all moving ranges, once, and averages
    the rest. Without screening this is the Making Data Count Excel tool.
    """
    mr = moving_ranges(values)
    if mr.size == 0:
        return float("nan"), 0
    amr = float(mr.mean())
    if screen:
        mr = mr[mr < MR_SCREEN * amr]
        if mr.size == 0:  # impossible for n ≥ 2 (a mean is never above all values x 3.267) but safe
            return amr, 0
        amr = float(mr.mean())
    return amr, int(mr.size)


def xmr_limits(values: Sequence[float] | np.ndarray, screen_moving_ranges: bool = False) -> dict[str, float]:
    """Centre line and limits of an XmR chart (Making Data Count; Wheeler 2000).

    mean = x̄; limits = x̄ ± 2.66 × mean(mR); 2σ lines = x̄ ± (2/3) × 2.66 × mean(mR).

    Returns a dict with ``mean``, ``mean_moving_range``, ``n_moving_ranges``
    (used after any screening), ``lower_limit``, ``upper_limit``,
    ``lower_2sigma`` and ``upper_2sigma``.
    """
    x = np.asarray(values, dtype=float)
    centre = float(x.mean())
    amr, used = mean_moving_range(x, screen_moving_ranges)
    sigma = XMR_LIMIT * amr / 3
    return {
        "mean": centre,
        "mean_moving_range": amr,
        "n_moving_ranges": used,
        "lower_limit": centre - 3 * sigma,
        "upper_limit": centre + 3 * sigma,
        "lower_2sigma": centre - 2 * sigma,
        "upper_2sigma": centre + 2 * sigma,
    }


def _attribute_limits(
    chart: str,
    numerator: np.ndarray,
    denominator: np.ndarray,
    base: np.ndarray,
    screen_moving_ranges: bool,
) -> tuple[float, np.ndarray]:
    """Centre and per-point sigma of a p, p′, u or c chart.

    ``base`` marks the baseline points the centre (and Laney's σz) come from.
    p: p̄ = Σnum/Σden, σᵢ = √(p̄(1 − p̄)/nᵢ); u: ū = Σc/Σn, σᵢ = √(ū/nᵢ);
    c: c̄ = mean count, σ = √c̄ (Montgomery). p′ (Laney 2002): σᵢ × σz with
    σz = mean |zᵢ − zᵢ₋₁| / 1.128 over the baseline z-scores zᵢ = (pᵢ − p̄)/σᵢ.
    """
    if chart == "c":
        centre = float(numerator[base].mean())
        return centre, np.full(numerator.shape, np.sqrt(centre))
    centre = float(numerator[base].sum() / denominator[base].sum())
    if chart == "u":
        return centre, np.sqrt(centre / denominator)
    sigma = np.sqrt(centre * (1 - centre) / denominator)
    if chart == "pprime":
        z = (numerator[base] / denominator[base] - centre) / sigma[base]
        amr, _ = mean_moving_range(z, screen_moving_ranges)
        sigma = sigma * amr / D2
    return centre, sigma


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


def _sides(values: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """+1 above, −1 below, 0 on the centre line (within 1e-9 relative)."""
    tol = 1e-9 * np.maximum(1.0, np.abs(centre))
    diff = values - centre
    side = np.sign(diff)
    side[np.abs(diff) <= tol] = 0
    return side.astype(int)


def _trend(values: np.ndarray, run_length: int) -> np.ndarray:
    """+1 / −1 for points in a rising / falling trend of ``run_length`` points.

    Ties (a value equal to the one before) neither count nor break a trend;
    ties inside a trend are flagged with it, ties at its ends are not.
    Where a point ends one trend and starts the opposite one, the earlier
    trend keeps it.
    """
    n = values.size
    out = np.zeros(n, dtype=int)
    if n < 2:
        return out
    steps = np.sign(np.diff(values)).astype(int)  # step k joins points k and k+1
    segments = []
    for d in (1, -1):
        k = 0
        while k < n - 1:
            if steps[k] != d:
                k += 1
                continue
            count, last = 1, k
            j = k
            while j < n - 1 and steps[j] in (0, d):
                if steps[j] == d:
                    count += 1
                    last = j
                j += 1
            if count >= run_length:
                segments.append((k, last + 1, d))
            k = j
    for start, end, d in sorted(segments):
        span = out[start : end + 1]
        span[span == 0] = d
    return out


def _run(side: np.ndarray, run_length: int) -> np.ndarray:
    """+1 / −1 for points in a run of ``run_length`` points on one side of the mean.

    Points on the centre line (side 0) neither count nor break a run, and are
    not flagged.
    """
    n = side.size
    out = np.zeros(n, dtype=int)
    for s in (1, -1):
        k = 0
        while k < n:
            if side[k] != s:
                k += 1
                continue
            j = k
            members = []
            while j < n and side[j] in (0, s):
                if side[j] == s:
                    members.append(j)
                j += 1
            if len(members) >= run_length:
                out[members] = s
            k = j
    return out


def _two_of_three(
    values: np.ndarray,
    side: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    upper_2sigma: np.ndarray,
    lower_2sigma: np.ndarray,
    rule: str,
) -> np.ndarray:
    """+1 / −1 for points beyond 2σ in a two-of-three pattern.

    In any three consecutive points all on the same side of the mean, if two
    or more are beyond the 2σ line on that side, those points are flagged.
    ``rule="current"`` (MDC, November 2023) counts points beyond the process
    limits too; ``rule="old"`` (NHSRplotthedots) counts only points between
    the 2σ line and the limit.
    """
    with np.errstate(invalid="ignore"):
        high = values > upper_2sigma
        low = values < lower_2sigma
        if rule == "old":
            high &= ~(values > upper)
            low &= ~(values < lower)
    out = np.zeros(values.size, dtype=int)
    for i in range(values.size - 2):
        w = slice(i, i + 3)
        for s, beyond in ((1, high), (-1, low)):
            if np.all(side[w] == s) and beyond[w].sum() >= 2:
                hit = np.flatnonzero(beyond[w]) + i
                out[hit] = s
    return out


def special_causes(
    values: Sequence[float] | np.ndarray,
    centre: float | np.ndarray,
    lower_limit: float | np.ndarray = np.nan,
    upper_limit: float | np.ndarray = np.nan,
    lower_2sigma: float | np.ndarray = np.nan,
    upper_2sigma: float | np.ndarray = np.nan,
    run_length: int = 7,
    two_of_three: TwoOfThree = "current",
) -> pd.DataFrame:
    """Apply the Making Data Count special-cause rules to one period of a chart.

    Rules, in precedence: a point outside the limits; a trend of
    ``run_length`` points all rising or all falling; two of three points
    beyond 2σ on the same side; a run of ``run_length`` points on one side of
    the centre line. Limits may be scalars or per-point arrays (p-charts);
    NaN limits (a run chart) switch the limit rules off.

    Returns one row per point with columns ``outside_limits``, ``trend``,
    ``two_of_three`` and ``run`` (each "high", "low" or ""), ``special_cause``
    (the first rule that fired, or "none"), ``side`` ("high", "low" or "")
    and ``rules`` (every rule that fired, joined by "+").
    """
    if two_of_three not in ("current", "old"):
        raise ValueError(f"two_of_three must be 'current' or 'old', not {two_of_three!r}")
    if int(run_length) != run_length or run_length < 2:
        raise ValueError(f"run_length must be a whole number of points ≥ 2, not {run_length!r}")
    x = np.asarray(values, dtype=float)
    n = x.size

    def full(v: float | np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()

    c, lo, hi, lo2, hi2 = (full(v) for v in (centre, lower_limit, upper_limit, lower_2sigma, upper_2sigma))
    side = _sides(x, c)
    with np.errstate(invalid="ignore"):
        outside = np.where(x > hi, 1, np.where(x < lo, -1, 0))
    flags = {
        "outside_limits": outside,
        "trend": _trend(x, int(run_length)),
        "two_of_three": _two_of_three(x, side, hi, lo, hi2, lo2, two_of_three),
        "run": _run(side, int(run_length)),
    }
    names = {1: "high", -1: "low", 0: ""}
    out = pd.DataFrame({rule: [names[v] for v in flags[rule]] for rule in RULES})
    first = np.full(n, "none", dtype=object)
    first_side = np.zeros(n, dtype=int)
    for rule in reversed(RULES):  # the highest precedence is written last
        fired = flags[rule] != 0
        first[fired] = rule
        first_side[fired] = flags[rule][fired]
    out["special_cause"] = pd.array(first, dtype="str")
    out["side"] = [names[v] for v in first_side]
    out["rules"] = ["+".join(r for r in RULES if flags[r][i] != 0) for i in range(n)]
    return out


def point_type(side: str, better: Better) -> str:
    """Label a flagged point: improvement / concern from the better direction.

    "high" is improvement when higher is better and concern when lower is
    better (and the reverse for "low"); "neutral" where no direction is better;
    "common_cause" when the point is not flagged.
    """
    if better not in BETTER:
        raise ValueError(f"better must be 'increase', 'decrease' or None, not {better!r}")
    if side not in ("high", "low"):
        return "common_cause"
    if better is None:
        return "neutral"
    good = "high" if better == "increase" else "low"
    return "improvement" if side == good else "concern"


# --------------------------------------------------------------------------
# The chart table
# --------------------------------------------------------------------------


def _validate(data: pd.DataFrame, cols: dict[str, str | None], chart: str) -> None:
    missing = [c for c in cols.values() if c is not None and c not in data.columns]
    if missing:
        raise ValueError(f"series: missing column(s) {missing}; the columns present are {list(data.columns)}")
    for role, col in cols.items():
        if col is None or role == "group":
            continue
        if role == "date":
            parsed = pd.to_datetime(data[col], errors="coerce")
            bad = parsed.isna()
            what = "a date"
        else:
            parsed = pd.to_numeric(data[col], errors="coerce")
            bad = parsed.isna() | ~np.isfinite(parsed.astype(float))
            what = "a number"
            if role == "denominator":
                bad |= parsed <= 0
                what = "a number above 0"
            elif role == "numerator" or chart == "c":
                bad |= parsed < 0
                what = "a number of 0 or more"
        if bad.any():
            rows = data.index[bad][:5].tolist()
            raise ValueError(
                f"series: column '{col}' must hold {what} in every row; "
                f"{int(bad.sum())} row(s) do not, for example rows {rows}: "
                f"{data.loc[rows, col].tolist()}"
            )
    if chart in ("p", "pprime"):
        num = pd.to_numeric(data[cols["numerator"]])
        den = pd.to_numeric(data[cols["denominator"]])
        bad = num > den
        if bad.any():
            rows = data.index[bad][:5].tolist()
            raise ValueError(
                f"series: numerator '{cols['numerator']}' exceeds denominator "
                f"'{cols['denominator']}' in {int(bad.sum())} row(s), for example rows {rows}"
            )


def spc(
    data: pd.DataFrame,
    *,
    date: str = "date",
    value: str = "value",
    numerator: str | None = None,
    denominator: str | None = None,
    group: str | None = None,
    chart: Chart = "xmr",
    better: Better = None,
    rebase_dates: Sequence[str | pd.Timestamp] | Mapping[str, Sequence[str | pd.Timestamp]] = (),
    baseline_points: int | None = None,
    run_length: int = 7,
    two_of_three: TwoOfThree = "current",
    screen_moving_ranges: bool = False,
    min_points: int = MIN_POINTS,
) -> pd.DataFrame:
    """Compute an SPC chart (one per group) with the Making Data Count rules.

    Parameters
    ----------
    data : one row per time point (and group). ``value`` is read for
        "xmr", "run" and "c" charts (for "c" it is the count); ``numerator``
        and ``denominator`` for "p", "pprime" (proportion = numerator /
        denominator) and "u" (rate per unit of denominator).
    chart : "xmr" (default), "p", "pprime" (Laney), "u", "c" or "run".
    better : "increase", "decrease" or None (neutral).
    rebase_dates : a new period (with its own mean and limits) starts at each
        date; the rules run within a period, never across a rebase. A list
        applies to every group; a mapping gives each group its own dates
        (for example ``{"T05": ["2024-01-01"]}``).
    baseline_points : fix the limits on the first this-many points of each
        period and extend them (MDC "fix and extend"); None uses every point.
    run_length : points for a trend and for a run (7 by default; 6 is the
        Excel tool's alternative).
    two_of_three : "current" (MDC, November 2023) or "old" (NHSRplotthedots).
    screen_moving_ranges : drop moving ranges ≥ 3.267 × their mean before
        computing XmR limits (off by default, as in the MDC Excel tool; see
        the module docstring for why).
    min_points : fewest baseline points for limits (12, as MDC).

    Returns
    -------
    The ``spc`` table, one row per point, columns :data:`SPC_COLUMNS`:
    group ("all" when ``group`` is None), chart, date, period (1, 2, … after
    each rebase), period_start, numerator and denominator (NaN for xmr, c and
    run), value (the plotted value), moving_range (xmr only, NaN at a period
    start), baseline (the point is used for the limits), mean (centre line;
    the median for a run chart), lower_limit, upper_limit, lower_2sigma,
    upper_2sigma (per point for p and u charts; NaN for run charts and short
    periods), special_cause (first rule fired: "outside_limits", "trend",
    "two_of_three", "run" or "none"), side ("high", "low" or ""), rules (every
    rule fired, joined by "+"), point_type ("common_cause", "improvement",
    "concern", "neutral", or "not_assessed" where a period has fewer than
    ``min_points`` baseline points) and note (why there are no limits).
    """
    if chart not in CHARTS:
        raise ValueError(f"chart must be one of {CHARTS}, not {chart!r}")
    if better not in BETTER:
        raise ValueError(f"better must be 'increase', 'decrease' or None, not {better!r}")
    if baseline_points is not None and baseline_points < min_points:
        raise ValueError(
            f"baseline_points={baseline_points} is below min_points={min_points}: "
            "Making Data Count needs at least 12 points to fix limits"
        )
    needs_ratio = chart in ("p", "pprime", "u")
    if needs_ratio and (numerator is None or denominator is None):
        raise ValueError(f"a {chart} chart needs the numerator and denominator column names")
    cols = {
        "date": date,
        "group": group,
        "numerator": numerator if needs_ratio else None,
        "denominator": denominator if needs_ratio else None,
        "value": None if needs_ratio else value,
    }
    _validate(data, cols, chart)

    frame = pd.DataFrame(
        {
            "group": data[group].astype("str") if group else "all",
            "date": pd.to_datetime(data[date]),
        },
        index=data.index,
    )
    if needs_ratio:
        frame["numerator"] = pd.to_numeric(data[numerator]).astype(float)
        frame["denominator"] = pd.to_numeric(data[denominator]).astype(float)
        frame["value"] = frame["numerator"] / frame["denominator"]
    else:
        frame["numerator"] = np.nan
        frame["denominator"] = np.nan
        frame["value"] = pd.to_numeric(data[value]).astype(float)
    dup = frame.duplicated(["group", "date"], keep=False)
    if dup.any():
        rows = frame.index[dup][:5].tolist()
        raise ValueError(
            f"series: {int(dup.sum())} rows share a date within a group, for example rows {rows}; "
            "an SPC chart needs one value per date (aggregate first)"
        )
    frame = frame.sort_values(["group", "date"], kind="stable").reset_index(drop=True)

    frame["period"] = 1
    for grp, idx in frame.groupby("group").groups.items():
        dates = rebase_dates.get(grp, []) if isinstance(rebase_dates, Mapping) else rebase_dates
        if isinstance(dates, (str, pd.Timestamp)):
            dates = [dates]
        rebases = np.array(sorted(pd.to_datetime(list(dates))), dtype="datetime64[ns]")
        frame.loc[idx, "period"] = (
            np.searchsorted(rebases, frame.loc[idx, "date"].to_numpy(dtype="datetime64[ns]"), side="right")
            + 1
        )
    if isinstance(rebase_dates, Mapping):
        unknown = sorted(set(map(str, rebase_dates)) - set(frame["group"]))
        if unknown:
            raise ValueError(f"rebase_dates names group(s) {unknown} that are not in the series")

    parts = []
    for (grp, period), part in frame.groupby(["group", "period"], sort=True):
        parts.append(
            _chart_period(
                part.reset_index(drop=True),
                grp,
                period,
                chart,
                better,
                baseline_points,
                run_length,
                two_of_three,
                screen_moving_ranges,
                min_points,
            )
        )
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SPC_COLUMNS)
    out["chart"] = chart
    for col in ("group", "chart", "special_cause", "side", "rules", "point_type", "note"):
        out[col] = out[col].astype("str")
    return out[SPC_COLUMNS]


def _chart_period(
    part: pd.DataFrame,
    grp: str,
    period: int,
    chart: str,
    better: Better,
    baseline_points: int | None,
    run_length: int,
    two_of_three: TwoOfThree,
    screen_moving_ranges: bool,
    min_points: int,
) -> pd.DataFrame:
    """The chart of one period of one group (see :func:`spc`)."""
    n = len(part)
    x = part["value"].to_numpy(dtype=float)
    k = n if baseline_points is None else min(n, baseline_points)
    base = np.arange(n) < k
    part["period_start"] = part["date"].iloc[0]
    part["baseline"] = base
    part["moving_range"] = np.r_[np.nan, moving_ranges(x)] if chart == "xmr" else np.nan
    limit_cols = ["mean", "lower_limit", "upper_limit", "lower_2sigma", "upper_2sigma"]
    if k < min_points:
        note = (
            f"{k} point(s) in period {period} (from {part['date'].iloc[0]:%Y-%m-%d}); "
            f"limits and special-cause rules need at least {min_points}"
        )
        warnings.warn(f"group {grp}: {note}; the points are shown without limits", SPCWarning, stacklevel=3)
        for col in limit_cols:
            part[col] = np.nan
        part["special_cause"] = "none"
        part["side"] = ""
        part["rules"] = ""
        part["point_type"] = "not_assessed"
        part["note"] = note
        return part

    if chart == "xmr":
        lim = xmr_limits(x[base], screen_moving_ranges)
        centre, sigma = lim["mean"], np.full(n, XMR_LIMIT * lim["mean_moving_range"] / 3)
    elif chart == "run":
        centre, sigma = float(np.median(x[base])), np.full(n, np.nan)
    else:
        num = (part["numerator"] if chart != "c" else part["value"]).to_numpy(dtype=float)
        den = part["denominator"].to_numpy(dtype=float)
        centre, sigma = _attribute_limits(chart, num, den, base, screen_moving_ranges)
    part["mean"] = centre
    lower, upper = centre - 3 * sigma, centre + 3 * sigma
    lower2, upper2 = centre - 2 * sigma, centre + 2 * sigma
    if chart in ("p", "pprime", "u", "c"):  # counts and proportions cannot go below 0 (nor p above 1)
        lower, lower2 = np.maximum(lower, 0), np.maximum(lower2, 0)
    if chart in ("p", "pprime"):
        upper, upper2 = np.minimum(upper, 1), np.minimum(upper2, 1)
    part["lower_limit"], part["upper_limit"] = lower, upper
    part["lower_2sigma"], part["upper_2sigma"] = lower2, upper2
    rules = special_causes(x, centre, lower, upper, lower2, upper2, run_length, two_of_three)
    part["special_cause"] = rules["special_cause"].to_numpy()
    part["side"] = rules["side"].to_numpy()
    part["rules"] = rules["rules"].to_numpy()
    part["point_type"] = [point_type(s, better) for s in part["side"]]
    part["note"] = ""
    return part


# --------------------------------------------------------------------------
# Icons and summary
# --------------------------------------------------------------------------


def variation_icon(point: str, side: str) -> str:
    """MDC variation icon from the latest point's type and side.

    "common_cause"; "improvement_high" / "improvement_low"; "concern_high" /
    "concern_low"; "neutral_high" / "neutral_low"; "not_assessed" when the
    latest period is too short for limits.
    """
    if point in ("common_cause", "not_assessed"):
        return point
    return f"{point}_{side}"


def assurance_icon(target: float | None, lower_limit: float, upper_limit: float, better: Better) -> str:
    """MDC assurance icon: can the process be relied on to meet the target?

    With higher better: target below the lower limit → "consistently_passing";
    above the upper limit → "consistently_failing"; otherwise "hit_and_miss"
    (the target lies inside the limits, on a limit included, as
    NHSRplotthedots). Reversed when lower is better. "none" when there is no
    target, no better direction, or no limits.
    """
    if target is None or better is None or pd.isna(target) or pd.isna(lower_limit) or pd.isna(upper_limit):
        return "none"
    if target < lower_limit:
        return "consistently_passing" if better == "increase" else "consistently_failing"
    if target > upper_limit:
        return "consistently_failing" if better == "increase" else "consistently_passing"
    return "hit_and_miss"


def _floored_limit(lower_limit: float, values: pd.Series) -> float:
    """A lower limit below 0 reported as 0 when the series cannot go below 0 (counts, bed days, spend).

    No point can cross a negative limit of such a series, and a reader takes
    "-12 bed days" for an error; the icons are worked out before flooring.
    """
    if pd.notna(lower_limit) and lower_limit < 0 and (values.dropna() >= 0).all():
        return 0.0
    return lower_limit


def summarise(
    table: pd.DataFrame,
    better: Better = None,
    target: float | Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The ``spc_summary`` table: one row per group of an :func:`spc` table.

    ``better`` must be the value given to :func:`spc`. ``target`` is one
    number, or a mapping from group to number. Limits and icons come from the
    latest point (so from the latest period after a rebase; per point for
    p- and u-charts).

    Columns (:data:`SUMMARY_COLUMNS`): group, chart, better ("increase",
    "decrease" or "neutral"), n_points, n_periods, latest_date,
    latest_numerator and latest_denominator (p, p′ and u charts; NaN
    otherwise, kept so that disclosure control can act on them), latest_value,
    mean, lower_limit and upper_limit (at the latest point; a negative lower
    limit of a series that is never negative is reported as 0), target,
    variation_icon (see :func:`variation_icon`), assurance_icon (see
    :func:`assurance_icon`), n_special_cause, n_improvement, n_concern (flagged
    points in the whole series) and note (why icons are missing).
    """
    rows = []
    for grp, g in table.groupby("group", sort=True):
        g = g.sort_values("date")
        last = g.iloc[-1]
        tgt = target.get(grp) if isinstance(target, Mapping) else target
        icon = variation_icon(last["point_type"], last["side"])
        note = last["note"]
        if not note and (tgt is None or better is None):
            note = "no assurance icon: " + ("no target" if tgt is None else "no better direction")
        rows.append(
            {
                "group": grp,
                "chart": last["chart"],
                "better": better or "neutral",
                "n_points": len(g),
                "n_periods": g["period"].nunique(),
                "latest_date": last["date"],
                "latest_numerator": last["numerator"],
                "latest_denominator": last["denominator"],
                "latest_value": last["value"],
                "mean": last["mean"],
                "lower_limit": _floored_limit(last["lower_limit"], g["value"]),
                "upper_limit": last["upper_limit"],
                "target": np.nan if tgt is None else float(tgt),
                "variation_icon": icon,
                "assurance_icon": assurance_icon(tgt, last["lower_limit"], last["upper_limit"], better),
                "n_special_cause": int((g["special_cause"] != "none").sum()),
                "n_improvement": int((g["point_type"] == "improvement").sum()),
                "n_concern": int((g["point_type"] == "concern").sum()),
                "note": note,
            }
        )
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for col in ("group", "chart", "better", "variation_icon", "assurance_icon", "note"):
        out[col] = out[col].astype("str")
    return out


# --------------------------------------------------------------------------
# Monthly series from spells
# --------------------------------------------------------------------------

#: Measures :func:`monthly_series` builds: name -> (chart it suits, description).
MEASURES: dict[str, tuple[str, str]] = {
    "emergency_bed_days": ("xmr", "bed days (length of stay) of emergency spells discharged in the month"),
    "emergency_spells": ("xmr", "emergency spells discharged in the month"),
    "readmission_rate": (
        "p",
        "share of eligible spells discharged in the month with an emergency readmission within 30 days",
    ),
}
#: Words for a chart's title and axis, by measure (used unless the user gives a label).
MEASURE_LABELS: dict[str, str] = {
    "emergency_bed_days": "Emergency bed days",
    "emergency_spells": "Emergency spells",
    "readmission_rate": "Emergency readmissions within 30 days",
}
#: Days of follow-up a measure needs after the month ends (readmission: 0 to 29 days).
MEASURE_FOLLOW_UP: dict[str, int] = {"emergency_bed_days": 0, "emergency_spells": 0, "readmission_rate": 29}


def measure_label(
    measure: str | None = None, chart: Chart = "xmr", label: str | None = None, value: str = "value"
) -> str:
    """The words for a chart's title and y-axis: ``label`` if given, else the measure's (:data:`MEASURE_LABELS`).

    For a user's series file (``measure`` None and not built from spells),
    the name of its value column.
    """
    if label:
        return str(label)
    if measure in MEASURE_LABELS:
        return MEASURE_LABELS[measure]
    return str(value).replace("_", " ").capitalize()


@dataclass(frozen=True, eq=False)  # holds a frame: compared by identity
class MonthlySeries:
    """A monthly series built from spells (:func:`build_monthly_series`), with what its chart says of it.

    ``frame``: the series (:func:`monthly_series`); ``measure``: its measure
    (:data:`MEASURES`); ``label``: the measure in words; ``coverage``: the
    extract's coverage (:class:`helpers.periods.Coverage`); ``months_left_out``:
    each month left out, with its reason, as ``((month, reason), ...)``.
    """

    frame: pd.DataFrame
    measure: str
    label: str
    coverage: periods.Coverage
    months_left_out: tuple[tuple[pd.Timestamp, str], ...] = ()

    @property
    def caption(self) -> str:
        """The chart's caption: the coverage and the months left out (:func:`helpers.periods.caption`)."""
        return periods.caption(self.months_left_out, self.coverage)


def monthly_series(
    spells: pd.DataFrame,
    measure: str | None = "emergency_bed_days",
    group: str | None = "provider_code",
    chart: Chart = "xmr",
    lead_in_days: int = 30,
    coverage_start: str | pd.Timestamp | None = None,
    coverage_end: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """A monthly series per group from spells with derived fields, over complete months only.

    The frame of :func:`build_monthly_series` (see there), which also says
    which months were left out and why.
    """
    return build_monthly_series(
        spells, measure, group, chart, lead_in_days, coverage_start, coverage_end
    ).frame


def build_monthly_series(
    spells: pd.DataFrame,
    measure: str | None = "emergency_bed_days",
    group: str | None = "provider_code",
    chart: Chart = "xmr",
    lead_in_days: int = 30,
    coverage_start: str | pd.Timestamp | None = None,
    coverage_end: str | pd.Timestamp | None = None,
) -> MonthlySeries:
    """A monthly series per group from spells with derived fields, over complete months only.

    ``spells`` must have passed :func:`helpers.derive.add_spell_fields`
    (``month`` is the first day of the discharge month; ``los_days``,
    ``emergency``, ``readmit_30d``, ``readmission_eligible``). Measures are
    listed in :data:`MEASURES`; ``measure=None`` picks one that suits
    ``chart`` (the readmission rate for p, p′ and u charts, emergency bed
    days otherwise).

    Months are discharge months, kept only when complete
    (:func:`helpers.periods.complete_months`): wholly inside the extract's
    coverage (inferred from the first and last admission dates, or stated by
    ``coverage_start`` and ``coverage_end``), starting at least
    ``lead_in_days`` after it starts (earlier stays are missing), and, for
    ``readmission_rate``, with every 30-day window ending inside it. Discharges
    after the last admission are not a month of the process: the bed days fall
    to zero only because no new patient is in the file. Each month left out is
    named, with its reason, in a warning and in ``months_left_out`` (for the
    exclusions flow and the chart caption).

    Every group gets every complete month; a month with no spells counts 0
    for the count measures. For ``readmission_rate`` a group-month with no
    eligible spell has no proportion and is left out.

    Returns a :class:`MonthlySeries` whose frame has columns ``date``,
    ``group`` and either ``value`` (count measures) or ``numerator`` and
    ``denominator`` (``readmission_rate``).
    """
    if measure is None:
        measure = "readmission_rate" if chart in ("p", "pprime", "u") else "emergency_bed_days"
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, not {measure!r}")
    need = {"admission_date", "month", "los_days", "emergency", "readmit_30d", "readmission_eligible"}
    missing = sorted(need - set(spells.columns))
    if missing:
        raise ValueError(
            f"spells: missing derived column(s) {missing}; pass the spells through "
            "helpers.derive.add_spell_fields first"
        )
    cover = periods.coverage(spells, coverage_start, coverage_end)
    s = pd.DataFrame(
        {
            "date": pd.to_datetime(spells["month"]),
            "group": spells[group].astype("str") if group else "all",
        }
    )
    emergency = spells["emergency"].astype(bool)
    if measure == "emergency_bed_days":
        s["value"] = spells["los_days"].where(emergency, 0).astype(float)
    elif measure == "emergency_spells":
        s["value"] = emergency.astype(float)
    else:
        eligible = spells["readmission_eligible"].astype(bool)
        s["numerator"] = (spells["readmit_30d"].astype(bool) & eligible).astype(float)
        s["denominator"] = eligible.astype(float)
    months = pd.date_range(s["date"].min(), s["date"].max(), freq="MS")
    grid = pd.MultiIndex.from_product([months, sorted(s["group"].unique())], names=["date", "group"])
    out = s.groupby(["date", "group"]).sum().reindex(grid, fill_value=0.0).reset_index()
    out, left_out = periods.complete_months(out, cover, "date", lead_in_days, MEASURE_FOLLOW_UP[measure])
    if measure == "readmission_rate":
        # a month whose spells are not all eligible (alive) has windows still open: its readmissions are not known
        died = spells["died"].fillna(False).astype(bool) if "died" in spells.columns else False
        open_window = ~spells["readmission_eligible"].astype(bool) & ~died
        late = sorted(set(pd.to_datetime(spells.loc[open_window, "month"]).unique()) & set(out["date"]))
        if late:
            left_out = pd.concat(
                [
                    left_out,
                    pd.DataFrame(
                        {
                            "month": late,
                            "reason": "some 30-day windows end after the "
                            "follow-up the spells were derived with",
                        }
                    ),
                ],
                ignore_index=True,
            )
            out = out[~out["date"].isin(late)].reset_index(drop=True)
    if len(left_out):
        warnings.warn(
            f"{measure}: left out {len(left_out)} discharge month(s) that the extract does not cover completely "
            f"({periods.caption(left_out).removeprefix('Months left out as incomplete: ').rstrip('.')})",
            SPCWarning,
            stacklevel=2,
        )
    if measure == "readmission_rate":
        empty = out["denominator"] <= 0
        if empty.any():
            warnings.warn(
                f"readmission_rate: {int(empty.sum())} group-month(s) have no spell whose 30-day "
                "window ends within the data (for example at the end of the extract); they are left out",
                SPCWarning,
                stacklevel=2,
            )
            out = out[~empty].reset_index(drop=True)
    out["group"] = out["group"].astype("str")
    return MonthlySeries(out, measure, MEASURE_LABELS[measure], cover, periods.as_records(left_out))


def focus_group(summary: pd.DataFrame) -> str:
    """The group to look at first: the one that most needs attention.

    Ordered by: latest point a concern; then latest point any special cause;
    then the most concern points; then the most special-cause points; then
    the group's name.
    """
    if summary.empty:
        raise ValueError("the summary has no groups")
    icon = summary["variation_icon"]
    order = summary.assign(
        _latest_concern=icon.str.startswith("concern"),
        _latest_special=~icon.isin(["common_cause", "not_assessed"]),
    ).sort_values(
        ["_latest_concern", "_latest_special", "n_concern", "n_special_cause", "group"],
        ascending=[False, False, False, False, True],
    )
    return str(order["group"].iloc[0])


# --------------------------------------------------------------------------
# Words for titles
# --------------------------------------------------------------------------

_VARIATION_WORDS = {
    "common_cause": "the latest month is common cause variation",
    "improvement_high": "the latest month is special cause improvement (higher)",
    "improvement_low": "the latest month is special cause improvement (lower)",
    "concern_high": "the latest month is special cause concern (higher)",
    "concern_low": "the latest month is special cause concern (lower)",
    "neutral_high": "the latest month is special cause variation (higher)",
    "neutral_low": "the latest month is special cause variation (lower)",
    "not_assessed": f"too few points for limits (at least {MIN_POINTS} are needed)",
}

_ASSURANCE_WORDS = {
    "consistently_passing": "it will meet the target every month if nothing changes",
    "consistently_failing": "it will miss the target every month unless the process changes",
    "hit_and_miss": "it will meet the target in some months and miss it in others, by chance",
}


def headline(row: pd.Series, measure: str = "The measure") -> str:
    """A title stating the finding of one ``spc_summary`` row.

    For example "Breaches at RF4: the latest month is common cause variation;
    it will meet the target in some months and miss it in others, by chance".
    """
    where = "" if row["group"] == "all" else f" at {row['group']}"
    words = [f"{measure}{where}: {_VARIATION_WORDS[row['variation_icon']]}"]
    if row["assurance_icon"] in _ASSURANCE_WORDS:
        words.append(_ASSURANCE_WORDS[row["assurance_icon"]])
    return "; ".join(words)


def overview(summary: pd.DataFrame, measure: str = "The measure", unit: str = "series") -> str:
    """A title stating the finding across the groups of an ``spc_summary`` table.

    For example "Emergency bed days, latest month: special cause in 3 of 25
    providers (1 concern, 2 improvement)".
    """
    icons = summary["variation_icon"]
    n = len(summary)
    kinds = [("concern", "concern"), ("improvement", "improvement"), ("neutral", "neither better nor worse")]
    counts = [(int(icons.str.startswith(prefix).sum()), words) for prefix, words in kinds]
    special = sum(k for k, _ in counts)
    short = int((icons == "not_assessed").sum())
    if special:
        detail = ", ".join(f"{k} {words}" for k, words in counts if k)
        text = f"{measure}, latest month: special cause in {special} of {n} {unit} ({detail})"
    else:
        text = f"{measure}, latest month: no special cause in any of the {n - short} {unit} with limits"
    if short:
        text += f"; {short} with too few points for limits"
    return text


def read_series(
    path: str,
    chart: Chart = "xmr",
    date: str = "date",
    value: str = "value",
    numerator: str = "numerator",
    denominator: str = "denominator",
    group: str | None = None,
) -> io.LoadedTable:
    """Read a user's series file (CSV, Excel or Parquet) for :func:`spc`: the series and what was read.

    Through :func:`helpers.io.load_own_input`, so the reading rules and error
    messages are the loaders'. Required columns: ``date`` and ``value`` for
    xmr, c and run charts; ``date``, ``numerator`` and ``denominator`` for p,
    p′ and u charts; ``group`` (text) is read when the file has it, and a
    file without it is one series.
    """
    if chart in ("p", "pprime", "u"):
        required = {date: "date", numerator: "number", denominator: "number"}
    else:
        required = {date: "date", value: "number"}
    optional = {group: "string"} if group else None
    return io.load_own_input(path, required, "series", optional_columns=optional)


def suppress_small_counts(
    table: pd.DataFrame,
    summary: pd.DataFrame | None = None,
    value_is_count: bool | None = None,
    threshold: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Hide every plotted point that comes from a count of 1 to ``threshold`` (HES analysis guide).

    A point is hidden when its numerator or denominator is such a count (its
    proportion or rate would give the count away), or, for a series of counts
    (a c-chart, or ``value_is_count``; ``None`` takes any xmr or run series of
    whole numbers as counts), when its value is. The hidden point's ``value``
    and ``moving_range``, and the next point's ``moving_range`` (the
    difference would give the value back), become ``*``, as
    :func:`helpers.disclosure.suppress` writes them; so does ``latest_value`` in
    ``summary`` when the latest point is hidden. Limits and centre lines, made
    from the whole series, stay. Charts draw a hidden point as a gap.
    Numerator and denominator are left to :func:`helpers.report.publish`.
    """
    threshold = disclosure.DEFAULT_THRESHOLD if threshold is None else threshold
    out = table.copy()
    if threshold <= 0 or out.empty:
        return out, None if summary is None else summary.copy()

    def small(col: str) -> pd.Series:
        if col not in out.columns:
            return pd.Series(False, index=out.index)
        values = pd.to_numeric(out[col], errors="coerce")
        return (values >= 1) & (values <= threshold)

    values = pd.to_numeric(out["value"], errors="coerce")
    if value_is_count is None:
        whole = values.dropna()
        value_is_count = bool(
            (out["chart"].iloc[0] == "c")
            or (
                out["chart"].iloc[0] in ("xmr", "run")
                and len(whole)
                and (whole % 1 == 0).all()
                and (whole >= 0).all()
            )
        )
    hidden = small("numerator") | small("denominator")
    if value_is_count:
        hidden |= small("value")
    order = out.sort_values(["group", "date"]).index
    after_hidden = (
        hidden.loc[order].groupby(out.loc[order, "group"]).shift(1, fill_value=False).reindex(out.index)
    )
    out["value"] = out["value"].astype("object").where(~hidden, disclosure.SUPPRESSED)
    if "moving_range" in out.columns:
        out["moving_range"] = (
            out["moving_range"].astype("object").where(~(hidden | after_hidden), disclosure.SUPPRESSED)
        )
    if summary is None:
        return out, None
    hidden_latest = {g for g, rows in out.loc[order].groupby("group") if hidden.loc[rows.index[-1]]}
    summary = summary.copy()
    summary["latest_value"] = (
        summary["latest_value"]
        .astype("object")
        .where(~summary["group"].isin(hidden_latest), disclosure.SUPPRESSED)
    )
    return out, summary
