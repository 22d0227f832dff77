"""``handbook run`` as named steps: check the inputs once, run the notebook in a staging folder, write, scan, move.

The command line (:mod:`helpers.cli`) turns its arguments into a
:class:`RunRequest`; :func:`run_notebook` then takes these steps, each a
function here with an explicit result:

1. :func:`check_out_folder`: may the run write ``--out``? (``--force`` only
   ever replaces a previous run, never a folder of the user's files);
2. :func:`check_inputs`: every input is read once, checked against the data
   contract and hashed, giving one :class:`CheckedInput` each. A bad input
   raises :class:`helpers.io.InputError` before anything is written. A
   contract table is checked by DuckDB unless the notebook reads it with
   pandas, and its typed columns kept in a private Parquet file (deleted at
   the end), which the notebook's kernel reads instead of checking the input
   again (:func:`checked_tables_for_kernel`) and the scan in step 5 looks up
   identifiers in;
3. :func:`make_staging`, then the notebook runs there (papermill);
4. :func:`write_outputs`: report.html (and report.pdf), results.xlsx,
   run.json (which says which engine read the inputs), the figures;
5. :func:`scan_for_identifiers`: the words of the (small) outputs are looked
   up among the inputs' identifier values (DuckDB for the kept tables), then
   :func:`helpers.disclosure.scan_outputs` looks for them and for valid NHS
   numbers. Inputs are never read again;
6. :func:`move_into_place`: the staging folder becomes ``--out`` in one rename.

SIGTERM stops a run as Ctrl+C does (:func:`stop_on_sigterm`); the staging
folder and the kept tables are removed whatever happens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import duckdb
import nbformat
import pandas as pd
import papermill as pm
import pyarrow as pa
from papermill.exceptions import PapermillExecutionError

from helpers import __version__, contract, disclosure, io, pdf, report, sources
from helpers.engine import literal, quote

#: The engine ``handbook run`` and the notebooks read spells with when none is asked for.
DEFAULT_ENGINE = "duckdb"
#: Engines whose contract inputs the command checks with DuckDB (Spark's are checked on this machine too).
SQL_ENGINES = ("duckdb", "spark")


class UsageError(Exception):
    """A mistake in the command line: printed without a traceback."""


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM), handled like Ctrl+C (SIGINT)."""


# --------------------------------------------------------------------------- result objects
@dataclass(frozen=True)
class RunRequest:
    """What the command line asked for, parsed and checked by :mod:`helpers.cli`.

    ``data``: input name -> local file or database address; ``params``: the
    notebook parameters given (not the defaults); ``engine``: what the
    notebook reads its spells with (the ``engine`` given, else the notebook's
    default; ``None`` for a notebook without that parameter, which reads with pandas).
    """

    notebook: str
    notebook_path: Path
    declared: Mapping[str, Mapping[str, Any]]
    data: Mapping[str, Path | str]
    params: Mapping[str, Any]
    out: Path
    engine: str | None = None
    force: bool = False
    quiet: bool = False
    pdf: bool = False
    chromium: str | None = None
    column_map_file: Path | None = None
    date_window: str = ""
    contract_tables: tuple[str, ...] = ()

    @property
    def column_map(self) -> dict[str, str]:
        return dict(self.params.get("column_map") or {})

    @property
    def input_names(self) -> list[str]:
        """The inputs the notebook declares (``data_NAME`` parameters), in its order."""
        return [k.removeprefix("data_") for k in self.declared if k.startswith("data_")]


@dataclass(frozen=True)
class CheckedInput:
    """One input, read once, checked and hashed: what run.json, the report and the scan need.

    ``checked_by``: ``"duckdb"`` or ``"pandas"`` (a contract table), or
    ``"reader"`` (a notebook's own input, read as text by
    :func:`helpers.io.read_raw`). Identifier values: ``identifier_values``
    (a small input) or ``identifier_file`` (a Parquet file holding them in
    its ``identifier_columns``: the checked table kept for an input checked by DuckDB).
    """

    name: str
    path: Path
    file: str
    sha256: str
    rows: int | None
    checked_by: str
    bytes: int | None = None
    sheet: str | int | None = None
    columns_mapped: Mapping[str, str] = field(default_factory=dict)
    columns_ignored: Sequence[str] = ()
    identifier_values: frozenset[str] = frozenset()
    identifier_file: Path | None = None
    identifier_columns: Sequence[str] = ()

    def record(self) -> dict[str, Any]:
        """The input as run.json and the report's front matter list it."""
        out: dict[str, Any] = {"file": self.file}
        if self.bytes is not None:
            out["bytes"] = self.bytes
        out |= {"sha256": self.sha256, "rows": self.rows, "checked_by": self.checked_by}
        if self.sheet is not None:
            out["sheet"] = self.sheet
        if self.columns_mapped:
            out["columns_mapped"] = dict(self.columns_mapped)
        if self.columns_ignored:
            out["columns_ignored"] = list(self.columns_ignored)
        return out


@dataclass(frozen=True)
class RunResult:
    """A finished run: where it was written, its tables (workbook sheets) and the seconds it took."""

    out: Path
    sheets: list[str]
    seconds: float
    engine: str


# --------------------------------------------------------------------------- small steps
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


def checking_engine(table: str, request: RunRequest) -> str:
    """What checks a contract input: DuckDB, unless the notebook reads its inputs with pandas."""
    return "duckdb" if request.engine in SQL_ENGINES else "pandas"


def check_contract_table(
    name: str,
    path: Path | None,
    column_map: Mapping[str, str] | None,
    engine: str,
    keep: Path,
) -> tuple[int, dict[str, str], list[str], frozenset[str], Path | None, tuple[str, ...]]:
    """Check one contract table (``path=None``: the sample); raise :class:`helpers.io.InputError`.

    Returns rows, columns mapped (yours -> contract), columns ignored, and the
    identifier values: in memory (pandas), or, checked by DuckDB, the file
    that holds them and its identifier columns. DuckDB keeps the typed table
    as a Parquet file in the private folder ``keep``, for the notebook's
    kernel (:func:`helpers.contract.open_table`, which then does not read and
    check the input again) and for the output scan.
    """
    id_columns = io.identifier_columns()
    if engine == "pandas":
        loaded = io.load_input(name, path, column_map)  # the table, and what helpers.io read
        frame, summary = loaded.frame, loaded.summary
        values: set[str] = set()
        for col in id_columns & set(frame.columns):
            values.update(frame[col].dropna().astype(str))
        mapped = {str(k).strip(): v for k, v in summary.columns_mapped.items() if str(k).strip() != v}
        return int(len(frame)), mapped, list(summary.columns_ignored), frozenset(values), None, ()
    src = contract.open_table(name, path, column_map, "duckdb", keep_in=keep)
    src.backend.close()
    ids = tuple(c for c in src.present if c in id_columns)
    kept = src.kept if ids else None
    return int(src.rows), src.columns_mapped(), src.columns_ignored(), frozenset(), kept, ids


def identifier_values_of_frame(frame: Any) -> set[str]:
    """Values of the identifier columns (patient or record ids) of a raw input, matched by name."""
    wanted = {io.normalise_name(c) for c in io.identifier_columns()}
    found: set[str] = set()
    for col in frame.columns:
        if io.normalise_name(col) in wanted:
            found.update(str(v).strip() for v in frame[col].dropna())
    return found


def check_input(
    name: str,
    path: Path | None,
    request: RunRequest,
    keep: Path,
    fetched: Any | None = None,
) -> CheckedInput | None:
    """Read, check and hash one input, once. ``None``: an optional input that was not given."""
    column_map = request.column_map or None
    if name in request.contract_tables:
        if path is None and not io.sample_path(name).is_file():
            return None  # an optional input with no sample (deaths): not given, nothing to check
        engine = checking_engine(name, request)
        # the sample too is checked before anything runs, but it is not recorded as an input
        rows, mapped, ignored, values, kept, ids = check_contract_table(
            name, path, column_map if path is not None else None, engine, keep
        )
        checked_by = engine
    elif path is not None:
        # a notebook's own input (an indicator or series file, a price list): read through the
        # same checks as the contract tables; the notebook applies its column rules
        frame = io.read_raw(path, name)
        rows, mapped, ignored, kept, ids = int(len(frame)), {}, [], None, ()
        values = frozenset(identifier_values_of_frame(frame))
        checked_by = "reader"
    else:
        return None
    if path is None:
        return None
    sheet = None
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        sheet = io.excel_sheet(path)  # the active visible sheet, the one read
    if fetched is not None:  # recorded by what was read and where, never with a password
        file, size = f"{fetched.what} from {fetched.address}", None
    else:
        file, size = path.name, path.stat().st_size
    return CheckedInput(
        name, path, file, sha256(path), rows, checked_by, size, sheet, mapped, ignored, values, kept, ids
    )


def check_inputs(
    request: RunRequest,
    data: Mapping[str, Path],
    fetched: Mapping[str, Any],
    keep: Path,
) -> dict[str, CheckedInput]:
    """:func:`check_input` for every input the notebook declares; the sample inputs are checked, not recorded."""
    checked = {}
    for name in request.input_names:
        one = check_input(name, data.get(name), request, keep, fetched.get(name))
        if one is not None:
            checked[name] = one
    return checked


def fetch_databases(data: Mapping[str, Path | str], folder: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """Read each database input into ``folder`` (private); return every input as a local file, and what was fetched."""
    local: dict[str, Path] = {}
    fetched: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, str):
            fetched[name] = sources.fetch(value, folder, name)
            local[name] = fetched[name].path
        else:
            local[name] = value
    return local, fetched


def make_staging(out: Path) -> Path:
    """A new hidden folder beside ``out``, with the user's usual permissions, where the run writes."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise UsageError(
            f"Cannot write in {out.parent}: {exc.strerror or exc}. Choose a folder you can write to."
        ) from None
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the results folder follows the user's umask
    return staging


def run_engine(request: RunRequest) -> str:
    """The engine that read the spells, as the report says it."""
    return request.engine or "pandas"


def write_outputs(
    request: RunRequest, checked: Mapping[str, CheckedInput], staging: Path, executed: Path, started: float
) -> tuple[list[str], float]:
    """report.html (and report.pdf), results.xlsx, run.json and the figures; returns the sheets and the seconds."""
    tables = staging / "tables"
    inputs = {name: c.record() for name, c in checked.items()}
    title = report.notebook_title(nbformat.read(request.notebook_path, as_version=4), request.notebook)
    front = report.front_matter(request.notebook, inputs, request.params, title)
    front["engine"] = run_engine(request)
    report.write_html(executed, staging / "report.html", title=request.notebook, front=front)
    if request.pdf:
        pdf.write_pdf(staging / "report.html", staging / "report.pdf", request.chromium)
    elapsed = round(time.perf_counter() - started, 1)
    sheets = report.write_workbook(tables, staging / "results.xlsx", front)
    report.write_run_json(
        staging / "run.json",
        {
            "notebook": request.notebook,
            "engine": run_engine(request),
            "parameters": dict(request.params),
            "inputs": inputs,
            "date_window": request.date_window,
            "tables": {s: _count_rows(tables / f"{s}.csv") for s in sheets},
            "exclusions": _read_records(tables / "exclusions.csv"),
            "package_versions": package_versions(),
            "seconds": elapsed,
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
        },
    )
    report.write_figures(executed, staging / "figures")
    return sheets, elapsed


def identifiers_in_outputs(folder: Path, checked: Mapping[str, CheckedInput]) -> set[str]:
    """The inputs' identifier values that appear among the words and values of the outputs in ``folder``.

    The outputs are small: their candidates (:func:`helpers.disclosure.identifier_candidates`)
    are looked up in the values kept while checking, by DuckDB for those kept in a file,
    so only the matches come back and no input is read again.
    """
    candidates = disclosure.identifier_candidates(folder)
    if not candidates:
        return set()
    found: set[str] = set()
    kept = []
    for c in checked.values():
        found |= candidates & c.identifier_values
        if c.identifier_file is not None:
            file = literal(str(c.identifier_file))
            kept += [
                f"SELECT CAST({quote(col)} AS VARCHAR) AS v FROM read_parquet({file})"
                for col in c.identifier_columns
            ]
    if kept:
        con = duckdb.connect()
        try:
            con.register("_words", pa.table({"w": sorted(candidates)}))
            rows = con.execute(
                f"SELECT DISTINCT v FROM ({' UNION ALL '.join(kept)}) AS k "
                f"WHERE LENGTH(v) >= {disclosure.MIN_IDENTIFIER_LENGTH} AND v IN (SELECT w FROM _words)"
            ).fetchall()
            found |= {r[0] for r in rows}
        finally:
            con.close()
    return found


def scan_for_identifiers(staging: Path, checked: Mapping[str, CheckedInput]) -> None:
    """Refuse the run (RuntimeError, nothing written) if an output holds an input identifier or a valid NHS number."""
    findings = disclosure.scan_outputs(staging, identifiers_in_outputs(staging, checked))
    if findings:
        raise RuntimeError(
            "Nothing was written: the outputs would contain identifiers.\n  " + "\n  ".join(findings)
        )


# --------------------------------------------------------------------------- the run
Execute = Callable[[Path, Path, dict, bool], None]


def run_notebook(request: RunRequest, execute: Execute | None = None) -> RunResult:
    """Every step of ``handbook run`` after the command line; see the module docstring.

    ``execute(notebook, executed, parameters, quiet)`` runs the notebook
    (default :func:`execute_notebook`).
    """
    execute = execute or execute_notebook
    out = request.out
    files = [p for p in request.data.values() if isinstance(p, Path)]
    previous_run = check_out_folder(
        out, [*files, *([request.column_map_file] if request.column_map_file else [])], request.force
    )
    private = Path(
        tempfile.mkdtemp(prefix="handbook-run-")
    )  # fetched tables and identifier values; removed below
    staging: Path | None = None
    previous_handler = stop_on_sigterm()  # from here a stop removes the private folder and the staging folder
    try:
        (private / "fetched").mkdir()
        (private / "checked").mkdir()
        data, fetched = fetch_databases(request.data, private / "fetched")
        checked = check_inputs(request, data, fetched, private / "checked")
        started = time.perf_counter()
        staging = make_staging(out)
        tables = staging / "tables"
        tables.mkdir()
        params = {
            **request.params,
            **{f"data_{k}": str(v) for k, v in data.items()},
            "output_dir": str(tables),
        }
        executed = staging / f"{request.notebook}.ipynb"
        with checked_tables_for_kernel(private / "checked"):
            execute(request.notebook_path, executed, params, request.quiet)
        sheets, elapsed = write_outputs(request, checked, staging, executed, started)
        scan_for_identifiers(staging, checked)
        move_into_place(staging, out, previous_run)
    except OSError as exc:
        where = exc.filename or out.parent
        raise RuntimeError(
            f"Could not write the results ({exc.strerror or exc}: {where}); nothing was written."
        ) from None
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return RunResult(out, sheets, elapsed, run_engine(request))


@contextlib.contextmanager
def checked_tables_for_kernel(folder: Path) -> Iterator[None]:
    """Name ``folder`` (the tables checked in step 2) to the notebook's kernel, which inherits the environment.

    The kernel's :func:`helpers.contract.open_table` then attaches each kept
    table instead of reading and checking the input a second time.
    """
    previous = os.environ.get(contract.CHECKED_TABLES_ENV)
    os.environ[contract.CHECKED_TABLES_ENV] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(contract.CHECKED_TABLES_ENV, None)
        else:
            os.environ[contract.CHECKED_TABLES_ENV] = previous


def kernel_arguments(arguments: Sequence[str], quiet: bool) -> list[str]:
    """The kernel's arguments; with ``--quiet`` its log keeps to CRITICAL.

    jupyter_client interrupts (SIGINT) every kernel it shuts down, and
    ipykernel logs "KeyboardInterrupt caught in kernel" at ERROR level when the
    interrupt lands while it is busy, after a run that went well.
    """
    if not quiet:
        return list(arguments)
    return [a for a in arguments if not a.startswith("--IPKernelApp.log_level")] + [
        "--IPKernelApp.log_level=CRITICAL"
    ]


def execute_notebook(nb_path: Path, executed: Path, params: dict[str, Any], quiet: bool) -> None:
    """Run the notebook with papermill; an InputError in it is the user's input, anything else a failed run."""
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
            raise io.InputError(str(exc.evalue)) from None
        raise RuntimeError(f"The notebook stopped with {exc.ename}: {exc.evalue}") from None


# --------------------------------------------------------------------------- the results folder
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
            raise UsageError(
                f"--out {out} holds the input {resolved.name}; write the results to another folder."
            )
    try:
        empty = not out.exists() or not any(out.iterdir())
    except OSError as exc:
        raise UsageError(f"Cannot look inside --out {out}: {exc.strerror or exc}.") from None
    if empty:
        if not os.access(_existing_parent(out.parent), os.W_OK):
            raise UsageError(
                f"Cannot write in {_existing_parent(out.parent)}: permission denied. Choose a folder you can write to."
            )
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


def stop_on_sigterm() -> Any:
    """Make SIGTERM stop a run the way Ctrl+C does, so the staging folder is removed.

    Returns the previous handler (to restore), or ``None`` outside the main thread.
    """

    def handler(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _read_records(csv: Path) -> list[dict[str, str]]:
    """Rows of a (small, suppressed) result table as records, for run.json."""
    if not csv.is_file():
        return []
    return pd.read_csv(csv, dtype=str, keep_default_na=False).to_dict("records")


def _count_rows(csv: Path) -> int:
    with open(csv, encoding="utf-8") as f:
        return max(sum(1 for _ in f) - 1, 0)
