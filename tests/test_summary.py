"""Findings first: the summary helper, the board's order of report.html, reader tables, and report.pdf."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from board_report import check_board_report, check_fact
from shared_runs import sample_run

from helpers import pdf, report
from helpers import summary as sm

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- tables shaped like the notebooks'
def provider_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "provider_code": ["T01", "T02", "<b>T03</b>", "T04", "T05"],
            "outlier": ["high", "none", "high", "low", "none"],
            "small": [False, False, False, False, True],
        }
    )


def opportunity_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "estimate": ["naive", "outliers_only", "interval"],
            "providers": [3, 2, None],
            "opportunity": [1200.4, 900.2, 1100.0],
            "opportunity_lower": [None, None, 800.0],
            "opportunity_upper": [None, None, 1400.6],
            "bed_days": [1200.4, 900.2, 1100.0],
            "bed_days_lower": [None, None, 800.0],
            "bed_days_upper": [None, None, 1400.6],
            "beds_equivalent": [3.57, 2.68, 3.27],
            "capacity_released_gbp": [413_658.2, 310_209.9, 379_060.0],
            "cash_releasing_gbp": [0.0, 0.0, 0.0],
            "price_year": ["2020/21"] * 3,
        }
    )


def exclusions_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": ["spells"] * 4,
            "step": ["read from spells.csv", "all financial years", "los: ordinary admissions", "analysed"],
            "rows_before": [1000, 1000, 1000, 700],
            "rows_excluded": [0, 0, 300, 0],
            "rows_after": [1000, 1000, 700, 700],
        }
    )


def quality_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": ["spells"] * 3,
            "column": ["admission_date", "discharge_date", "age"],
            "type": ["date", "date", "integer"],
            "first": ["2023-04-01", "2023-04-03", ""],
            "last": ["2025-03-30", "2025-03-31", ""],
        }
    )


def test_variation_summary_reads_every_number_from_the_tables():
    s = sm.variation(
        provider_table(),
        opportunity_table(),
        exclusions_table(),
        quality_table(),
        {"spells": "/home/analyst/secret/sus_extract.csv"},
        "length of stay",
        higher_is_better=False,
    )
    text = s.text()
    assert 3 <= len(text) <= 6
    # counted from the provider table: two beyond the worse (high) limit, one beyond the better
    assert text[0].startswith("2 of 5 providers have a length of stay higher than their case mix explains")
    assert "(T01 and <b>T03</b>)" in text[0] and "1 are beyond it on the better side (T04)" in text[0]
    assert "1,200 bed days a year would be released (3 providers)" in text[1]
    assert "between 800 and 1,401" in text[1]
    assert (
        "17.7" not in " ".join(text)
        and "3.6 beds" in text[3]
        and "£413,658" in text[3]
        and "2020/21" in text[3]
    )
    calm = provider_table().assign(outlier="none")
    assert sm.variation(
        calm,
        opportunity_table(),
        exclusions_table(),
        quality_table(),
        {"spells": None},
        "length of stay",
        higher_is_better=False,
    ).text()[0] == (
        "None of the 5 providers has a length of stay higher than their case mix explains, beyond the funnel limit "
        "that flags outliers, and none is beyond it on the better side."
    )
    box = dict((k, "".join(p.shown if isinstance(p, sm.Fact) else p for p in v)) for k, v in s.data)
    assert box["Data"] == "spells: sus_extract.csv"  # the file's name, never its folder
    assert box["Period covered"] == "April 2023 to March 2025"
    assert box["Rows analysed"] == "spells: 700 of 1,000 rows read"
    assert box["Left out"].startswith("spells: 300 rows")
    assert "Counts from 1 to 7" in box["Small numbers"]
    # hostile text from the data is escaped in the HTML, never markup
    page = s._repr_html_()
    assert "<b>T03</b>" not in page and "&lt;b&gt;T03&lt;/b&gt;" in page
    assert page.index("<h2>Summary</h2>") < page.index('class="summary-data"')


def test_a_suppressed_count_is_said_in_words_and_a_fact_checks_against_its_csv(tmp_path):
    published = pd.DataFrame({"estimate": ["naive"], "providers": ["*"], "bed_days": [10.4]})
    fact = sm.fact(published, "opportunity_summary", "providers", {"estimate": "naive"}, kind="count")
    assert fact.shown == sm.SUPPRESSED_WORDS
    tables = tmp_path / "tables"
    tables.mkdir()
    published.to_csv(tables / "opportunity_summary.csv", index=False)
    check_fact(tables, "opportunity_summary", "providers", "estimate=naive", "value", "count", fact.shown)
    days = sm.fact(published, "opportunity_summary", "bed_days", {"estimate": "naive"})
    check_fact(tables, "opportunity_summary", "bed_days", "estimate=naive", "value", "number", days.shown)
    with pytest.raises(AssertionError):  # a number that is not the table's fails the check
        check_fact(tables, "opportunity_summary", "bed_days", "estimate=naive", "value", "number", "12")


def test_spc_summary_names_the_series_by_icon():
    table = pd.DataFrame(
        {
            "group": ["A", "B", "C", "D", "E"],
            "variation_icon": [
                "common_cause",
                "concern_high",
                "improvement_low",
                "common_cause",
                "not_assessed",
            ],
            "assurance_icon": ["none", "none", "none", "hit_and_miss", "none"],
            "latest_date": ["2025-03-01", "2025-03-01", "2025-02-01", "2025-03-01", "2024-06-01"],
            "n_points": [24, 24, 23, 24, 6],
        }
    )
    text = sm.spc(table, exclusions_table(), quality_table(), {"spells": None}, "Emergency bed days").text()
    assert text[0].startswith("5 series were charted; in the latest month 2 show only common cause")
    assert text[1] == "The latest month charted is March 2025; each chart has from 6 to 24 points."
    assert any("special cause concern in 1 series, higher than usual (B)" in t for t in text)
    assert any("special cause improvement in 1 series, lower than usual (C)" in t for t in text)
    assert any(t.startswith("1 series have too few points for limits (E)") for t in text)
    neutral = table.assign(
        variation_icon=["neutral_high", "common_cause", "neutral_low", "common_cause", "common_cause"],
        n_points=24,
    )
    text = sm.spc(neutral, exclusions_table(), quality_table(), {"series": None}, "Waits").text()
    assert text[1] == "The latest month charted is March 2025; each chart has 24 points."
    assert text[2] == (
        "Waits, latest month: special cause variation in 1 series, higher than usual (A) and 1 series, "
        "lower than usual (C): neither direction is better, so it needs explaining, not judging."
    )
    assert 3 <= len(text) <= 6


# --------------------------------------------------------------------------- the board's order
def tagged_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()

    def md(text, *tags):
        return nbformat.v4.new_markdown_cell(text, metadata={"tags": list(tags)} if tags else {})

    def code(text, outputs, *tags):
        cell = nbformat.v4.new_code_cell(text, metadata={"tags": list(tags)} if tags else {})
        cell.outputs = outputs
        return cell

    html = nbformat.v4.new_output(
        "display_data",
        data={"text/html": '<section class="handbook-summary"><h2>Summary</h2>FINDINGS</section>'},
    )
    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    table = nbformat.v4.new_output(
        "execute_result", data={"text/html": "<table>RESULT</table>"}, execution_count=1
    )
    nb.cells = [
        md("# The question\n\nA board paper says stays are long. This notebook adjusts for case mix."),
        md(
            "**Prerequisites.** Read {doc}`../book/variation`.\n\n**Outcomes.** You will be able to compare.",
            "teaching",
        ),
        md("## Method: case-mix adjustment\n\nWe fit one model; see {doc}`../book/spc`.", "method"),
        code("diagnostics", [table], "method"),
        md("## Results"),
        code("result", [table]),
        code("fig = funnel()", [png], "hide-input", "headline-figure"),
        code("summary.variation(...)", [html], "summary"),
        md("## Summary\n\n* recap\n\n## What's next?\n\n* try robust", "teaching"),
    ]
    return nb


def test_report_opens_with_the_summary_and_folds_the_lesson_away():
    source = tagged_notebook()
    front = report.front_matter("variation", {}, {}, "The question")
    nb = report.findings_first(report.report_notebook(source, front), source)
    kinds = [(c.cell_type, c.source.split("\n")[0]) for c in nb.cells]
    assert kinds[0] == ("markdown", "# The question")
    assert kinds[1] == ("code", "summary.variation(...)")
    assert kinds[2] == ("code", "fig = funnel()") and [o["output_type"] for o in nb.cells[2].outputs] == [
        "display_data"
    ]
    assert kinds[3:5] == [("markdown", "## Results"), ("code", "result")]
    assert kinds[5] == ("code", "fig = funnel()")  # the figure stays in its place too
    appendix = nb.cells[6].source
    assert appendix.startswith("## How this was done\n\nA board paper says stays are long.")
    assert (
        "* *Unwarranted variation: funnel plots and opportunity* (`book/variation.md` in the handbook)"
        in appendix
    )
    assert "*Statistical process control: is this month different?*" in appendix
    assert nb.cells[7].source.startswith("### Method: case-mix adjustment")  # one level down, in the appendix
    assert kinds[8] == ("code", "diagnostics")
    assert nb.cells[9].source.startswith("*About this report.*")  # the run's note closes the report
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Prerequisites" not in text and "You will be able to" not in text and "What's next" not in text
    # the book's notebook is untouched, and the tags mean nothing to myst-nb (its own tags are these)
    assert [c.source for c in source.cells] == [c.source for c in tagged_notebook().cells]
    myst_nb_tags = {
        "remove-cell",
        "remove-input",
        "remove-output",
        "hide-cell",
        "hide-input",
        "hide-output",
        "remove-stdout",
        "remove-stderr",
        "remove-warn",
        "scroll-output",
        "raises-exception",
        "skip-execution",
        "full-width",
        "margin",
        "thebe-init",
    }
    assert not {sm.SUMMARY_TAG, sm.HEADLINE_TAG, sm.TEACHING_TAG, sm.METHOD_TAG} & myst_nb_tags


def test_every_notebook_is_tagged_and_ends_its_analysis_with_a_summary():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        tags = [set(c.metadata.get("tags", [])) for c in nb.cells]
        summaries = [i for i, t in enumerate(tags) if sm.SUMMARY_TAG in t]
        assert len(summaries) == 1, path.name
        assert f"summary.{path.stem}(" in nb.cells[summaries[0]].source, path.name
        assert sum(sm.HEADLINE_TAG in t for t in tags) == 1, path.name
        teaching = [c.source for c, t in zip(nb.cells, tags) if sm.TEACHING_TAG in t]
        assert any("Prerequisites" in s for s in teaching), path.name
        for cell, t in zip(nb.cells, tags):
            if (
                "Prerequisites" in cell.source
                or "You will be able to" in cell.source
                or "What's next" in cell.source
            ):
                assert sm.TEACHING_TAG in t, (path.name, cell.source[:60])


# --------------------------------------------------------------------------- reader tables in the report
def test_report_tables_have_no_index_and_no_missing_markers():
    wide = pd.DataFrame({f"col_{i}": [1.5, None, 3.0, 4.0] for i in range(12)})
    wide.insert(0, "provider_code", ["T01", "T02", pd.NA, "T04"])
    page = report.reader_table_html(wide)
    assert page.count("<table") == 2  # split, each part keeping the provider column
    assert page.count(">provider code<") == 2
    assert "NaN" not in page and "&lt;NA&gt;" not in page and "row_heading" not in page
    crosstab = pd.crosstab(
        pd.Series(["a", "a", "b"], name="pathway"), pd.Series(["x", "y", "y"], name="quadrant")
    )
    assert ">pathway<" in report.reader_table_html(crosstab)  # a meaningful index is kept as a column
    short = report.reader_table_html(wide.head(2))
    assert short.count("<table") == 1 and ">measure<" in short  # a wide table of two rows is transposed
    # a table the notebook already formatted (display.format_table) is fitted the same way, its text kept
    from helpers import display

    styled = report.reader_table_html(display.format_table(wide))
    assert styled.count("<table") == 2 and styled.count(">provider code<") == 2
    assert ">1.500<" in styled and ">–<" in styled and "NaN" not in styled
    # two columns whose reader labels would collide keep their names (opportunity in bed days, and in £)
    both = display.format_table(pd.DataFrame({"opportunity": [12.5], "opportunity_gbp": [4300.0]}))
    assert list(both.data.columns) == ["opportunity", "opportunity_gbp"]
    # a table the layout cannot split is still shown, and never stops the run
    odd = display.ReaderTable(pd.DataFrame([["a"] * 9], columns=["x"] * 9)).hide(axis="index")
    assert report.reader_table_html(odd).count("<table") == 1


# --------------------------------------------------------------------------- report.pdf
def test_missing_chromium_names_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(pdf.CHROMIUM_VARIABLE, raising=False)
    with pytest.raises(pdf.ChromiumMissing, match="apt-get install chromium"):
        pdf.find_chromium()
    from helpers.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "run",
            "value",
            "--out",
            str(out),
            "--pdf",
            "--chromium",
            str(tmp_path / "no-such-browser"),
            "--quiet",
        ]
    )
    assert code == 2 and not out.exists()  # refused before anything ran or was written
    err = capsys.readouterr().err
    assert "no-such-browser" in err and "sudo apt-get install chromium" in err


needs_chromium = pytest.mark.skipif(
    not any(shutil.which(n) for n in pdf.CHROMIUM_NAMES),
    reason="no Chromium: `apt-get install chromium` (.ci/run installs it) to test report.pdf",
)


#: The run this module reads, started in the background when the session starts (tests/conftest.py).
PREFETCH_RUNS = {
    "test_pdf_of_a_real_run_is_a4_numbered_and_its_text_reads_back": lambda folder: [sample_run("value")]
}


@needs_chromium
def test_pdf_of_a_real_run_is_a4_numbered_and_its_text_reads_back(handbook_runs):
    from pypdf import PdfReader

    spec = sample_run("value")  # `handbook run value --pdf --out DIR --quiet`, shared with tests/test_cli.py
    assert spec.options == ("--pdf",)
    out = handbook_runs.get(spec)
    sentences = check_board_report(out)
    reader = PdfReader(out / "report.pdf")
    pages = [p.extract_text() for p in reader.pages]
    assert len(pages) >= 2
    width, height = (float(x) for x in reader.pages[0].mediabox[2:])
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    first = " ".join(pages[0].split())
    assert first.index("Summary") < first.index("About the data")
    assert " ".join(sentences[0].split()[:6]) in first  # real text, in reading order
    assert f"Page 1 of {len(pages)}" in first and f"Page {len(pages)} of {len(pages)}" in " ".join(
        pages[-1].split()
    )
    assert "Prerequisites" not in " ".join(pages)
    root = reader.trailer["/Root"]  # a tagged PDF: its structure tree lets a screen reader follow the text
    assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]


def test_virtual_ward_summary_gives_direction_and_interval_in_words():
    rows = [
        ("acute_los", -1.76, -2.99, -0.54, "days"),
        ("total_los", 4.1, 2.87, 5.33, "days"),
        ("readmission_30d", -4.5, -11.04, 2.04, "percentage points"),
    ]
    effects = pd.DataFrame(
        [
            {
                "outcome": o,
                "method": "ipw",
                "estimate": e,
                "ci_lower": lo,
                "ci_upper": hi,
                "unit": u,
                "n_treated": 1136,
                "n_control": 887,
            }
            for o, e, lo, hi, u in rows
        ]
    )
    impact = pd.DataFrame(
        {
            "measure": [
                "bed_days_released",
                "beds_equivalent",
                "capacity_released_gbp",
                "vw_cost_gbp",
                "system_net_cash_gbp",
            ],
            "value": [2001.03, 2.98, 689_555.9, 1_896_675.0, -1_896_675.0],
            "price_year": [None, None, "2020/21", "2022", "2020/21 and 2022"],
        }
    )
    text = sm.virtual_ward(
        effects, impact, exclusions_table(), quality_table(), {"spells": None, "virtual_ward": None}, "ipw"
    ).text()
    assert (
        text[1]
        == "Acute stays were 1.8 days shorter (allowing for chance, between 0.5 and 3.0 days shorter)."
    )
    assert text[2].endswith("4.1 days longer (allowing for chance, between 2.9 and 5.3 days longer).")
    assert (
        "anywhere from 11.0 percentage points lower to 2.0 higher: it may be no difference at all" in text[3]
    )
    assert "2,001 bed days (3.0 beds), worth £689,556 of capacity at 2020/21 prices" in text[4]
    assert "net cash position is -£1,896,675" in text[4]


def test_value_summary_counts_pathways_by_verdict_and_the_cash_in_the_plan():
    pathways = pd.DataFrame(
        {"pathway": ["hip", "knee"], "n": [100, 50], "total_cost": [700_000.0, 330_000.4]}
    )
    allocative = pd.DataFrame(
        {"pathway": ["hip", "knee"], "verdict": ["below £20,000 per QALY", "above £30,000 per QALY"]}
    )
    quadrant = pd.DataFrame(
        {
            "pathway": ["hip", "hip", "knee"],
            "provider_code": ["T01", "T02", "T01"],
            "quadrant": ["lower gain, higher cost"] * 3,
            "gain_clear": [True, False, True],
            "cost_clear": [True, True, True],
        }
    )
    cip = pd.DataFrame(
        {
            "cip_class": ["cash-releasing, recurrent", "total"],
            "value_gbp": [5_150_000.0, 11_200_000.0],
            "share_of_plan": [0.4598, 1.0],
        }
    )
    text = sm.value(
        pathways, allocative, quadrant, cip, exclusions_table(), quality_table(), {"outcomes": None}
    ).text()
    assert text[0] == "150 patients in 2 pathways were analysed, at a total cost of £1,030,000."
    assert text[1] == "1 pathways (hip) cost below £20,000 per QALY at the chosen duration of the gain."
    assert text[2] == "1 pathways (knee) cost above £30,000 per QALY at the chosen duration of the gain."
    assert text[3].startswith(
        "2 providers are clearly in the lower gain, higher cost corner of a pathway, both "
        "differences beyond chance (hip: T01; knee: T01)"
    )
    assert text[4] == (
        "Of the cost improvement plan's £11,200,000, £5,150,000 (46%) is cash-releasing and recurrent: "
        "only that lowers next year's costs."
    )


def test_value_summary_reads_the_plan_total_and_the_gap_in_recurrent_cash():
    cip = pd.DataFrame(
        {
            "cip_class": ["cash-releasing, recurrent", "plan total", "rejected (not counted)"],
            "value_gbp": [4_250_000.0, 8_650_000.0, 0.0],
            "share_of_plan": [0.4913, 1.0, None],
            "gap_to_target_gbp": [None, 9_750_000.0, None],
        }
    )
    pathways = pd.DataFrame({"pathway": ["hip"], "n": [10], "total_cost": [7000.0]})
    allocative = pd.DataFrame({"pathway": ["hip"], "verdict": ["below £20,000 per QALY"]})
    quadrant = pd.DataFrame(
        {
            "pathway": ["hip"],
            "provider_code": ["T01"],
            "quadrant": ["not distinguishable"],
            "gain_clear": [False],
            "cost_clear": [False],
        }
    )
    text = sm.value(
        pathways, allocative, quadrant, cip, exclusions_table(), quality_table(), {"outcomes": None}
    ).text()
    assert (
        "Of the cost improvement plan's £8,650,000, £4,250,000 (49%) is cash-releasing and recurrent: only that "
        "lowers next year's costs, and it falls £9,750,000 short of the target."
    ) in text
    assert text[2].startswith("No provider is clearly in the lower gain, higher cost corner of a pathway")
