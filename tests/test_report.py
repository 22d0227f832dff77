"""Reports people can send: report.html offline, results.xlsx read back, figures, equal runs give equal tables."""

from __future__ import annotations

import base64
import datetime as dt
import io as stdio
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from openpyxl import load_workbook  # noqa: E402

from helpers import report  # noqa: E402
from helpers.cli import main  # noqa: E402


def figure_outputs() -> dict[str, str]:
    """A figure as the kernel sends it for a report: PNG (base64) and SVG without a date."""
    with plt.rc_context({"svg.hashsalt": "test"}):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([1, 2, 3])
        ax.set_title("Stays fell after March")
        png, svg = stdio.BytesIO(), stdio.StringIO()
        fig.savefig(png, format="png")
        fig.savefig(svg, format="svg", metadata={"Date": None})
        plt.close(fig)
    return {
        "image/png": base64.b64encode(png.getvalue()).decode(),
        "image/svg+xml": svg.getvalue(),
        "text/plain": "<Figure size 300x200>",
    }


def executed_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("data_spells = None", metadata={"tags": ["parameters"]})
    params.outputs = [nbformat.v4.new_output("stream", name="stdout", text="PARAMETER OUTPUT\n")]
    table = nbformat.v4.new_code_cell("import helpers\ntable")
    table.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="UserWarning: a stray warning\n"),
        nbformat.v4.new_output(
            "execute_result",
            data={
                "text/html": "<table><tr><td>T01</td><td>1,234</td></tr></table>",
                "text/plain": "T01 1234",
            },
            execution_count=1,
        ),
    ]
    plot = nbformat.v4.new_code_cell("fig = plot(table)", metadata={"tags": ["hide-input"]})
    plot.outputs = [nbformat.v4.new_output("display_data", data=figure_outputs())]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Where are stays longest?\n\nRead {doc}`../book/spc` first."),
        params,
        table,
        plot,
        nbformat.v4.new_markdown_cell("## Summary"),
    ]
    nbformat.write(nb, path)
    return path


def test_report_html_is_self_contained_with_code_and_stray_output_hidden(tmp_path):
    nb = executed_notebook(tmp_path / "x.ipynb")
    front = report.front_matter(
        "variation",
        {"spells": {"file": "sus.csv", "rows": 400_000, "sha256": "ab" * 32}},
        {"indicator": "los"},
        "Where are stays longest?",
        dt.datetime(2025, 4, 1, 9, 30),
    )
    html_path = tmp_path / "report.html"
    report.write_html(nb, html_path, "variation", front)
    html = html_path.read_text()
    # nothing fetched from the internet: no script, style sheet, font or image by URL
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<link[^>]*href=[\"']https?:", html)
    assert not re.search(r"url\([\"']?https?:|@import", html)
    assert not re.search(r"<img[^>]*src=[\"']https?:", html)
    assert "mathjax" not in html.lower() and "require.min.js" not in html
    assert (
        len(re.findall(r'<img[^>]*src="data:image/png;base64,', html)) == 1 and "<svg" not in html
    )  # the figure, as PNG
    assert "import helpers" not in html and "PARAMETER OUTPUT" not in html and "stray warning" not in html
    assert "1,234" in html  # the result table is there
    assert "<title>Where are stays longest?</title>" in html
    assert "sus.csv, 400,000 rows, SHA-256 abababababab" in html and "2025-04-01T09:30:00" in html
    assert "Counts from 1 to 7 are shown as *" in html
    assert "{doc}" not in html and "<em>Statistical process control: is this month different?</em>" in html


def test_book_cross_references_become_plain_text():
    text = "See {doc}`../book/value/index`, {cite}`willan1996` and {cite}`twosides2014,hes_guide`; a {term}`QALY`."
    # titles from the chapters' first headings; authors and years from book/references.bib
    assert report.plain_roles(text) == (
        "See *What value means*, (Willan and O'Brien 1996) and (Academy of Medical Royal Colleges et al. 2014; "
        "NHS Digital 2023); a QALY."
    )


def test_figures_written_as_png_and_svg(tmp_path):
    nb = executed_notebook(tmp_path / "x.ipynb")
    written = report.write_figures(nb, tmp_path / "figures")
    assert [p.name for p in written] == ["figure_01.png", "figure_01.svg"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = written[1].read_text()
    assert svg.lstrip().startswith("<?xml") and "<dc:date>" not in svg
    assert "Stays fell after March" in svg  # the title, as the comment matplotlib writes beside its glyphs


def test_results_workbook_read_back(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame(
        {
            "provider_code": ["T01", "T02"],
            "n": [1234, 52],
            "observed": [101, "*"],
            "share_improved": [0.671, "*"],
            "total_cost": [2716756.1, 51000.0],
            "cost_ratio": [0.94, 1.1],
            "p_value": [0.03, 1e-9],
            "pct_complete": [99.5, 100.0],
            "month": ["2024-04-01", "2024-05-01"],
        }
    ).to_csv(tables / "provider_value.csv", index=False)
    pd.DataFrame({"step": ["read"], "rows_after": [10]}).to_csv(tables / "exclusions.csv", index=False)
    front = report.front_matter(
        "value", {}, {"seed": 2026, "column_map": {"Cost £": "cost"}}, "Value, made computable"
    )
    names = report.write_workbook(tables, tmp_path / "results.xlsx", front)
    assert names == ["exclusions", "provider_value"]

    wb = load_workbook(tmp_path / "results.xlsx")
    assert wb.sheetnames == ["about", "exclusions", "provider_value"]
    about = {r[0]: r[1] for r in wb["about"].iter_rows(values_only=True) if r[0]}
    assert about["NHS value handbook: Value, made computable"] is None
    assert about["notebook"] == "value"
    assert about["data"] == "the simulated sample data shipped with the handbook"
    assert about["parameters"] == "seed = 2026"
    assert about["small numbers"].startswith("Counts from 1 to 7 are shown as *")
    index = [c for c in wb["about"]["B"] if c.hyperlink]
    assert [c.value for c in index] == ["exclusions (1 row)", "provider_value (2 rows)"]
    assert index[1].hyperlink.location == "'provider_value'!A1" or "#'provider_value'!A1" in str(
        index[1].hyperlink.target
    )

    ws = wb["provider_value"]
    header = {c.value: c.column_letter for c in ws[1]}
    assert ws["A1"].font.bold and ws["A1"].fill.fgColor.rgb.endswith("005EB8")
    assert ws.freeze_panes == "B2" and ws.auto_filter.ref == "A1:I3"

    def cell(col: str, row: int = 2):
        return ws[f"{header[col]}{row}"]

    assert (
        cell("total_cost").value == pytest.approx(2716756.1)
        and cell("total_cost").number_format == report.POUNDS
    )
    assert cell("cost_ratio").number_format == report.SMALL_DECIMAL  # a ratio, not money
    assert cell("share_improved").number_format == report.PERCENT
    assert cell("pct_complete").number_format == report.PERCENT_POINTS
    assert cell("p_value", 3).number_format == report.P_VALUE
    assert cell("n").value == 1234 and cell("n").number_format == report.WHOLE
    assert cell("month").value == dt.datetime(2024, 4, 1) and cell("month").number_format == report.DATE
    starred = cell("observed", 3)
    assert starred.value == "*" and starred.alignment.horizontal == "right"


@pytest.mark.parametrize(
    "column,values,expected",
    [
        ("capacity_released_gbp", [1.5e6], report.POUNDS),
        ("cost_per_qaly", [2278.8], report.POUNDS),
        ("discount_rate", [0.035], report.PERCENT),
        ("readmission_30d_rate", [0.18], report.PERCENT),
        ("financial_year", ["2024/25"], None),
        ("imd_decile", [1, 10], report.PLAIN_WHOLE),
        ("mean_age", [84.3], report.DECIMAL),
        ("tau2", [0.00067], None),
    ],
)
def test_number_format_by_column_name(column, values, expected):
    assert report.number_format(column, values) == expected


# --------------------------------------------------------------------------- whole runs
def test_same_inputs_and_seed_give_identical_tables_and_figures(tmp_path, capsys):
    # value is the quickest notebook; --quiet hides papermill's progress bar, without it the bar shows
    assert main(["run", "value", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert main(["run", "value", "--out", str(tmp_path / "b")]) == 0
    loud = capsys.readouterr()
    assert "Executing" not in quiet.err and quiet.out == ""
    assert "Executing" in loud.err and "Wrote" in loud.out

    a, b = tmp_path / "a", tmp_path / "b"
    tables = sorted(p.name for p in (a / "tables").glob("*.csv"))
    assert {"data_quality.csv", "exclusions.csv", "pathway_value.csv"} <= set(tables)
    assert tables == sorted(p.name for p in (b / "tables").glob("*.csv"))
    for name in tables:
        assert (a / "tables" / name).read_bytes() == (b / "tables" / name).read_bytes(), name
    figures = sorted(p.name for p in (a / "figures").iterdir())
    assert figures and {Path(f).suffix for f in figures} == {".png", ".svg"}
    assert len([f for f in figures if f.endswith(".svg")]) == len([f for f in figures if f.endswith(".png")])
    for name in figures:
        assert (a / "figures" / name).read_bytes() == (b / "figures" / name).read_bytes(), name

    html = (a / "report.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", html) and "data:image/png;base64," in html
    assert html.index("Data quality") < html.index("Step 1")  # the data quality section comes first
    flow = pd.read_csv(a / "tables" / "exclusions.csv")
    assert (
        flow["rows_after"].iloc[0]
        == flow["rows_after"].iloc[-1]
        == len(
            pd.read_csv(
                Path(__file__).resolve().parents[1] / "data/sample/outcomes.csv", usecols=["outcome_id"]
            )
        )
    )
    wb = load_workbook(a / "results.xlsx", read_only=True)
    assert wb.sheetnames == ["about", *[t.removesuffix(".csv") for t in tables]]


def test_a_planted_nhs_number_stops_a_real_run_and_nothing_is_written(tmp_path, capsys):
    # someone charts a series grouped by NHS number: the number reaches the tables, the report and the figures
    months = pd.date_range("2023-04-01", periods=15, freq="MS").strftime("%Y-%m-%d")
    series = pd.DataFrame({"date": months, "value": range(100, 115), "group": "943 476 5919"})
    path = tmp_path / "series.csv"
    series.to_csv(path, index=False)
    out = tmp_path / "out"
    assert main(["run", "spc", "--data", f"series={path}", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Nothing was written: the outputs would contain identifiers." in err
    assert "tables/spc.csv: 1 valid NHS number(s)" in err and "report.html: 1 valid NHS number(s)" in err
    assert re.search(r"figures/figure_\d\d\.svg: 1 valid NHS number", err)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series.csv"]  # no staging folder left behind
