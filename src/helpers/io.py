"""Loading and validating input files against the data contract.

The contract lives in ``data/data_dictionary.yaml``; this module reads it, so the
documentation and the validation cannot drift apart (DESIGN.md, "Data contract").

Every loader:

* reads CSV (UTF-8 or cp1252, with or without a byte-order mark), Parquet or
  Excel, as text first, so that nothing is coerced before it is checked;
* maps the user's column names to the contract's: an explicit ``column_map``
  (``{"their name": "contract name"}``) first, then the HES/SUS aliases of the
  dictionary, ignoring case and surrounding spaces;
* coerces types (dates as ISO ``yyyy-mm-dd`` or ``dd/mm/yyyy``) and checks every
  rule of the dictionary;
* stops with one :class:`InputError` that names the file, the column, what was
  expected and up to five offending rows, before anything is written.

Input files are only ever opened for reading.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io as _io
import json
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from helpers import REPO_ROOT, SAMPLE_DIR, contract, episodes

DICTIONARY_PATH = REPO_ROOT / "data" / "data_dictionary.yaml"
MAX_ROWS_SHOWN = 5
#: Limits checked before a file is read into memory: an extract has tens of columns, not thousands.
MAX_COLUMNS = 2000
MAX_HEADER_BYTES = 256 * 1024
#: The plausible window for dates, as ``FROM:TO`` (ISO dates) in this environment variable;
#: by default 1 January 1990 to tomorrow. ``handbook run --dates`` sets it.
DATE_WINDOW_VARIABLE = "HANDBOOK_DATES"
#: Sheets the user named for Excel inputs, as JSON ``{"/full/path.xlsx": "sheet"}`` (``handbook run --sheet``).
EXCEL_SHEETS_VARIABLE = "HANDBOOK_EXCEL_SHEETS"
#: Row numbers in messages count the header as row 1, as a spreadsheet does.
HEADER_ROWS = 1
#: Workbooks: read by pandas (openpyxl) and handed to DuckDB as text.
EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls"})


class InputError(ValueError):
    """A user's input file breaks the data contract. The message says how."""


@dataclass(frozen=True)
class LoadSummary:
    """What a loader read: the data quality block (:mod:`helpers.quality`) reports it.

    ``table``: the contract table (or a notebook's own input name); ``file``:
    the file's name; ``rows_read``: its rows (episodes, for spells built from
    an episode-level file); ``columns_mapped``: your column names -> contract
    names, where they differ; ``columns_ignored``: your columns the contract
    does not use; ``sheet``: the workbook sheet read (Excel); ``built_from``,
    ``diagnoses`` and ``load_steps``: spells built from episodes
    (:func:`helpers.episodes.load_spells`: the episodes-to-spells steps for the
    exclusions flow); ``engine``: what read the file, when an engine did.
    """

    table: str
    file: str
    rows_read: int
    columns_mapped: Mapping[str, str] = field(default_factory=dict)
    columns_ignored: tuple[str, ...] = ()
    sheet: str | int | None = None
    built_from: str | None = None
    diagnoses: str | None = None
    load_steps: tuple[Mapping[str, Any], ...] = ()
    engine: str | None = None


@dataclass(frozen=True, eq=False)  # holds a frame: compared by identity
class LoadedTable:
    """A loaded input and what its loader read: what a notebook hands to its data quality block.

    ``frame``: the table (a notebook may replace it with the table after its
    derived fields, :func:`dataclasses.replace`; it is profiled as it is);
    ``summary``: :class:`LoadSummary`. A table an engine read without loading
    its rows (DuckDB or Spark) has ``frame=None``, its data quality table,
    computed in SQL, in ``profile`` and the rows that profile counts in
    ``profiled_rows`` (:func:`helpers.quality.profile_sql`).
    """

    frame: pd.DataFrame | None
    summary: LoadSummary
    profile: pd.DataFrame | None = None
    profiled_rows: int | None = None


@dataclass
class Problem:
    """One broken rule: which column, what was expected, which rows."""

    column: str
    expected: str
    rows: list[str] = field(default_factory=list)
    n_rows: int = 0

    def render(self) -> str:
        head = f"  column '{self.column}': expected {self.expected}"
        if self.n_rows:
            head += f" ({self.n_rows:,} row{'s' if self.n_rows != 1 else ''})"
        lines = [head]
        lines += [f"      {r}" for r in self.rows[:MAX_ROWS_SHOWN]]
        if self.n_rows > MAX_ROWS_SHOWN:
            lines.append(f"      ... and {self.n_rows - MAX_ROWS_SHOWN:,} more")
        return "\n".join(lines)


def raise_problems(path: Path | str, problems: list[Problem], table: str | None = None) -> None:
    what = f" as the '{table}' table" if table else ""
    n = len(problems)
    msg = (
        f"Cannot use {Path(path).name}{what}: {n} problem{'s' if n != 1 else ''} found "
        "(rows are numbered as in a spreadsheet, the header being row 1).\n"
        + "\n".join(p.render() for p in problems)
        + f"\nFile: {path}"
    )
    raise InputError(msg)


@lru_cache(maxsize=1)
def data_dictionary() -> dict[str, Any]:
    """The data contract, as read from ``data/data_dictionary.yaml``."""
    with open(DICTIONARY_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


def table_columns(table: str) -> dict[str, dict[str, Any]]:
    """The column specifications of one contract table."""
    tables = data_dictionary()["tables"]
    if table not in tables:
        raise KeyError(f"Unknown table '{table}'; the contract has {', '.join(tables)}.")
    return tables[table]["columns"]


def identifier_columns() -> set[str]:
    """Columns that identify a patient or a record (``identifier: true`` in the contract): never written to outputs."""
    return {
        c
        for spec in data_dictionary()["tables"].values()
        for c, s in spec["columns"].items()
        if s.get("identifier")
    }


def sample_path(table: str) -> Path:
    """Path of the sample file of a table shipped in ``data/sample``."""
    return SAMPLE_DIR / f"{table}.csv"


# --------------------------------------------------------------------------- reading
def check_file(path: Path, name: str | None = None) -> None:
    """The checks made before a file is read: it exists, is an ordinary non-empty file, and its header is sound.

    Raises :class:`InputError` for a missing, empty or binary file, a folder,
    a pipe, and the header problems of :func:`check_header`.
    """
    label = name or path.name
    if not path.exists():
        raise InputError(f"Cannot find the file for {label}: {path}")
    if path.is_dir():
        raise InputError(f"Expected a file for {label} but {path} is a folder.")
    if not path.is_file():
        raise InputError(
            f"Cannot use {path.name}: it is not an ordinary file (a pipe, socket or device). "
            f"Save the data to a file first.\nFile: {path}"
        )
    if path.stat().st_size == 0:
        raise InputError(f"Cannot use {path.name}: the file is empty.\nFile: {path}")
    check_header(path)


def read_raw(path: str | Path, name: str | None = None) -> pd.DataFrame:
    """Read a CSV, Parquet or Excel file with every column as text.

    Raises :class:`InputError` for a missing, empty, header-only or binary file.
    """
    return read_raw_sheet(path, name)[0]


def read_raw_sheet(path: str | Path, name: str | None = None) -> tuple[pd.DataFrame, str | int | None]:
    """:func:`read_raw`, and the workbook sheet it read (None for a CSV or Parquet file)."""
    path = Path(path)
    sheet: str | int | None = None
    check_file(path, name)
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
            raise InputError(f"Cannot read {path.name} as Parquet: {exc}\nFile: {path}") from None
        df = df.astype(object).where(df.notna(), None)
        df = df.apply(lambda s: s.map(to_text))
    elif suffix in {".xlsx", ".xlsm", ".xls"}:
        sheet = excel_sheet(path)
        try:
            df = pd.read_excel(path, dtype=str, sheet_name=sheet)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"Cannot read {path.name} as Excel: {exc}\nFile: {path}") from None
    else:
        df = _read_csv_text(path)
    df.columns = [str(c).strip().removeprefix("\ufeff").removeprefix("ï»¿").strip() for c in df.columns]
    if len(df) == 0:
        raise InputError(f"Cannot use {path.name}: it has a header but no rows of data.\nFile: {path}")
    return df, sheet


def excel_sheet(path: Path) -> str | int:
    """The sheet of a workbook to read: the one the user named, else the active sheet, or the
    first visible one if that is hidden.

    (``pd.read_excel`` reads the first sheet, which may be a hidden one.) A
    named sheet comes from ``$HANDBOOK_EXCEL_SHEETS`` (``handbook run --sheet``).
    Old ``.xls`` files: the named sheet or the first.
    """

    named = json.loads(os.environ.get(EXCEL_SHEETS_VARIABLE) or "{}").get(str(Path(path).resolve()))
    if path.suffix.lower() == ".xls":
        return named if named is not None else 0

    try:
        wb = load_workbook(path, read_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
        raise InputError(f"Cannot read {path.name} as Excel: {exc}\nFile: {path}") from None
    try:
        if named is not None:
            if named not in wb.sheetnames:
                raise InputError(
                    f"Cannot use {path.name}: it has no sheet called {named!r}; its sheets are "
                    f"{', '.join(map(repr, wb.sheetnames))}.\nFile: {path}"
                )
            return named
        visible = [ws for ws in wb.worksheets if ws.sheet_state == "visible"]
        if not visible:
            raise InputError(f"Cannot use {path.name}: every sheet of the workbook is hidden.\nFile: {path}")
        active = wb.active
        return active.title if active in visible else visible[0].title
    finally:
        wb.close()


def header_names(path: Path) -> list[str]:
    """The column names of a file, read without reading its rows (CSV: the first line only)."""
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        try:
            return [str(n) for n in pq.read_schema(path).names]
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"Cannot read {path.name} as Parquet: {exc}\nFile: {path}") from None
    if suffix in {".xlsx", ".xlsm"}:
        try:
            wb = load_workbook(path, read_only=True)
            ws = wb[excel_sheet(path)]
            if (ws.max_column or 0) > MAX_COLUMNS:
                raise InputError(
                    f"Cannot use {path.name}: it has {ws.max_column:,} columns; "
                    f"an extract has at most {MAX_COLUMNS:,}.\nFile: {path}"
                )
            first = next(ws.iter_rows(max_row=1, values_only=True), ())
            wb.close()
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"Cannot read {path.name} as Excel: {exc}\nFile: {path}") from None
        return ["" if v is None else str(v) for v in first]
    if suffix == ".xls":
        return []

    with open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES + 1)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 3 and head[1:4:2] == b"\x00\x00"):
        raise InputError(
            f"Cannot use {path.name}: it is UTF-16 text, which the handbook does not read. "
            "Save it as CSV UTF-8 (Excel: Save As, 'CSV UTF-8 (Comma delimited)')."
            f"\nFile: {path}"
        )
    end = head.find(b"\n")
    if end < 0 and len(head) > MAX_HEADER_BYTES:
        raise InputError(
            f"Cannot use {path.name}: its first line (the header) is longer than {MAX_HEADER_BYTES // 1024} KB; "
            f"a header names tens of columns.\nFile: {path}"
        )
    line = (head if end < 0 else head[:end]).rstrip(b"\r")
    if b"\x00" in line:
        return []  # not text: the reader says so
    try:
        return next(csv.reader(_io.StringIO(line.decode("utf-8", errors="replace"))), [])
    except csv.Error:
        return []


def check_header(path: Path) -> None:
    """Check a file's header before its rows are read: size, number of columns, repeated names.

    Raises :class:`InputError` for more than :data:`MAX_COLUMNS` columns, for
    two columns whose names differ only in case, spaces or hyphens (``age``
    and ``age ``: which one is meant?), and with a hint for a file separated
    by semicolons.
    """
    names = [str(c).strip().removeprefix("\ufeff").removeprefix("ï»¿").strip() for c in header_names(path)]
    if len(names) > MAX_COLUMNS:
        raise InputError(
            f"Cannot use {path.name}: it has {len(names):,} columns; an extract has at most "
            f"{MAX_COLUMNS:,}.\nFile: {path}"
        )
    if len(names) == 1 and names[0].count(";") >= 2:
        raise InputError(
            f"Cannot use {path.name}: it has one column, {names[0][:60]!r}.{_semicolon_hint(path)}"
            f"\nFile: {path}"
        )
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name:
            seen.setdefault(normalise_name(name), []).append(i)
    repeated = {k: v for k, v in seen.items() if len(v) > 1}
    if repeated:
        raw = header_names(path)
        lines = [
            "  " + ", ".join(f"{raw[i]!r} (column {get_column_letter(i + 1)})" for i in where)
            for where in repeated.values()
        ]
        raise InputError(
            f"Cannot use {path.name}: {len(repeated)} column name{'s' if len(repeated) != 1 else ''} "
            "appear more than once (ignoring case and spaces), so which one to read is unclear. "
            "Rename or delete the extra columns:\n" + "\n".join(lines) + f"\nFile: {path}"
        )


def to_text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # codes stored as floats (pandas writes nullable codes so): 1.0 is "1"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return value.isoformat()[:10]
    return str(value)


def _read_csv_text(path: Path) -> pd.DataFrame:
    with open(path, "rb") as f:
        head = f.read(65536)
    if b"\x00" in head:
        raise InputError(
            f"Cannot use {path.name}: it is not a text file (it contains binary data). "
            "Save it as CSV, or give an .xlsx or .parquet file with its own extension."
            f"\nFile: {path}"
        )
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding=encoding, skipinitialspace=False
            )
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise InputError(f"Cannot use {path.name}: the file is empty.\nFile: {path}") from None
        except pd.errors.ParserError as exc:
            hint = _semicolon_hint(path)
            raise InputError(f"Cannot read {path.name} as CSV: {exc}{hint}\nFile: {path}") from None
    raise InputError(f"Cannot read {path.name}: it is neither UTF-8 nor Windows (cp1252) text.\nFile: {path}")


def _semicolon_hint(path: Path) -> str:
    names = header_names(path)
    if len(names) == 1 and names[0].count(";") >= 2:
        return (
            " The file seems to be separated by semicolons (;), as Excel saves CSV in some countries: "
            "save it with commas as separators."
        )
    return ""


# --------------------------------------------------------------------------- mapping
def normalise_name(name: str) -> str:
    """A column name as it is matched to the contract's names: trimmed, spaces and hyphens as ``_``, upper case."""
    return re.sub(r"[\s\-]+", "_", str(name).strip()).upper()


def map_columns(
    columns: Iterable[str],
    spec: Mapping[str, Mapping[str, Any]],
    column_map: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Match a file's columns to contract columns.

    Returns ``{file column: contract column}`` and the file columns left over.
    The user's ``column_map`` wins, then the contract name itself, then aliases.
    """
    columns = list(columns)
    by_norm = {normalise_name(c): c for c in columns}
    mapping: dict[str, str] = {}
    user = {normalise_name(k): v for k, v in (column_map or {}).items()}
    for normed, target in user.items():
        if normed in by_norm and target in spec:
            mapping[by_norm[normed]] = target
    taken = set(mapping.values())
    for target, col_spec in spec.items():
        if target in taken:
            continue
        for candidate in [target, *col_spec.get("aliases", [])]:
            src = by_norm.get(normalise_name(candidate))
            if src is not None and src not in mapping:
                mapping[src] = target
                break
    leftover = [c for c in columns if c not in mapping]
    return mapping, leftover


def suggest_column(name: str, aliases: list[str], leftover: list[str]) -> str:
    pool = {normalise_name(c): c for c in leftover}
    targets = [normalise_name(a) for a in [name, *aliases]]
    best: list[str] = []
    for t in targets:
        best += difflib.get_close_matches(t, list(pool), n=1, cutoff=0.6)
    if best:
        return f" Did you mean {pool[best[0]]!r}? (pass column_map={{{pool[best[0]]!r}: {name!r}}})"
    return ""


# --------------------------------------------------------------------------- reading values (the rules themselves: helpers.contract)
#: Text read as a missing value (any case, surrounding spaces ignored), as is an empty cell.
BLANK_WORDS: tuple[str, ...] = ("NA", "NULL", "NAN", "NONE")

THOUSANDS = re.compile(r"^[-+]?£?\d{1,3}(,\d{3})+(\.\d+)?$")


def date_window() -> tuple[pd.Timestamp, pd.Timestamp]:
    """The plausible dates of an extract: 1990-01-01 to tomorrow, or ``$HANDBOOK_DATES`` (``FROM:TO``).

    A date outside is an error naming the column and rows: one admission in
    1901 or a discharge in 2099 would change every yearly figure silently.
    """

    text = os.environ.get(DATE_WINDOW_VARIABLE, "").strip()
    if text:
        first, _, last = text.partition(":")
        return pd.Timestamp(first), pd.Timestamp(last)
    return pd.Timestamp("1990-01-01"), pd.Timestamp(dt.date.today() + dt.timedelta(days=1))


def show_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "(blank)"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    text = str(value)
    return repr(text) if text.strip() != text or text == "" else text


# --------------------------------------------------------------------------- loaders
def load_table(
    table: str,
    path: str | Path | None = None,
    column_map: Mapping[str, str] | None = None,
    *,
    raw: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Load, map, type and check one contract table (``spells``, ...): :func:`load_input`'s frame.

    ``path=None`` loads the sample shipped in ``data/sample``. The file is
    read and every rule of the contract checked in SQL by DuckDB
    (:func:`helpers.contract.read_typed`, the rules of
    :data:`helpers.contract.CONTRACT_RULES`); raises :class:`InputError`
    naming the file, column, expectation and up to five rows for every rule
    broken. Columns outside the contract are not carried forward
    (:func:`load_input` says which they were).

    Spells: an episode-level file (HES APC: an episode order and a provider
    spell number) is built into spells by :mod:`helpers.episodes`; diagnosis
    columns give ``frailty_score`` and ``charlson_index`` where the file has
    none (:mod:`helpers.comorbidity`). ``raw``: the file already read as text.
    """
    return load_input(table, path, column_map, raw=raw).frame


def load_input(
    table: str,
    path: str | Path | None = None,
    column_map: Mapping[str, str] | None = None,
    *,
    raw: pd.DataFrame | None = None,
    sheet: str | int | None = None,
) -> LoadedTable:
    """:func:`load_table`, with what was read (:class:`LoadSummary`): a notebook's input for its data quality block.

    ``sheet``: the workbook sheet ``raw`` was read from, if any.
    """
    path = Path(path) if path is not None else sample_path(table)
    if raw is None:
        check_file(path)
        if path.suffix.lower() in EXCEL_SUFFIXES or (
            table == "spells" and episodes.needs_pandas(header_names(path), column_map)
        ):
            raw, sheet = read_raw_sheet(path)
    if table == "spells" and raw is not None:
        raw = episodes.read_hes_codes(raw)  # HES infant ages (7001-7007) and null dates (1800-01-01)
        if episodes.is_episode_level(raw.columns, column_map):
            return episodes.load_spells(raw, path, column_map, sheet=sheet)
    out = contract.read_typed(table, path, column_map, raw=raw, sheet=sheet)
    if table == "spells" and raw is not None:
        out = replace(out, frame=episodes.add_diagnosis_scores(out.frame, raw))
    return out


def load_frame(
    path: str | Path,
    required_columns: Mapping[str, str],
    name: str,
    column_map: Mapping[str, str] | None = None,
    optional_columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Load a notebook's own input (an ``indicator`` or ``series`` table): :func:`load_own_input`'s frame.

    ``required_columns`` and ``optional_columns`` map column name to type
    (``string``, ``integer``, ``number``, ``date``). Same reading rules,
    checks (in SQL) and messages as :func:`load_table`; missing values in
    required columns (blank, or text such as NA or NULL) are errors.
    """
    return load_own_input(path, required_columns, name, column_map, optional_columns).frame


def load_own_input(
    path: str | Path,
    required_columns: Mapping[str, str],
    name: str,
    column_map: Mapping[str, str] | None = None,
    optional_columns: Mapping[str, str] | None = None,
) -> LoadedTable:
    """:func:`load_frame`, with what was read (:class:`LoadSummary`, its columns listed as the file names them)."""
    spec: dict[str, dict[str, Any]] = {}
    for col, kind in required_columns.items():
        spec[col] = {"type": kind, "required": True}
    for col, kind in (optional_columns or {}).items():
        spec[col] = {"type": kind, "required": False}
    path = Path(path)
    check_file(path, name)
    raw, sheet = read_raw_sheet(path, name) if path.suffix.lower() in EXCEL_SUFFIXES else (None, None)
    out = contract.read_typed(name, path, column_map, raw=raw, spec=spec, sheet=sheet)
    return replace(out, summary=replace(out.summary, columns_mapped={}))


def describe_table(table: str) -> pd.DataFrame:
    """The contract of one table as a readable DataFrame (for the book's data page)."""
    rows = []
    for name, spec in table_columns(table).items():
        rules = []
        if spec.get("unique"):
            rules.append("unique")
        if "allowed" in spec:
            rules.append("one of " + ", ".join(map(str, spec["allowed"])))
        if "min" in spec and "max" in spec:
            rules.append(f"{spec['min']} to {spec['max']}")
        elif "min" in spec:
            rules.append(f"at least {spec['min']}")
        elif "max" in spec:
            rules.append(f"at most {spec['max']}")
        if "not_before" in spec:
            rules.append(f"not before {spec['not_before']}")
        for key, value in (spec.get("required_when") or {}).items():
            rules.append(f"required when {key} is {value}")
        rows.append(
            {
                "column": name,
                "type": spec["type"],
                "required": "yes" if spec.get("required") else "no",
                "also accepted as": ", ".join(spec.get("aliases", [])[:4]),
                "rule": "; ".join(rules),
                "description": spec["description"],
            }
        )
    return pd.DataFrame(rows)
