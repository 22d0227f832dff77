"""Handing result tables from a notebook to a run, and writing the run's files.

A notebook calls :func:`publish` for each result table. ``handbook run`` then
turns the executed notebook and its tables into the files a user can send:
``report.html`` (code hidden, figures embedded), ``results.xlsx`` (a front sheet
and one sheet a table), ``tables/NAME.csv`` and ``run.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from helpers import disclosure
from helpers.io import identifier_columns

TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def publish(
    table: pd.DataFrame,
    name: str,
    output_dir: str | Path | None = None,
    counts: Iterable[str] | None = None,
    derived: Mapping[str, Iterable[str]] | None = None,
    threshold: int = disclosure.DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """Apply disclosure control to a result table, write it if asked, return it.

    Writes ``output_dir/NAME.csv`` when ``output_dir`` is set (``handbook run``
    sets it). Refuses a table with a patient or record identifier column:
    result tables are aggregates. ``counts``/``derived``/``threshold`` are
    passed to :func:`helpers.disclosure.suppress`; ``threshold=0`` turns
    suppression off (for national statistics already published).
    """
    if not TABLE_NAME.match(name):
        raise ValueError(f"Table name {name!r} must be lower_snake_case, at most 31 characters (an Excel sheet name).")
    ids = sorted(set(map(str, table.columns)) & identifier_columns())
    if ids:
        raise ValueError(
            f"Table {name!r} has identifier column(s) {', '.join(ids)}: result tables must be aggregates."
        )
    safe, _ = disclosure.suppress(table, counts=counts, derived=derived, threshold=threshold)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        safe.to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
    return safe


def write_html(notebook_path: Path, html_path: Path, title: str) -> None:
    """Write a self-contained HTML report of an executed notebook, code hidden."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_path, as_version=4)
    # the injected parameters cell and the parameters cell are code: hide their outputs too
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "code" and tags & {"parameters", "injected-parameters", "remove-output", "remove-cell"}:
            cell.outputs = []
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.embed_images = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    html_path.write_text(body, encoding="utf-8")


def write_figures(notebook_path: Path, folder: Path) -> list[Path]:
    """Save every figure of an executed notebook as ``figure_NN.png``."""
    import base64

    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    written = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"figure_{len(written) + 1:02d}.png"
                path.write_bytes(base64.b64decode(png))
                written.append(path)
    return written


def write_workbook(tables_dir: Path, xlsx_path: Path, front: Mapping[str, Any]) -> list[str]:
    """Write ``results.xlsx``: a front sheet, then one formatted sheet a table."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = "about"
    ws["A1"] = "NHS value handbook: results"
    ws["A1"].font = Font(bold=True, size=14)
    row = 3
    for key, value in front.items():
        ws.cell(row=row, column=1, value=str(key)).font = Font(bold=True)
        ws.cell(row=row, column=2, value=value if isinstance(value, (int, float)) else str(value))
        row += 1
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 90
    header_fill = PatternFill("solid", fgColor="005EB8")
    names = []
    for csv in sorted(tables_dir.glob("*.csv")):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        sheet = wb.create_sheet(csv.stem[:31])
        names.append(csv.stem)
        sheet.append(list(df.columns))
        for cell in sheet[1]:
            cell.font = Font(bold=True, color="FFFFFF")
            cell.fill = header_fill
        for record in df.itertuples(index=False):
            sheet.append([_typed(v) for v in record])
        for j, col in enumerate(df.columns, start=1):
            width = max([len(str(col))] + [len(str(v)) for v in df[col].head(200)]) + 2
            sheet.column_dimensions[get_column_letter(j)].width = min(width, 40)
            fmt = _number_format(str(col))
            if fmt:
                for cell in sheet.iter_cols(min_col=j, max_col=j, min_row=2):
                    for c in cell:
                        if isinstance(c.value, (int, float)):
                            c.number_format = fmt
        sheet.freeze_panes = "B2"
    wb.save(xlsx_path)
    return names


def _typed(value: str) -> Any:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def _number_format(column: str) -> str | None:
    name = column.lower()
    if "gbp" in name or name.endswith("_cost") or name.startswith("cost"):
        return '"£"#,##0'
    if name.endswith("_pct") or name.endswith("_percent"):
        return "0.0"
    if name.endswith(("_rate", "_proportion")):
        return "0.0%"
    return None


def write_run_json(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``run.json`` with sorted keys, so equal runs give equal files."""
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
