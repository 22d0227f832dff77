"""Findings first: the short summary a report opens with, built from a notebook's own result tables.

Each notebook ends its analysis with one call here (:func:`variation`,
:func:`spc`, :func:`virtual_ward`, :func:`value`). The call reads the tables
the notebook has just published (so small counts are already suppressed) and
returns a :class:`Summary`: three to six plain sentences and a data box (the
file, the period covered, the rows analysed, the rows left out and the
small-number rule). Its cell carries the tag :data:`SUMMARY_TAG`, and
:func:`helpers.report.report_notebook` moves it to the top of ``report.html``
with a copy of the figure whose cell is tagged :data:`HEADLINE_TAG`.

Every number in a summary is a :class:`Fact`: the value of one cell of a
result table (or a count, sum, minimum or maximum over its rows), with the
table, column and rows it came from written beside it in the HTML, so a test
can read each number back from ``tables/NAME.csv``. Nothing is typed in.
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import pandas as pd

from helpers import disclosure

#: Cell tag of the summary cell: the report moves it under the title.
SUMMARY_TAG = "summary"
#: Cell tag of the figure that carries the finding: the report copies it into the summary.
HEADLINE_TAG = "headline-figure"
#: Cell tag of lesson-only cells (prerequisites, outcomes, recaps, exercises): left out of the report.
TEACHING_TAG = "teaching"
#: Cell tag of cells that explain the method: folded into the report's closing "How this was done".
METHOD_TAG = "method"

How = Literal["value", "count", "sum", "min", "max", "list"]
Kind = Literal["count", "number", "decimal1", "size1", "gbp", "percent", "month", "text", "list"]

#: What a summary says for a count hidden by the small-number rule.
SUPPRESSED_WORDS = "a few (fewer than 8)"
NOT_AVAILABLE = (
    "not available"  # a blank cell in the result table (for example a net not computed across price years)
)


@dataclass(frozen=True)
class Fact:
    """One number (or code list) of a summary and where it comes from.

    ``how``: ``value`` (the one row matching ``where``), ``count`` (rows
    matching), ``sum``/``min``/``max`` (over the matching rows), ``list``
    (their values, in table order). ``kind`` says how it is written.
    """

    shown: str
    table: str
    column: str
    where: tuple[tuple[str, str], ...] = ()
    how: How = "value"
    kind: Kind = "number"

    def html(self) -> str:
        where = "; ".join(f"{k}={v}" for k, v in self.where)
        return (
            f'<span class="fact" data-table="{html.escape(self.table)}" data-column="{html.escape(self.column)}" '
            f'data-where="{html.escape(where)}" data-how="{self.how}" data-kind="{self.kind}">'
            f"{html.escape(self.shown)}</span>"
        )


Part = str | Fact


@dataclass
class Summary:
    """The findings of one run: sentences, a data box, and the rule on small numbers."""

    sentences: list[list[Part]]
    data: list[tuple[str, list[Part]]]
    title: str = "Summary"
    notes: list[str] = field(default_factory=list)

    def facts(self) -> list[Fact]:
        """Every number the summary shows, sentences and data box."""
        parts = [p for s in self.sentences for p in s] + [p for _, row in self.data for p in row]
        return [p for p in parts if isinstance(p, Fact)]

    def text(self) -> list[str]:
        """The sentences as plain text."""
        return ["".join(p.shown if isinstance(p, Fact) else p for p in s) for s in self.sentences]

    def _repr_html_(self) -> str:
        def render(parts: Sequence[Part]) -> str:
            return "".join(p.html() if isinstance(p, Fact) else html.escape(p) for p in parts)

        items = "".join(f"<li>{render(s)}</li>" for s in self.sentences)
        rows = "".join(
            f'<tr><th scope="row">{html.escape(k)}</th><td>{render(v)}</td></tr>' for k, v in self.data
        )
        notes = "".join(f'<p class="summary-note">{html.escape(n)}</p>' for n in self.notes)
        return (
            f'<section class="handbook-summary"><h2>{html.escape(self.title)}</h2>'
            f'<ul class="summary-sentences">{items}</ul>{notes}'
            f'<table class="summary-data"><caption>About the data</caption><tbody>{rows}</tbody></table></section>'
        )

    def __repr__(self) -> str:
        lines = [self.title, ""] + [f"* {t}" for t in self.text()] + [""]
        for key, parts in self.data:
            lines.append(f"{key}: " + "".join(p.shown if isinstance(p, Fact) else p for p in parts))
        return "\n".join(lines)


# --------------------------------------------------------------------------- facts from tables
def _rows(table: pd.DataFrame, where: Mapping[str, Any] | None) -> pd.DataFrame:
    rows = table
    for col, val in (where or {}).items():
        rows = rows[rows[col].astype(str) == str(val)]
    return rows


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", disclosure.SUPPRESSED)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def write(value: Any, kind: Kind) -> str:
    """A value as a summary writes it: counts and numbers with thousands separators, £ whole pounds."""
    if isinstance(value, str) and value == disclosure.SUPPRESSED:
        return SUPPRESSED_WORDS
    if kind == "text":
        return str(value)
    if kind == "month":
        return f"{pd.Timestamp(value):%B %Y}"
    if kind == "list":
        items = [str(v) for v in value]
        return (
            "none"
            if not items
            else items[0]
            if len(items) == 1
            else ", ".join(items[:-1]) + " and " + items[-1]
        )
    number = _number(value)
    if number is None:
        return NOT_AVAILABLE
    if kind == "gbp":
        return f"{'-' if round(number) < 0 else ''}£{abs(number):,.0f}"
    if kind == "decimal1":
        return f"{number:,.1f}"
    if kind == "size1":  # the size of a difference; the sentence says its direction
        return f"{abs(number):,.1f}"
    if kind == "percent":  # a share from 0 to 1
        return f"{100 * number:,.0f}%"
    return f"{number:,.0f}"


def fact(
    table: pd.DataFrame,
    name: str,
    column: str,
    where: Mapping[str, Any] | None = None,
    how: How = "value",
    kind: Kind = "number",
) -> Fact:
    """A :class:`Fact` read from the published table ``name`` (see the class for ``how``)."""
    rows = _rows(table, where)
    key = tuple((str(k), str(v)) for k, v in (where or {}).items())
    if how == "count":
        return Fact(write(len(rows), "count"), name, column, key, how, "count")
    values = rows[column].tolist()
    if how == "list":
        return Fact(write(values, "list"), name, column, key, how, "list")
    if how == "value":
        if len(values) != 1:
            raise ValueError(f"{name}: expected one row where {dict(where or {})}, found {len(values)}")
        return Fact(write(values[0], kind), name, column, key, how, kind)
    if kind == "month":
        dates = [
            pd.Timestamp(v)
            for v in values
            if not (isinstance(v, str) and v.strip() in ("", disclosure.SUPPRESSED)) and pd.notna(v)
        ]
        value: Any = (min(dates) if how == "min" else max(dates)) if dates else NOT_AVAILABLE
        return Fact(write(value, kind) if dates else value, name, column, key, how, kind)
    if any(isinstance(v, str) and v == disclosure.SUPPRESSED for v in values):
        return Fact(SUPPRESSED_WORDS, name, column, key, how, kind)
    numbers = [n for n in map(_number, values) if n is not None]
    total = (
        sum(numbers)
        if how == "sum"
        else (min(numbers) if how == "min" else max(numbers))
        if numbers
        else None
    )
    return Fact(write(total, kind), name, column, key, how, kind)


def say(template: str, **facts: Part) -> list[Part]:
    """A sentence from a template whose ``{name}`` fields are facts (or plain words)."""
    parts: list[Part] = []
    for text, name, _, _ in string.Formatter().parse(template):
        if text:
            parts.append(text)
        if name is not None:
            parts.append(facts[name])
    return parts


# --------------------------------------------------------------------------- the data box
def data_box(
    exclusions: pd.DataFrame,
    data_quality: pd.DataFrame,
    files: Mapping[str, Any],
    period_table: str | None = None,
) -> list[tuple[str, list[Part]]]:
    """What was read and what was left out, from the ``exclusions`` and ``data_quality`` tables.

    ``files``: input name -> the path the notebook was given (``None`` for the
    shipped sample); only the file's name is shown, never its folder.
    ``period_table``: the input whose date columns give the period covered
    (default: the first table of the exclusions flow).
    """
    shown = [
        f"{k}: {Path(str(v)).name if v else 'the sample shipped with the handbook'}" for k, v in files.items()
    ]
    box: list[tuple[str, list[Part]]] = [
        (
            "Data",
            [
                (
                    "; ".join(shown)
                    if any(files.values())
                    else "the simulated sample data shipped with the handbook"
                )
            ],
        ),
    ]
    tables = list(dict.fromkeys(exclusions["table"].astype(str))) if len(exclusions) else []
    period_table = period_table or (tables[0] if tables else None)
    has_type = "type" in data_quality.columns
    dates = data_quality[data_quality["type"].astype(str) == "date"] if has_type else data_quality.iloc[0:0]
    if period_table is not None and "table" in dates.columns:
        dates = dates[dates["table"].astype(str) == period_table]
    if len(dates) and dates["first"].astype(str).str.len().gt(0).any():
        where = {"table": period_table, "type": "date"} if period_table is not None else {"type": "date"}
        box.append(
            (
                "Period covered",
                [
                    fact(data_quality, "data_quality", "first", where, "min", "month"),
                    " to ",
                    fact(data_quality, "data_quality", "last", where, "max", "month"),
                ],
            )
        )
    analysed: list[Part] = []
    left_out: list[Part] = []
    for tbl in tables:
        sep = "; " if analysed else ""
        first = exclusions[exclusions["table"].astype(str) == tbl].iloc[0]
        analysed += [
            sep,
            f"{tbl}: ",
            fact(exclusions, "exclusions", "rows_after", {"table": tbl, "step": "analysed"}, kind="count"),
            " of ",
            fact(
                exclusions, "exclusions", "rows_before", {"table": tbl, "step": first["step"]}, kind="count"
            ),
            " rows read",
        ]
        left_out += [
            sep,
            f"{tbl}: ",
            fact(exclusions, "exclusions", "rows_excluded", {"table": tbl}, "sum", "count"),
            " rows, each counted once in the exclusions table with its reason",
        ]
    if analysed:
        box += [("Rows analysed", analysed), ("Left out", left_out)]
    box.append(
        (
            "Small numbers",
            [
                f"Counts from 1 to {disclosure.DEFAULT_THRESHOLD} are shown as {disclosure.SUPPRESSED} (or as "
                f'"{SUPPRESSED_WORDS}" here) and the other counts in their row rounded to the nearest '
                f"{disclosure.ROUND_TO}, following the HES analysis guide."
            ],
        )
    )
    return box


def _build(
    sentences: Iterable[list[Part] | None], box: list[tuple[str, list[Part]]], notes: Sequence[str] = ()
) -> Summary:
    kept = [s for s in sentences if s]
    return Summary(kept, box, notes=list(notes))


# --------------------------------------------------------------------------- one function a notebook
def variation(
    provider_indicator: pd.DataFrame,
    opportunity_summary: pd.DataFrame,
    exclusions: pd.DataFrame,
    data_quality: pd.DataFrame,
    files: Mapping[str, Any],
    label: str,
    higher_is_better: bool,
    unit: str = "bed days",
) -> Summary:
    """The variation notebook's findings: who is beyond the funnel, the opportunity and its interval, capacity or cash."""
    t, o = provider_indicator, opportunity_summary
    worse, better = ("low", "high") if higher_is_better else ("high", "low")
    n_worse = int((t["outlier"].astype(str) == worse).sum())
    n_better = int((t["outlier"].astype(str) == better).sum())
    counted = {"outlier": worse}
    first = say(
        ("{worse} of {all} providers have a " if n_worse else "None of the {all} providers has a ")
        + label
        + " "
        + ("lower" if higher_is_better else "higher")
        + " than their case mix explains, beyond the funnel limit "
        "that flags outliers"
        + (" ({codes})" if n_worse else "")
        + (
            ", and {better} are beyond it on the better side ({better_codes})."
            if n_better
            else ", and none is beyond it on the better side."
        ),
        worse=fact(t, "provider_indicator", "provider_code", counted, "count"),
        all=fact(t, "provider_indicator", "provider_code", None, "count"),
        codes=fact(t, "provider_indicator", "provider_code", counted, "list"),
        better=fact(t, "provider_indicator", "provider_code", {"outlier": better}, "count"),
        better_codes=fact(t, "provider_indicator", "provider_code", {"outlier": better}, "list"),
    )
    naive_days = o.loc[o["estimate"] == "naive", "bed_days"].iloc[0] if "bed_days" in o.columns else None
    days = (
        "bed_days" if _number(naive_days) is not None else "opportunity"
    )  # "opportunity": events, not bed days
    naive, outl, interval = ({"estimate": e} for e in ("naive", "outliers_only", "interval"))
    sentences = [
        first,
        say(
            "If every provider worse than the benchmark matched it, {naive} "
            + unit
            + " a year would be released "
            "({n} providers); allowing for chance, the total lies between {low} and {high}.",
            naive=fact(o, "opportunity_summary", days, naive),
            n=fact(o, "opportunity_summary", "providers", naive),
            low=fact(o, "opportunity_summary", f"{days}_lower", interval),
            high=fact(o, "opportunity_summary", f"{days}_upper", interval),
        ),
        say(
            "Only {outl} of them come from the {n} providers beyond the funnel limit: the rest is within what "
            "chance and ordinary differences between providers produce.",
            outl=fact(o, "opportunity_summary", days, outl),
            n=fact(o, "opportunity_summary", "providers", outl),
        ),
    ]
    if days == "bed_days":
        sentences.append(
            say(
                "The naive figure is {beds} beds at the target occupancy, or {gbp} a year of capacity at {year} prices: "
                "capacity released, not cash, which stays spent until beds and their staff are removed "
                "(cash-releasing at the chosen marginal cost share: {cash}).",
                beds=fact(o, "opportunity_summary", "beds_equivalent", naive, kind="decimal1"),
                gbp=fact(o, "opportunity_summary", "capacity_released_gbp", naive, kind="gbp"),
                year=fact(o, "opportunity_summary", "price_year", naive, kind="text"),
                cash=fact(o, "opportunity_summary", "cash_releasing_gbp", naive, kind="gbp"),
            )
        )
    sentences.append(
        [
            "Providers inside the limits should not be ranked, and this opportunity must not be added to "
            "another indicator's: a shorter stay and a higher day-case rate release the same beds."
        ]
    )
    return _build(sentences, data_box(exclusions, data_quality, files))


def spc(
    spc_summary: pd.DataFrame,
    exclusions: pd.DataFrame,
    data_quality: pd.DataFrame,
    files: Mapping[str, Any],
    measure: str,
) -> Summary:
    """The SPC notebook's findings: how many series show special cause in the latest month, and which."""
    s = spc_summary
    icons = s["variation_icon"].astype(str)
    sentences: list[list[Part] | None] = [
        say(
            "{n} series were charted; in the latest month {common} show only common cause variation, the ordinary "
            "ups and downs of the process, which are not a reason to act.",
            n=fact(s, "spc_summary", "group", None, "count"),
            common=fact(s, "spc_summary", "group", {"variation_icon": "common_cause"}, "count"),
        ),
        say(
            "The latest month charted is {last}; each chart has "
            + ("from {least} to {most} points." if s["n_points"].nunique() > 1 else "{most} points."),
            last=fact(s, "spc_summary", "latest_date", None, "max", "month"),
            least=fact(s, "spc_summary", "n_points", None, "min", "count"),
            most=fact(s, "spc_summary", "n_points", None, "max", "count"),
        )
        if "latest_date" in s.columns
        else None,
        _icon_sentence(s, "concern", measure, "concern: a change for the worse that needs a cause found"),
        _icon_sentence(s, "improvement", measure, "improvement: a change for the better worth understanding"),
        _icon_sentence(
            s,
            "neutral",
            measure,
            "variation: neither direction is better, so it needs explaining, not judging",
        ),
    ]
    if (icons == "not_assessed").any():
        sentences.append(
            say(
                "{n} series have too few points for limits ({codes}).",
                n=fact(s, "spc_summary", "group", {"variation_icon": "not_assessed"}, "count"),
                codes=fact(s, "spc_summary", "group", {"variation_icon": "not_assessed"}, "list"),
            )
        )
    assurance = s["assurance_icon"].astype(str)
    for icon, words in (
        ("consistently_failing", "will miss the target every month unless the process changes"),
        ("hit_and_miss", "will meet the target in some months and miss it in others, by chance"),
    ):
        if (assurance == icon).any():
            sentences.append(
                say(
                    "{n} series " + words + " ({codes}).",
                    n=fact(s, "spc_summary", "group", {"assurance_icon": icon}, "count"),
                    codes=fact(s, "spc_summary", "group", {"assurance_icon": icon}, "list"),
                )
            )
    sentences.append(
        [
            "A special cause says something changed, not why; read each chart with the people who run "
            "the service before acting on a single month."
        ]
    )
    return _build(
        sentences[:6] if len(sentences) > 6 else sentences, data_box(exclusions, data_quality, files)
    )


_DIRECTION = {"high": "higher", "low": "lower"}


def _icon_sentence(s: pd.DataFrame, prefix: str, measure: str, words: str) -> list[Part] | None:
    """ "N series show special cause ... (codes)" for the variation icons that start with ``prefix``."""
    icons = s["variation_icon"].astype(str)
    found = sorted(icons[icons.str.startswith(prefix)].unique())
    if not found:
        return None
    parts: list[Part] = []
    for i, icon in enumerate(found):
        where = {"variation_icon": icon}
        direction = _DIRECTION[icon.rsplit("_", 1)[-1]]
        parts += [
            " and " if i else "",
            fact(s, "spc_summary", "group", where, "count"),
            f" series, {direction} than usual (",
            fact(s, "spc_summary", "group", where, "list"),
            ")",
        ]
    kind, meaning = words.split(":", 1)
    return [f"{measure}, latest month: special cause {kind} in "] + parts + [f":{meaning}."]


def _direction(table: pd.DataFrame, where: Mapping[str, Any], column: str, more: str, less: str) -> str:
    value = _number(_rows(table, where)[column].iloc[0])
    return more if value is not None and value > 0 else less


def _effect(
    e: pd.DataFrame, outcome: str, method: str, what: str, unit: str, more: str, less: str
) -> list[Part]:
    """One effect of ``effect_estimates`` in words: its size and direction, and its interval in the same words."""
    where = {"outcome": outcome, "method": method}
    low, high = (_number(_rows(e, where)[c].iloc[0]) for c in ("ci_lower", "ci_upper"))
    est = fact(e, "effect_estimates", "estimate", where, kind="size1")
    lo = fact(e, "effect_estimates", "ci_lower", where, kind="size1")
    hi = fact(e, "effect_estimates", "ci_upper", where, kind="size1")
    sign = _direction(e, where, "estimate", more, less)
    if low is not None and high is not None and low < 0 < high:
        return say(
            what
            + " {est} "
            + unit
            + " "
            + sign
            + ", but allowing for chance it lies anywhere from {lo} "
            + unit
            + " "
            + less
            + " to {hi} "
            + more
            + ": it may be no difference at all.",
            est=est,
            lo=lo,
            hi=hi,
        )
    near, far = (hi, lo) if (high is not None and high <= 0) else (lo, hi)
    return say(
        what
        + " {est} "
        + unit
        + " "
        + sign
        + " (allowing for chance, between {near} and {far} "
        + unit
        + " "
        + sign
        + ").",
        est=est,
        near=near,
        far=far,
    )


def virtual_ward(
    effect_estimates: pd.DataFrame,
    financial_impact: pd.DataFrame,
    exclusions: pd.DataFrame,
    data_quality: pd.DataFrame,
    files: Mapping[str, Any],
    method: str,
) -> Summary:
    """The virtual ward notebook's findings: the effect on acute and total stays and readmission, and the money."""
    e, f = effect_estimates, financial_impact
    words = {"ipw": "weighting", "matching": "matching", "regression": "regression", "naive": "no adjustment"}
    first = say(
        "The comparison covers {treated} spells stepped down to the virtual ward and {control} similar spells "
        "that were not, adjusted for the differences between the patients ("
        + words.get(method, method)
        + ").",
        treated=fact(
            e, "effect_estimates", "n_treated", {"outcome": "acute_los", "method": method}, kind="count"
        ),
        control=fact(
            e, "effect_estimates", "n_control", {"outcome": "acute_los", "method": method}, kind="count"
        ),
    )
    measure = {"measure": "bed_days_released"}
    money = say(
        "That releases {days} bed days ({beds} beds), worth {gbp} of capacity at {year} prices; the virtual ward "
        "days cost {vw}, so the system's net cash position is {net}: capacity released is not cash unless beds close.",
        days=fact(f, "financial_impact", "value", measure, kind="number"),
        beds=fact(f, "financial_impact", "value", {"measure": "beds_equivalent"}, kind="decimal1"),
        gbp=fact(f, "financial_impact", "value", {"measure": "capacity_released_gbp"}, kind="gbp"),
        year=fact(f, "financial_impact", "price_year", {"measure": "capacity_released_gbp"}, kind="text"),
        vw=fact(f, "financial_impact", "value", {"measure": "vw_cost_gbp"}, kind="gbp"),
        net=fact(f, "financial_impact", "value", {"measure": "system_net_cash_gbp"}, kind="gbp"),
    )
    sentences = [
        first,
        _effect(e, "acute_los", method, "Acute stays were", "days", "longer", "shorter"),
        _effect(
            e,
            "total_los",
            method,
            "Counting the virtual ward days, whole episodes of care were",
            "days",
            "longer",
            "shorter",
        ),
        _effect(
            e,
            "readmission_30d",
            method,
            "Readmission within the follow-up window after the end of care was",
            "percentage points",
            "higher",
            "lower",
        ),
        money,
        [
            "The adjustment removes only the differences that were measured; a difference nobody recorded could still "
            "explain part of the effect."
        ],
    ]
    return _build(sentences, data_box(exclusions, data_quality, files, period_table="spells"))


def value(
    pathway_value: pd.DataFrame,
    allocative: pd.DataFrame,
    quadrant: pd.DataFrame,
    cip_summary: pd.DataFrame,
    exclusions: pd.DataFrame,
    data_quality: pd.DataFrame,
    files: Mapping[str, Any],
) -> Summary:
    """The value notebook's findings: cost per QALY by pathway, who is clearly worse on both, and the CIP's cash."""
    p, a, q, c = pathway_value, allocative, quadrant, cip_summary
    sentences: list[list[Part] | None] = [
        say(
            "{n} patients in {k} pathways were analysed, at a total cost of {cost}.",
            n=fact(p, "pathway_value", "n", None, "sum", "count"),
            k=fact(p, "pathway_value", "pathway", None, "count"),
            cost=fact(p, "pathway_value", "total_cost", None, "sum", "gbp"),
        )
    ]
    for verdict in list(dict.fromkeys(a["verdict"].astype(str)))[:2]:
        where = {"verdict": verdict}
        sentences.append(
            say(
                "{n} pathways ({names}) cost {verdict} at the chosen duration of the gain.",
                verdict=fact(
                    a, "allocative", "verdict", {"pathway": _rows(a, where)["pathway"].iloc[0]}, kind="text"
                ),
                n=fact(a, "allocative", "pathway", where, "count"),
                names=fact(a, "allocative", "pathway", where, "list"),
            )
        )
    clear = {"quadrant": "lower gain, higher cost", "gain_clear": True, "cost_clear": True}
    where: list[Part] = []
    for i, name in enumerate(dict.fromkeys(_rows(q, clear)["pathway"].astype(str))):
        where += [
            "; " if i else " (",
            f"{name}: ",
            fact(q, "quadrant", "provider_code", {**clear, "pathway": name}, "list"),
        ]
    if where:
        sentences.append(
            say(
                "{n} providers are clearly in the lower gain, higher cost corner of a pathway, both "
                "differences beyond chance",
                n=fact(q, "quadrant", "provider_code", clear, "count"),
            )
            + where
            + [")", ": the place to start a conversation about value."]
        )
    else:
        sentences.append(
            [
                "No provider is clearly in the lower gain, higher cost corner of a pathway once chance is "
                "allowed for: differences in cost and gain between providers are within what chance explains."
            ]
        )
    total_row = next((t for t in ("plan total", "total") if len(_rows(c, {"cip_class": t})) == 1), None)
    if total_row is not None:
        cash, total = {"cip_class": "cash-releasing, recurrent"}, {"cip_class": total_row}
        gap = (
            _number(_rows(c, total)["gap_to_target_gbp"].iloc[0])
            if "gap_to_target_gbp" in c.columns
            else None
        )
        short = gap is not None and gap > 0
        sentences.append(
            say(
                "Of the cost improvement plan's {total}, {cash} ({share}) is cash-releasing and recurrent: only that "
                "lowers next year's costs" + (", and it falls {gap} short of the target." if short else "."),
                total=fact(c, "cip_summary", "value_gbp", total, kind="gbp"),
                cash=fact(c, "cip_summary", "value_gbp", cash, kind="gbp"),
                share=fact(c, "cip_summary", "share_of_plan", cash, kind="percent"),
                gap=fact(c, "cip_summary", "gap_to_target_gbp", total, kind="gbp") if short else "",
            )
        )
    sentences.append(
        [
            "Averages hide the patients behind them: read the equity tables before acting on a "
            "pathway's cost per QALY."
        ]
    )
    return _build(sentences[:6], data_box(exclusions, data_quality, files))


def template(
    spc_summary: pd.DataFrame,
    exclusions: pd.DataFrame,
    data_quality: pd.DataFrame,
    files: Mapping[str, Any],
    measure: str,
) -> Summary:
    """The template notebook's findings: copy it with the notebook, rename it after the notebook, rewrite the sentences.

    Each sentence is a :func:`say` template whose numbers are :func:`fact` s of a published table.
    """
    s = spc_summary
    sentences = [
        say(
            "{n} providers were charted for "
            + measure[:1].lower()
            + measure[1:]
            + "; in the latest month ({last}) {common} of them show "
            "only common cause variation, the ordinary ups and downs that are not a reason to act.",
            n=fact(s, "spc_summary", "group", None, "count"),
            last=fact(s, "spc_summary", "latest_date", None, "max", "month"),
            common=fact(s, "spc_summary", "group", {"variation_icon": "common_cause"}, "count"),
        ),
        say(
            "Over every month charted, {points} points show a special cause; {concern} of them a change for the "
            "worse.",
            points=fact(s, "spc_summary", "n_special_cause", None, "sum", "count"),
            concern=fact(s, "spc_summary", "n_concern", None, "sum", "count"),
        ),
        [
            "A special cause says something changed, not why: read each chart with the people who run the service."
        ],
    ]
    return _build(sentences, data_box(exclusions, data_quality, files))
