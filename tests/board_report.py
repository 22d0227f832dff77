"""Checks of a run folder's report.html as a board reads it (used by test_cli's run of every notebook on the sample).

Not a test module itself: :func:`check_board_report` is called on each run
folder that ``tests/test_cli.py`` writes, so the four notebooks run once.
"""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pandas as pd

from helpers import summary as sm

_SECTION = re.compile(r'<section class="handbook-summary">(.*?)</section>', re.S)
_FACT = re.compile(r'<span class="fact"([^>]*)>(.*?)</span>', re.S)
_ATTRIBUTE = re.compile(r'data-(\w+)="([^"]*)"')


def _text(fragment: str) -> str:
    inline = re.sub(r"</?span[^>]*>", "", fragment)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", inline))).strip()


def _number(shown: str) -> float:
    return float(shown.replace("£", "").replace(",", "").replace("%", ""))


def _decimals(shown: str) -> int:
    digits = shown.replace("%", "")
    return len(digits.split(".")[1]) if "." in digits else 0


def expected_from_table(tables: Path, table: str, column: str, where: str, how: str) -> list[str]:
    """The cells (as CSV text) a fact reads, after its filter; for ``count`` the matching rows' column."""
    frame = pd.read_csv(tables / f"{table}.csv", dtype=str, keep_default_na=False)
    for pair in filter(None, htmllib.unescape(where).split("; ")):
        key, value = pair.split("=", 1)
        frame = frame[frame[key] == value]
    return frame[column].tolist()


def check_fact(tables: Path, table: str, column: str, where: str, how: str, kind: str, shown: str) -> None:
    """One number of a summary equals what its result table holds (read back from tables/NAME.csv)."""
    shown = htmllib.unescape(shown)
    cells = expected_from_table(tables, table, column, where, how)
    label = f"{shown!r} from {table}.{column} [{where}] ({how}, {kind})"
    if how == "count":
        assert _number(shown) == len(cells), label
        return
    if how == "list":
        expect = sm.write(cells, "list")
        assert shown == expect, f"{label}: table gives {expect!r}"
        return
    if any(c == "*" for c in cells):
        assert shown == sm.SUPPRESSED_WORDS, label
        return
    if kind == "month":
        dates = [pd.Timestamp(c) for c in cells if c]
        want = min(dates) if how == "min" else max(dates)
        assert shown == f"{want:%B %Y}", label
        return
    if kind == "text":
        assert how == "value" and len(cells) == 1 and shown == cells[0], label
        return
    numbers = [float(c) for c in cells if c != ""]
    if how == "value":
        assert len(cells) == 1, label
        if not numbers:  # a blank cell: the summary must say so, not invent a number
            assert shown == sm.NOT_AVAILABLE, label
            return
        value = numbers[0]
    else:
        value = {"sum": sum, "min": min, "max": max}[how](numbers)
    if kind == "percent":
        value *= 100
    if kind == "size1":
        value = abs(value)
    got = _number(shown)
    tolerance = 0.5 * 10 ** -_decimals(shown) + 1e-9
    assert abs(got - value) <= tolerance, f"{label}: table gives {value}"


def check_board_report(out: Path) -> list[str]:
    """Assert the board's reading of ``out/report.html``; return the summary's sentences."""
    page = (out / "report.html").read_text(encoding="utf-8")
    body = page[page.index("<body") :]
    assert "Prerequisites" not in page and "You will be able to" not in page
    found = _SECTION.search(body)
    assert found, "report.html has no summary"
    section = found.group(1)
    assert re.search(r"<h2[^>]*>Summary", section)
    start = body.index('<section class="handbook-summary">')
    # the summary comes before any result table, and before any method text
    first_table = min(
        [
            body.find(t, start + len(found.group(0)))
            for t in ("<table", "<pre")
            if body.find(t, start + len(found.group(0))) >= 0
        ]
        or [len(body)]
    )
    assert start < first_table
    assert start < body.find("How this was done")
    before = _text(body[:start])
    assert len(before.split()) < 40, f"text before the summary: {before[:200]}"

    sentences = re.findall(r"<li>(.*?)</li>", section.split('<table class="summary-data"')[0], re.S)
    assert 3 <= len(sentences) <= 6, len(sentences)
    facts = _FACT.findall(section)
    assert facts, "the summary shows no number from a result table"
    for attributes, shown in facts:
        a = dict(_ATTRIBUTE.findall(attributes))  # nbconvert may reorder the attributes
        check_fact(out / "tables", a["table"], a["column"], a["where"], a["how"], a["kind"], shown)
    # no number in the sentences or the data box that is not one of those facts
    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</th><td>(.*?)</td></tr>", section, re.S)
    checked = [s for s in sentences] + [cell for key, cell in rows if key not in ("Data", "Small numbers")]
    for fragment in checked:
        loose = _text(_FACT.sub(" ", fragment))
        assert not re.search(r"\d", loose), f"a number typed in, not read from a table: {loose!r}"
    # every table of the report reads as a table for people: no index, no NaN or <NA>
    for table in re.findall(r"<table\b.*?</table>", body, re.S):
        cells = _text(table)
        assert not re.search(r"\bNaN\b|<NA>|\bnan\b|\bNaT\b", cells), cells[:300]
        assert 'class="dataframe' not in table and "row_heading" not in table and "blank level0" not in table
    return [_text(s) for s in sentences]
