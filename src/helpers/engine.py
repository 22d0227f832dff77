"""Spell-level work at national scale: DuckDB on one machine, Spark beyond it.

The pandas path (:func:`helpers.io.load_table`, :func:`helpers.derive.add_spell_fields`,
:func:`helpers.casemix.fit_casemix`) holds every spell in memory as Python
objects; that is fine for a trust's extract and too much for a year of HES
(about 16 million spells). Here the same spell-level work is written once as
SQL and run by an engine that streams the file:

* **validation** of every rule of ``data/data_dictionary.yaml`` (counts of
  offending rows and up to five examples with their spreadsheet row numbers,
  reported through :class:`helpers.io.Problem` and the message of
  :class:`helpers.io.InputError`, so a user sees the same text whichever
  engine read the file);
* the **derived fields** of :mod:`helpers.derive` (length of stay, emergency,
  elective, day case, died, the 30-day emergency readmission linked by patient
  across providers - the next emergency admission 0 to 29 days after
  discharge, not the spell itself - its eligibility, and the financial year);
* **aggregation** to the case-mix cells that :mod:`helpers.casemix` fits on.

Only the aggregated cells (a few thousand rows) reach pandas, where
:func:`helpers.casemix.fit_cells` - the same function
:func:`helpers.casemix.fit_casemix` calls on cells it builds from rows - fits
the indirectly standardised model (the cell totals are the sufficient
statistics of the binomial and Poisson likelihoods; METHODS.md section 1).
``helpers.engine.fit_cells`` is that function, imported.

Engines. ``"duckdb"`` (embedded, no server) reads CSV and Parquet.
``"spark"`` runs the same SQL on Apache Spark: the queries are written in
DuckDB's dialect and transpiled to Spark SQL by sqlglot (an existing
transpiler, not an engine of our own). ``"pandas"`` is the in-memory path of
the other modules, unchanged. The results on the sample data are the same
whichever engine ran them (``tests/test_engine.py``).

Spark session: :func:`spark_session` uses the active session if there is one;
otherwise ``SPARK_REMOTE`` (a Spark Connect URL, ``sc://host:15002``) or
``HANDBOOK_SPARK_MASTER`` (a master URL such as ``spark://host:7077`` or
``yarn``; default ``local[*]``).
"""

from __future__ import annotations

import codecs
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers import casemix, derive, indicators, io
from helpers.casemix import INDICATORS, MIN_LEVEL_SPELLS, MISSING, CasemixModel, fit_cells

Engine = Literal["pandas", "duckdb", "spark"]
ENGINES: tuple[str, ...] = ("pandas", "duckdb", "spark")
#: Environment variables read by :func:`spark_session`.
SPARK_MASTER_ENV = "HANDBOOK_SPARK_MASTER"
SPARK_REMOTE_ENV = "SPARK_REMOTE"
#: What a user without the optional Spark extra is told.
SPARK_EXTRA_MISSING = ("The spark engine needs PySpark, an optional extra: install it with "
                       "`.venv/bin/pip install -r requirements-spark.txt`; Spark also needs Java 17 or later.")
#: Memory DuckDB may use before it spills to a temporary folder (env HANDBOOK_DUCKDB_MEMORY).
DUCKDB_MEMORY_LIMIT = "2GB"

# The date forms helpers.io.parse_dates accepts, as regular expressions both engines read
# (ISO yyyy-mm-dd, optionally with a midnight time; UK dd/mm/yyyy, optionally with midnight).
_ISO_SQL = "^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([ T]00:00(:00)?([.]0+)?)?$"
_UK_SQL = "^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}( 00:00(:00)?)?$"
_NUMERIC = re.compile(r"(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UBIGINT|UINTEGER|USMALLINT|UTINYINT|INT|LONG|SHORT|BYTE)", re.I)
_FLOATING = re.compile(r"(FLOAT|DOUBLE|DECIMAL|REAL|NUMERIC)", re.I)


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _lit(value: Any) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _kind(sql_type: str) -> str:
    """Classify an engine's column type: text, date, timestamp, integer, float or other."""
    t = sql_type.upper()
    if t.startswith(("VARCHAR", "STRING", "TEXT", "CHAR")) or t == "STRINGTYPE()":
        return "text"
    if t.startswith("DATE"):
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    if _FLOATING.search(t):
        return "float"
    if _NUMERIC.search(t):
        return "integer"
    return "other"


# --------------------------------------------------------------------------- engines
class _Backend:
    """What the SQL needs from an engine: read a file as a view, run a query, keep a table."""

    name = "base"

    def register(self, path: Path | str, view: str) -> tuple[list[str], dict[str, str], str]:
        """Create ``view`` over the file; return its column names, their kinds and the source kind."""
        raise NotImplementedError

    def query(self, sql: str) -> pd.DataFrame:
        raise NotImplementedError

    def materialise(self, name: str, sql: str) -> None:
        raise NotImplementedError

    def order_column(self) -> str | None:
        """A column of the raw view that orders its rows as in the file (None: the engine keeps the order)."""
        return None

    def typed_select(self, name: str) -> str:
        """SELECT of a materialised table with ``_rownum``, which sorts rows in file order."""
        raise NotImplementedError

    def raw_rows(self, view: str, rownums: list[Any], columns: list[str]) -> list[tuple[int, list[Any]]]:
        """(0-based position in the file, raw values) of the rows with these ``_rownum``."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _DuckDB(_Backend):
    name = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        import duckdb

        self._duckdb = duckdb
        self._tmp = tempfile.TemporaryDirectory(prefix="handbook-duckdb-")
        self.con = duckdb.connect(config={"preserve_insertion_order": True})
        limit = memory_limit or os.environ.get("HANDBOOK_DUCKDB_MEMORY", DUCKDB_MEMORY_LIMIT)
        self.con.execute(f"SET memory_limit = {_lit(limit)}")
        self.con.execute(f"SET temp_directory = {_lit(self._tmp.name)}")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self._sources: dict[str, str] = {}

    def register(self, path: Path | str, view: str) -> tuple[list[str], dict[str, str], str]:
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in {".parquet", ".pq"}:
            source = f"read_parquet({_lit(str(path))})"
            kind = "parquet"
            try:
                self.con.execute(f"CREATE OR REPLACE VIEW {_q(view)} AS SELECT * FROM {source}")
            except self._duckdb.Error as exc:
                raise io.InputError(f"Cannot read {path.name} as Parquet: {exc}\nFile: {path}") from None
        elif suffix in {".xlsx", ".xlsm", ".xls"}:
            frame = io.read_raw(path)  # a workbook is never national-size: read it as helpers.io does
            self.con.register(f"{view}_frame", frame)
            self.con.execute(f"CREATE OR REPLACE VIEW {_q(view)} AS SELECT * FROM {_q(view + '_frame')}")
            kind = "excel"
        else:
            kind = "csv"
            source = self._csv_source(path)
            self.con.execute(f"CREATE OR REPLACE VIEW {_q(view)} AS SELECT * FROM {source}")
        desc = self.con.execute(f"DESCRIBE SELECT * FROM {_q(view)}").fetchall()
        names = [r[0] for r in desc]
        return names, {r[0]: _kind(r[1]) for r in desc}, kind

    def _csv_source(self, path: Path) -> str:
        with open(path, "rb") as f:
            head = f.read(65536)
        if b"\x00" in head:
            raise io.InputError(
                f"Cannot use {path.name}: it is not a text file (it contains binary data). "
                "Save it as CSV, or give an .xlsx or .parquet file with its own extension."
                f"\nFile: {path}"
            )
        target = path
        if not _is_utf8(path):
            target = Path(self._tmp.name) / (path.stem + ".utf8.csv")
            try:
                _transcode(path, target, "cp1252")
            except UnicodeDecodeError:
                raise io.InputError(
                    f"Cannot read {path.name}: it is neither UTF-8 nor Windows (cp1252) text.\nFile: {path}"
                ) from None
        source = (f"read_csv({_lit(str(target))}, header = true, all_varchar = true, delim = ',', "
                  "quote = '\"', escape = '\"', null_padding = false)")
        try:
            self.con.execute(f"SELECT * FROM {source} LIMIT 1").fetchall()
        except self._duckdb.Error as exc:
            raise io.InputError(f"Cannot read {path.name} as CSV: {_first_line(exc)}\nFile: {path}") from None
        return source

    def query(self, sql: str) -> pd.DataFrame:
        try:
            cur = self.con.execute(sql)
        except self._duckdb.InvalidInputException as exc:
            raise io.InputError(f"Cannot read the file: {_first_line(exc)}") from None
        names = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=names, dtype=object)

    def arrow(self, sql: str) -> Any:
        return self.con.sql(sql).to_arrow_table()

    def materialise(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_q(name)} AS {sql}")

    def typed_select(self, name: str) -> str:
        # a table created from one ordered scan numbers its rows in that order (preserve_insertion_order)
        return f"SELECT *, rowid AS _rownum FROM {_q(name)}"

    def raw_rows(self, view: str, rownums: list[Any], columns: list[str]) -> list[tuple[int, list[Any]]]:
        numbered = f"{view}_numbered"
        if numbered not in self._sources:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_q(numbered)} AS SELECT * FROM {_q(view)}")
            self._sources[numbered] = numbered
        if not rownums:
            return []
        wanted = ", ".join(str(int(r)) for r in rownums)
        cols = ", ".join(_q(c) for c in columns)
        rows = self.con.execute(f"SELECT rowid, {cols} FROM {_q(numbered)} WHERE rowid IN ({wanted}) ORDER BY rowid").fetchall()
        return [(int(r[0]), list(r[1:])) for r in rows]

    def close(self) -> None:
        self.con.close()
        self._tmp.cleanup()


class _Spark(_Backend):
    name = "spark"

    def __init__(self, session: Any | None = None) -> None:
        try:
            import sqlglot
        except ImportError:  # pragma: no cover - depends on the machine
            raise RuntimeError(SPARK_EXTRA_MISSING) from None

        self._sqlglot = sqlglot
        self.spark = session or spark_session()
        self._frames: dict[str, Any] = {}

    def to_spark(self, sql: str) -> str:
        """DuckDB SQL transpiled to Spark SQL by sqlglot."""
        return self._sqlglot.transpile(sql, read="duckdb", write="spark")[0]

    def register(self, path: Path | str, view: str) -> tuple[list[str], dict[str, str], str]:
        text = str(path)
        suffix = Path(text).suffix.lower()
        local = "://" not in text
        if local and not Path(text).exists():
            raise io.InputError(f"Cannot find the file: {text}")
        if suffix in {".parquet", ".pq"}:
            df = self.spark.read.parquet(text)
            kind = "parquet"
        elif suffix in {".xlsx", ".xlsm", ".xls"}:
            df = self.spark.createDataFrame(io.read_raw(Path(text)).fillna(""))
            kind = "excel"
        else:
            df = (self.spark.read.option("header", True).option("inferSchema", False).option("escape", '"')
                  .option("encoding", "UTF-8").csv(text))
            kind = "csv"
        names = list(df.columns)
        kinds = {f.name: _kind(f.dataType.simpleString()) for f in df.schema.fields}
        from pyspark.sql import functions as F

        # increasing with the partition and the position in it: the file's order, for one file
        df = df.withColumn("_mid", F.monotonically_increasing_id())
        df.createOrReplaceTempView(view)
        self._frames[view] = df
        return names, kinds, kind

    def query(self, sql: str) -> pd.DataFrame:
        rows = self.spark.sql(self.to_spark(sql)).collect()
        if not rows:
            return pd.DataFrame(columns=self.spark.sql(self.to_spark(sql)).columns, dtype=object)
        return pd.DataFrame([tuple(r) for r in rows], columns=list(rows[0].__fields__), dtype=object)

    def materialise(self, name: str, sql: str) -> None:
        df = self.spark.sql(self.to_spark(sql)).cache()
        df.createOrReplaceTempView(name)
        self._frames[name] = df

    def order_column(self) -> str | None:
        return "_mid"

    def typed_select(self, name: str) -> str:
        return f"SELECT *, _mid AS _rownum FROM {_q(name)}"

    def raw_rows(self, view: str, rownums: list[Any], columns: list[str]) -> list[tuple[int, list[Any]]]:
        if not rownums:
            return []
        wanted = ", ".join(str(int(r)) for r in rownums)
        cols = ", ".join(f"a.{_q(c)}" for c in columns)
        sql = (f"SELECT a._mid, COUNT(b._mid) AS pos, {cols} FROM (SELECT * FROM {_q(view)} WHERE _mid IN ({wanted})) AS a "
               f"LEFT JOIN (SELECT _mid FROM {_q(view)}) AS b ON b._mid < a._mid GROUP BY a._mid, {cols} ORDER BY a._mid")
        rows = self.query(sql)
        return [(int(r["pos"]), [r.iloc[2 + k] for k in range(len(columns))]) for _, r in rows.iterrows()]

    def close(self) -> None:
        for df in self._frames.values():
            try:
                df.unpersist()
            except Exception:  # noqa: BLE001 - a view that was never cached
                pass
        self._frames.clear()


def spark_session(app_name: str = "nhs-value-handbook") -> Any:
    """The Spark session to run on: the active one, else one built from the environment.

    ``SPARK_REMOTE`` (Spark Connect, e.g. ``sc://host:15002``) wins over
    ``HANDBOOK_SPARK_MASTER`` (a master URL: ``local[*]`` by default,
    ``spark://host:7077``, ``yarn``, ``k8s://...``).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover - depends on the machine
        raise RuntimeError(SPARK_EXTRA_MISSING) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    remote = os.environ.get(SPARK_REMOTE_ENV)
    if remote:
        return SparkSession.builder.remote(remote).appName(app_name).getOrCreate()
    master = os.environ.get(SPARK_MASTER_ENV, "local[*]")
    return (SparkSession.builder.master(master).appName(app_name)
            .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", os.environ.get("HANDBOOK_SPARK_PARTITIONS", "8"))
            .getOrCreate())


def _backend(engine: str, spark: Any | None = None, threads: int | None = None) -> _Backend:
    if engine == "duckdb":
        return _DuckDB(threads=threads)
    if engine == "spark":
        return _Spark(spark)
    raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}.")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _is_utf8(path: Path, block: int = 1 << 24) -> bool:
    """Whether the whole file decodes as UTF-8 (read in blocks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        try:
            while chunk := f.read(block):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _transcode(src: Path, dst: Path, encoding: str, block: int = 1 << 24) -> None:
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(src, "rb") as f, open(dst, "w", encoding="utf-8", newline="") as out:
        while chunk := f.read(block):
            out.write(decoder.decode(chunk))
        out.write(decoder.decode(b"", final=True))


# --------------------------------------------------------------------------- validation
@dataclass
class _Rule:
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
    backend: _Backend
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
    words = ", ".join(_lit(w) for w in io.BLANK_WORDS)
    return f"CASE WHEN {t} = '' OR UPPER({t}) IN ({words}) THEN NULL ELSE {t} END"


def _date_from_text(t: str) -> str:
    """helpers.io.parse_dates in SQL: ISO or UK form, and a real calendar date, else NULL."""
    iso = f"SUBSTRING({t}, 1, 10)"
    uk = f"SPLIT_PART({t}, ' ', 1)"

    def parts(text: str, pattern: str, order: tuple[int, int, int]) -> tuple[str, str, str]:
        return tuple(f"CAST(REGEXP_EXTRACT({text}, {_lit(pattern)}, {g}) AS INTEGER)" for g in order)  # type: ignore[return-value]

    iso_full = "^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$"
    uk_full = "^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$"

    def make(text: str, pattern: str, order: tuple[int, int, int]) -> str:
        y, m, d = parts(text, pattern, order)
        leap = f"(({y}) % 4 = 0 AND (({y}) % 100 <> 0 OR ({y}) % 400 = 0))"
        last = (f"CASE WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END "
                f"WHEN {m} IN (4, 6, 9, 11) THEN 30 ELSE 31 END")
        ok = f"REGEXP_MATCHES({text}, {_lit(pattern)}) AND {y} >= 1 AND {m} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {last}"
        return f"CASE WHEN {ok} THEN MAKE_DATE({y}, {m}, {d}) END"

    return (f"CASE WHEN REGEXP_MATCHES({t}, {_lit(_ISO_SQL)}) THEN {make(iso, iso_full, (1, 2, 3))} "
            f"WHEN REGEXP_MATCHES({t}, {_lit(_UK_SQL)}) THEN {make(uk, uk_full, (3, 2, 1))} END")


def _column_sql(name: str, spec: Mapping[str, Any], kind: str) -> tuple[str, str | None, str, list[_Rule]]:
    """SQL of one contract column: its text, an intermediate, its value, and its rules in io's order.

    Layers (each evaluated once per row): ``r_<name>`` is the raw column;
    the text ``t_<name>`` is trimmed with blanks as NULL; the intermediate
    ``p_<name>`` is the code looked up (coded strings), the number (numbers)
    or the parsed date (dates); the value is the contract column itself.
    Rule conditions refer to those columns by name.
    """
    r, t, p, v = _q(f"r_{name}"), _q(f"t_{name}"), _q(f"p_{name}"), _q(name)
    text = _text_expr(r, kind)
    rules: list[_Rule] = []
    ctype = spec["type"]
    if ctype == "string":
        pre, value = None, t
        if "allowed" in spec or "recode" in spec:
            allowed = [str(a) for a in spec.get("allowed", [])]
            lookup = {a.upper(): a for a in allowed}
            lookup |= {str(k).upper(): str(val) for k, val in (spec.get("recode") or {}).items()}
            cases = " ".join(f"WHEN {_lit(k)} THEN {_lit(val)}" for k, val in lookup.items())
            pre = f"CASE UPPER({t}) {cases} END"
            if allowed:
                rules.append(_Rule(name, "one of " + ", ".join(allowed), f"{t} IS NOT NULL AND {p} IS NULL", [name]))
            value = f"COALESCE({p}, {t})"
        if "pattern" in spec:
            patt = spec["pattern"] if spec["pattern"].startswith("^") else "^(" + spec["pattern"] + ")"
            value = f"CASE WHEN {t} IS NOT NULL THEN REPLACE(UPPER({value}), '.', '') END"
            rules.append(_Rule(name, f"a code matching {spec['pattern']}",
                               f"{t} IS NOT NULL AND NOT COALESCE(REGEXP_MATCHES({v}, {_lit(patt)}), FALSE)", [name]))
        return text, pre, value, rules
    if ctype in {"integer", "number"}:
        if kind in {"integer", "float"}:
            pre = f"CASE WHEN {t} IS NULL THEN NULL ELSE CAST({r} AS DOUBLE) END"
        else:
            # a comma only between thousands, as helpers.io
            comma = f"(CONTAINS({t}, ',') AND NOT REGEXP_MATCHES({t}, {_lit(io._THOUSANDS.pattern)}))"
            pre = f"CASE WHEN {comma} THEN NULL ELSE TRY_CAST(REPLACE(REPLACE({t}, ',', ''), '£', '') AS DOUBLE) END"
            rules.append(_Rule(name, "a number with commas only between thousands (1,234.5; a decimal point, "
                                     "not a comma)", f"{t} IS NOT NULL AND {comma}", [name]))
            rules.append(_Rule(name, "a number", f"{t} IS NOT NULL AND NOT {comma} AND {p} IS NULL", [name]))
        num = p
        if ctype == "integer":
            rules.append(_Rule(name, "a whole number", f"{p} IS NOT NULL AND {p} <> FLOOR({p})", [name]))
            num = f"(CASE WHEN {p} = FLOOR({p}) THEN {p} END)"
            value = f"CAST(ROUND({num}) AS BIGINT)"
        else:
            value = p
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None or hi is not None:
            conds = ([f"{num} < {lo}"] if lo is not None else []) + ([f"{num} > {hi}"] if hi is not None else [])
            rng = (f"between {lo} and {hi}" if lo is not None and hi is not None
                   else (f"at least {lo}" if lo is not None else f"at most {hi}"))
            rules.append(_Rule(name, f"a value {rng}", " OR ".join(conds), [name]))
        return text, pre, value, rules
    if ctype == "date":
        first, last = io.date_window()
        window = _Rule(name, f"a date from {first:%Y-%m-%d} to {last:%Y-%m-%d} (a typing slip? "
                             f"a wider window: handbook run --dates FROM:TO)",
                       f"{v} < DATE '{first:%Y-%m-%d}' OR {v} > DATE '{last:%Y-%m-%d}'", [name])
        if kind in {"date", "timestamp"}:
            return text, None, f"CAST({r} AS DATE)", [*rules, window]
        rules.append(_Rule(name, "a date as yyyy-mm-dd or dd/mm/yyyy", f"{t} IS NOT NULL AND {p} IS NULL", [name]))
        return text, _date_from_text(t), p, [*rules, window]
    raise KeyError(f"Unknown type {ctype!r} for column {name!r} in the data dictionary")


def open_table(
    table: str,
    path: str | Path | None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "duckdb",
    *,
    backend: _Backend | None = None,
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
    be = backend or _backend(engine, spark)
    try:
        src = _open(table, spec, path, column_map, be)
        src.origin = origin
        return src
    except BaseException:
        if backend is None:
            be.close()
        raise


def _open(table: str, spec: Mapping[str, Any], path: Path | str, column_map: Mapping[str, str] | None,
          be: _Backend) -> TableSource:
    raw_view = f"raw_{table}"
    names, kinds, file_kind = be.register(path, raw_view)
    clean = {str(c).strip().removeprefix("\ufeff").removeprefix("ï»¿").strip(): c for c in names}
    mapping, leftover = io.map_columns(list(clean), spec, column_map)
    problems: list[io.Problem] = []
    missing = [c for c, s in spec.items() if s.get("required") and c not in mapping.values()]
    for col in missing:
        aliases = spec[col].get("aliases", [])
        hint = io._suggest(col, aliases, leftover)
        known = f" (or one of {', '.join(aliases)})" if aliases else ""
        problems.append(io.Problem(col, f"a column named {col}{known}; none found.{hint}"))
    if problems:
        found = ", ".join(list(clean)[:30])
        problems.append(io.Problem("(header)", f"the contract's columns; the file has: {found}"))
        io._raise(path, problems, table)

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
            rules.append(_Rule(c, "a value in every row (it is required)", f"{_q(c)} IS NULL AND {_q('t_' + c)} IS NULL",
                               [c]))
        if cs.get("unique"):
            rules.append(_Rule(c, "each value only once (it identifies a row)", None, [c], unique=True))
        other = cs.get("not_before")
        if other and other in present:
            rules.append(_Rule(c, f"a date not before {other}", f"{_q(c)} < {_q(other)}", [other, c]))
        when = cs.get("required_when")
        if when:
            (wcol, wval), = when.items()
            if wcol in present:
                rules.append(_Rule(c, f"a value where {wcol} is {wval}", f"{_q(wcol)} = {_lit(wval)} AND {_q(c)} IS NULL",
                                   [wcol, c]))
    for c, cs in spec.items():
        when = cs.get("required_when")
        if when and c not in present:
            (wcol, wval), = when.items()
            if wcol in present:
                rules.append(_Rule(c, f"a column {c}, needed because some rows have {wcol} = {wval}",
                                   f"{_q(wcol)} = {_lit(wval)}", []))
    flagged = [r for r in rules if not r.unique]
    raw_cols = ", ".join(f"{_q(by_target[c])} AS {_q('r_' + c)}" for c in present)
    text_cols = ", ".join(f"{texts[c]} AS {_q('t_' + c)}" for c in present)
    pre_cols = "".join(f", {pres[c]} AS {_q('p_' + c)}" for c in present if pres[c] is not None)
    value_cols = ", ".join(f"{values[c]} AS {_q(c)}" for c in present)
    flag_cols = "".join(f", COALESCE({r.condition}, FALSE) AS _bad{i}" for i, r in enumerate(flagged))
    keep = ", ".join(_q(c) for c in present)
    order = be.order_column()
    select = (f"SELECT {keep}{', ' + order if order else ''}{flag_cols} FROM (SELECT *, {value_cols} FROM "
              f"(SELECT *{pre_cols} FROM (SELECT *, {text_cols} FROM (SELECT {raw_cols}{', ' + order if order else ''} "
              f"FROM {_q(raw_view)}) AS r) AS t) AS p) AS v")
    typed_name = f"{table}_typed"
    be.materialise(typed_name, select)
    typed_sql = be.typed_select(typed_name)
    src = TableSource(table, path, be, raw_view, typed_sql, clean, present, src_kind, file_kind, mapping, leftover)
    for i, r in enumerate(flagged):
        r.condition = f"_bad{i}"
    _validate(src, rules)
    return src


def _validate(src: TableSource, rules: list[_Rule]) -> None:
    be = src.backend
    checks = [r for r in rules if not r.unique]
    counts = [f"SUM(CASE WHEN {r.condition} THEN 1 ELSE 0 END) AS c{i}" for i, r in enumerate(checks)]
    stats = ["COUNT(*) AS n_rows"]
    if "patient_classification" in src.present:
        stats.append(f"COUNT({_q('patient_classification')}) AS n_classpat")
    if "admission_date" in src.present:
        stats.append(f"MAX({_q('admission_date')}) AS max_admission")
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
            c = _q(r.column)
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
            shown = ", ".join(f"{c}={io._show(_raw_value(v, src, c))}" for c, v in zip(r.show, values))
            lines.append(f"row {position + 1 + io.HEADER_ROWS}: {shown}")
        problems.append(io.Problem(r.column, r.expected, lines, n_bad[id(r)]))
    io._raise(src.path, problems, src.table)


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


# --------------------------------------------------------------------------- derived fields
def _derived_sql(src: TableSource, window: int, follow_up_end: Any | None, readmission: bool,
                 typed_sql: str | None = None, carry: Sequence[str] = (), readmit: str = "emergency") -> str:
    """SQL of the spells with helpers.derive's fields; the readmission linkage only if asked.

    ``readmit``: the SQL condition of a spell that counts as a readmission
    (any emergency admission; a published indicator leaves some out).
    """
    cols = ", ".join([_q(c) for c in src.present] + [_q(c) for c in carry])
    typed_sql = typed_sql or src.typed_sql
    em = ", ".join(_lit(c) for c in sorted(derive.EMERGENCY_CODES))
    el = ", ".join(_lit(c) for c in sorted(derive.ELECTIVE_CODES))
    if "patient_classification" in src.present and int(src.stats.get("n_classpat") or 0) > 0:
        day_case = "COALESCE(patient_classification = '2', FALSE)"
    else:
        day_case = f"(admission_method IN ({el}) AND DATE_DIFF('day', admission_date, discharge_date) = 0)"
    died = "(discharge_method = '4')" if "discharge_method" in src.present else "CAST(NULL AS BOOLEAN)"
    from helpers import periods

    end = (pd.Timestamp(follow_up_end) if follow_up_end is not None
           else periods.coverage_from_months(src.stats["admissions_by_month"]).end)
    end_day = int((end.normalize() - pd.Timestamp("1970-01-01")).days)
    epoch = "DATE '1970-01-01'"
    base = (
        f"SELECT {cols}, DATE_DIFF('day', admission_date, discharge_date) AS los_days, "
        f"admission_method IN ({em}) AS emergency, admission_method IN ({el}) AS elective, "
        f"{day_case} AS day_case, {died} AS died, "
        f"DATE_DIFF('day', {epoch}, admission_date) AS _adm_day, DATE_DIFF('day', {epoch}, discharge_date) AS _dis_day, "
        f"YEAR(discharge_date) - CASE WHEN MONTH(discharge_date) < 4 THEN 1 ELSE 0 END AS _fy "
        f"FROM ({typed_sql}) AS v"
    )
    fy = "CAST(_fy AS VARCHAR) || '/' || LPAD(CAST((_fy + 1) % 100 AS VARCHAR), 2, '0')"
    eligible = f"(NOT COALESCE(died, FALSE) AND _dis_day + {window - 1} <= {end_day})"
    if not readmission:
        return (f"SELECT *, CAST(NULL AS BIGINT) AS readmission_days, FALSE AS readmit_30d, "
                f"{eligible} AS readmission_eligible, {fy} AS financial_year FROM ({base}) AS b")
    # The next emergency admission on or after discharge, other than the spell itself
    # (helpers.derive.next_emergency_gap): one sorted pass over discharges and emergency
    # admissions per patient. Another emergency admission on the discharge day gives 0;
    # otherwise the first one on a later day.
    events = (
        f"SELECT spell_id, patient_id, _dis_day AS day, 1 AS is_dis, "
        f"CASE WHEN ({readmit}) AND _adm_day = _dis_day THEN 1 ELSE 0 END AS self_today FROM ({base}) AS b "
        f"UNION ALL SELECT spell_id, patient_id, _adm_day AS day, 0 AS is_dis, 0 AS self_today "
        f"FROM ({base}) AS b WHERE {readmit}"
    )
    windowed = (
        f"SELECT spell_id, is_dis, day, self_today, "
        f"MIN(CASE WHEN is_dis = 0 THEN day END) OVER (PARTITION BY patient_id ORDER BY day "
        f"RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_later, "
        f"SUM(1 - is_dis) OVER (PARTITION BY patient_id ORDER BY day "
        f"RANGE BETWEEN CURRENT ROW AND CURRENT ROW) AS adm_today FROM ({events}) AS e"
    )
    gaps = (f"SELECT spell_id AS _gap_spell, CASE WHEN adm_today - self_today > 0 THEN 0 "
            f"ELSE next_later - day END AS readmission_days FROM ({windowed}) AS w WHERE is_dis = 1")
    return (
        f"SELECT b.*, g.readmission_days, "
        f"COALESCE(g.readmission_days < {int(window)}, FALSE) AS readmit_30d, "
        f"{eligible} AS readmission_eligible, {fy} AS financial_year "
        f"FROM ({base}) AS b JOIN ({gaps}) AS g ON b.spell_id = g._gap_spell"
    )


def derived_spells_sql(src: TableSource, readmission_window_days: int = 30, follow_up_end: Any | None = None,
                       carry: Sequence[str] = ("_rownum",), readmission: bool = True) -> str:
    """SQL (DuckDB dialect) of the spells of ``src`` with the derived fields of :func:`load_spells`.

    For modules that build on the spells in SQL and bring only their result
    to pandas (:func:`helpers.cohort.prepare_virtual_ward`). Columns: the
    contract columns present, ``carry``, los_days, emergency, elective,
    day_case, died, readmission_days, readmit_30d, readmission_eligible,
    financial_year. ``readmission=False`` leaves out the readmission linkage
    (a window over every spell): readmission_days is then missing.
    """
    return _derived_sql(src, int(readmission_window_days), follow_up_end, readmission=readmission, carry=list(carry))


_SPELL_DTYPES = {"string": "str", "integer": "Int64", "number": "Float64", "date": "datetime64[us]"}


def load_spells(
    path: str | Path | None = None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "duckdb",
    readmission_window_days: int = 30,
    follow_up_end: Any | None = None,
    *,
    spark: Any | None = None,
) -> pd.DataFrame:
    """Spells with the derived fields, read, validated and derived by an engine.

    The same frame as ``derive.add_spell_fields(io.load_table("spells", path,
    column_map), readmission_window_days, follow_up_end)`` - same columns,
    order, dtypes and values - for patient-level analyses (the virtual ward
    evaluation) on files too big for the pandas reader. ``engine="pandas"``
    runs exactly that.
    """
    if engine == "pandas":
        return derive.add_spell_fields(io.load_table("spells", path, column_map), readmission_window_days, follow_up_end)
    src = open_table("spells", path, column_map, engine, spark=spark)
    try:
        be = src.backend
        sql = _derived_sql(src, int(readmission_window_days), follow_up_end, readmission=True, carry=["_rownum"])
        month = "DATE_TRUNC('month', discharge_date) AS month"
        keep = ", ".join(_q(c) for c in src.present)
        derived = ("los_days, emergency, elective, day_case, died, readmission_days, readmit_30d, "
                   "readmission_eligible, financial_year")
        final = f"SELECT {keep}, {derived}, {month} FROM ({sql}) AS d ORDER BY _rownum"
        frame = be.arrow(final).to_pandas() if isinstance(be, _DuckDB) else be.query(final)
    finally:
        src.backend.close()
    spec = io.table_columns("spells")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for c in src.present:
        out[c] = _as_dtype(frame[c], _SPELL_DTYPES[spec[c]["type"]])
    out["los_days"] = frame["los_days"].astype("int64").to_numpy()
    for c in ("emergency", "elective", "day_case"):
        out[c] = frame[c].astype(bool).to_numpy()
    out["died"] = pd.array(frame["died"].to_numpy(), dtype="boolean")
    out["readmission_days"] = pd.array(frame["readmission_days"].to_numpy(), dtype="Int64")
    out["readmit_30d"] = pd.array(frame["readmit_30d"].astype(bool).to_numpy(), dtype="boolean")
    out["readmission_eligible"] = frame["readmission_eligible"].astype(bool).to_numpy()
    out["financial_year"] = frame["financial_year"].astype("str").to_numpy()
    out["month"] = pd.to_datetime(frame["month"]).astype("datetime64[us]").to_numpy()
    out.attrs["load_summary"] = {"table": "spells", "file": Path(str(src.path)).name, "rows_read": src.rows,
                                 "columns_mapped": {k: v for k, v in src.mapping.items() if k != v},
                                 "columns_ignored": src.leftover, "engine": engine, **src.origin}
    return out


def _as_dtype(values: pd.Series, dtype: str) -> pd.Series | np.ndarray:
    if dtype == "str":
        return values.astype("str").to_numpy()
    if dtype == "datetime64[us]":
        return pd.to_datetime(values).astype("datetime64[us]").to_numpy()
    if dtype == "Int64":
        return pd.array(pd.to_numeric(values).to_numpy(dtype="float64"), dtype="Float64").astype("Int64")
    return pd.array(pd.to_numeric(values).to_numpy(dtype="float64"), dtype="Float64")


# --------------------------------------------------------------------------- case-mix cells
#: The outcome of each kind of indicator in SQL over the derived spells (helpers.indicators records).
_OUTCOME_SQL: dict[str, str] = {
    "los_days": "los_days",
    "readmit_30d": "CASE WHEN readmit_30d THEN 1 ELSE 0 END",
    "readmit_30d_nhs": "CASE WHEN readmit_30d THEN 1 ELSE 0 END",  # linked with the indicator's readmission rule
    "day_case": "CASE WHEN day_case THEN 1 ELSE 0 END",
    "died": "CASE WHEN died THEN 1 ELSE 0 END",
}


def _term_sql(term: str, present: Sequence[str]) -> str:
    """A case-mix term as text (NULL when missing), as helpers.casemix.add_casemix_bands and fit_casemix."""
    if term == "age_band" and "age" in present:
        edges = list(zip(casemix.AGE_BREAKS[1:-1], casemix.AGE_LABELS[:-1]))
        whens = " ".join(f"WHEN age < {int(b)} THEN {_lit(lab)}" for b, lab in edges)
        return f"CASE WHEN age IS NULL THEN NULL {whens} ELSE {_lit(casemix.AGE_LABELS[-1])} END"
    if term == "frailty_band" and "frailty_score" in present:
        lo, mid = casemix.FRAILTY_BREAKS[1], casemix.FRAILTY_BREAKS[2]
        a, b, c = casemix.FRAILTY_LABELS
        return (f"CASE WHEN frailty_score IS NULL THEN {_lit(MISSING)} WHEN frailty_score < {lo!r} THEN {_lit(a)} "
                f"WHEN frailty_score < {mid!r} THEN {_lit(b)} ELSE {_lit(c)} END")
    if term == "charlson_band" and "charlson_index" in present:
        from helpers import comorbidity

        edges = list(zip(comorbidity.CHARLSON_BREAKS[1:-1], comorbidity.CHARLSON_LABELS[:-1]))
        whens = " ".join(f"WHEN charlson_index < {int(b)} THEN {_lit(lab)}" for b, lab in edges)
        return (f"CASE WHEN charlson_index IS NULL THEN {_lit(MISSING)} {whens} "
                f"ELSE {_lit(comorbidity.CHARLSON_LABELS[-1])} END")
    if term in present:
        return f"CAST({_q(term)} AS VARCHAR)"
    bands = [b for b, need in (("age_band", "age"), ("frailty_band", "frailty_score")) if need in present]
    raise KeyError(f"Case-mix term {term!r} is not a column of the spells; columns: {', '.join([*present, *bands])}.")


@dataclass
class VariationInput:
    """What the variation notebook needs from the spells, whichever engine read them.

    ``model``: the fitted :class:`helpers.casemix.CasemixModel`; ``exclusions``:
    step, rows_before, rows_excluded, rows_after, reason (the financial year,
    then each step of the indicator's definition); ``years``: length in years of the extract's coverage;
    ``bed_days_per_event``: see :func:`helpers.casemix.bed_days_per_event`;
    ``spells_read``: rows in the file; ``engine``: which engine ran;
    ``spells``: the spells of the financial year with their derived fields
    (pandas), or, from DuckDB and Spark, a frame with no rows whose attrs
    carry the load summary and the data quality profile computed in SQL, for
    :func:`data_quality`, :func:`describe` and
    :func:`helpers.quality.exclusion_flow`; ``casemix_terms``: the case-mix
    terms asked for, whether each was used and why not
    (:func:`helpers.casemix.resolve_terms`).
    """

    model: CasemixModel
    exclusions: pd.DataFrame
    years: float
    bed_days_per_event: float | None
    spells_read: int
    engine: str
    spells: pd.DataFrame | None = None
    casemix_terms: pd.DataFrame | None = None
    definition: indicators.Indicator | None = None


def prepare_variation(
    data_spells: str | Path | None = None,
    indicator: str = "los",
    case_mix: Sequence[str] | None = None,
    include_deprivation: bool = False,
    financial_year: str | None = None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "pandas",
    *,
    data_deaths: str | Path | None = None,
    min_level_spells: int = MIN_LEVEL_SPELLS,
    spark: Any | None = None,
) -> VariationInput:
    """Read the spells, derive, restrict, and fit the case-mix model of one indicator.

    ``engine="pandas"`` runs :func:`helpers.io.load_table`,
    :func:`helpers.derive.add_spell_fields`, :func:`helpers.indicators.add_outcome`,
    :func:`helpers.casemix.restrict_to_year`, :func:`helpers.indicators.population` and
    :func:`helpers.casemix.fit_casemix`. ``"duckdb"`` and ``"spark"`` do the
    spell-level steps in SQL and fit on the aggregated cells with
    :func:`helpers.casemix.fit_cells`: the same numbers, without holding the spells in memory.
    The definition is :func:`helpers.indicators.resolve` for the file's columns
    (and ``data_deaths``, a deaths table, for mortality); ``case_mix=None``
    uses the definition's own terms. ``years`` is the length of the extract's
    coverage (:mod:`helpers.periods`), within the financial year if one is chosen.
    An indicator whose population is empty raises :class:`helpers.io.InputError`
    (:func:`helpers.casemix.empty_population_message`) whichever engine ran.
    """
    if indicator not in INDICATORS:
        raise ValueError(f"indicator must be one of {', '.join(INDICATORS)}; got {indicator!r}.")
    if engine == "pandas":
        spells = casemix.add_casemix_bands(derive.add_spell_fields(io.load_table("spells", data_spells, column_map or None)))
        deaths = io.load_table("deaths", data_deaths, column_map or None) if data_deaths is not None else None
        definition = indicators.resolve(indicator, list(spells.columns), deaths is not None)
        terms = definition.case_mix if case_mix is None else case_mix
        rows = int(spells.attrs.get("load_summary", {}).get("rows_read", len(spells)))
        terms, term_table = casemix.resolve_terms(terms, list(spells.columns), include_deprivation,
                                                  {str(k): int(v) for k, v in spells.notna().sum().items()})
        spells = indicators.add_outcome(spells, definition, deaths)
        spells, years, year_exclusions = casemix.restrict_to_year(spells, financial_year)
        population, exclusions = indicators.population(spells, definition)
        model = casemix.fit_casemix(population, terms, definition.family,
                                    include_deprivation=casemix.DEPRIVATION_TERM in terms,
                                    min_level_spells=min_level_spells, indicator=indicator)
        per_event = casemix.bed_days_per_event(spells, indicator)
        return VariationInput(model, pd.concat([year_exclusions, exclusions], ignore_index=True), years, per_event,
                              rows, engine, spells, casemix_terms=term_table, definition=definition)
    src = open_table("spells", data_spells, column_map or None, engine, spark=spark)
    try:
        deaths_src = None
        if data_deaths is not None:
            deaths_src = open_table("deaths", data_deaths, column_map or None, engine, backend=src.backend)
        definition = indicators.resolve(indicator, src.present, deaths_src is not None)
        terms = definition.case_mix if case_mix is None else case_mix
        return _variation_sql(src, definition, terms, include_deprivation, financial_year, min_level_spells, engine,
                              deaths_src)
    finally:
        src.backend.close()


def _variation_sql(src: TableSource, definition: indicators.Indicator, case_mix: Sequence[str],
                   include_deprivation: bool, financial_year: str | None, min_level_spells: int,
                   engine: str, deaths: TableSource | None = None) -> VariationInput:
    from helpers import disclosure, periods

    threshold = disclosure.DEFAULT_THRESHOLD
    be = src.backend
    counted = ", ".join(f"COUNT({_q(c)}) AS {_q(c)}" for c in src.present)
    non_missing = {str(k): int(v) for k, v in be.query(f"SELECT {counted} FROM ({src.typed_sql}) AS v").iloc[0].items()}
    terms, term_table = casemix.resolve_terms(case_mix, src.present, include_deprivation, non_missing)
    include_deprivation = casemix.DEPRIVATION_TERM in terms
    term_sql = [_term_sql(t, src.present) for t in terms]
    readmit = "emergency"
    if definition.readmission_excludes is not None:
        readmit = f"(emergency AND NOT {indicators.rule_sql(definition.readmission_excludes, src.present)})"
    derived = _derived_sql(src, 30, None, readmission=definition.kind == "readmission", carry=["_rownum"],
                           readmit=readmit)
    outcome = _OUTCOME_SQL.get(definition.outcome)
    if definition.outcome == "died_30d":
        derived = _deaths_sql(derived, deaths, src)
        outcome = "CASE WHEN died_30d THEN 1 ELSE 0 END"
    flags = [indicators.rule_sql(s.rule, src.present) if s.needs is None or s.needs in src.present else "FALSE"
             for s in definition.steps]
    in_year = "TRUE" if financial_year is None else f"financial_year = {_lit(financial_year)}"
    term_cols = ", ".join(f"{sql} AS _t{i}" for i, sql in enumerate(term_sql))
    flag_cols = "".join(f", ({f}) AS _x{i}" for i, f in enumerate(flags))
    in_pop = " AND ".join(f"NOT _x{i}" for i in range(len(flags))) or "TRUE"
    be.materialise(
        "variation_base",
        f"SELECT _rownum, provider_code, financial_year, emergency, elective, day_case, los_days, "
        f"({in_year}) AS _in_year, CAST({outcome} AS BIGINT) AS _y, {term_cols}{flag_cols} "
        f"FROM ({derived}) AS d",
    )
    be.materialise("variation_pop", f"SELECT *, ({in_pop}) AS _in_pop FROM variation_base")
    step_counts = "".join(
        f", SUM(CASE WHEN _in_year AND {' AND '.join([f'NOT _x{j}' for j in range(i)] + [f'_x{i}'])} THEN 1 ELSE 0 END) AS x{i}"
        for i in range(len(flags)))
    c = be.query(
        "SELECT COUNT(*) AS n_all, SUM(CASE WHEN _in_year THEN 1 ELSE 0 END) AS n_year, "
        "SUM(CASE WHEN _in_year AND _in_pop THEN 1 ELSE 0 END) AS n_pop, "
        "COUNT(DISTINCT CASE WHEN _in_year THEN financial_year END) AS n_years, "
        "AVG(CASE WHEN _in_year AND emergency THEN los_days END) AS los_emergency, "
        f"AVG(CASE WHEN _in_year AND elective AND NOT day_case THEN los_days END) AS los_ordinary_elective{step_counts} "
        "FROM variation_pop").iloc[0]
    n_all, n_year = int(c["n_all"]), int(c["n_year"] or 0)
    if financial_year is not None and n_year == 0:
        years = be.query("SELECT DISTINCT financial_year FROM variation_pop WHERE financial_year IS NOT NULL")
        listed = ", ".join(sorted(years["financial_year"].astype(str)))
        raise ValueError(f"Spells: no spell discharged in financial year {financial_year!r}; the data cover {listed}.")
    year_ex = pd.DataFrame({
        "step": [f"financial year {financial_year}" if financial_year else "all financial years"],
        "rows_before": [n_all], "rows_excluded": [n_all - n_year], "rows_after": [n_year],
        "reason": ["discharged in another financial year" if financial_year else "none excluded"],
    })
    pop_ex = indicators.exclusions_table(definition, [int(c[f"x{i}"] or 0) for i in range(len(flags))], n_year,
                                         src.present)
    groups = ", ".join(f"_t{i}" for i in range(len(terms)))
    # _first (the cell's first row in the file) lets fit_cells add up in the order the rows would be
    pcells = be.query(f"SELECT {groups}, provider_code, COUNT(*) AS n, SUM(_y) AS events, MIN(_rownum) AS _first "
                      f"FROM variation_pop "
                      f"WHERE _in_year AND _in_pop GROUP BY {groups}, provider_code")
    vcells = None
    if definition.family != "binomial":
        vcells = be.query(f"SELECT {groups}, _y, COUNT(*) AS w, MIN(_rownum) AS _first FROM variation_pop "
                          f"WHERE _in_year AND _in_pop GROUP BY {groups}, _y")
    names = {f"_t{i}": t for i, t in enumerate(terms)}
    pcells = pcells.rename(columns=names)
    if vcells is not None:
        vcells = vcells.rename(columns=names)
    model = fit_cells(pcells, terms, definition.family, vcells=vcells, include_deprivation=include_deprivation,
                      min_level_spells=min_level_spells, indicator=definition.name)
    per_event = {"los": 1.0, "readmission": c["los_emergency"], "day_case": c["los_ordinary_elective"],
                 "mortality": None}[definition.kind]
    per_event = None if per_event is None else float(per_event) if not pd.isna(per_event) else float("nan")
    profile = _profile_sql(src, in_year, _derived_sql(src, 30, None, readmission=False), threshold)
    cover = periods.coverage_from_months(src.stats["admissions_by_month"])
    if financial_year is not None:
        cover = cover.clip(*periods.financial_year_bounds(financial_year))
    return VariationInput(model, pd.concat([year_ex, pop_ex], ignore_index=True), cover.years,
                          per_event, src.rows, engine, _stand_in(src, n_year, profile), casemix_terms=term_table,
                          definition=definition)


def _deaths_sql(derived: str, deaths: TableSource | None, src: TableSource) -> str:
    """The derived spells with ``died_30d`` and ``death_follow_up`` (helpers.indicators.add_outcome in SQL).

    Death in hospital, or a death 0 to 30 days after discharge attributed to
    the patient's last spell discharged on or before it (as the SHMI does);
    follow-up complete when discharge + 30 days is by the last admission date.
    """
    from helpers import periods

    if deaths is None:
        raise ValueError("died_30d needs a deaths table (patient_id, date_of_death).")
    end = periods.coverage_from_months(src.stats["admissions_by_month"]).end
    end_day = int((end - pd.Timestamp("1970-01-01")).days)
    window = indicators.DEATH_WINDOW
    dod = (f"SELECT CAST(patient_id AS VARCHAR) AS _dpid, MIN(date_of_death) AS _dod FROM ({deaths.typed_sql}) AS t "
           f"GROUP BY CAST(patient_id AS VARCHAR)")
    joined = (f"SELECT d.*, x._dod, MAX(CASE WHEN d.discharge_date <= x._dod THEN d.discharge_date END) "
              f"OVER (PARTITION BY d.patient_id) AS _last_before FROM ({derived}) AS d "
              f"LEFT JOIN ({dod}) AS x ON CAST(d.patient_id AS VARCHAR) = x._dpid")
    return (f"SELECT *, (COALESCE(died, FALSE) OR COALESCE(discharge_date = _last_before AND "
            f"DATE_DIFF('day', discharge_date, _dod) <= {window}, FALSE)) AS died_30d, "
            f"(_dis_day + {window} <= {end_day}) AS death_follow_up FROM ({joined}) AS j")


# --------------------------------------------------------------------------- for the handbook command
def validate_table(table: str, path: str | Path | None, column_map: Mapping[str, str] | None = None,
                   engine: str = "duckdb", *, spark: Any | None = None) -> int:
    """Check one contract input with an engine; return its number of rows or raise InputError."""
    if engine == "pandas":
        return int(len(io.load_table(table, path, column_map)))
    src = open_table(table, path, column_map, engine, spark=spark)
    src.backend.close()
    return src.rows


def identifiers_in_outputs(folder: str | Path, inputs: Mapping[str, str | Path | None],
                           column_map: Mapping[str, str] | None = None) -> set[str]:
    """Identifier values of the inputs that appear as words in the files a run wrote.

    For :func:`helpers.disclosure.scan_outputs` on inputs too big to hold
    their identifiers in memory: the words of the (small) outputs are looked
    up in the inputs' identifier columns by DuckDB, so only the matches come back.
    """
    from helpers import disclosure

    words: set[str] = set()
    for p in Path(folder).rglob("*"):
        if p.is_file() and p.suffix.lower() in disclosure.SCANNED_SUFFIXES:
            words |= set(disclosure._TOKEN.findall(disclosure._output_text(p)))
    words = {w for w in words if len(w) >= 6}
    if not words:
        return set()
    found: set[str] = set()
    id_columns = io.identifier_columns()
    for table, path in inputs.items():
        src = open_table(table, path, column_map, "duckdb")
        try:
            be = src.backend
            assert isinstance(be, _DuckDB)
            be.con.register("_words", pd.DataFrame({"w": sorted(words)}))
            for col in [c for c in src.present if c in id_columns]:
                hit = be.query(f"SELECT DISTINCT CAST({_q(col)} AS VARCHAR) AS v FROM ({src.typed_sql}) AS t "
                               f"WHERE CAST({_q(col)} AS VARCHAR) IN (SELECT w FROM _words)")
                found |= set(hit["v"].astype(str))
        finally:
            src.backend.close()
    return found


# --------------------------------------------------------------------------- data quality without the rows
def _profile_sql(src: TableSource, where: str, derived: str, threshold: int) -> pd.DataFrame:
    """helpers.quality.data_quality computed in SQL over the spells that pass ``where``.

    Same columns, same rules (missing values, distinct values, first and last
    dates, the codes of coded columns with their counts, suppressed together
    with the missing count by :func:`helpers.disclosure.suppress_counts`).
    """
    from helpers import disclosure, quality

    spec = io.table_columns(src.table)
    be = src.backend
    ids = io.identifier_columns()
    source = {v: k for k, v in src.mapping.items()}
    source |= {v: k for k, v in (src.origin.get("columns_mapped") or {}).items()}  # a file built from episodes
    base = f"SELECT * FROM ({derived}) AS d WHERE {where}"
    aggs = ["COUNT(*) AS n_rows"]
    for i, c in enumerate(src.present):
        aggs += [f"COUNT({_q(c)}) AS n{i}", f"COUNT(DISTINCT {_q(c)}) AS d{i}"]
        if spec[c]["type"] == "date":
            aggs += [f"MIN({_q(c)}) AS lo{i}", f"MAX({_q(c)}) AS hi{i}"]
    stats = be.query(f"SELECT {', '.join(aggs)} FROM ({base}) AS b").iloc[0]
    rows = int(stats["n_rows"])
    listed_columns = [c for c in src.present if ("allowed" in spec[c] or c in quality.LISTED_COLUMNS) and c not in ids]
    codes = pd.DataFrame(columns=["c", "v", "k"])
    if listed_columns:
        codes = be.query(" UNION ALL ".join(
            f"SELECT {_lit(c)} AS c, CAST({_q(c)} AS VARCHAR) AS v, COUNT(*) AS k FROM ({base}) AS b "
            f"WHERE {_q(c)} IS NOT NULL GROUP BY {_q(c)}" for c in listed_columns))
    records = []
    for name, col_spec in spec.items():
        record: dict[str, Any] = {
            "table": src.table, "column": name, "source_column": "", "type": col_spec.get("type", ""),
            "required": "yes" if col_spec.get("required") else "no", "rows": rows, "n_missing": rows,
            "pct_complete": 0.0, "first": "", "last": "", "distinct_values": 0, "values_seen": "", "note": "",
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
            record["first"], record["last"] = (f"{pd.Timestamp(stats[k]):%Y-%m-%d}" for k in (f"lo{i}", f"hi{i}"))
        listed = "allowed" in col_spec or name in quality.LISTED_COLUMNS
        if name in ids:
            record["note"] = "identifier: values never shown"
            listed = False
        if listed:
            counts = codes[codes["c"] == name]
            counts = counts.assign(v=counts["v"].astype("str")).sort_values("v")
            shown = disclosure.suppress_counts([int(n_missing), *counts["k"].astype(int).tolist()], threshold)
            n_missing, code_counts = shown[0], shown[1:]
            parts = [f"{code}: {n:,}" if isinstance(n, int) else f"{code}: {n}" for code, n in zip(counts["v"], code_counts)]
            if len(parts) > quality.MAX_CODES:
                parts = parts[:quality.MAX_CODES] + [f"… and {len(parts) - quality.MAX_CODES:,} more"]
            record["values_seen"] = "; ".join(parts)
        elif threshold > 0 and 1 <= int(n_missing) <= threshold:
            n_missing = disclosure.SUPPRESSED
        record["n_missing"] = n_missing
        record["pct_complete"] = (disclosure.SUPPRESSED if n_missing == disclosure.SUPPRESSED
                                  else (round(100 * (rows - n_missing) / rows, 1) if rows else 0.0))
        records.append(record)
    out = pd.DataFrame(records, columns=quality.QUALITY_COLUMNS)
    out.attrs["disclosure"] = {"counts": []}
    return out


def _stand_in(src: TableSource, rows_profiled: int, table: pd.DataFrame) -> pd.DataFrame:
    """A frame with no rows that carries what the quality functions read from a loaded table."""
    frame = pd.DataFrame(columns=src.present)
    frame.attrs["load_summary"] = {"table": src.table, "file": Path(str(src.path)).name, "rows_read": src.rows,
                                   "columns_mapped": {str(k).strip(): v for k, v in src.mapping.items() if str(k).strip() != v},
                                   "columns_ignored": src.leftover, **src.origin}
    frame.attrs["engine_profile"] = {"rows": rows_profiled, "data_quality": table}
    return frame


def profile_stand_in(src: TableSource, threshold: int | None = None) -> pd.DataFrame:
    """A zero-row stand-in for a table read by an engine, carrying its data-quality profile (every row).

    :func:`data_quality`, :func:`describe` and :func:`helpers.quality.exclusion_flow`
    read it as they read a loaded table, so a notebook that never loads the
    spells into pandas reports on them the same way.
    """
    from helpers import disclosure

    threshold = disclosure.DEFAULT_THRESHOLD if threshold is None else threshold
    table = _profile_sql(src, "TRUE", src.typed_sql, threshold)
    return _stand_in(src, src.rows, table)


def data_quality(loaded: pd.DataFrame | Mapping[str, pd.DataFrame], threshold: int | None = None) -> pd.DataFrame:
    """:func:`helpers.quality.data_quality` of a loaded table, or the engine's profile of one it did not load."""
    from helpers import disclosure, quality

    threshold = disclosure.DEFAULT_THRESHOLD if threshold is None else threshold
    if isinstance(loaded, Mapping):
        out = pd.concat([data_quality(f, threshold) for f in loaded.values()], ignore_index=True)
        out.attrs["disclosure"] = {"counts": []}
        return out
    profile = loaded.attrs.get("engine_profile")
    return quality.data_quality(loaded, threshold) if profile is None else profile["data_quality"]


def describe(loaded: pd.DataFrame | Mapping[str, pd.DataFrame]) -> str:
    """:func:`helpers.quality.describe` of a loaded table, or of the engine's profile of one it did not load."""
    from helpers import quality

    frames = dict(loaded) if isinstance(loaded, Mapping) else {quality._summary(loaded)["table"]: loaded}
    if not any("engine_profile" in f.attrs for f in frames.values()):
        return quality.describe(loaded)
    lines = []
    for name, frame in frames.items():
        if "engine_profile" not in frame.attrs:
            lines.append(quality.describe(frame))
            continue
        profile = frame.attrs["engine_profile"]
        lines.append(quality.describe_profile(name, quality._summary(frame), profile["data_quality"], profile["rows"]))
    return "\n".join(lines)
