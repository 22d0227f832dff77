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
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import yaml

from helpers import REPO_ROOT, __version__, disclosure
from helpers.io import InputError, data_dictionary, identifier_columns, load_table, sample_path, table_columns

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
#: The notebook to copy for a new analysis (CONTRIBUTING.md, "A new notebook"); it runs like the others.
TEMPLATE_NOTEBOOK = "template"
CONTRACT_TABLES = tuple(data_dictionary()["tables"])
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class UsageError(Exception):
    """A mistake in the command line: printed without a traceback."""


def available_notebooks() -> dict[str, Path]:
    """Notebooks that ``handbook run`` can run, by name."""
    return {p.stem: p for p in sorted(NOTEBOOKS_DIR.glob("*.ipynb")) if not p.stem.startswith("_")}


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The parameters cell of a notebook: name -> default, type and comment."""
    import papermill as pm

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
        raise UsageError(f"{what} is larger than {MAX_YAML_BYTES // 1024} KB; it should be a short YAML mapping or value.")
    for token in yaml.scan(text):
        if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
            raise UsageError(f"{what} uses YAML anchors or aliases (&name, *name); write the values out instead.")
    return yaml.safe_load(text)


def sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that compute the results."""
    names = ["pandas", "numpy", "scipy", "statsmodels", "matplotlib", "seaborn", "papermill", "duckdb"]
    out = {"helpers": __version__, "python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# --------------------------------------------------------------------------- commands
def cmd_list(_: argparse.Namespace) -> int:
    for name, path in available_notebooks().items():
        print(name + ("  (the template for a new notebook: copy it)" if name == TEMPLATE_NOTEBOOK else ""))
        for key, spec in notebook_parameters(path).items():
            comment = f"  # {spec['help']}" if spec.get("help") else ""
            print(f"    {key} = {spec['default']}{comment}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
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
    from helpers import sources

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
            raise UsageError(f"Notebook {args.notebook!r} takes no input {name!r}; it takes: {', '.join(inputs)}.")
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
        from helpers import pdf

        try:  # before anything runs: a missing browser is a usage problem, not a failed run
            pdf.find_chromium(args.chromium)
        except pdf.ChromiumMissing as exc:
            raise UsageError(str(exc)) from None

    out = Path(args.out).expanduser().resolve()
    files = [p for p in data.values() if isinstance(p, Path)]
    previous_run = check_out_folder(out, [*files, *([Path(args.map)] if args.map else [])], args.force)

    fetched = _fetch_databases(data)
    column_map = params.get("column_map") or {}
    inputs: dict[str, dict[str, Any]] = {}
    identifiers: set[str] = set()
    id_columns = identifier_columns()
    streamed: dict[str, Path | None] = {}  # inputs checked by DuckDB; their identifiers are looked up after the run
    for name in [k[5:] for k in declared if k.startswith("data_")]:
        path = data.get(name)
        if path is None and name in CONTRACT_TABLES and not sample_path(name).is_file():
            continue  # an optional input with no sample (deaths): not given, nothing to check
        if name in CONTRACT_TABLES and params.get("engine", "pandas") != "pandas":
            from helpers import contract

            rows = contract.validate_table(name, path, column_map if path is not None else None, "duckdb")
            streamed[name] = path
        elif name in CONTRACT_TABLES:
            # check every contract input (the sample too) before anything runs; raises InputError
            frame = load_table(name, path, column_map if path is not None else None)
            for col in id_columns & set(frame.columns):
                identifiers.update(frame[col].dropna().astype(str))
            rows: int | None = int(len(frame))
        elif path is not None:
            # a notebook's own input (an indicator or series file, a price list): read through the
            # same checks as the contract tables here; the notebook applies its column rules
            from helpers.io import read_raw

            frame = read_raw(path, name)
            identifiers |= _identifier_values(frame)
            rows = int(len(frame))
        else:
            rows = None
        if path is not None:
            inputs[name] = {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path), "rows": rows}
            if path.suffix.lower() in {".xlsx", ".xlsm"}:
                from helpers.io import excel_sheet

                inputs[name]["sheet"] = excel_sheet(path)  # the active visible sheet, the one read
        if name in fetched:  # recorded by what was read and where, never with a password
            inputs[name] = {"file": f"{fetched[name].what} from {fetched[name].address}", "sha256": sha256(path),
                            "rows": rows}

    started = time.perf_counter()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise UsageError(f"Cannot write in {out.parent}: {exc.strerror or exc}. Choose a folder you can write to.") from None
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the results folder follows the user's umask
    previous_handler = stop_on_sigterm()
    try:
        tables = staging / "tables"
        tables.mkdir()
        run_params = {**params, **{f"data_{k}": str(v) for k, v in data.items()}, "output_dir": str(tables)}
        executed = staging / f"{args.notebook}.ipynb"
        _execute(nb_path, executed, run_params, quiet=args.quiet)
        import nbformat

        from helpers import report

        title = report.notebook_title(nbformat.read(nb_path, as_version=4), args.notebook)
        front = report.front_matter(args.notebook, inputs, params, title)
        report.write_html(executed, staging / "report.html", title=args.notebook, front=front)
        if getattr(args, "pdf", False):
            pdf.write_pdf(staging / "report.html", staging / "report.pdf", args.chromium)
        elapsed = round(time.perf_counter() - started, 1)
        sheets = report.write_workbook(tables, staging / "results.xlsx", front)
        report.write_run_json(
            staging / "run.json",
            {
                "notebook": args.notebook,
                "parameters": params,
                "inputs": inputs,
                "date_window": dates,
                "tables": {s: _count_rows(tables / f"{s}.csv") for s in sheets},
                "exclusions": _read_records(tables / "exclusions.csv"),
                "package_versions": package_versions(),
                "seconds": elapsed,
                "finished": dt.datetime.now().isoformat(timespec="seconds"),
            },
        )
        report.write_figures(executed, staging / "figures")
        if streamed:
            identifiers |= disclosure.identifiers_in_outputs(staging, streamed, column_map or None)
        findings = disclosure.scan_outputs(staging, identifiers)
        if findings:
            raise RuntimeError(
                "Nothing was written: the outputs would contain identifiers.\n  " + "\n  ".join(findings)
            )
        move_into_place(staging, out, previous_run)
    except OSError as exc:
        where = exc.filename or out.parent
        raise RuntimeError(f"Could not write the results ({exc.strerror or exc}: {where}); nothing was written.") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    if not args.quiet:
        print(f"Wrote {out}: report.html, {'report.pdf, ' if getattr(args, 'pdf', False) else ''}results.xlsx, tables/ ({len(sheets)} tables), run.json "
              f"in {elapsed:.0f} s")
    return 0


def set_excel_sheets(sheets: dict[str, str], data: dict[str, Path]) -> None:
    """Name the sheet to read for Excel inputs (``--sheet NAME=SHEET``), for the checks and the notebook's kernel."""
    import json

    from helpers import io

    if not sheets:
        return
    chosen = json.loads(os.environ.get(io.EXCEL_SHEETS_VARIABLE) or "{}")
    for name, sheet in sheets.items():
        if not isinstance(data.get(name), Path) or data[name].suffix.lower() not in {".xlsx", ".xlsm", ".xls"}:
            raise UsageError(f"--sheet {name}={sheet}: there is no Excel input {name!r} (give it with --data {name}=FILE.xlsx).")
        chosen[str(data[name])] = sheet
    os.environ[io.EXCEL_SHEETS_VARIABLE] = json.dumps(chosen)  # the kernel inherits it


def set_date_window(text: str | None) -> str:
    """Set the plausible window for dates (``--dates FROM:TO``) for the checks and the notebook's kernel.

    Returns the window in force, as ``FROM:TO``.
    """
    from helpers import io

    if text:
        first, sep, last = text.partition(":")
        try:
            start, end = dt.date.fromisoformat(first.strip()), dt.date.fromisoformat(last.strip())
        except ValueError:
            start = end = None
        if not sep or start is None or end is None or start >= end:
            raise UsageError(f"--dates expects FROM:TO as two ISO dates, the first earlier, e.g. 1980-01-01:2030-12-31; got {text!r}")
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
            raise UsageError(f"The input {name!r} is given twice (--data {name}=... and --param {key}=...); give it once.")
        from helpers import sources

        value = raw_params.pop(key).strip()
        routed[name] = value if sources.is_url(value) else Path(value).expanduser().resolve()
    return routed


_TYPE_WORDS = {bool: "true or false", int: "a number", float: "a number", str: "text", list: "a list such as [a, b]",
               dict: "a mapping such as {a: b}"}


def checked_parameter_types(params: dict[str, Any], declared: dict[str, dict[str, Any]],
                            raw: dict[str, str]) -> dict[str, Any]:
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


def check_out_folder(out: Path, inputs: Sequence[Path], force: bool) -> dict[str, tuple[int, int]] | None:
    """Check that the run may write ``out``; return what a replaced previous run holds, or ``None``.

    ``out`` must be a new or empty folder, or, with ``--force``, the folder of a
    previous run (it holds ``run.json``) that holds none of this run's inputs.
    Anything else (a file, a folder of other files, the folder of the input,
    ``.`` or ``/``) is refused, so ``--force`` can never delete a user's files.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give the name of a folder for the results.")
    for path in inputs:
        resolved = Path(path).expanduser().resolve()
        if resolved == out or out in resolved.parents:
            raise UsageError(f"--out {out} holds the input {resolved.name}; write the results to another folder.")
    try:
        empty = not out.exists() or not any(out.iterdir())
    except OSError as exc:
        raise UsageError(f"Cannot look inside --out {out}: {exc.strerror or exc}.") from None
    if empty:
        if not os.access(_existing_parent(out.parent), os.W_OK):
            raise UsageError(f"Cannot write in {_existing_parent(out.parent)}: permission denied. Choose a folder you can write to.")
        return None
    if not (out / "run.json").is_file():
        raise UsageError(
            f"{out} already exists and holds files that are not a previous run (no run.json); "
            "handbook only replaces its own results. Choose a new folder."
        )
    if not force:
        raise UsageError(f"{out} holds a previous run; use --force to replace it, or choose a new folder.")
    if not os.access(out.parent, os.W_OK):
        raise UsageError(f"Cannot replace {out}: {out.parent} is not writable.")
    return folder_fingerprint(out)


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def folder_fingerprint(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time, to notice a change."""
    found = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        found[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return found


def move_into_place(staging: Path, out: Path, previous_run: dict[str, tuple[int, int]] | None) -> None:
    """Rename the finished ``staging`` folder to ``out``, atomically.

    A new ``out`` is taken by one rename, which fails if another run (or
    anyone) has written a non-empty ``out`` meanwhile. A previous run is first
    renamed aside and compared with what was checked at the start; if it has
    changed, it is put back and nothing is replaced.
    """
    taken = f"{out} was written by someone else while this run was going; nothing was replaced. Run again with a new --out."
    if previous_run is None:
        try:
            os.rename(staging, out)
        except OSError:
            raise RuntimeError(taken) from None
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced.", dir=out.parent))
    try:
        os.rename(out, aside / "run")
    except OSError:
        aside.rmdir()
        raise RuntimeError(taken) from None
    if folder_fingerprint(aside / "run") != previous_run:
        os.rename(aside / "run", out)
        aside.rmdir()
        raise RuntimeError(taken)
    try:
        os.rename(staging, out)
    except OSError:
        if not out.exists():
            os.rename(aside / "run", out)
        raise RuntimeError(taken) from None
    shutil.rmtree(aside, ignore_errors=True)


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM), handled like Ctrl+C (SIGINT)."""


def stop_on_sigterm() -> Any:
    """Make SIGTERM stop a run the way Ctrl+C does, so the staging folder is removed.

    Returns the previous handler (to restore), or ``None`` outside the main thread.
    """
    import threading

    def handler(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _identifier_values(frame: Any) -> set[str]:
    """Values of the identifier columns (patient or record ids) of a raw input, matched by name."""
    from helpers.io import normalise_name

    wanted = {normalise_name(c) for c in identifier_columns()}
    found: set[str] = set()
    for col in frame.columns:
        if normalise_name(col) in wanted:
            found.update(str(v).strip() for v in frame[col].dropna())
    return found


def _fetch_databases(data: dict[str, Any]) -> dict[str, Any]:
    """Read each database input into a private temporary folder; ``data`` then names the local files."""
    from helpers import sources

    urls = {k: v for k, v in data.items() if isinstance(v, str)}
    if not urls:
        return {}
    import atexit

    folder = Path(tempfile.mkdtemp(prefix="handbook-sql-"))
    atexit.register(shutil.rmtree, folder, True)
    fetched = {}
    for name, url in urls.items():
        fetched[name] = sources.fetch(url, folder, name)
        data[name] = fetched[name].path
    return fetched


def _read_records(csv: Path) -> list[dict[str, str]]:
    """Rows of a (small, suppressed) result table as records, for run.json."""
    if not csv.is_file():
        return []
    import pandas as pd

    return pd.read_csv(csv, dtype=str, keep_default_na=False).to_dict("records")


def _count_rows(csv: Path) -> int:
    with open(csv, encoding="utf-8") as f:
        return max(sum(1 for _ in f) - 1, 0)


def _read_map(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise UsageError(f"Cannot find the column map {path}")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise UsageError(f"The column map {path} is larger than {MAX_YAML_BYTES // 1024} KB; it should be a short YAML mapping.")
    try:
        mapping = safe_yaml(path.read_text(encoding="utf-8"), f"The column map {path}") or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the column map {path} as YAML: {exc}") from None
    if not isinstance(mapping, dict):
        raise UsageError(f"{path} should map your column names to contract names (YOUR_NAME: contract_name).")
    return {str(k): str(v) for k, v in mapping.items() if v}


def kernel_arguments(arguments: Sequence[str], quiet: bool) -> list[str]:
    """The kernel's arguments; with ``--quiet`` its log keeps to CRITICAL.

    jupyter_client interrupts (SIGINT) every kernel it shuts down, and
    ipykernel logs "KeyboardInterrupt caught in kernel" at ERROR level when the
    interrupt lands while it is busy, after a run that went well.
    """
    if not quiet:
        return list(arguments)
    return [a for a in arguments if not a.startswith("--IPKernelApp.log_level")] + ["--IPKernelApp.log_level=CRITICAL"]


def _execute(nb_path: Path, executed: Path, params: dict[str, Any], quiet: bool) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from helpers import report

    try:
        pm.execute_notebook(
            str(nb_path),
            str(executed),
            parameters=params,
            cwd=str(nb_path.parent),
            progress_bar=not quiet,
            kernel_name="python3",
            log_output=False,
            extra_arguments=kernel_arguments(report.KERNEL_ARGUMENTS, quiet),  # figures as PNG and SVG
        )
    except PapermillExecutionError as exc:
        if exc.ename == "InputError":
            raise InputError(str(exc.evalue)) from None
        raise RuntimeError(f"The notebook stopped with {exc.ename}: {exc.evalue}") from None


def cmd_simulate(args: argparse.Namespace) -> int:
    from helpers import simulate

    out = Path(args.out)
    if args.spells_only:
        fmt = args.format or "parquet"
        path = out if out.suffix else out / f"spells.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        simulate.write_spells_file(path, n_spells=args.spells, seed=args.seed, fmt=fmt)
        print(f"Wrote {args.spells:,} spells to {path}")
    else:
        simulate.write_sample(out, seed=args.seed, n_spells=args.spells, step_down=args.step_down,
                              fmt=args.format or "csv")
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
    p_run.add_argument("--data", action="append", metavar="NAME=PATH", help="an input file (spells, virtual_ward, outcomes, indicator, series), or a database: NAME=postgresql://user@host/db?table=schema.table")
    p_run.add_argument("--param", action="append", metavar="KEY=VALUE", help="a notebook parameter")
    p_run.add_argument("--map", metavar="FILE", help="YAML file mapping your column names to the contract's")
    p_run.add_argument("--out", required=True, metavar="DIR", help="folder to write (must not exist unless --force)")
    p_run.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p_run.add_argument("--quiet", action="store_true", help="no progress bar")
    p_run.add_argument("--pdf", action="store_true", help="also write report.pdf (A4, for board packs) with headless Chromium")
    p_run.add_argument("--chromium", metavar="PATH", help="the Chromium browser for --pdf (default: chromium on the PATH)")
    p_run.add_argument("--sheet", action="append", metavar="NAME=SHEET",
                       help="the sheet to read from an Excel input (default: the active visible sheet)")
    p_run.add_argument("--dates", metavar="FROM:TO",
                       help="plausible dates in the inputs (default 1990-01-01 to tomorrow); others are errors")
    p_run.add_argument("--engine", choices=["pandas", "duckdb", "spark"],
                       help="what reads the spells: pandas (default), duckdb (large files), spark (a cluster)")
    p_run.set_defaults(func=cmd_run)

    p_tpl = sub.add_parser("template", help="write a commented column-map file to fill in")
    p_tpl.add_argument("table", nargs="?", default="spells", choices=list(CONTRACT_TABLES))
    p_tpl.add_argument("--out", help="file to write (default: print)")
    p_tpl.add_argument("--force", action="store_true")
    p_tpl.set_defaults(func=cmd_template)

    p_sim = sub.add_parser("simulate", help="write simulated data (the sample, or a national-size spells file)")
    p_sim.add_argument("--out", required=True, help="folder (or file with --spells-only)")
    p_sim.add_argument("--spells", type=int, default=50_000, help="number of spells")
    p_sim.add_argument("--seed", type=int, default=2026)
    p_sim.add_argument("--spells-only", action="store_true", help="write only a spells file, fast, for scale tests")
    p_sim.add_argument("--format", choices=["csv", "parquet"], default=None,
                       help="file format (default: parquet with --spells-only, csv for the economy, as the sample)")
    p_sim.add_argument("--step-down", choices=["admission", "mid_stay"], default="admission",
                       help="when step-down is decided: at admission (the sample) or on hospital day 2 to 4")
    p_sim.set_defaults(func=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        from helpers import sources

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
