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

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import yaml

from helpers import REPO_ROOT, SAMPLE_DIR

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


class InputError(ValueError):
    """A user's input file breaks the data contract. The message says how."""


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


def _raise(path: Path | str, problems: list[Problem], table: str | None = None) -> None:
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
    """Columns that identify a patient or a record: never written to outputs."""
    ids = {"patient_id", "spell_id", "vw_stay_id", "outcome_id", "linked_spell_id"}
    for spec in data_dictionary()["tables"].values():
        ids |= {c for c, s in spec["columns"].items() if s.get("identifier")}
    return ids


def sample_path(table: str) -> Path:
    """Path of the sample file of a table shipped in ``data/sample``."""
    return SAMPLE_DIR / f"{table}.csv"


# --------------------------------------------------------------------------- reading
def read_raw(path: str | Path, name: str | None = None) -> pd.DataFrame:
    """Read a CSV, Parquet or Excel file with every column as text.

    Raises :class:`InputError` for a missing, empty, header-only or binary file.
    """
    path = Path(path)
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
    suffix = path.suffix.lower()
    check_header(path)
    if suffix in {".parquet", ".pq"}:
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
            raise InputError(f"Cannot read {path.name} as Parquet: {exc}\nFile: {path}") from None
        df = df.astype(object).where(df.notna(), None)
        df = df.apply(lambda s: s.map(_to_text))
    elif suffix in {".xlsx", ".xlsm", ".xls"}:
        sheet = excel_sheet(path)
        try:
            df = pd.read_excel(path, dtype=str, sheet_name=sheet)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"Cannot read {path.name} as Excel: {exc}\nFile: {path}") from None
        df.attrs["sheet"] = sheet
    else:
        df = _read_csv_text(path)
    df.columns = [str(c).strip().removeprefix("\ufeff").removeprefix("ï»¿").strip() for c in df.columns]
    if len(df) == 0:
        raise InputError(
            f"Cannot use {path.name}: it has a header but no rows of data.\nFile: {path}"
        )
    return df


def excel_sheet(path: Path) -> str | int:
    """The sheet of a workbook to read: the one the user named, else the active sheet, or the
    first visible one if that is hidden.

    (``pd.read_excel`` reads the first sheet, which may be a hidden one.) A
    named sheet comes from ``$HANDBOOK_EXCEL_SHEETS`` (``handbook run --sheet``).
    Old ``.xls`` files: the named sheet or the first.
    """
    import json
    import os

    named = json.loads(os.environ.get(EXCEL_SHEETS_VARIABLE) or "{}").get(str(Path(path).resolve()))
    if path.suffix.lower() == ".xls":
        return named if named is not None else 0
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
        raise InputError(f"Cannot read {path.name} as Excel: {exc}\nFile: {path}") from None
    try:
        if named is not None:
            if named not in wb.sheetnames:
                raise InputError(f"Cannot use {path.name}: it has no sheet called {named!r}; its sheets are "
                                 f"{', '.join(map(repr, wb.sheetnames))}.\nFile: {path}")
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
        import pyarrow.parquet as pq

        try:
            return [str(n) for n in pq.read_schema(path).names]
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"Cannot read {path.name} as Parquet: {exc}\nFile: {path}") from None
    if suffix in {".xlsx", ".xlsm"}:
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True)
            ws = wb[excel_sheet(path)]
            if (ws.max_column or 0) > MAX_COLUMNS:
                raise InputError(f"Cannot use {path.name}: it has {ws.max_column:,} columns; "
                                 f"an extract has at most {MAX_COLUMNS:,}.\nFile: {path}")
            first = next(ws.iter_rows(max_row=1, values_only=True), ())
            wb.close()
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"Cannot read {path.name} as Excel: {exc}\nFile: {path}") from None
        return ["" if v is None else str(v) for v in first]
    if suffix == ".xls":
        return []
    import csv
    import io as _io

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
        raise InputError(f"Cannot use {path.name}: it has {len(names):,} columns; an extract has at most "
                         f"{MAX_COLUMNS:,}.\nFile: {path}")
    if len(names) == 1 and names[0].count(";") >= 2:
        raise InputError(f"Cannot use {path.name}: it has one column, {names[0][:60]!r}.{_semicolon_hint(path)}"
                         f"\nFile: {path}")
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name:
            seen.setdefault(_norm(name), []).append(i)
    repeated = {k: v for k, v in seen.items() if len(v) > 1}
    if repeated:
        from openpyxl.utils import get_column_letter

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


def _to_text(value: Any) -> Any:
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
    raise InputError(
        f"Cannot read {path.name}: it is neither UTF-8 nor Windows (cp1252) text.\nFile: {path}"
    )


def _semicolon_hint(path: Path) -> str:
    names = header_names(path)
    if len(names) == 1 and names[0].count(";") >= 2:
        return (" The file seems to be separated by semicolons (;), as Excel saves CSV in some countries: "
                "save it with commas as separators.")
    return ""


# --------------------------------------------------------------------------- mapping
def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip()).upper()


def column_key(name: str) -> str:
    """A column name as it is matched to the contract's names: trimmed, spaces and hyphens as ``_``, upper case."""
    return _norm(name)


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
    by_norm = {_norm(c): c for c in columns}
    mapping: dict[str, str] = {}
    user = {_norm(k): v for k, v in (column_map or {}).items()}
    for normed, target in user.items():
        if normed in by_norm and target in spec:
            mapping[by_norm[normed]] = target
    taken = set(mapping.values())
    for target, col_spec in spec.items():
        if target in taken:
            continue
        for candidate in [target, *col_spec.get("aliases", [])]:
            src = by_norm.get(_norm(candidate))
            if src is not None and src not in mapping:
                mapping[src] = target
                break
    leftover = [c for c in columns if c not in mapping]
    return mapping, leftover


def _suggest(name: str, aliases: list[str], leftover: list[str]) -> str:
    pool = {_norm(c): c for c in leftover}
    targets = [_norm(a) for a in [name, *aliases]]
    best: list[str] = []
    for t in targets:
        best += difflib.get_close_matches(t, list(pool), n=1, cutoff=0.6)
    if best:
        return f" Did you mean {pool[best[0]]!r}? (pass column_map={{{pool[best[0]]!r}: {name!r}}})"
    return ""


# --------------------------------------------------------------------------- coercion
#: Text read as a missing value (any case, surrounding spaces ignored), as is an empty cell.
BLANK_WORDS: tuple[str, ...] = ("NA", "NULL", "NAN", "NONE")

_THOUSANDS = re.compile(r"^[-+]?£?\d{1,3}(,\d{3})+(\.\d+)?$")


def date_window() -> tuple[pd.Timestamp, pd.Timestamp]:
    """The plausible dates of an extract: 1990-01-01 to tomorrow, or ``$HANDBOOK_DATES`` (``FROM:TO``).

    A date outside is an error naming the column and rows: one admission in
    1901 or a discharge in 2099 would change every yearly figure silently.
    """
    import datetime as dt
    import os

    text = os.environ.get(DATE_WINDOW_VARIABLE, "").strip()
    if text:
        first, _, last = text.partition(":")
        return pd.Timestamp(first), pd.Timestamp(last)
    return pd.Timestamp("1990-01-01"), pd.Timestamp(dt.date.today() + dt.timedelta(days=1))


_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([ T]00:00(:00)?(\.0+)?)?$")
_UK = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}( 00:00(:00)?)?$")


def parse_dates(text: pd.Series) -> pd.Series:
    """Parse ISO ``yyyy-mm-dd`` or UK ``dd/mm/yyyy`` dates; failures become NaT."""
    text = text.str.strip()
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    iso = text.str.match(_ISO, na=False)
    uk = text.str.match(_UK, na=False)
    if iso.any():
        out[iso] = pd.to_datetime(text[iso].str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    if uk.any():
        out[uk] = pd.to_datetime(
            text[uk].str.split(" ").str[0], format="%d/%m/%Y", errors="coerce"
        )
    return out


def _blank(values: pd.Series) -> pd.Series:
    """Whether each raw value is missing: absent, empty, only spaces, or one of :data:`BLANK_WORDS`."""
    text = values.astype("str").str.strip()
    return (text.isna() | (text == "") | text.str.upper().isin(BLANK_WORDS)).astype(bool)


def _examples(
    df: pd.DataFrame, mask: pd.Series, cols: list[str], raw: pd.DataFrame | None = None
) -> list[str]:
    src = raw if raw is not None else df
    idx = np.flatnonzero(mask.to_numpy())[:MAX_ROWS_SHOWN]
    rows = []
    for i in idx:
        values = ", ".join(f"{c}={_show(src[c].iloc[i])}" for c in cols if c in src.columns)
        rows.append(f"row {i + 1 + HEADER_ROWS}: {values}")
    return rows


def _show(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "(blank)"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    text = str(value)
    return repr(text) if text.strip() != text or text == "" else text


def _coerce_column(
    name: str, text: pd.Series, col_spec: Mapping[str, Any], problems: list[Problem], raw: pd.DataFrame
) -> pd.Series:
    kind = col_spec["type"]
    text = text.astype("str").str.strip()
    blank = _blank(text)
    text = text.where(~blank, None)
    if kind == "string":
        values = text
        if "allowed" in col_spec or "recode" in col_spec:
            allowed = [str(a) for a in col_spec.get("allowed", [])]
            lookup = {a.upper(): a for a in allowed}
            lookup |= {str(k).upper(): str(v) for k, v in (col_spec.get("recode") or {}).items()}
            up = text.str.upper()
            mapped = up.map(lambda v: lookup.get(v) if v is not None else None)
            # single-digit codes given without their leading zero-free form, e.g. "1.0"
            bad = ~blank & mapped.isna()
            if bad.any() and allowed:
                problems.append(
                    Problem(
                        name,
                        "one of " + ", ".join(allowed),
                        _examples(raw, bad, [name]),
                        int(bad.sum()),
                    )
                )
            values = mapped.where(~bad, text)
        if "pattern" in col_spec:
            patt = re.compile(col_spec["pattern"])
            upper = values.str.upper().str.replace(".", "", regex=False)
            bad = ~blank & ~upper.str.match(patt, na=False)
            if bad.any():
                problems.append(
                    Problem(name, f"a code matching {col_spec['pattern']}", _examples(raw, bad, [name]), int(bad.sum()))
                )
            values = upper.where(~blank, None)
        return values.astype("str")
    if kind in {"integer", "number"}:
        # a comma only between thousands: "12,5" is not 125 (nor 12.5)
        comma = text.str.contains(",", regex=False, na=False) & ~text.str.match(_THOUSANDS, na=False)
        if comma.any():
            problems.append(Problem(name, "a number with commas only between thousands (1,234.5; a decimal point, "
                                          "not a comma)", _examples(raw, comma, [name]), int(comma.sum())))
        cleaned = text.where(~comma, None).str.replace(",", "", regex=False).str.replace("£", "", regex=False)
        nums = pd.to_numeric(cleaned, errors="coerce")
        bad = ~blank & ~comma & nums.isna()
        if bad.any():
            problems.append(Problem(name, "a number", _examples(raw, bad, [name]), int(bad.sum())))
        if kind == "integer":
            frac = nums.notna() & (nums != np.floor(nums))
            if frac.any():
                problems.append(Problem(name, "a whole number", _examples(raw, frac, [name]), int(frac.sum())))
            nums = nums.where(~frac)
            values = nums.round().astype("Int64")
        else:
            values = nums.astype("Float64")
        out_of_range = pd.Series(False, index=nums.index)
        lo, hi = col_spec.get("min"), col_spec.get("max")
        if lo is not None:
            out_of_range |= nums < lo
        if hi is not None:
            out_of_range |= nums > hi
        if out_of_range.any():
            rng = (
                f"between {lo} and {hi}" if lo is not None and hi is not None
                else (f"at least {lo}" if lo is not None else f"at most {hi}")
            )
            problems.append(Problem(name, f"a value {rng}", _examples(raw, out_of_range, [name]), int(out_of_range.sum())))
        return values
    if kind == "date":
        dates = parse_dates(text.fillna(""))
        bad = ~blank & dates.isna()
        if bad.any():
            problems.append(
                Problem(name, "a date as yyyy-mm-dd or dd/mm/yyyy", _examples(raw, bad, [name]), int(bad.sum()))
            )
        first, last = date_window()
        outside = dates.notna() & ((dates < first) | (dates > last))
        if outside.any():
            problems.append(Problem(
                name, f"a date from {first:%Y-%m-%d} to {last:%Y-%m-%d} (a typing slip? "
                f"a wider window: handbook run --dates FROM:TO)", _examples(raw, outside, [name]), int(outside.sum())))
        return dates
    raise KeyError(f"Unknown type {kind!r} for column {name!r} in the data dictionary")


# --------------------------------------------------------------------------- loaders
def load_table(
    table: str,
    path: str | Path | None = None,
    column_map: Mapping[str, str] | None = None,
    *,
    raw: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Load, map, coerce and validate one contract table (``spells``, ...).

    ``path=None`` loads the sample shipped in ``data/sample``. Raises
    :class:`InputError` naming the file, column, expectation and up to five
    rows for every rule broken. Columns outside the contract are not carried
    forward; the returned frame's ``attrs["load_summary"]`` lists them.

    Spells: an episode-level file (HES APC: an episode order and a provider
    spell number) is built into spells by :mod:`helpers.episodes`; diagnosis
    columns give ``frailty_score`` and ``charlson_index`` where the file has
    none (:mod:`helpers.comorbidity`). ``raw``: the file already read as text.
    """
    spec = table_columns(table)
    path = Path(path) if path is not None else sample_path(table)
    raw = read_raw(path) if raw is None else raw
    if table == "spells":
        from helpers import episodes

        raw = episodes.read_hes_codes(raw)  # HES infant ages (7001-7007) and null dates (1800-01-01)
        if episodes.is_episode_level(raw.columns, column_map):
            return episodes.load_spells(raw, path, column_map)
    mapping, leftover = map_columns(raw.columns, spec, column_map)
    problems: list[Problem] = []

    missing = [c for c, s in spec.items() if s.get("required") and c not in mapping.values()]
    for col in missing:
        aliases = spec[col].get("aliases", [])
        hint = _suggest(col, aliases, leftover)
        known = f" (or one of {', '.join(aliases)})" if aliases else ""
        problems.append(Problem(col, f"a column named {col}{known}; none found.{hint}"))
    if problems:
        found = ", ".join(map(str, raw.columns[:30]))
        problems.append(Problem("(header)", f"the contract's columns; the file has: {found}"))
        _raise(path, problems, table)

    renamed = raw.rename(columns=mapping)[list(mapping.values())]
    out = pd.DataFrame(index=renamed.index)
    for col in spec:
        if col in renamed.columns:
            out[col] = _coerce_column(col, renamed[col], spec[col], problems, renamed)

    for col, col_spec in spec.items():
        if col not in out.columns:
            continue
        if col_spec.get("required"):
            # missing after coercion because the cell was blank (empty or NA-like text); a value that
            # failed to coerce is missing too, but its own rule has reported it already
            empty = out[col].isna() & _blank(renamed[col])
            if empty.any():
                problems.append(Problem(col, "a value in every row (it is required)", _examples(renamed, empty, [col]), int(empty.sum())))
        if col_spec.get("unique"):
            dup = out[col].notna() & out[col].duplicated(keep=False)
            if dup.any():
                problems.append(Problem(col, "each value only once (it identifies a row)", _examples(renamed, dup, [col]), int(dup.sum())))
        other = col_spec.get("not_before")
        if other and other in out.columns:
            early = out[col].notna() & out[other].notna() & (out[col] < out[other])
            if early.any():
                problems.append(Problem(col, f"a date not before {other}", _examples(renamed, early, [other, col]), int(early.sum())))
        when = col_spec.get("required_when")
        if when:
            (wcol, wval), = when.items()
            if wcol in out.columns:
                need = (out[wcol] == wval) & out[col].isna() if col in out.columns else (out[wcol] == wval)
                if need.any():
                    problems.append(Problem(col, f"a value where {wcol} is {wval}", _examples(renamed, need, [wcol, col]), int(need.sum())))
    for col, col_spec in spec.items():
        when = col_spec.get("required_when")
        if when and col not in out.columns:
            (wcol, wval), = when.items()
            if wcol in out.columns and (out[wcol] == wval).any():
                problems.append(Problem(col, f"a column {col}, needed because some rows have {wcol} = {wval}"))
    if problems:
        _raise(path, problems, table)

    if table == "spells":
        out = episodes.add_diagnosis_scores(out, raw)
    out.attrs["load_summary"] = {
        "table": table,
        "file": path.name,
        **({"sheet": raw.attrs["sheet"]} if "sheet" in raw.attrs else {}),
        "rows_read": int(len(raw)),
        "columns_mapped": {k: v for k, v in mapping.items() if k != v},
        "columns_ignored": leftover,
    }
    return out


def load_frame(
    path: str | Path,
    required_columns: Mapping[str, str],
    name: str,
    column_map: Mapping[str, str] | None = None,
    optional_columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Load a notebook's own input (an ``indicator`` or ``series`` table).

    ``required_columns`` and ``optional_columns`` map column name to type
    (``string``, ``integer``, ``number``, ``date``). Same reading rules and
    messages as :func:`load_table`; missing values in required columns (blank, or
    text such as NA or NULL) are errors.
    """
    spec: dict[str, dict[str, Any]] = {}
    for col, kind in required_columns.items():
        spec[col] = {"type": kind, "required": True}
    for col, kind in (optional_columns or {}).items():
        spec[col] = {"type": kind, "required": False}
    path = Path(path)
    raw = read_raw(path, name)
    mapping, leftover = map_columns(raw.columns, spec, column_map)
    problems: list[Problem] = []
    for col in required_columns:
        if col not in mapping.values():
            problems.append(Problem(col, f"a column named {col}; none found.{_suggest(col, [], leftover)}"))
    if problems:
        problems.append(Problem("(header)", f"the file has: {', '.join(map(str, raw.columns[:30]))}"))
        _raise(path, problems, name)
    renamed = raw.rename(columns=mapping)[list(mapping.values())]
    out = pd.DataFrame(index=renamed.index)
    for col in spec:
        if col in renamed.columns:
            out[col] = _coerce_column(col, renamed[col], spec[col], problems, renamed)
            if spec[col]["required"]:
                empty = out[col].isna() & _blank(renamed[col])
                if empty.any():
                    problems.append(Problem(col, "a value in every row (it is required)", _examples(renamed, empty, [col]),
                                            int(empty.sum())))
    if problems:
        _raise(path, problems, name)
    out.attrs["load_summary"] = {"table": name, "file": path.name, "rows_read": int(len(raw)), "columns_ignored": leftover}
    return out


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
