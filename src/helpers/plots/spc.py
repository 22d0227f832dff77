"""SPC charts in the NHS *Making Data Count* look.

Grey common-cause points, orange concern, blue improvement, purple neutral
special cause; a solid mean line and dashed process limits per period; the
variation and assurance icons drawn as labelled badges beside the title.
Functions take the ``spc`` and ``spc_summary`` tables of :mod:`helpers.spc`
and return a matplotlib ``Figure``; they compute nothing new.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, PercentFormatter

from helpers.plots import NHS, set_theme

#: Point colours and markers (the marker keeps the chart readable in greyscale).
POINT_STYLE: dict[str, tuple[str, str, float]] = {
    "common_cause": (NHS["mid_grey"], "o", 22),
    "not_assessed": (NHS["mid_grey"], "o", 22),
    "improvement": (NHS["blue"], "s", 46),
    "concern": (NHS["orange"], "D", 42),
    "neutral": (NHS["purple"], "^", 46),
}

#: Badge text and colour of each variation icon.
VARIATION_BADGE: dict[str, tuple[str, str]] = {
    "common_cause": ("Common cause", NHS["mid_grey"]),
    "improvement_high": ("Improvement (high)", NHS["blue"]),
    "improvement_low": ("Improvement (low)", NHS["blue"]),
    "concern_high": ("Concern (high)", NHS["orange"]),
    "concern_low": ("Concern (low)", NHS["orange"]),
    "neutral_high": ("Special cause (high)", NHS["purple"]),
    "neutral_low": ("Special cause (low)", NHS["purple"]),
    "not_assessed": ("Too few points", NHS["dark_grey"]),
}

#: Badge text and colour of each assurance icon ("none" draws no badge).
ASSURANCE_BADGE: dict[str, tuple[str, str]] = {
    "consistently_passing": ("Target: passing", NHS["blue"]),
    "consistently_failing": ("Target: failing", NHS["orange"]),
    "hit_and_miss": ("Target: hit and miss", NHS["mid_grey"]),
}


def _badges(ax: plt.Axes, summary_row: pd.Series | None, fontsize: float = 9, stacked: bool = False) -> None:
    """Draw the variation and assurance badges at the top right, above the axes (one above the other if ``stacked``)."""
    if summary_row is None:
        return
    badges = [VARIATION_BADGE.get(summary_row["variation_icon"])]
    badges.append(ASSURANCE_BADGE.get(summary_row["assurance_icon"]))
    x, y = 1.0, 1.02
    for badge in reversed([b for b in badges if b]):
        text, colour = badge
        t = ax.text(
            x,
            y,
            text,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=fontsize,
            color="white",
            fontweight="bold",
            bbox={"boxstyle": "round,pad=0.35", "facecolor": colour, "edgecolor": colour},
        )
        # step left (or up) by the badge's size (in axes units) for the next one
        renderer = ax.figure.canvas.get_renderer()
        box, frame = t.get_window_extent(renderer), ax.get_window_extent(renderer)
        if stacked:
            y += (box.height + 0.8 * fontsize) / frame.height
        else:
            x -= box.width / frame.width + 0.03


def _draw(ax: plt.Axes, g: pd.DataFrame, target: float | None, marker_scale: float = 1.0) -> None:
    """Draw one group's points, centre line, limits and target on ``ax``."""
    g = g.sort_values("date").assign(value=lambda d: pd.to_numeric(d["value"], errors="coerce"))  # "*": a gap
    ax.plot(g["date"], g["value"], color=NHS["mid_grey"], linewidth=1.2, zorder=2)
    for _, p in g.groupby("period", sort=True):
        ax.plot(p["date"], p["mean"], color=NHS["dark_grey"], linewidth=1.4, zorder=1)
        for col in ("lower_limit", "upper_limit"):
            ax.plot(
                p["date"],
                p[col],
                color=NHS["dark_grey"],
                linewidth=1.1,
                linestyle="--",
                zorder=1,
                drawstyle="steps-mid" if p[col].nunique() > 1 else "default",
            )
    for kind, (colour, marker, size) in POINT_STYLE.items():
        pts = g[g["point_type"] == kind]
        if len(pts):
            ax.scatter(
                pts["date"],
                pts["value"],
                s=size * marker_scale,
                color=colour,
                marker=marker,
                zorder=3,
                edgecolor="white",
                linewidth=0.5,
            )
    if target is not None and not pd.isna(target):
        ax.axhline(target, color=NHS["dark_red"], linestyle=":", linewidth=1.4, zorder=1)
    starts = g.groupby("period")["date"].min().iloc[1:]
    for d in starts:
        ax.axvline(d - pd.Timedelta(days=15), color=NHS["pale_grey"], linewidth=2, zorder=0)


def _format_axes(ax: plt.Axes, table: pd.DataFrame) -> None:
    if table["chart"].iloc[0] in ("p", "pprime"):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))


def _legend_handles(table: pd.DataFrame, target: bool) -> list[Line2D]:
    labels = {
        "common_cause": "Common cause",
        "improvement": "Special cause: improvement",
        "concern": "Special cause: concern",
        "neutral": "Special cause: neither better nor worse",
    }
    present = set(table["point_type"])
    handles = [
        Line2D([], [], color=POINT_STYLE[k][0], marker=POINT_STYLE[k][1], linestyle="", label=v)
        for k, v in labels.items()
        if k in present or k == "common_cause"
    ]
    handles.append(Line2D([], [], color=NHS["dark_grey"], linewidth=1.4, label="Mean"))
    handles.append(Line2D([], [], color=NHS["dark_grey"], linestyle="--", label="Process limits"))
    if target:
        handles.append(Line2D([], [], color=NHS["dark_red"], linestyle=":", label="Target"))
    return handles


def spc_chart(
    table: pd.DataFrame,
    summary: pd.DataFrame | None = None,
    group: str | None = None,
    title: str | None = None,
    ylabel: str = "Value",
    width: float = 9,
    height: float = 5,
) -> plt.Figure:
    """One SPC chart (one group of the ``spc`` table) with its icons as badges.

    ``summary`` (the ``spc_summary`` table) supplies the badges and the
    target line; ``title`` should state the finding (see
    :func:`helpers.spc.headline`).
    """
    set_theme()
    group = group if group is not None else table["group"].iloc[0]
    g = table[table["group"] == group]
    if g.empty:
        raise ValueError(f"no rows for group {group!r}; groups are {sorted(table['group'].unique())}")
    row = None
    if summary is not None:
        match = summary[summary["group"] == group]
        row = match.iloc[0] if len(match) else None
    target = row["target"] if row is not None else None
    fig, ax = plt.subplots(figsize=(width, height))
    _draw(ax, g, target)
    _format_axes(ax, g)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("Month")
    ax.set_title(title or str(group), pad=28, loc="left", wrap=True)
    ax.legend(
        handles=_legend_handles(g, target is not None and not pd.isna(target)),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=3,
        frameon=False,
        fontsize=9,
    )
    fig.tight_layout()
    _badges(ax, row)
    return fig


def small_multiples(
    table: pd.DataFrame,
    summary: pd.DataFrame | None = None,
    title: str = "",
    ylabel: str = "Value",
    ncols: int = 3,
    panel_width: float = 2.4,
    panel_height: float = 2.3,
) -> plt.Figure:
    """One small SPC chart per group (provider or measure), each with its badges.

    Each panel has its own y-axis (groups differ in size); the figure title
    should state the finding across groups. Three panels a row at 2.4 inches
    keep the figure within the book's page width, so its 9-point text is
    read at 9 points (:func:`helpers.plots.smallest_text_pt`); more groups
    make the figure taller, not smaller.
    """
    set_theme(font_scale=0.8)
    groups = sorted(table["group"].unique())
    ncols = max(1, min(ncols, len(groups)))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_width * ncols, panel_height * nrows + 1.2), squeeze=False, sharex=True
    )
    rows = {} if summary is None else {r["group"]: r for _, r in summary.iterrows()}
    for ax, grp in zip(axes.flat, groups):
        g = table[table["group"] == grp]
        row = rows.get(grp)
        _draw(ax, g, None if row is None else row["target"], marker_scale=0.6)
        _format_axes(ax, g)
        ax.set_title(str(grp), pad=30, fontsize=10, loc="left")
        ax.tick_params(axis="both", labelsize=9)
        ax.tick_params(axis="x", labelrotation=45)
        ax.xaxis.set_major_locator(
            mdates.MonthLocator(bymonth=(4, 10))
        )  # April and October: two labels a year
    for i, ax in enumerate(axes.flat):
        if i >= len(groups):
            ax.set_visible(False)
        elif i + ncols >= len(groups):  # no panel below: show this panel's dates
            ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=9)
    has_target = summary is not None and summary["target"].notna().any()
    fig.legend(
        handles=_legend_handles(table, has_target), loc="lower center", ncol=2, frameon=False, fontsize=9
    )
    if title:
        fig.suptitle(
            title,
            x=0.01,
            y=1 - 0.1 / fig.get_figheight(),
            ha="left",
            va="top",
            fontweight="bold",
            fontsize=10,
            wrap=True,
        )
    height = fig.get_figheight()
    top = 1 - (0.5 / height if title else 0)  # room for the title and for the legend (1.2 inch)
    fig.tight_layout(rect=(0, 1.2 / height, 1, top))
    for ax, grp in zip(axes.flat, groups):
        _badges(ax, rows.get(grp), fontsize=9, stacked=True)
    return fig


def add_caption(fig: plt.Figure, text: str, fontsize: float = 8.5) -> plt.Figure:
    """Write ``text`` (for example :func:`helpers.periods.caption`) under a figure, wrapped to its width."""
    if not text:
        return fig
    width = max(60, int(fig.get_figwidth() * 15))
    lines = textwrap.wrap(text, width)
    fig.text(
        0.01,
        0,
        "\n".join(lines),
        ha="left",
        va="top",
        fontsize=fontsize,
        color=NHS["dark_grey"],
        transform=fig.transFigure,
    )
    return fig
