"""Figures for the virtual ward evaluation: each takes a result table of :mod:`helpers.evaluation`.

They compute nothing new: they draw the table's columns and take the title,
which states the finding, from the ``describe_*`` sentences of
:mod:`helpers.evaluation` (or from the table's own rows).
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from helpers import disclosure
from helpers import evaluation as ev
from helpers.finance import format_gbp
from helpers.plots import NHS, set_theme

METHOD_LABELS: dict[str, str] = {
    "naive": "Naive difference",
    "regression": "Regression adjustment (model-dependent)",
    "ipw": "Propensity weighting (ATT)",
    "matching": "Propensity matching",
    "aipw": "Doubly robust (AIPW)",
}
METHOD_COLOURS: dict[str, str] = {
    "naive": NHS["orange"],
    "regression": NHS["dark_grey"],
    "ipw": NHS["blue"],
    "matching": NHS["aqua_blue"],
    "aipw": NHS["dark_blue"] if "dark_blue" in NHS else NHS["blue"],
}


def _wrap(text: str, width: int = 80) -> str:
    return "\n".join(textwrap.wrap(text, width))


def effects_plot(
    effects: pd.DataFrame,
    outcomes: list[str] | None = None,
    main: str = "ipw",
    reference: dict[str, float] | None = None,
) -> Figure:
    """Forest plot: each method's estimate and 95% interval, one panel per outcome.

    ``reference`` optionally marks a known value per outcome (for example the
    simulator's truth on the sample) with a dashed line.
    """
    set_theme()
    outcomes = outcomes or list(dict.fromkeys(effects["outcome"]))
    # one panel a row, at the book's page width, so every label is read at 9 points or more
    fig, axes = plt.subplots(len(outcomes), 1, figsize=(7.2, 1.2 + 2.2 * len(outcomes)), squeeze=False)
    for ax, outcome in zip(axes[:, 0], outcomes):
        t = effects[effects["outcome"] == outcome].reset_index(drop=True)
        y = np.arange(len(t))[::-1]
        for yi, (_, r) in zip(y, t.iterrows()):
            colour = METHOD_COLOURS.get(r["method"], NHS["dark_grey"])
            ax.errorbar(
                r["estimate"],
                yi,
                xerr=[[r["estimate"] - r["ci_lower"]], [r["ci_upper"] - r["estimate"]]],
                fmt="o",
                color=colour,
                capsize=4,
                markersize=7,
            )
        ax.axvline(0, color=NHS["mid_grey"], linewidth=1)
        if reference and outcome in reference:
            ax.axvline(
                reference[outcome],
                color=NHS["dark_green"],
                linestyle="--",
                linewidth=1.5,
                label="known truth",
            )
            ax.legend(loc="lower right", fontsize=10, frameon=False)
        ax.set_yticks(y, [METHOD_LABELS.get(m, m) for m in t["method"]], fontsize=10)
        ax.tick_params(axis="x", labelsize=10)
        ax.set_xlabel(f"Effect on the treated ({t['unit'].iloc[0]})", fontsize=10)
        ax.set_title(ev.OUTCOME_WORDS.get(outcome, outcome).capitalize(), fontsize=11)
    fig.suptitle(
        _wrap(ev.describe_effect(effects, outcomes[0], main), 80),
        x=0.02,
        ha="left",
        fontweight="bold",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def love_plot(balance: pd.DataFrame, threshold: float = ev.SMD_THRESHOLD) -> Figure:
    """Standardised mean differences before and after weighting and matching (a love plot)."""
    set_theme()
    t = balance.iloc[::-1].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.0, 1.4 + 0.28 * len(t)))  # within the page width: text read at its size
    y = np.arange(len(t))
    ax.scatter(
        t["smd_before"].abs(), y, marker="o", facecolor="none", edgecolor=NHS["orange"], s=40, label="Before"
    )
    ax.scatter(t["smd_after_ipw"].abs(), y, marker="s", color=NHS["blue"], s=30, label="After weighting")
    ax.scatter(
        t["smd_after_matching"].abs(), y, marker="^", color=NHS["aqua_blue"], s=30, label="After matching"
    )
    ax.axvline(threshold, color=NHS["dark_red"], linestyle="--", linewidth=1, label=f"{threshold} threshold")
    ax.set_yticks(y, t["covariate"], fontsize=10)
    ax.tick_params(axis="x", labelsize=10)
    ax.set_xlabel("Absolute standardised mean difference (SD units)", fontsize=10)
    ax.legend(loc="lower right", fontsize=10)
    ax.set_title(_wrap(ev.describe_balance(balance, threshold), 70), fontsize=11)
    fig.tight_layout()
    return fig


def overlap_plot(overlap: pd.DataFrame) -> Figure:
    """Distributions of the propensity score, treated above the axis and controls below.

    A bin holding 1 to 7 spells of a group is not drawn (small-number rule).
    """
    set_theme()
    fig, ax = plt.subplots(figsize=(8, 4))
    width = float((overlap["bin_upper"] - overlap["bin_lower"]).iloc[0])
    drawn = disclosure.drawable(overlap, ["count"])  # a bin of 1 to 7 spells is not drawn
    for group, sign, colour in (("treated", 1, NHS["blue"]), ("control", -1, NHS["orange"])):
        t = drawn[drawn["group"] == group]
        ax.bar(
            t["bin_lower"],
            sign * t["share"],
            width=width,
            align="edge",
            color=colour,
            alpha=0.85,
            label=f"{group.capitalize()} spells",
        )
    ax.axhline(0, color=NHS["dark_grey"], linewidth=1)
    ax.set_xlabel("Propensity score (probability of a virtual ward stay)")
    ax.set_ylabel("Share of the group (controls below the line)")
    ax.yaxis.set_major_formatter(lambda v, _: f"{abs(v):.0%}")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper left")
    treated = overlap[overlap["group"] == "treated"]
    control = overlap[overlap["group"] == "control"]
    shared = float(np.minimum(treated["share"].to_numpy(), control["share"].to_numpy()).sum())
    ax.set_title(
        _wrap(
            f"The two groups' propensity distributions overlap by {shared:.0%}: "
            "treated spells with scores near 1 have few comparable controls",
            90,
        )
    )
    fig.tight_layout()
    return fig


def its_plot(
    fitted: pd.DataFrame, coefficients: pd.DataFrame, provider: str, value_label: str = "bed days a month"
) -> Figure:
    """Observed monthly series, the fitted segmented regression and its counterfactual.

    An observed month of 1 to 7 (bed days) is not drawn (small-number rule).
    """
    set_theme()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    observed = ev.hide_small_counts(fitted, ["observed"])["observed"]
    ax.plot(fitted["month"], observed, "o", color=NHS["dark_grey"], markersize=4, label="Observed")
    ax.plot(fitted["month"], fitted["fitted"], color=NHS["blue"], linewidth=2, label="Fitted")
    post = fitted[fitted["post"]]
    ax.plot(
        post["month"],
        post["counterfactual"],
        color=NHS["orange"],
        linestyle="--",
        linewidth=2,
        label="Without the virtual ward (pre-period trend carried on)",
    )
    ax.axvline(post["month"].iloc[0], color=NHS["mid_grey"], linewidth=1)
    ax.set_ylabel(value_label.capitalize())
    ax.set_xlabel("Month")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(_wrap(f"{provider}: " + ev.describe_its(coefficients, value_label), 95))
    fig.tight_layout()
    return fig


def did_plot(
    series: pd.DataFrame, estimates: pd.DataFrame, provider: str, value_label: str = "bed days a month"
) -> Figure:
    """The treated provider and the comparators' mean by month (top) and the gap (bottom).

    A month whose treated value or comparators' mean is 1 to 7 (bed days) is
    drawn as a gap in that line and in the gap line (small-number rule).
    """
    set_theme()
    shown = ev.hide_small_counts(series, ["treated", "comparators"])
    hidden = (
        shown["treated"].isna() & series["treated"].notna()
        | shown["comparators"].isna() & series["comparators"].notna()
    )
    series = shown.assign(gap=series["gap"].where(~hidden.to_numpy()))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=[2, 1])
    ax1.plot(series["month"], series["treated"], color=NHS["blue"], linewidth=2, label=provider)
    ax1.plot(
        series["month"],
        series["comparators"],
        color=NHS["orange"],
        linewidth=2,
        label="Mean of providers without a virtual ward",
    )
    ax1.set_ylabel(value_label.capitalize())
    ax1.legend(loc="best", fontsize=8)
    ax2.plot(series["month"], series["gap"], color=NHS["dark_grey"], marker="o", markersize=3)
    for flag, colour in ((False, NHS["mid_grey"]), (True, NHS["blue"])):
        part = series[series["post"] == flag]
        ax2.hlines(part["gap"].mean(), part["month"].min(), part["month"].max(), color=colour, linewidth=2)
    start = series.loc[series["post"], "month"].iloc[0]
    for ax in (ax1, ax2):
        ax.axvline(start, color=NHS["mid_grey"], linewidth=1)
    ax2.set_ylabel("Gap")
    ax2.set_xlabel("Month")
    ax1.set_title(_wrap(f"{provider}: " + ev.describe_did(estimates, value_label), 95))
    fig.tight_layout()
    return fig


def finance_plot(financial_impact: pd.DataFrame) -> Figure:
    """Capacity released, cash released and the virtual ward's cost, with the nets (£)."""
    set_theme()
    v = financial_impact.set_index("measure")
    items = [
        ("capacity_released_gbp", "Capacity released\n(not cash)", NHS["blue"]),
        ("cash_releasing_gbp", "Cash released", NHS["aqua_blue"]),
        ("vw_cost_gbp", "Virtual ward cost", NHS["orange"]),
        ("net_capacity_gbp", "Net: capacity\nminus cost", NHS["dark_grey"]),
        ("net_cash_gbp", "Net: cash\nminus cost", NHS["dark_red"]),
    ]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = np.arange(len(items))
    for xi, (key, _label, colour) in zip(x, items):
        r = v.loc[key]
        ax.bar(xi, r["value"], color=colour)
        if np.isfinite(r["ci_lower"]):
            ax.errorbar(
                xi,
                r["value"],
                yerr=[[r["value"] - r["ci_lower"]], [r["ci_upper"] - r["value"]]],
                color=NHS["black"],
                capsize=5,
            )
    ax.axhline(0, color=NHS["dark_grey"], linewidth=1)
    be = v.loc["break_even_cost_per_vw_day"]
    unit = v.loc["vw_cost_per_day_gbp"]
    one_year = be["price_year"] == unit["price_year"]
    labels = [i[1] if one_year else f"{i[1]}\n({v.loc[i[0], 'price_year']})" for i in items]
    ax.set_xticks(x, labels, fontsize=9)
    ax.yaxis.set_major_formatter(lambda val, _: format_gbp(val))
    ax.set_ylabel(f"£ ({v.loc['net_capacity_gbp', 'price_year']} prices)")
    if one_year:
        title = (
            f"The ward breaks even on capacity at {format_gbp(be['value'])} a virtual ward day; "
            f"it costs {format_gbp(unit['value'])} ({be['price_year']} prices)"
        )
    else:
        title = (
            f"Not netted: capacity is in {be['price_year']} prices and the ward's cost in "
            f"{unit['price_year']} prices; give a price index to compare them"
        )
    ax.set_title(_wrap(title, 90))
    fig.tight_layout()
    return fig


def time_zero_figure() -> Figure:
    """Two timelines of the same three patients: clocks from admission against one time zero.

    A schematic for the chapter (no data): a patient stepped down after a
    decision on hospital day 3, a patient discharged on day 1, and a patient
    still in hospital on day 3. Top: the all-spells design starts every clock
    at admission, so the treated patient's first three days (when she could
    not yet be stepped down, and had to stay alive and in hospital to be) count
    against the ward. Bottom: the target trial starts both clocks on day 3 and
    compares her only with patients still in hospital that day.
    """
    set_theme()
    fig, axes = plt.subplots(2, 1, figsize=(8.5, 5.2), sharex=True)
    patients = [
        ("Stepped down (decided day 3)", 0, 5, 10, NHS["blue"]),
        ("Went home on day 1", 0, 1, None, NHS["dark_grey"]),
        ("Still in hospital on day 3", 0, 8, None, NHS["dark_grey"]),
    ]
    for ax, trial in zip(axes, (False, True)):
        for row, (label, adm, dis, vw_end, colour) in enumerate(patients):
            y = 2 - row
            out_of_risk_set = trial and dis < 3
            alpha = 0.25 if out_of_risk_set else 1.0
            ax.barh(y, dis - adm, left=adm, height=0.45, color=colour, alpha=alpha)
            if vw_end is not None:
                ax.barh(
                    y, vw_end - dis, left=dis, height=0.45, color=NHS["aqua_blue"], alpha=alpha, hatch="//"
                )
            start = 3 if trial else 0
            if not out_of_risk_set:
                ax.plot([start], [y], marker="o", color="black", zorder=3)
            ax.text(-0.3, y, label, ha="right", va="center", fontsize=9, alpha=max(alpha, 0.6))
            if out_of_risk_set:
                ax.text(
                    dis + 0.3, y, "not in the risk set: out of hospital on day 3", va="center", fontsize=8
                )
        if trial:
            ax.axvline(3, color="black", linestyle="--", linewidth=1)
            ax.set_title(
                "Target trial: both clocks start on day 3, the day of the decision", loc="left", fontsize=10
            )
        else:
            ax.axvspan(0, 3, ymin=0.7, ymax=0.98, color=NHS["orange"], alpha=0.2)
            ax.text(1.5, 2.35, "days before the decision", ha="center", fontsize=8)
            ax.set_title("All spells: every clock starts at admission", loc="left", fontsize=10)
        ax.set_yticks([])
        ax.set_ylim(-0.6, 2.7)
    axes[1].set_xlabel("Hospital day (bars: acute stay, hatched: virtual ward; dot: where the clock starts)")
    axes[1].set_xlim(-8, 11)
    axes[1].set_xticks(range(0, 11))
    fig.suptitle(
        "Comparing from admission blames the ward for days before anyone could decide",
        x=0.02,
        ha="left",
        fontsize=11,
    )
    fig.tight_layout()
    return fig
