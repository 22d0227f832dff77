"""The SQL engines that run the spell-level work: DuckDB on one machine, Spark beyond it.

Every spell-level rule (the contract's checks in :mod:`helpers.contract`, the
derived fields in :mod:`helpers.derive`, the case-mix bands in
:mod:`helpers.casemix`, the indicators' populations in
:mod:`helpers.indicators`, the data-quality profile in :mod:`helpers.quality`)
is written once, in DuckDB's SQL dialect. This module holds what runs it:

* :class:`DuckDB` (embedded, no server; the default) reads CSV, Parquet and
  pandas frames, and Excel workbooks read by :func:`helpers.io.read_raw`;
* :class:`Spark` runs the same SQL on Apache Spark, transpiled to Spark SQL by
  sqlglot (an existing transpiler, not an engine of our own);

both behind :class:`Backend`: register a file as a view, run a query, keep a
table. The results are the same whichever engine ran them
(``tests/test_engine.py``).

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
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from helpers import io

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = ("duckdb", "spark")
#: Engines that no longer exist, and the one that runs in their place. "pandas" was the
#: in-memory path; spell-level work is SQL only now, and DuckDB reads a file of any size.
RETIRED_ENGINES: dict[str, str] = {"pandas": "duckdb"}
#: Environment variables read by :func:`spark_session`.
SPARK_MASTER_ENV = "HANDBOOK_SPARK_MASTER"
SPARK_REMOTE_ENV = "SPARK_REMOTE"
#: What a user without the optional Spark extra is told.
SPARK_EXTRA_MISSING = (
    "The spark engine needs PySpark, an optional extra: install it with "
    "`.venv/bin/pip install -r requirements-spark.txt`; Spark also needs Java 17 or later."
)
#: Memory DuckDB may use before it spills to a temporary folder (env HANDBOOK_DUCKDB_MEMORY).
DUCKDB_MEMORY_LIMIT = "2GB"

_NUMERIC = re.compile(
    r"(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UBIGINT|UINTEGER|USMALLINT|UTINYINT|INT|LONG|SHORT|BYTE)", re.I
)
_FLOATING = re.compile(r"(FLOAT|DOUBLE|DECIMAL|REAL|NUMERIC)", re.I)


def quote(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def column_kind(sql_type: str) -> str:
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
class Backend:
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


class DuckDB(Backend):
    name = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        self._duckdb = duckdb
        self._tmp = tempfile.TemporaryDirectory(prefix="handbook-duckdb-")
        self.con = duckdb.connect(config={"preserve_insertion_order": True})
        limit = memory_limit or os.environ.get("HANDBOOK_DUCKDB_MEMORY", DUCKDB_MEMORY_LIMIT)
        self.con.execute(f"SET memory_limit = {literal(limit)}")
        self.con.execute(f"SET temp_directory = {literal(self._tmp.name)}")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self._sources: dict[str, str] = {}

    def register(self, path: Path | str, view: str) -> tuple[list[str], dict[str, str], str]:
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in {".parquet", ".pq"}:
            source = f"read_parquet({literal(str(path))})"
            kind = "parquet"
            try:
                self.con.execute(f"CREATE OR REPLACE VIEW {quote(view)} AS SELECT * FROM {source}")
            except self._duckdb.Error as exc:
                raise io.InputError(f"Cannot read {path.name} as Parquet: {exc}\nFile: {path}") from None
        elif suffix in {".xlsx", ".xlsm", ".xls"}:
            # a workbook is never national-size: read it as helpers.io does
            return self.register_frame(io.read_raw(path), view, "excel")
        else:
            kind = "csv"
            source = self._csv_source(path)
            self.con.execute(f"CREATE OR REPLACE VIEW {quote(view)} AS SELECT * FROM {source}")
        desc = self.con.execute(f"DESCRIBE SELECT * FROM {quote(view)}").fetchall()
        names = [r[0] for r in desc]
        return names, {r[0]: column_kind(r[1]) for r in desc}, kind

    def register_frame(
        self, frame: pd.DataFrame, view: str, kind: str = "frame"
    ) -> tuple[list[str], dict[str, str], str]:
        """Create ``view`` over a pandas frame (a file already read as text); as :meth:`register`."""
        self.con.register(f"{view}_frame", frame)
        self.con.execute(f"CREATE OR REPLACE VIEW {quote(view)} AS SELECT * FROM {quote(view + '_frame')}")
        desc = self.con.execute(f"DESCRIBE SELECT * FROM {quote(view)}").fetchall()
        return [r[0] for r in desc], {r[0]: column_kind(r[1]) for r in desc}, kind

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
        source = (
            f"read_csv({literal(str(target))}, header = true, all_varchar = true, delim = ',', "
            "quote = '\"', escape = '\"', null_padding = false)"
        )
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
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS {sql}")

    def typed_select(self, name: str) -> str:
        # a table created from one ordered scan numbers its rows in that order (preserve_insertion_order)
        return f"SELECT *, rowid AS _rownum FROM {quote(name)}"

    def raw_rows(self, view: str, rownums: list[Any], columns: list[str]) -> list[tuple[int, list[Any]]]:
        numbered = f"{view}_numbered"
        if numbered not in self._sources:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(numbered)} AS SELECT * FROM {quote(view)}")
            self._sources[numbered] = numbered
        if not rownums:
            return []
        wanted = ", ".join(str(int(r)) for r in rownums)
        cols = ", ".join(quote(c) for c in columns)
        rows = self.con.execute(
            f"SELECT rowid, {cols} FROM {quote(numbered)} WHERE rowid IN ({wanted}) ORDER BY rowid"
        ).fetchall()
        return [(int(r[0]), list(r[1:])) for r in rows]

    def close(self) -> None:
        self.con.close()
        self._tmp.cleanup()


def query_frame(frame: pd.DataFrame, select: str, per_row: bool = True) -> pd.DataFrame:
    """``SELECT {select} FROM frame`` run by DuckDB on a pandas frame: one row for each of its rows, in order.

    How a rule written once in SQL (:mod:`helpers.indicators`, :mod:`helpers.casemix`)
    is applied to spells a notebook already holds. ``per_row=False``: ``select``
    holds aggregates (one row back).
    """
    be = DuckDB()
    try:
        be.con.register("frame_rows", frame.reset_index(drop=True).assign(_rownum=pd.RangeIndex(len(frame))))
        order = " ORDER BY _rownum" if per_row else ""
        return be.arrow(f"SELECT {select} FROM frame_rows{order}").to_pandas()
    finally:
        be.close()


class Spark(Backend):
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
            df = (
                self.spark.read.option("header", True)
                .option("inferSchema", False)
                .option("escape", '"')
                .option("encoding", "UTF-8")
                .csv(text)
            )
            kind = "csv"
        names = list(df.columns)
        kinds = {f.name: column_kind(f.dataType.simpleString()) for f in df.schema.fields}
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
        return f"SELECT *, _mid AS _rownum FROM {quote(name)}"

    def raw_rows(self, view: str, rownums: list[Any], columns: list[str]) -> list[tuple[int, list[Any]]]:
        if not rownums:
            return []
        wanted = ", ".join(str(int(r)) for r in rownums)
        cols = ", ".join(f"a.{quote(c)}" for c in columns)
        sql = (
            f"SELECT a._mid, COUNT(b._mid) AS pos, {cols} FROM (SELECT * FROM {quote(view)} WHERE _mid IN ({wanted})) AS a "
            f"LEFT JOIN (SELECT _mid FROM {quote(view)}) AS b ON b._mid < a._mid GROUP BY a._mid, {cols} ORDER BY a._mid"
        )
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
    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("HANDBOOK_SPARK_PARTITIONS", "8"))
        .getOrCreate()
    )


def engine_name(engine: str | None) -> str:
    """The engine that runs: ``"duckdb"`` by default; a retired name (``"pandas"``) runs on its replacement."""
    name = RETIRED_ENGINES.get(str(engine), engine) if engine else "duckdb"
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}.")
    return str(name)


def connect(engine: str, spark: Any | None = None, threads: int | None = None) -> Backend:
    engine = engine_name(engine)
    if engine == "duckdb":
        return DuckDB(threads=threads)
    if engine == "spark":
        return Spark(spark)
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
