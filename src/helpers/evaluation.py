"""Evaluating a service change such as a virtual ward: effects, balance, sensitivity.

The patient-level estimators compare treated spells (followed by a step-down
virtual ward stay) with concurrent controls built by :mod:`helpers.cohort`, and
return the ``effect_estimates`` table of DESIGN.md:

=============== ===========================================================
column          meaning
=============== ===========================================================
outcome         ``acute_los``, ``total_los``, ``readmission_30d``, ...
method          ``naive``, ``regression``, ``ipw``, ``matching``
estimate        effect on the treated: days for LOS outcomes, percentage
                points (risk difference) for binary outcomes
ci_lower/upper  95% confidence interval (or ``level``)
p_value         two-sided p-value for no effect
n_treated       treated spells used (matched treated spells for matching)
n_control       control spells used (matched controls for matching)
unit            ``days`` or ``percentage points``
ratio_measure   the relative effect shown beside it: ``rate ratio`` (LOS),
                ``odds ratio`` (regression, binary) or ``risk ratio``
ratio, ratio_ci_lower, ratio_ci_upper
                that relative effect with its interval
se              standard error of ``estimate``
note            what a reader must know about the row
=============== ===========================================================

Methods (METHODS.md section 5):

* naive difference in means (Welch standard error);
* regression adjustment: negative binomial GLM with log link for LOS, logistic
  GLM for binary outcomes; the difference on the treated by marginal
  standardisation (g-computation) with a delta-method standard error
  (Austin 2010, Stat Med 29:2137; Muller & MacLehose 2014, Int J Epidemiol
  43:962);
* inverse probability of treatment weighting for the average effect on the
  treated (ATT): treated weight 1, control weight e/(1-e) (Hirano, Imbens &
  Ridder 2003; Austin & Stuart 2015, Stat Med 34:3661), with the sandwich
  variance of the stacked estimating equations, which accounts for the
  estimated propensity score (Lunceford & Davidian 2004, Stat Med 23:2937;
  Reifeis & Hudgens 2022, Am J Epidemiol 191:1092);
* 1:1 greedy nearest-neighbour matching without replacement on the logit of
  the propensity score within a caliper of 0.2 pooled standard deviations
  (Austin 2011, Pharm Stat 10:150), analysed as pairs (Austin 2011,
  Multivariate Behav Res 46:399).

Balance is the standardised mean difference (Austin 2009, Stat Med 28:3083),
sensitivity the E-value (VanderWeele & Ding 2017, Ann Intern Med 167:268).
Provider-level methods: segmented regression of an interrupted time series
with Newey-West standard errors (Bernal, Cummins & Gasparrini 2017, Int J
Epidemiol 46:348; Newey & West 1987, Econometrica 55:703) and a
difference-in-differences against providers without a virtual ward.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import sparse, stats
from scipy.linalg import qr
from scipy.special import expit, logit

from helpers import disclosure

#: Covariates of the propensity score and the regression adjustment (METHODS.md
#: section 5; comorbidity is not in data contract v1, so it is not a default).
DEFAULT_COVARIATES: list[str] = ["age", "sex", "frailty_score", "imd_decile", "pathway", "month"]

#: Outcomes and their kind: ``count`` (days, negative binomial) or ``binary``.
OUTCOME_KINDS: dict[str, str] = {
    "acute_los": "count",
    "total_los": "count",
    "readmission_30d": "binary",
    "readmission_30d_from_acute_discharge": "binary",
    "death_30d": "binary",
    "readmission_90d": "binary",
    "readmission_or_death_30d": "binary",
    "days_alive_out_of_hospital_30d": "count",
}

#: Methods in the order the table shows them.
METHODS: list[str] = ["naive", "regression", "ipw", "matching"]

#: Threshold above which an absolute standardised mean difference is flagged
#: (Austin 2009; Normand et al 2001).
SMD_THRESHOLD: float = 0.1

EFFECT_COLUMNS: list[str] = [
    "outcome",
    "method",
    "estimate",
    "ci_lower",
    "ci_upper",
    "p_value",
    "n_treated",
    "n_control",
    "unit",
    "ratio_measure",
    "ratio",
    "ratio_ci_lower",
    "ratio_ci_upper",
    "se",
    "note",
]


# ---------------------------------------------------------------------------
# Design matrices and the propensity score
# ---------------------------------------------------------------------------


def _is_categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def design_matrix(data: pd.DataFrame, covariates: list[str], intercept: bool = True) -> pd.DataFrame:
    """Numeric model matrix: numeric covariates as they are, others as dummies.

    Categorical covariates (strings, categories, booleans) become indicator
    columns with the first level (sorted) as reference. Missing values raise a
    ``ValueError`` naming the column and the number of rows, never a silent
    drop. Columns that are constant are removed (they carry no information).
    """
    missing_cols = [c for c in covariates if c not in data.columns]
    if missing_cols:
        raise ValueError(f"covariates not in the data: {missing_cols}; columns are {list(data.columns)}")
    parts: list[pd.DataFrame] = []
    for col in covariates:
        s = data[col]
        n_missing = int(s.isna().sum())
        if n_missing:
            rows = list(data.index[s.isna()][:5])
            raise ValueError(
                f"covariate '{col}' has {n_missing} missing values (first rows {rows}); "
                "impute or exclude them (counted) before estimating effects"
            )
        if _is_categorical(s):
            text = s.astype(str)
            levels = sorted(text.unique())
            cat = pd.Categorical(text, categories=levels)
            dummies = pd.get_dummies(cat, prefix=col, prefix_sep="=", drop_first=True, dtype=float)
            dummies.index = data.index
            parts.append(dummies)
        else:
            parts.append(s.astype(float).to_frame(col))
    X = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=data.index)
    X = X.loc[:, X.std(ddof=0) > 0]
    if intercept:
        X.insert(0, "const", 1.0)
    return X


def propensity_scores(data: pd.DataFrame, covariates: list[str], treatment: str = "treated") -> pd.Series:
    """Propensity score: fitted probability of treatment from a logistic model.

    The model is main effects of ``covariates`` (Rosenbaum & Rubin 1983,
    Biometrika 70:41). Returns a Series named ``propensity`` on the data's index.
    """
    X = design_matrix(data, covariates)
    t = _binary(data[treatment], treatment)
    return pd.Series(
        np.clip(_logistic_fitted(t, X.to_numpy()), 1e-10, 1 - 1e-10), index=data.index, name="propensity"
    )


def att_weights(treated: np.ndarray | pd.Series, propensity: np.ndarray | pd.Series) -> np.ndarray:
    """Weights for the average treatment effect on the treated (ATT).

    Treated units get 1, controls get the odds of the propensity score
    e/(1-e), which reweights controls to the treated's covariate distribution
    (Hirano, Imbens & Ridder 2003; Austin & Stuart 2015, Stat Med 34:3661).
    """
    t = np.asarray(treated, dtype=float)
    e = np.asarray(propensity, dtype=float)
    return np.where(t == 1, 1.0, e / (1.0 - e))


def _binary(s: pd.Series | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(s, dtype=float)
    bad = ~np.isin(a, [0.0, 1.0])
    if bad.any():
        raise ValueError(f"'{name}' must be 0/1 (or True/False); {int(bad.sum())} rows are not")
    return a


# ---------------------------------------------------------------------------
# Small helpers for intervals
# ---------------------------------------------------------------------------


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2))


def _row(estimate: float, se: float, level: float, scale: float = 1.0) -> dict:
    z = _z(level)
    p = float(2 * stats.norm.sf(abs(estimate / se))) if se > 0 else float("nan")
    return {
        "estimate": estimate * scale,
        "ci_lower": (estimate - z * se) * scale,
        "ci_upper": (estimate + z * se) * scale,
        "p_value": p,
        "se": se * scale,
    }


def _row_t(estimate: float, se: float, level: float, df: int) -> dict:
    """Like :func:`_row`, with Student's t on ``df`` degrees of freedom."""
    q = float(stats.t.ppf(0.5 + level / 2, df))
    p = float(2 * stats.t.sf(abs(estimate / se), df)) if se > 0 else float("nan")
    return {
        "estimate": estimate,
        "ci_lower": estimate - q * se,
        "ci_upper": estimate + q * se,
        "p_value": p,
        "se": se,
    }


def _ratio(log_ratio: float, se_log: float, level: float) -> dict:
    z = _z(level)
    return {
        "ratio": float(np.exp(log_ratio)),
        "ratio_ci_lower": float(np.exp(log_ratio - z * se_log)),
        "ratio_ci_upper": float(np.exp(log_ratio + z * se_log)),
    }


def _kind(outcome: str, y: np.ndarray) -> str:
    if outcome in OUTCOME_KINDS:
        return OUTCOME_KINDS[outcome]
    return "binary" if np.isin(y, [0.0, 1.0]).all() else "count"


# ---------------------------------------------------------------------------
# Estimators (arrays in, dict out); ``estimate_effects`` assembles the table
# ---------------------------------------------------------------------------


def naive_difference(y: np.ndarray, t: np.ndarray, level: float = 0.95) -> dict:
    """Unadjusted difference in means, treated minus control, Welch standard error.

    Also returns the ratio of means with a delta-method interval on the log scale.
    """
    y, t = np.asarray(y, float), np.asarray(t, float)
    y1, y0 = y[t == 1], y[t == 0]
    m1, m0 = y1.mean(), y0.mean()
    v1, v0 = y1.var(ddof=1) / len(y1), y0.var(ddof=1) / len(y0)
    out = _row(m1 - m0, float(np.sqrt(v1 + v0)), level)
    if m1 > 0 and m0 > 0:
        out.update(_ratio(np.log(m1 / m0), float(np.sqrt(v1 / m1**2 + v0 / m0**2)), level))
    return out


def _nb_alpha(y: np.ndarray, mu: np.ndarray) -> float:
    """Negative binomial (NB2) dispersion by the auxiliary regression of
    Cameron & Trivedi (1990, J Econometrics 46:347): ((y-mu)^2 - y)/mu = alpha*mu."""
    z = ((y - mu) ** 2 - y) / mu
    return float(max(np.sum(z * mu) / np.sum(mu**2), 1e-8))


def _weighted_gram(
    X: np.ndarray, w: np.ndarray, z: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """X' diag(w) X (and X' diag(w) z when ``z`` is given) for weights ``w`` >= 0, in one symmetric product.

    With S = [sqrt(w) X, sqrt(w) z], S'S holds both, and numpy hands S'S to
    BLAS's symmetric rank-k update (half the work of the general product
    ``(X.T * w) @ X``, and one pass instead of two); equal to rounding.
    """
    n, p = X.shape
    root = np.sqrt(w)
    scaled = np.empty((n, p + (z is not None)))
    np.multiply(X, root[:, None], out=scaled[:, :p])
    if z is not None:
        np.multiply(z, root, out=scaled[:, p])
    gram = scaled.T @ scaled
    return (gram, None) if z is None else (gram[:p, :p], gram[:p, p])


def _glm_irls(y: np.ndarray, X: np.ndarray, family, maxiter: int = 100, tol: float = 1e-8) -> np.ndarray:
    """Coefficients of a GLM by iteratively reweighted least squares, as statsmodels' ``GLM.fit()`` runs it.

    The same start (``family.starting_mu``), working response and weights,
    and the same stopping rule (the deviance changes by at most ``tol``), so
    the same estimates; each weighted least-squares step is solved by its
    normal equations (X'WX and X'Wz from :func:`_weighted_gram`, a p x p solve)
    instead of an SVD of the n x p matrix, which at national size (hundreds
    of thousands of risk-set rows) is the difference between seconds and
    minutes. The coefficients agree with statsmodels' to rounding (about
    1e-10 relative; ``tests/test_evaluation.py``).
    """
    mu = family.starting_mu(y)
    lin = family.predict(mu)
    deviance = [np.inf, family.deviance(y, mu)]
    beta = np.zeros(X.shape[1])
    for _ in range(maxiter):
        w = family.weights(mu)
        z = lin + family.link.deriv(mu) * (y - mu)
        xtwx, xtwz = _weighted_gram(X, w, z)
        beta = np.linalg.solve(xtwx, xtwz)
        lin = X @ beta
        mu = family.fitted(lin)
        deviance.append(family.deviance(y, mu))
        if abs(deviance[-1] - deviance[-2]) <= tol:
            break
    return beta


def _logistic_fitted(t: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Fitted probabilities of a logistic regression of ``t`` on ``X`` (:func:`_glm_irls`; statsmodels' fit)."""
    family = sm.families.Binomial()
    return family.fitted(np.asarray(X, float) @ _glm_irls(np.asarray(t, float), np.asarray(X, float), family))


def _glm_hc0_covariance(y: np.ndarray, X: np.ndarray, beta: np.ndarray, family) -> np.ndarray:
    """Robust (HC0) covariance of GLM coefficients, as statsmodels' ``GLM.fit(cov_type="HC0")`` gives it.

    H^-1 (sum of score outer products) H^-1, with the score and the observed
    Hessian written as statsmodels' ``GLM.score_obs`` and ``GLM.hessian``
    define them (``generalized_linear_model.py``; scale 1, the default for
    the binomial and negative binomial families): score_i = s_i x_i with
    s = (y - mu) / (g'(mu) V(mu)), and H = -X' diag(h) X with
    h = (1 + s (V(mu) g''(mu) + V'(mu) g'(mu))) / (g'(mu)^2 V(mu)), g the link
    and V the variance function. No GLM object is built: its constructor
    checks the rank of X by an SVD of the n x p matrix.
    """
    mu = family.fitted(X @ beta)
    deriv, variance = family.link.deriv(mu), family.variance(mu)
    score_factor = (y - mu) / deriv
    score_factor /= variance
    expected = 1 / (deriv**2 * variance)
    observed = expected * (
        1 + score_factor * (variance * family.link.deriv2(mu) + family.variance.deriv(mu) * deriv)
    )
    meat, _ = _weighted_gram(X, score_factor**2)
    hessian = (X * observed[:, None]).T @ X  # observed weights can be negative (a link that is not canonical)
    bread = np.linalg.inv(-hessian)
    return bread @ meat @ bread.T


def regression_adjusted(y: np.ndarray, t: np.ndarray, X: np.ndarray, kind: str, level: float = 0.95) -> dict:
    """Outcome regression with the effect on the treated by marginal standardisation.

    ``X`` holds the covariates with an intercept (no treatment column).
    Counts (LOS): negative binomial GLM, log link, dispersion from the
    Cameron-Trivedi auxiliary regression, robust (HC0) covariance; the ratio is
    the rate ratio exp(beta_treated). Binary: logistic GLM, robust covariance;
    the ratio is the odds ratio. The difference is mean over treated spells of
    the prediction with treatment set to 1 minus set to 0, with a delta-method
    standard error (Muller & MacLehose 2014, Int J Epidemiol 43:962).
    """
    y, t = np.asarray(y, float), np.asarray(t, float)
    Xt = np.column_stack([t, X])
    if kind == "count":
        poisson = sm.families.Poisson()
        mu0 = poisson.fitted(Xt @ _glm_irls(y, Xt, poisson))
        family = sm.families.NegativeBinomial(alpha=_nb_alpha(y, mu0))
    else:
        family = sm.families.Binomial()
    beta = _glm_irls(y, Xt, family)
    V = _glm_hc0_covariance(y, Xt, beta, family)
    Xs = Xt[t == 1]
    X1, X0 = Xs.copy(), Xs.copy()
    X1[:, 0], X0[:, 0] = 1.0, 0.0
    if kind == "count":
        p1, p0 = np.exp(X1 @ beta), np.exp(X0 @ beta)
        g = (p1[:, None] * X1).mean(0) - (p0[:, None] * X0).mean(0)
    else:
        p1, p0 = expit(X1 @ beta), expit(X0 @ beta)
        g = ((p1 * (1 - p1))[:, None] * X1).mean(0) - ((p0 * (1 - p0))[:, None] * X0).mean(0)
    out = _row(float(p1.mean() - p0.mean()), float(np.sqrt(g @ V @ g)), level)
    out.update(_ratio(float(beta[0]), float(np.sqrt(V[0, 0])), level))
    return out


@dataclass
class _WeightingTerms:
    """The parts of the IPW sandwich (:func:`ipw_att`) that do not depend on the outcome.

    They come from the treatment, the design and the propensity score alone,
    so they are computed once and shared by every outcome measured on the
    same rows (and by the residuals of :func:`aipw_att`): ``w0`` the control
    weights e/(1-e), ``information`` = X' diag(e(1-e)) X / n (the propensity
    block of A), and the propensity model's estimating functions
    (t - e) x summed within clusters (``cluster_indicator`` @ ..., a sparse
    clusters x rows indicator) with their cross-products ``score_gram``.
    """

    t: np.ndarray
    X: np.ndarray
    e: np.ndarray
    w0: np.ndarray
    information: np.ndarray
    cluster_indicator: sparse.csr_matrix | None
    score_sums: np.ndarray | None
    score_gram: np.ndarray

    def cluster_sums(self, v: np.ndarray) -> np.ndarray:
        """Sums of the row values ``v`` within clusters (each row its own cluster without them)."""
        return v if self.cluster_indicator is None else self.cluster_indicator @ v

    def score_cross(self, v: np.ndarray) -> np.ndarray:
        """Cross-products of the clustered propensity estimating functions with the clustered ``v``."""
        if self.score_sums is None:
            return ((self.t - self.e) * v) @ self.X
        return self.cluster_sums(v) @ self.score_sums


def _weighting_terms(
    t: np.ndarray, X: np.ndarray, propensity: np.ndarray, cluster: np.ndarray | None
) -> _WeightingTerms:
    """The outcome-free parts of :func:`ipw_att` (see :class:`_WeightingTerms`).

    The cluster sums are a sparse indicator product, exact like pandas'
    ``groupby(cluster).sum()`` (to the order of addition) and much faster;
    rows whose cluster label is missing are left out, as that groupby does.
    """
    n = len(t)
    e = np.clip(np.asarray(propensity, float), 1e-10, 1 - 1e-10)
    odds = e / (1 - e)
    w0 = (1 - t) * odds
    information, _ = _weighted_gram(X, e * (1 - e))
    information /= n
    if cluster is None:
        indicator, score_sums = None, None
        score_gram, _ = _weighted_gram(X, (t - e) ** 2)
    else:
        codes = pd.factorize(np.asarray(cluster))[0]
        rows = np.flatnonzero(codes >= 0)
        indicator = sparse.csr_matrix(
            (np.ones(len(rows)), (codes[rows], rows)), shape=(int(codes.max()) + 1 if len(rows) else 0, n)
        )
        score_sums = indicator @ ((t - e)[:, None] * X)
        score_gram = score_sums.T @ score_sums
    return _WeightingTerms(t, X, e, w0, information, indicator, score_sums, score_gram)


def _ipw_att(y: np.ndarray, terms: _WeightingTerms, level: float) -> dict:
    """:func:`ipw_att` from its outcome-free parts; B and A are assembled block by block."""
    t, X, w0 = terms.t, terms.X, terms.w0
    n, p = X.shape
    mu1 = y[t == 1].mean()
    mu0 = float(np.sum(w0 * y) / np.sum(w0))
    # the estimating functions of the two means (psi's last two columns), summed within clusters
    resid1, resid0 = t * (y - mu1), w0 * (y - mu0)
    sums1, sums0 = terms.cluster_sums(resid1), terms.cluster_sums(resid0)
    B = np.empty((p + 2, p + 2))
    B[:p, :p] = terms.score_gram
    B[:p, p] = B[p, :p] = terms.score_cross(resid1)
    B[:p, p + 1] = B[p + 1, :p] = terms.score_cross(resid0)
    B[p, p] = sums1 @ sums1
    B[p, p + 1] = B[p + 1, p] = sums1 @ sums0
    B[p + 1, p + 1] = sums0 @ sums0
    B /= n
    A = np.zeros((p + 2, p + 2))
    A[:p, :p] = -terms.information
    A[p, p] = -t.mean()
    A[p + 1, :p] = resid0 @ X / n
    A[p + 1, p + 1] = -w0.mean()
    Ainv = np.linalg.pinv(A)
    V = Ainv @ B @ Ainv.T / n
    c = np.zeros(p + 2)
    c[p], c[p + 1] = 1.0, -1.0
    out = _row(mu1 - mu0, float(np.sqrt(c @ V @ c)), level)
    if mu1 > 0 and mu0 > 0:
        g = np.zeros(p + 2)
        g[p], g[p + 1] = 1 / mu1, -1 / mu0
        out.update(_ratio(float(np.log(mu1 / mu0)), float(np.sqrt(g @ V @ g)), level))
    return out


def ipw_att(
    y: np.ndarray,
    t: np.ndarray,
    X: np.ndarray,
    level: float = 0.95,
    propensity: np.ndarray | None = None,
    cluster: np.ndarray | None = None,
) -> dict:
    """ATT by inverse probability weighting with a stacked sandwich variance.

    The propensity score is a logistic regression of ``t`` on ``X`` (with an
    intercept). Treated get weight 1, controls e/(1-e); the effect is the
    treated mean minus the weighted control mean (Hajek form). The variance
    comes from the estimating equations of (logistic coefficients, treated
    mean, weighted control mean) stacked together, so the uncertainty of the
    estimated propensity score is carried through (Lunceford & Davidian 2004;
    Reifeis & Hudgens 2022, Am J Epidemiol 191:1092): V = A^-1 B A^-T / n.
    The ratio is mu1/mu0 (rate ratio for LOS, risk ratio for binary outcomes).
    ``propensity`` may pass scores already fitted by the same logistic model
    of ``t`` on ``X`` (to fit once for several outcomes). With ``cluster``
    (one label per row, e.g. the spell of a row that sits in several risk
    sets) the middle of the sandwich sums the estimating functions within
    clusters (cluster-robust; Liang & Zeger 1986, Biometrika 73:13).
    """
    y, t, X = np.asarray(y, float), np.asarray(t, float), np.asarray(X, float)
    if propensity is None:
        propensity = _logistic_fitted(t, X)
    terms = _weighting_terms(t, X, propensity, cluster)
    out = _ipw_att(y, terms, level)
    out["propensity"] = terms.e
    return out


def match_nearest(
    logit_ps: np.ndarray,
    treated: np.ndarray,
    caliper_sd: float = 0.2,
    seed: int = 2026,
    caliper: float | None = None,
) -> pd.DataFrame:
    """1:1 greedy nearest-neighbour matching without replacement, with a caliper.

    Treated units are taken in a random order (from ``seed``); each takes the
    available control nearest on ``logit_ps`` if it lies within
    ``caliper_sd`` times the pooled standard deviation of the logit,
    sqrt((s1^2 + s0^2)/2) (Austin 2011, Pharm Stat 10:150, recommends 0.2).
    Ties go to the control that comes first in the data. Returns one row per
    treated unit: ``treated_pos``, ``control_pos`` (positions, -1 when no
    control lies within the caliper), ``distance`` and the ``caliper`` used.
    ``caliper`` (on the logit scale) replaces the one computed from the data,
    so that matching within risk sets uses one caliper for all of them.
    """
    lp, t = np.asarray(logit_ps, float), np.asarray(treated, float)
    t_pos, c_pos = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    var = [lp[pos].var(ddof=1) if len(pos) > 1 else 0.0 for pos in (t_pos, c_pos)]
    sd = float(np.sqrt((var[0] + var[1]) / 2))
    caliper = caliper_sd * sd if caliper is None else float(caliper)
    treated_pos, control_pos, distance = _greedy_pairs(lp, t_pos, c_pos, caliper, seed)
    out = pd.DataFrame({"treated_pos": treated_pos, "control_pos": control_pos, "distance": distance})
    out["caliper"] = caliper
    return out


def _greedy_pairs(
    lp: np.ndarray, t_pos: np.ndarray, c_pos: np.ndarray, caliper: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matching loop of :func:`match_nearest`: (treated, control, distance) arrays by treated position.

    Controls sorted by ``lp``; union-find style pointers jump over used
    controls to the nearest still-available one on each side. The loop runs
    on Python lists (numpy scalar access is several times slower) with the
    insertion points found for all treated at once: they do not change, as
    the sorted controls do not.
    """
    order = np.argsort(lp[c_pos], kind="stable")
    sorted_values = lp[c_pos][order]
    cv, cp = sorted_values.tolist(), c_pos[order].tolist()
    m = len(cv)
    right = list(range(m + 1))  # right[i] -> nearest available at or above i (m: none)
    left = list(range(-1, m))  # left[i+1] -> nearest available at or below i (-1: none)

    def find_right(i: int) -> int:
        root = i
        while right[root] != root:
            root = right[root]
        while right[i] != root:
            right[i], i = root, right[i]
        return root

    def find_left(i: int) -> int:  # i in -1..m-1, stored at i+1
        root = i
        while root >= 0 and left[root + 1] != root:
            root = left[root + 1]
        while i >= 0 and left[i + 1] != root:
            left[i + 1], i = root, left[i + 1]
        return root

    order_treated = np.random.default_rng(seed).permutation(t_pos)
    values = lp[order_treated]
    insert = np.searchsorted(sorted_values, values).tolist()
    control_pos = [-1] * len(order_treated)
    distance = [np.nan] * len(order_treated)
    for row, (x, k) in enumerate(zip(values.tolist(), insert)):
        r = find_right(k) if k < m else m
        lft = find_left(k - 1) if k > 0 else -1
        cands = [(abs(cv[j] - x), cp[j], j) for j in (lft, r) if 0 <= j < m]
        if not cands:
            continue
        dist, cpos, j = min(cands)
        distance[row] = dist
        if dist > caliper:
            continue
        right[j] = j + 1
        left[j + 1] = j - 1
        control_pos[row] = cpos
    by_treated = np.argsort(order_treated, kind="stable")
    return (
        order_treated[by_treated],
        np.asarray(control_pos, dtype=np.int64)[by_treated],
        np.asarray(distance, dtype=float)[by_treated],
    )


def matched_difference(y: np.ndarray, pairs: pd.DataFrame, level: float = 0.95) -> dict:
    """Effect on the matched treated: mean of within-pair differences.

    The standard error is that of the paired differences, as Austin (2011,
    Multivariate Behav Res 46:399) recommends for propensity-matched samples;
    the ratio of means gets a delta-method interval using the paired covariance.
    """
    y = np.asarray(y, float)
    ok = pairs[pairs["control_pos"] >= 0]
    y1, y0 = y[ok["treated_pos"].to_numpy()], y[ok["control_pos"].to_numpy()]
    n = len(ok)
    d = y1 - y0
    out = _row(float(d.mean()), float(d.std(ddof=1) / np.sqrt(n)), level)
    m1, m0 = y1.mean(), y0.mean()
    if m1 > 0 and m0 > 0:
        cov = np.cov(y1, y0, ddof=1)
        var_log = (cov[0, 0] / m1**2 + cov[1, 1] / m0**2 - 2 * cov[0, 1] / (m1 * m0)) / n
        out.update(_ratio(float(np.log(m1 / m0)), float(np.sqrt(max(var_log, 0.0))), level))
    return out


@dataclass
class EffectResults:
    """What :func:`estimate_effects` returns.

    ``effects`` is the ``effect_estimates`` table; ``propensity`` the fitted
    propensity score per cohort row; ``pairs`` the matched pairs (positions in
    the cohort); ``balance`` the ``balance`` table; ``overlap`` the binned
    propensity distributions for the overlap plot.
    """

    effects: pd.DataFrame
    propensity: pd.Series
    pairs: pd.DataFrame
    balance: pd.DataFrame
    overlap: pd.DataFrame


def _effect_row(
    outcome: str,
    method: str,
    r: dict[str, float],
    n_treated: int,
    n_control: int,
    unit: str,
    ratio_measure: str | None,
    note: str,
    kind: str,
    scale: float,
) -> dict[str, object]:
    """One row of an effects table; a binary outcome's estimate and interval in ``unit`` (``scale``, e.g. 100 for pp)."""
    if kind == "binary":
        r = {**r, **{k: r[k] * scale for k in ("estimate", "ci_lower", "ci_upper", "se")}}
    return {
        "outcome": outcome,
        "method": method,
        **r,
        "n_treated": n_treated,
        "n_control": n_control,
        "unit": unit,
        "ratio_measure": ratio_measure,
        "note": note,
    }


def estimate_effects(
    cohort: pd.DataFrame,
    outcomes: list[str] | None = None,
    covariates: list[str] | None = None,
    treatment: str = "treated",
    methods: list[str] | None = None,
    caliper_sd: float = 0.2,
    level: float = 0.95,
    seed: int = 2026,
) -> EffectResults:
    """Every estimator on every outcome, side by side (the ``effect_estimates`` table).

    The propensity score (logistic, main effects of ``covariates``) is fitted
    once and shared by IPW, matching and the balance table. Regression
    adjustment uses the same covariates. LOS differences are in days, binary
    outcomes in percentage points; all are effects on the treated.
    """
    outcomes = outcomes or ["acute_los", "total_los", "readmission_30d", "death_30d"]
    covariates = DEFAULT_COVARIATES if covariates is None else covariates
    methods = methods or METHODS
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    t = _binary(cohort[treatment], treatment)
    if t.sum() < 2 or (1 - t).sum() < 2:
        raise ValueError(
            f"need at least two treated and two control rows; have {int(t.sum())} and {int((1 - t).sum())}"
        )
    X = design_matrix(cohort, covariates).to_numpy()
    ps = pd.Series(np.clip(_logistic_fitted(t, X), 1e-10, 1 - 1e-10), index=cohort.index, name="propensity")
    pairs = match_nearest(logit(ps.to_numpy()), t, caliper_sd=caliper_sd, seed=seed)
    n_pairs = int((pairs["control_pos"] >= 0).sum())
    n_unmatched = len(pairs) - n_pairs
    n1, n0 = int(t.sum()), int(len(t) - t.sum())
    weighting: _WeightingTerms | None = None
    rows = []
    for outcome in outcomes:
        if outcome not in cohort.columns:
            raise ValueError(f"outcome '{outcome}' is not a column of the cohort")
        y = cohort[outcome].to_numpy(dtype=float)
        if np.isnan(y).any():
            raise ValueError(f"outcome '{outcome}' has {int(np.isnan(y).sum())} missing values")
        kind = _kind(outcome, y)
        scale = 100.0 if kind == "binary" else 1.0
        unit = "percentage points" if kind == "binary" else "days"
        for method in methods:
            note = ""
            if method == "naive":
                r = naive_difference(y, t, level)
                ratio_measure = "rate ratio" if kind == "count" else "risk ratio"
                nt, nc, note = n1, n0, "unadjusted: biased wherever the treated differ from controls"
            elif method == "regression":
                r = regression_adjusted(y, t, X, kind, level)
                ratio_measure = "rate ratio" if kind == "count" else "odds ratio"
                nt, nc = n1, n0
                note = (
                    "negative binomial GLM" if kind == "count" else "logistic GLM"
                ) + "; difference by marginal standardisation over the treated"
            elif method == "ipw":
                if weighting is None:  # the outcome-free parts, shared by the outcomes
                    weighting = _weighting_terms(t, X, ps.to_numpy(), None)
                r = _ipw_att(y, weighting, level)
                ratio_measure = "rate ratio" if kind == "count" else "risk ratio"
                nt, nc = n1, n0
                ess = float(
                    ps[t == 0].pipe(lambda s: (s / (1 - s))).pipe(lambda w: w.sum() ** 2 / (w**2).sum())
                )
                note = f"ATT weights; effective control sample size {ess:,.0f}"
            else:
                r = matched_difference(y, pairs, level)
                ratio_measure = "rate ratio" if kind == "count" else "risk ratio"
                nt, nc = n_pairs, n_pairs
                note = (
                    f"{n_unmatched:,} treated spells had no control within the caliper"
                    if n_unmatched
                    else "every treated spell matched"
                )
            rows.append(_effect_row(outcome, method, r, nt, nc, unit, ratio_measure, note, kind, scale))
    effects = pd.DataFrame(rows).reindex(columns=EFFECT_COLUMNS)
    balance = balance_table(cohort, covariates, treatment, ps, pairs)
    overlap = overlap_table(ps, t)
    return EffectResults(effects, ps, pairs, balance, overlap)


# ---------------------------------------------------------------------------
# The target-trial design: risk sets, doubly robust estimate (METHODS.md 5)
# ---------------------------------------------------------------------------

#: Covariates of the target-trial propensity score and outcome model, all
#: measured before time zero. The risk set (provider, pathway and hospital
#: day) is always added: weighting and matching happen within risk sets.
TARGET_TRIAL_COVARIATES: list[str] = [
    "age",
    "sex",
    "frailty_score",
    "imd_decile",
    "month",
    "prior_emergency_admissions",
    "prior_bed_days",
]

#: Methods of the target-trial table, the main one (augmented IPW) first after naive.
TARGET_TRIAL_METHODS: list[str] = ["naive", "aipw", "ipw", "matching", "regression"]

#: Columns nested in the risk set, so left out of the model when it is there.
_NESTED_IN_RISK_SET = ("pathway", "provider_code", "landmark_day")

#: A difference in 30-day death (percentage points) above which the report warns.
MORTALITY_WARNING_PP: float = 2.0


def aipw_att(
    y: np.ndarray,
    t: np.ndarray,
    X: np.ndarray,
    level: float = 0.95,
    propensity: np.ndarray | None = None,
    cluster: np.ndarray | None = None,
) -> dict:
    """Doubly robust (augmented IPW) effect on the treated.

    The outcome model m0(X) is a linear regression of ``y`` on ``X`` among the
    controls; the estimate is the treated mean of y - m0(X) minus the
    ATT-weighted (e/(1-e)) control mean of y - m0(X), consistent when either
    the propensity model or the outcome model is right (Robins, Rotnitzky &
    Zhao 1994; the ATT form of Moodie et al 2018, Stat Med 37:3445, and
    Sant'Anna & Zhao 2020, J Econometrics 219:101). The standard error is the
    stacked sandwich of :func:`ipw_att` applied to the residuals, which
    carries the fitted propensity score; the outcome model's own estimation
    adds nothing to first order when the weights balance ``X`` (its
    estimating-equation derivative is the weighted covariate difference).
    The ratio shown is treated mean / (treated mean - effect).
    """
    y, t, X = np.asarray(y, float), np.asarray(t, float), np.asarray(X, float)
    if propensity is None:
        propensity = _logistic_fitted(t, X)
    out = _aipw_att(y, _weighting_terms(t, X, propensity, cluster), _ControlLeastSquares(X[t == 0]), level)
    out["propensity"] = np.clip(np.asarray(propensity, float), 1e-10, 1 - 1e-10)
    return out


class _ControlLeastSquares:
    """Least squares of outcomes on X among the controls, X0 factored once for every outcome.

    With X0 = QR (Householder, reduced), |X0 b - y0|^2 = |R b - Q'y0|^2 +
    |y0 - QQ'y0|^2 and R has the singular values of X0, so ``np.linalg.lstsq``
    on (R, Q'y0) with X0's cutoff (machine epsilon x max(n0, p)) gives the
    solution ``np.linalg.lstsq(X0, y0)`` gives, minimum norm included, for a
    p x p cost per outcome instead of an SVD of the n0 x p matrix.
    """

    def __init__(self, X0: np.ndarray) -> None:
        self.q, self.r = np.linalg.qr(X0)
        self.rcond = np.finfo(float).eps * max(X0.shape)

    def coefficients(self, y0: np.ndarray) -> np.ndarray:
        return np.linalg.lstsq(self.r, y0 @ self.q, rcond=self.rcond)[0]


def _aipw_att(y: np.ndarray, terms: _WeightingTerms, controls: _ControlLeastSquares, level: float) -> dict:
    """:func:`aipw_att` from the outcome-free parts of IPW and the factored control design."""
    t, X = terms.t, terms.X
    resid = y - X @ controls.coefficients(y[t == 0])
    out = _ipw_att(resid, terms, level)
    for k in ("ratio", "ratio_ci_lower", "ratio_ci_upper"):
        out.pop(k, None)
    mu1 = float(y[t == 1].mean())
    if mu1 > 0 and mu1 - out["estimate"] > 0 and mu1 - out["ci_lower"] > 0 and mu1 - out["ci_upper"] > 0:
        out.update(
            {
                "ratio": mu1 / (mu1 - out["estimate"]),
                "ratio_ci_lower": mu1 / (mu1 - out["ci_lower"]),
                "ratio_ci_upper": mu1 / (mu1 - out["ci_upper"]),
            }
        )
    return out


def match_within_risk_sets(
    logit_ps: np.ndarray,
    treated: np.ndarray,
    risk_set: np.ndarray,
    unit: np.ndarray,
    caliper_sd: float = 0.2,
    seed: int = 2026,
) -> pd.DataFrame:
    """1:1 nearest-neighbour matching on the logit propensity score within each risk set.

    One caliper for all risk sets: ``caliper_sd`` times the pooled standard
    deviation of the logit over all rows (Austin 2011). Without replacement
    across risk sets too: a control ``unit`` (spell) used in one risk set is
    not used again (Li, Propert & Rosenbaum 2001). Returns the columns of
    :func:`match_nearest` plus ``pair`` (an id for each matched pair, -1 when
    unmatched) and ``risk_set``.
    """
    lp, t = np.asarray(logit_ps, float), np.asarray(treated, float)
    rs, unit = np.asarray(risk_set).astype(str), np.asarray(unit).astype(str)
    var = [lp[t == g].var(ddof=1) if (t == g).sum() > 1 else 0.0 for g in (1, 0)]
    caliper = caliper_sd * float(np.sqrt((var[0] + var[1]) / 2))
    # the rows of each risk set found once (one sort), used controls marked by unit code: linear, not
    # risk sets x rows, at national size
    unit_code = pd.factorize(unit)[0]
    used = np.zeros(int(unit_code.max()) + 1 if len(unit_code) else 0, dtype=bool)
    order = np.argsort(rs, kind="stable")
    names = sorted(set(rs[t == 1]))
    first = np.searchsorted(rs[order], names, side="left")
    last = np.searchsorted(rs[order], names, side="right")
    parts = []
    for k, name in enumerate(names):
        pos = order[first[k] : last[k]]  # ascending: the stable sort keeps the data's order within a risk set
        pos = pos[(t[pos] == 1) | ~used[unit_code[pos]]]
        t_local = t[pos]
        treated_pos, control_pos, distance = _greedy_pairs(
            lp[pos], np.flatnonzero(t_local == 1), np.flatnonzero(t_local == 0), caliper, seed + k
        )
        matched = control_pos >= 0
        control_pos[matched] = pos[control_pos[matched]]
        used[unit_code[control_pos[matched]]] = True
        parts.append((pos[treated_pos], control_pos, distance, name))
    columns = ["treated_pos", "control_pos", "distance", "caliper", "risk_set"]
    out = (
        pd.DataFrame(
            {
                "treated_pos": np.concatenate([p[0] for p in parts]),
                "control_pos": np.concatenate([p[1] for p in parts]),
                "distance": np.concatenate([p[2] for p in parts]),
                "caliper": caliper,
                "risk_set": pd.Series([p[3] for p in parts]).repeat([len(p[0]) for p in parts]).to_numpy(),
            }
        )
        if parts
        else pd.DataFrame(columns=columns)
    )
    ok = out["control_pos"] >= 0
    out["pair"] = -1
    out.loc[ok, "pair"] = np.arange(int(ok.sum()))
    return out.sort_values("treated_pos", ignore_index=True)


def pair_clustered_difference(y: np.ndarray, pairs: pd.DataFrame, level: float = 0.95) -> dict:
    """Matched effect on the treated with a standard error clustered on the pairs.

    The regression of the outcome on treatment in the matched sample with
    pair-clustered (CR1) standard errors (Abadie & Spiess 2022, J Am Stat
    Assoc 117:1009, for matching without replacement). For 1:1 pairs the
    estimate is the mean within-pair difference and the variance
    n/(n-1) x (the variance of the mean of paired differences), i.e. the
    paired-difference standard error of :func:`matched_difference` (Austin
    2011) up to the small-sample factor.
    """
    out = matched_difference(y, pairs, level)
    ok = pairs[pairs["control_pos"] >= 0]
    n = len(ok)
    if n > 1:
        y = np.asarray(y, float)
        d = y[ok["treated_pos"].to_numpy()] - y[ok["control_pos"].to_numpy()]
        se = float(np.sqrt(np.sum((d - d.mean()) ** 2) / n**2 * n / (n - 1)))
        ratio = {k: out[k] for k in ("ratio", "ratio_ci_lower", "ratio_ci_upper") if k in out}
        out = _row(float(d.mean()), se, level)
        out.update(ratio)
    return out


def full_rank_columns(X: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Positions of a set of linearly independent columns of ``X`` (QR with column pivoting).

    Dummy columns can be collinear within risk sets (a month in which only one
    provider's ward ran) or all zero in a subset; the models need full rank.
    """
    X = np.asarray(X, float)
    if X.shape[1] == 0:
        return np.arange(0)
    # pivoted QR (Golub & Van Loan 2013, Matrix Computations, section 5.4.2) of the p x p R of X = QR:
    # Q has orthonormal columns, so R has X's column norms and projections and gives X's rank and pivots
    _, R, piv = qr(np.linalg.qr(X, mode="r"), pivoting=True)
    d = np.abs(np.diag(R))
    rank = int((d > tol * max(d[0], 1.0)).sum())
    return np.sort(piv[:rank])


def _tt_design(rows: pd.DataFrame, covariates: list[str]) -> tuple[list[str], pd.DataFrame]:
    cov = [c for c in covariates if c not in _NESTED_IN_RISK_SET and c != "risk_set"] + ["risk_set"]
    X = design_matrix(rows, cov)
    return cov, X.iloc[:, full_rank_columns(X.to_numpy())]


class _SharedRows:
    """The rows that have an outcome, and what every outcome on them shares, each made once when first used.

    ``X`` keeps a full-rank set of columns of those rows; ``weighting`` holds
    the outcome-free parts of the IPW sandwich (:class:`_WeightingTerms`) and
    ``controls`` the factored control design of AIPW's outcome model.
    """

    def __init__(
        self, t: np.ndarray, X: np.ndarray, propensity: np.ndarray, cluster: np.ndarray, have: np.ndarray
    ) -> None:
        self.t, self.e, self.cluster = t[have], propensity[have], cluster[have]
        self.X = X if have.all() else X[have]
        if not have.all():
            self.X = self.X[:, full_rank_columns(self.X)]

    @cached_property
    def weighting(self) -> _WeightingTerms:
        return _weighting_terms(self.t, self.X, self.e, self.cluster)

    @cached_property
    def controls(self) -> _ControlLeastSquares:
        return _ControlLeastSquares(self.X[self.t == 0])


def estimate_target_trial(
    trial,
    outcomes: list[str] | None = None,
    covariates: list[str] | None = None,
    methods: list[str] | None = None,
    caliper_sd: float = 0.2,
    level: float = 0.95,
    seed: int = 2026,
) -> EffectResults:
    """Every estimator of the target-trial design, side by side (``effect_estimates``).

    ``trial`` is a :class:`helpers.cohort.TargetTrial`. ``naive`` compares
    every treated spell with every eligible untreated spell, clocks started at
    admission (``trial.all_spells``): no time zero, no adjustment. The others
    use the risk-set rows (``trial.rows``): the propensity score is a
    logistic model of being stepped down at the risk set's time zero on the
    ``covariates`` plus the risk set (provider, pathway, hospital day), so
    weighting compares like with like within risk sets; ``aipw``
    (:func:`aipw_att`, the main estimate) and ``ipw`` (:func:`ipw_att`) have
    standard errors clustered on the spell (a control can sit in several risk
    sets); ``matching`` pairs within risk sets (:func:`match_within_risk_sets`)
    with pair-clustered standard errors; ``regression`` is the outcome model
    of :func:`regression_adjusted`, shown as a model-dependent comparison only.
    Risk sets with no control (or no treated row) are left out and said so in
    the note. An outcome with missing values (90-day readmission without 90
    days of follow-up) uses the rows that have it.
    """
    outcomes = outcomes or ["acute_los", "total_los", "readmission_30d", "death_30d"]
    covariates = TARGET_TRIAL_COVARIATES if covariates is None else covariates
    methods = methods or TARGET_TRIAL_METHODS
    unknown = set(methods) - set(TARGET_TRIAL_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {TARGET_TRIAL_METHODS}")
    rows = trial.rows
    both = rows.groupby("risk_set")["treated"].agg(["min", "max"])
    usable = both.index[(both["min"] == 0) & (both["max"] == 1)]
    dropped = rows[~rows["risk_set"].isin(usable)]
    n_dropped_treated = int(dropped["treated"].sum())
    rows = rows[rows["risk_set"].isin(usable)].reset_index(drop=True)
    t = _binary(rows["treated"], "treated")
    if t.sum() < 2 or (1 - t).sum() < 2:
        raise ValueError(
            f"need at least two treated and two control rows in risk sets; have {int(t.sum())} "
            f"and {int((1 - t).sum())}"
        )
    cov, Xdf = _tt_design(rows, covariates)
    X = Xdf.to_numpy()
    ps = pd.Series(np.clip(_logistic_fitted(t, X), 1e-10, 1 - 1e-10), index=rows.index, name="propensity")
    # spells as integer codes in the order of their labels: the same clusters, in the same order, grouped fast
    cluster = pd.factorize(rows["spell_id"].astype(str), sort=True)[0]
    pairs = match_within_risk_sets(
        logit(ps.to_numpy()), t, rows["risk_set"].to_numpy(), cluster, caliper_sd=caliper_sd, seed=seed
    )
    n_pairs = int((pairs["control_pos"] >= 0).sum())
    n_unmatched = len(pairs) - n_pairs
    w0 = ps[t == 0] / (1 - ps[t == 0])
    ess = float(w0.sum() ** 2 / (w0**2).sum())
    left_out = (
        f"; {n_dropped_treated:,} treated rows in risk sets without a control left out"
        if n_dropped_treated
        else ""
    )
    naive_rows = trial.all_spells
    shared: dict[bytes, _SharedRows] = {}  # the outcome-free parts, per set of rows with the outcome
    rows_out = []
    for outcome in outcomes:
        if outcome not in rows.columns:
            raise ValueError(f"outcome '{outcome}' is not a column of the risk-set rows")
        y_all = rows[outcome].to_numpy(dtype=float)
        have = ~np.isnan(y_all)
        kind = _kind(outcome, y_all[have])
        scale = 100.0 if kind == "binary" else 1.0
        unit = "percentage points" if kind == "binary" else "days"
        missing_note = (
            f"; {int((~have).sum()):,} rows without the follow-up left out" if (~have).any() else ""
        )
        key = have.tobytes()
        if key not in shared:
            shared[key] = _SharedRows(t, X, ps.to_numpy(), cluster, have)
        rows_with = shared[key]
        y, tt, Xo = y_all[have], rows_with.t, rows_with.X
        for method in methods:
            if method == "naive":
                yn = naive_rows[outcome].to_numpy(dtype=float)
                okn = ~np.isnan(yn)
                tn = naive_rows["treated"].to_numpy(dtype=float)[okn]
                r = naive_difference(yn[okn], tn, level)
                ratio_measure = "rate ratio" if kind == "count" else "risk ratio"
                nt, nc = int(tn.sum()), int(len(tn) - tn.sum())
                note = (
                    "all eligible spells, clocks started at admission, no adjustment: no common time zero, "
                    "so biased"
                )
            elif method == "aipw":
                r = _aipw_att(y, rows_with.weighting, rows_with.controls, level)
                ratio_measure = "rate ratio" if kind == "count" else "risk ratio"
                nt, nc = int(tt.sum()), int(len(tt) - tt.sum())
                note = (
                    f"main estimate: doubly robust, within risk sets; effective control sample size "
                    f"{ess:,.0f}{left_out}{missing_note}"
                )
            elif method == "ipw":
                r = _ipw_att(y, rows_with.weighting, level)
                ratio_measure = "rate ratio" if kind == "count" else "risk ratio"
                nt, nc = int(tt.sum()), int(len(tt) - tt.sum())
                note = f"ATT weights within risk sets; effective control sample size {ess:,.0f}{left_out}{missing_note}"
            elif method == "matching":
                ok = pairs[pairs["control_pos"] >= 0]
                ok = ok[have[ok["treated_pos"].to_numpy()] & have[ok["control_pos"].to_numpy()]]
                r = pair_clustered_difference(np.nan_to_num(y_all), ok, level)
                ratio_measure = "rate ratio" if kind == "count" else "risk ratio"
                nt, nc = len(ok), len(ok)
                note = (
                    "pairs within risk sets, pair-clustered standard errors; "
                    + (
                        f"{n_unmatched:,} treated rows had no control within the caliper"
                        if n_unmatched
                        else "every treated row matched"
                    )
                    + left_out
                )
            else:
                r = regression_adjusted(y, tt, Xo, kind, level)
                ratio_measure = "rate ratio" if kind == "count" else "odds ratio"
                nt, nc = int(tt.sum()), int(len(tt) - tt.sum())
                note = (
                    "model-dependent comparison, not an estimate to report: "
                    + ("negative binomial" if kind == "count" else "logistic")
                    + " model; biased when its form is wrong (an additive effect in days fitted as a ratio)"
                )
            rows_out.append(_effect_row(outcome, method, r, nt, nc, unit, ratio_measure, note, kind, scale))
    effects = pd.DataFrame(rows_out).reindex(columns=EFFECT_COLUMNS)
    bal_cov = [c for c in cov if c != "risk_set"]
    balance = balance_table(rows, bal_cov, "treated", ps, pairs)
    overlap = overlap_table(ps, t)
    return EffectResults(effects, ps, pairs, balance, overlap)


def effective_sample_size(treated: np.ndarray, propensity: np.ndarray) -> float:
    """Kish's effective sample size of the ATT-weighted controls: (sum w)^2 / sum w^2."""
    t, e = np.asarray(treated, float), np.asarray(propensity, float)
    w = (e / (1 - e))[t == 0]
    return float(w.sum() ** 2 / (w**2).sum()) if len(w) else float("nan")


def mortality_warning(
    effects: pd.DataFrame, method: str = "aipw", threshold_pp: float = MORTALITY_WARNING_PP
) -> str:
    """A warning when adjusted 30-day death differs greatly between the arms, else ''.

    A virtual ward is not expected to change mortality much (Leong et al
    2021); a large adjusted difference whose interval excludes zero more
    likely means residual confounding (clinicians do not step down the dying)
    or deaths missed outside hospital than an effect of the ward.
    """
    row = effects[(effects["outcome"] == "death_30d") & (effects["method"] == method)]
    if row.empty:
        return ""
    r = row.iloc[0]
    if abs(r["estimate"]) > threshold_pp and not (r["ci_lower"] <= 0 <= r["ci_upper"]):
        return (
            f"Warning: adjusted 30-day death differs by {r['estimate']:+.1f} percentage points (95% CI "
            f"{r['ci_lower']:+.1f} to {r['ci_upper']:+.1f}). A ward is not expected to change mortality "
            "this much: suspect residual confounding (who was judged fit to go home) or deaths outside "
            "hospital missing from the data, and distrust the other estimates too."
        )
    return ""


# ---------------------------------------------------------------------------
# Balance and overlap
# ---------------------------------------------------------------------------


def _wmean_var(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    m = float(np.sum(w * x) / np.sum(w))
    v1, v2 = np.sum(w), np.sum(w**2)
    var = float(np.sum(w * (x - m) ** 2) * v1 / (v1**2 - v2)) if v1**2 > v2 else 0.0
    return m, var


def standardised_mean_difference(
    x: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None, binary: bool | None = None
) -> float:
    """Standardised mean difference, treated minus control (Austin 2009, Stat Med 28:3083).

    Continuous: (m1 - m0) / sqrt((s1^2 + s0^2) / 2). Binary:
    (p1 - p0) / sqrt((p1(1-p1) + p0(1-p0)) / 2). With ``weights`` the means and
    variances are weighted (Austin & Stuart 2015, Stat Med 34:3661), the
    weighted variance with the reliability-weights correction.
    """
    x, t = np.asarray(x, float), np.asarray(treated, float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    if binary is None:
        binary = bool(np.isin(x, [0.0, 1.0]).all())
    m1, v1 = _wmean_var(x[t == 1], w[t == 1])
    m0, v0 = _wmean_var(x[t == 0], w[t == 0])
    if binary:
        v1, v0 = m1 * (1 - m1), m0 * (1 - m0)
    denom = np.sqrt((v1 + v0) / 2)
    return float((m1 - m0) / denom) if denom > 0 else 0.0


def variance_ratio(x: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Variance of a continuous covariate among the treated over that among controls (weighted if given).

    Austin 2009 (Stat Med 28:3083) suggests 0.5 to 2 as acceptable.
    """
    x, t = np.asarray(x, float), np.asarray(treated, float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    _, v1 = _wmean_var(x[t == 1], w[t == 1])
    _, v0 = _wmean_var(x[t == 0], w[t == 0])
    return float(v1 / v0) if v0 > 0 else float("nan")


def balance_table(
    cohort: pd.DataFrame,
    covariates: list[str],
    treatment: str,
    propensity: pd.Series,
    pairs: pd.DataFrame,
    threshold: float = SMD_THRESHOLD,
) -> pd.DataFrame:
    """The ``balance`` table: SMD of every covariate before and after adjustment.

    Columns: covariate (a categorical covariate gives one row per level, as
    ``name=level``, including its reference level), smd_before, smd_after_ipw,
    smd_after_matching, and ``imbalanced`` (|SMD| above ``threshold`` after
    either adjustment); vr_before, vr_after_ipw, vr_after_matching (variance
    ratios, continuous covariates only; 0.5 to 2 is acceptable). Warns when
    any row is imbalanced (METHODS.md 5).
    """
    t = _binary(cohort[treatment], treatment)
    w = att_weights(t, propensity)
    ok = pairs[pairs["control_pos"] >= 0]
    idx = np.concatenate([ok["treated_pos"].to_numpy(), ok["control_pos"].to_numpy()])
    tm = np.concatenate([np.ones(len(ok)), np.zeros(len(ok))])
    rows = []
    for col in covariates:
        s = cohort[col]
        categorical = _is_categorical(s)
        if categorical:
            codes, levels = pd.factorize(s.astype(str))  # one pass over the text, then integer comparisons
            cols = {f"{col}={lev}": (codes == levels.get_loc(lev)).astype(float) for lev in sorted(levels)}
        else:
            cols = {col: s.to_numpy(float)}
        for name, x in cols.items():
            matched = len(ok) > 1
            binary = categorical or bool(np.isin(x, [0.0, 1.0]).all())  # as the function would find, once
            rows.append(
                {
                    "covariate": name,
                    "smd_before": standardised_mean_difference(x, t, binary=binary),
                    "smd_after_ipw": standardised_mean_difference(x, t, w, binary=binary),
                    "smd_after_matching": standardised_mean_difference(x[idx], tm) if matched else np.nan,
                    "vr_before": np.nan if categorical else variance_ratio(x, t),
                    "vr_after_ipw": np.nan if categorical else variance_ratio(x, t, w),
                    "vr_after_matching": np.nan if categorical or not matched else variance_ratio(x[idx], tm),
                }
            )
    out = pd.DataFrame(rows)
    out["imbalanced"] = (out[["smd_after_ipw", "smd_after_matching"]].abs() > threshold).any(axis=1)
    if out["imbalanced"].any():
        bad = out.loc[out["imbalanced"], "covariate"].tolist()
        warnings.warn(
            f"covariates with |SMD| above {threshold} after adjustment: {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}; the adjusted estimates may be biased",
            stacklevel=2,
        )
    return out


def overlap_table(propensity: pd.Series | np.ndarray, treated: np.ndarray, bins: int = 20) -> pd.DataFrame:
    """Binned propensity scores by group, for the overlap plot.

    Columns: bin_lower, bin_upper, group (``treated`` / ``control``), count,
    share (of the group). Equal-width bins on 0-1.
    """
    e, t = np.asarray(propensity, float), np.asarray(treated, float)
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for g, mask in (("treated", t == 1), ("control", t == 0)):
        counts, _ = np.histogram(e[mask], bins=edges)
        for lo, hi, c in zip(edges[:-1], edges[1:], counts):
            rows.append(
                {
                    "bin_lower": lo,
                    "bin_upper": hi,
                    "group": g,
                    "count": int(c),
                    "share": c / max(mask.sum(), 1),
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# E-value (VanderWeele & Ding 2017)
# ---------------------------------------------------------------------------


def e_value_rr(rr: float) -> float:
    """E-value of a risk ratio: RR + sqrt(RR (RR - 1)), using 1/RR when RR < 1.

    VanderWeele & Ding 2017 (Ann Intern Med 167:268), equation in the text;
    their worked example RR = 3.9 gives 7.26.
    """
    if rr <= 0:
        raise ValueError("a risk ratio must be positive")
    r = rr if rr >= 1 else 1 / rr
    return float(r + np.sqrt(r * (r - 1)))


def e_value(
    estimate: float,
    ci_lower: float,
    ci_upper: float,
    measure: str = "rr",
    sd: float | None = None,
    se: float | None = None,
) -> pd.DataFrame:
    """E-value for a point estimate and for the interval limit nearest the null.

    ``measure``: ``rr`` (risk or rate ratio, used as given), ``or_rare`` (an
    odds ratio with an outcome under 15%, taken as a risk ratio), ``or_common``
    (sqrt(OR) approximates the risk ratio) or ``difference`` (a difference in
    means, converted with the standardised effect d = difference / ``sd``:
    RR = exp(0.91 d), interval exp(0.91 d -/+ 1.78 se_d) with se_d = se / sd).
    These are the conversions of VanderWeele & Ding 2017, table, following
    Chinn 2000 (Stat Med 19:3127). The E-value of the limit is 1 when the
    interval includes the null. Columns: measure, rr, rr_ci_lower,
    rr_ci_upper, e_value, e_value_ci.
    """
    if measure == "rr":
        rr, lo, hi = estimate, ci_lower, ci_upper
    elif measure == "or_rare":
        rr, lo, hi = estimate, ci_lower, ci_upper
    elif measure == "or_common":
        rr, lo, hi = np.sqrt(estimate), np.sqrt(ci_lower), np.sqrt(ci_upper)
    elif measure == "difference":
        if not sd or sd <= 0:
            raise ValueError("a difference in means needs the outcome's standard deviation `sd`")
        d = estimate / sd
        se_d = (se if se is not None else (ci_upper - ci_lower) / (2 * 1.959964)) / sd
        rr, lo, hi = np.exp(0.91 * d), np.exp(0.91 * d - 1.78 * se_d), np.exp(0.91 * d + 1.78 * se_d)
    else:
        raise ValueError("measure must be one of rr, or_rare, or_common, difference")
    if lo <= 1 <= hi:
        e_ci = 1.0
    else:
        e_ci = e_value_rr(lo if rr > 1 else hi)
    return pd.DataFrame(
        [
            {
                "measure": measure,
                "rr": float(rr),
                "rr_ci_lower": float(lo),
                "rr_ci_upper": float(hi),
                "e_value": e_value_rr(float(rr)),
                "e_value_ci": e_ci,
            }
        ]
    )


# ---------------------------------------------------------------------------
# Provider level: interrupted time series and difference-in-differences
# ---------------------------------------------------------------------------


def monthly_bed_days(
    spells: pd.DataFrame,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    by: str = "provider_code",
) -> pd.DataFrame:
    """Occupied acute bed days per calendar month and ``by`` group.

    A spell occupies one bed day for each night from admission to the day
    before discharge (so a same-day spell occupies none, as LOS is 0); nights
    are split across month boundaries. Months run from ``start`` to ``end``
    (defaults: the first admission month and the last discharge month); months
    with no nights are kept with 0. Columns: ``by``, month (month start),
    bed_days, admissions (spells admitted that month).
    """
    adm = pd.to_datetime(spells["admission_date"]).to_numpy("datetime64[D]")
    dis = pd.to_datetime(spells["discharge_date"]).to_numpy("datetime64[D]")
    first = pd.Timestamp(start) if start is not None else pd.Timestamp(adm.min())
    last = pd.Timestamp(end) if end is not None else pd.Timestamp(dis.max())
    months = pd.period_range(first.to_period("M"), last.to_period("M"), freq="M")
    groups = spells[by].astype(str).to_numpy()
    keys = sorted(set(groups))
    adm_m = pd.to_datetime(spells["admission_date"]).dt.to_period("M")
    out = []
    for m in months:
        ms = np.datetime64(m.start_time.date(), "D")
        me = np.datetime64((m.end_time + pd.Timedelta(days=1)).date(), "D")  # exclusive
        nights = (np.minimum(dis, me) - np.maximum(adm, ms)).astype("int64")
        nights = np.clip(nights, 0, None)
        bd = pd.Series(nights).groupby(groups).sum()
        ad = pd.Series((adm_m == m).to_numpy().astype(int)).groupby(groups).sum()
        for k in keys:
            out.append(
                {by: k, "month": m.start_time, "bed_days": int(bd.get(k, 0)), "admissions": int(ad.get(k, 0))}
            )
    return pd.DataFrame(out)


def monthly_bed_days_sql(
    backend,
    source: str,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    by: str = "provider_code",
) -> pd.DataFrame:
    """:func:`monthly_bed_days` counted by an engine (:mod:`helpers.engine`): the same table.

    ``source``: a table or query with ``by``, ``adm`` and ``dis`` (admission
    and discharge dates as days since 1970-01-01), such as the pathway spells
    of :func:`helpers.cohort.prepare_virtual_ward`. Each spell is joined to the
    months it overlaps; only the sums per group and month come back.
    """
    epoch = pd.Timestamp("1970-01-01")
    spells = f"(SELECT CAST({by} AS VARCHAR) AS g, adm, dis FROM ({source}) AS s0)"
    found = backend.query(f"SELECT MIN(adm) AS first, MAX(dis) AS last, COUNT(*) AS n FROM {spells} AS s")
    if not int(found.iloc[0]["n"] or 0):
        return pd.DataFrame(columns=[by, "month", "bed_days", "admissions"])
    first = (
        pd.Timestamp(start) if start is not None else epoch + pd.Timedelta(days=int(found.iloc[0]["first"]))
    )
    last = pd.Timestamp(end) if end is not None else epoch + pd.Timedelta(days=int(found.iloc[0]["last"]))
    months = pd.period_range(first.to_period("M"), last.to_period("M"), freq="M")
    bounds = [
        (k, (m.start_time - epoch).days, (m.start_time - epoch).days + m.days_in_month)
        for k, m in enumerate(months)
    ]
    values = ", ".join(f"({k}, {ms}, {me})" for k, ms, me in bounds)
    # a month's nights: from the later of admission and month start to the earlier of discharge and month end
    sums = backend.query(
        f"SELECT s.g, m.k, SUM(GREATEST(LEAST(s.dis, m.me) - GREATEST(s.adm, m.ms), 0)) AS bed_days, "
        f"SUM(CASE WHEN s.adm >= m.ms THEN 1 ELSE 0 END) AS admissions "
        f"FROM {spells} AS s JOIN (VALUES {values}) AS m(k, ms, me) "
        f"ON s.adm < m.me AND GREATEST(s.dis, s.adm) >= m.ms GROUP BY s.g, m.k"
    )
    groups = backend.query(f"SELECT DISTINCT g FROM {spells} AS s")
    got = {(str(g), int(k)): (int(b), int(a)) for g, k, b, a in sums.itertuples(index=False)}
    keys = sorted(str(g) for g in groups["g"])
    out = []
    for k, m in enumerate(months):
        for g in keys:
            bd, ad = got.get((g, k), (0, 0))
            out.append({by: g, "month": m.start_time, "bed_days": bd, "admissions": ad})
    return pd.DataFrame(out)


def _newey_west_lags(n: int) -> int:
    """Default Newey-West truncation lag: floor(4 (n/100)^(2/9)) (Newey & West 1994)."""
    return int(np.floor(4 * (n / 100) ** (2 / 9)))


def hide_small_counts(table: pd.DataFrame, columns: list[str], threshold: int | None = None) -> pd.DataFrame:
    """A copy of ``table`` with each of ``columns`` set to NaN where its value is 1 to ``threshold``.

    For figures of monthly counts (bed days, admissions): a figure draws a
    hidden value as a gap, as the SPC charts do
    (:func:`helpers.spc.suppress_small_counts`; HES analysis guide, counts 1
    to 7). Zero and larger counts stay. ``threshold`` defaults to
    :data:`helpers.disclosure.DEFAULT_THRESHOLD`.
    """
    threshold = disclosure.DEFAULT_THRESHOLD if threshold is None else threshold
    out = table.copy()
    for col in columns:
        values = pd.to_numeric(out[col], errors="coerce").astype(float)
        out[col] = values.mask((values >= 1) & (values <= threshold))
    return out


def interrupted_time_series(
    series: pd.DataFrame,
    start: str | pd.Timestamp,
    value: str = "bed_days",
    seasonality: bool = True,
    maxlags: int | None = None,
    level: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segmented regression of one monthly series around an intervention.

    value_t = b0 + b1 time + b2 post + b3 time_since_start + seasonal terms,
    where post is 1 from the month containing ``start`` (Wagner et al 2002,
    J Clin Pharm Ther 27:299; Bernal, Cummins & Gasparrini 2017). Seasonality
    is one pair of Fourier terms (sin and cos of 2 pi month / 12) plus a second
    harmonic when there are at least 24 months, as Bernal et al suggest.
    Intervals use Student's t with n - k degrees of freedom and, for each
    term, the larger of the ordinary least squares standard error and the
    one from a regression with AR(1) errors (Prais-Winsten, by statsmodels'
    GLSAR; Bernal et al recommend allowing for autocorrelation). Newey-West
    standard errors, used before, held the truth in only 70-80% of
    simulated 24- to 36-month series: too few months for a HAC estimate. In
    simulated 24-month series (tests) this choice held the truth in 95% of
    series with independent errors and 97-98% with AR(1) errors of 0.3 and
    0.6 (conservative). ``maxlags`` is kept for compatibility and not used.

    Returns (coefficients, fitted): coefficients has term (``baseline_slope``,
    ``level_change``, ``slope_change``), estimate, ci_lower, ci_upper,
    p_value, plus ``effect_last_month`` (level + slope change at the last
    month, i.e. fitted minus counterfactual); fitted has month, observed,
    fitted and counterfactual (the pre-period line carried forward).
    """
    s = series.sort_values("month").reset_index(drop=True)
    month = pd.to_datetime(s["month"])
    start_m = pd.Timestamp(start).to_period("M").start_time
    n = len(s)
    time = np.arange(n, dtype=float)
    post = (month >= start_m).to_numpy(float)
    if post.sum() < 3 or (1 - post).sum() < 3:
        raise ValueError(
            f"need at least 3 months before and after {start_m:%b %Y}; have "
            f"{int((1 - post).sum())} and {int(post.sum())}"
        )
    k0 = int(np.argmax(post))
    since = np.where(post == 1, time - k0, 0.0)
    cols = {"const": np.ones(n), "time": time, "post": post, "time_since_start": since}
    if seasonality:
        mo = month.dt.month.to_numpy(float)
        harmonics = 2 if n >= 24 else 1
        for h in range(1, harmonics + 1):
            cols[f"sin{h}"] = np.sin(2 * np.pi * h * mo / 12)
            cols[f"cos{h}"] = np.cos(2 * np.pi * h * mo / 12)
    X = pd.DataFrame(cols)
    y = s[value].to_numpy(float)
    fit = sm.OLS(y, X).fit()
    b, V_ols = fit.params, fit.cov_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ar1 = sm.GLSAR(y, X.to_numpy(), rho=1).iterative_fit(maxiter=20)
    V_ar1 = pd.DataFrame(np.asarray(ar1.cov_params()), index=X.columns, columns=X.columns)
    df = max(n - X.shape[1] - 1, 1)
    rows = []
    contrasts = {}
    for term, name in (
        ("time", "baseline_slope"),
        ("post", "level_change"),
        ("time_since_start", "slope_change"),
    ):
        g = pd.Series(0.0, index=X.columns)
        g[term] = 1.0
        contrasts[name] = g
    g = pd.Series(0.0, index=X.columns)
    g["post"], g["time_since_start"] = 1.0, since[-1]
    contrasts["effect_last_month"] = g
    for name, g in contrasts.items():
        se = float(np.sqrt(max(g @ V_ols @ g, g @ V_ar1 @ g)))
        rows.append({"term": name, **_row_t(float(g @ b), se, level, df)})
    coef = pd.DataFrame(rows).drop(columns="se")
    coef["ar1_rho"] = float(np.atleast_1d(ar1.model.rho)[0])
    coef["df"] = df
    Xc = X.copy()
    Xc["post"], Xc["time_since_start"] = 0.0, 0.0
    fitted = pd.DataFrame(
        {
            "month": month,
            "observed": y,
            "fitted": fit.fittedvalues.to_numpy(),
            "counterfactual": Xc.to_numpy() @ b.to_numpy(),
            "post": post.astype(bool),
        }
    )
    return coef, fitted


def difference_in_differences(
    panel: pd.DataFrame,
    treated_unit: str,
    start: str | pd.Timestamp,
    comparators: list[str],
    unit: str = "provider_code",
    value: str = "bed_days",
    maxlags: int | None = None,
    level: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Difference-in-differences of one treated provider against comparators.

    Works on the monthly gap d_t = value(treated) - mean value(comparators):
    regressing d_t on a constant and a post-period indicator gives the
    classical 2x2 estimate (mean gap after minus mean gap before), and
    Newey-West standard errors on the gap series allow for serial
    correlation, the failing Bertrand, Duflo & Mullainathan (2004, QJE
    119:249) found in naive panel DiD. Comparing one provider at a time with
    never-treated providers avoids the "forbidden comparisons" of two-way fixed
    effects with staggered starts (Goodman-Bacon 2021, J Econometrics 225:254).
    Common seasonality cancels in the gap. The pre-period trend of the gap is
    reported as a check of parallel trends.

    Returns (estimates, series): estimates has term (``did``,
    ``pre_trend_per_month``), estimate, ci_lower, ci_upper, p_value,
    n_comparators; series has month, treated, comparators (mean), gap, post.
    """
    if not comparators:
        raise ValueError("difference-in-differences needs at least one comparator provider")
    p = panel.copy()
    p[unit] = p[unit].astype(str)
    wide = p.pivot_table(index="month", columns=unit, values=value, aggfunc="sum").sort_index()
    missing = [u for u in [treated_unit, *comparators] if u not in wide.columns]
    if missing:
        raise ValueError(f"providers not in the panel: {missing}")
    s = pd.DataFrame(
        {
            "month": pd.to_datetime(wide.index),
            "treated": wide[treated_unit].to_numpy(float),
            "comparators": wide[comparators].mean(axis=1).to_numpy(float),
        }
    )
    s["gap"] = s["treated"] - s["comparators"]
    start_m = pd.Timestamp(start).to_period("M").start_time
    s["post"] = s["month"] >= start_m
    post = s["post"].to_numpy(float)
    if post.sum() < 3 or (1 - post).sum() < 3:
        raise ValueError(f"need at least 3 months before and after {start_m:%b %Y}")
    lags = _newey_west_lags(len(s)) if maxlags is None else maxlags
    fit = sm.OLS(s["gap"].to_numpy(), np.column_stack([np.ones(len(s)), post])).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags}
    )
    pre = s[~s["post"]]
    pre_fit = sm.OLS(pre["gap"].to_numpy(), np.column_stack([np.ones(len(pre)), np.arange(len(pre))])).fit(
        cov_type="HAC", cov_kwds={"maxlags": min(lags, max(len(pre) // 4, 0))}
    )
    rows = [
        {"term": "did", **_row(float(fit.params[1]), float(fit.bse[1]), level)},
        {"term": "pre_trend_per_month", **_row(float(pre_fit.params[1]), float(pre_fit.bse[1]), level)},
    ]
    est = pd.DataFrame(rows).drop(columns="se")
    est["n_comparators"] = len(comparators)
    est["newey_west_lags"] = lags
    return est, s


# ---------------------------------------------------------------------------
# Sentences that state a finding (figure titles and notebook text)
# ---------------------------------------------------------------------------

OUTCOME_WORDS: dict[str, str] = {
    "acute_los": "acute stay",
    "readmission_90d": "90-day readmission",
    "readmission_or_death_30d": "30-day readmission or death",
    "days_alive_out_of_hospital_30d": "days alive and out of hospital in 30",
    "total_los": "total stay (acute plus virtual ward)",
    "readmission_30d": "30-day readmission",
    "readmission_30d_from_acute_discharge": "30-day readmission (from acute discharge)",
    "death_30d": "30-day death",
}


def _effect_phrase(row: pd.Series) -> str:
    est, unit = float(row["estimate"]), str(row["unit"])
    ci = f"95% CI {row['ci_lower']:+.1f} to {row['ci_upper']:+.1f}"
    if unit == "days":
        size = f"{abs(est):.1f} days {'shorter' if est < 0 else 'longer'}"
    else:
        size = f"{abs(est):.1f} percentage points {'lower' if est < 0 else 'higher'}"
    return f"{size} ({ci})"


def describe_effect(effects: pd.DataFrame, outcome: str, main: str = "ipw") -> str:
    """One sentence: the main adjusted estimate against the naive one, for ``outcome``."""
    e = effects[effects["outcome"] == outcome].set_index("method")
    if main not in e.index:
        raise ValueError(f"no {main!r} row for {outcome!r}")
    words = OUTCOME_WORDS.get(outcome, outcome)
    label = main.upper() if main in ("ipw", "aipw") else main
    text = f"Adjusted ({label}): {words} {_effect_phrase(e.loc[main])}"
    if "naive" in e.index:
        text += f"; the naive comparison says {_effect_phrase(e.loc['naive'])}"
    return text


def describe_balance(balance: pd.DataFrame, threshold: float = SMD_THRESHOLD) -> str:
    """One sentence on covariate balance before and after adjustment."""
    worst = balance["smd_before"].abs().max()
    after = balance[["smd_after_ipw", "smd_after_matching"]].abs().max()
    n_bad = int(balance["imbalanced"].sum()) if "imbalanced" in balance else 0
    verdict = "every covariate is within" if n_bad == 0 else f"{n_bad} covariate levels remain above"
    return (
        f"Largest imbalance {worst:.2f} SD before adjustment, {after['smd_after_ipw']:.2f} after "
        f"weighting and {after['smd_after_matching']:.2f} after matching: {verdict} {threshold}"
    )


def describe_its(coefficients: pd.DataFrame, value_label: str = "bed days a month") -> str:
    """One sentence on the interrupted time series: level change and effect by the last month."""
    c = coefficients.set_index("term")
    lev, last = c.loc["level_change"], c.loc["effect_last_month"]
    return (
        f"Level change {lev['estimate']:+,.0f} {value_label} (95% CI {lev['ci_lower']:+,.0f} to "
        f"{lev['ci_upper']:+,.0f}); by the last month {last['estimate']:+,.0f} "
        f"({last['ci_lower']:+,.0f} to {last['ci_upper']:+,.0f}) against the pre-period trend"
    )


def describe_did(estimates: pd.DataFrame, value_label: str = "bed days a month") -> str:
    """One sentence on the difference-in-differences estimate and the pre-trend check."""
    e = estimates.set_index("term")
    d, pre = e.loc["did"], e.loc["pre_trend_per_month"]
    trend = "no clear" if pre["ci_lower"] <= 0 <= pre["ci_upper"] else "a"
    return (
        f"Difference-in-differences {d['estimate']:+,.0f} {value_label} (95% CI {d['ci_lower']:+,.0f} to "
        f"{d['ci_upper']:+,.0f}) against {int(d['n_comparators'])} providers without a virtual ward; "
        f"{trend} pre-period trend in the gap"
    )


def before_after(
    series: pd.DataFrame, start: str | pd.Timestamp, months: int = 3, value: str = "bed_days"
) -> pd.DataFrame:
    """The simple before-and-after comparison that boards are often shown.

    Mean of ``value`` in the ``months`` months from the start month minus the
    mean in the ``months`` months before it. No trend, no seasonality, no
    comparator: it confuses the ward's effect with seasonal swings and with
    regression to the mean (a ward launched after an unusually bad spell looks
    good as things return to normal anyway; Barnett, van der Pols & Dobson
    2005, Int J Epidemiol 34:215). Columns: months, before_mean, after_mean,
    difference.
    """
    s = series.sort_values("month").reset_index(drop=True)
    month = pd.to_datetime(s["month"])
    start_m = pd.Timestamp(start).to_period("M").start_time
    k0 = int(np.argmax((month >= start_m).to_numpy()))
    if k0 < months or k0 + months > len(s):
        raise ValueError(f"need {months} months either side of {start_m:%b %Y}")
    before = s[value].iloc[k0 - months : k0].astype(float).mean()
    after = s[value].iloc[k0 : k0 + months].astype(float).mean()
    return pd.DataFrame(
        [{"months": months, "before_mean": before, "after_mean": after, "difference": after - before}]
    )


def e_value_for_effect(
    effects: pd.DataFrame,
    cohort: pd.DataFrame,
    outcome: str = "acute_los",
    method: str = "ipw",
    treatment: str = "treated",
) -> pd.DataFrame:
    """E-value of one row of ``effect_estimates``.

    A difference in days is converted as VanderWeele & Ding (2017) give for a
    difference in means: d = difference / SD of the outcome among the
    controls, RR = exp(0.91 d) (Chinn 2000). A risk difference is turned into
    a risk ratio using the control risk: RR = (p0 + RD) / p0, with the interval
    limits treated the same way. Adds columns outcome, method and the
    ``estimate`` it started from.
    """
    row = effects[(effects["outcome"] == outcome) & (effects["method"] == method)]
    if row.empty:
        raise ValueError(f"no {method!r} estimate for {outcome!r}")
    r = row.iloc[0]
    y0 = cohort.loc[cohort[treatment] == 0, outcome].astype(float)
    if r["unit"] == "days":
        out = e_value(
            r["estimate"],
            r["ci_lower"],
            r["ci_upper"],
            measure="difference",
            sd=float(y0.std(ddof=1)),
            se=float(r["se"]),
        )
    else:
        p0 = float(y0.mean())
        to_rr = lambda rd: max((p0 + rd / 100) / p0, 1e-9)  # noqa: E731
        out = e_value(to_rr(r["estimate"]), to_rr(r["ci_lower"]), to_rr(r["ci_upper"]), measure="rr")
    out.insert(0, "method", method)
    out.insert(0, "outcome", outcome)
    out.insert(2, "estimate", r["estimate"])
    return out


def finance_inputs(
    effects: pd.DataFrame,
    cohort: pd.DataFrame,
    method: str = "ipw",
    outcome: str = "acute_los",
    treatment: str = "treated",
    periods: pd.DataFrame | None = None,
) -> dict:
    """The inputs of :func:`helpers.finance.vw_financial_impact` from the evaluation.

    Returns effect_days and effect_ci (the ``method`` row for ``outcome``),
    treated_spells (the treated spells that effect applies to: matched ones for
    matching) and vw_patient_days (their virtual ward days, scaled to those
    spells when matching kept only some); with ``periods`` (from
    :func:`helpers.cohort.virtual_ward_periods`) also period_days, the
    calendar days from the first ward's start month to the last one's end.
    """
    row = effects[(effects["outcome"] == outcome) & (effects["method"] == method)].iloc[0]
    treated = cohort[cohort[treatment] == 1]
    n = int(row["n_treated"])
    days = float(treated["vw_days"].sum()) * n / max(len(treated), 1)
    out = {
        "effect_days": float(row["estimate"]),
        "effect_ci": (float(row["ci_lower"]), float(row["ci_upper"])),
        "treated_spells": n,
        "vw_patient_days": days,
    }
    if periods is not None:
        out["period_days"] = float((periods["period_end"].max() - periods["period_start"].min()).days + 1)
    return out


def provider_level_skip_reason(
    series: pd.DataFrame, start: str | pd.Timestamp, min_months: int = 3, comparators: list[str] | None = None
) -> str:
    """Why the interrupted time series and difference-in-differences cannot run, or '' when they can.

    They need ``min_months`` months before the month containing ``start`` and
    as many from it on (and, for difference-in-differences, at least one
    provider without a virtual ward in ``comparators`` when that is given).
    A notebook prints the reason and carries on instead of stopping.
    """
    months = pd.to_datetime(series["month"]).drop_duplicates()
    start_m = pd.Timestamp(start).to_period("M").start_time
    before, after = int((months < start_m).sum()), int((months >= start_m).sum())
    if before < min_months or after < min_months:
        return (
            f"Interrupted time series and difference-in-differences skipped: they need {min_months} months "
            f"before and after the virtual ward opened ({start_m:%B %Y}); the data have {before} before and "
            f"{after} from it. The patient-level estimates above do not depend on them."
        )
    if comparators is not None and not comparators:
        return (
            "Difference-in-differences skipped: every provider in the data runs a virtual ward, so there is "
            "no comparison provider."
        )
    return ""


def balanced_provider(periods: pd.DataFrame, monthly: pd.DataFrame) -> str:
    """The virtual ward provider whose start leaves the most months on its shorter side.

    An interrupted time series needs months both before and after the start;
    this picks the provider maximising min(months before, months after) in
    ``monthly`` (ties: the earlier start).
    """
    months = pd.to_datetime(monthly["month"]).drop_duplicates().sort_values()
    best, best_score = None, -1
    for _, r in periods.sort_values("vw_start").iterrows():
        start = pd.Timestamp(r["vw_start"]).to_period("M").start_time
        score = min(int((months < start).sum()), int((months >= start).sum()))
        if score > best_score:
            best, best_score = str(r["provider_code"]), score
    if best is None:
        raise ValueError("no virtual ward providers in the periods table")
    return best
