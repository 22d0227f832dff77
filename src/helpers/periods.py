"""The period an extract covers, and monthly measures over its complete months only.

An extract of spells is a window on admissions: it holds the spells admitted
between its first and last admission dates, and their discharges, which run
on after the last admission. Counted by month, the months outside that
window, or only partly inside it, are not months of the process: after the
last admission the discharges (and bed days) fall to zero because no new
patient is in the file; before the window ends, stays that began before the
first admission are missing; and a 30-day readmission rate for a month is
not known until 30 days after its last discharge. Charting such months as
real ones shows a collapse that never happened.

One helper serves every monthly measure built from spells (the SPC series of
:func:`helpers.spc.monthly_series`, and the virtual ward's interrupted time
series and difference-in-differences): :func:`coverage` infers the window
from the admission dates (or takes it as stated), and
:func:`complete_months` keeps the months wholly inside it, leaves out the
rest, and names each one with its reason, for the exclusions flow and the
chart caption. Per-year figures divide by :attr:`Coverage.years`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

#: Days in a year, for per-year figures (the mean calendar year).
DAYS_PER_YEAR = 365.25
#: Days after the first admission before a month counts: stays that began before the
#: extract and end in its first weeks are missing (METHODS.md section 3).
LEAD_IN_DAYS = 30


@dataclass(frozen=True)
class Coverage:
    """The days an extract covers: ``start`` to ``end`` inclusive; ``stated`` when the user gave them."""

    start: pd.Timestamp
    end: pd.Timestamp
    stated: bool = False

    @property
    def days(self) -> int:
        return int((self.end - self.start).days) + 1

    @property
    def years(self) -> float:
        """Length in years (days / 365.25), to two decimals: 1 April 2023 to 31 March 2025 is 2.00."""
        return round(self.days / DAYS_PER_YEAR, 2)

    def describe(self) -> str:
        how = "as stated" if self.stated else "inferred from the admission dates"
        return (
            f"{self.start.day} {self.start:%B %Y} to {self.end.day} {self.end:%B %Y} ({how}; "
            f"{self.days:,} days, {self.years:.2f} years)"
        )

    def clip(
        self, first: pd.Timestamp | str | None = None, last: pd.Timestamp | str | None = None
    ) -> "Coverage":
        """The part of the coverage between ``first`` and ``last`` (for one financial year, say)."""
        start = max(self.start, pd.Timestamp(first)) if first is not None else self.start
        end = min(self.end, pd.Timestamp(last)) if last is not None else self.end
        if end < start:
            raise ValueError(
                f"the extract covers {self.describe()}, which does not overlap {first} to {last}"
            )
        return Coverage(start, end, self.stated)


#: A month at either end of the extract belongs to its coverage when it has at least this share of
#: the median month's admissions: the readmissions an extract carries after its admissions stop
#: (about a tenth of a month's admissions in the first month after, fewer later) do not extend it.
FULL_MONTH_SHARE = 0.25


def admissions_by_month(spells: pd.DataFrame) -> pd.DataFrame:
    """Admissions per calendar month: month (first day), n, first and last admission date in it."""
    adm = pd.to_datetime(spells["admission_date"]).dropna()
    frame = pd.DataFrame({"month": adm.dt.to_period("M").dt.to_timestamp(), "date": adm})
    out = (
        frame.groupby("month")
        .agg(n=("date", "size"), first=("date", "min"), last=("date", "max"))
        .reset_index()
    )
    return out


def coverage_from_months(
    months: pd.DataFrame, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None
) -> Coverage:
    """The coverage from :func:`admissions_by_month` (or the same table made in SQL), unless stated.

    Inferred: from the first to the last month at either end whose
    admissions reach :data:`FULL_MONTH_SHARE` of the median month's (months
    with none count as 0), starting at that first month's first admission
    and ending at the last month's last admission. An extract whose
    admissions stop on 31 March but that carries the readmissions of April
    and May ends on 31 March.
    """
    if (start is None or end is None) and len(months) == 0:
        raise ValueError(
            "spells: no admission date to infer the extract's coverage from; state start and end."
        )
    first, last = None, None
    if len(months):
        m = months.assign(month=pd.to_datetime(months["month"])).set_index("month").sort_index()
        every = pd.date_range(m.index.min(), m.index.max(), freq="MS")
        n = m["n"].astype(float).reindex(every, fill_value=0.0)
        full = n[n >= FULL_MONTH_SHARE * float(n.median())].index
        first = pd.Timestamp(m.loc[full.min(), "first"]).normalize()
        last = pd.Timestamp(m.loc[full.max(), "last"]).normalize()
    first = pd.Timestamp(start) if start is not None else first
    last = pd.Timestamp(end) if end is not None else last
    if last < first:
        raise ValueError(f"coverage end {last:%Y-%m-%d} is before its start {first:%Y-%m-%d}")
    return Coverage(first, last, start is not None or end is not None)


def coverage(
    spells: pd.DataFrame, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None
) -> Coverage:
    """The extract's coverage, inferred from its admissions (:func:`coverage_from_months`) unless stated.

    ``start`` and ``end`` (dates) state it instead, for an extract whose
    admissions do not show its true edges.
    """
    return coverage_from_months(admissions_by_month(spells), start, end)


def financial_year_bounds(label: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day of an NHS financial year given as ``'2024/25'``."""
    year = int(str(label)[:4])
    return pd.Timestamp(year, 4, 1), pd.Timestamp(year + 1, 3, 31)


def month_status(
    months: pd.DatetimeIndex, cover: Coverage, lead_in_days: int = LEAD_IN_DAYS, follow_up_days: int = 0
) -> pd.DataFrame:
    """Whether each month (first day) is complete, and if not why.

    A month is complete when it lies wholly inside the coverage, starts at
    least ``lead_in_days`` after its start, and, for a measure with a
    follow-up window of ``follow_up_days`` (29 for a 30-day readmission,
    counted 0 to 29 days), ends at least that many days before the
    coverage ends. Columns: month, complete, reason.
    """
    rows = []
    for m in pd.DatetimeIndex(months):
        first, last = m, m + pd.offsets.MonthEnd(0)
        if last < cover.start or first > cover.end:
            reason = "outside the extract's admissions"
        elif first < cover.start or last > cover.end:
            reason = "only partly inside the extract's admissions"
        elif first < cover.start + pd.Timedelta(days=lead_in_days):
            reason = f"less than {lead_in_days} days after the first admission: earlier stays are missing"
        elif last + pd.Timedelta(days=follow_up_days) > cover.end:
            reason = f"its {follow_up_days + 1}-day follow-up runs past the extract's last admission"
        else:
            reason = ""
        rows.append({"month": m, "complete": reason == "", "reason": reason})
    return pd.DataFrame(rows, columns=["month", "complete", "reason"])


def complete_months(
    frame: pd.DataFrame,
    cover: Coverage,
    date: str = "month",
    lead_in_days: int = LEAD_IN_DAYS,
    follow_up_days: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of a monthly series whose month is complete; and the months left out, with reasons.

    ``frame`` has one row per month (and group) with the month's first day
    in ``date``. Returns the kept rows and a table (month, reason) of every
    month left out, for :func:`caption` and the exclusions flow.
    """
    months = pd.to_datetime(frame[date]).dt.to_period("M").dt.to_timestamp()
    status = month_status(pd.DatetimeIndex(sorted(months.unique())), cover, lead_in_days, follow_up_days)
    good = set(status.loc[status["complete"], "month"])
    kept = frame[months.isin(good).to_numpy()].reset_index(drop=True)
    left_out = status.loc[~status["complete"], ["month", "reason"]].reset_index(drop=True)
    return kept, left_out


def as_records(left_out: pd.DataFrame) -> tuple[tuple[pd.Timestamp, str], ...]:
    """Months left out as ``((month, reason), ...)``: a value a frozen result can hold."""
    return tuple((pd.Timestamp(m), str(r)) for m, r in zip(left_out["month"], left_out["reason"]))


def as_frame(records: pd.DataFrame | Sequence[tuple[pd.Timestamp, str]] | None) -> pd.DataFrame:
    """Months left out as a table (month, reason), from :func:`as_records` or a table."""
    if isinstance(records, pd.DataFrame):
        return records[["month", "reason"]]
    return pd.DataFrame(list(records or ()), columns=["month", "reason"])


def month_list(months: pd.Series | pd.DatetimeIndex) -> str:
    """Months as ``Apr 2025, May 2025``; a run of four or more as ``Apr 2025 to Oct 2025``."""
    ms = sorted(pd.to_datetime(pd.Series(months)).unique())
    if not ms:
        return ""
    runs, run = [], [ms[0]]
    for m in ms[1:]:
        if (pd.Timestamp(m).to_period("M") - pd.Timestamp(run[-1]).to_period("M")).n == 1:
            run.append(m)
        else:
            runs.append(run)
            run = [m]
    runs.append(run)
    parts = []
    for r in runs:
        if len(r) >= 4:
            parts.append(f"{pd.Timestamp(r[0]):%b %Y} to {pd.Timestamp(r[-1]):%b %Y}")
        else:
            parts += [f"{pd.Timestamp(m):%b %Y}" for m in r]
    return ", ".join(parts)


def caption(
    left_out: pd.DataFrame | Sequence[tuple[pd.Timestamp, str]] | None, cover: Coverage | None = None
) -> str:
    """One sentence for a chart: the coverage, and the months left out grouped by reason."""
    left_out = as_frame(left_out)
    text = f"Extract's admissions: {cover.describe()}." if cover is not None else ""
    if len(left_out):
        by_reason = [
            f"{month_list(g['month'])} ({reason})" for reason, g in left_out.groupby("reason", sort=False)
        ]
        text += " Months left out as incomplete: " + "; ".join(by_reason) + "."
    else:
        text += " Every month in the data is complete."
    return text.strip()
