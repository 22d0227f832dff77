"""How a result table is shown to a reader: in the book, in ``report.html`` and in ``results.xlsx``.

One definition of a column's number format serves every output.
:func:`number_format` picks an Excel number format code from a column's name
and values (the workbook uses the code as it is); :func:`format_value` renders
the same code as text for the book and the report, so a figure reads the same
in the spreadsheet and on the page.

The rule, by column name (lower case, split into words at ``_`` and other
non-letters), first match wins:

==========================================  ===================  =====================
words in the name                           format               shown as
==========================================  ===================  =====================
``gbp``, ``cost``, ``cpug``, ``nmb``,       :data:`POUNDS`       £1,234 (whole pounds;
``icer`` (not with ``ratio``, ``share``,                         pence mislead in
``pct``, ``percent``, ``index``,                                 estimates)
``position``, ``rate``)
``pct``, ``percent`` (already per cent)     :data:`PERCENT_POINTS`  99.5%
``share``, ``proportion``, ``rate``         :data:`PERCENT`      46.0% (from 0.46)
(a fraction; not with ``ratio``)
the whole name ``p_value`` or ``*_p_value``  :data:`P_VALUE`     0.0312, <0.0001
every value a whole number                  :data:`WHOLE`        1,234 (:data:`PLAIN_WHOLE`
                                                                 for ``year``,
                                                                 ``decile``, ``period``,
                                                                 ``month``: 2024)
``days``, ``day``, ``los``, ``beds``,       :data:`WHOLE` from   5,948 or 4.3
``bed`` (decimals)                          100, else
                                            :data:`ONE_DECIMAL`
other decimals                              :data:`DECIMAL` from  1,234.57 or 0.946
                                            10, :data:`SMALL_DECIMAL`
                                            from 0.01, else General
==========================================  ===================  =====================

Tables whose rows carry different units (a ``unit`` column, as in
``financial_impact`` and ``effect_estimates``) are formatted row by row in the
columns :data:`UNIT_VALUE_COLUMNS`: "£..." as pounds, units with "day" or
"bed" as days, other units by the value rule. Any column's format can be set
by name (``formats={"value_qia_approved": "money"}``, see :data:`FORMAT_NAMES`).

:func:`format_table` returns a pandas ``Styler``: no index, blanks (NaN,
``<NA>``, ``None``) shown as :data:`MISSING`, suppressed counts (``*``) kept,
numbers right-aligned, text wrapped, column names as short labels
(:func:`reader_label`). A notebook's table cell ends with
``format_table(table)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
from pandas.io.formats.style import Styler

# --------------------------------------------------------------------------- the shared formats
#: Excel number format codes (``results.xlsx``); :func:`format_value` renders each as text.
POUNDS = '"£"#,##0;-"£"#,##0'
PERCENT = "0.0%"
PERCENT_POINTS = '0.0"%"'
P_VALUE = '[<0.0001]"<0.0001";0.0000'
WHOLE = "#,##0"
PLAIN_WHOLE = "0"
DECIMAL = "#,##0.00"
ONE_DECIMAL = "#,##0.0"
SMALL_DECIMAL = "0.000"
DATE = "dd/mm/yyyy"

_POUND_WORDS = {"gbp", "cost", "cpug", "nmb", "icer"}
_NOT_POUNDS = {"ratio", "share", "pct", "percent", "index", "position", "rate"}
_SHARE_WORDS = {"share", "proportion", "rate"}
_LABEL_NUMBERS = {"year", "years", "decile", "period", "lags", "month", "months"}
_DAY_WORDS = {"days", "day", "los", "beds", "bed"}

#: Names a caller may use in ``formats`` instead of a format code.
FORMAT_NAMES: dict[str, str | None] = {
    "money": POUNDS,
    "percent": PERCENT_POINTS,
    "share": PERCENT,
    "p_value": P_VALUE,
    "whole": WHOLE,
    "plain": PLAIN_WHOLE,
    "decimal": DECIMAL,
    "one_decimal": ONE_DECIMAL,
    "small": SMALL_DECIMAL,
    "date": DATE,
    "text": None,
}

#: Shown for a blank cell (NaN, ``<NA>``, ``None``, empty text).
MISSING = "–"

#: Columns formatted row by row from a ``unit`` column, when the table has one.
UNIT_VALUE_COLUMNS = ("value", "estimate", "ci_lower", "ci_upper", "lower", "upper")


def _words(column: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", str(column).lower())) - {""}


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )


def number_format(column: str, values: Iterable[Any]) -> str | None:
    """The number format code of a result column, chosen from its name and values (rule in the module docstring).

    Returns ``None`` (Excel's General) for text, for a column with no number
    and for tiny decimals. ``values`` may hold text (suppressed ``*``), ``None``
    and NaN; only the numbers count.
    """
    tokens = _words(column)
    numbers = [float(v) for v in values if _is_number(v) and math.isfinite(float(v))]
    if not numbers:
        return None
    if tokens & _POUND_WORDS and not tokens & _NOT_POUNDS:
        return POUNDS
    if tokens & {"pct", "percent"}:
        return PERCENT_POINTS
    if tokens & _SHARE_WORDS and "ratio" not in tokens:
        return PERCENT
    if str(column).lower() == "p_value" or str(column).lower().endswith("_p_value"):
        return P_VALUE
    if all(v.is_integer() for v in numbers):
        return PLAIN_WHOLE if tokens & _LABEL_NUMBERS else WHOLE
    return _decimal_format(numbers, days=bool(tokens & _DAY_WORDS))


def _decimal_format(numbers: list[float], days: bool = False) -> str | None:
    biggest = max(abs(v) for v in numbers)
    if days:
        return WHOLE if biggest >= 100 else ONE_DECIMAL
    if biggest >= 10:
        return DECIMAL
    if biggest >= 0.01:
        return SMALL_DECIMAL
    return None


def _minus(text: str, negative: bool) -> str:
    return f"-{text}" if negative else text


#: How each format code reads as text (the workbook's code, rendered the same way).
_RENDER: dict[str | None, Callable[[float], str]] = {
    POUNDS: lambda v: _minus(f"£{abs(v):,.0f}", round(v) < 0),
    PERCENT: lambda v: f"{v * 100:.1f}%",
    PERCENT_POINTS: lambda v: f"{v:.1f}%",
    P_VALUE: lambda v: "<0.0001" if v < 0.0001 else f"{v:.4f}",
    WHOLE: lambda v: f"{v:,.0f}",
    PLAIN_WHOLE: lambda v: f"{v:.0f}",
    DECIMAL: lambda v: f"{v:,.2f}",
    ONE_DECIMAL: lambda v: f"{v:,.1f}",
    SMALL_DECIMAL: lambda v: f"{v:.3f}",
    None: lambda v: f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}",
}


def format_value(value: Any, fmt: str | None = None, missing: str = MISSING) -> str:
    """One cell as text: a number in format ``fmt`` (a code from :func:`number_format`), a date, or text.

    Blanks (``None``, NaN, ``pd.NA``, ``NaT``, empty text) become ``missing``;
    ``True``/``False`` become yes/no; text (a suppressed ``*``, a label) is
    kept as it is; infinity is written ∞.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        if math.isnan(v):
            return missing
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if fmt == DATE:
            fmt = None
        if fmt not in _RENDER:
            raise ValueError(f"No rendering for number format {fmt!r}: use one of {sorted(FORMAT_NAMES)}.")
        shown = _RENDER[fmt](v)
        if shown.startswith("-") and not any(ch in "123456789" for ch in shown):
            shown = shown[1:]  # -0.04 shown as 0.0, not -0.0
        return shown
    text = str(value)
    return missing if text.strip() == "" or text in {"nan", "NaN", "<NA>", "None", "NaT"} else text


def _month_dates(values: list[Any]) -> bool:
    dates = [v for v in values if isinstance(v, (pd.Timestamp, dt.datetime, dt.date)) and v is not pd.NaT]
    return bool(dates) and all(v.day == 1 for v in dates)


_LABEL_WORDS = {
    "ci": "CI",
    "los": "LOS",
    "qia": "QIA",
    "cip": "CIP",
    "imd": "IMD",
    "vw": "virtual ward",
    "icer": "ICER",
    "nmb": "NMB",
    "qaly": "QALY",
    "qalys": "QALYs",
    "spc": "SPC",
    "hrg": "HRG",
    "gbp": "",
    "pct": "%",
    "cpug": "cost per unit gain",
    "eq5d": "EQ-5D",
    "did": "DiD",
    "its": "ITS",
    "sd": "SD",
    "smd": "SMD",
    "z": "z",
}


def reader_label(column: str) -> str:
    """A column name as a short heading: words for underscores, ``gbp`` dropped (the cells show £), initialisms in capitals.

    ``capacity_released_gbp`` -> "capacity released"; ``pct_complete`` -> "% complete";
    ``ci_lower`` -> "CI lower". The heading can wrap, where ``capacity_released_gbp`` cannot.
    """
    words = [_LABEL_WORDS.get(w, w) for w in re.split(r"_+", str(column))]
    label = " ".join(w for w in words if w).strip()
    return label or str(column)


def _column_formats(
    df: pd.DataFrame, formats: Mapping[str, str | None] | str | None
) -> dict[str, str | None]:
    chosen: dict[str, str | None] = {}
    if isinstance(formats, str):
        given = {str(c): formats for c in df.columns if _is_numeric_column(df[c])}
    else:
        given = {str(k): v for k, v in dict(formats or {}).items()}  # names not in the table are ignored
    for col in df.columns:
        name = str(col)
        if name in given:
            fmt = given[name]
            fmt = FORMAT_NAMES[fmt] if fmt in FORMAT_NAMES else fmt
            if fmt not in _RENDER:
                raise ValueError(
                    f"Column {name!r}: unknown format {given[name]!r}; use one of {sorted(FORMAT_NAMES)} "
                    "or a format code of helpers.display."
                )
            chosen[name] = fmt
        else:
            chosen[name] = number_format(name, df[col].tolist())
    return chosen


def _unit_format(unit: Any, values: list[float]) -> str | None:
    text = str(unit).lower() if unit is not None and unit is not pd.NA else ""
    if text.startswith("£") or "gbp" in text or "pound" in text:
        return POUNDS
    if "day" in text or "bed" in text:
        return _decimal_format(values, days=True) if not all(v.is_integer() for v in values) else WHOLE
    if not values:
        return None
    if all(v.is_integer() for v in values):
        return WHOLE
    return ONE_DECIMAL if "percentage point" in text else _decimal_format(values)


def formatted_frame(
    df: pd.DataFrame,
    formats: Mapping[str, str | None] | str | None = None,
    missing: str = MISSING,
    labels: bool | Mapping[str, str] = True,
    unit_column: str | None = "unit",
) -> pd.DataFrame:
    """The table as text, cell by cell, as :func:`format_table` shows it (a plain DataFrame of ``str``, index reset).

    ``formats`` maps a column to a name of :data:`FORMAT_NAMES` or a format
    code, overriding :func:`number_format` (names of columns the table lacks
    are ignored); a single name or code formats every numeric column. A
    meaningful index (named, as from ``pivot`` or ``crosstab``) becomes the
    first column(s); a plain 0..n-1 index is dropped. ``labels``: ``True`` renames the
    columns with :func:`reader_label`, ``False`` keeps the names, a mapping
    sets some labels (others by :func:`reader_label`). ``unit_column``: when
    the table has it, the columns of :data:`UNIT_VALUE_COLUMNS` not named in
    ``formats`` are formatted row by row from the unit.
    """
    table = _with_plain_index(df)
    if table.columns.duplicated().any():
        raise ValueError(
            "The table has duplicate column names: "
            + ", ".join(map(str, table.columns[table.columns.duplicated()]))
        )
    chosen = _column_formats(table, formats)
    by_unit = unit_column in table.columns if unit_column else False
    out = {}
    for col in table.columns:
        name = str(col)
        values = table[col].tolist()
        if (
            by_unit
            and name in UNIT_VALUE_COLUMNS
            and not (formats and (isinstance(formats, str) or name in formats))
        ):
            units = table[unit_column].tolist()
            rows = {}
            for unit in dict.fromkeys(map(str, units)):
                nums = [
                    float(v)
                    for v, u in zip(values, units)
                    if str(u) == unit and _is_number(v) and math.isfinite(float(v))
                ]
                rows[unit] = _unit_format(unit, nums)
            out[name] = [format_value(v, rows[str(u)], missing) for v, u in zip(values, units)]
        elif _month_dates(values):
            out[name] = [
                format_value(v, None, missing)
                if not isinstance(v, (pd.Timestamp, dt.date)) or v is pd.NaT
                else v.strftime("%b %Y")
                for v in values
            ]
        else:
            out[name] = [format_value(v, chosen[name], missing) for v in values]
    text = pd.DataFrame(out, columns=[str(c) for c in table.columns], dtype=object)
    if labels is not False:
        given = dict(labels) if isinstance(labels, Mapping) else {}
        shown = [given.get(c, reader_label(c)) for c in text.columns]
        # two names with one label (opportunity, opportunity_gbp) keep their names, so no two columns look alike
        text.columns = [
            label if shown.count(label) == 1 else name for label, name in zip(shown, text.columns)
        ]
    return text


def _with_plain_index(df: pd.DataFrame) -> pd.DataFrame:
    """The table with a meaningful index (named, or not 0..n-1, as from ``pivot`` or ``crosstab``) moved into columns.

    Columns that carry a name (a pivot's ``duration_years``) are renamed "duration_years: 10" so the name is not lost.
    """
    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(df)
    table = df.copy()
    if table.columns.name is not None and not isinstance(table.columns, pd.MultiIndex):
        table.columns = [f"{table.columns.name}: {_plain_number(c)}" for c in table.columns]
    if any(n is not None for n in table.index.names):
        return table.reset_index()
    if pd.api.types.is_integer_dtype(table.index):  # row numbers, also after filtering
        return table.reset_index(drop=True)
    return table.reset_index(names="")


def _plain_number(value: Any) -> Any:
    """10.0 as 10 (a pivot's column labels), anything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class ReaderTable(Styler):
    """A pandas ``Styler`` of a formatted table that also prints as plain text (for a terminal or a log).

    Its HTML escapes every cell and heading, so text from a user's file is shown, never run.
    """

    def __repr__(self) -> str:
        return self.data.to_string(index=False)

    def __str__(self) -> str:
        return self.__repr__()


#: The style of every reader table: wrapped text, numbers right-aligned, a light rule under the header.
TABLE_STYLES = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0;"},
    {
        "selector": "th",
        "props": "text-align: left; vertical-align: bottom; white-space: normal; "
        "border-bottom: 1px solid #425563; padding: 0.25em 0.6em; font-weight: 600;",
    },
    {
        "selector": "td",
        "props": "text-align: left; vertical-align: top; white-space: normal; overflow-wrap: break-word; "
        "min-width: 4.5em; max-width: 22em; padding: 0.2em 0.6em;",
    },
    {
        "selector": "caption",
        "props": "caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em;",
    },
]


def format_table(
    df: pd.DataFrame,
    formats: Mapping[str, str | None] | str | None = None,
    *,
    missing: str = MISSING,
    labels: bool | Mapping[str, str] = True,
    unit_column: str | None = "unit",
    transpose: bool | str = False,
    caption: str | None = None,
) -> ReaderTable:
    """A result table as a reader should see it: a pandas ``Styler`` with no index (see the module docstring).

    ``formats``, ``missing``, ``labels`` and ``unit_column`` as in
    :func:`formatted_frame`. ``transpose=True`` shows a wide table of few rows
    as rows of "measure" and value (one column per original row), so no
    column runs off the page; ``transpose="estimate"`` heads those columns
    with the values of the column ``estimate``. ``caption`` is shown above the table. The
    result renders as HTML in a notebook, the book and ``report.html``
    (``.to_html()``), and as plain text with ``print``; ``.data`` holds the
    formatted cells.
    """
    table = _with_plain_index(df)
    text = formatted_frame(table, formats, missing, labels, unit_column)
    numeric = [c for c, orig in zip(text.columns, table.columns) if _is_numeric_column(table[orig])]
    if transpose:
        if isinstance(transpose, str):  # that column's values head the new columns
            key = (
                labels.get(transpose, reader_label(transpose))
                if isinstance(labels, Mapping)
                else (reader_label(transpose) if labels is not False else transpose)
            )
            header = [str(v) for v in text[key]]
            text = text.drop(columns=key)
        else:
            header = [f"{i + 1}" for i in range(len(text))] if len(text) > 1 else ["value"]
        text = pd.DataFrame(text.to_numpy().T, columns=header, dtype=object).assign(
            measure=list(text.columns)
        )[["measure", *header]]
        numeric = header
    digest = hashlib.sha1(
        text.to_csv(index=False).encode("utf-8") + (caption or "").encode("utf-8")
    ).hexdigest()[:10]
    styler = ReaderTable(text, uuid=f"reader_{digest}", cell_ids=False)
    styler = styler.hide(axis="index").set_table_attributes('class="reader-table"')
    styles = list(TABLE_STYLES)
    for col in numeric:
        j = list(text.columns).index(col)
        keep_whole = "" if transpose else " white-space: nowrap;"  # a transposed column also holds text rows
        styles += [
            {"selector": f"td.col{j}", "props": f"text-align: right;{keep_whole}"},
            {"selector": f"th.col{j}", "props": "text-align: right;"},
        ]
    styler = styler.set_table_styles(styles)
    # every cell and heading escaped (hostile text stays text); long codes may break after _ or /
    text_columns = [c for c in text.columns if c not in numeric]
    styler = styler.format(escape="html")
    if text_columns:
        styler = styler.format(_breakable, subset=text_columns, escape="html")
    styler = styler.format_index(escape="html", axis=1)
    if caption:
        styler = styler.set_caption(caption)
    return styler


def _breakable(text: str) -> str:
    """Let the browser wrap ``capacity_released_gbp`` after an underscore (a zero-width space; HTML only)."""
    return str(text).replace("_", "_\u200b").replace("/", "/\u200b")


def _is_numeric_column(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return True
    kept = [v for v in values.tolist() if v is not None and v is not pd.NA and str(v) not in ("", "*")]
    return bool(kept) and all(_is_number(v) or (isinstance(v, float) and math.isnan(v)) for v in kept)
