"""Figures for the variation analysis: funnel plot, caterpillar plot, opportunity.

Each function takes result tables of :mod:`helpers.funnel` /
:mod:`helpers.opportunity` and returns a matplotlib ``Figure``; they compute
nothing new (the default titles count the flags already in the table).
Colours: orange for worse than expected, blue for better, grey for within
the limits, pale grey for small providers (shown, not flagged); markers
differ too, so the figures read in greyscale.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from helpers import disclosure
from helpers.plots import NHS, set_theme

_LINESTYLES = ["--", "-", ":", "-."]


def _value_column(providers: pd.DataFrame) -> str:
    return "ratio" if "ratio" in providers.columns else "rate"


def _style(flag: str, small: bool, higher_is_better: bool) -> tuple[str, str, float]:
    if small:
        return NHS["pale_grey"], "o", 26
    if flag == "none":
        return NHS["mid_grey"], "o", 30
    worse = (flag == "low") if higher_is_better else (flag == "high")
    return (NHS["orange"], "D", 52) if worse else (NHS["blue"], "s", 52)


def finding_title(
    providers: pd.DataFrame,
    what: str = "than their case mix explains",
    higher: str = "higher",
    lower: str = "lower",
) -> str:
    """'2 providers higher and 2 lower than their case mix explains' from the outlier column."""
    hi = int((providers["outlier"] == "high").sum())
    lo = int((providers["outlier"] == "low").sum())
    if hi == 0 and lo == 0:
        return "No provider lies outside the outer limits: chance and ordinary spread explain the variation"
    if hi and lo:
        return f"{hi} provider{'s' if hi != 1 else ''} {higher} and {lo} {lower} {what}"
    n = hi or lo
    return f"{n} provider{'s' if n != 1 else ''} {higher if hi else lower} {what}"


def funnel_plot(
    providers: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    title: str | None = None,
    x_label: str = "Expected count",
    y_label: str = "Observed / expected",
    higher_is_better: bool = False,
    percent: bool = False,
    width: float = 8.5,
    height: float = 5.5,
    outlier_level: float | None = None,
) -> plt.Figure:
    """Funnel plot: each provider against its precision, limits as curves.

    ``providers`` is the ``provider_indicator`` table (the precision on the x
    axis is ``expected`` for a ratio, ``denominator`` for a proportion);
    ``curves`` the limit curves of :class:`helpers.funnel.FunnelResult`.
    Providers beyond the outer limits are labelled with their code; small
    providers are pale grey. ``percent`` shows a proportion as a percentage.
    ``outlier_level`` (the level that set the ``outlier`` column; default the
    outermost curve) is named in the legend.
    """
    providers = disclosure.drawable(providers)  # a provider with a count of 1 to 7 is not drawn
    set_theme()
    col = _value_column(providers)
    x_col = "expected" if col == "ratio" else "denominator"
    scale = 100.0 if percent else 1.0
    fig, ax = plt.subplots(figsize=(width, height))
    levels = sorted(curves["level"].unique())
    beyond = _beyond(outlier_level if outlier_level is not None else levels[-1])
    for i, level in enumerate(levels):
        c = curves[curves["level"] == level].sort_values("precision")
        style = _LINESTYLES[min(i, len(_LINESTYLES) - 1)] if len(levels) > 1 else "-"
        label = f"{level:g}% limits"
        ax.plot(
            c["precision"],
            c["lower"] * scale,
            color=NHS["dark_blue"],
            linestyle=style,
            linewidth=1.2,
            label=label,
        )
        ax.plot(c["precision"], c["upper"] * scale, color=NHS["dark_blue"], linestyle=style, linewidth=1.2)
    target = float(curves["target"].iloc[0])
    ax.axhline(target * scale, color=NHS["dark_grey"], linewidth=1, label="Target")
    small = (
        providers["small"].to_numpy(bool) if "small" in providers.columns else np.zeros(len(providers), bool)
    )
    for flag in ("none", "high", "low"):
        for is_small in (True, False):
            sel = (providers["outlier"].to_numpy() == flag) & (small == is_small)
            if not sel.any():
                continue
            colour, marker, size = _style(flag, is_small, higher_is_better)
            ax.scatter(
                providers.loc[sel, x_col],
                providers.loc[sel, col] * scale,
                c=colour,
                marker=marker,
                s=size,
                edgecolor=NHS["dark_grey"] if is_small else "white",
                linewidth=0.6,
                zorder=3,
            )
    flagged = providers[providers["outlier"] != "none"].sort_values(x_col)
    for i, (_, row) in enumerate(flagged.iterrows()):
        ax.annotate(
            str(row["provider_code"]),
            (row[x_col], row[col] * scale),
            xytext=(5, 5 if i % 2 == 0 else -12),
            textcoords="offset points",
            fontsize=9,
            color=NHS["black"],
        )
    handles, labels = ax.get_legend_handles_labels()
    worse_word, better_word = ("lower", "higher") if higher_is_better else ("higher", "lower")
    extra = [
        Line2D(
            [], [], marker="D", linestyle="", color=NHS["orange"], label=f"{beyond}, {worse_word} (worse)"
        ),
        Line2D(
            [], [], marker="s", linestyle="", color=NHS["blue"], label=f"{beyond}, {better_word} (better)"
        ),
        Line2D([], [], marker="o", linestyle="", color=NHS["mid_grey"], label="Within limits"),
    ]
    if small.any():
        extra.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=NHS["pale_grey"],
                markeredgecolor=NHS["dark_grey"],
                label="Small (not flagged)",
            )
        )
    ax.legend(handles + extra, labels + [h.get_label() for h in extra], loc="best", fontsize=8, frameon=True)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label + (" (%)" if percent else ""))
    what = "than their case mix explains" if col == "ratio" else "than the overall rate"
    ax.set_title(title or finding_title(providers, what))
    fig.tight_layout()
    return fig


def _beyond(level: float) -> str:
    """Legend words for a flagged provider: 'Beyond the 99.8% limit'."""
    return f"Beyond the {float(level):g}% limit"


def caterpillar_plot(
    providers: pd.DataFrame,
    *,
    title: str | None = None,
    x_label: str = "Observed / expected (95% interval)",
    higher_is_better: bool = False,
    percent: bool = False,
    outlier_level: float | None = None,
) -> plt.Figure:
    """Each provider's value with its own 95% interval (ci_lower, ci_upper), target line.

    Providers are ordered by value so the overlap of intervals is visible;
    the colour is the funnel's outlier flag (which also allows for
    overdispersion), so a provider whose interval misses the target is not
    necessarily flagged. This is not a league table: neighbouring ranks are
    not distinguishable. ``outlier_level``, when given, is named in a legend.
    """
    providers = disclosure.drawable(providers)  # a provider with a count of 1 to 7 is not drawn
    set_theme()
    col = _value_column(providers)
    scale = 100.0 if percent else 1.0
    d = providers.sort_values(col).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, max(3.5, 0.22 * len(d) + 1.5)))
    small = d["small"].to_numpy(bool) if "small" in d.columns else np.zeros(len(d), bool)
    for i, row in d.iterrows():
        colour, marker, size = _style(row["outlier"], bool(small[i]), higher_is_better)
        colour = NHS["mid_grey"] if colour == NHS["pale_grey"] else colour
        ax.plot([row["ci_lower"] * scale, row["ci_upper"] * scale], [i, i], color=colour, linewidth=1.6)
        ax.scatter(
            row[col] * scale, i, c=colour, marker=marker, s=size, zorder=3, edgecolor="white", linewidth=0.5
        )
    target = _target(providers)
    if target is not None:
        ax.axvline(target * scale, color=NHS["dark_grey"], linewidth=1)
    if outlier_level is not None:
        worse_word, better_word = ("lower", "higher") if higher_is_better else ("higher", "lower")
        beyond = _beyond(outlier_level) + " of the funnel"
        ax.legend(
            handles=[
                Line2D([], [], marker="D", color=NHS["orange"], label=f"{beyond}, {worse_word} (worse)"),
                Line2D([], [], marker="s", color=NHS["blue"], label=f"{beyond}, {better_word} (better)"),
                Line2D([], [], marker="o", color=NHS["mid_grey"], label="Within the funnel's limits"),
            ],
            loc="lower right",
            fontsize=8,
        )
    ax.set_yticks(range(len(d)))
    ax.set_yticklabels(d["provider_code"], fontsize=8 if len(d) <= 40 else 5)
    ax.set_xlabel(x_label + (" (%)" if percent else ""))
    ax.set_ylabel("Provider")
    if title is None:
        crosses = (
            int(((d["ci_lower"] <= (target or 0)) & (d["ci_upper"] >= (target or 0))).sum())
            if target is not None
            else 0
        )
        title = f"{crosses} of {len(d)} providers' intervals include the target; order alone says little"
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _target(providers: pd.DataFrame) -> float | None:
    if "ratio" in providers.columns:
        return 1.0
    if {"expected", "denominator"} <= set(providers.columns):
        den = providers["denominator"].sum()
        return float(providers["expected"].sum() / den) if den else None
    return None


def opportunity_plot(
    providers: pd.DataFrame,
    summary: pd.DataFrame,
    *,
    title: str | None = None,
    unit: str = "bed days a year",
    outlier_column: str | None = None,
) -> plt.Figure:
    """Opportunity by provider (only those worse than the benchmark), with the three totals.

    ``providers`` carries ``opportunity_bed_days`` (or ``opportunity`` where
    bed days do not apply) and the ``worse_than_<L>`` flag of
    :func:`helpers.opportunity.opportunity`; ``summary`` is the
    ``opportunity_summary`` table. Bars for providers beyond the funnel limit
    are orange, the rest grey; providers too small to be flagged are pale
    grey (they are in no total of the summary).
    ``outlier_column`` defaults to the table's one ``worse_than_<L>`` column,
    whose level the legend states.
    """
    providers = disclosure.drawable(providers)  # a provider with a count of 1 to 7 is not drawn
    set_theme()
    if outlier_column is None:
        found = [c for c in providers.columns if str(c).startswith("worse_than_")]
        outlier_column = found[0] if found else "worse_than_95"
    level_text = _level_from_column(outlier_column, summary)
    value = "opportunity_bed_days" if providers["opportunity_bed_days"].notna().any() else "opportunity"
    d = providers[providers[value] > 0].sort_values(value)
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.25 * len(d) + 1.8)))
    flag = d[outlier_column].to_numpy(bool) if outlier_column in d.columns else np.zeros(len(d), bool)
    small = d["small"].to_numpy(bool) if "small" in d.columns else np.zeros(len(d), bool)
    colours = [
        NHS["orange"] if f else (NHS["pale_grey"] if sm else NHS["mid_grey"]) for f, sm in zip(flag, small)
    ]
    ax.barh(d["provider_code"], d[value], color=colours, hatch=None)
    for i, f in enumerate(flag):
        if f:
            ax.patches[i].set_hatch("//")
    s = summary.set_index("estimate")
    col = "bed_days" if value == "opportunity_bed_days" else "opportunity"
    naive = float(s.loc["naive", col])
    outl = float(s.loc["outliers_only", col])
    lo, hi = float(s.loc["interval", f"{col}_lower"]), float(s.loc["interval", f"{col}_upper"])
    ax.set_xlabel(f"Opportunity ({unit})")
    ax.set_ylabel("Provider")
    handles = [
        plt.Rectangle(
            (0, 0), 1, 1, color=NHS["orange"], hatch="//", label=f"Beyond the {level_text} funnel limit"
        ),
        plt.Rectangle((0, 0), 1, 1, color=NHS["mid_grey"], label="Worse than benchmark, within limits"),
    ]
    if small.any():
        handles.append(
            plt.Rectangle(
                (0, 0),
                1,
                1,
                facecolor=NHS["pale_grey"],
                edgecolor=NHS["dark_grey"],
                label="Too small to be flagged (in no total)",
            )
        )
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    if title is None:
        k = int(flag.sum())
        share = outl / naive if naive > 0 else 0.0
        title = (
            f"{share:.0%} of the naive opportunity sits with the {k} provider{'s' if k != 1 else ''} beyond the funnel limit\n"
            f"Naive {naive:,.0f}; outliers only {outl:,.0f}; allowing for chance {lo:,.0f} to {hi:,.0f} {unit}"
        )
    ax.set_title(title, fontsize=10.5)
    fig.tight_layout()
    return fig


def _level_from_column(column: str, summary: pd.DataFrame) -> str:
    """'99.8%' from the outliers_only note of the summary (its level as computed), else from the column name."""
    notes = summary.set_index("estimate")["note"] if "note" in summary.columns else pd.Series(dtype="str")
    note = str(notes.get("outliers_only", ""))
    if "% funnel limit" in note:
        return note.split("beyond the ", 1)[-1].split(" funnel limit", 1)[0]
    return column.removeprefix("worse_than_") + "%"
