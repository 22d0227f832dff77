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
TARGET_OCCUPANCY_SOURCE = "NHS England 2023/24 priorities and operational planning guidance (G&A bed occupancy 92%)"
TARGET_OCCUPANCY_CITATION = "nhse2023planning"

#: Share of the bed-day cost that stops without closing beds. 0 by default: a
#: bed day freed on an open ward releases no cash until the ward's capacity is
#: removed. Set it locally from PLICS cost pools (the variable share).
MARGINAL_COST_SHARE = 0.0

DAYS_PER_YEAR = 365


def beds_equivalent(bed_days: Number, occupancy: float = TARGET_OCCUPANCY, days_per_year: float = DAYS_PER_YEAR) -> Number:
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
    year = price_year or (cost_per_bed_day.price_year if isinstance(cost_per_bed_day, UnitCost) else "not stated")
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
