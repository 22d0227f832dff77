"""Small-number suppression for every table a run writes.

Rule (NHS Digital, *Hospital Episode Statistics analysis guide*, "small
numbers"): counts from 1 to 7 are replaced by ``*``; so that a suppressed
count cannot be worked out by subtraction, the other counts in the same row
are rounded to the nearest 5 (secondary suppression); and a rate, mean or
ratio computed from a count below the threshold is suppressed too. Zero is
shown: it discloses nothing about a person.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from openpyxl import load_workbook

#: HES analysis guide: counts 1 to 7 are suppressed.
DEFAULT_THRESHOLD = 7
#: Secondary suppression rounds the row's other counts to a multiple of this.
ROUND_TO = 5
SUPPRESSED = "*"

_COUNT_NAMES = {
    "n",
    "count",
    "denominator",
    "observed",
    "numerator",
    "events",
    "spells",
    "patients",
    "admissions",
    "readmissions",
    "deaths",
    "attendances",
    "breaches",
}
_COUNT_PATTERN = re.compile(r"^(n|count|number)_|_(n|count|spells|patients|events)$")


def guess_count_columns(table: pd.DataFrame) -> list[str]:
    """Columns that hold counts of people or events, recognised by name.

    Names in the handbook's result tables: ``n``, ``denominator``,
    ``observed``, ``n_treated``, ``spells`` ... Only integer-valued numeric
    columns qualify.
    """
    found = []
    for col in table.columns:
        name = str(col).lower()
        if name in _COUNT_NAMES or _COUNT_PATTERN.search(name):
            values = pd.to_numeric(table[col], errors="coerce")
            if values.notna().any() and np.allclose(values.dropna() % 1, 0):
                found.append(col)
    return found


def suppress(
    table: pd.DataFrame,
    counts: Iterable[str] | None = None,
    derived: Mapping[str, Iterable[str]] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    linked: bool = False,
) -> tuple[pd.DataFrame, int]:
    """Apply small-number suppression; return the safe table and cells suppressed.

    ``counts`` are the count columns (default: :func:`guess_count_columns`);
    ``derived`` maps a rate or mean column to the count columns it comes from
    (default: every other numeric column depends on every count column of its
    row). The result holds ``*`` in suppressed cells, so its count columns are
    text where anything was suppressed.

    ``linked=True`` is for tables whose rows are tied together by subtraction,
    such as an exclusion flow (rows before − rows excluded = rows after, and
    the next step starts where this one ended): there a starred count could be
    recovered from the neighbouring rows, so when any count is suppressed every
    other count in the whole table is rounded, not just those of its row.
    """
    counts = list(counts) if counts is not None else guess_count_columns(table)
    out = table.copy()
    if not counts or threshold <= 0:
        return out, 0
    values = out[counts].apply(pd.to_numeric, errors="coerce")
    small = (values >= 1) & (values <= threshold)
    row_hit = small.any(axis=1)
    if linked:
        row_hit = pd.Series(bool(small.to_numpy().any()), index=out.index)
    if derived is None:
        numeric = [c for c in out.columns if c not in counts and pd.api.types.is_numeric_dtype(out[c])]
        derived = {c: counts for c in numeric}
    n_suppressed = int(small.to_numpy().sum())
    result = out.astype({c: "object" for c in counts})
    for col in counts:
        rounded = (np.round(values[col] / ROUND_TO) * ROUND_TO).astype("Int64")
        col_out = values[col].astype("Int64").astype("object")
        col_out = col_out.where(~row_hit, rounded.astype("object"))
        col_out = col_out.where(~small[col], SUPPRESSED)
        result[col] = col_out
    for col, sources in derived.items():
        sources = [s for s in sources if s in counts]
        if not sources or col not in result.columns:
            continue
        hit = small[sources].any(axis=1)
        if hit.any():
            result[col] = result[col].astype("object").where(~hit, SUPPRESSED)
            n_suppressed += int(hit.sum())
    return result, n_suppressed


def drawable(
    table: pd.DataFrame, counts: Iterable[str] | None = None, threshold: int = DEFAULT_THRESHOLD
) -> pd.DataFrame:
    """The rows of a table that a figure may draw.

    A row with a count of 1 to ``threshold`` in any count column (``counts``,
    by default :func:`guess_count_columns`) is left out whole: its position
    on a funnel, caterpillar or quadrant plot, a bar or a label in an SVG would
    give back the count, or the rate or mean starred beside it in the table.
    """
    counts = [
        c for c in (list(counts) if counts is not None else guess_count_columns(table)) if c in table.columns
    ]
    if not counts or threshold <= 0:
        return table
    values = table[counts].apply(pd.to_numeric, errors="coerce")
    small = ((values >= 1) & (values <= threshold)).any(axis=1)
    return table[~small.to_numpy()]


def suppress_counts(counts: Iterable[int], threshold: int = DEFAULT_THRESHOLD) -> list[int | str]:
    """The small-number rule on a set of counts that add up to a shown total.

    Counts from 1 to ``threshold`` become ``*``; when any does, the others are
    rounded to the nearest :data:`ROUND_TO`, so the starred ones cannot be
    worked out from the total (HES analysis guide). Used for the counts of each
    code listed in a data quality table.
    """
    values = [int(c) for c in counts]
    if threshold <= 0:
        return list(values)
    small = [1 <= v <= threshold for v in values]
    if not any(small):
        return list(values)
    return [SUPPRESSED if s else int(round(v / ROUND_TO) * ROUND_TO) for v, s in zip(values, small)]


# --------------------------------------------------------------------------- identifier scan
#: Identifier values shorter than this are not looked for (a short id would match counts and codes).
MIN_IDENTIFIER_LENGTH = 6
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{6,}")
#: Ten digits, or three, three and four digits with one space or hyphen between the groups (the
#: way an NHS number is written), not part of a longer word or number: not inside a hash (letters
#: and digits), a decimal (a point) or a longer run of digits.
_NHS_NUMBER = re.compile(r"(?<!\w)(?<!\d\.)(\d{10}|\d{3}([ -])\d{3}\2\d{4})(?!\w|\.\d)")
SCANNED_SUFFIXES = {".html", ".ipynb", ".csv", ".json", ".xlsx", ".txt", ".md", ".svg"}
# What a reader can see is scanned, not how a file draws it: embedded images
# (base64) and SVG geometry are left out, because their digit runs could pass
# for NHS numbers. Figure labels are still scanned: matplotlib writes each text
# of an SVG figure as a comment beside its glyphs.
_BASE64 = re.compile(r"[A-Za-z0-9+/]{100,}={0,2}")
_SVG = re.compile(r"<svg\b.*?</svg>", re.S)
_SVG_TEXT = re.compile(r"<!--(.*?)-->|(?<=>)([^<]+)(?=<)", re.S)
_TAG = re.compile(r"<!--(.*?)-->|<[^>]*>", re.S)
_SHOWN_ATTRIBUTE = re.compile(r"""\b(?:alt|title|aria-label)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
#: In plain text (a print, a text table), a line break, a tab or two spaces or more end a value.
_PLAIN_GAP = re.compile(r"\r?\n|\t| {2,}")


def is_valid_nhs_number(text: str) -> bool:
    """True when ``text`` is ten digits whose last is the NHS number check digit.

    Modulus 11 (NHS Data Dictionary, *NHS Number*): weights 10 to 2 on the first
    nine digits; check = 11 − (sum mod 11), 11 becomes 0, and 10 is never valid.
    """
    digits = re.sub(r"[ -]", "", text)
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1)))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def svg_text(svg: str) -> str:
    """The readable text of an SVG drawing: its comments and the text between tags."""
    return " ".join(a or b for a, b in _SVG_TEXT.findall(svg))


def _svg_runs(svg: str) -> list[str]:
    return [a or b for a, b in _SVG_TEXT.findall(svg)]


def _plain_runs(text: str) -> list[str]:
    return [run for run in _PLAIN_GAP.split(text) if run.strip()]


def _html_runs(html: str) -> list[str]:
    """The texts a reader sees in HTML, each on its own: text between tags, comments, alt and title texts."""
    html = _BASE64.sub(" ", html)
    runs: list[str] = []
    for match in _SVG.finditer(html):
        runs += _svg_runs(match.group(0))
    html = _SVG.sub("<svg/>", html)
    for tag in re.findall(r"<[^>]*>", html):
        runs += [a or b for a, b in _SHOWN_ATTRIBUTE.findall(tag)]
    for part in _TAG.split(html):
        if part:
            runs += _plain_runs(part)
    return runs


def _json_runs(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [r for k, v in value.items() for r in [str(k), *_json_runs(v)]]
    if isinstance(value, list):
        return [r for v in value for r in _json_runs(v)]
    return [] if value is None else [str(value)]


def output_values(path: Path) -> list[str]:
    """The separate values of an output file as a reader sees them, for the identifier scan.

    One value per workbook cell, CSV field, JSON value, HTML or SVG text run,
    and piece of plain text between line breaks, tabs or wide gaps, so that two
    neighbouring numbers (a count beside a count) are never read as one.
    """
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        wb = load_workbook(path, read_only=True)
        try:
            return [
                str(v)
                for ws in wb.worksheets
                for row in ws.iter_rows(values_only=True)
                for v in row
                if v is not None
            ]
        finally:
            wb.close()
    text = path.read_text(encoding="utf-8", errors="replace")
    if suffix == ".csv":
        return [field for row in csv.reader(io.StringIO(text, newline="")) for field in row]
    if suffix == ".svg":
        return _svg_runs(text)
    if suffix == ".html":
        return _html_runs(text)
    if suffix == ".json":
        try:
            return _json_runs(json.loads(text))
        except ValueError:
            return _plain_runs(text)
    if suffix == ".ipynb":
        nb = json.loads(text)
        runs = _json_runs(nb.get("metadata", {}))
        for cell in nb.get("cells", []):
            runs += _json_runs(cell.get("metadata", {}))
            runs += _plain_runs(_joined(cell.get("source", "")))
            for output in cell.get("outputs", []):
                runs += _plain_runs(_joined(output.get("text", "")))
                runs += _plain_runs(_joined(output.get("evalue", "")))
                for mime, value in (output.get("data") or {}).items():
                    if mime in ("image/svg+xml", "text/html"):
                        runs += _html_runs(_joined(value))
                    elif mime.endswith("json") and not isinstance(value, (str, list)):
                        runs += _json_runs(value)
                    elif not mime.startswith("image/"):
                        runs += _plain_runs(_joined(value))
        return runs
    return _plain_runs(_BASE64.sub(" ", text))


def _output_text(path: Path) -> str:
    """The values of an output file (:func:`output_values`), one a line."""
    return "\n".join(output_values(path))


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def nhs_numbers_in(value: str) -> set[str]:
    """Valid NHS numbers written in one value (ten digits, or 3-3-4 with spaces or hyphens)."""
    return {m.group(1) for m in _NHS_NUMBER.finditer(value) if is_valid_nhs_number(m.group(1))}


def identifier_candidates(folder: Path) -> set[str]:
    """Every word and every whole value of the files :func:`scan_outputs` reads that could be an identifier.

    What :func:`scan_outputs` compares with the identifiers, so that a run can
    look these few (the outputs are small) up in its inputs, not the other way round.
    """
    found: set[str] = set()
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.suffix.lower() not in SCANNED_SUFFIXES:
            continue
        for value in output_values(path):
            found.update(_TOKEN.findall(value))
            if len(value.strip()) >= MIN_IDENTIFIER_LENGTH:
                found.add(value.strip())
    return found


def scan_outputs(folder: Path, identifiers: Iterable[str]) -> list[str]:
    """Find input identifiers and valid NHS numbers in every file a run wrote.

    ``identifiers`` are the values of the input's identifier columns (patient
    and record ids) of six characters or more. Each value of a file
    (:func:`output_values`) is looked at on its own. Returns one finding per
    file and kind; an empty list means the folder is safe to send.
    """
    ids = {str(i) for i in identifiers if i is not None and len(str(i)) >= MIN_IDENTIFIER_LENGTH}
    findings = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.suffix.lower() not in SCANNED_SUFFIXES:
            continue
        values = output_values(path)
        hits = sorted(
            {t for v in values for t in _TOKEN.findall(v) if t in ids}
            | {v.strip() for v in values if v.strip() in ids}
        )
        if hits:
            findings.append(
                f"{path.relative_to(folder)}: {len(hits)} input identifier value(s), e.g. {hits[0][:3]}…"
            )
        nhs = sorted({n for v in values for n in nhs_numbers_in(v)})
        if nhs:
            findings.append(f"{path.relative_to(folder)}: {len(nhs)} valid NHS number(s)")
    return findings
