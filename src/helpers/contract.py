"""The data contract checked in SQL: reading a contract table and checking every rule.

The contract is ``data/data_dictionary.yaml`` (read by :mod:`helpers.io`).
:func:`open_table` reads one contract table with an engine
(:mod:`helpers.engine`) into a typed table holding the contract columns and
one flag per broken rule, and stops with :class:`helpers.io.InputError`
naming the file, the column, what was expected and up to five rows with their
spreadsheet row numbers and the values as written in the file.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from helpers import engine as engines
from helpers import episodes, io

# The date forms accepted, as regular expressions both engines read
# (ISO yyyy-mm-dd, optionally with a midnight time; UK dd/mm/yyyy, optionally with midnight).
_ISO_SQL = "^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([ T]00:00(:00)?([.]0+)?)?$"
_UK_SQL = "^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}( 00:00(:00)?)?$"


@dataclass(frozen=True)
class Column:
    """One contract column as the rules see it: its specification and the SQL names of its layers.

    ``raw`` is the file's column; ``text`` its trimmed text, blanks as NULL
    (a number or date the file already holds as one: its value, NULL when
    missing, as its text is never read);
    ``parsed`` the code looked up (coded text), the number or the date;
    ``value`` the typed contract column; ``number`` the value a range is
    checked on. ``kind``: the file column's own type (text, integer, float,
    date, timestamp); ``present``: the contract columns the file has.
    """

    name: str
    spec: Mapping[str, Any]
    kind: str = "text"
    present: tuple[str, ...] = ()
    hes: str = ""  # "age" or "date": a HES column whose codes helpers.episodes.read_hes_codes undoes

    @property
    def type(self) -> str:
        return str(self.spec["type"])

    raw = property(lambda self: engines.quote(f"r_{self.name}"))
    text = property(lambda self: engines.quote(f"t_{self.name}"))
    parsed = property(lambda self: engines.quote(f"p_{self.name}"))
    value = property(lambda self: engines.quote(self.name))

    @property
    def number(self) -> str:
        p = self.parsed
        return f"(CASE WHEN {p} = FLOOR({p}) THEN {p} END)" if self.type == "integer" else p

    def when(self) -> tuple[str, Any] | None:
        """The (column, value) of ``required_when``, if the column has that rule."""
        when = self.spec.get("required_when")
        return next(iter(when.items())) if when else None


def _range(spec: Mapping[str, Any]) -> str:
    lo, hi = spec.get("min"), spec.get("max")
    return (
        f"between {lo} and {hi}"
        if lo is not None and hi is not None
        else (f"at least {lo}" if lo is not None else f"at most {hi}")
    )


def _range_sql(c: Column) -> str:
    lo, hi = c.spec.get("min"), c.spec.get("max")
    return " OR ".join(
        ([f"{c.number} < {lo}"] if lo is not None else [])
        + ([f"{c.number} > {hi}"] if hi is not None else [])
    )


def _stray_comma(text: str) -> str:
    """A comma that is not between thousands ("12,5" is neither 125 nor 12.5)."""
    return f"(CONTAINS({text}, ',') AND NOT REGEXP_MATCHES({text}, {engines.literal(io.THOUSANDS.pattern)}))"


def _anchored(pattern: str) -> str:
    return pattern if pattern.startswith("^") else "^(" + pattern + ")"


def _window_text() -> str:
    first, last = io.date_window()
    return (
        f"a date from {first:%Y-%m-%d} to {last:%Y-%m-%d} (a typing slip? "
        f"a wider window: handbook run --dates FROM:TO)"
    )


def _window_sql(c: Column) -> str:
    first, last = io.date_window()
    return f"{c.value} < DATE '{first:%Y-%m-%d}' OR {c.value} > DATE '{last:%Y-%m-%d}'"


#: In :attr:`ContractRule.example`: the value of the row before (a duplicate), or the column left out.
DUPLICATE, DROPPED = "<the row before's value>", "<no such column>"


@dataclass(frozen=True)
class ContractRule:
    """One rule of the data contract: when it applies, what it means, its message and its SQL.

    ``applies(column)``: whether a contract column has the rule (from its
    entry in ``data/data_dictionary.yaml``). ``expected(column)``: the words
    after "expected" in :class:`helpers.io.InputError`'s message.
    ``condition(column)``: SQL, over the column's layers (:class:`Column`),
    true on a row that breaks the rule (None: counted apart, ``unique``).
    ``shows(column)``: the columns whose values as written the message shows.
    ``stage``: ``"value"`` (each value on its own, checked first, column by
    column), ``"row"`` (the typed row), ``"table"`` (a column the file lacks).
    ``example``: (table, column, a value that breaks it) for the parity tests.
    """

    name: str
    meaning: str
    applies: Callable[[Column], bool]
    expected: Callable[[Column], str]
    condition: Callable[[Column], str | None]
    example: tuple[str, str, str]
    shows: Callable[[Column], list[str]] = lambda c: [c.name]
    stage: str = "value"


#: Every rule of the contract, in the order the message lists them. One edit here adds a rule to every engine.
CONTRACT_RULES: tuple[ContractRule, ...] = (
    ContractRule(
        "allowed",
        "a coded column holds one of its codes (trimmed, any case, or a recoded spelling)",
        lambda c: c.type == "string" and bool(c.spec.get("allowed")),
        lambda c: "one of " + ", ".join(str(a) for a in c.spec["allowed"]),
        lambda c: f"{c.text} IS NOT NULL AND {c.parsed} IS NULL",
        ("spells", "admission_method", "99"),
    ),
    ContractRule(
        "pattern",
        "a code matches its pattern (ICD-10, OPCS-4: a letter and two digits, then detail)",
        lambda c: c.type == "string" and "pattern" in c.spec,
        lambda c: f"a code matching {c.spec['pattern']}",
        lambda c: (
            f"{c.text} IS NOT NULL AND NOT COALESCE(REGEXP_MATCHES({c.value}, "
            f"{engines.literal(_anchored(c.spec['pattern']))}), FALSE)"
        ),
        ("spells", "primary_diagnosis", "123"),
    ),
    ContractRule(
        "thousands",
        "a comma in a number only between thousands",
        lambda c: c.type in {"integer", "number"} and c.kind not in {"integer", "float"},
        lambda c: "a number with commas only between thousands (1,234.5; a decimal point, not a comma)",
        lambda c: f"{c.text} IS NOT NULL AND {_stray_comma(c.text)}",
        ("spells", "spell_cost", "12,5"),
    ),
    ContractRule(
        "number",
        "a number column holds numbers (a £ sign and thousands commas allowed)",
        lambda c: c.type in {"integer", "number"} and c.kind not in {"integer", "float"},
        lambda c: "a number",
        lambda c: f"{c.text} IS NOT NULL AND NOT {_stray_comma(c.text)} AND {c.parsed} IS NULL",
        ("spells", "age", "eighty"),
    ),
    ContractRule(
        "whole",
        "an integer column holds whole numbers",
        lambda c: c.type == "integer",
        lambda c: "a whole number",
        lambda c: f"{c.parsed} IS NOT NULL AND {c.parsed} <> FLOOR({c.parsed})",
        ("spells", "age", "4.5"),
    ),
    ContractRule(
        "range",
        "a number within its bounds (min, max: inclusive)",
        lambda c: c.type in {"integer", "number"} and ("min" in c.spec or "max" in c.spec),
        lambda c: f"a value {_range(c.spec)}",
        _range_sql,
        ("spells", "age", "130"),
    ),
    ContractRule(
        "date",
        "a date as yyyy-mm-dd or dd/mm/yyyy, and a real calendar day",
        lambda c: c.type == "date" and c.kind not in {"date", "timestamp"},
        lambda c: "a date as yyyy-mm-dd or dd/mm/yyyy",
        lambda c: f"{c.text} IS NOT NULL AND {c.parsed} IS NULL",
        ("spells", "admission_date", "2024-02-30"),
    ),
    ContractRule(
        "date window",
        "a plausible date: 1990 to tomorrow, or handbook run --dates FROM:TO",
        lambda c: c.type == "date",
        lambda c: _window_text(),
        _window_sql,
        ("spells", "admission_date", "1901-04-01"),
    ),
    ContractRule(
        "required",
        "a required column has a value in every row (blank or NA-like text is missing)",
        lambda c: bool(c.spec.get("required")),
        lambda c: "a value in every row (it is required)",
        lambda c: f"{c.value} IS NULL AND {c.text} IS NULL",
        ("spells", "patient_id", " null "),
        stage="row",
    ),
    ContractRule(
        "unique",
        "an identifying column has each value once",
        lambda c: bool(c.spec.get("unique")),
        lambda c: "each value only once (it identifies a row)",
        lambda c: None,
        ("spells", "spell_id", DUPLICATE),
        stage="row",
    ),
    ContractRule(
        "not before",
        "a date not before another (discharge not before admission)",
        lambda c: c.spec.get("not_before") in c.present,
        lambda c: f"a date not before {c.spec['not_before']}",
        lambda c: f"{c.value} < {engines.quote(c.spec['not_before'])}",
        ("spells", "discharge_date", "01/01/2020"),
        shows=lambda c: [c.spec["not_before"], c.name],
        stage="row",
    ),
    ContractRule(
        "required when",
        "a value where another column says it is needed (a step-down's spell)",
        lambda c: c.when() is not None and c.when()[0] in c.present,
        lambda c: "a value where {} is {}".format(*c.when()),
        lambda c: f"{engines.quote(c.when()[0])} = {engines.literal(c.when()[1])} AND {c.value} IS NULL",
        ("virtual_ward", "linked_spell_id", ""),
        shows=lambda c: [c.when()[0], c.name],
        stage="row",
    ),
    ContractRule(
        "needed column",
        "a column the file lacks, needed because some rows say so",
        lambda c: c.when() is not None and c.when()[0] in c.present and c.name not in c.present,
        lambda c: "a column {0}, needed because some rows have {1} = {2}".format(c.name, *c.when()),
        lambda c: f"{engines.quote(c.when()[0])} = {engines.literal(c.when()[1])}",
        ("virtual_ward", "linked_spell_id", DROPPED),
        shows=lambda c: [],
        stage="table",
    ),
)


@dataclass
class Check:
    """A rule of the contract applied to one column: the rows that break it and how io words it."""

    column: str
    expected: str
    condition: str | None  # SQL over the typed view; None: a whole-column problem with no rows
    show: list[str]  # contract columns whose raw values the examples show
    unique: bool = False


@dataclass
class TableSource:
    """A contract table read by an engine: the typed view and how it was built."""

    table: str
    path: Path | str
    backend: engines.Backend
    raw_view: str
    typed_sql: str
    raw_names: dict[str, str]
    present: list[str]
    kinds: dict[str, str]
    file_kind: str
    mapping: dict[str, str]
    leftover: list[str]
    rows: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)  # an episode-level file built into spells first
    kept: Path | None = None  # the checked table's Parquet file, when open_table was asked to keep it

    def columns_mapped(self) -> dict[str, str]:
        """Your column names -> contract names, where they differ; the original file's when it was built first."""
        if "columns_mapped" in self.origin:
            return dict(self.origin["columns_mapped"])
        return {str(k).strip(): v for k, v in self.mapping.items() if str(k).strip() != v}

    def columns_ignored(self) -> list[str]:
        """Your columns the contract does not use; the original file's when it was built first."""
        if "columns_mapped" in self.origin:
            return list(self.origin.get("columns_ignored") or [])
        return list(self.leftover)


def _text_expr(raw: str, kind: str) -> str:
    """Trimmed text of a column, blank (empty, NA, NULL, NaN, None) as NULL: helpers.io's first step."""
    if (
        kind == "float"
    ):  # a whole float is a whole number's text, as helpers.io reads it (codes stored as 1.0)
        base = (
            f"CASE WHEN isnan({raw}) THEN NULL WHEN {raw} = FLOOR({raw}) AND ABS({raw}) < 1e15 "
            f"THEN CAST(CAST({raw} AS BIGINT) AS VARCHAR) ELSE CAST({raw} AS VARCHAR) END"
        )
    else:
        base = f"CAST({raw} AS VARCHAR)"
    t = f"TRIM({base})"
    words = ", ".join(engines.literal(w) for w in io.BLANK_WORDS)
    return f"CASE WHEN {t} = '' OR UPPER({t}) IN ({words}) THEN NULL ELSE {t} END"


def _date_from_text(t: str) -> str:
    """The date a text holds: ISO (yyyy-mm-dd) or UK (dd/mm/yyyy) form, and a real calendar date, else NULL.

    The form is checked by a regular expression; the calendar (no 30 February,
    29 February in leap years only) by the engine's own cast to a date.
    """
    iso = f"SUBSTRING({t}, 1, 10)"
    uk = f"SPLIT_PART({t}, ' ', 1)"
    lit = engines.literal
    iso_full, uk_full = "^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$", "^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$"
    uk_as_iso = (
        f"SPLIT_PART({uk}, '/', 3) || '-' || SPLIT_PART({uk}, '/', 2) || '-' || SPLIT_PART({uk}, '/', 1)"
    )
    return (
        f"CASE WHEN REGEXP_MATCHES({t}, {lit(_ISO_SQL)}) THEN CASE WHEN REGEXP_MATCHES({iso}, {lit(iso_full)}) "
        f"AND SUBSTRING({iso}, 1, 4) <> '0000' THEN TRY_CAST({iso} AS DATE) END "
        f"WHEN REGEXP_MATCHES({t}, {lit(_UK_SQL)}) THEN CASE WHEN REGEXP_MATCHES({uk}, {lit(uk_full)}) "
        f"AND SPLIT_PART({uk}, '/', 3) <> '0000' THEN TRY_CAST({uk_as_iso} AS DATE) END END"
    )


def _column_sql(c: Column) -> tuple[str, str | None, str]:
    """SQL of one contract column's layers: its text, an intermediate (or None) and its value.

    Layers (each evaluated once per row): ``r_<name>`` is the raw column;
    the text ``t_<name>`` is trimmed with blanks as NULL; the intermediate
    ``p_<name>`` is the code looked up (coded strings), the number (numbers)
    or the parsed date (dates); the value is the contract column itself.
    The rules (:data:`CONTRACT_RULES`) refer to those columns by name.
    """
    r, t, p, spec = c.raw, c.text, c.parsed, c.spec
    if c.type in {"integer", "number"} and c.kind in {"integer", "float"}:
        # a number the file already holds as one: its text is never read, only whether it is missing
        value = r if c.kind == "integer" else f"CASE WHEN isnan({r}) THEN NULL ELSE {r} END"
        if c.hes == "age":  # HES infant ages 7001-7007 are 0
            infant = ", ".join(sorted(episodes.HES_INFANT_AGES))
            value = f"CASE WHEN ({value}) IN ({infant}) THEN 0 ELSE {value} END"
        return (
            value,
            f"CAST({t} AS DOUBLE)",
            (f"CAST(ROUND({c.number}) AS BIGINT)" if c.type == "integer" else p),
        )
    if c.type == "date" and c.kind in {"date", "timestamp"}:  # a date the file already holds as one
        value = r
        if c.hes == "date":  # HES null dates (1800-01-01 ...) are blank
            nulls = ", ".join(
                f"DATE {engines.literal(d)}" for d in sorted(episodes.HES_NULL_DATES) if "-" in d
            )
            value = f"CASE WHEN CAST({r} AS DATE) IN ({nulls}) THEN NULL ELSE {r} END"
        return value, None, f"CAST({t} AS DATE)"
    text = _text_expr(r, c.kind)
    if c.hes == "age":  # HES infant ages 7001-7007 are 0
        text = f"CASE WHEN ({text}) IN ({', '.join(engines.literal(a) for a in sorted(episodes.HES_INFANT_AGES))}) THEN '0' ELSE {text} END"
    elif c.hes == "date":  # HES null dates (1800-01-01 ...) are blank
        nulls = ", ".join(engines.literal(d) for d in sorted(episodes.HES_NULL_DATES))
        text = f"CASE WHEN SUBSTRING({text}, 1, 10) IN ({nulls}) THEN NULL ELSE {text} END"
    if c.type == "string":
        pre, value = None, t
        if "allowed" in spec or "recode" in spec:
            lookup = {str(a).upper(): str(a) for a in spec.get("allowed", [])}
            lookup |= {str(k).upper(): str(val) for k, val in (spec.get("recode") or {}).items()}
            cases = " ".join(
                f"WHEN {engines.literal(k)} THEN {engines.literal(val)}" for k, val in lookup.items()
            )
            pre = f"CASE UPPER({t}) {cases} END"
            value = f"COALESCE({p}, {t})"
        if "pattern" in spec:
            value = f"CASE WHEN {t} IS NOT NULL THEN REPLACE(UPPER({value}), '.', '') END"
        return text, pre, value
    if c.type in {"integer", "number"}:
        pre = (
            f"CASE WHEN {_stray_comma(t)} THEN NULL "
            f"ELSE TRY_CAST(REPLACE(REPLACE({t}, ',', ''), '£', '') AS DOUBLE) END"
        )
        return text, pre, (f"CAST(ROUND({c.number}) AS BIGINT)" if c.type == "integer" else p)
    if c.type == "date":
        return text, _date_from_text(t), p
    raise KeyError(f"Unknown type {c.type!r} for column {c.name!r} in the data dictionary")


def checks(
    spec: Mapping[str, Mapping[str, Any]], present: list[str], kinds: Mapping[str, str]
) -> list[Check]:
    """The rules of :data:`CONTRACT_RULES` that apply to a table's columns, in the message's order.

    Value rules column by column, then row rules column by column, then the
    columns the file lacks that some rows need (as :func:`helpers.io.load_table` words them).
    """
    columns = {name: Column(name, spec[name], kinds.get(name, "text"), tuple(present)) for name in spec}
    out: list[Check] = []
    for stage, names in (
        ("value", present),
        ("row", present),
        ("table", [n for n in spec if n not in present]),
    ):
        for name in names:
            col = columns[name]
            for rule in CONTRACT_RULES:
                if rule.stage == stage and rule.applies(col):
                    out.append(
                        Check(
                            name,
                            rule.expected(col),
                            rule.condition(col),
                            rule.shows(col),
                            unique=rule.name == "unique",
                        )
                    )
    return out


def open_table(
    table: str,
    path: str | Path | None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "duckdb",
    *,
    backend: engines.Backend | None = None,
    spark: Any | None = None,
    keep_in: Path | None = None,
) -> TableSource:
    """Read one contract table with an engine and validate it; raise :class:`helpers.io.InputError`.

    The checks and their wording are those of :func:`helpers.io.load_table`.
    The file is read once into a typed table (DuckDB: a temporary table that
    spills to disk; Spark: a cached view) holding the contract columns, one
    flag per rule and ``_rownum`` (the order of the rows in the file).
    Returns a :class:`TableSource` whose ``typed_sql`` selects from it.

    Checked once: ``keep_in`` (a private folder; DuckDB) keeps the typed
    contract columns in a Parquet file there, listed in the folder's index. A later
    ``open_table`` of the same file (same size and modification time) with the
    same column map, in a process whose :data:`CHECKED_TABLES_ENV` names that
    folder (``handbook run``'s notebook kernel), attaches it instead of
    reading and checking the file again.
    """
    spec = io.table_columns(table)
    path = io.sample_path(table) if path is None else path
    if "://" not in str(path):
        path = Path(path)
        if not path.exists():
            raise io.InputError(f"Cannot find the file for {path.name}: {path}")
        if path.is_dir():
            raise io.InputError(f"Expected a file for {path.name} but {path} is a folder.")
        if path.stat().st_size == 0:
            raise io.InputError(f"Cannot use {path.name}: the file is empty.\nFile: {path}")
    kept = _kept(table, path, column_map) if engines.engine_name(engine) == "duckdb" else None
    if kept is not None:  # checked already by ``handbook run``: attach its typed table, read nothing again
        be = backend or engines.connect("duckdb")
        try:
            return _open_kept(kept, be)
        except BaseException:
            if backend is None:
                be.close()
            raise
    original = path
    if keep_in is not None:
        Path(keep_in).mkdir(parents=True, exist_ok=True)
    origin: dict[str, Any] = {}
    if table == "spells" and "://" not in str(path):
        built = episodes.spells_file_for_engine(path, column_map)  # episodes, or diagnoses to score
        if built is not None:
            path, origin = built
    be = backend or engines.connect(engine, spark)
    try:
        src = _open(table, spec, path, column_map, be)
        src.origin = origin
        if keep_in is not None:
            _index_kept(keep_in, table, original, column_map, src)
        return src
    except BaseException:
        if backend is None:
            be.close()
        raise


def _hes(table: str, file_name: str) -> str:
    """Which HES convention a file column follows (spells and episodes): "age", "date" or none."""
    if table not in {"spells", "episodes"}:
        return ""
    name = str(file_name).strip().upper()
    if name in episodes.HES_AGE_COLUMNS:
        return "age"
    return "date" if name.endswith("DATE") or name in episodes.HES_DATE_NAMES else ""


def _open(
    table: str,
    spec: Mapping[str, Any],
    path: Path | str,
    column_map: Mapping[str, str] | None,
    be: engines.Backend,
    frame: pd.DataFrame | None = None,
) -> TableSource:
    raw_view = f"raw_{table}"
    if frame is not None:
        names, kinds, file_kind = be.register_frame(frame, raw_view)  # type: ignore[attr-defined]
    else:
        names, kinds, file_kind = be.register(path, raw_view)
    clean = {str(c).strip().removeprefix("\ufeff").removeprefix("ï»¿").strip(): c for c in names}
    mapping, leftover = io.map_columns(list(clean), spec, column_map)
    problems: list[io.Problem] = []
    missing = [c for c, s in spec.items() if s.get("required") and c not in mapping.values()]
    for col in missing:
        aliases = spec[col].get("aliases", [])
        hint = io.suggest_column(col, aliases, leftover)
        known = f" (or one of {', '.join(aliases)})" if aliases else ""
        problems.append(io.Problem(col, f"a column named {col}{known}; none found.{hint}"))
    if problems:
        found = ", ".join(list(clean)[:30])
        contract = "the contract's columns; " if table in io.data_dictionary()["tables"] else ""
        problems.append(io.Problem("(header)", f"{contract}the file has: {found}"))
        io.raise_problems(path, problems, table)

    by_target = {target: clean[src] for src, target in mapping.items()}
    present = [c for c in spec if c in by_target]
    src_kind = {c: kinds[by_target[c]] for c in present}
    texts, pres, values = {}, {}, {}
    for c in present:
        col = Column(c, spec[c], src_kind[c], tuple(present), _hes(table, by_target[c]))
        texts[c], pres[c], values[c] = _column_sql(col)
    rules = checks(spec, present, src_kind)
    flagged = [r for r in rules if not r.unique]
    raw_cols = ", ".join(f"{engines.quote(by_target[c])} AS {engines.quote('r_' + c)}" for c in present)
    text_cols = ", ".join(f"{texts[c]} AS {engines.quote('t_' + c)}" for c in present)
    pre_cols = "".join(f", {pres[c]} AS {engines.quote('p_' + c)}" for c in present if pres[c] is not None)
    value_cols = ", ".join(f"{values[c]} AS {engines.quote(c)}" for c in present)
    flag_cols = "".join(f", COALESCE({r.condition}, FALSE) AS _bad{i}" for i, r in enumerate(flagged))
    keep = ", ".join(engines.quote(c) for c in present)
    order = be.order_column()
    select = (
        f"SELECT {keep}{', ' + order if order else ''}{flag_cols} FROM (SELECT *, {value_cols} FROM "
        f"(SELECT *{pre_cols} FROM (SELECT *, {text_cols} FROM (SELECT {raw_cols}{', ' + order if order else ''} "
        f"FROM {engines.quote(raw_view)}) AS r) AS t) AS p) AS v"
    )
    typed_name = f"{table}_typed"
    be.materialise(typed_name, select)
    typed_sql = be.typed_select(typed_name)
    src = TableSource(
        table, path, be, raw_view, typed_sql, clean, present, src_kind, file_kind, mapping, leftover
    )
    for i, r in enumerate(flagged):
        r.condition = f"_bad{i}"
    _validate(src, rules)
    return src


def _validate(src: TableSource, rules: list[Check]) -> None:
    be = src.backend
    checks = [r for r in rules if not r.unique]
    counts = [f"SUM(CASE WHEN {r.condition} THEN 1 ELSE 0 END) AS c{i}" for i, r in enumerate(checks)]
    stats = ["COUNT(*) AS n_rows"]
    if "patient_classification" in src.present:
        stats.append(f"COUNT({engines.quote('patient_classification')}) AS n_classpat")
    if "admission_date" in src.present:
        stats.append(f"MAX({engines.quote('admission_date')}) AS max_admission")
    row = be.query(f"SELECT {', '.join(stats + counts)} FROM ({src.typed_sql}) AS v").iloc[0]
    src.rows = int(row["n_rows"])
    src.stats = {k: row[k] for k in row.index if not k.startswith("c")}
    if "admission_date" in src.present and src.rows:
        src.stats["admissions_by_month"] = be.query(  # helpers.periods.admissions_by_month, for the coverage
            "SELECT DATE_TRUNC('month', admission_date) AS month, COUNT(*) AS n, MIN(admission_date) AS first, "
            f"MAX(admission_date) AS last FROM ({src.typed_sql}) AS v WHERE admission_date IS NOT NULL "
            "GROUP BY DATE_TRUNC('month', admission_date)"
        )
    if src.rows == 0:
        raise io.InputError(
            f"Cannot use {Path(str(src.path)).name}: it has a header but no rows of data.\nFile: {src.path}"
        )
    n_bad = {id(r): int(row[f"c{i}"] or 0) for i, r in enumerate(checks)}
    for r in rules:
        if r.unique:
            c = engines.quote(r.column)
            dup = be.query(
                f"SELECT SUM(k) AS n FROM (SELECT COUNT(*) AS k FROM ({src.typed_sql}) AS v "
                f"WHERE {c} IS NOT NULL GROUP BY {c} HAVING COUNT(*) > 1) AS d"
            ).iloc[0]["n"]
            n_bad[id(r)] = int(dup or 0)
            r.condition = (
                f"{c} IN (SELECT {c} FROM ({src.typed_sql}) AS v2 WHERE {c} IS NOT NULL "
                f"GROUP BY {c} HAVING COUNT(*) > 1)"
            )
    broken = [r for r in rules if n_bad.get(id(r), 0) > 0]
    if not broken:
        return
    # the error path: examples with their spreadsheet row numbers and the values as written in the file
    problems = []
    for r in broken:
        if not r.show:  # a column some rows need is missing: no examples (as io)
            problems.append(io.Problem(r.column, r.expected))
            continue
        found = be.query(
            f"SELECT _rownum FROM ({src.typed_sql}) AS v WHERE {r.condition} "
            f"ORDER BY _rownum LIMIT {io.MAX_ROWS_SHOWN}"
        )["_rownum"].tolist()
        raw = be.raw_rows(src.raw_view, found, [_source_name(src, c) for c in r.show])
        lines = []
        for position, values in raw:
            shown = ", ".join(f"{c}={io.show_value(_raw_value(v, src, c))}" for c, v in zip(r.show, values))
            lines.append(f"row {position + 1 + io.HEADER_ROWS}: {shown}")
        problems.append(io.Problem(r.column, r.expected, lines, n_bad[id(r)]))
    io.raise_problems(src.path, problems, src.table)


def _source_name(src: TableSource, column: str) -> str:
    """The file's own name of a contract column."""
    for source, target in src.mapping.items():
        if target == column:
            return src.raw_names[source]
    raise KeyError(column)


def _raw_value(value: Any, src: TableSource, column: str) -> Any:
    """A raw value as helpers.io shows it: CSV cells are text ('' when empty), others as text too."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "" if src.file_kind == "csv" else None
    if src.kinds.get(column) == "date" or hasattr(value, "isoformat") and not isinstance(value, str):
        return value.isoformat()[:10]
    return str(value) if not isinstance(value, str) else value


def validate_table(
    table: str,
    path: str | Path | None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "duckdb",
    *,
    spark: Any | None = None,
) -> int:
    """Check one contract input with an engine; return its number of rows or raise InputError."""
    src = open_table(table, path, column_map, engine, spark=spark)
    src.backend.close()
    return src.rows


# --------------------------------------------------------------------------- a typed frame for pandas
#: The pandas dtype of each contract type.
DTYPES = {"string": "str", "integer": "Int64", "number": "Float64", "date": "datetime64[us]"}


def typed_values(values: pd.Series, dtype: str) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """A column as an engine returned it, in the pandas dtype of :data:`DTYPES`."""
    if dtype == "str":
        return values.astype("str").to_numpy()
    if dtype == "datetime64[us]":
        return pd.to_datetime(values).astype("datetime64[us]").to_numpy()
    if dtype == "Int64":
        return pd.array(pd.to_numeric(values).to_numpy(dtype="float64"), dtype="Float64").astype("Int64")
    return pd.array(pd.to_numeric(values).to_numpy(dtype="float64"), dtype="Float64")


def read_typed(
    table: str,
    path: Path,
    column_map: Mapping[str, str] | None = None,
    *,
    raw: pd.DataFrame | None = None,
    spec: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One table read and checked by DuckDB, as a typed pandas frame (the contract columns, in order).

    ``raw``: the file already read as text (an Excel sheet, a database
    table, a file whose diagnoses are scored); ``spec``: the columns of a
    table outside the contract (a notebook's own input). Raises
    :class:`helpers.io.InputError` as :func:`open_table` does.
    ``attrs["load_summary"]`` says what was read.
    """
    spec = io.table_columns(table) if spec is None else spec
    be = engines.connect("duckdb")
    try:
        src = _open(table, spec, path, column_map, be, raw)
        cols = ", ".join(engines.quote(c) for c in src.present)
        frame = be.arrow(f"SELECT {cols} FROM ({src.typed_sql}) AS v ORDER BY _rownum").to_pandas()  # type: ignore[attr-defined]
    finally:
        be.close()
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for c in src.present:
        out[c] = typed_values(frame[c], DTYPES[spec[c]["type"]])
    out.attrs["load_summary"] = {
        "table": table,
        "file": Path(path).name,
        **({"sheet": raw.attrs["sheet"]} if raw is not None and "sheet" in raw.attrs else {}),
        "rows_read": src.rows,
        "columns_mapped": {k: v for k, v in src.mapping.items() if k != v},
        "columns_ignored": src.leftover,
    }
    return out


# --------------------------------------------------------------------------- checked once, read twice
#: Names the private folder where ``handbook run`` keeps the tables it checked (see :func:`open_table`).
CHECKED_TABLES_ENV = "HANDBOOK_CHECKED_TABLES"
_INDEX = "index.pickle"


def _file_key(table: str, path: Path | str | None, column_map: Mapping[str, str] | None) -> tuple:
    """What identifies one checked input: the table, the file (path, size, modification time) and the column map."""
    p = Path(io.sample_path(table) if path is None else path).resolve()
    st = p.stat()
    mapped = tuple(sorted((str(k), str(v)) for k, v in (column_map or {}).items()))
    return (table, str(p), st.st_size, st.st_mtime_ns, mapped)


def _read_index(folder: Path) -> dict[tuple, dict[str, Any]]:
    index = folder / _INDEX
    if not index.is_file():
        return {}
    with open(index, "rb") as f:
        return pickle.load(f)  # written by _index_kept in a private folder of this user


def _index_kept(
    folder: Path, table: str, path: Path | str | None, column_map: Mapping[str, str] | None, src: TableSource
) -> None:
    """Write a checked table's typed contract columns to a Parquet file in ``folder`` (in file order) and list it.

    Parquet rather than a DuckDB database file: writing it costs about a third of the CPU.
    """
    kept = folder / f"{table}.parquet"
    cols = ", ".join(engines.quote(c) for c in src.present)
    src.backend.con.execute(  # type: ignore[attr-defined]
        f"COPY (SELECT {cols} FROM ({src.typed_sql}) AS v) TO {engines.literal(str(kept))} "
        "(FORMAT PARQUET, COMPRESSION SNAPPY)"  # a scan of a table keeps its order (preserve_insertion_order)
    )
    src.kept = kept
    index = _read_index(folder)
    index[_file_key(table, path, column_map)] = {
        "file": kept,
        "source": {
            k: getattr(src, k)
            for k in ("table", "path", "raw_names", "present", "kinds", "file_kind", "mapping", "leftover")
        }
        | {"rows": src.rows, "stats": src.stats, "origin": src.origin},
    }
    with open(folder / _INDEX, "wb") as f:
        pickle.dump(index, f)


def _kept(table: str, path: Path | str | None, column_map: Mapping[str, str] | None) -> dict[str, Any] | None:
    """The entry of a table ``handbook run`` checked and kept (:data:`CHECKED_TABLES_ENV`), if this is that file."""
    folder = os.environ.get(CHECKED_TABLES_ENV)
    if not folder or "://" in str(path) or not Path(folder, _INDEX).is_file():
        return None
    entry = _read_index(Path(folder)).get(_file_key(table, path, column_map))
    return entry if entry is not None and Path(entry["file"]).is_file() else None


def _open_kept(entry: dict[str, Any], be: engines.Backend) -> TableSource:
    """A :class:`TableSource` over a kept typed table (already checked: no rule is checked again)."""
    meta = dict(entry["source"])
    table = meta["table"]
    typed_sql = (
        "SELECT * EXCLUDE (file_row_number), file_row_number AS _rownum "
        f"FROM read_parquet({engines.literal(str(entry['file']))}, file_row_number = true)"
    )
    rows, stats, origin = meta.pop("rows"), meta.pop("stats"), meta.pop("origin")
    src = TableSource(backend=be, raw_view=f"raw_{table}", typed_sql=typed_sql, **meta)
    src.rows, src.stats, src.origin = rows, dict(stats), dict(origin)
    return src
