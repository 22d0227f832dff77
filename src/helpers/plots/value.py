"""Figures for the value notebook: each takes a result table of :mod:`helpers.value`.

The functions compute nothing new: they draw the table's columns and take the
title, which states the finding, from the ``describe_*`` sentences of
:mod:`helpers.value`.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from helpers import disclosure
from helpers import value as hv
from helpers.plots import NHS, PALETTE, set_theme

#: A colour per quadrant: good news blue, bad news orange, trade-offs grey.
QUADRANT_COLOURS: dict[str, str] = {
    hv.QUADRANTS[("higher", "lower")]: NHS["blue"],
    hv.QUADRANTS[("higher", "higher")]: NHS["aqua_blue"],
    hv.QUADRANTS[("lower", "lower")]: NHS["mid_grey"],
    hv.QUADRANTS[("lower", "higher")]: NHS["orange"],
    hv.ON_MEDIAN: NHS["dark_grey"],
    hv.NOT_DISTINGUISHABLE: NHS["dark_grey"],
    hv.TOO_FEW: NHS["pale_grey"],
}


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width))


def _money_axis(axis) -> None:
    """Pounds on an axis: £1,500 style, or £1.5m once values reach millions; at most six ticks."""
    axis.set_major_locator(MaxNLocator(5))
    top = max(abs(v) for v in axis.get_view_interval())
    if top >= 1_000_000:
        axis.set_major_formatter(lambda v, _: f"£{v / 1e6:,.1f}m")
    else:
        axis.set_major_formatter(lambda v, _: f"£{v:,.0f}")


def pathway_value_plot(value_table: pd.DataFrame, by: str = "pathway") -> Figure:
    """Mean EQ-5D gain and mean cost per patient by pathway, with 95% intervals."""
    set_theme()
    t = value_table.sort_values(by).reset_index(drop=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 1.2 + 0.6 * len(t)), sharey=True)
    y = np.arange(len(t))
    ax1.errorbar(
        t["mean_gain"],
        y,
        xerr=[t["mean_gain"] - t["gain_ci_lower"], t["gain_ci_upper"] - t["mean_gain"]],
        fmt="o",
        color=NHS["blue"],
        capsize=4,
    )
    ax1.set_yticks(y, t[by].astype("str"))
    ax1.set_xlabel("Mean EQ-5D gain per patient (index points)")
    ax1.set_xlim(left=min(0.0, float(t["gain_ci_lower"].min())))
    ax2.errorbar(
        t["mean_cost"],
        y,
        xerr=[t["mean_cost"] - t["cost_ci_lower"], t["cost_ci_upper"] - t["mean_cost"]],
        fmt="s",
        color=NHS["orange"],
        capsize=4,
    )
    ax2.set_xlabel("Mean cost per patient (£)")
    ax2.set_xlim(left=0)
    _money_axis(ax2.xaxis)
    ax1.invert_yaxis()
    fig.suptitle(_wrap(hv.describe_pathway_value(value_table, by), 90), x=0.02, ha="left", fontweight="bold")
    fig.tight_layout()
    return fig


def quadrant_plot(quadrant_table: pd.DataFrame, pathway: str) -> Figure:
    """The quality-cost plane of one pathway: adjusted cost (x) against adjusted gain (y).

    Cross-hairs at the median provider; error bars are 95% intervals; points
    are coloured by quadrant (grey when not distinguishable from the median
    provider), drawn bold when both intervals clear the medians,
    and labelled with the provider code (all of them up to ten providers, else
    those clear of a median on at least one axis).
    """
    set_theme()
    t = disclosure.drawable(quadrant_table[quadrant_table["pathway"] == pathway]).reset_index(
        drop=True
    )  # not n of 1 to 7
    if t.empty:
        raise ValueError(f"No providers for pathway {pathway!r} in the quadrant table")
    fig, ax = plt.subplots(figsize=(9, 6))
    label_all = len(t) <= 10
    for _, r in t.iterrows():
        colour = QUADRANT_COLOURS.get(r["quadrant"], NHS["dark_grey"])
        clear_both = bool(r["gain_clear"] and r["cost_clear"])
        ax.errorbar(
            r["adjusted_cost"],
            r["adjusted_gain"],
            xerr=[
                [r["adjusted_cost"] - r["adjusted_cost_ci_lower"]],
                [r["adjusted_cost_ci_upper"] - r["adjusted_cost"]],
            ],
            yerr=[
                [r["adjusted_gain"] - r["adjusted_gain_ci_lower"]],
                [r["adjusted_gain_ci_upper"] - r["adjusted_gain"]],
            ],
            fmt="o",
            color=colour,
            ecolor=colour,
            elinewidth=1.5 if clear_both else 0.8,
            alpha=1.0 if clear_both else 0.55,
            capsize=2,
            markersize=8 if clear_both else 6,
            markeredgecolor=NHS["black"] if clear_both else colour,
        )
        if label_all or r["gain_clear"] or r["cost_clear"]:
            ax.annotate(
                str(r["provider_code"]),
                (r["adjusted_cost"], r["adjusted_gain"]),
                xytext=(5, 5),
                textcoords="offset points",
                fontsize=9,
                color=NHS["black"],
            )
    mg, mc = float(t["median_gain"].iloc[0]), float(t["median_cost"].iloc[0])
    ax.axhline(mg, color=NHS["dark_grey"], linestyle="--", linewidth=1)
    ax.axvline(mc, color=NHS["dark_grey"], linestyle="--", linewidth=1)
    corners = [
        (0.02, 0.97, "left", "top", hv.QUADRANTS[("higher", "lower")]),
        (0.98, 0.97, "right", "top", hv.QUADRANTS[("higher", "higher")]),
        (0.02, 0.03, "left", "bottom", hv.QUADRANTS[("lower", "lower")]),
        (0.98, 0.03, "right", "bottom", hv.QUADRANTS[("lower", "higher")]),
    ]
    for x, y, ha, va, label in corners:
        ax.text(
            x,
            y,
            label,
            transform=ax.transAxes,
            ha=ha,
            va=va,
            fontsize=9,
            color=QUADRANT_COLOURS[label],
            fontweight="bold",
        )
    ax.set_xlabel("Case-mix-adjusted cost per patient (£)")
    ax.set_ylabel("Case-mix-adjusted EQ-5D gain per patient")
    _money_axis(ax.xaxis)
    handles = [
        Line2D([], [], color=NHS["dark_grey"], linestyle="--", label="median provider"),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            color=NHS["mid_grey"],
            markeredgecolor=NHS["black"],
            label="interval clear of both medians",
        ),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            color=QUADRANT_COLOURS[hv.NOT_DISTINGUISHABLE],
            alpha=0.55,
            label=hv.NOT_DISTINGUISHABLE,
        ),
    ]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=9)
    ax.set_title(_wrap(hv.describe_quadrant(quadrant_table, pathway)))
    fig.tight_layout()
    return fig


def equity_plot(equity_table: pd.DataFrame, pathway: str | None = None) -> Figure:
    """Mean EQ-5D gain by IMD decile (1 = most deprived) with 95% intervals, a panel per pathway.

    The Core20 deciles (1 and 2) are shaded. Pathways are drawn in separate
    panels because their gains are on different scales.
    """
    set_theme()
    t = equity_table[equity_table["imd_decile"].notna()]
    if pathway is not None:
        t = t[t["pathway"] == pathway]
    names = sorted(t["pathway"].unique())
    if not names:
        raise ValueError("No rows with an IMD decile to plot")
    ncol = min(2, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 3.4 * nrow + 0.8), squeeze=False)
    for i, name in enumerate(names):
        ax = axes.flat[i]
        part = t[t["pathway"] == name].sort_values("imd_decile")
        x = part["imd_decile"].astype("float64").to_numpy()
        ax.axvspan(0.5, 2.5, color=NHS["pale_grey"], zorder=0)
        ax.text(
            1.5,
            0.03,
            "Core20",
            transform=ax.get_xaxis_transform(),
            ha="center",
            fontsize=8,
            color=NHS["dark_grey"],
        )
        ax.errorbar(
            x,
            part["mean_gain"],
            yerr=[part["mean_gain"] - part["gain_ci_lower"], part["gain_ci_upper"] - part["mean_gain"]],
            fmt="-o",
            color=NHS["blue"],
            capsize=3,
            markersize=5,
        )
        ax.set_xticks(range(1, 11))
        ax.set_title(str(name), fontsize=10, loc="left")
        ax.set_xlabel("IMD decile (1 = most deprived)")
        ax.set_ylabel("Mean EQ-5D gain")
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(_wrap(hv.describe_equity(equity_table, pathway), 90), x=0.02, ha="left", fontweight="bold")
    fig.tight_layout()
    return fig


def allocative_plot(allocative_table: pd.DataFrame, by: str = "pathway") -> Figure:
    """Cost-effectiveness plane: QALYs per patient (x) against cost per patient (y).

    Lines through the origin mark the threshold range (£ per QALY); points below
    a line cost less per QALY than that threshold.
    """
    set_theme()
    t = allocative_table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    xmax = float(max(t["qalys_ci_upper"].max(), t["qalys_per_patient"].max(), 0.1)) * 1.15
    lower, upper = float(t["threshold_lower"].iloc[0]), float(t["threshold_upper"].iloc[0])
    xs = np.array([0.0, xmax])
    ax.fill_between(
        xs,
        lower * xs,
        upper * xs,
        color=NHS["pale_grey"],
        zorder=0,
        label=f"£{lower:,.0f}-£{upper:,.0f} per QALY",
    )
    ax.plot(xs, lower * xs, color=NHS["mid_grey"], linewidth=1)
    ax.plot(xs, upper * xs, color=NHS["mid_grey"], linewidth=1)
    for i, r in t.iterrows():
        ax.errorbar(
            r["qalys_per_patient"],
            r["mean_cost"],
            xerr=[
                [r["qalys_per_patient"] - r["qalys_ci_lower"]],
                [r["qalys_ci_upper"] - r["qalys_per_patient"]],
            ],
            fmt="o",
            color=PALETTE[i % len(PALETTE)],
            capsize=3,
            markersize=8,
            label=str(r[by]),
        )
    ax.set_xlim(0, xmax)
    ymax = float(max(t["mean_cost"].max() * 1.3, upper * xmax * 0.25))
    ax.set_ylim(0, ymax)
    ax.set_xlabel(
        f"QALYs gained per patient (gain lasting {float(t['duration_years'].iloc[0]):g} years, "
        f"discounted at {float(t['discount_rate'].iloc[0]):.1%})"
    )
    ax.set_ylabel("Cost per patient (£)")
    _money_axis(ax.yaxis)
    ax.legend(frameon=False, fontsize=9, loc="upper left")
    ax.set_title(_wrap(hv.describe_allocative(allocative_table, by)))
    fig.tight_layout()
    return fig


def cip_plot(summary: pd.DataFrame) -> Figure:
    """A CIP plan by class of saving: what counts (approved), what awaits assessment, what was rejected."""
    set_theme()
    t = summary[summary["cip_class"].isin(hv.CIP_CLASSES)].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    y = np.arange(len(t))
    ax.barh(y, t["value_gbp"], color=NHS["blue"], label="counted: quality impact assessment approved")
    ax.barh(
        y,
        t["awaiting_qia_gbp"],
        left=t["value_gbp"],
        color=NHS["orange"],
        hatch="//",
        edgecolor=NHS["white"],
        label="not counted: assessment pending or not started",
    )
    ax.set_yticks(y, t["cip_class"])
    ax.invert_yaxis()
    ax.set_xlabel("Planned saving (£)")
    _money_axis(ax.xaxis)
    ax.legend(frameon=False, fontsize=9, loc="lower right")
    ax.set_title(_wrap(hv.describe_cip(summary)))
    fig.tight_layout()
    return fig
