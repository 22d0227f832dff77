"""The ``handbook`` command: rerun a notebook on local data, list notebooks, simulate data.

Usage::

    handbook list
    handbook run NOTEBOOK [--data NAME=PATH ...] [--param KEY=VALUE ...] --out DIR [--force] [--quiet] [--pdf [--chromium PATH]]
    handbook simulate --out DIR [--spells N] [--seed S] [--format csv|parquet]
    handbook template [TABLE] [--out FILE]

``run`` checks every input against the data contract before anything runs,
executes the notebook with papermill in a staging folder, and only when all is
well moves the results into ``DIR``: the executed notebook, ``report.html``
(code hidden; with ``--pdf`` also ``report.pdf``), ``tables/*.csv``, ``results.xlsx`` and ``run.json``. Bad input
prints the loader's message and exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import difflib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

import papermill as pm
import yaml

from helpers import REPO_ROOT, io, pdf, run, simulate, sources
from helpers.io import InputError, data_dictionary, table_columns
from helpers.run import Stopped, UsageError

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
#: The notebook to copy for a new analysis (CONTRIBUTING.md, "A new notebook"); it runs like the others.
TEMPLATE_NOTEBOOK = "template"
CONTRACT_TABLES = tuple(data_dictionary()["tables"])
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def available_notebooks() -> dict[str, Path]:
    """Notebooks that ``handbook run`` can run, by name."""
    return {p.stem: p for p in sorted(NOTEBOOKS_DIR.glob("*.ipynb")) if not p.stem.startswith("_")}


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The parameters cell of a notebook: name -> default, type and comment."""
    return pm.inspect_notebook(str(path))


def parse_assignments(items: Sequence[str] | None, what: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` pairs from the command line."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"{what} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def parse_value(text: str) -> Any:
    """A parameter value from the command line: a YAML literal (number, list, true ...) or text."""
    try:
        return safe_yaml(text, "--param")
    except yaml.YAMLError:
        return text


#: A column map or parameter bigger than this is not a column map or parameter.
MAX_YAML_BYTES = 1 << 20


def safe_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load`` without anchors and aliases (``&a``, ``*a``).

    A few aliases of aliases expand to billions of items (the "billion laughs"
    attack); a column map or a parameter never needs them, so they are refused.
    """
    if len(text.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise UsageError(
            f"{what} is larger than {MAX_YAML_BYTES // 1024} KB; it should be a short YAML mapping or value."
        )
    for token in yaml.scan(text):
        if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
            raise UsageError(
                f"{what} uses YAML anchors or aliases (&name, *name); write the values out instead."
            )
    return yaml.safe_load(text)


#: Runs a notebook; replaced in tests by a stand-in that copies an executed notebook.
_execute = run.execute_notebook


# --------------------------------------------------------------------------- commands
def cmd_list(_: argparse.Namespace) -> int:
    for name, path in available_notebooks().items():
        print(name + ("  (the template for a new notebook: copy it)" if name == TEMPLATE_NOTEBOOK else ""))
        for key, spec in notebook_parameters(path).items():
            comment = f"  # {spec['help']}" if spec.get("help") else ""
            print(f"    {key} = {spec['default']}{comment}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    request = run_request(args)
    result = run.run_notebook(request, execute=_execute)
    if not args.quiet:
        print(
            f"Wrote {result.out}: report.html, {'report.pdf, ' if request.pdf else ''}results.xlsx, tables/ "
            f"({len(result.sheets)} tables), run.json in {result.seconds:.0f} s (engine: {result.engine})"
        )
    return 0


def run_request(args: argparse.Namespace) -> run.RunRequest:
    """The command line of ``handbook run`` checked against the notebook's parameters; raises :class:`UsageError`."""
    notebooks = available_notebooks()
    if args.notebook not in notebooks:
        hint = difflib.get_close_matches(args.notebook, list(notebooks), n=1)
        raise UsageError(
            f"No notebook called {args.notebook!r}."
            + (f" Did you mean {hint[0]!r}?" if hint else "")
            + f" Available: {', '.join(notebooks)}."
        )
    nb_path = notebooks[args.notebook]
    declared = notebook_parameters(nb_path)

    given = parse_assignments(args.data, "--data")  # a file, or a database address (helpers.sources)
    data = {k: v if sources.is_url(v) else Path(v).expanduser().resolve() for k, v in given.items()}
    raw_params = parse_assignments(args.param, "--param")
    data |= data_parameters(raw_params, data)
    params = {k: parse_value(v) for k, v in raw_params.items()}
    if args.map:
        params["column_map"] = _read_map(Path(args.map))
    if getattr(args, "engine", None):
        params["engine"] = args.engine  # checked below like any parameter: the notebook must declare it

    for name in data:
        if f"data_{name}" not in declared:
            inputs = [k[5:] for k in declared if k.startswith("data_")]
            raise UsageError(
                f"Notebook {args.notebook!r} takes no input {name!r}; it takes: {', '.join(inputs)}."
            )
    for key in params:
        if key not in declared:
            hint = difflib.get_close_matches(key, list(declared), n=1)
            raise UsageError(
                f"Notebook {args.notebook!r} has no parameter {key!r}."
                + (f" Did you mean {hint[0]!r}?" if hint else "")
                + " `handbook list` shows the parameters."
            )
    params = checked_parameter_types(params, declared, raw_params)
    dates = set_date_window(getattr(args, "dates", None))
    set_excel_sheets(parse_assignments(getattr(args, "sheet", None), "--sheet"), data)

    if getattr(args, "pdf", False):
        try:  # before anything runs: a missing browser is a usage problem, not a failed run
            pdf.find_chromium(args.chromium)
        except pdf.ChromiumMissing as exc:
            raise UsageError(str(exc)) from None

    return run.RunRequest(
        notebook=args.notebook,
        notebook_path=nb_path,
        declared=declared,
        data=data,
        params=params,
        out=Path(args.out).expanduser().resolve(),
        engine=notebook_engine(params, declared),
        force=args.force,
        quiet=args.quiet,
        pdf=getattr(args, "pdf", False),
        chromium=getattr(args, "chromium", None),
        column_map_file=Path(args.map) if args.map else None,
        date_window=dates,
        contract_tables=CONTRACT_TABLES,
    )


def notebook_engine(params: dict[str, Any], declared: dict[str, dict[str, Any]]) -> str | None:
    """The engine the notebook will read its spells with: the one given, else its default; None if it has no choice."""
    if "engine" in params:
        return str(params["engine"])
    if "engine" not in declared:
        return None
    try:
        return str(ast.literal_eval(str(declared["engine"]["default"])))
    except (ValueError, SyntaxError):
        return run.DEFAULT_ENGINE


def set_excel_sheets(sheets: dict[str, str], data: dict[str, Path]) -> None:
    """Name the sheet to read for Excel inputs (``--sheet NAME=SHEET``), for the checks and the notebook's kernel."""
    if not sheets:
        return
    chosen = json.loads(os.environ.get(io.EXCEL_SHEETS_VARIABLE) or "{}")
    for name, sheet in sheets.items():
        if not isinstance(data.get(name), Path) or data[name].suffix.lower() not in {
            ".xlsx",
            ".xlsm",
            ".xls",
        }:
            raise UsageError(
                f"--sheet {name}={sheet}: there is no Excel input {name!r} (give it with --data {name}=FILE.xlsx)."
            )
        chosen[str(data[name])] = sheet
    os.environ[io.EXCEL_SHEETS_VARIABLE] = json.dumps(chosen)  # the kernel inherits it


def set_date_window(text: str | None) -> str:
    """Set the plausible window for dates (``--dates FROM:TO``) for the checks and the notebook's kernel.

    Returns the window in force, as ``FROM:TO``.
    """
    if text:
        first, sep, last = text.partition(":")
        try:
            start, end = dt.date.fromisoformat(first.strip()), dt.date.fromisoformat(last.strip())
        except ValueError:
            start = end = None
        if not sep or start is None or end is None or start >= end:
            raise UsageError(
                f"--dates expects FROM:TO as two ISO dates, the first earlier, e.g. 1980-01-01:2030-12-31; got {text!r}"
            )
        os.environ[io.DATE_WINDOW_VARIABLE] = f"{start}:{end}"  # the kernel inherits it
    first, last = io.date_window()
    return f"{first:%Y-%m-%d}:{last:%Y-%m-%d}"


def data_parameters(raw_params: dict[str, str], data: dict[str, Any]) -> dict[str, Any]:
    """Take ``--param data_NAME=FILE`` out of the parameters: it is ``--data NAME=FILE``.

    Every input then goes through the same checks, hashing and identifier
    scan, and is recorded in ``run.json``. ``data_NAME=None`` (the sample) stays
    a parameter. Refuses the same input given both ways.
    """
    routed: dict[str, Path] = {}
    for key in [k for k in raw_params if k.startswith("data_")]:
        if raw_params[key].strip() in {"None", "null", "~", ""}:
            del raw_params[key]
            continue
        name = key.removeprefix("data_")
        if name in data:
            raise UsageError(
                f"The input {name!r} is given twice (--data {name}=... and --param {key}=...); give it once."
            )

        value = raw_params.pop(key).strip()
        routed[name] = value if sources.is_url(value) else Path(value).expanduser().resolve()
    return routed


_TYPE_WORDS = {
    bool: "true or false",
    int: "a number",
    float: "a number",
    str: "text",
    list: "a list such as [a, b]",
    dict: "a mapping such as {a: b}",
}


def checked_parameter_types(
    params: dict[str, Any], declared: dict[str, dict[str, Any]], raw: dict[str, str]
) -> dict[str, Any]:
    """Check each ``--param`` against the type of the notebook's default, before anything runs.

    ``None`` is always accepted (the notebook's "not set"), and so is anything
    for a parameter whose default is ``None``. A number accepts any number, a
    list a list or a mapping (per-group values), text any text: a number or
    date given for a text parameter is kept as the text typed. Returns the
    parameters, with those texts restored; raises :class:`UsageError`.
    """
    checked = dict(params)
    for key, value in params.items():
        try:
            default = ast.literal_eval(str(declared[key]["default"]))
        except (ValueError, SyntaxError, KeyError):
            continue
        if default is None or value is None:
            continue
        kind = type(default)
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind in (int, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind is str:
            ok = isinstance(value, (str, list))
            if not ok and not isinstance(value, dict) and key in raw:
                checked[key], ok = raw[key], True
        elif kind in (list, tuple):
            ok = isinstance(value, (list, dict))
        elif kind is dict:
            ok = isinstance(value, dict)
        else:
            ok = True
        if not ok:
            raise UsageError(
                f"--param {key}={raw.get(key, value)}: expected {_TYPE_WORDS.get(kind, kind.__name__)}, "
                f"like the notebook's default {declared[key]['default']}. `handbook list` shows the parameters."
            )
    return checked


def _read_map(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise UsageError(f"Cannot find the column map {path}")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise UsageError(
            f"The column map {path} is larger than {MAX_YAML_BYTES // 1024} KB; it should be a short YAML mapping."
        )
    try:
        mapping = safe_yaml(path.read_text(encoding="utf-8"), f"The column map {path}") or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the column map {path} as YAML: {exc}") from None
    if not isinstance(mapping, dict):
        raise UsageError(f"{path} should map your column names to contract names (YOUR_NAME: contract_name).")
    return {str(k): str(v) for k, v in mapping.items() if v}


def cmd_simulate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.spells_only:
        fmt = args.format or "parquet"
        path = out if out.suffix else out / f"spells.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        simulate.write_spells_file(path, n_spells=args.spells, seed=args.seed, fmt=fmt)
        print(f"Wrote {args.spells:,} spells to {path}")
    else:
        simulate.write_sample(
            out, seed=args.seed, n_spells=args.spells, step_down=args.step_down, fmt=args.format or "csv"
        )
        print(f"Wrote the simulated economy ({args.spells:,} spells) to {out}")
    return 0


def mapping_template(table: str) -> str:
    """A commented YAML column map for one contract table, to fill in."""
    lines = [
        f"# Column map for the '{table}' table of the NHS value handbook.",
        "# Write YOUR column name on the left of each contract name you need to map,",
        "# e.g.  Admission Date: admission_date",
        "# Columns already named as the contract or by their usual HES/SUS name",
        "# (shown in brackets) need no line. Use with: handbook run ... --map THIS_FILE",
        "",
    ]
    for name, spec in table_columns(table).items():
        need = "required" if spec.get("required") else "optional"
        aliases = ", ".join(spec.get("aliases", []))
        lines.append(f"# {name} ({need}; {spec['type']}; also recognised: {aliases}): {spec['description']}")
        lines.append(f"# YOUR_{name.upper()}: {name}")
    return "\n".join(lines) + "\n"


def cmd_template(args: argparse.Namespace) -> int:
    text = mapping_template(args.table)
    if args.out:
        path = Path(args.out)
        if path.exists() and not args.force:
            raise UsageError(f"{path} exists; use --force to replace it.")
        path.write_text(text, encoding="utf-8")
        print(f"Wrote {path}")
    else:
        print(text, end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handbook", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="show the notebooks and their parameters")
    p_list.set_defaults(func=cmd_list)

    p_run = sub.add_parser("run", help="run a notebook on your data and write a report folder")
    p_run.add_argument("notebook", help="notebook name, e.g. variation")
    p_run.add_argument(
        "--data",
        action="append",
        metavar="NAME=PATH",
        help="an input file (spells, virtual_ward, outcomes, indicator, series), or a database: NAME=postgresql://user@host/db?table=schema.table",
    )
    p_run.add_argument("--param", action="append", metavar="KEY=VALUE", help="a notebook parameter")
    p_run.add_argument("--map", metavar="FILE", help="YAML file mapping your column names to the contract's")
    p_run.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write (must not exist unless --force)"
    )
    p_run.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p_run.add_argument("--quiet", action="store_true", help="no progress bar")
    p_run.add_argument(
        "--pdf",
        action="store_true",
        help="also write report.pdf (A4, for board packs) with headless Chromium",
    )
    p_run.add_argument(
        "--chromium", metavar="PATH", help="the Chromium browser for --pdf (default: chromium on the PATH)"
    )
    p_run.add_argument(
        "--sheet",
        action="append",
        metavar="NAME=SHEET",
        help="the sheet to read from an Excel input (default: the active visible sheet)",
    )
    p_run.add_argument(
        "--dates",
        metavar="FROM:TO",
        help="plausible dates in the inputs (default 1990-01-01 to tomorrow); others are errors",
    )
    p_run.add_argument(
        "--engine",
        choices=["pandas", "duckdb", "spark"],
        help="what reads the spells: duckdb (the default, any size on one machine), spark (a cluster), "
        "pandas (small extracts)",
    )
    p_run.set_defaults(func=cmd_run)

    p_tpl = sub.add_parser("template", help="write a commented column-map file to fill in")
    p_tpl.add_argument("table", nargs="?", default="spells", choices=list(CONTRACT_TABLES))
    p_tpl.add_argument("--out", help="file to write (default: print)")
    p_tpl.add_argument("--force", action="store_true")
    p_tpl.set_defaults(func=cmd_template)

    p_sim = sub.add_parser(
        "simulate", help="write simulated data (the sample, or a national-size spells file)"
    )
    p_sim.add_argument("--out", required=True, help="folder (or file with --spells-only)")
    p_sim.add_argument("--spells", type=int, default=50_000, help="number of spells")
    p_sim.add_argument("--seed", type=int, default=2026)
    p_sim.add_argument(
        "--spells-only", action="store_true", help="write only a spells file, fast, for scale tests"
    )
    p_sim.add_argument(
        "--format",
        choices=["csv", "parquet"],
        default=None,
        help="file format (default: parquet with --spells-only, csv for the economy, as the sample)",
    )
    p_sim.add_argument(
        "--step-down",
        choices=["admission", "mid_stay"],
        default="admission",
        help="when step-down is decided: at admission (the sample) or on hospital day 2 to 4",
    )
    p_sim.set_defaults(func=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(sources.reword(str(exc)), file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"handbook: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as exc:
        print(f"handbook: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        how = "SIGTERM" if isinstance(exc, Stopped) else "Ctrl+C"
        print(f"handbook: stopped ({how}); nothing was written.", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Stopped) else signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
