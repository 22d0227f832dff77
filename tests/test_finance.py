"""Tests of helpers.finance: hand calculations of the money conversions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import finance


def test_beds_equivalent_by_hand():
    # 33,580 bed days a year at 92% occupancy: 33,580 / 365 / 0.92 = 100 beds
    assert finance.beds_equivalent(33_580.0) == pytest.approx(100.0)
    assert finance.beds_equivalent(365.0, occupancy=1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="occupancy"):
        finance.beds_equivalent(100.0, occupancy=1.5)


def test_default_cost_per_bed_day_carries_source_and_price_year():
    c = finance.COST_PER_BED_DAY
    assert c.value == pytest.approx(
        344.60
    )  # DHSC written answer UIN 146908, 2020/21 National Cost Collection
    assert c.price_year == "2020/21"
    assert "UIN 146908" in c.source
    assert c.label().startswith("£345 per bed day (2020/21 prices")


def test_capacity_and_cash_by_hand():
    # 1,000 bed days at £344.60 = £344,600 of capacity; with a 20% marginal share, £68,920 of cash
    table = finance.bed_days_value(1_000.0, marginal_cost_share=0.2)
    row = table.iloc[0]
    assert row["capacity_released_gbp"] == pytest.approx(344_600.0)
    assert row["cash_releasing_gbp"] == pytest.approx(68_920.0)
    assert row["beds_equivalent"] == pytest.approx(1_000 / 365 / 0.92)
    assert row["price_year"] == "2020/21"
    # by default no cash is released: beds stay open
    assert finance.bed_days_value(1_000.0).iloc[0]["cash_releasing_gbp"] == 0


def test_vectorised_over_series():
    days = pd.Series([0.0, 100.0, 250.0])
    out = finance.capacity_released_gbp(days, 300.0)
    assert isinstance(out, pd.Series)
    np.testing.assert_allclose(out, [0, 30_000, 75_000])
    assert len(finance.bed_days_value(days.to_numpy(), 300.0, price_year="2024/25")) == 3


def test_invalid_parameters_fail_loudly():
    with pytest.raises(ValueError, match="marginal_cost_share"):
        finance.cash_releasing_gbp(100.0, 1.2)
    with pytest.raises(ValueError, match="cost_per_bed_day"):
        finance.capacity_released_gbp(10.0, -1.0)


def test_format_gbp():
    assert finance.format_gbp(1_234_567.8) == "£1,234,568"
    assert finance.format_gbp(-1_200) == "-£1,200"
    assert finance.format_gbp(12.345, 2) == "£12.35"
    assert finance.format_number(12_345.6) == "12,346"
