"""Funnel plots for comparing providers (Spiegelhalter 2005).

Sources
-------
* Spiegelhalter DJ. Funnel plots for comparing institutional performance.
  *Stat Med* 2005;24:1185-1202 (exact limits; the binomial interpolation of its
  appendix).
* Spiegelhalter DJ. Handling over-dispersion of performance indicators.
  *Qual Saf Health Care* 2005;14:347-351 (variance-stabilising transforms,
  winsorised z-scores, the multiplicative factor and the additive
  random-effects variance tau^2).
* NHS Digital, *Summary Hospital-level Mortality Indicator (SHMI) methodology*
  (z = sqrt(E) ln(O/E), 10% truncation, DerSimonian-Laird tau^2).
* DerSimonian R, Laird N. Meta-analysis in clinical trials. *Control Clin
  Trials* 1986;7:177-188. Paule RC, Mandel J. Consensus values and weighting
  factors. *J Res Natl Bur Stand* 1982;87:377-385.

Two indicator types:

``"ratio"``
    An indirectly standardised ratio O/E with target 1 (SHMI-like; length of
    stay as observed over expected bed days). Precision is E.
``"proportion"``
    events / n with target the pooled proportion sum(events) / sum(n) unless a
    target is given. Precision is n.

Limits without overdispersion come from the quantiles of the count's own
distribution (Poisson for ratios, binomial for proportions) with
Spiegelhalter's interpolation. With
overdispersion they are computed on a variance-stabilised scale (log or square
root for ratios, arcsine square root for proportions) and **back-transformed to
the indicator's scale** (exp, square, sin^2) - which FunnelPlotR does not do
for its square-root ("CQC") limits.

How much between-provider variance to allow is the contested step. Three
estimators, one name each, used by every helper and notebook:

``"robust"`` (the default, :data:`DEFAULT_TAU2_METHOD`)
    Trims 10% of the z-scores in each tail and rescales the estimating
    equation by the trimmed second moment of a normal variable, so that it
    resists real outliers and is unbiased without them: with no true
    outliers about 5% of providers fall outside 95% limits.
``"paule_mandel"``
    Keeps every provider (calibrated too, but real outliers inflate tau^2
    and can hide one another).
``"shmi"``
    FunnelPlotR 0.5.0 exactly, for matching NHS Digital's published SHMI:
    ratios on the log scale with expected counts rounded to 2 decimals and
    the 10% tails removed by rank groups; proportions on the arcsine scale
    with z-scores winsorised at the type-7 10th and 90th percentiles; then
    phi and the DerSimonian-Laird tau^2, and FunnelPlotR's unadjusted limits
    (chi-squared for ratios, arcsine-normal for proportions) when phi <= 1.
    Trimming biases tau^2 low: with no true outliers about 20% of providers
    fall outside 95% limits (``tests/test_funnel.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from helpers.io import InputError

IndicatorType = Literal["ratio", "proportion"]
Overdispersion = Literal["none", "additive", "multiplicative"]
Tau2Method = Literal["robust", "paule_mandel", "shmi"]
#: The tau^2 estimator used everywhere unless a caller asks for another.
DEFAULT_TAU2_METHOD: Tau2Method = "robust"
TAU2_METHODS: tuple[str, ...] = ("robust", "paule_mandel", "shmi")

#: Default limit levels (per cent): 95% (z = 1.96) and 99.8% (z = 3.09).
DEFAULT_LEVELS: tuple[float, ...] = (95.0, 99.8)
#: Default trimming (each tail) of the z-scores before estimating phi, as SHMI.
DEFAULT_TRIM = 0.1
#: The limit level (per cent) beyond which a provider is an outlier, in every
#: table and figure (funnel, caterpillar, opportunity bars, outliers_only).
DEFAULT_OUTLIER_LEVEL = 99.8
#: Providers with expected below this are shown but not flagged.
DEFAULT_MIN_EXPECTED = 10.0

_TRANSFORMS = {"ratio": ("log", "sqrt"), "proportion": ("arcsine",)}


# --------------------------------------------------------------------------- small pieces
def level_label(level: float) -> str:
    """Column suffix of a limit level: 95 -> ``"95"``, 99.8 -> ``"998"``."""
    text = f"{float(level):g}"
    return text.replace(".", "")


def _tail(level: float) -> float:
    level = float(level)
    if not 0 < level < 100:
        raise ValueError(f"A limit level must be a percentage between 0 and 100; got {level!r}.")
    return (1 - level / 100) / 2


def poisson_ratio_limits(expected: np.ndarray | float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Chi-squared limits for O/E (target ratio 1), as FunnelPlotR draws them.

    lower = chi2_p(2E) / (2E), upper = chi2_{1-p}(2(E + 1)) / (2E), with
    p = (1 - level/100) / 2. For E = 15, 20 and 30 the 95% limits are
    0.5597-1.6493, 0.6108-1.5444 and 0.6747-1.4276. This is the exact
    (Garwood) confidence interval of a Poisson mean with E put in place of
    the count, not limits for an observed count: at E = 15, 3.7% of
    in-control providers fall below the 95% limit and 1.1% above (Seaton &
    Manktelow, BMC Med Res Methodol 2012;12:98). Used only by
    ``tau2_method="shmi"`` (to reproduce FunnelPlotR) when no
    overdispersion is applied; otherwise see :func:`poisson_limits`.
    """
    e = np.asarray(expected, dtype=float)
    p = _tail(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = stats.chi2.ppf(p, 2 * e) / (2 * e)
        upper = stats.chi2.ppf(1 - p, 2 * (e + 1)) / (2 * e)
    return lower, upper


def _interpolated_quantile(dist, q: float) -> np.ndarray:
    """Spiegelhalter's interpolated q-quantile of a discrete distribution.

    r_q = smallest r with F(r) >= q, alpha = (F(r_q) - q) / (F(r_q) -
    F(r_q - 1)), returns r_q - alpha (Spiegelhalter 2005, Stat Med,
    appendix A.1.1).
    """
    r = dist.ppf(q)
    f_r = dist.cdf(r)
    f_r1 = dist.cdf(r - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(f_r > f_r1, (f_r - q) / (f_r - f_r1), 0.0)
    return r - alpha


def poisson_limits(expected: np.ndarray | float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Limits for O/E when O is Poisson with mean E: interpolated Poisson quantiles over E.

    Limits for the observed count itself (Spiegelhalter 2005, Stat Med,
    appendix A.1.1, applied to the Poisson): each limit is
    :func:`_interpolated_quantile` of Poisson(E), divided by E. Their two
    tails are balanced on average over E (``tests/test_funnel.py``
    simulates them), where the chi-squared formula puts about three times as
    many in-control providers below the lower limit as above the upper one at
    E = 15. Because counts are whole numbers, no limit gives exactly 2.5% in
    each tail at a given E: the share below the lower limit is at most the
    nominal tail and the share above the upper at least it (Seaton &
    Manktelow 2012).
    """
    e = np.asarray(expected, dtype=float)
    p = _tail(level)
    dist = stats.poisson(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _interpolated_quantile(dist, p) / e, _interpolated_quantile(dist, 1 - p) / e


def binomial_limits(n: np.ndarray | float, target: float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial limits for a proportion with Spiegelhalter's interpolation.

    For each tail probability q (p and 1 - p), r_q is the q-quantile of
    Binomial(n, target) (smallest r with F(r) >= q), alpha =
    (F(r_q) - q) / (F(r_q) - F(r_q - 1)) and the limit is (r_q - alpha) / n
    (Spiegelhalter 2005, Stat Med, appendix A.1.1). The interpolation makes
    the limits smooth in n instead of a staircase.
    """
    n = np.asarray(n, dtype=float)
    if not 0 < target < 1:
        raise ValueError(f"The target proportion must be between 0 and 1; got {target!r}.")
    p = _tail(level)
    dist = stats.binom(n, target)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _interpolated_quantile(dist, p) / n, _interpolated_quantile(dist, 1 - p) / n


def exact_ci_ratio(
    observed: np.ndarray, expected: np.ndarray, level: float = 95.0, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) interval of O/E treating O / scale as Poisson.

    lower = chi2_p(2O') / (2E'), upper = chi2_{1-p}(2(O' + 1)) / (2E') with
    O' = O / scale and E' = E / scale (Ulm 1990, Am J Epidemiol 131:373).
    ``scale`` is a within-provider dispersion (1 for Poisson counts).
    """
    o = np.asarray(observed, float) / scale
    e = np.asarray(expected, float) / scale
    p = _tail(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(o > 0, stats.chi2.ppf(p, 2 * o) / (2 * e), 0.0)
        upper = stats.chi2.ppf(1 - p, 2 * (o + 1)) / (2 * e)
    return lower, upper


def exact_ci_proportion(
    events: np.ndarray, n: np.ndarray, level: float = 95.0
) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson interval of a proportion (Clopper & Pearson 1934, Biometrika 26:404)."""
    x = np.asarray(events, float)
    n = np.asarray(n, float)
    p = _tail(level)
    lower = np.where(x > 0, stats.beta.ppf(p, np.maximum(x, 1e-12), n - x + 1), 0.0)
    upper = np.where(x < n, stats.beta.ppf(1 - p, x + 1, np.maximum(n - x, 1e-12)), 1.0)
    return lower, upper


# --------------------------------------------------------------------------- transforms
def transform(
    indicator_type: IndicatorType,
    observed: np.ndarray,
    precision: np.ndarray,
    target: float,
    how: str | None = None,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Variance-stabilised value y, its standard error s and the target theta.

    Ratios (precision E): ``"log"`` y = ln(O/E), s = 1/sqrt(E) (the SHMI
    z-score sqrt(E) ln(O/E)); ``"sqrt"`` y = sqrt(O/E), s = 1/(2 sqrt(E)).
    Proportions (precision n): ``"arcsine"`` y = asin(sqrt(p)),
    s = 1/(2 sqrt(n)). Spiegelhalter 2005, Qual Saf Health Care, table 1.
    ``scale`` multiplies the variance (within-provider dispersion). On the log
    scale a zero count is replaced by 0.5 (a continuity correction; ln 0 is
    undefined).
    """
    how = how or _TRANSFORMS[indicator_type][0]
    if how not in _TRANSFORMS[indicator_type]:
        raise ValueError(
            f"Transform {how!r} does not apply to a {indicator_type}; use one of {_TRANSFORMS[indicator_type]}."
        )
    o = np.asarray(observed, float)
    m = np.asarray(precision, float)
    root = np.sqrt(scale)
    if how == "log":
        y = np.log(np.where(o > 0, o, 0.5) / m)
        return y, root / np.sqrt(m), float(np.log(target))
    if how == "sqrt":
        return np.sqrt(o / m), root / (2 * np.sqrt(m)), float(np.sqrt(target))
    return (
        np.arcsin(np.sqrt(np.clip(o / m, 0, 1))),
        root / (2 * np.sqrt(m)),
        float(np.arcsin(np.sqrt(target))),
    )


def back_transform(how: str, y: np.ndarray) -> np.ndarray:
    """Indicator scale from the transformed scale: exp, square or sin^2.

    Values below 0 on the square-root scale, and outside [0, pi/2] on the
    arcsine scale, are clipped first: a square would otherwise turn a
    negative lower limit into a positive one.
    """
    y = np.asarray(y, float)
    if how == "log":
        return np.exp(y)
    if how == "sqrt":
        return np.clip(y, 0, None) ** 2
    if how == "arcsine":
        return np.sin(np.clip(y, 0, np.pi / 2)) ** 2
    raise ValueError(f"Unknown transform {how!r}.")


# --------------------------------------------------------------------------- overdispersion
@dataclass(frozen=True)
class Dispersion:
    """Result of the overdispersion step (see :func:`estimate_dispersion`)."""

    model: str
    tau2_method: str
    trim: float
    trim_method: str
    phi: float
    tau2: float
    kept: int
    total: int

    @property
    def applied(self) -> bool:
        """Whether the limits allow for overdispersion: additive with tau^2 > 0
        (and, for ``"shmi"``, phi > 1, as FunnelPlotR), or multiplicative
        with phi > 1."""
        if self.model == "additive":
            return bool(self.tau2 > 0 and (self.tau2_method != "shmi" or self.phi > 1))
        return bool(self.model == "multiplicative" and self.phi > 1)

    def to_frame(self) -> pd.DataFrame:
        """One-row ``dispersion`` table: model, tau2_method, trim, trim_method,
        phi, tau2, providers_kept, providers_total, applied."""
        applied = self.applied
        return pd.DataFrame(
            {
                "model": [self.model],
                "tau2_method": [self.tau2_method],
                "trim": [self.trim],
                "trim_method": [self.trim_method],
                "phi": [self.phi],
                "tau2": [self.tau2],
                "providers_kept": [self.kept],
                "providers_total": [self.total],
                "applied": [bool(applied)],
            }
        )


def _trim_mask(z: np.ndarray, trim: float) -> tuple[np.ndarray, float, float]:
    """Providers strictly inside the trim and 1 - trim quantiles (R type 7, as FunnelPlotR)."""
    if trim <= 0:
        return np.ones(len(z), bool), -np.inf, np.inf
    lo, hi = np.quantile(z, [trim, 1 - trim])
    return (z > lo) & (z < hi), float(lo), float(hi)


def _rank_group_mask(z: np.ndarray, trim: float) -> np.ndarray:
    """FunnelPlotR's truncation (its ``truncation()``, as NHS Digital's SHMI).

    With k = 1 / trim groups, group = floor(rank x k / (n + 1)) (average
    ranks for ties); keeps groups 1 to k - 2, i.e. removes group 0 and group
    k - 1 and above. Six providers keep all six; type-7 quantiles would drop
    two.
    """
    if trim <= 0:
        return np.ones(len(z), bool)
    k = 1 / trim
    group = np.floor(stats.rankdata(z, method="average") * k / (len(z) + 1))
    return (group > 0) & (group < k - 1)


def _trimmed_second_moment(trim: float, trim_method: str) -> float:
    """E[Z^2] of a standard normal after trimming ``trim`` in each tail.

    Truncated: 1 - 2 c phi(c) / (1 - 2 trim) with c = Phi^-1(1 - trim);
    winsorised: (1 - 2 trim) x that + 2 trim c^2.
    """
    if trim <= 0:
        return 1.0
    c = stats.norm.ppf(1 - trim)
    inner = 1 - 2 * c * stats.norm.pdf(c) / (1 - 2 * trim)
    if trim_method == "truncate":
        return float(inner)
    return float((1 - 2 * trim) * inner + 2 * trim * c**2)


def _trimmed_mean_sq(r: np.ndarray, trim: float, trim_method: str) -> tuple[float, int]:
    keep, lo, hi = _trim_mask(r, trim)
    if trim_method == "truncate":
        return float(np.mean(r[keep] ** 2)), int(keep.sum())
    w = np.clip(r, lo, hi)
    return float(np.mean(w**2)), len(r)


def estimate_dispersion(
    y: np.ndarray,
    s: np.ndarray,
    theta: float,
    model: Overdispersion = "additive",
    tau2_method: Tau2Method = DEFAULT_TAU2_METHOD,
    trim: float = DEFAULT_TRIM,
    trim_method: Literal["truncate", "winsorise"] = "truncate",
) -> Dispersion:
    """Estimate phi and tau^2 from transformed values y with standard errors s.

    z_i = (y_i - theta) / s_i. Methods:

    ``"shmi"`` (FunnelPlotR 0.5.0, NHS Digital)
        phi = mean z^2 over the providers kept after truncating ``trim`` in
        each tail by rank groups (:func:`_rank_group_mask`), or over all
        providers after winsorising at the type-7 ``trim`` and ``1 - trim``
        quantiles; with I the providers used and w = 1/s^2 over them,
        tau^2 = (I phi - (I - 1)) / (sum w - sum w^2 / sum w), or 0 when
        I phi < I - 1 (DerSimonian & Laird 1986; Spiegelhalter 2005, QSHC,
        eq. 2). :func:`funnel` chooses truncation for ratios and
        winsorisation for proportions, as FunnelPlotR does.
    ``"robust"``
        tau^2 solves trimmed-mean of r_i^2 = c, with r_i = (y_i - theta) /
        sqrt(s_i^2 + tau^2), the same trimming applied to r, and c the
        trimmed second moment of a standard normal (so the estimate is
        consistent when no provider is a true outlier); phi = trimmed mean of
        z^2 / c.
    ``"paule_mandel"``
        tau^2 solves sum r_i^2 = I - 1 with every provider kept (Paule &
        Mandel 1982); phi = sum z^2 / (I - 1).

    ``model="multiplicative"`` reports phi only (tau2 = 0); ``"none"`` reports
    phi for information and applies nothing.
    """
    y = np.asarray(y, float)
    s = np.asarray(s, float)
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
    y, s = y[ok], s[ok]
    total = len(y)
    if total < 3 and model == "none":
        return Dispersion(model, tau2_method, float(trim), trim_method, float("nan"), 0.0, total, total)
    if total < 3:
        raise InputError(  # the user's data: a message, not a traceback (a ValueError too)
            f"At least 3 providers are needed to estimate overdispersion; got {total} with usable data. "
            'A funnel plot compares providers: give an extract with more of them, or overdispersion="none".'
        )
    if trim_method not in ("truncate", "winsorise"):
        raise ValueError(f"trim_method must be 'truncate' or 'winsorise'; got {trim_method!r}.")
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5); got {trim!r}.")
    z = (y - theta) / s
    w = 1 / s**2

    if tau2_method == "dl":
        raise ValueError(
            'tau2_method "dl" is now called "shmi" (FunnelPlotR\'s method); the default is "robust".'
        )
    if tau2_method == "shmi":
        if trim_method == "truncate":
            keep = _rank_group_mask(z, trim)
            zz, ww = z[keep], w[keep]
        else:
            _, lo, hi = _trim_mask(z, trim)
            zz, ww = np.clip(z, lo, hi), w
        n_used = len(zz)
        phi = float(np.mean(zz**2))
        denom = ww.sum() - (ww**2).sum() / ww.sum()
        tau2 = max(0.0, (n_used * phi - (n_used - 1)) / denom)
    elif tau2_method == "robust":
        c = _trimmed_second_moment(trim, trim_method)
        m0, n_used = _trimmed_mean_sq(z, trim, trim_method)
        phi = m0 / c

        def excess(t2: float) -> float:
            return _trimmed_mean_sq((y - theta) / np.sqrt(s**2 + t2), trim, trim_method)[0] - c

        tau2 = _decreasing_root(excess, float(np.var(y - theta)) + float(np.max(s**2)))
    elif tau2_method == "paule_mandel":
        n_used = total
        phi = float(np.sum(z**2) / (total - 1))

        def q(t2: float) -> float:
            return float(np.sum((y - theta) ** 2 / (s**2 + t2)) - (total - 1))

        tau2 = _decreasing_root(q, float(np.var(y - theta)) + float(np.max(s**2)))
    else:
        raise ValueError(f"tau2_method must be one of {', '.join(TAU2_METHODS)}; got {tau2_method!r}.")
    if model != "additive":
        tau2 = 0.0
    if model not in ("none", "additive", "multiplicative"):
        raise ValueError(f"overdispersion must be 'none', 'additive' or 'multiplicative'; got {model!r}.")
    return Dispersion(
        model, tau2_method, float(trim), trim_method, float(phi), float(tau2), int(n_used), int(total)
    )


# --------------------------------------------------------------------------- limits at any precision
@dataclass(frozen=True)
class FunnelSpec:
    """Everything needed to draw limits at any precision (see :func:`limits_at`)."""

    indicator_type: str
    transform: str
    target: float
    levels: tuple[float, ...]
    dispersion: Dispersion
    scale: float = 1.0
    #: the level (per cent) that sets the ``outlier`` column
    outlier_level: float = DEFAULT_OUTLIER_LEVEL
    #: limits without overdispersion: ``"quantile"`` (Poisson or binomial
    #: quantiles, interpolated) or ``"funnelplotr"`` (chi-squared for ratios,
    #: arcsine-normal for proportions: what ``tau2_method="shmi"`` draws)
    unadjusted: str = "quantile"


def limits_at(spec: FunnelSpec, precision: np.ndarray | float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper limit on the indicator's scale at the given precision.

    Precision is E for ratios and n for proportions. Limits from the count's
    own distribution (:func:`poisson_limits`, :func:`binomial_limits`)
    unless the overdispersion step applies (:attr:`Dispersion.applied`);
    then theta +/- z sqrt(s^2 + tau^2) (additive) or theta +/- z s sqrt(phi)
    (multiplicative) on the transformed scale, back-transformed.
    """
    m = np.asarray(precision, float)
    d = spec.dispersion
    if not d.applied:
        if spec.indicator_type == "ratio":
            # O ~ Poisson(target x E): limits of O / (target x E), times target
            ratio_limits = poisson_ratio_limits if spec.unadjusted == "funnelplotr" else poisson_limits
            lo, hi = ratio_limits(m * spec.target / spec.scale, level)
            return lo * spec.target, hi * spec.target
        if spec.scale != 1.0 or spec.unadjusted == "funnelplotr":
            y0, s, theta = transform("proportion", m * spec.target, m, spec.target, scale=spec.scale)
            zq = stats.norm.ppf(1 - _tail(level))
            return back_transform("arcsine", theta - zq * s), back_transform("arcsine", theta + zq * s)
        return binomial_limits(np.round(m), spec.target, level)
    _, s, theta = transform(spec.indicator_type, m * spec.target, m, spec.target, spec.transform, spec.scale)
    zq = stats.norm.ppf(1 - _tail(level))
    half = zq * (np.sqrt(s**2 + d.tau2) if d.model == "additive" else s * np.sqrt(d.phi))
    return back_transform(spec.transform, theta - half), back_transform(spec.transform, theta + half)


def funnel_curves(spec: FunnelSpec, precision_range: tuple[float, float], points: int = 200) -> pd.DataFrame:
    """Limit curves for a funnel plot, long format.

    Columns: precision, level, lower, upper, target. Precision values are
    spaced evenly on a log scale between the range's ends.
    """
    lo, hi = precision_range
    lo = max(float(lo), 1.0)
    grid = np.unique(np.geomspace(lo, max(float(hi), lo * 1.01), points))
    if spec.indicator_type == "proportion":
        grid = np.unique(np.round(grid))
    rows = []
    for level in spec.levels:
        lower, upper = limits_at(spec, grid, level)
        rows.append(
            pd.DataFrame(
                {
                    "precision": grid,
                    "level": float(level),
                    "lower": lower,
                    "upper": upper,
                    "target": spec.target,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------- the provider table
@dataclass
class FunnelResult:
    """A funnel analysis: the provider table, the dispersion row, the curves.

    ``providers`` is the ``provider_indicator`` table (see :func:`funnel`),
    ``dispersion`` the one-row ``dispersion`` table, ``curves`` the limit
    curves (precision, level, lower, upper, target) and ``spec`` what is needed
    to compute limits at any other precision.
    """

    providers: pd.DataFrame
    dispersion: pd.DataFrame
    curves: pd.DataFrame
    spec: FunnelSpec
    value_column: str = field(default="ratio")


def _check_columns(data: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise InputError(
            f"{what}: column(s) {', '.join(missing)} not found; the table has {', '.join(map(str, data.columns))}."
        )


def _check_values(data: pd.DataFrame, column: str, rule: str, bad: pd.Series, provider: str) -> None:
    if bad.any():
        rows = data.loc[bad, [provider, column]].head(5).to_dict("records")
        raise InputError(
            f"Funnel input: column {column!r} must be {rule}; {int(bad.sum())} row(s) are not, for example {rows}."
        )


def _decreasing_root(f, start: float) -> float:
    """The tau^2 >= 0 where a decreasing estimating equation ``f`` crosses zero.

    0 when ``f(0) <= 0`` (no excess variation); otherwise the upper bracket
    starts at ``start`` and grows fourfold until ``f`` is negative, then Brent's
    method finds the root.
    """
    if f(0.0) <= 0:
        return 0.0
    hi = start
    while f(hi) > 0:
        hi *= 4
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-14, rtol=1e-10))


def funnel(
    data: pd.DataFrame,
    indicator_type: IndicatorType = "ratio",
    *,
    provider: str = "provider_code",
    observed: str = "observed",
    expected: str = "expected",
    denominator: str = "denominator",
    target: float | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    overdispersion: Overdispersion = "additive",
    tau2_method: Tau2Method = DEFAULT_TAU2_METHOD,
    trim: float = DEFAULT_TRIM,
    trim_method: Literal["truncate", "winsorise"] | None = None,
    transform_how: str | None = None,
    min_expected: float = DEFAULT_MIN_EXPECTED,
    scale: float = 1.0,
    outlier_level: float | None = None,
) -> FunnelResult:
    """Funnel analysis of one indicator: limits, z-scores and outlier flags.

    ``data`` has one row per provider. For ``"ratio"``: ``observed`` (O) and
    ``expected`` (E) and optionally ``denominator`` (spells); target 1.
    For ``"proportion"``: ``observed`` (events) and ``denominator`` (n); target
    the pooled proportion sum(O)/sum(n) unless ``target`` is given, and
    expected = n x target.

    ``scale`` is a within-provider dispersion of O (1 for Poisson or binomial
    counts; for bed days, the case-mix model's Pearson dispersion), applied
    as a quasi-likelihood factor on the variance (McCullagh & Nelder 1989).

    ``tau2_method`` is ``"robust"`` (default), ``"paule_mandel"`` or
    ``"shmi"`` (see the module docstring). ``trim_method`` defaults to
    truncation, except that ``"shmi"`` winsorises proportions as
    FunnelPlotR does. ``outlier_level`` (default the outermost of
    ``levels``, added to them if missing) sets the ``outlier`` column.

    Returns a :class:`FunnelResult` whose ``providers`` table
    (``provider_indicator``) has the columns:

    provider_code, denominator, observed, expected, ratio (or rate),
    ci_lower, ci_upper (95% exact interval of the provider's own value),
    z (on the transformed scale, allowing for the overdispersion applied),
    lower_<L>, upper_<L> for each level L (95 -> ``lower_95``, 99.8 ->
    ``lower_998``), flag_<L> ("high", "low" or "none" against that pair),
    small (expected below ``min_expected``: shown, never flagged) and
    outlier ("high", "low" or "none" at ``outlier_level``). Providers are
    in input order: the table is not a ranking.
    """
    if indicator_type not in ("ratio", "proportion"):
        raise ValueError(f"indicator_type must be 'ratio' or 'proportion'; got {indicator_type!r}.")
    levels = tuple(sorted(float(x) for x in levels))
    if not levels:
        raise ValueError("At least one limit level is needed, for example [95, 99.8].")
    outlier_level = levels[-1] if outlier_level is None else float(outlier_level)
    _tail(outlier_level)
    levels = tuple(sorted(set(levels) | {outlier_level}))
    shmi = tau2_method == "shmi"
    if trim_method is None:
        trim_method = "winsorise" if shmi and indicator_type == "proportion" else "truncate"
    needed = [provider, observed] + ([expected] if indicator_type == "ratio" else [denominator])
    _check_columns(data, needed, "Funnel input")
    df = data.copy()
    if df[provider].duplicated().any():
        dup = df.loc[df[provider].duplicated(keep=False), provider].head(5).tolist()
        raise ValueError(f"Funnel input: column {provider!r} must name each provider once; repeated: {dup}.")
    o = pd.to_numeric(df[observed], errors="coerce")
    _check_values(df, observed, "a number of at least 0", o.isna() | (o < 0), provider)
    if indicator_type == "ratio":
        e = pd.to_numeric(df[expected], errors="coerce")
        _check_values(df, expected, "a number above 0", e.isna() | (e <= 0), provider)
        n = (
            pd.to_numeric(df[denominator], errors="coerce")
            if denominator in df.columns
            else pd.Series(np.nan, index=df.index)
        )
        tgt = 1.0 if target is None else float(target)
        precision = e.to_numpy(float)
        value = (o / e).to_numpy(float)
        value_column = "ratio"
    else:
        n = pd.to_numeric(df[denominator], errors="coerce")
        _check_values(df, denominator, "a whole number above 0", n.isna() | (n <= 0), provider)
        _check_values(df, observed, f"no more than {denominator}", o > n, provider)
        tgt = float(o.sum() / n.sum()) if target is None else float(target)
        e = n * tgt
        precision = n.to_numpy(float)
        value = (o / n).to_numpy(float)
        value_column = "rate"
    how = transform_how or _TRANSFORMS[indicator_type][0]
    if shmi and indicator_type == "ratio":
        # FunnelPlotR (SHMI_rounding = TRUE) rounds expected counts to 2 decimals
        precision = np.round(precision, 2)
    y, s, theta = transform(indicator_type, o.to_numpy(float), precision, tgt, how, scale)
    disp = estimate_dispersion(y, s, theta, overdispersion, tau2_method, trim, trim_method)
    spec = FunnelSpec(
        indicator_type,
        how,
        tgt,
        levels,
        disp,
        float(scale),
        outlier_level,
        "funnelplotr" if shmi else "quantile",
    )

    applied = disp.applied
    if disp.model == "additive" and applied:
        sd = np.sqrt(s**2 + disp.tau2)
    elif disp.model == "multiplicative" and applied:
        sd = s * np.sqrt(disp.phi)
    else:
        sd = s
    out = pd.DataFrame(
        {
            "provider_code": df[provider].astype("str").to_numpy(),
            "denominator": n.to_numpy(),
            "observed": o.to_numpy(),
            "expected": e.to_numpy(float),
            value_column: value,
        }
    )
    if indicator_type == "ratio":
        ci_lo, ci_hi = exact_ci_ratio(o.to_numpy(float), e.to_numpy(float), 95.0, scale)
    else:
        ci_lo, ci_hi = exact_ci_proportion(o.to_numpy(float), n.to_numpy(float), 95.0)
    out["ci_lower"], out["ci_upper"] = ci_lo, ci_hi
    out["z"] = (y - theta) / sd
    small = out["expected"].to_numpy() < float(min_expected)
    for level in levels:
        lab = level_label(level)
        lo, hi = limits_at(spec, precision, level)
        out[f"lower_{lab}"], out[f"upper_{lab}"] = lo, hi
        flag = np.where(value > hi, "high", np.where(value < lo, "low", "none"))
        out[f"flag_{lab}"] = np.where(small, "none", flag)
    out["small"] = small
    out["outlier"] = out[f"flag_{level_label(outlier_level)}"]
    pr = (float(np.nanmin(precision)) * 0.8, float(np.nanmax(precision)) * 1.25)
    curves = funnel_curves(spec, pr)
    return FunnelResult(out, disp.to_frame(), curves, spec, value_column)


def from_indicator_table(
    table: pd.DataFrame, provider: str = "provider_code"
) -> tuple[pd.DataFrame, IndicatorType]:
    """Turn an aggregate ``indicator`` table into funnel input.

    Accepts provider_code with either ``observed`` and ``expected`` (an
    indirectly standardised ratio) or ``numerator`` and ``denominator`` (a
    proportion). Returns the frame with columns provider_code, observed,
    expected or denominator, and the indicator type. Rows repeated for a
    provider are summed (for example monthly rows), and the count of rows
    summed is kept in ``rows``.
    """
    cols = set(table.columns)
    if {"observed", "expected"} <= cols:
        kind: IndicatorType = "ratio"
        value_cols = ["observed", "expected"] + (["denominator"] if "denominator" in cols else [])
    elif {"numerator", "denominator"} <= cols:
        kind = "proportion"
        value_cols = ["numerator", "denominator"]
    else:
        raise InputError(
            "Indicator table: needs provider_code with observed and expected, or with numerator and denominator; "
            f"it has {', '.join(map(str, table.columns))}."
        )
    _check_columns(table, [provider], "Indicator table")
    grouped = table.groupby(provider, sort=True, observed=True)
    out = grouped[value_cols].sum(min_count=1).reset_index()
    out["rows"] = grouped.size().to_numpy()
    out = out.rename(columns={provider: "provider_code", "numerator": "observed"})
    return out, kind


def compare_flags(
    data: pd.DataFrame,
    indicator_type: IndicatorType = "ratio",
    methods: Sequence[str] = (DEFAULT_TAU2_METHOD, "shmi"),
    **kwargs,
) -> pd.DataFrame:
    """Which providers each tau^2 method flags, side by side.

    Runs :func:`funnel` once per method with the same other arguments and
    returns the ``flag_comparison`` table: provider_code, the indicator
    value (ratio or rate) and ``outlier_<method>`` ("high", "low" or
    "none" at the outlier level) for every provider flagged by at least one
    method, in input order; ``agree`` says whether the methods agree. An
    analyst who must match NHS Digital's SHMI reads the ``outlier_shmi``
    column.
    """
    results = {m: funnel(data, indicator_type, tau2_method=m, **kwargs) for m in methods}
    first = results[methods[0]]
    col = first.value_column
    out = first.providers[["provider_code", col]].copy()
    for m, res in results.items():
        out[f"outlier_{m}"] = res.providers["outlier"].to_numpy()
    flags = out[[f"outlier_{m}" for m in methods]]
    out["agree"] = flags.nunique(axis=1).eq(1).to_numpy()
    return out[flags.ne("none").any(axis=1).to_numpy()].reset_index(drop=True)
