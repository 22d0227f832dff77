"""The data quality section at the top of every report, and the exclusion flow.

Two tables a notebook publishes right after it loads its data:

* ``data_quality`` (:func:`data_quality`): for each column of the loaded
  table, where it came from, how complete it is, the date range of date
  columns and the codes (with their counts) of coded columns, providers
  included;
* ``exclusions`` (:func:`exclusion_flow`): rows read, then each rule that set
  rows aside with its count and reason, then the rows analysed, for each input
  table. The notebooks' own exclusion tables (``casemix.restrict_to_year``,
  ``casemix.indicator_population``, ``cohort.build_cohort``) and the scope
  steps of a monthly series (:func:`monthly_series_steps`) feed it, so each
  rule is counted once, where it is applied, and the flow only joins them up.

Rows that break the data contract never reach this point: the loaders in
:mod:`helpers.io` stop the run instead (DESIGN.md, "Bad input"). Rows that are
valid but out of scope are counted here, step by step, and the flow refuses
steps that do not add up, so nothing can be dropped silently.

Counts follow the small-number rule of :mod:`helpers.disclosure` (HES
analysis guide): the counts of codes and of missing values are suppressed
together in :func:`data_quality`; the exclusion flow is published with the
rule applied across the whole table, because its rows are linked by
subtraction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from helpers import disclosure, io, periods
from helpers.contract import TableSource
from helpers.engine import literal, quote
from helpers.io import data_dictionary, identifier_columns

#: Columns whose values are listed with their counts, besides those with an ``allowed`` list.
LISTED_COLUMNS = frozenset({"provider_code", "pathway", "route"})
#: At most this many codes are listed for a column; the rest are counted.
MAX_CODES = 60
#: Text columns of a notebook's own input with at most this many values are listed.
MAX_CODES_UNKNOWN = 20
FLOW_COLUMNS = ["table", "step", "rows_before", "rows_excluded", "rows_after", "reason"]
QUALITY_COLUMNS = [
    "table",
    "column",
    "source_column",
    "type",
    "required",
    "rows",
    "n_missing",
    "pct_complete",
    "first",
    "last",
    "distinct_values",
    "values_seen",
    "note",
]


def _summary(frame: pd.DataFrame) -> dict[str, Any]:
    summary = dict(frame.attrs.get("load_summary") or {})
    summary.setdefault("table", "data")
    summary.setdefault("rows_read", len(frame))
    summary.setdefault("columns_mapped", {})
    summary.setdefault("columns_ignored", [])
    return summary


def _contract(table: str) -> dict[str, dict[str, Any]] | None:
    tables = data_dictionary()["tables"]
    return tables[table]["columns"] if table in tables else None


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(series):
        return "date"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "number"
    return "string"


def _missing(series: pd.Series) -> pd.Series:
    missing = series.isna()
    if _kind(series) == "string":
        missing |= series.astype("str").str.strip().fillna("").eq("")
    return missing


def _codes(series: pd.Series, missing: pd.Series, n_missing: int, threshold: int) -> tuple[str, int | str]:
    """``values_seen`` text and the n_missing to show, suppressed together."""
    counts = series[~missing].astype("str").value_counts().sort_index()
    return _values_seen(counts.index.tolist(), counts.tolist(), n_missing, threshold)


def _values_seen(
    codes: Sequence[str], counts: Sequence[int], n_missing: int, threshold: int
) -> tuple[str, int | str]:
    """``values_seen`` text of codes (in order) and their counts, and the n_missing to show, suppressed together."""
    shown = disclosure.suppress_counts([int(n_missing), *(int(n) for n in counts)], threshold)
    missing_shown, code_counts = shown[0], shown[1:]
    parts = [
        f"{code}: {n:,}" if isinstance(n, int) else f"{code}: {n}" for code, n in zip(codes, code_counts)
    ]
    if len(parts) > MAX_CODES:
        parts = parts[:MAX_CODES] + [f"… and {len(parts) - MAX_CODES:,} more"]
    return "; ".join(parts), missing_shown


def _completeness(record: dict[str, Any], n_missing: int | str, rows: int, threshold: int) -> dict[str, Any]:
    """``record`` with ``n_missing`` (suppressed when 1 to ``threshold``) and ``pct_complete``."""
    if n_missing != disclosure.SUPPRESSED and threshold > 0 and 1 <= int(n_missing) <= threshold:
        n_missing = disclosure.SUPPRESSED
    record["n_missing"] = n_missing
    record["pct_complete"] = (
        disclosure.SUPPRESSED
        if n_missing == disclosure.SUPPRESSED
        else (round(100 * (rows - n_missing) / rows, 1) if rows else 0.0)
    )
    return record


def data_quality(
    frame: pd.DataFrame | Mapping[str, pd.DataFrame], threshold: int = disclosure.DEFAULT_THRESHOLD
) -> pd.DataFrame:
    """The data quality table of one loaded input (or of several, one after another).

    ``frame`` is a table as returned by :func:`helpers.io.load_table` (or
    :func:`helpers.io.load_frame`), possibly with derived fields added, or a
    mapping of such tables (``{"spells": ..., "virtual_ward": ...}``); its
    ``attrs["load_summary"]`` says which file it came from and how its columns
    were mapped. For a contract table every contract column is listed, in the
    contract's order, including optional columns the file did not have;
    derived fields are not. For a notebook's own input every column is listed.

    Columns: ``table``; ``column`` (contract name); ``source_column`` (its name
    in the user's file, blank if absent); ``type``; ``required`` (yes/no, blank
    when the input has no contract); ``rows`` (rows profiled: the rows read,
    unless the notebook had already narrowed the table); ``n_missing`` (blank
    or missing values); ``pct_complete`` (100 × (rows − n_missing) / rows, one
    decimal); ``first`` and ``last`` (date columns: the earliest and latest
    date, ``yyyy-mm-dd``); ``distinct_values``; ``values_seen`` (coded columns,
    providers and pathways: each value with its count, ``code: n; ...``);
    ``note``.

    Disclosure: ``n_missing`` and the counts in ``values_seen`` of a column are
    one set that adds up to ``rows``; counts from 1 to ``threshold`` are shown
    as ``*`` and, when any is, the others in the set are rounded to 5
    (:func:`helpers.disclosure.suppress_counts`); ``pct_complete`` is then
    computed from the rounded count, or starred with it. A notebook's own
    input (an indicator or series file) is aggregate already, one row per
    provider or month, so its counts are shown as they are.
    """
    if isinstance(frame, Mapping):
        out = pd.concat([data_quality(f, threshold) for f in frame.values()], ignore_index=True)
        out.attrs["disclosure"] = {"counts": []}
        return out
    profile = frame.attrs.get("engine_profile")
    if profile is not None:  # profiled in SQL by helpers.variation: the frame holds no rows
        return profile["data_quality"]
    summary = _summary(frame)
    table = str(summary["table"])
    spec = _contract(table)
    if spec is None:
        threshold = 0  # a notebook's own input is already aggregate: its rows are not people
    source = {v: k for k, v in (summary.get("columns_mapped") or {}).items()}
    ids = identifier_columns()
    names = list(spec) if spec is not None else list(frame.columns)
    rows = len(frame)
    records = []
    for name in names:
        col_spec = (spec or {}).get(name, {})
        record: dict[str, Any] = {
            "table": table,
            "column": name,
            "source_column": "",
            "type": col_spec.get("type", ""),
            "required": ("yes" if col_spec.get("required") else "no") if spec is not None else "",
            "rows": rows,
            "n_missing": rows,
            "pct_complete": 0.0,
            "first": "",
            "last": "",
            "distinct_values": 0,
            "values_seen": "",
            "note": "",
        }
        if name not in frame.columns:
            record["note"] = "not in the file" + (" (optional)" if not col_spec.get("required") else "")
            records.append(record)
            continue
        series = frame[name]
        kind = record["type"] or _kind(series)
        record["type"] = kind
        record["source_column"] = source.get(name, name)
        missing = _missing(series)
        n_missing: int | str = int(missing.sum())
        record["distinct_values"] = int(series[~missing].nunique())
        if kind == "date" and (~missing).any():
            dates = pd.to_datetime(series[~missing])
            record["first"], record["last"] = f"{dates.min():%Y-%m-%d}", f"{dates.max():%Y-%m-%d}"
        listed = (
            "allowed" in col_spec
            or name in LISTED_COLUMNS
            or (spec is None and kind == "string" and record["distinct_values"] <= MAX_CODES_UNKNOWN)
        )
        if name in ids:
            record["note"] = "identifier: values never shown"
            listed = False
        if listed:
            record["values_seen"], n_missing = _codes(series, missing, int(n_missing), threshold)
        records.append(_completeness(record, n_missing, rows, threshold))
    out = pd.DataFrame(records, columns=QUALITY_COLUMNS)
    # already suppressed above, as one set per column: nothing more for publish to do
    out.attrs["disclosure"] = {"counts": []}
    return out


def _as_steps(steps: pd.DataFrame, default_table: str) -> pd.DataFrame:
    """A notebook's exclusion table in the flow's columns.

    Accepts ``rows_excluded`` (``helpers.casemix``) or ``rows_removed``
    (``helpers.cohort``); a missing ``table`` column means ``default_table``.
    """
    s = steps.rename(columns={"rows_removed": "rows_excluded"}).copy()
    if "table" not in s.columns:
        s.insert(0, "table", default_table)
    if "reason" not in s.columns:
        s["reason"] = ""
    missing = [c for c in FLOW_COLUMNS if c not in s.columns]
    if missing:
        raise ValueError(f"an exclusion table needs columns {FLOW_COLUMNS}; this one lacks {missing}")
    return s[FLOW_COLUMNS]


def exclusion_flow(
    loaded: pd.DataFrame | Mapping[str, pd.DataFrame],
    *steps: pd.DataFrame | None,
) -> pd.DataFrame:
    """Rows read → each rule that set rows aside → rows analysed, per input table.

    ``loaded`` is the loaded table (or ``{table name: table}`` for several);
    its ``attrs["load_summary"]["rows_read"]`` starts the flow. ``steps`` are
    the notebook's exclusion tables, in the order they were applied (columns
    ``step, rows_before, rows_excluded`` or ``rows_removed``, ``rows_after,
    reason`` and optionally ``table``); ``None`` is skipped.

    Returns columns ``table, step, rows_before, rows_excluded, rows_after,
    reason``: a first row ``read from FILE`` for each table (the loader drops
    nothing: a row that breaks the contract stops the run), the steps, and a
    last row ``analysed``. Published, its counts follow the small-number rule
    across the whole table (the rows are linked by subtraction), unless every
    input is a notebook's own aggregate file. Raises ``ValueError`` when the
    steps do not add up (``rows_before − rows_excluded ≠ rows_after``, or a
    step does not start where the previous one of its table ended): rows
    would be lost unseen.
    """
    frames = dict(loaded) if isinstance(loaded, Mapping) else {_summary(loaded)["table"]: loaded}
    default = next(iter(frames))
    given = [_as_steps(s, default) for s in steps if s is not None and len(s)]
    all_steps = pd.concat(given, ignore_index=True) if given else pd.DataFrame(columns=FLOW_COLUMNS)
    unknown = sorted(set(all_steps["table"]) - set(frames))
    if unknown:
        raise ValueError(
            f"exclusion steps name table(s) {unknown} that were not given; given: {list(frames)}"
        )
    rows = []
    for name, frame in frames.items():
        summary = _summary(frame)
        remaining = int(summary["rows_read"])
        rows.append(
            {
                "table": name,
                "step": f"read from {summary.get('file', 'the input')}",
                "rows_before": remaining,
                "rows_excluded": 0,
                "rows_after": remaining,
                "reason": "every row passed the data contract's checks (a row that breaks one stops the run)",
            }
        )
        # steps taken while loading (episodes built into spells: helpers.episodes), then the notebook's
        loading = [{**step, "table": name} for step in summary.get("load_steps", [])]
        for step in loading + all_steps[all_steps["table"] == name].to_dict("records"):
            before, excluded, after = (int(step[c]) for c in ("rows_before", "rows_excluded", "rows_after"))
            if before != remaining or before - excluded != after:
                raise ValueError(
                    f"exclusion step {step['step']!r} of table {name!r} does not add up: it starts from "
                    f"{before:,} rows, excludes {excluded:,} and keeps {after:,}, but {remaining:,} rows "
                    "reached it. Every row set aside must be counted."
                )
            rows.append({**step, "rows_before": before, "rows_excluded": excluded, "rows_after": after})
            remaining = after
        rows.append(
            {
                "table": name,
                "step": "analysed",
                "rows_before": remaining,
                "rows_excluded": 0,
                "rows_after": remaining,
                "reason": "",
            }
        )
    out = pd.DataFrame(rows, columns=FLOW_COLUMNS)
    patient_level = any(_contract(str(_summary(f)["table"])) is not None for f in frames.values())
    counts = ["rows_before", "rows_excluded", "rows_after"] if patient_level else []
    out.attrs["disclosure"] = {"counts": counts, "linked": True}
    return out


def monthly_series_steps(spells: pd.DataFrame, series: pd.DataFrame, date: str = "date") -> pd.DataFrame:
    """The spells a monthly series leaves out, as exclusion steps.

    For a series built by :func:`helpers.spc.monthly_series` from spells with
    the fields of :func:`helpers.derive.add_spell_fields`. Two steps:

    * discharged in a month on the chart: the series leaves out months the
      extract sees only in part (its first months; for a readmission rate, the
      last months whose 30-day windows are still open);
    * counted by the measure: a series with ``numerator`` and ``denominator``
      (the readmission rate) counts spells eligible for readmission follow-up;
      the count measures (bed days, spells) count emergency spells.

    Columns as :func:`exclusion_flow` takes them, with ``table = "spells"``.
    """
    for col in ("month", "emergency", "readmission_eligible"):
        if col not in spells.columns:
            raise KeyError(
                f"spells: column {col!r} missing; pass them through helpers.derive.add_spell_fields first"
            )
    months = pd.to_datetime(series[date]).unique()
    on_chart = pd.to_datetime(spells["month"]).isin(months)
    if {"numerator", "denominator"} <= set(series.columns):
        counted = spells["readmission_eligible"].astype(bool)
        step, reason = (
            "eligible for readmission follow-up",
            ("died in hospital, or the 30-day window runs past the end of the data"),
        )
    else:
        counted = spells["emergency"].astype(bool)
        step, reason = (
            "emergency admissions",
            "not an emergency admission; the measure counts emergency spells only",
        )
    n = len(spells)
    n_chart = int(on_chart.sum())
    n_counted = int((on_chart & counted).sum())
    month_reason = "discharge month left out: the extract sees it only in part (see the notes above)"
    if series.attrs.get("months_left_out"):
        month_reason = "discharge month left out as incomplete - " + periods.caption(
            series.attrs["months_left_out"]
        ).removeprefix("Months left out as incomplete: ")
    return pd.DataFrame(
        [
            {
                "table": "spells",
                "step": "discharged in a month on the chart",
                "rows_before": n,
                "rows_excluded": n - n_chart,
                "rows_after": n_chart,
                "reason": month_reason,
            },
            {
                "table": "spells",
                "step": step,
                "rows_before": n_chart,
                "rows_excluded": n_chart - n_counted,
                "rows_after": n_counted,
                "reason": reason,
            },
        ]
    )


def _renamed(source: str, name: str) -> bool:
    """True when a file's column name differs from the contract's by more than case and spaces."""
    return str(source).strip().lower().replace(" ", "_") != name


def _long_date(text: str) -> str:
    d = pd.Timestamp(text)
    return f"{d.day} {d:%B %Y}"


def describe(loaded: pd.DataFrame | Mapping[str, pd.DataFrame]) -> str:
    """A few plain sentences on what was read: file, rows, columns, dates, providers.

    For the top of a report, next to the :func:`data_quality` table.
    """
    frames = dict(loaded) if isinstance(loaded, Mapping) else {_summary(loaded)["table"]: loaded}
    return "\n".join(
        describe_profile(name, _summary(f), data_quality(f), profiled_rows(f)) for name, f in frames.items()
    )


def profiled_rows(frame: pd.DataFrame) -> int:
    """Rows a table's data quality profile counts: its own, or those an engine profiled in SQL."""
    profile = frame.attrs.get("engine_profile")
    return len(frame) if profile is None else int(profile["rows"])


def describe_profile(name: str, summary: Mapping, profile: pd.DataFrame, profiled_rows: int) -> str:
    """The sentences of :func:`describe` for one table, from its load summary and its data quality profile.

    Also for a table profiled in SQL (:func:`profile_sql`).
    """
    present = profile[profile["source_column"] != ""]
    text = f"{name}: {int(summary['rows_read']):,} rows read from {summary.get('file', 'the input')}"
    if int(profiled_rows) != int(summary["rows_read"]):
        text += f" ({int(profiled_rows):,} of them profiled below, after the steps before this point)"
    text += f"; {len(present)} of {len(profile)} columns present"
    mapped = {k: v for k, v in (summary.get("columns_mapped") or {}).items() if _renamed(k, v)}
    if mapped:
        text += "; renamed: " + ", ".join(f"{k} → {v}" for k, v in mapped.items())
    ignored = summary.get("columns_ignored") or []
    if ignored:
        text += f"; {len(ignored)} column(s) not used: " + ", ".join(map(str, ignored[:10]))
    text += "."
    for row in profile[profile["first"] != ""].itertuples():
        text += f" {row.column}: {_long_date(row.first)} to {_long_date(row.last)}."
    providers = profile[profile["column"] == "provider_code"]
    if len(providers) and providers["distinct_values"].iloc[0]:
        text += f" {providers['distinct_values'].iloc[0]:,} providers."
    return text


# --------------------------------------------------------------------------- data quality without the rows
def profile_sql(src: TableSource, where: str, derived: str, threshold: int) -> pd.DataFrame:
    """helpers.data_quality computed in SQL over the spells that pass ``where``.

    Same columns, same rules (missing values, distinct values, first and last
    dates, the codes of coded columns with their counts, suppressed together
    with the missing count by :func:`helpers.disclosure.suppress_counts`).
    """
    spec = io.table_columns(src.table)
    be = src.backend
    ids = io.identifier_columns()
    source = {v: k for k, v in src.mapping.items()} | {v: k for k, v in src.columns_mapped().items()}
    base = f"SELECT * FROM ({derived}) AS d WHERE {where}"
    aggs = ["COUNT(*) AS n_rows"]
    for i, c in enumerate(src.present):
        # a unique column (checked by the contract) has as many distinct values as values: no hash of millions
        distinct = f"COUNT({quote(c)})" if spec[c].get("unique") else f"COUNT(DISTINCT {quote(c)})"
        aggs += [f"COUNT({quote(c)}) AS n{i}", f"{distinct} AS d{i}"]
        if spec[c]["type"] == "date":
            aggs += [f"MIN({quote(c)}) AS lo{i}", f"MAX({quote(c)}) AS hi{i}"]
    stats = be.query(f"SELECT {', '.join(aggs)} FROM ({base}) AS b").iloc[0]
    rows = int(stats["n_rows"])
    listed_columns = [
        c for c in src.present if ("allowed" in spec[c] or c in LISTED_COLUMNS) and c not in ids
    ]
    codes = pd.DataFrame(columns=["c", "v", "k"])
    if listed_columns:
        codes = be.query(
            " UNION ALL ".join(
                f"SELECT {literal(c)} AS c, CAST({quote(c)} AS VARCHAR) AS v, COUNT(*) AS k FROM ({base}) AS b "
                f"WHERE {quote(c)} IS NOT NULL GROUP BY {quote(c)}"
                for c in listed_columns
            )
        )
    records = []
    for name, col_spec in spec.items():
        record: dict[str, Any] = {
            "table": src.table,
            "column": name,
            "source_column": "",
            "type": col_spec.get("type", ""),
            "required": "yes" if col_spec.get("required") else "no",
            "rows": rows,
            "n_missing": rows,
            "pct_complete": 0.0,
            "first": "",
            "last": "",
            "distinct_values": 0,
            "values_seen": "",
            "note": "",
        }
        if name not in src.present:
            record["note"] = "not in the file" + (" (optional)" if not col_spec.get("required") else "")
            records.append(record)
            continue
        i = src.present.index(name)
        record["source_column"] = str(source.get(name, name)).strip()
        n_missing: int | str = rows - int(stats[f"n{i}"])
        record["distinct_values"] = int(stats[f"d{i}"])
        if record["type"] == "date" and stats[f"lo{i}"] is not None:
            record["first"], record["last"] = (
                f"{pd.Timestamp(stats[k]):%Y-%m-%d}" for k in (f"lo{i}", f"hi{i}")
            )
        listed = "allowed" in col_spec or name in LISTED_COLUMNS
        if name in ids:
            record["note"] = "identifier: values never shown"
            listed = False
        if listed:
            counts = codes[codes["c"] == name]
            counts = counts.assign(v=counts["v"].astype("str")).sort_values("v")
            record["values_seen"], n_missing = _values_seen(
                counts["v"].tolist(), counts["k"].tolist(), int(n_missing), threshold
            )
        records.append(_completeness(record, n_missing, rows, threshold))
    out = pd.DataFrame(records, columns=QUALITY_COLUMNS)
    out.attrs["disclosure"] = {"counts": []}
    return out


def stand_in(src: TableSource, rows_profiled: int, table: pd.DataFrame) -> pd.DataFrame:
    """A frame with no rows that carries what the quality functions read from a loaded table."""
    frame = pd.DataFrame(columns=src.present)
    frame.attrs["load_summary"] = {
        "table": src.table,
        "file": Path(str(src.path)).name,
        "rows_read": src.rows,
        "columns_mapped": {str(k).strip(): v for k, v in src.mapping.items() if str(k).strip() != v},
        "columns_ignored": src.leftover,
        **src.origin,
    }
    frame.attrs["engine_profile"] = {"rows": rows_profiled, "data_quality": table}
    return frame


def profile_stand_in(src: TableSource, threshold: int | None = None) -> pd.DataFrame:
    """A zero-row stand-in for a table read by an engine, carrying its data-quality profile (every row).

    :func:`data_quality`, :func:`describe` and :func:`exclusion_flow` read it
    as they read a loaded table, so a notebook that never loads the spells
    into pandas reports on them the same way.
    """
    threshold = disclosure.DEFAULT_THRESHOLD if threshold is None else threshold
    return stand_in(src, src.rows, profile_sql(src, "TRUE", src.typed_sql, threshold))
