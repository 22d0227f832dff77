"""Money conversions: bed days to beds and to pounds, with cited unit costs.

Every £ figure in the handbook comes through this module, so each carries
its unit cost, the cost's price year and its source. The conversions:

* beds equivalent = bed days / days in the year / target occupancy;
* capacity released (£) = bed days x cost per bed day - the value of the
  capacity freed. It is **not cash**: the money stays spent unless beds (and
  their staff) are taken out (HFMA, *Introductory guide to NHS finance*,
  chapter 18: cash-releasing versus non-cash-releasing savings);
* cash-releasing (£) = capacity released x a marginal cost share - the part
  of a bed day's cost that actually stops when the day is not used (for
  example drugs, consumables, food), a share the local costing team sets.

Functions accept a number or an array/Series and return the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

Number = TypeVar("Number", float, np.ndarray, pd.Series)


@dataclass(frozen=True)
class UnitCost:
    """A unit cost with its price year and source (``citation`` is a key in references.bib)."""

    value: float
    unit: str
    price_year: str
    source: str
    citation: str

    def label(self) -> str:
        """Short text for a table or caption: '£345 per bed day (2020/21 prices; source)'."""
        return f"{format_gbp(self.value)} per {self.unit} ({self.price_year} prices; {self.source})"


#: Cost of a day in an acute bed excluding diagnosis and treatment: £344.60 in
#: 2020/21, from the National Cost Collection, quoted by the Department of
#: Health and Social Care in a written answer to Parliament (UIN 146908,
#: answered 1 March 2023). The "hotel" cost of a day, which is what a shorter
#: stay saves; the all-in average of £1,032 per day includes the procedures,
#: which a shorter stay does not avoid.
COST_PER_BED_DAY = UnitCost(
    value=344.60,
    unit="bed day",
    price_year="2020/21",
    source="National Cost Collection 2020/21, acute bed day excluding diagnosis and treatment (DHSC written answer UIN 146908)",
    citation="dhsc2023beddaycost",
)

#: Target occupancy of general and acute beds: 92% (NHS England, 2023/24
#: priorities and operational planning guidance).
TARGET_OCCUPANCY = 0.92
TARGET_OCCUPANCY_SOURCE = (
    "NHS England 2023/24 priorities and operational planning guidance (G&A bed occupancy 92%)"
)
TARGET_OCCUPANCY_CITATION = "nhse2023planning"

#: Share of the bed-day cost that stops without closing beds. 0 by default: a
#: bed day freed on an open ward releases no cash until the ward's capacity is
#: removed. Set it locally from PLICS cost pools (the variable share).
MARGINAL_COST_SHARE = 0.0

DAYS_PER_YEAR = 365


def beds_equivalent(
    bed_days: Number, occupancy: float = TARGET_OCCUPANCY, days_per_year: float = DAYS_PER_YEAR
) -> Number:
    """Beds that a number of bed days a year keeps occupied: bed days / days / occupancy.

    Dividing by the target occupancy converts occupied-bed days to beds that
    must be staffed and open (a bed at 92% occupancy is full 336 days a year).
    """
    if not 0 < occupancy <= 1:
        raise ValueError(f"occupancy must be a share in (0, 1]; got {occupancy!r}.")
    return bed_days / days_per_year / occupancy


def capacity_released_gbp(bed_days: Number, cost_per_bed_day: float | UnitCost = COST_PER_BED_DAY) -> Number:
    """Value of bed days freed, £ = bed days x cost per bed day (non-cash-releasing)."""
    cost = cost_per_bed_day.value if isinstance(cost_per_bed_day, UnitCost) else float(cost_per_bed_day)
    if cost < 0:
        raise ValueError(f"cost_per_bed_day must not be negative; got {cost!r}.")
    return bed_days * cost


def cash_releasing_gbp(capacity_gbp: Number, marginal_cost_share: float = MARGINAL_COST_SHARE) -> Number:
    """Cash that actually leaves the cost base: capacity £ x marginal cost share.

    With a share of 1 the whole cost stops - true only when the beds and
    their staff are removed.
    """
    if not 0 <= marginal_cost_share <= 1:
        raise ValueError(f"marginal_cost_share must be in [0, 1]; got {marginal_cost_share!r}.")
    return capacity_gbp * marginal_cost_share


def bed_days_value(
    bed_days: float | np.ndarray | pd.Series,
    cost_per_bed_day: float | UnitCost = COST_PER_BED_DAY,
    occupancy: float = TARGET_OCCUPANCY,
    marginal_cost_share: float = MARGINAL_COST_SHARE,
    price_year: str | None = None,
) -> pd.DataFrame:
    """Bed days in the units a board reads, one row per value given.

    Columns: bed_days, beds_equivalent, capacity_released_gbp (non-cash),
    cash_releasing_gbp, cost_per_bed_day, price_year, occupancy,
    marginal_cost_share.
    """
    cost = cost_per_bed_day.value if isinstance(cost_per_bed_day, UnitCost) else float(cost_per_bed_day)
    year = price_year or (
        cost_per_bed_day.price_year if isinstance(cost_per_bed_day, UnitCost) else "not stated"
    )
    days = np.atleast_1d(np.asarray(bed_days, dtype=float))
    capacity = capacity_released_gbp(days, cost)
    return pd.DataFrame(
        {
            "bed_days": days,
            "beds_equivalent": beds_equivalent(days, occupancy),
            "capacity_released_gbp": capacity,
            "cash_releasing_gbp": cash_releasing_gbp(capacity, marginal_cost_share),
            "cost_per_bed_day": cost,
            "price_year": year,
            "occupancy": occupancy,
            "marginal_cost_share": marginal_cost_share,
        }
    )


def format_gbp(value: float, decimals: int = 0) -> str:
    """Pounds with thousands separators: 1234567.8 -> '£1,234,568'; negatives '-£1,200'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "not available"
    sign = "-" if value < 0 else ""
    return f"{sign}£{abs(value):,.{decimals}f}"


def format_number(value: float, decimals: int = 0) -> str:
    """A number with thousands separators: 12345.6 -> '12,346'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "not available"
    return f"{value:,.{decimals}f}"


# ===========================================================================
# Virtual ward finance (METHODS.md section 6). Owned by the virtual ward
# evaluation (issue 5); uses the conversions above and adds nothing to them.
# ===========================================================================

#: Cost of one occupied virtual ward patient day: about £285 in 2022 prices,
#: derived from the one published NHS costing of a running virtual ward that
#: we cite: Wrightington, Wigan and Leigh's virtual ward cost about £1 million
#: in calendar year 2022 for 40 virtual ward beds used at about 24% (Jalilian
#: et al 2024, BMJ Open 14:e081378), so £1,000,000 / (40 x 365 x 0.24 occupied
#: days) = £285. A default to start a conversation, not a price: replace it
#: with the local virtual ward's accrued expenditure / patient days. A virtual
#: ward running fuller spreads its fixed staff cost thinner (at 80% use the
#: same budget is about £86 a day).
COST_PER_VW_DAY = UnitCost(
    value=285.0,
    unit="virtual ward patient day",
    price_year="2022",
    source=(
        "Jalilian et al 2024, BMJ Open 14:e081378: about £1 million for 40 virtual ward beds in 2022 "
        "at 24% use; £1,000,000 / (40 x 365 x 0.24) patient days"
    ),
    citation="jalilian2024",
)

#: Second reference point for a virtual ward day: £118.49 per virtual ward day
#: against £569 per inpatient day, West Hertfordshire Teaching Hospitals with
#: Central London Community Healthcare, 2023/24 (a local evaluation, not peer
#: reviewed; quoted in the handbook's METHODS.md section 6). A ward run at
#: scale and well used; the £285 above is a ward used at about a quarter of
#: its capacity.
COST_PER_VW_DAY_WEST_HERTS = UnitCost(
    value=118.49,
    unit="virtual ward patient day",
    price_year="2023/24",
    source=(
        "West Hertfordshire Teaching Hospitals and Central London Community Healthcare 2023/24: "
        "£118.49 per virtual ward day against £569 per inpatient day (local evaluation, not peer reviewed)"
    ),
    citation="",
)

#: The reference costs of a virtual ward day the break-even is compared with (METHODS.md 6).
VW_DAY_REFERENCE_COSTS: dict[str, UnitCost] = {
    "jalilian2024_derived": COST_PER_VW_DAY,
    "west_herts_2023_24": COST_PER_VW_DAY_WEST_HERTS,
}


@dataclass(frozen=True)
class PriceIndex:
    """Index levels by price year (any base), with the index's name and source.

    ``levels`` maps a price-year label exactly as the unit costs write it
    ("2020/21", "2022", "2024/25") to the index level for that year. The
    handbook ships no levels: the user states them (for example the NHS cost
    inflation index, pay and prices, from the PSSRU/University of Kent *Unit
    Costs of Health and Social Care*), so every uplift is visible.
    """

    levels: dict[str, float]
    name: str = "price index supplied by the user"
    source: str = "not stated"

    def factor(self, from_year: str, to_year: str) -> float:
        """Uplift factor from one price year to another: level[to] / level[from]."""
        if from_year == to_year:
            return 1.0
        missing = [y for y in (from_year, to_year) if y not in self.levels]
        if missing:
            raise ValueError(
                f"the price index ({self.name}) has no level for {missing}; it has "
                f"{sorted(self.levels)}. Add the year or enter costs in one price year."
            )
        lo, hi = float(self.levels[from_year]), float(self.levels[to_year])
        if lo <= 0 or hi <= 0:
            raise ValueError(f"price index levels must be positive; got {from_year}: {lo}, {to_year}: {hi}")
        return hi / lo


def uplift(value: Number, from_year: str, to_year: str, index: PriceIndex) -> Number:
    """A £ value in ``from_year`` prices restated in ``to_year`` prices: value x level[to] / level[from]."""
    return value * index.factor(from_year, to_year)


#: Columns of the ``financial_impact`` table.
FINANCIAL_IMPACT_COLUMNS: list[str] = [
    "measure",
    "value",
    "ci_lower",
    "ci_upper",
    "unit",
    "price_year",
    "source",
    "note",
]


#: How a provider is paid for emergency spells (METHODS.md 6), with who gains when stays shorten.
PAYMENT_REGIMES: dict[str, str] = {
    "api": (
        "aligned payment and incentive (NHS Payment Scheme, since 2023/24): a fixed element pays for "
        "emergency activity whatever its length of stay, so shorter stays free capacity without moving the "
        "provider's income; the gain reaches cash only if beds close or are used for work paid through the "
        "variable element, such as elective activity"
    ),
    "pbr": (
        "payment by results, a price per spell: a step-down does not change the number of spells, so income "
        "moves only with long-stay payments and admissions avoided, and the commissioner saves what the "
        "provider loses"
    ),
    "block": (
        "a block contract: income does not move with activity, so the provider keeps any cash it releases "
        "and bears the ward's cost unless the commissioner funds it"
    ),
}
#: Older names of the regimes, still accepted.
PAYMENT_ALIASES: dict[str, str] = {"activity": "pbr", "fixed": "block"}


def payment_regime(payment: str) -> str:
    """The regime key (``api``, ``pbr`` or ``block``) of ``payment``, accepting the older names."""
    key = PAYMENT_ALIASES.get(payment, payment)
    if key not in PAYMENT_REGIMES:
        raise ValueError(
            f"payment must be one of {sorted(PAYMENT_REGIMES)} (or {sorted(PAYMENT_ALIASES)}); "
            f"got {payment!r}"
        )
    return key


def _unit_value(cost: float | UnitCost, fallback_year: str, fallback_source: str) -> tuple[float, str, str]:
    if isinstance(cost, UnitCost):
        return float(cost.value), cost.price_year, cost.source
    return float(cost), fallback_year, fallback_source


def vw_financial_impact(
    effect_days: float,
    effect_ci: tuple[float, float],
    treated_spells: int,
    vw_patient_days: float,
    cost_per_bed_day: float | UnitCost = COST_PER_BED_DAY,
    cost_per_vw_day: float | UnitCost | None = COST_PER_VW_DAY,
    annual_budget: float | None = None,
    budget_years: float = 1.0,
    price_year: str = "not stated",
    cost_source: str = "local figure supplied by the user",
    occupancy: float = TARGET_OCCUPANCY,
    marginal_cost_share: float = MARGINAL_COST_SHARE,
    payment: str = "api",
    vw_paid_by: str = "commissioner",
    admissions_avoided: float = 0.0,
    price_per_admission: float = 0.0,
    long_stay_payments_avoided: float = 0.0,
    period_days: float = DAYS_PER_YEAR,
    price_index: PriceIndex | None = None,
    base_price_year: str | None = None,
    reference_costs: dict[str, UnitCost] | None = None,
) -> pd.DataFrame:
    """The ``financial_impact`` table of a step-down virtual ward (METHODS.md 6).

    Price years: figures in different price years are never netted. When the
    bed-day cost and the virtual ward cost are in different price years,
    give ``price_index`` (levels by year, with their source) and every £ row
    is restated in ``base_price_year`` (default: the virtual ward cost's
    year); without it the rows that would net the two (net, provider,
    system, break-even against the reference costs) are left empty with a
    note saying why. Whole-period rows say the period; ``*_per_year`` rows
    divide by ``period_days`` / 365. ``reference_costs`` (default
    :data:`VW_DAY_REFERENCE_COSTS`) are the costs of a virtual ward day the
    break-even is compared with: ``vw_day_reference_<key>`` and
    ``break_even_minus_<key>`` (positive: the ward at that cost pays for
    itself in capacity).

    ``effect_days`` is the effect on acute LOS per treated spell (negative =
    shorter), with its 95% interval ``effect_ci``. Rows (``measure``):

    * ``bed_days_released`` = -effect x treated spells (interval from the
      effect's), ``beds_equivalent`` (bed days / ``period_days`` / occupancy,
      the beds freed on average over the period the spells cover);
    * ``capacity_released_gbp``: bed days x cost per bed day, the gross value,
      non-cash-releasing; ``cash_releasing_gbp``: x ``marginal_cost_share``
      (0 unless beds close);
    * ``vw_cost_gbp``: virtual ward patient days x cost per virtual ward day,
      or ``annual_budget`` x ``budget_years`` when a budget is given;
    * ``net_capacity_gbp`` (capacity released - virtual ward cost) and
      ``net_cash_gbp`` (cash released - virtual ward cost);
    * ``break_even_cost_per_vw_day``: capacity released / virtual ward days,
      the cost per virtual ward day at which the net is nil;
    * the money conversation: ``provider_income_change_gbp``,
      ``provider_cost_change_gbp``, ``provider_net_gbp``,
      ``commissioner_spend_change_gbp`` and ``system_net_cash_gbp``.

    ``payment`` is a key of :data:`PAYMENT_REGIMES`: ``"api"`` (aligned
    payment and incentive, the default since 2023/24), ``"pbr"`` (payment by
    results per spell; older name ``"activity"``) or ``"block"`` (older name
    ``"fixed"``). Income under ``payment="pbr"``: a step-down
    stay does not change the number of spells, so the provider's spell income
    is unchanged except for long-stay payments no longer due
    (``long_stay_payments_avoided``, £) and admissions avoided by step-up care
    (``admissions_avoided`` x ``price_per_admission``); the commissioner saves
    what the provider loses. Under ``"api"`` (whose fixed element pays for
    emergency activity) and ``"block"`` income does not move with activity. ``vw_paid_by="commissioner"`` means the commissioner pays the
    provider for the virtual ward (a local price equal to its cost, the
    kind of arrangement Bradford and its commissioners intended to build on:
    King's Fund 2018); ``"provider"`` means the provider
    absorbs it. Payments between the two cancel in ``system_net_cash_gbp``.
    Every £ row carries its price year and source; rows that combine costs of
    different price years say so in ``note``.
    """
    regime = payment_regime(payment)
    if vw_paid_by not in {"commissioner", "provider"}:
        raise ValueError(f"vw_paid_by must be 'commissioner' or 'provider'; got {vw_paid_by!r}")
    if treated_spells < 0 or vw_patient_days < 0:
        raise ValueError("treated_spells and vw_patient_days must not be negative")
    if period_days <= 0:
        raise ValueError(f"period_days must be positive; got {period_days!r}")
    bd_cost, bd_year, bd_source = _unit_value(cost_per_bed_day, price_year, cost_source)
    lo_eff, hi_eff = sorted(effect_ci)
    released = np.array([-effect_days, -hi_eff, -lo_eff]) * treated_spells  # estimate, lower, upper
    if annual_budget is not None:
        vw_cost, vw_year, vw_source = (
            float(annual_budget) * budget_years,
            price_year,
            f"virtual ward budget of {format_gbp(annual_budget)} a year x {budget_years:g} years ({cost_source})",
        )
        vw_unit = vw_cost / vw_patient_days if vw_patient_days else float("nan")
    else:
        if cost_per_vw_day is None:
            raise ValueError("give cost_per_vw_day or annual_budget")
        vw_unit, vw_year, vw_source = _unit_value(cost_per_vw_day, price_year, cost_source)
        vw_cost = vw_patient_days * vw_unit
    # One price year (METHODS.md 6): uplift with the stated index, or refuse to net.
    mixed = ""
    if vw_year == bd_year:
        base = bd_year
    elif price_index is not None:
        base = base_price_year or vw_year
        f_bd, f_vw = price_index.factor(bd_year, base), price_index.factor(vw_year, base)
        bd_cost, vw_unit, vw_cost = bd_cost * f_bd, vw_unit * f_vw, vw_cost * f_vw
        how = f"{price_index.name} ({price_index.source})"
        bd_source = f"{bd_source}; uplifted from {bd_year} to {base} x {f_bd:.4f} by {how}"
        vw_source = f"{vw_source}; uplifted from {vw_year} to {base} x {f_vw:.4f} by {how}"
        bd_year = vw_year = base
    else:
        base = None
        mixed = (
            f"not netted: the bed-day cost is in {bd_year} prices and the virtual ward cost in {vw_year} "
            "prices; give a price index (price_index) to restate both in one year, or enter both costs "
            "in one price year"
        )
    capacity = capacity_released_gbp(released, bd_cost)
    cash = cash_releasing_gbp(capacity, marginal_cost_share)
    both_source = f"bed day: {bd_source}; virtual ward: {vw_source}"
    both_year = base if base is not None else f"{bd_year} and {vw_year}"
    nan3 = np.full(3, np.nan)

    income_change = 0.0
    if regime == "pbr":
        income_change -= long_stay_payments_avoided + admissions_avoided * price_per_admission
    vw_payment = vw_cost if vw_paid_by == "commissioner" else 0.0
    provider_income = income_change + vw_payment
    provider_cost = vw_cost - cash  # array: cost rises by the ward, falls by the cash released
    provider_net = provider_income - provider_cost
    commissioner = income_change + vw_payment  # what it pays the provider changes by the same
    system = cash - vw_cost
    net_capacity, net_cash = capacity - vw_cost, cash - vw_cost
    if mixed:  # refuse to net across price years
        provider_income, provider_cost, provider_net, system = nan3, nan3, nan3, nan3
        net_capacity, net_cash = nan3, nan3
    per_year = DAYS_PER_YEAR / period_days
    period_note = f"over the {period_days:,.0f} days evaluated"

    def row(measure, values, unit, year="", source="", note=""):
        v = np.atleast_1d(np.asarray(values, dtype=float))
        lo, hi = np.sort(v[1:3]) if len(v) == 3 else (np.nan, np.nan)
        return {
            "measure": measure,
            "value": float(v[0]),
            "ci_lower": float(lo),
            "ci_upper": float(hi),
            "unit": unit,
            "price_year": year,
            "source": source,
            "note": note,
        }

    days_note = (
        "95% interval from the effect on acute LOS; capacity released, not cash, unless beds close; "
        + period_note
    )
    break_even = capacity / vw_patient_days if vw_patient_days else nan3
    reference_rows = []
    for key, ref in (VW_DAY_REFERENCE_COSTS if reference_costs is None else reference_costs).items():
        reference_rows.append(
            row(
                f"vw_day_reference_{key}",
                ref.value,
                "£ per virtual ward day",
                ref.price_year,
                ref.source,
                "a reference cost of a virtual ward day, in its own price year",
            )
        )
        if base is not None and ref.price_year == base:
            ref_base, ref_note = ref.value, ""
        elif (
            base is not None
            and price_index is not None
            and ref.price_year in price_index.levels
            and base in price_index.levels
        ):
            f = price_index.factor(ref.price_year, base)
            ref_base, ref_note = ref.value * f, f"; reference uplifted from {ref.price_year} x {f:.4f}"
        else:
            ref_base, ref_note = (
                np.nan,
                (
                    f"; not compared: the reference is in {ref.price_year} prices and the "
                    f"break-even in {bd_year}: give a price index with both years"
                ),
            )
        reference_rows.append(
            row(
                f"break_even_minus_{key}",
                break_even - ref_base,
                "£ per virtual ward day",
                bd_year,
                bd_source,
                "break-even cost per virtual ward day minus the reference "
                "cost; positive means the ward at that cost pays for itself in capacity" + ref_note,
            )
        )
    rows = [
        row("treated_spells", treated_spells, "spells"),
        row(
            "effect_on_acute_los_days",
            [effect_days, lo_eff, hi_eff],
            "days per treated spell",
            note="negative means shorter acute stays",
        ),
        row("bed_days_released", released, "bed days", note=days_note),
        row(
            "bed_days_released_per_year",
            released * per_year,
            "bed days a year",
            note=f"bed days released x 365 / {period_days:,.0f} days evaluated",
        ),
        row(
            "beds_equivalent",
            beds_equivalent(released, occupancy, period_days),
            "beds",
            note=f"on average over {period_days:,.0f} days at {occupancy:.0%} occupancy",
        ),
        row(
            "capacity_released_gbp",
            capacity,
            "£",
            bd_year,
            bd_source,
            f"gross value of the bed days at the cost per bed day (non-cash-releasing); {period_note}",
        ),
        row(
            "capacity_released_gbp_per_year",
            capacity * per_year,
            "£ a year",
            bd_year,
            bd_source,
            "capacity released x 365 / days evaluated",
        ),
        row(
            "cash_releasing_gbp",
            cash,
            "£",
            bd_year,
            bd_source,
            f"marginal cost share {marginal_cost_share:.0%}: cash leaves only when capacity is removed",
        ),
        row(
            "vw_patient_days",
            vw_patient_days,
            "virtual ward days",
            note="days moved to the virtual ward: these are not days saved",
        ),
        row("vw_cost_per_day_gbp", vw_unit, "£ per virtual ward day", vw_year, vw_source),
        row("vw_cost_gbp", vw_cost, "£", vw_year, vw_source, period_note),
        row(
            "vw_cost_gbp_per_year",
            vw_cost * per_year,
            "£ a year",
            vw_year,
            vw_source,
            "virtual ward cost x 365 / days evaluated",
        ),
        row(
            "net_capacity_gbp",
            net_capacity,
            "£",
            both_year,
            both_source,
            f"capacity released minus virtual ward cost; {period_note}" + (f"; {mixed}" if mixed else ""),
        ),
        row(
            "net_capacity_gbp_per_year",
            net_capacity * per_year,
            "£ a year",
            both_year,
            both_source,
            "net on capacity terms x 365 / days evaluated" + (f"; {mixed}" if mixed else ""),
        ),
        row(
            "net_cash_gbp",
            net_cash,
            "£",
            both_year,
            both_source,
            f"cash released minus virtual ward cost; {period_note}" + (f"; {mixed}" if mixed else ""),
        ),
        row(
            "break_even_cost_per_vw_day",
            break_even,
            "£ per virtual ward day",
            bd_year,
            bd_source,
            "the virtual ward day cost at which capacity released equals its cost",
        ),
        *reference_rows,
        row(
            "provider_income_change_gbp",
            provider_income,
            "£",
            both_year,
            both_source,
            f"{regime} payment; virtual ward paid by the {vw_paid_by}" + (f"; {mixed}" if mixed else ""),
        ),
        row(
            "provider_cost_change_gbp",
            provider_cost,
            "£",
            both_year,
            both_source,
            "virtual ward cost minus cash released",
        ),
        row(
            "provider_net_gbp",
            provider_net,
            "£",
            both_year,
            both_source,
            "income change minus cost change; positive means the provider is better off",
        ),
        row(
            "commissioner_spend_change_gbp",
            [commissioner] * 3,
            "£",
            both_year,
            both_source,
            "positive means the commissioner pays more",
        ),
        row(
            "system_net_cash_gbp",
            system,
            "£",
            both_year,
            both_source,
            "cash released minus virtual ward cost: payments between the two cancel",
        ),
    ]
    return pd.DataFrame(rows, columns=FINANCIAL_IMPACT_COLUMNS)


def which_organisation_wins(financial_impact: pd.DataFrame) -> str:
    """One sentence on who gains and who pays, from a ``financial_impact`` table."""
    v = financial_impact.set_index("measure")["value"]
    prov, comm, system = v["provider_net_gbp"], v["commissioner_spend_change_gbp"], v["system_net_cash_gbp"]
    capacity = v["capacity_released_gbp"]
    if np.isnan(system):
        year = financial_impact.set_index("measure").loc["capacity_released_gbp", "price_year"]
        return (
            f"The {format_gbp(capacity)} of capacity released ({year} prices) is not netted against the "
            "virtual ward's cost: the two are in different price years. Give a price index, or enter both "
            "costs in one price year, to see who gains and who pays."
        )
    p = f"the provider is {format_gbp(abs(prov))} {'better' if prov >= 0 else 'worse'} off in cash"
    c = (
        f"the commissioner pays {format_gbp(abs(comm))} {'more' if comm > 0 else 'less'}"
        if abs(comm) >= 0.5
        else "the commissioner's spending does not change"
    )
    s = f"the system as a whole is {format_gbp(abs(system))} {'better' if system >= 0 else 'worse'} off in cash"
    note = str(financial_impact.set_index("measure").loc["provider_income_change_gbp", "note"])
    regime = note.split(" payment", 1)[0]
    how = f" Under {PAYMENT_REGIMES[regime]}." if regime in PAYMENT_REGIMES else ""
    return (
        f"On these assumptions {p}, {c}, and {s}; the {format_gbp(capacity)} of capacity released is "
        "only cash if beds close, otherwise it is room for other patients." + how
    )
