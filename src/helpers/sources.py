"""A SQL database as an input: ``handbook run ... --data spells=postgresql://analyst@warehouse/sus?table=apc.spells``.

The address is an SQLAlchemy URL (``dialect+driver://user@host:port/database``)
with one more query parameter that says what to read:

* ``table=schema.table`` (or ``table=table``): every row of that table or view;
* ``query=SELECT ...`` (URL-encoded): the rows of a query.

Other query parameters (``sslmode=require``, ``driver=ODBC Driver 18 for SQL
Server``) are passed to the driver. ``postgresql://`` uses psycopg 3
(installed with the handbook); SQL Server goes through the same route as
``mssql+pyodbc://...?driver=ODBC+Driver+18+for+SQL+Server&table=dbo.spells``
with pyodbc and Microsoft's ODBC driver installed by the user (documented, not
tested here).

**Credentials** come from the environment or the driver's own files (for
PostgreSQL: ``PGPASSWORD``, ``~/.pgpass``, a service file; for SQL Server:
Windows authentication, ``Trusted_Connection=yes``), not from the command
line. A password written in the URL works but is never recorded: the run
folder holds the address without it (:func:`redact`), and so does every
message.

**Reading.** The rows are fetched with a server-side cursor in chunks of
``chunk_rows`` (default 50,000) and appended to a DuckDB table, so only one
chunk is ever held in Python; the table is then written as a Parquet file in
a private temporary folder, every value as text (dates as ``yyyy-mm-dd``), so
that the handbook checks it with exactly the rules of a CSV file and a run on
the database writes the same tables as a run on the same rows exported to a
file. The folder is removed when the run ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import create_engine
from sqlalchemy import text as sql_text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from helpers import io

#: Rows fetched from the database at a time.
CHUNK_ROWS = 50_000
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(text: str | Path) -> bool:
    """Whether an input is a database address rather than a file (``file://`` is a file)."""
    text = str(text)
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


@dataclass
class Fetched:
    """A database input read into a local Parquet file."""

    path: Path
    rows: int
    address: str  # the URL without its password
    what: str  # "table apc.spells" or "a query"


def _parse(url: str) -> tuple[Any, str | None, str | None]:
    if _authority(url).count("@") > 1:
        raise io.InputError(
            f"Cannot read the database address {_scrub(url)!r}: write an @ in a user name or "
            "password as %40 (better: give the password through the environment, PGPASSWORD)."
        )
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise io.InputError(
            f"Cannot read the database address {_scrub(url)!r}: it is not an SQLAlchemy URL "
            "(dialect+driver://user@host:port/database?table=schema.table)."
        ) from None
    query = dict(parsed.query)
    table, sql = query.pop("table", None), query.pop("query", None)
    if isinstance(table, tuple) or isinstance(sql, tuple):
        raise io.InputError(f"{redact(url)}: give one table= or one query=.")
    if (table is None) == (sql is None):
        raise io.InputError(
            f"{redact(url)}: say what to read with ?table=schema.table or ?query=SELECT ... (one of the two)."
        )
    parsed = parsed.set(query=query)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 ships with the handbook
    return parsed, table, sql


def _authority(url: str) -> str:
    """The ``user:password@host:port`` part of a URL."""
    rest = str(url).split("://", 1)[-1]
    return re.split(r"[/?]", rest, maxsplit=1)[0]


def _scrub(url: str) -> str:
    """A URL with everything between the user name and the last ``@`` of its authority removed."""
    url = str(url)
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    authority = _authority(url)
    if "@" not in authority:
        return url
    user_part, host = authority.rsplit("@", 1)
    return f"{scheme}://{user_part.split(':', 1)[0]}@{host}{rest[len(authority) :]}"


def redact(url: str) -> str:
    """The address as it may be written down: no password (not even a mask)."""
    if _authority(url).count("@") > 1:
        return _scrub(url)
    try:
        u = make_url(url)  # URL.set(password=None) would keep the password: rebuild the URL without it
        bare = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
        return bare.render_as_string(hide_password=False)
    except Exception:  # noqa: BLE001 - an address that does not parse is scrubbed by pattern
        return _scrub(url)


def _select(engine: Any, table: str | None, sql: str | None) -> tuple[str, str]:
    if sql is not None:
        return sql, "a query"
    quote = engine.dialect.identifier_preparer.quote
    parts = [p for p in str(table).split(".") if p]
    if not parts or len(parts) > 3:
        raise io.InputError(f"table={table!r}: expected table, schema.table or database.schema.table.")
    return f"SELECT * FROM {'.'.join(quote(p) for p in parts)}", f"table {table}"


def fetch(url: str, folder: str | Path, name: str = "input", chunk_rows: int = CHUNK_ROWS) -> Fetched:
    """Read a table or query from a database into ``folder/NAME.parquet`` (every column as text).

    Raises :class:`helpers.io.InputError`, worded without the password, when
    the address is malformed, the driver is missing, the server refuses the
    connection or the table or query fails.
    """
    parsed, table, sql = _parse(url)
    address = redact(url)
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        raise io.InputError(
            f"Cannot read {address}: the database driver is not installed ({exc}). "
            "PostgreSQL works out of the box; SQL Server needs pyodbc and Microsoft's ODBC "
            "driver (mssql+pyodbc://...)."
        ) from None
    statement, what = _select(engine, table, sql)
    target = Path(folder) / f"{name}.parquet"
    con = duckdb.connect(str(Path(folder) / f"{name}.duckdb"))
    rows = 0
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(
                sql_text(statement)
            )
            columns = [str(c) for c in result.keys()]
            if len(set(c.upper() for c in columns)) != len(columns):
                raise io.InputError(
                    f"Cannot use {what} from {address}: two columns have the same name "
                    f"({', '.join(columns)})."
                )
            con.execute(
                "CREATE TABLE fetched (" + ", ".join(f'"{i}" VARCHAR' for i in range(len(columns))) + ")"
            )
            for part in result.partitions(chunk_rows):
                chunk = pa.Table.from_arrays(
                    [pa.array([_as_text(r[i]) for r in part], type=pa.string()) for i in range(len(columns))],
                    names=[str(i) for i in range(len(columns))],
                )
                con.register("chunk", chunk)
                con.execute("INSERT INTO fetched SELECT * FROM chunk")
                con.unregister("chunk")
                rows += len(part)
        renamed = ", ".join(f'"{i}" AS "{c.replace(chr(34), chr(34) * 2)}"' for i, c in enumerate(columns))
        con.execute(
            f"COPY (SELECT {renamed} FROM fetched ORDER BY rowid) TO '{str(target).replace(chr(39), chr(39) * 2)}' "
            "(FORMAT parquet)"
        )
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise io.InputError(f"Cannot read {what} from {address}: {_scrub(reason)}") from None
    finally:
        con.close()
        engine.dispose()
        (Path(folder) / f"{name}.duckdb").unlink(missing_ok=True)
    _FETCHED[str(target)] = f"{what} from {address}"
    return Fetched(target, rows, address, what)


#: Local files read from databases in this process -> what they hold, for messages (:func:`reword`).
_FETCHED: dict[str, str] = {}


def reword(message: str) -> str:
    """A message about a fetched file, worded about the database table or query it came from."""
    for path, source in _FETCHED.items():
        message = message.replace(f"File: {path}", f"Source: {source}").replace(path, source)
        message = message.replace(Path(path).name, source)
    return message


def _as_text(value: Any) -> str | None:
    """A database value as the text a CSV export would hold (dates as yyyy-mm-dd)."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    return io.to_text(value)
