"""Handing result tables from a notebook to a run, and writing the run's files.

A notebook calls :func:`publish` for each result table. ``handbook run`` then
turns the executed notebook and its tables into the files a user can send:

* ``report.html``: code, parameters and warnings hidden, figures embedded as
  PNG, no script, style sheet or font fetched from the internet, so it opens
  offline and in an email attachment (:func:`write_html`);
* ``results.xlsx``: a front sheet (what was run, when, on which data, with
  which parameters, under which small-number rule, and an index of the
  sheets), then one sheet per table with formatted headers, £ and % formats
  chosen from the column names, frozen panes and filters (:func:`write_workbook`);
* ``figures/figure_NN.png`` and ``.svg`` (:func:`write_figures`; the kernel
  draws both when started with :data:`KERNEL_ARGUMENTS`);
* ``tables/NAME.csv`` (:func:`publish`) and ``run.json`` (:func:`write_run_json`).

The writers import nbformat, nbconvert and jinja2 inside the functions that
use them: a notebook imports this module for :func:`publish`, and importing
nbformat (its schema validator) costs seconds in every notebook's kernel.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
from IPython import get_ipython
from IPython.display import display as show
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from helpers import REPO_ROOT, __version__, disclosure, display, quality
from helpers import summary as sm

# The number formats and the rule choosing them live in helpers.display, shared with the book's tables.
from helpers.display import (  # noqa: F401  (report.POUNDS etc. stay importable from here)
    DATE,
    DECIMAL,
    ONE_DECIMAL,
    P_VALUE,
    PERCENT,
    PERCENT_POINTS,
    PLAIN_WHOLE,
    POUNDS,
    SMALL_DECIMAL,
    WHOLE,
    format_table,
    number_format,
)
from helpers.io import LoadedTable, identifier_columns

TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")

#: Extra arguments for the kernel that runs a notebook for a report: every
#: figure is drawn as PNG and SVG, and the SVG carries no date, so the same
#: run gives the same file (``svg.hashsalt`` is fixed by ``helpers.plots.set_theme``);
#: the kernel's own log keeps to errors, so ``--quiet`` is quiet.
KERNEL_ARGUMENTS = [
    "--InlineBackend.figure_formats=['png', 'svg']",
    "--InlineBackend.print_figure_kwargs={'bbox_inches': 'tight', 'metadata': {'Date': None}}",
    "--IPKernelApp.log_level=ERROR",  # not the kernel's notice about its local connection
    "--IPKernelApp.exec_lines=['import helpers.report; helpers.report.use_reader_tables()']",  # tables as readers see them
]

#: The small-number rule as the front sheet states it.
SUPPRESSION_RULE = (
    f"Counts from 1 to {disclosure.DEFAULT_THRESHOLD} are shown as {disclosure.SUPPRESSED}; the other counts "
    f"in the same row are rounded to the nearest {disclosure.ROUND_TO} so the hidden ones cannot be worked out, "
    "and rates or means made from a hidden count are hidden too (HES analysis guide, small numbers). "
    "No table holds a patient or record identifier."
)


def publish(
    table: pd.DataFrame,
    name: str,
    output_dir: str | Path | None = None,
    counts: Iterable[str] | None = None,
    derived: Mapping[str, Iterable[str]] | None = None,
    threshold: int = disclosure.DEFAULT_THRESHOLD,
    linked: bool = False,
) -> pd.DataFrame:
    """Apply disclosure control to a result table, write it if asked, return it.

    Writes ``output_dir/NAME.csv`` when ``output_dir`` is set (``handbook run``
    sets it). Refuses a table with a patient or record identifier column:
    result tables are aggregates. ``counts``/``derived``/``threshold``/``linked``
    are passed to :func:`helpers.disclosure.suppress`; ``threshold=0`` turns
    suppression off (for national statistics already published).
    """
    if not TABLE_NAME.match(name):
        raise ValueError(
            f"Table name {name!r} must be lower_snake_case, at most 31 characters (an Excel sheet name)."
        )
    ids = sorted(set(map(str, table.columns)) & identifier_columns())
    if ids:
        raise ValueError(
            f"Table {name!r} has identifier column(s) {', '.join(ids)}: result tables must be aggregates."
        )
    safe, _ = disclosure.suppress(table, counts=counts, derived=derived, threshold=threshold, linked=linked)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        inert_table(safe).to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
    return safe


#: The columns of the data quality and exclusions tables a report shows (their CSV files keep every column).
DATA_QUALITY_SHOWN = [
    "table",
    "column",
    "source_column",
    "required",
    "n_missing",
    "pct_complete",
    "first",
    "last",
    "values_seen",
]
EXCLUSIONS_SHOWN = ["table", "step", "rows_excluded", "rows_after", "reason"]


def publish_data_quality(
    loaded: LoadedTable | Mapping[str, LoadedTable],
    *steps: pd.DataFrame | None,
    output_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The data quality block every notebook runs right after loading its inputs, as one call.

    Prints what was read (:func:`helpers.quality.describe`), publishes the
    ``data_quality`` table and the ``exclusions`` flow (``steps``: the
    notebook's own exclusion tables, in order; see :func:`helpers.quality.exclusion_flow`)
    with :func:`publish`, shows both, and returns them (after disclosure
    control) for the findings summary. ``loaded`` is the loaded table with
    what was read (:func:`helpers.io.load_input`), or ``{table name: table}``
    for several inputs; a table the DuckDB or Spark engine profiled without
    loading it is described from that profile.
    """
    print(quality.describe(loaded))
    # the data quality table is suppressed already, one set per column; the flow's rows are linked by subtraction
    data_quality = publish(quality.data_quality(loaded), "data_quality", output_dir, counts=[])
    exclusions = publish(
        quality.exclusion_flow(loaded, *steps),
        "exclusions",
        output_dir,
        counts=quality.flow_counts(loaded),
        linked=True,
    )
    show(format_table(data_quality[DATA_QUALITY_SHOWN]))
    show(format_table(exclusions[EXCLUSIONS_SHOWN]))
    return data_quality, exclusions


# --------------------------------------------------------------------------- nothing live in a spreadsheet
#: First characters that make a spreadsheet read a cell as a formula (OWASP, *CSV Injection*).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NEGATIVE_NUMBER = re.compile(r"^-(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def inert_text(value: Any) -> Any:
    """A value as it may go into a CSV file or a workbook: never the start of a formula.

    Text starting with ``= + - @``, a tab or a carriage return gets a single
    quote in front, as OWASP's *CSV Injection* advises, so Excel and LibreOffice
    show it as text; a genuine negative number (``-250.5``) stays a number.
    Everything else is returned unchanged. Every writer of a run's tables uses
    this (:func:`publish` for ``tables/*.csv``, :func:`write_workbook`).
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NEGATIVE_NUMBER.match(value):
        return "'" + value
    return value


def inert_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with :func:`inert_text` applied to every text cell and column name."""
    out = table.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].map(inert_text)
    out.columns = [inert_text(c) for c in out.columns]
    return out


def _workbook_value(value: Any) -> Any:
    """A cell value for openpyxl: inert (:func:`inert_text`), without the control characters XML cannot hold."""
    if isinstance(value, str):
        value = inert_text(ILLEGAL_CHARACTERS_RE.sub("", value))
    return value


# --------------------------------------------------------------------------- report.html
#: nbconvert's "lab" page without the scripts it fetches from a CDN (require.js,
#: MathJax, mermaid, widgets): the notebooks use none of them, and a report must
#: open offline. The page's style sheets are inlined by the template itself.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
_HIDDEN_TAGS = {"parameters", "injected-parameters", "remove-output", "remove-cell"}


def notebook_title(nb: Any, default: str) -> str:
    """The first level-one heading of a notebook, or ``default``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return default


def report_notebook(nb: Any, front: Mapping[str, Any] | None = None) -> Any:
    """A copy of an executed notebook as the report shows it.

    Outputs of the parameters cells and everything written to stderr
    (warnings, progress) are removed; a figure drawn both as PNG and SVG keeps
    the PNG only; the book's cross-references become plain text
    (:func:`plain_roles`); ``front`` (see :func:`front_matter`) becomes a short note
    under the title saying what was run, when and on which data.
    """
    import nbformat  # a writer of the run (see the module docstring)

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = plain_roles(cell.source)
        if cell.cell_type != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & _HIDDEN_TAGS:
            cell.outputs = []
            continue
        kept = []
        for output in cell.outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                continue
            data = output.get("data")
            if data and "image/png" in data:
                data.pop("image/svg+xml", None)
            kept.append(output)
        cell.outputs = kept
    if front:
        lines = [
            f"**{markdown_literal(k)}:** {markdown_literal(_plain(v))}"
            for k, v in front.items()
            if k not in {"report"}
        ]
        note = nbformat.v4.new_markdown_cell("*About this report.* " + "  \n".join(lines))
        first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
        nb.cells.insert(first + 1, note)
    return nb


_ROLE = re.compile(r"\{(doc|cite|cite:p|cite:t|term|ref|numref)\}`([^`]*)`")
_LABELLED = re.compile(r"^(.*?)\s*<([^>]+)>$", re.S)


def plain_roles(text: str, notebooks_dir: Path | None = None) -> str:
    """MyST roles as a reader outside the book should see them.

    ``{doc}`` becomes the chapter's title in italics (read from its first
    heading), ``{cite}`` the authors and year in brackets (from
    ``book/references.bib``), ``{term}`` and ``{ref}`` their text. The
    report of a run is a single page: the book's cross-references cannot
    be links there.
    """
    base = notebooks_dir or REPO_ROOT / "notebooks"

    def one(match: re.Match) -> str:
        role, body = match.group(1), match.group(2).strip()
        labelled = _LABELLED.match(body)
        label, target = (labelled.group(1).strip(), labelled.group(2).strip()) if labelled else ("", body)
        if role == "doc":
            return f"*{label or _chapter_title(base, target)}*"
        if role.startswith("cite"):
            return "(" + "; ".join(_citation(k.strip()) for k in target.split(",")) + ")"
        return label or target

    return _ROLE.sub(one, text)


def _chapter_title(base: Path, target: str) -> str:
    path = (base / target).with_suffix(".md")
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return target.removeprefix("../").removeprefix("book/")


def _citation(key: str) -> str:
    entry = _bibliography().get(key)
    if not entry:
        return key
    authors = [a.strip() for a in entry["author"].split(" and ") if a.strip()]
    names = [a.strip("{}") if a.startswith("{") else a.split(",")[0].strip() for a in authors]
    others = "others" in names
    names = [n for n in names if n != "others"]
    if len(names) > 2 or others:
        who = f"{names[0]} et al."
    else:
        who = " and ".join(names)
    return f"{who} {entry['year']}".strip()


def _bibliography() -> dict[str, dict[str, str]]:
    path = REPO_ROOT / "book" / "references.bib"
    entries: dict[str, dict[str, str]] = {}
    if not path.is_file():
        return entries
    key = None
    for line in path.read_text(encoding="utf-8").splitlines():
        start = re.match(r"\s*@\w+\{([^,\s]+),", line)
        if start:
            key = start.group(1)
            entries[key] = {"author": "", "year": ""}
            continue
        field = re.match(r"\s*(author|year)\s*=\s*[{\"]?(.*?)[}\"]?,?\s*$", line)
        if key and field:
            entries[key][field.group(1)] = field.group(2)
    return entries


def markdown_literal(text: Any) -> str:
    """Text to show as it is inside Markdown that becomes ``report.html``.

    Every ASCII punctuation character is backslash-escaped (CommonMark,
    "Backslash escapes"), so a file name such as ``<img src=x onerror=...>.csv``
    or a parameter value holding ``[link](javascript:...)`` is shown as text,
    never as HTML or a link; line breaks and other control characters become spaces.
    """
    flat = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", flat)


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k} = {v!r}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value)) or "none"
    return str(value)


def write_html(
    notebook_path: Path, html_path: Path, title: str, front: Mapping[str, Any] | None = None
) -> None:
    """Write a self-contained HTML report of an executed notebook.

    Code, input prompts, the parameters cells' outputs and stderr are hidden;
    figures are embedded as PNG (``data:`` URIs); no script is loaded from
    the internet (see :data:`_OFFLINE_TEMPLATE`), so the file opens offline.
    """
    import nbformat  # a writer of the run (see the module docstring)
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    source = nbformat.read(notebook_path, as_version=4)
    nb = findings_first(report_notebook(source, front), source)
    _number_cells(nb)
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"offline_report.html.j2": _OFFLINE_TEMPLATE + _REPORT_LAYOUT})],
        template_file="offline_report.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.embed_images = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook_title(nb, title)}})
    html_path.write_text(with_security_policy(body), encoding="utf-8")


#: The content security policy of ``report.html``: nothing is fetched and no
#: script runs (not even an inline ``onerror=``); the page's own inline styles
#: and its ``data:`` images and fonts are allowed, so it works offline. The
#: report needs no script: its template drops nbconvert's.
REPORT_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def with_security_policy(html: str) -> str:
    """``html`` with :data:`REPORT_POLICY` as the first element of its head (a ``<meta>`` tag)."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{REPORT_POLICY}"/>'
    head = re.search(r"<head\b[^>]*>", html, re.I)
    if head is None:
        return meta + "\n" + html
    return html[: head.end()] + "\n" + meta + html[head.end() :]


def _number_cells(nb: Any) -> None:
    """Give cells ids from their place (``cell-000`` ...), so equal runs give equal HTML.

    papermill gives its injected parameters cell a random id, and so does
    nbformat to a new cell; the HTML carries the ids.
    """
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"


# --------------------------------------------------------------------------- findings first (the board's order)
#: The report's own layout, added to :data:`_OFFLINE_TEMPLATE`: the summary box, and
#: print rules for ``report.pdf`` (A4, page numbers, no figure or table row split across pages).
_REPORT_LAYOUT = """
{%- block html_head_css -%}
<style type="text/css">
.handbook-summary { border-left: 5px solid #005EB8; background: #F0F4F5; padding: 0.6em 1.2em; margin: 0.8em 0; }
.handbook-summary h2 { margin-top: 0.3em; }
.handbook-summary ul { padding-left: 1.2em; }
.handbook-summary li { margin: 0.35em 0; line-height: 1.45; }
.summary-data { border-collapse: collapse; margin-top: 0.8em; font-size: 0.9em; }
.summary-data caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
.jp-RenderedHTMLCommon .summary-data th { text-align: left; vertical-align: top; padding: 0.2em 1em 0.2em 0; white-space: nowrap; }
.jp-RenderedHTMLCommon .summary-data td { text-align: left; vertical-align: top; padding: 0.2em 0; }
.jp-RenderedHTMLCommon table.reader-table { table-layout: auto; max-width: 100%; }
.jp-RenderedHTMLCommon table.reader-table td, .jp-RenderedHTMLCommon table.reader-table th { text-align: left; }
@page { size: A4; margin: 16mm 14mm 18mm 14mm;
  @bottom-center { content: "Page " counter(page) " of " counter(pages); font-size: 9pt; color: #425563; } }
@media print {
  body { font-size: 10pt; }
  .jp-RenderedImage, .jp-RenderedImage img, figure, .summary-data, tr { break-inside: avoid; page-break-inside: avoid; }
  .jp-RenderedImage img { max-width: 100% !important; height: auto; }
  h1, h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  table.reader-table { font-size: 8pt !important; }
  .jp-OutputArea-output { overflow: visible; }
  .jp-OutputArea-child { break-inside: auto; }  /* a long table may continue on the next page, row by row */
  table.reader-table td, table.reader-table th { padding: 0.15em 0.4em !important; }
  pre { white-space: pre-wrap; }
}
</style>
{%- endblock html_head_css -%}
"""

#: Heading of the closing appendix that holds the method cells, the chapters to read and the run's note.
APPENDIX_HEADING = "How this was done"


def _tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _chapters(cells: Iterable[Any]) -> list[str]:
    """The book chapters ({doc} targets) named in the given cells, in order, without repeats."""
    found: list[str] = []
    for cell in cells:
        if cell.cell_type == "markdown":
            for match in _ROLE.finditer(cell.source):
                if match.group(1) == "doc":
                    labelled = _LABELLED.match(match.group(2).strip())
                    target = labelled.group(2).strip() if labelled else match.group(2).strip()
                    if target not in found:
                        found.append(target)
    return found


def _demoted(source: str) -> str:
    """Markdown with every heading one level lower (## becomes ###), for the appendix."""
    return re.sub(r"^(#{1,5}) ", r"#\1 ", source, flags=re.M)


def findings_first(nb: Any, source: Any | None = None) -> Any:
    """Put a report in the order a board reads it (cell tags from :mod:`helpers.summary`).

    The title, then the summary cell (tag ``summary``) with a copy of the
    headline figure (tag ``headline-figure``), then the results in the
    notebook's order; lesson-only cells (tag ``teaching``: prerequisites,
    outcomes, recaps, exercises) are left out; method cells (tag ``method``),
    the notebook's introduction and the run's note go to a closing "How this
    was done" appendix, which names the book's chapters that explain the
    method. ``source``: the notebook before :func:`report_notebook` (for the
    chapters its cross-references name). A notebook with none of these tags
    is returned as it is.
    """
    import nbformat  # a writer of the run (see the module docstring)

    cells = list(nb.cells)
    tagged = {sm.SUMMARY_TAG, sm.HEADLINE_TAG, sm.TEACHING_TAG, sm.METHOD_TAG}
    if not any(_tags(c) & tagged for c in cells):
        return nb
    nb = copy.copy(nb)
    title_at = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"), None)
    note = next(
        (c for c in cells if c.cell_type == "markdown" and c.source.startswith("*About this report.*")), None
    )
    top: list[Any] = []
    intro = ""
    if title_at is not None:
        title = cells[title_at]
        lines = title.source.split("\n")
        heading = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
        if heading is not None:
            top.append(nbformat.v4.new_markdown_cell(lines[heading]))
            intro = "\n".join(lines[:heading] + lines[heading + 1 :]).strip()
        else:
            top.append(title)
    for cell in cells:
        if sm.SUMMARY_TAG in _tags(cell):
            top.append(cell)
    for cell in cells:
        if sm.HEADLINE_TAG in _tags(cell):
            figure = copy.deepcopy(cell)
            figure["id"] = f"{cell.get('id', 'figure')}-headline"
            figure.outputs = [o for o in figure.outputs if "image/png" in o.get("data", {})]
            top.append(figure)
    body, methods = [], []
    for i, cell in enumerate(cells):
        tags = _tags(cell)
        if i == title_at or cell is note or tags & {sm.SUMMARY_TAG, sm.TEACHING_TAG}:
            continue
        if sm.METHOD_TAG in tags:
            if cell.cell_type == "markdown":
                cell = copy.deepcopy(cell)
                cell.source = _demoted(cell.source)
            methods.append(cell)
        else:
            body.append(cell)
    original = source.cells if source is not None else []
    lesson = [c for c in original if _tags(c) & {sm.TEACHING_TAG, sm.METHOD_TAG}]
    chapters = [
        plain_roles(f"{{doc}}`{target}`") + f" (`{target.removeprefix('../')}.md` in the handbook)"
        for target in _chapters(lesson)
    ]
    appendix = [
        nbformat.v4.new_markdown_cell(
            f"## {APPENDIX_HEADING}\n\n"
            + (intro + "\n\n" if intro else "")
            + "The steps below are those of the handbook's notebook; its chapters explain each method in full"
            + (":\n\n" + "\n".join(f"* {c}" for c in chapters) if chapters else ".")
        )
    ]
    nb.cells = top + body + appendix + methods + ([note] if note is not None else [])
    return nb


def use_reader_tables() -> None:
    """Show every table a notebook displays as :func:`reader_table_html` does (run in the report's kernel).

    :data:`KERNEL_ARGUMENTS` calls this when ``handbook run`` starts the
    kernel, so ``report.html`` has no index column, no ``NaN`` or ``<NA>``,
    and the workbook's number formats; the book is not affected.
    """
    shell = get_ipython()
    if shell is None:
        return
    html_formatter = shell.display_formatter.formatters["text/html"]
    html_formatter.for_type(pd.DataFrame, reader_table_html)
    html_formatter.for_type(pd.Series, reader_table_html)
    html_formatter.for_type(
        display.ReaderTable, reader_table_html
    )  # a notebook's format_table(...), fitted to the page


#: A table wider than this many columns is split (or, with few rows, transposed).
MAX_REPORT_COLUMNS = 7


def reader_table_html(table: pd.DataFrame | pd.Series) -> str:
    """A displayed table as the report shows it, through :func:`helpers.display.format_table`.

    A meaningful index (a named one, or a crosstab's) becomes a column; a
    default one is dropped. A wide table of up to three rows is transposed;
    a wider one with more rows is split into parts of at most
    :data:`MAX_REPORT_COLUMNS` columns, each repeating the table's leading
    text columns (at most two, such as pathway and provider), so no table
    runs off an A4 page.
    """
    try:
        return _reader_table(table)
    except Exception:  # never stop a run over layout: the table plainly, without its index
        return (
            table.to_html()
            if hasattr(table, "set_table_styles")
            else pd.DataFrame(table).to_html(index=False, na_rep="–")
        )


def _reader_table(table: Any) -> str:
    if isinstance(table, display.ReaderTable):
        return _fitted(table)
    frame = table.to_frame() if isinstance(table, pd.Series) else table
    if not isinstance(frame.index, pd.RangeIndex) or any(n is not None for n in frame.index.names):
        frame = frame.reset_index()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [" ".join(str(x) for x in c if str(x)) for c in frame.columns]
    frame.columns = [str(c) for c in frame.columns]
    frame = frame.loc[:, ~pd.Index(frame.columns).duplicated()]
    if len(frame.columns) <= MAX_REPORT_COLUMNS:
        return display.format_table(frame).to_html()
    if len(frame) <= 3:
        return display.format_table(frame, transpose=True).to_html()
    keys = []
    for col in frame.columns[:2]:
        if pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            break
        keys.append(col)
    keys = keys or [frame.columns[0]]
    rest = [c for c in frame.columns if c not in keys]
    step = MAX_REPORT_COLUMNS - len(keys)
    parts = [frame[[*keys, *rest[i : i + step]]] for i in range(0, len(rest), step)]
    return "".join(display.format_table(part).to_html() for part in parts)


_NUMBER_TEXT = re.compile(r"^[-+]?£?[-+]?[\d,.]+%?$|^[<>]0\.\d+$|^[–*∞]$")


def _fitted(styler: Any) -> str:
    """A table already formatted by :func:`helpers.display.format_table`, split or transposed to fit an A4 page.

    Works on its formatted text (``styler.data``), so the numbers read as the
    notebook showed them; columns whose every cell is a number (or blank, or
    ``*``) stay right-aligned.
    """
    text = styler.data
    if len(text.columns) <= MAX_REPORT_COLUMNS or text.columns.duplicated().any():
        return styler.to_html()
    if len(text) <= 3:
        return display.format_table(
            text, labels=False, unit_column=None, transpose=True, caption=styler.caption
        ).to_html()
    numeric = [c for c in text.columns if text[c].astype(str).str.match(_NUMBER_TEXT).all()]
    keys = [c for c in text.columns[:2] if c not in numeric]
    keys = keys if keys and keys[0] == text.columns[0] else [text.columns[0]]
    keys = keys[: 1 + (len(keys) > 1 and keys[1] == text.columns[1])]
    rest = [c for c in text.columns if c not in keys]
    step = MAX_REPORT_COLUMNS - len(keys)
    pages = []
    for i in range(0, len(rest), step):
        part = text[[*keys, *rest[i : i + step]]]
        styles = []
        for j, col in enumerate(part.columns):
            if col in numeric:
                styles += [
                    {"selector": f"td.col{j}", "props": "text-align: right; white-space: nowrap;"},
                    {"selector": f"th.col{j}", "props": "text-align: right;"},
                ]
        shown = display.format_table(
            part, labels=False, unit_column=None, caption=styler.caption if not i else None
        )
        pages.append(shown.set_table_styles(styles, overwrite=False).to_html())
    return "".join(pages)


# --------------------------------------------------------------------------- figures
def write_figures(notebook_path: Path, folder: Path) -> list[Path]:
    """Save every figure of an executed notebook as ``figure_NN.png`` and, when drawn, ``figure_NN.svg``.

    Figures are numbered in the order they appear. Returns the paths written.
    """
    import nbformat  # a writer of the run (see the module docstring)

    nb = nbformat.read(notebook_path, as_version=4)
    written: list[Path] = []
    number = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            png, svg = data.get("image/png"), data.get("image/svg+xml")
            if not (png or svg):
                continue
            number += 1
            folder.mkdir(parents=True, exist_ok=True)
            if png:
                path = folder / f"figure_{number:02d}.png"
                path.write_bytes(base64.b64decode(png))
                written.append(path)
            if svg:
                path = folder / f"figure_{number:02d}.svg"
                text = "".join(svg) if isinstance(svg, list) else svg
                path.write_text(text, encoding="utf-8", newline="\n")
                written.append(path)
    return written


# --------------------------------------------------------------------------- results.xlsx
NHS_BLUE = "005EB8"

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def front_matter(
    notebook: str,
    inputs: Mapping[str, Mapping[str, Any]],
    parameters: Mapping[str, Any],
    title: str | None = None,
    when: dt.datetime | None = None,
) -> dict[str, Any]:
    """What the front sheet and the report's note say about a run.

    ``inputs`` as ``handbook run`` records them (``file``, ``rows``,
    ``sha256``); an empty mapping means the simulated sample data.
    """
    when = when or dt.datetime.now()
    data = [
        f"{name}: {spec['file']}"
        + (f", sheet {spec['sheet']!r}" if spec.get("sheet") is not None else "")
        + (f", {spec['rows']:,} rows" if spec.get("rows") is not None else "")
        + (f", SHA-256 {spec['sha256'][:12]}…" if spec.get("sha256") else "")
        for name, spec in inputs.items()
    ]
    return {
        "report": title or notebook,
        "notebook": notebook,
        "run at": when.isoformat(timespec="seconds"),
        "data": data or ["the simulated sample data shipped with the handbook"],
        "parameters": dict(parameters) or "the notebook's defaults",
        "small numbers": SUPPRESSION_RULE,
        "helpers version": __version__,
    }


def write_workbook(tables_dir: Path, xlsx_path: Path, front: Mapping[str, Any]) -> list[str]:
    """Write ``results.xlsx``: a front sheet, then one formatted sheet a table.

    The front sheet ("about") lists ``front`` (lists and mappings one item a
    row) and an index of the table sheets with their row counts, each linked
    to its sheet. Each table sheet: a bold white-on-blue header that wraps,
    frozen below the header and right of the first column, a filter on every
    column, numbers as numbers with the format :func:`number_format` picks,
    ISO dates as dates, suppressed cells (``*``) aligned with the numbers.
    Returns the sheet names of the tables, in order.
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "about"
    ws["A1"] = _workbook_value(f"NHS value handbook: {front.get('report', 'results')}")
    ws["A1"].font = Font(bold=True, size=14, color=NHS_BLUE)
    row = 3
    wrap = Alignment(wrap_text=True, vertical="top")
    for key, value in front.items():
        if key == "report":
            continue
        ws.cell(row=row, column=1, value=_workbook_value(str(key))).font = Font(bold=True)
        items = (
            [f"{k} = {v!r}" for k, v in value.items()]
            if isinstance(value, Mapping)
            else list(value)
            if isinstance(value, (list, tuple))
            else [value]
        )
        for item in items or ["none"]:
            cell = ws.cell(
                row=row,
                column=2,
                value=_workbook_value(item if isinstance(item, (int, float)) else str(item)),
            )
            cell.alignment = wrap
            row += 1
    row += 1
    ws.cell(row=row, column=1, value="tables").font = Font(bold=True)
    index_row = row
    ws.column_dimensions["A"].width = 18
    ws.column_dimensions["B"].width = 100

    header_fill = PatternFill("solid", fgColor=NHS_BLUE)
    header_font = Font(bold=True, color="FFFFFF")
    header_align = Alignment(wrap_text=True, vertical="center")
    right = Alignment(horizontal="right")
    names = []
    for csv in sorted(tables_dir.glob("*.csv")):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        name = csv.stem[:31]
        sheet = wb.create_sheet(name)
        names.append(csv.stem)
        sheet.append([_workbook_value(c) for c in df.columns])
        for cell in sheet[1]:
            cell.font, cell.fill, cell.alignment = header_font, header_fill, header_align
        columns = []
        for col in df.columns:
            text = df[col].tolist()
            dates = [v for v in text if v not in ("", disclosure.SUPPRESSED)]
            if dates and all(_ISO_DATE.match(v) for v in dates):
                columns.append(
                    [dt.datetime.strptime(v, "%Y-%m-%d") if _ISO_DATE.match(v) else _typed(v) for v in text]
                )
            else:
                columns.append([_typed(v) for v in text])
        for record in zip(*columns) if columns else []:
            sheet.append([_workbook_value(v) for v in record])
        for j, (col, values) in enumerate(zip(df.columns, columns), start=1):
            is_date = any(isinstance(v, dt.datetime) for v in values)
            fmt = DATE if is_date else number_format(str(col), values)
            numeric = is_date or any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            for cell in next(sheet.iter_cols(min_col=j, max_col=j, min_row=2), ()):
                if fmt and isinstance(cell.value, (int, float, dt.datetime)):
                    cell.number_format = fmt
                elif numeric and cell.value == disclosure.SUPPRESSED:
                    cell.alignment = right
            width = max([len(str(col)) * 0.8] + [len(_shown(v)) for v in values[:500]]) + 2
            sheet.column_dimensions[get_column_letter(j)].width = max(8, min(width, 45))
        sheet.row_dimensions[1].height = 30
        sheet.freeze_panes = "B2"
        if len(df.columns):
            sheet.auto_filter.ref = f"A1:{get_column_letter(len(df.columns))}{len(df) + 1}"
        row += 1
        link = ws.cell(row=row, column=2, value=f"{name} ({len(df):,} row{'' if len(df) == 1 else 's'})")
        link.hyperlink = f"#'{name}'!A1"
        link.font = Font(color=NHS_BLUE, underline="single")
    if not names:
        ws.cell(row=index_row, column=2, value="none")
    wb.save(xlsx_path)
    return names


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dt.datetime):
        return "00/00/0000"
    return "" if value is None else str(value)


def _typed(value: str) -> Any:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    if number != number or number in (float("inf"), float("-inf")):
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def write_run_json(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``run.json`` with sorted keys, so equal runs give equal files."""
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
