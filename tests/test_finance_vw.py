"""Tests of the virtual ward finance section of helpers.finance, by hand calculation."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import finance


def _table(**kw):
    args = dict(
        effect_days=-1.5,
        effect_ci=(-2.0, -1.0),
        treated_spells=1_000,
        vw_patient_days=5_000,
        cost_per_bed_day=300.0,
        cost_per_vw_day=100.0,
        price_year="2024/25",
    )
    args.update(kw)
    return finance.vw_financial_impact(**args).set_index("measure")


def test_default_vw_day_cost_is_the_cited_derivation():
    c = finance.COST_PER_VW_DAY
    # Jalilian et al 2024: about £1m for 40 beds in 2022 at 24% use
    assert c.value == pytest.approx(1_000_000 / (40 * 365 * 0.24), abs=1.0)
    assert c.price_year == "2022" and "BMJ Open" in c.source


def test_bed_days_value_and_net_by_hand():
    t = _table()
    # 1.5 days x 1,000 spells = 1,500 bed days (1,000 to 2,000 from the interval)
    assert t.loc["bed_days_released", ["value", "ci_lower", "ci_upper"]].tolist() == [1500, 1000, 2000]
    assert t.loc["beds_equivalent", "value"] == pytest.approx(1500 / 365 / 0.92)
    # over a two-year evaluation the same bed days free half as many beds on average
    assert _table(period_days=730).loc["beds_equivalent", "value"] == pytest.approx(1500 / 730 / 0.92)
    # £300 x 1,500 = £450,000 capacity; cash 0 at the default marginal share
    assert t.loc["capacity_released_gbp", "value"] == pytest.approx(450_000)
    assert t.loc["cash_releasing_gbp", "value"] == 0
    # 5,000 virtual ward days x £100 = £500,000
    assert t.loc["vw_cost_gbp", "value"] == pytest.approx(500_000)
    assert t.loc["net_capacity_gbp", "value"] == pytest.approx(-50_000)
    assert t.loc["net_capacity_gbp", "ci_upper"] == pytest.approx(2000 * 300 - 500_000)
    # break-even: £450,000 / 5,000 days = £90 a virtual ward day
    assert t.loc["break_even_cost_per_vw_day", "value"] == pytest.approx(90.0)
    assert (t.loc[t["unit"] == "£", "price_year"] == "2024/25").all()
    assert t.loc["capacity_released_gbp", "source"] != ""


def test_annual_budget_replaces_day_cost():
    t = _table(annual_budget=250_000.0, budget_years=2.0)
    assert t.loc["vw_cost_gbp", "value"] == pytest.approx(500_000)
    assert t.loc["vw_cost_per_day_gbp", "value"] == pytest.approx(100.0)


def test_which_organisation_wins_under_activity_payment():
    # Provider absorbs the ward, 20% of the bed-day cost is cash, and 50 step-up admissions
    # at £2,000 are avoided: provider income -£100,000; cost +£500,000 - £90,000.
    t = _table(
        marginal_cost_share=0.2,
        vw_paid_by="provider",
        admissions_avoided=50,
        price_per_admission=2_000,
        payment="pbr",
    )
    assert t.loc["provider_income_change_gbp", "value"] == pytest.approx(-100_000)
    assert t.loc["provider_cost_change_gbp", "value"] == pytest.approx(500_000 - 90_000)
    assert t.loc["provider_net_gbp", "value"] == pytest.approx(-100_000 - 410_000)
    assert t.loc["commissioner_spend_change_gbp", "value"] == pytest.approx(-100_000)
    assert t.loc["system_net_cash_gbp", "value"] == pytest.approx(90_000 - 500_000)
    # provider net + commissioner saving = system: payments cancel
    assert t.loc["provider_net_gbp", "value"] - t.loc[
        "commissioner_spend_change_gbp", "value"
    ] == pytest.approx(t.loc["system_net_cash_gbp", "value"])
    text = finance.which_organisation_wins(t.reset_index())
    assert "provider is £510,000 worse off" in text and "commissioner pays £100,000 less" in text


def test_fixed_payment_and_commissioner_funding():
    t = _table(payment="fixed", admissions_avoided=50, price_per_admission=2_000)
    # a block payment does not move with activity; the commissioner funds the ward's £500,000
    assert t.loc["provider_income_change_gbp", "value"] == pytest.approx(500_000)
    assert t.loc["provider_net_gbp", "value"] == pytest.approx(0.0)
    assert t.loc["commissioner_spend_change_gbp", "value"] == pytest.approx(500_000)


def test_mixed_price_years_are_not_netted_and_bad_options_refused():
    # defaults: bed day £344.60 in 2020/21, virtual ward day £285 in 2022 - never netted
    t = finance.vw_financial_impact(-1.0, (-1.5, -0.5), 100, 400).set_index("measure")
    assert (
        "2020/21" in t.loc["net_capacity_gbp", "price_year"]
        and "2022" in t.loc["net_capacity_gbp", "price_year"]
    )
    assert (
        "not netted" in t.loc["net_capacity_gbp", "note"]
        and "price index" in t.loc["net_capacity_gbp", "note"]
    )
    for m in [
        "net_capacity_gbp",
        "net_cash_gbp",
        "net_capacity_gbp_per_year",
        "provider_net_gbp",
        "system_net_cash_gbp",
        "break_even_minus_jalilian2024_derived",
        "break_even_minus_west_herts_2023_24",
    ]:
        assert pd.isna(t.loc[m, "value"]), m
    # the gross figures stay, each in its own price year: 100 x £344.60 = £34,460; 400 x £285 = £114,000
    assert t.loc["capacity_released_gbp", ["value", "price_year"]].tolist() == [
        pytest.approx(34_460),
        "2020/21",
    ]
    assert t.loc["vw_cost_gbp", ["value", "price_year"]].tolist() == [pytest.approx(114_000), "2022"]
    assert "not netted" in finance.which_organisation_wins(t.reset_index())
    with pytest.raises(ValueError, match="payment"):
        _table(payment="tariff")
    with pytest.raises(ValueError, match="vw_paid_by"):
        _table(vw_paid_by="patient")


def test_payment_regimes_api_default_pbr_and_block():
    kw = dict(vw_paid_by="provider", admissions_avoided=50, price_per_admission=2_000)
    api, pbr, block = (_table(payment=p, **kw) for p in ("api", "pbr", "block"))
    assert _table(**kw).loc["provider_income_change_gbp", "note"].startswith("api payment")  # the default
    # the fixed element of API, like a block, does not move with activity; payment by results does
    assert (
        api.loc["provider_income_change_gbp", "value"]
        == 0
        == block.loc["provider_income_change_gbp", "value"]
    )
    assert pbr.loc["provider_income_change_gbp", "value"] == pytest.approx(-100_000)
    # the older names still work
    assert _table(payment="activity", **kw).loc["provider_income_change_gbp", "value"] == pytest.approx(
        -100_000
    )
    assert _table(payment="fixed", **kw).loc["provider_income_change_gbp", "value"] == 0
    text = finance.which_organisation_wins(api.reset_index())
    assert "aligned payment and incentive" in text and "fixed element" in text
    assert "payment by results" in finance.which_organisation_wins(pbr.reset_index())
    assert "block contract" in finance.which_organisation_wins(block.reset_index())


def test_uplift_to_one_price_year_by_hand():
    # a stated index: 100 in 2020/21, 110 in 2022, 121 in 2023/24 (levels the user enters, any base)
    index = finance.PriceIndex({"2020/21": 100.0, "2022": 110.0, "2023/24": 121.0}, "test index", "by hand")
    assert finance.uplift(344.60, "2020/21", "2022", index) == pytest.approx(379.06)
    with pytest.raises(ValueError, match="2024/25"):
        index.factor("2020/21", "2024/25")
    t = finance.vw_financial_impact(-1.0, (-1.5, -0.5), 100, 400, price_index=index).set_index("measure")
    # base year = the virtual ward cost's (2022): bed day £344.60 x 1.1 = £379.06; 100 bed days = £37,906
    assert t.loc["capacity_released_gbp", ["value", "price_year"]].tolist() == [pytest.approx(37_906), "2022"]
    assert t.loc["vw_cost_gbp", "value"] == pytest.approx(114_000)
    assert t.loc["net_capacity_gbp", ["value", "price_year"]].tolist() == [
        pytest.approx(37_906 - 114_000),
        "2022",
    ]
    assert (
        "x 1.1000" in t.loc["capacity_released_gbp", "source"]
        and "test index" in t.loc["capacity_released_gbp", "source"]
    )
    # break-even £37,906 / 400 = £94.765 a day; against £285 (2022): -£190.235;
    # against £118.49 (2023/24) restated in 2022: 118.49 x 110/121 = £107.718...
    assert t.loc["break_even_cost_per_vw_day", "value"] == pytest.approx(94.765)
    assert t.loc["break_even_minus_jalilian2024_derived", "value"] == pytest.approx(94.765 - 285)
    assert t.loc["break_even_minus_west_herts_2023_24", "value"] == pytest.approx(94.765 - 118.49 * 110 / 121)
    # or restate everything in 2023/24: bed day x 1.21, ward day x 1.1
    u = finance.vw_financial_impact(
        -1.0, (-1.5, -0.5), 100, 400, price_index=index, base_price_year="2023/24"
    ).set_index("measure")
    assert u.loc["net_capacity_gbp", "value"] == pytest.approx(100 * 344.60 * 1.21 - 400 * 285 * 1.1)
    assert u.loc["break_even_minus_west_herts_2023_24", "value"] == pytest.approx(344.60 * 1.21 / 4 - 118.49)


def test_reference_points_are_cited_and_compared_in_one_year():
    refs = finance.VW_DAY_REFERENCE_COSTS
    assert refs["west_herts_2023_24"].value == 118.49 and refs["west_herts_2023_24"].price_year == "2023/24"
    assert "not peer reviewed" in refs["west_herts_2023_24"].source
    # all in 2024/25 local prices: break-even £90; references in other years are not compared without an index
    t = _table()
    assert t.loc["vw_day_reference_west_herts_2023_24", "value"] == 118.49
    assert pd.isna(t.loc["break_even_minus_west_herts_2023_24", "value"])


def test_bed_days_and_money_per_year():
    # 1,500 bed days over two years (730 days) = 750 a year; net -£50,000 over the period = -£25,000 a year
    t = _table(period_days=730)
    assert t.loc["bed_days_released", "value"] == 1500
    assert t.loc["bed_days_released_per_year", ["value", "ci_lower", "ci_upper"]].tolist() == [750, 500, 1000]
    assert t.loc["capacity_released_gbp_per_year", "value"] == pytest.approx(225_000)
    assert t.loc["vw_cost_gbp_per_year", "value"] == pytest.approx(250_000)
    assert t.loc["net_capacity_gbp_per_year", "value"] == pytest.approx(-25_000)
    assert "730 days" in t.loc["bed_days_released", "note"]
