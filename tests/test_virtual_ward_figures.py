"""The virtual ward notebook's figures draw no count of 1 to 7 (HES analysis guide small-number rule)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from helpers import evaluation as ev
from helpers import finance
from helpers.plots import evaluation as ev_plots

MONTHS = pd.date_range("2022-04-01", periods=24, freq="MS")
START = MONTHS[12]


def _panel() -> pd.DataFrame:
    """Monthly bed days of a treated provider P1 (months 3 and 15 hold 5 and 7) and two comparators."""
    rng = np.random.default_rng(12)
    rows = []
    for unit, base in (("P1", 300), ("C1", 280), ("C2", 6)):
        values = base + rng.integers(-20, 20, len(MONTHS)) if base > 50 else np.full(len(MONTHS), base)
        for i, (m, v) in enumerate(zip(MONTHS, values)):
            if unit == "P1" and i in (3, 15):
                v = {3: 5, 15: 7}[i]
            rows.append({"provider_code": unit, "month": m, "bed_days": int(v), "admissions": 50})
    return pd.DataFrame(rows)


def test_hide_small_counts_keeps_zero_and_eight():
    t = pd.DataFrame({"n": [0, 1, 7, 8, 120]})
    out = ev.hide_small_counts(t, ["n"])["n"]
    assert out.isna().tolist() == [False, True, True, False, False]
    assert out[[0, 3, 4]].tolist() == [0, 8, 120]
    assert t["n"].tolist() == [0, 1, 7, 8, 120], "the input is not modified"


def test_its_figure_leaves_out_months_of_one_to_seven_bed_days():
    series = _panel().query("provider_code == 'P1'")
    _, fitted = ev.interrupted_time_series(series, START)
    fig = ev_plots.its_plot(fitted, ev.interrupted_time_series(series, START)[0], "P1")
    observed = fig.axes[0].lines[0].get_ydata().astype(float)
    assert np.isnan(observed[[3, 15]]).all()
    assert np.isfinite(np.delete(observed, [3, 15])).all()
    assert not np.isin(np.delete(observed, [3, 15]), np.arange(1, 8)).any()


def test_did_figure_hides_small_months_in_both_lines_and_the_gap():
    panel = _panel()
    # comparators C1 and C2: their mean is never small; P1's months 3 and 15 are
    estimates, series = ev.difference_in_differences(panel, "P1", START, ["C1", "C2"])
    fig = ev_plots.did_plot(series, estimates, "P1")
    treated = fig.axes[0].lines[0].get_ydata().astype(float)
    gap = fig.axes[1].lines[0].get_ydata().astype(float)
    assert np.isnan(treated[[3, 15]]).all() and np.isnan(gap[[3, 15]]).all()
    assert np.isfinite(np.delete(gap, [3, 15])).all()
    # a comparator mean of 1 to 7 is hidden as well (here: C2 alone)
    estimates, series = ev.difference_in_differences(panel, "P1", START, ["C2"])
    fig = ev_plots.did_plot(series, estimates, "P1")
    assert np.isnan(fig.axes[0].lines[1].get_ydata().astype(float)).all()
    assert np.isnan(fig.axes[1].lines[0].get_ydata().astype(float)).all()


def test_overlap_figure_draws_no_bin_of_one_to_seven_spells():
    rng = np.random.default_rng(3)
    ps = np.concatenate([rng.uniform(0.05, 0.5, 400), [0.93, 0.94, 0.95], rng.uniform(0.3, 0.6, 60)])
    treated = np.r_[np.zeros(403), np.ones(60)]
    table = ev.overlap_table(ps, treated)
    assert ((table["count"] >= 1) & (table["count"] <= 7)).any(), "the test needs a small bin"
    fig = ev_plots.overlap_plot(table)
    heights = sorted(round(abs(p.get_height()), 12) for p in fig.axes[0].patches)
    small = table[(table["count"] >= 1) & (table["count"] <= 7)]
    for share in small["share"]:
        assert round(share, 12) not in heights
    big = table[table["count"] > 7]
    assert len([h for h in heights if h > 0]) == len(big)
    # a small bin in one group only: the title's overlap is still computed on every bin
    one_sided = table.copy()
    one_sided.loc[(one_sided["group"] == "treated") & (one_sided["count"] <= 7), ["count", "share"]] = 0
    title = ev_plots.overlap_plot(one_sided).axes[0].get_title(loc="left")
    assert "overlap by" in title


def test_finance_figure_compares_only_in_one_price_year():
    mixed = ev_plots.finance_plot(finance.vw_financial_impact(-1.0, (-1.5, -0.5), 100, 400))
    assert "Not netted" in mixed.axes[0].get_title(loc="left")
    index = finance.PriceIndex({"2020/21": 100.0, "2022": 110.0})
    one = ev_plots.finance_plot(finance.vw_financial_impact(-1.0, (-1.5, -0.5), 100, 400, price_index=index))
    # £344.60 x 1.1 x 100 / 400 = £94.77 a day, against £285 (2022 prices)
    assert "£95 a virtual ward day" in one.axes[0].get_title(loc="left") and "2022 prices" in one.axes[
        0
    ].get_title(loc="left")
