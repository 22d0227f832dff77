"""The data contract checked in SQL: reading a contract table and checking every rule.

The contract is ``data/data_dictionary.yaml`` (read by :mod:`helpers.io`).
:func:`open_table` reads one contract table with an engine
(:mod:`helpers.engine`) into a typed table holding the contract columns and
one flag per broken rule, and stops with :class:`helpers.io.InputError`
naming the file, the column, what was expected and up to five rows with their
spreadsheet row numbers and the values as written in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from helpers import io
from helpers.engine import Backend, connect, literal, quote

# The date forms helpers.io.parse_dates accepts, as regular expressions both engines read
# (ISO yyyy-mm-dd, optionally with a midnight time; UK dd/mm/yyyy, optionally with midnight).
_ISO_SQL = "^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([ T]00:00(:00)?([.]0+)?)?$"
_UK_SQL = "^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}( 00:00(:00)?)?$"


@dataclass
class Rule:
    """One rule of the contract as SQL: the rows that break it and how io words it."""

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
    backend: Backend
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


def _text_expr(raw: str, kind: str) -> str:
    """Trimmed text of a column, blank (empty, NA, NULL, NaN, None) as NULL: helpers.io's first step."""
    if kind == "float":  # a whole float is a whole number's text, as helpers.io reads it (codes stored as 1.0)
        base = (f"CASE WHEN isnan({raw}) THEN NULL WHEN {raw} = FLOOR({raw}) AND ABS({raw}) < 1e15 "
                f"THEN CAST(CAST({raw} AS BIGINT) AS VARCHAR) ELSE CAST({raw} AS VARCHAR) END")
    else:
        base = f"CAST({raw} AS VARCHAR)"
    t = f"TRIM({base})"
    words = ", ".join(literal(w) for w in io.BLANK_WORDS)
    return f"CASE WHEN {t} = '' OR UPPER({t}) IN ({words}) THEN NULL ELSE {t} END"


def _date_from_text(t: str) -> str:
    """helpers.io.parse_dates in SQL: ISO or UK form, and a real calendar date, else NULL."""
    iso = f"SUBSTRING({t}, 1, 10)"
    uk = f"SPLIT_PART({t}, ' ', 1)"

    def parts(text: str, pattern: str, order: tuple[int, int, int]) -> tuple[str, str, str]:
        return tuple(f"CAST(REGEXP_EXTRACT({text}, {literal(pattern)}, {g}) AS INTEGER)" for g in order)  # type: ignore[return-value]

    iso_full = "^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$"
    uk_full = "^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$"

    def make(text: str, pattern: str, order: tuple[int, int, int]) -> str:
        y, m, d = parts(text, pattern, order)
        leap = f"(({y}) % 4 = 0 AND (({y}) % 100 <> 0 OR ({y}) % 400 = 0))"
        last = (f"CASE WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END "
                f"WHEN {m} IN (4, 6, 9, 11) THEN 30 ELSE 31 END")
        ok = f"REGEXP_MATCHES({text}, {literal(pattern)}) AND {y} >= 1 AND {m} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {last}"
        return f"CASE WHEN {ok} THEN MAKE_DATE({y}, {m}, {d}) END"

    return (f"CASE WHEN REGEXP_MATCHES({t}, {literal(_ISO_SQL)}) THEN {make(iso, iso_full, (1, 2, 3))} "
            f"WHEN REGEXP_MATCHES({t}, {literal(_UK_SQL)}) THEN {make(uk, uk_full, (3, 2, 1))} END")


def _column_sql(name: str, spec: Mapping[str, Any], kind: str) -> tuple[str, str | None, str, list[Rule]]:
    """SQL of one contract column: its text, an intermediate, its value, and its rules in io's order.

    Layers (each evaluated once per row): ``r_<name>`` is the raw column;
    the text ``t_<name>`` is trimmed with blanks as NULL; the intermediate
    ``p_<name>`` is the code looked up (coded strings), the number (numbers)
    or the parsed date (dates); the value is the contract column itself.
    Rule conditions refer to those columns by name.
    """
    r, t, p, v = quote(f"r_{name}"), quote(f"t_{name}"), quote(f"p_{name}"), quote(name)
    text = _text_expr(r, kind)
    rules: list[Rule] = []
    ctype = spec["type"]
    if ctype == "string":
        pre, value = None, t
        if "allowed" in spec or "recode" in spec:
            allowed = [str(a) for a in spec.get("allowed", [])]
            lookup = {a.upper(): a for a in allowed}
            lookup |= {str(k).upper(): str(val) for k, val in (spec.get("recode") or {}).items()}
            cases = " ".join(f"WHEN {literal(k)} THEN {literal(val)}" for k, val in lookup.items())
            pre = f"CASE UPPER({t}) {cases} END"
            if allowed:
                rules.append(Rule(name, "one of " + ", ".join(allowed), f"{t} IS NOT NULL AND {p} IS NULL", [name]))
            value = f"COALESCE({p}, {t})"
        if "pattern" in spec:
            patt = spec["pattern"] if spec["pattern"].startswith("^") else "^(" + spec["pattern"] + ")"
            value = f"CASE WHEN {t} IS NOT NULL THEN REPLACE(UPPER({value}), '.', '') END"
            rules.append(Rule(name, f"a code matching {spec['pattern']}",
                               f"{t} IS NOT NULL AND NOT COALESCE(REGEXP_MATCHES({v}, {literal(patt)}), FALSE)", [name]))
        return text, pre, value, rules
    if ctype in {"integer", "number"}:
        if kind in {"integer", "float"}:
            pre = f"CASE WHEN {t} IS NULL THEN NULL ELSE CAST({r} AS DOUBLE) END"
        else:
            # a comma only between thousands, as helpers.io
            comma = f"(CONTAINS({t}, ',') AND NOT REGEXP_MATCHES({t}, {literal(io.THOUSANDS.pattern)}))"
            pre = f"CASE WHEN {comma} THEN NULL ELSE TRY_CAST(REPLACE(REPLACE({t}, ',', ''), '£', '') AS DOUBLE) END"
            rules.append(Rule(name, "a number with commas only between thousands (1,234.5; a decimal point, "
                                     "not a comma)", f"{t} IS NOT NULL AND {comma}", [name]))
            rules.append(Rule(name, "a number", f"{t} IS NOT NULL AND NOT {comma} AND {p} IS NULL", [name]))
        num = p
        if ctype == "integer":
            rules.append(Rule(name, "a whole number", f"{p} IS NOT NULL AND {p} <> FLOOR({p})", [name]))
            num = f"(CASE WHEN {p} = FLOOR({p}) THEN {p} END)"
            value = f"CAST(ROUND({num}) AS BIGINT)"
        else:
            value = p
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None or hi is not None:
            conds = ([f"{num} < {lo}"] if lo is not None else []) + ([f"{num} > {hi}"] if hi is not None else [])
            rng = (f"between {lo} and {hi}" if lo is not None and hi is not None
                   else (f"at least {lo}" if lo is not None else f"at most {hi}"))
            rules.append(Rule(name, f"a value {rng}", " OR ".join(conds), [name]))
        return text, pre, value, rules
    if ctype == "date":
        first, last = io.date_window()
        window = Rule(name, f"a date from {first:%Y-%m-%d} to {last:%Y-%m-%d} (a typing slip? "
                             f"a wider window: handbook run --dates FROM:TO)",
                       f"{v} < DATE '{first:%Y-%m-%d}' OR {v} > DATE '{last:%Y-%m-%d}'", [name])
        if kind in {"date", "timestamp"}:
            return text, None, f"CAST({r} AS DATE)", [*rules, window]
        rules.append(Rule(name, "a date as yyyy-mm-dd or dd/mm/yyyy", f"{t} IS NOT NULL AND {p} IS NULL", [name]))
        return text, _date_from_text(t), p, [*rules, window]
    raise KeyError(f"Unknown type {ctype!r} for column {name!r} in the data dictionary")


def open_table(
    table: str,
    path: str | Path | None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "duckdb",
    *,
    backend: Backend | None = None,
    spark: Any | None = None,
) -> TableSource:
    """Read one contract table with an engine and validate it; raise :class:`helpers.io.InputError`.

    The checks and their wording are those of :func:`helpers.io.load_table`.
    The file is read once into a typed table (DuckDB: a temporary table that
    spills to disk; Spark: a cached view) holding the contract columns, one
    flag per rule and ``_rownum`` (the order of the rows in the file).
    Returns a :class:`TableSource` whose ``typed_sql`` selects from it.
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
    origin: dict[str, Any] = {}
    if table == "spells" and "://" not in str(path):
        from helpers import episodes

        built = episodes.spells_file_for_engine(path, column_map)  # episodes, or diagnoses to score
        if built is not None:
            path, origin = built
    be = backend or connect(engine, spark)
    try:
        src = _open(table, spec, path, column_map, be)
        src.origin = origin
        return src
    except BaseException:
        if backend is None:
            be.close()
        raise


def _open(table: str, spec: Mapping[str, Any], path: Path | str, column_map: Mapping[str, str] | None,
          be: Backend) -> TableSource:
    raw_view = f"raw_{table}"
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
        problems.append(io.Problem("(header)", f"the contract's columns; the file has: {found}"))
        io.raise_problems(path, problems, table)

    by_target = {target: clean[src] for src, target in mapping.items()}
    present = [c for c in spec if c in by_target]
    src_kind = {c: kinds[by_target[c]] for c in present}
    texts, pres, values, rules = {}, {}, {}, []
    for c in present:
        texts[c], pres[c], values[c], col_rules = _column_sql(c, spec[c], src_kind[c])
        rules += col_rules
    # second pass, as io: required, unique, not_before, required_when; then columns some rows need
    for c in present:
        cs = spec[c]
        if cs.get("required"):  # missing because blank (t_ is NULL: empty or NA-like text), as io
            rules.append(Rule(c, "a value in every row (it is required)", f"{quote(c)} IS NULL AND {quote('t_' + c)} IS NULL",
                               [c]))
        if cs.get("unique"):
            rules.append(Rule(c, "each value only once (it identifies a row)", None, [c], unique=True))
        other = cs.get("not_before")
        if other and other in present:
            rules.append(Rule(c, f"a date not before {other}", f"{quote(c)} < {quote(other)}", [other, c]))
        when = cs.get("required_when")
        if when:
            (wcol, wval), = when.items()
            if wcol in present:
                rules.append(Rule(c, f"a value where {wcol} is {wval}", f"{quote(wcol)} = {literal(wval)} AND {quote(c)} IS NULL",
                                   [wcol, c]))
    for c, cs in spec.items():
        when = cs.get("required_when")
        if when and c not in present:
            (wcol, wval), = when.items()
            if wcol in present:
                rules.append(Rule(c, f"a column {c}, needed because some rows have {wcol} = {wval}",
                                   f"{quote(wcol)} = {literal(wval)}", []))
    flagged = [r for r in rules if not r.unique]
    raw_cols = ", ".join(f"{quote(by_target[c])} AS {quote('r_' + c)}" for c in present)
    text_cols = ", ".join(f"{texts[c]} AS {quote('t_' + c)}" for c in present)
    pre_cols = "".join(f", {pres[c]} AS {quote('p_' + c)}" for c in present if pres[c] is not None)
    value_cols = ", ".join(f"{values[c]} AS {quote(c)}" for c in present)
    flag_cols = "".join(f", COALESCE({r.condition}, FALSE) AS _bad{i}" for i, r in enumerate(flagged))
    keep = ", ".join(quote(c) for c in present)
    order = be.order_column()
    select = (f"SELECT {keep}{', ' + order if order else ''}{flag_cols} FROM (SELECT *, {value_cols} FROM "
              f"(SELECT *{pre_cols} FROM (SELECT *, {text_cols} FROM (SELECT {raw_cols}{', ' + order if order else ''} "
              f"FROM {quote(raw_view)}) AS r) AS t) AS p) AS v")
    typed_name = f"{table}_typed"
    be.materialise(typed_name, select)
    typed_sql = be.typed_select(typed_name)
    src = TableSource(table, path, be, raw_view, typed_sql, clean, present, src_kind, file_kind, mapping, leftover)
    for i, r in enumerate(flagged):
        r.condition = f"_bad{i}"
    _validate(src, rules)
    return src


def _validate(src: TableSource, rules: list[Rule]) -> None:
    be = src.backend
    checks = [r for r in rules if not r.unique]
    counts = [f"SUM(CASE WHEN {r.condition} THEN 1 ELSE 0 END) AS c{i}" for i, r in enumerate(checks)]
    stats = ["COUNT(*) AS n_rows"]
    if "patient_classification" in src.present:
        stats.append(f"COUNT({quote('patient_classification')}) AS n_classpat")
    if "admission_date" in src.present:
        stats.append(f"MAX({quote('admission_date')}) AS max_admission")
    row = be.query(f"SELECT {', '.join(stats + counts)} FROM ({src.typed_sql}) AS v").iloc[0]
    src.rows = int(row["n_rows"])
    src.stats = {k: row[k] for k in row.index if not k.startswith("c")}
    if "admission_date" in src.present and src.rows:
        src.stats["admissions_by_month"] = be.query(  # helpers.periods.admissions_by_month, for the coverage
            "SELECT DATE_TRUNC('month', admission_date) AS month, COUNT(*) AS n, MIN(admission_date) AS first, "
            f"MAX(admission_date) AS last FROM ({src.typed_sql}) AS v WHERE admission_date IS NOT NULL "
            "GROUP BY DATE_TRUNC('month', admission_date)")
    if src.rows == 0:
        raise io.InputError(f"Cannot use {Path(str(src.path)).name}: it has a header but no rows of data.\nFile: {src.path}")
    n_bad = {id(r): int(row[f"c{i}"] or 0) for i, r in enumerate(checks)}
    for r in rules:
        if r.unique:
            c = quote(r.column)
            dup = be.query(f"SELECT SUM(k) AS n FROM (SELECT COUNT(*) AS k FROM ({src.typed_sql}) AS v "
                           f"WHERE {c} IS NOT NULL GROUP BY {c} HAVING COUNT(*) > 1) AS d").iloc[0]["n"]
            n_bad[id(r)] = int(dup or 0)
            r.condition = (f"{c} IN (SELECT {c} FROM ({src.typed_sql}) AS v2 WHERE {c} IS NOT NULL "
                           f"GROUP BY {c} HAVING COUNT(*) > 1)")
    broken = [r for r in rules if n_bad.get(id(r), 0) > 0]
    if not broken:
        return
    # the error path: examples with their spreadsheet row numbers and the values as written in the file
    problems = []
    for r in broken:
        if not r.show:  # a column some rows need is missing: no examples (as io)
            problems.append(io.Problem(r.column, r.expected))
            continue
        found = be.query(f"SELECT _rownum FROM ({src.typed_sql}) AS v WHERE {r.condition} "
                         f"ORDER BY _rownum LIMIT {io.MAX_ROWS_SHOWN}")["_rownum"].tolist()
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


def validate_table(table: str, path: str | Path | None, column_map: Mapping[str, str] | None = None,
                   engine: str = "duckdb", *, spark: Any | None = None) -> int:
    """Check one contract input with an engine; return its number of rows or raise InputError."""
    if engine == "pandas":
        return int(len(io.load_table(table, path, column_map)))
    src = open_table(table, path, column_map, engine, spark=spark)
    src.backend.close()
    return src.rows
