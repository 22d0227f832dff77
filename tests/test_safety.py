"""`handbook run` under hostile and careless input (issue 14).

One hostile but valid run of the SPC notebook is shared by several tests (a run
costs seconds): a series file whose name is an HTML tag with an ``onerror``
handler, whose groups look like spreadsheet formulas, charted as a c-chart of
small counts with a parameter value holding a script tag. The other tests are
refusals, which stop before the notebook starts.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from helpers import report
from helpers.cli import main

HOSTILE_NAME = "<img src=x onerror=alert(1)>.csv"
FORMULAS = ['=HYPERLINK("http://example.org/x","x")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3"]
SCRIPT_LABEL = "<script>alert(2)</script> spells"


def months(n: int, start: str = "2022-04-01") -> list[str]:
    return list(pd.date_range(start, periods=n, freq="MS").strftime("%Y-%m-%d"))


def hostile_series() -> pd.DataFrame:
    """Four series of 24 monthly counts; the first has counts of 1 to 7, the others do not."""
    frames = []
    for k, group in enumerate(FORMULAS):
        values = [(i % 7) + 1 for i in range(24)] if k == 0 else [40 + (i * 7 + k) % 11 for i in range(24)]
        frames.append(pd.DataFrame({"date": months(24), "value": values, "group": group}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    src = folder / HOSTILE_NAME
    hostile_series().to_csv(src, index=False)
    out = folder / "run"
    status = main(["run", "spc", "--data", f"series={src}", "--param", "chart=c", "--param", "better=increase",
                   "--param", f"measure_label={SCRIPT_LABEL}", "--out", str(out), "--quiet"])
    assert status == 0
    return out


# --------------------------------------------------------------------------- S1 nothing live in a spreadsheet
@pytest.mark.parametrize("text,expected", [
    ("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@SUM(1)", "'@SUM(1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("-250.5", "-250.5"), ("-3", "-3"), ("-1e-05", "-1e-05"), ("T01", "T01"), ("", ""), (-2, -2), (None, None),
])
def test_inert_text_neutralises_formula_starts_and_keeps_negative_numbers(text, expected):
    assert report.inert_text(text) == expected


def test_formula_like_text_is_inert_in_every_csv_and_the_workbook(hostile_run):
    for table in (hostile_run / "tables").glob("*.csv"):
        with open(table, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                for cell in row:
                    live = cell.startswith(report.FORMULA_STARTS) and not re.fullmatch(r"-[\d.]+(e-?\d+)?", cell)
                    assert not live, (table.name, cell)
    spc = pd.read_csv(hostile_run / "tables" / "spc.csv", dtype=str, keep_default_na=False)
    assert set(spc["group"]) == {"'" + f for f in FORMULAS}
    wb = load_workbook(hostile_run / "results.xlsx")  # not read-only: formulas show as data_type "f"
    formulas = [(ws.title, c.coordinate) for ws in wb.worksheets for row in ws.iter_rows() for c in row
                if c.data_type == "f"]
    assert formulas == []
    header = [c.value for c in wb["spc"][1]]
    column = header.index("group") + 1
    groups = {c.value for c in next(wb["spc"].iter_cols(min_col=column, max_col=column, min_row=2))}
    assert groups == {"'" + f for f in FORMULAS}


# --------------------------------------------------------------------------- S3 report.html
def test_report_escapes_the_file_name_and_parameters_and_forbids_scripts(hostile_run):
    html = (hostile_run / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<[^>]*\bonerror\s*=", html)  # no live handler anywhere
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in html  # the name is shown, as text
    assert "<script" not in html and "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy and html.index(policy.group(0)) < html.index("<style")
    rules = dict(r.strip().split(" ", 1) for r in policy.group(1).split(";"))
    assert rules["default-src"] == "'none'" and "script-src" not in rules  # so no script of any kind
    assert rules["img-src"] == "data:"  # the embedded figures still show
    assert "data:image/png;base64," in html
    # every resource the page refers to is embedded
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
