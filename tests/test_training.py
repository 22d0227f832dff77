"""The training track states only answers that the helpers compute.

Every number (or finding) a training page states as an answer is written as
``{abbr}`TEXT (computed: KEY)``` - it renders as TEXT with a tooltip naming
KEY. For each page this file recomputes every KEY with the same helpers the
page's code cells call, using the literal values of the page's own
``parameters`` cell, formats it the way the page does, and asserts that the
page says exactly that. A change to a helper, to a page's parameters or to a
solution's wording that breaks the match fails here, so text and code cannot
drift apart. A second test checks that solutions state no other number, except
numbers restated from their exercise and a few named constants of the methods.

Reasons for each expected value: the helpers are tested against their sources
elsewhere (tests/test_value.py, test_funnel.py, ...); here the reason is the
page itself, and where a solution makes a claim about the simulator's truth
(data/sample/truth.json) the computation asserts that claim too.

Run ``python tests/test_training.py`` to print every computed answer (for
writing a new solution).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from helpers import casemix, derive, finance, funnel, io, opportunity, spc
from helpers import cohort as co
from helpers import evaluation as ev
from helpers import value as hv

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT / "book" / "training"
TRUTH = json.loads((ROOT / "data" / "sample" / "truth.json").read_text())

#: The marker for a computed answer: {abbr}`TEXT (computed: KEY)`.
MARKER = re.compile(r"\{abbr\}`(?P<text>[^`]*?) \(computed: (?P<key>[a-z0-9_]+)\)`")
SESSIONS = sorted(p.name for p in TRAINING.glob("session*.md"))


# --------------------------------------------------------------------------- formatting, as the pages write it
def gbp(x: float) -> str:
    return finance.format_gbp(float(x))


def num(x: float, decimals: int = 0) -> str:
    return finance.format_number(float(x), decimals)


def pct(x: float) -> str:
    return f"{float(x):.0%}"


def listing(items) -> str:
    """'A', 'A and B', 'A, B and C' (the order given)."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


WORDS = {1: "One", 2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six", 7: "Seven", 8: "Eight", 9: "Nine"}


# --------------------------------------------------------------------------- reading the pages
def page_text(name: str) -> str:
    return (TRAINING / name).read_text(encoding="utf-8")


def markers(name: str) -> list[tuple[str, str]]:
    """(key, text) for every computed answer on a page."""
    return [(m["key"], m["text"]) for m in MARKER.finditer(page_text(name))]


_PARAMETERS_CELL = re.compile(r"```\{code-cell\}[^\n]*\n:tags: \[parameters\]\n\n(?P<code>.*?)\n```", re.S)


def parameters_source(name: str) -> str:
    cells = _PARAMETERS_CELL.findall(page_text(name))
    assert len(cells) == 1, f"{name}: expected exactly one code cell tagged parameters, found {len(cells)}"
    return cells[0]


def parameters(name: str) -> dict:
    """The literal values assigned in a page's parameters cell."""
    tree = ast.parse(parameters_source(name))
    out = {}
    for node in tree.body:
        assert (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ), f"{name}: the parameters cell may hold only simple assignments (line {node.lineno})"
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


# --------------------------------------------------------------------------- shared computations (cached)
@functools.lru_cache(maxsize=None)
def outcomes() -> pd.DataFrame:
    return io.load_table("outcomes")


@functools.lru_cache(maxsize=None)
def spells() -> pd.DataFrame:
    return derive.add_spell_fields(io.load_table("spells"))


@functools.lru_cache(maxsize=None)
def los_model(terms: tuple[str, ...] = casemix.DEFAULT_TERMS):
    """Length-of-stay population (all years), number of years, and the case-mix model."""
    banded = casemix.add_casemix_bands(spells())
    banded, years, _ = casemix.restrict_to_year(banded, None)
    population, _ = casemix.indicator_population(banded, "los")
    return population, years, casemix.fit_casemix(population, list(terms), "poisson")


@functools.lru_cache(maxsize=None)
def los_funnel(
    tau2_method: str = funnel.DEFAULT_TAU2_METHOD,
    levels: tuple[float, ...] = (95.0, 99.8),
    min_expected: float = 10.0,
    terms: tuple[str, ...] = casemix.DEFAULT_TERMS,
    outlier_level: float | None = None,
):
    _, _, model = los_model(terms)
    return funnel.funnel(
        model.providers,
        "ratio",
        levels=list(levels),
        tau2_method=tau2_method,
        min_expected=min_expected,
        scale=model.dispersion,
        outlier_level=outlier_level,
    )


@functools.lru_cache(maxsize=None)
def vw_results():
    trial = co.build_target_trial(spells(), io.load_table("virtual_ward"), co.DEFAULT_PATHWAYS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = ev.estimate_target_trial(
            trial, ["acute_los", "total_los", "readmission_30d"], methods=["naive", "aipw", "ipw"]
        )
    return trial, results


@functools.lru_cache(maxsize=None)
def vw_clock_results():
    built = co.build_cohort(spells(), io.load_table("virtual_ward"), co.DEFAULT_PATHWAYS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = ev.estimate_effects(
            built.spells, ["readmission_30d", "readmission_30d_from_acute_discharge"], methods=["ipw"]
        )
    return built, results


def truth_outliers() -> tuple[set[str], set[str]]:
    return set(TRUTH["los_outliers"]["high"]), set(TRUTH["los_outliers"]["low"])


# --------------------------------------------------------------------------- the answers, page by page
def answers_session1(p: dict) -> dict[str, str]:
    target = p["turnover_gbp"] * p["cip_share"]
    summary = hv.cip_summary(p["plan"], target).set_index("cip_class")
    total = summary.loc["plan total"]
    checked = hv.cip_plan(p["plan"])
    listed = checked.loc[checked["qia_status"] != "rejected", "value_gbp"].sum()
    # the solution says the schemes on the list are the counted plan plus those awaiting assessment
    assert listed == pytest.approx(total["value_gbp"] + total["awaiting_qia_gbp"])
    # ... and that the list falls short by exactly the workshop's 20%
    assert target - listed == pytest.approx(target * p["behind_plan"])
    recurrent_cash = summary.loc["cash-releasing, recurrent", "value_gbp"]
    assert total["recurrent_cash_gbp"] == recurrent_cash
    awaiting = checked[checked["qia_status"].isin(hv.QIA_AWAITING)]
    assert set(awaiting["scheme"]) == {
        "Ward skill-mix review",
        "Corporate vacancy freeze",
        "Step-down virtual ward",
    }
    agency = checked.set_index("scheme").loc["Agency nursing to substantive posts"]
    assert agency["start_month"] == 4  # July is the fourth month of the financial year
    changed = [
        dict(s, qia_status="approved")
        if s["scheme"] == "Ward skill-mix review"
        else dict(s, qia_status="rejected")
        if s["scheme"] == "Corporate vacancy freeze"
        else s
        for s in p["plan"]
    ]
    changed_summary = hv.cip_summary(changed, target).set_index("cip_class")
    flags = hv.cip_plan(changed).set_index("scheme")
    # the solution says the skill-mix review is still flagged, as a high risk, and only the virtual ward awaits
    assert flags.loc["Ward skill-mix review", "flag"].startswith("high quality risk")
    assert list(flags.index[flags["qia_status"].isin(hv.QIA_AWAITING)]) == ["Step-down virtual ward"]
    small = checked[checked["value_gbp"] <= 1_000_000]
    assert "Ward skill-mix review" in set(small["scheme"])
    knee = hv.pathway_value(outcomes()).set_index("pathway").loc["knee replacement"]
    return {
        "s1_target": gbp(target),
        "s1_listed_total": gbp(listed),
        "s1_listed_gap": gbp(target - listed),
        "s1_behind_gbp": gbp(target * p["behind_plan"]),
        "s1_behind_share_of_deficit": pct(target * p["behind_plan"] / p["deficit_gbp"]),
        "s1_plan_total": gbp(total["value_gbp"]),
        "s1_awaiting": gbp(total["awaiting_qia_gbp"]),
        "s1_recurrent_cash": gbp(recurrent_cash),
        "s1_recurrent_cash_share": pct(recurrent_cash / target),
        "s1_gap": gbp(total["gap_to_target_gbp"]),
        "s1_other": gbp(total["other_savings_gbp"]),
        "s1_agency_fye": gbp(agency["full_year_effect_gbp"]),
        "s1_change_plan_total": gbp(changed_summary.loc["plan total", "value_gbp"]),
        "s1_change_gap": gbp(changed_summary.loc["plan total", "gap_to_target_gbp"]),
        "s1_change_skillmix_fye": gbp(flags.loc["Ward skill-mix review", "full_year_effect_gbp"]),
        "s1_change_awaiting": gbp(changed_summary.loc["plan total", "awaiting_qia_gbp"]),
        "s1_change_rejected": gbp(changed_summary.loc["rejected (not counted)", "value_gbp"]),
        "s1_small_count": WORDS[len(small)],
        "s1_small_schemes": listing(small["scheme"]),
        "s1_small_total": gbp(small["value_gbp"].sum()),
        "s1_knee_cost": gbp(knee["mean_cost"]),
        "s1_knee_gain": f"{knee['mean_gain']:.3f}",
        "s1_knee_cpug": gbp(knee["cost_per_unit_gain"]),
        "s1_dorothy_cpug": gbp(knee["mean_cost"] / p["dorothy_gain"]),
    }


def answers_session2(p: dict) -> dict[str, str]:
    quadrant = hv.quadrant(hv.provider_value(outcomes()), min_patients=p["min_patients"])
    focus = quadrant[quadrant["pathway"] == p["focus_pathway"]]
    worse_label = hv.QUADRANTS[("lower", "higher")]
    clear = focus["gain_clear"] & focus["cost_clear"]
    worse = focus[(focus["quadrant"] == worse_label) & clear]
    better = focus[(focus["quadrant"] == hv.QUADRANTS[("higher", "lower")]) & clear]
    label_only = focus[(focus["point_quadrant"] == worse_label) & ~clear]
    assert (label_only["quadrant"] == hv.NOT_DISTINGUISHABLE).all()
    not_distinguishable = int((focus["quadrant"] == hv.NOT_DISTINGUISHABLE).sum())
    counts = hv.quadrant_counts(quadrant).set_index("pathway").loc[p["focus_pathway"]]
    assert counts[hv.NOT_DISTINGUISHABLE] == not_distinguishable
    economy = hv.economy(pd.DataFrame(p["input_costs"])).set_index("provider_code")
    t08 = economy.loc["T08"]
    saving = (t08["unit_cost"] - t08["median_unit_cost"]) * t08["quantity"]
    row = focus.set_index("provider_code").loc["T08"]
    cost_gap = (row["adjusted_cost"] - focus["median_cost"].iloc[0]) * row["n"]
    assert cost_gap > 5 * saving  # "more than five times as much"
    at_median = [
        dict(r, total_cost=t08["median_unit_cost"] * t08["quantity"]) if r["provider_code"] == "T08" else r
        for r in p["input_costs"]
    ]
    index_at_median = (
        hv.economy(pd.DataFrame(at_median)).set_index("provider_code").loc["T08", "economy_index"]
    )
    value_table = hv.pathway_value(outcomes())
    long = hv.allocative(
        value_table,
        p["qaly_duration_years"],
        p["discount_rate"],
        first_discounted_year=p["first_discounted_year"],
    ).set_index("pathway")["verdict"]
    short = hv.allocative(
        value_table, 1, p["discount_rate"], first_discounted_year=p["first_discounted_year"]
    ).set_index("pathway")["verdict"]
    assert long.str.startswith("below").all()  # "at 10 years every pathway is far below the range"
    moved = [name for name in short.index if short[name].startswith("within")]
    assert all(
        short[name].startswith("below") for name in short.index if name not in moved
    )  # "the other two stay below"
    equity = hv.equity(outcomes())
    deciles = equity[equity["pathway"] == p["focus_pathway"]].set_index("imd_decile")
    return {
        "s2_clear_worse": listing(worse["provider_code"]),
        "s2_clear_better": listing(better["provider_code"]),
        "s2_label_only": listing(label_only["provider_code"]),
        "s2_not_distinguishable": num(not_distinguishable),
        "s2_t08_price": gbp(t08["unit_cost"]),
        "s2_median_price": gbp(t08["median_unit_cost"]),
        "s2_t08_index": f"{t08['economy_index']:.2f}",
        "s2_t08_quantity": num(t08["quantity"]),
        "s2_price_saving": gbp(saving),
        "s2_cost_gap": gbp(cost_gap),
        "s2_total_at_median": num(t08["median_unit_cost"] * t08["quantity"]),
        "s2_index_at_median": f"{index_at_median:.2f}",
        "s2_within_at_1y": listing(moved),
        "s2_before_d1": f"{deciles.loc[1, 'mean_before']:.3f}",
        "s2_before_d10": f"{deciles.loc[10, 'mean_before']:.3f}",
        "s2_gain_d1": f"{deciles.loc[1, 'mean_gain']:.3f}",
        "s2_gain_d10": f"{deciles.loc[10, 'mean_gain']:.3f}",
    }


def answers_session3(p: dict) -> dict[str, str]:
    assert p["indicator"] == "los", "the session 3 answers are written for length of stay"
    terms = tuple(p["case_mix"])
    levels = tuple(float(x) for x in p["limits"])
    _, _, model = los_model(terms)
    level = float(p["outlier_level"])
    assert level == 99.8, "the solutions are written for flags at 99.8%"
    main = los_funnel(p["tau2_method"], levels, float(p["min_expected"]), terms, level)
    shmi = los_funnel("shmi", levels, float(p["min_expected"]), terms, level)
    prov = main.providers
    high = sorted(prov.loc[prov["outlier"] == "high", "provider_code"])
    low = sorted(prov.loc[prov["outlier"] == "low", "provider_code"])
    true_high, true_low = truth_outliers()
    assert set(high) == true_high and set(low) == true_low, (
        "the solution says the funnel finds all four and nothing else"
    )
    beyond_95 = set(prov.loc[prov["flag_95"] != "none", "provider_code"])
    false_alarms = sorted(beyond_95 - true_high - true_low)
    league = prov.sort_values("ratio", ascending=False).reset_index(drop=True)
    fourth = league.iloc[3]
    assert fourth["outlier"] == "none", "the solution says the fourth-ranked provider is inside the funnel"
    flagged_shmi = sorted(shmi.providers.loc[shmi.providers["outlier"] != "none", "provider_code"])
    assert set(flagged_shmi) == true_high | true_low, "the solution says shmi flags the same four here"
    fourth_shmi = shmi.providers.set_index("provider_code").loc[fourth["provider_code"]]
    assert fourth_shmi["upper_998"] < fourth["upper_998"], "the solution says the SHMI limits are narrower"
    return {
        "s3_c_statistic": f"{model.diagnostics['c_statistic'].iloc[0]:.2f}",
        "s3_high": listing(high),
        "s3_low": listing(low),
        "s3_false_alarm": listing(false_alarms),
        "s3_fourth_provider": fourth["provider_code"],
        "s3_fourth_ratio": f"{fourth['ratio']:.3f}",
        "s3_fourth_pct": pct(fourth["ratio"] - 1),
        "s3_fourth_upper": f"{fourth['upper_998']:.3f}",
        "s3_fourth_upper_shmi": f"{fourth_shmi['upper_998']:.3f}",
        "s3_phi": f"{main.dispersion['phi'].iloc[0]:.2f}",
        "s3_phi_shmi": f"{shmi.dispersion['phi'].iloc[0]:.2f}",
        "s3_flags_shmi": listing(flagged_shmi),
    }


def answers_session4(p: dict) -> dict[str, str]:
    _, years, _ = los_model()
    result = los_funnel(outlier_level=float(p["outlier_level"]))

    def run(benchmark, share=p["marginal_cost_share"]):
        return opportunity.opportunity(
            result,
            benchmark,
            False,
            1.0,
            p["cost_per_bed_day"],
            p["occupancy"],
            share,
            seed=p["seed"],
            years=years,
            price_year=p["price_year"],
        )

    median, quartile = run(p["benchmark"]), run("better_quartile")
    s = median.summary.set_index("estimate")
    q = quartile.summary.set_index("estimate")
    holby = median.providers.set_index("provider_code").loc[p["holby"]]
    assert holby["outlier"] == "high", "the page prints that Holby is beyond the limit"
    assert s.loc["naive", "bed_days"] > s.loc["interval", "bed_days_upper"], (
        "the solution says naive lies above the interval"
    )
    money = finance.bed_days_value(
        holby["opportunity_bed_days"],
        p["cost_per_bed_day"],
        p["occupancy"],
        p["marginal_cost_share"],
        p["price_year"],
    ).iloc[0]
    cash20 = finance.bed_days_value(
        holby["opportunity_bed_days"], p["cost_per_bed_day"], p["occupancy"], 0.2
    ).iloc[0]
    all_in = finance.capacity_released_gbp(holby["opportunity_bed_days"], 1032)
    return {
        "s4_naive_days": num(s.loc["naive", "bed_days"]),
        "s4_naive_providers": num(s.loc["naive", "providers"]),
        "s4_outlier_days": num(s.loc["outliers_only", "bed_days"]),
        "s4_outlier_providers": num(s.loc["outliers_only", "providers"]),
        "s4_interval_lower": num(s.loc["interval", "bed_days_lower"]),
        "s4_interval_upper": num(s.loc["interval", "bed_days_upper"]),
        "s4_bq_naive_days": num(q.loc["naive", "bed_days"]),
        "s4_bq_naive_providers": num(q.loc["naive", "providers"]),
        "s4_bq_naive_growth": num(q.loc["naive", "bed_days"] - s.loc["naive", "bed_days"]),
        "s4_bq_outlier_growth": num(q.loc["outliers_only", "bed_days"] - s.loc["outliers_only", "bed_days"]),
        "s4_holby_days": num(money["bed_days"]),
        "s4_holby_beds": num(money["beds_equivalent"], 1),
        "s4_holby_capacity": gbp(money["capacity_released_gbp"]),
        "s4_holby_cash0": gbp(money["cash_releasing_gbp"]),
        "s4_holby_cash20": gbp(cash20["cash_releasing_gbp"]),
        "s4_holby_cash20_share": pct(cash20["cash_releasing_gbp"] / p["holby_shortfall_gbp"]),
        "s4_holby_allin": gbp(all_in),
        "s4_holby_allin_share": pct(all_in / p["holby_shortfall_gbp"]),
    }


def answers_session5(p: dict) -> dict[str, str]:
    values = list(p["agency_spend_k"])
    series = pd.DataFrame(
        {"date": pd.date_range(p["first_month"], periods=len(values), freq="MS"), "value": values}
    )
    limits = spc.xmr_limits(series["value"])
    chart = spc.spc(series, better=p["better"])
    assert (chart["special_cause"] == "none").all(), "the solution says no rule fires"
    summary = spc.summarise(chart, better=p["better"], target=p["plan_k"]).iloc[0]
    high = spc.spc(series.assign(value=values[:-1] + [520]), better=p["better"]).iloc[-1]
    two = spc.spc(series.assign(value=values[:-2] + [455, 460]), better=p["better"]).iloc[-1]
    assert max(455, 460) < two["upper_2sigma"], "the solution says both months lie below the two-sigma line"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", spc.SPCWarning)
        bed_days = spc.monthly_series(spells(), "emergency_bed_days")
        providers = spc.summarise(spc.spc(bed_days, group="group", better=p["better"]), better=p["better"])
        one = bed_days[bed_days["group"] == p["rebase_provider"]]
        rebased = spc.spc(one, group="group", better=p["better"], rebase_dates=[p["rebase_date"]])
    special = providers[~providers["variation_icon"].isin(["common_cause", "not_assessed"])]
    assert special["variation_icon"].str.startswith("improvement").all(), (
        "the solution says each is an improvement"
    )
    assert TRUTH["virtual_ward"]["providers"][p["rebase_provider"]] == p["rebase_date"]
    return {
        "s5_mean": num(limits["mean"], 1),
        "s5_mean_mr": num(limits["mean_moving_range"], 1),
        "s5_lower": num(limits["lower_limit"], 1),
        "s5_upper": num(limits["upper_limit"], 1),
        "s5_assurance": summary["assurance_icon"],
        "s5_gap_month": gbp((limits["mean"] - p["plan_k"]) * 1000),
        "s5_gap_year": gbp((limits["mean"] - p["plan_k"]) * 12 * 1000),
        "s5_change_rule": high["special_cause"],
        "s5_change_type": high["point_type"],
        "s5_two_rule": two["special_cause"],
        "s5_two_upper_2sigma": num(two["upper_2sigma"], 1),
        "s5_special_latest": listing(special["group"]),
        "s5_rebase_points": num((rebased["period"] == rebased["period"].max()).sum()),
        "s5_rebase_icon": spc.summarise(rebased, better=p["better"])["variation_icon"].iloc[0],
    }


def _shorter(x: float) -> str:
    """A negative effect written as a positive amount after the word 'shorter' or 'lower'."""
    assert x < 0, f"the page says shorter/lower, but the estimate is {x:+.2f}"
    return f"{-x:.2f}"


def _longer(x: float) -> str:
    assert x > 0, f"the page says longer/higher, but the estimate is {x:+.2f}"
    return f"{x:.2f}"


def answers_session6(p: dict) -> dict[str, str]:
    assert p["cost_per_bed_day"] is None and p["cost_per_vw_day"] is None, (
        "the answers use the cited defaults"
    )
    trial, results = vw_results()
    e = results.effects.set_index(["outcome", "method"])
    described = co.describe_cohort(trial.rows).set_index("group")
    inputs = ev.finance_inputs(results.effects, trial.rows, "aipw", periods=trial.periods)
    common = dict(
        cost_per_bed_day=finance.COST_PER_BED_DAY,
        budget_years=inputs["period_days"] / 365,
        price_year=p["price_year"],
        marginal_cost_share=p["marginal_cost_share"],
        payment=p["payment"],
    )
    impact = finance.vw_financial_impact(
        **inputs, cost_per_vw_day=finance.COST_PER_VW_DAY, vw_paid_by=p["vw_paid_by"], **common
    ).set_index("measure")["value"]
    assert pd.isna(impact["net_capacity_gbp"]), (
        "the solution says the table will not net 2020/21 against 2022"
    )
    index = finance.PriceIndex(p["illustrative_price_index"], "illustrative index", "session 6 parameters")
    assert index.factor("2020/21", "2022") == pytest.approx(1.10), "the exercise says x 1.10"
    uplifted = finance.vw_financial_impact(
        **inputs,
        cost_per_vw_day=finance.COST_PER_VW_DAY,
        price_index=index,
        vw_paid_by=p["vw_paid_by"],
        **common,
    ).set_index("measure")["value"]
    provider_pays = finance.vw_financial_impact(
        **inputs, cost_per_vw_day=finance.COST_PER_VW_DAY, price_index=index, vw_paid_by="provider", **common
    ).set_index("measure")["value"]
    full = finance.vw_financial_impact(
        **inputs,
        cost_per_bed_day=finance.COST_PER_BED_DAY,
        cost_per_vw_day=86,
        price_year="2022",
        price_index=index,
        budget_years=inputs["period_days"] / 365,
    ).set_index("measure")["value"]
    assert (
        abs(provider_pays["commissioner_spend_change_gbp"]) < 0.5
    )  # "the commissioner's spending does not change"
    # "for a step-down ward the three regimes give the same cash answer"
    for regime in ("pbr", "block"):
        other = finance.vw_financial_impact(
            **inputs,
            cost_per_vw_day=finance.COST_PER_VW_DAY,
            price_index=index,
            vw_paid_by="provider",
            **{**common, "payment": regime},
        ).set_index("measure")["value"]
        assert other["provider_net_gbp"] == pytest.approx(provider_pays["provider_net_gbp"]), regime
    days = p["bradford_days_saved"]
    bradford = finance.vw_financial_impact(
        -days,
        (-days, -days),
        p["bradford_patients"],
        p["bradford_patients"] * days,
        period_days=365,
        price_index=index,
    ).set_index("measure")["value"]
    bradford_2020 = finance.vw_financial_impact(
        -days, (-days, -days), p["bradford_patients"], p["bradford_patients"] * days, period_days=365
    ).set_index("measure")["value"]
    truth = TRUTH["virtual_ward"]["att_acute_los_days"]
    ipw_acute = e.loc[("acute_los", "aipw")]
    assert ipw_acute["ci_lower"] <= truth <= ipw_acute["ci_upper"], (
        "the solution says the interval contains the truth"
    )
    naive = e.loc[("acute_los", "naive")]
    assert naive["ci_lower"] > ipw_acute["ci_upper"], (
        "the solution says the naive interval misses the adjusted one"
    )
    clock = vw_clock_results()[1].effects.set_index(["outcome", "method"])
    end = clock.loc[("readmission_30d", "ipw")]
    acute = clock.loc[("readmission_30d_from_acute_discharge", "ipw")]
    assert acute["estimate"] < end["estimate"] < 0 < end["ci_upper"], (
        "the solution compares the two clocks so"
    )
    return {
        "s6_naive_acute": _longer(naive["estimate"]),
        "s6_naive_acute_low": num(naive["ci_lower"], 2),
        "s6_naive_acute_high": _longer(naive["ci_upper"]),
        "s6_ipw_acute": _shorter(ipw_acute["estimate"]),
        "s6_ipw_acute_short_low": _shorter(ipw_acute["ci_upper"]),
        "s6_ipw_acute_short_high": _shorter(ipw_acute["ci_lower"]),
        "s6_truth_acute": _shorter(truth),
        "s6_ipw_total": _longer(e.loc[("total_los", "aipw"), "estimate"]),
        "s6_treated_age": num(described.loc["virtual ward", "mean_age"], 1),
        "s6_treated_frailty": num(described.loc["virtual ward", "mean_frailty"], 1),
        "s6_control_age": num(described.loc["control", "mean_age"], 1),
        "s6_control_frailty": num(described.loc["control", "mean_frailty"], 1),
        "s6_readmit_acute": _shorter(acute["estimate"]),
        "s6_readmit_end": _shorter(end["estimate"]),
        "s6_readmit_acute_low": _shorter(acute["ci_lower"]),
        "s6_readmit_acute_high": num(acute["ci_upper"], 2),
        "s6_readmit_end_low": _shorter(end["ci_lower"]),
        "s6_readmit_end_high": _longer(end["ci_upper"]),
        "s6_bed_days": num(impact["bed_days_released"]),
        "s6_bed_days_year": num(impact["bed_days_released_per_year"]),
        "s6_capacity": gbp(impact["capacity_released_gbp"]),
        "s6_vw_cost": gbp(impact["vw_cost_gbp"]),
        "s6_break_even": gbp(impact["break_even_cost_per_vw_day"]),
        "s6_capacity_2022": gbp(uplifted["capacity_released_gbp"]),
        "s6_net_capacity_2022": gbp(uplifted["net_capacity_gbp"]),
        "s6_break_even_2022": gbp(uplifted["break_even_cost_per_vw_day"]),
        "s6_gap_jalilian": gbp(uplifted["break_even_minus_jalilian2024_derived"]),
        "s6_gap_west_herts": gbp(uplifted["break_even_minus_west_herts_2023_24"]),
        "s6_net_capacity_86": gbp(full["net_capacity_gbp"]),
        "s6_net_cash_86": gbp(full["net_cash_gbp"]),
        "s6_commissioner": gbp(uplifted["commissioner_spend_change_gbp"]),
        "s6_provider_net_provider_pays": gbp(provider_pays["provider_net_gbp"]),
        "s6_brad_days": num(bradford["bed_days_released_per_year"]),
        "s6_brad_beds": num(bradford["beds_equivalent"], 1),
        "s6_brad_capacity": gbp(bradford_2020["capacity_released_gbp"]),
        "s6_brad_capacity_2022": gbp(bradford["capacity_released_gbp"]),
        "s6_brad_vw_cost": gbp(bradford["vw_cost_gbp"]),
        "s6_brad_net": gbp(bradford["net_capacity_gbp_per_year"]),
    }


def answers_facilitator(_: dict) -> dict[str, str]:
    top5 = los_funnel().providers.sort_values("ratio", ascending=False).head(5)
    return {"f_top5_inside": listing(top5.loc[top5["outlier"] == "none", "provider_code"])}


ANSWERS: dict[str, Callable[[dict], dict[str, str]]] = {
    "session1_value.md": answers_session1,
    "session2_benchmarks.md": answers_session2,
    "session3_funnel.md": answers_session3,
    "session4_opportunity.md": answers_session4,
    "session5_spc.md": answers_session5,
    "session6_evaluation.md": answers_session6,
    "facilitator.md": answers_facilitator,
}


def computed(name: str) -> dict[str, str]:
    p = parameters(name) if name.startswith("session") else {}
    return ANSWERS[name](p)


# --------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_every_stated_answer_is_what_the_helpers_compute(name):
    expected = computed(name)
    stated = markers(name)
    keys = [k for k, _ in stated]
    assert set(keys) == set(expected), (
        f"{name}: answers stated but not computed here: {sorted(set(keys) - set(expected))}; "
        f"computed but not stated on the page: {sorted(set(expected) - set(keys))}"
    )
    wrong = [
        f"{k}: page says {text!r}, helpers give {expected[k]!r}" for k, text in stated if text != expected[k]
    ]
    assert not wrong, f"{name}:\n  " + "\n  ".join(wrong)


def test_every_page_with_answers_is_checked():
    for page in sorted(TRAINING.glob("*.md")):
        if MARKER.search(page.read_text(encoding="utf-8")):
            assert page.name in ANSWERS, (
                f"{page.name} states computed answers but this file does not check them"
            )


# Numbers a solution may state without a computation: constants of the methods,
# each with its source in the chapters (all other numbers must be computed
# answers or restate a number from the exercise itself).
ALLOWED_NUMBERS = {
    "0.7": "c-statistic above which a model separates usefully (book/variation.md)",
    "0.1": "standardised mean difference below which groups are balanced (Austin 2009)",
    "95%": "the usual interval and inner funnel limit",
    "99.8%": "the outer funnel limit (Spiegelhalter 2005)",
    "92%": "target bed occupancy (NHS England planning guidance 2023/24)",
    "£344.60": "default cost per bed day (National Cost Collection 2020/21)",
}
_FENCE_SOLUTION = re.compile(r"^(`{3,})\{solution\} (?P<label>\S+)\n(?P<body>.*?)^\1$", re.S | re.M)
_GATED = re.compile(
    r"^`{3,}\{solution-start\} (?P<label>\S+)\n.*?^`{3,}$(?P<body>.*?)^`{3,}\{solution-end\}", re.S | re.M
)
_EXERCISE = re.compile(r"^(`{3,})\{exercise\}[^\n]*\n:label: (?P<label>\S+)\n(?P<body>.*?)^\1$", re.S | re.M)
_CODE_CELL = re.compile(r"^```\{code-cell\}.*?^```$", re.S | re.M)
_NUMBER = re.compile(r"(?<![A-Za-z0-9.,/-])£?\d[\d,]*(?:\.\d+)?%?")  # not inside EQ-5D, T08, 2024/25


def _numbers(text: str) -> set[str]:
    text = MARKER.sub("", text)
    text = re.sub(r"\{(cite|doc|term|ref)\}`[^`]*`", "", text)
    text = re.sub(r"`[^`]*`", "", text)  # parameter names and values typed by the reader
    text = re.sub(r"\b\d{4}/\d{2}\b", "", text)  # financial years
    text = re.sub(r"^\s*\d+\.\s", "", text, flags=re.M)  # list numbering
    text = re.sub(r"\b(decile|session) \d+", "", text)  # names, not quantities
    return {m.rstrip(",.") for m in _NUMBER.findall(text)}


def solutions(name: str) -> dict[str, str]:
    text = page_text(name)
    out = {m["label"]: m["body"] for m in _FENCE_SOLUTION.finditer(text)}
    for m in _GATED.finditer(text):
        out[m["label"]] = _CODE_CELL.sub("", m["body"])
    return out


@pytest.mark.parametrize("name", SESSIONS)
def test_solutions_state_no_unchecked_numbers(name):
    exercises = {m["label"]: m["body"] for m in _EXERCISE.finditer(page_text(name))}
    problems = []
    for label, body in solutions(name).items():
        given = _numbers(exercises.get(label, ""))
        loose = _numbers(body) - given - set(ALLOWED_NUMBERS)
        if loose:
            problems.append(f"{label}: {sorted(loose)}")
    assert not problems, (
        f"{name}: solutions state numbers that are neither computed answers "
        "({abbr}`TEXT (computed: KEY)`) nor given in the exercise: " + "; ".join(problems)
    )


@pytest.mark.parametrize("name", SESSIONS)
def test_session_has_outcomes_reading_exercises_and_quiz(name):
    text = page_text(name)
    for part in (
        "**Learning outcomes.**",
        "**Reading before the session.**",
        "**Worked notebook.**",
        "## Exercises",
        "## Quiz",
    ):
        assert part in text, f"{name}: missing {part}"
    exercises = [m["label"] for m in _EXERCISE.finditer(text)]
    quiz = [m["label"] for m in _EXERCISE.finditer(text) if "-q" in m["label"]]
    assert len(exercises) - len(quiz) >= 4, f"{name}: fewer than four exercises"
    assert len(quiz) >= 3, f"{name}: fewer than three quiz questions"
    assert len(set(exercises)) == len(exercises)
    sols = solutions(name)
    assert set(sols) == set(exercises), (
        f"{name}: exercises without a solution: {sorted(set(exercises) - set(sols))}"
    )
    gated_starts = len(re.findall(r"\{solution-start\}", text))
    assert gated_starts == len(re.findall(r"\{solution-end\}", text))
    options = re.findall(r"\{solution(?:-start)?\} \S+\n(:class: \w+)", text)
    assert options == [":class: dropdown"] * len(exercises), (
        f"{name}: every solution must be a hidden dropdown"
    )
    # at least one exercise asks the reader to change a number and rerun
    assert "**change me**" in text and "# change me" in parameters_source(name)


@pytest.mark.parametrize("name", SESSIONS)
def test_parameters_are_literals_with_a_comment_each(name):
    source = parameters_source(name)
    lines = source.splitlines()
    for node in ast.parse(source).body:
        assert "#" in lines[node.end_lineno - 1], (
            f"{name}: parameter on line {node.end_lineno} has no comment"
        )
    assert parameters(name)  # literal_eval succeeds for every value


def test_links_resolve():
    glossary = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8").lower()
    labels = set(
        re.findall(r"^\(([a-z0-9-]+)\)=", "\n".join(p.read_text() for p in TRAINING.glob("*.md")), re.M)
    )
    for page in sorted(TRAINING.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", text):
            path = (page.parent / target).resolve()
            assert path.with_suffix(".md").is_file() or path.with_suffix(".ipynb").is_file(), (
                f"{page.name}: {{doc}} target {target} not found"
            )
        for term in re.findall(r"\{term\}`(?:[^`<]*<)?([^`>]+)>?`", text):
            assert f"\n{term.lower()}\n" in glossary, f"{page.name}: glossary has no term {term!r}"
        for ref in re.findall(r"\{ref\}`([^`]+)`", text):
            assert ref in labels, f"{page.name}: no label {ref!r} in the training pages"


def test_the_track_is_in_the_table_of_contents():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = {
        section["file"]
        for part in toc["parts"]
        for chapter in part["chapters"]
        for section in [chapter, *chapter.get("sections", [])]
    }
    for page in TRAINING.glob("*.md"):
        assert f"book/training/{page.stem}" in listed, f"{page.name} is not in _toc.yml, so it is not built"


def test_holby_plan_is_the_value_notebooks_example():
    """Session 1 says the plan is the value notebook's example for Holby: it must be the same list."""
    from helpers.cli import notebook_parameters

    defaults = notebook_parameters(ROOT / "notebooks" / "value.ipynb")
    assert parameters("session1_value.md")["plan"] == ast.literal_eval(defaults["cip_plan"]["default"])
    assert parameters("session1_value.md")["turnover_gbp"] * parameters("session1_value.md")[
        "cip_share"
    ] == ast.literal_eval(defaults["cip_target_gbp"]["default"])


def test_a_blank_assessment_status_stops_the_check():
    """Session 1, quiz question 4: a blank status is refused, naming the scheme and the column."""
    plan = parameters("session1_value.md")["plan"]
    blank = [dict(plan[0], qia_status=None)] + plan[1:]
    with pytest.raises(io.InputError, match=r"qia_status.*Agency nursing"):
        hv.cip_plan(blank)


def test_scenario_figures_are_the_workshops():
    """Holby's figures are the Health Foundation workshop's (shared/seeds 001): £4m deficit on £280m, 5%, 20% behind."""
    p = parameters("session1_value.md")
    assert (p["turnover_gbp"], p["deficit_gbp"], p["cip_share"], p["behind_plan"]) == (
        280_000_000,
        4_000_000,
        0.05,
        0.20,
    )
    index = page_text("index.md")
    for figure in ("£4m", "£280m", "5% of turnover", "20% behind plan"):
        assert figure in index


def test_session_one_runs_top_to_bottom_on_the_sample():
    """A reader following only the book can run session one: every cell executes and prints the stated answers."""
    nbclient = pytest.importorskip("nbclient")
    from myst_nb.core.read import read_myst_markdown_notebook

    nb = read_myst_markdown_notebook(page_text("session1_value.md"))
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(TRAINING)}}
    ).execute()
    printed = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    answers = computed("session1_value.md")
    for key in (
        "s1_target",
        "s1_listed_total",
        "s1_plan_total",
        "s1_awaiting",
        "s1_gap",
        "s1_other",
        "s1_recurrent_cash",
        "s1_recurrent_cash_share",
        "s1_agency_fye",
        "s1_change_plan_total",
        "s1_change_gap",
        "s1_change_awaiting",
        "s1_change_rejected",
        "s1_small_total",
        "s1_dorothy_cpug",
    ):
        assert answers[key] in printed, f"session 1's cells do not print {key} = {answers[key]}"


if __name__ == "__main__":
    for page in sorted(ANSWERS):
        for key, value in computed(page).items():
            print(f"{page}\t{key}\t{value}")
