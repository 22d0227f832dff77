"""Figures are readable at the book's page width: no text under 9 points as displayed.

The book shows a figure scaled to its text column (:data:`helpers.plots.PAGE_WIDTH_PX`);
a 21-inch grid of 25 panels drawn at 8 points reaches the reader at about
3 points. :func:`helpers.plots.smallest_text_pt` measures what the reader
sees; these tests hold the figures the issue found too small to the rule.
"""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers import derive, io, spc  # noqa: E402
from helpers.plots import MIN_TEXT_PT, smallest_text_pt  # noqa: E402
from helpers.plots import evaluation as ev_plots  # noqa: E402
from helpers.plots import spc as spc_plots  # noqa: E402


def test_the_measure_scales_a_wide_figure_down_to_the_page():
    wide, ax = plt.subplots(figsize=(21, 3), dpi=100)
    ax.set_title("x", fontsize=10)
    ax.tick_params(labelsize=10)  # every text 10 pt, whatever theme an earlier test left
    narrow, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.set_title("x", fontsize=10)
    ax.tick_params(labelsize=10)
    # 10 pt at 100 dpi is 13.9 px; a figure 2,100 px wide shown in 700 px keeps a third of it
    assert smallest_text_pt(wide) == pytest.approx(
        10 / 72 * 100 * 0.75 * 700 / (wide.get_tightbbox().width * 100)
    )
    assert smallest_text_pt(wide) < 5  # about 4 points: what the issue found
    assert smallest_text_pt(narrow) == pytest.approx(10 / 72 * 100 * 0.75)  # not enlarged
    plt.close("all")


def test_spc_overview_of_every_provider_is_readable():
    spells = derive.add_spell_fields(io.load_table("spells"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = spc.monthly_series(spells, "emergency_bed_days", group="provider_code", chart="xmr")
        table = spc.spc(series, group="group", better="decrease")
    summary = spc.summarise(table, better="decrease")
    assert table["group"].nunique() == 25
    fig = spc_plots.small_multiples(
        table,
        summary,
        title=spc.overview(summary, "Emergency bed days", "series"),
        ylabel="Emergency bed days",
    )
    assert smallest_text_pt(fig) >= MIN_TEXT_PT
    plt.close(fig)


def _effects() -> pd.DataFrame:
    rows = []
    for outcome, unit, est in [
        ("acute_los", "days", -1.1),
        ("total_los", "days", 2.0),
        ("readmission_30d", "percentage points", 0.4),
    ]:
        for k, method in enumerate(["naive", "regression", "ipw", "matching"]):
            e = est + 0.2 * k
            rows.append(
                {
                    "outcome": outcome,
                    "method": method,
                    "estimate": e,
                    "ci_lower": e - 0.5,
                    "ci_upper": e + 0.5,
                    "p_value": 0.01,
                    "unit": unit,
                }
            )
    return pd.DataFrame(rows)


def test_four_methods_figure_and_love_plot_are_readable():
    fig = ev_plots.effects_plot(_effects(), ["acute_los", "total_los", "readmission_30d"], "ipw")
    assert smallest_text_pt(fig) >= MIN_TEXT_PT
    rng = np.random.default_rng(2026)
    n = 30  # covariate levels, as many as the sample's balance table
    balance = pd.DataFrame(
        {
            "covariate": [f"pathway: level {i}" for i in range(n)],
            "smd_before": rng.normal(0, 0.2, n),
            "smd_after_ipw": rng.normal(0, 0.03, n),
            "smd_after_matching": rng.normal(0, 0.05, n),
        }
    )
    fig2 = ev_plots.love_plot(balance)
    assert smallest_text_pt(fig2) >= MIN_TEXT_PT
    plt.close("all")
