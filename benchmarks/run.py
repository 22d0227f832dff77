"""Time the variation and virtual ward analyses at national scale, with peak memory.

    .venv/bin/python benchmarks/run.py                                  # 100k, 1M and 10M spells
    .venv/bin/python benchmarks/run.py --sizes 100000 --engines duckdb spark
    .venv/bin/python benchmarks/run.py --workdir /big/disk --keep       # keep the simulated files

For each size the simulator writes the economy (spells, virtual ward stays)
once into ``--workdir``, and the spells again as Parquet. Each measurement
runs in a child process of its own, so its peak memory is that child's
maximum resident set size (``os.wait4``), not the benchmark's:

* ``scan``: a bare DuckDB scan reading every column of the spells file (the floor);
* ``variation``: what the variation notebook computes from the spells -
  read and validate, derived fields, case-mix cells, the model, the funnel
  and the opportunity with its 2,000-draw interval
  (:func:`helpers.variation.prepare_variation`, :func:`helpers.funnel.funnel`,
  :func:`helpers.opportunity.opportunity`);
* ``virtual_ward``: what the virtual ward notebook computes for its effect
  table - the stays, the target-trial cohort (:func:`helpers.cohort.prepare_virtual_ward`:
  built in SQL, so only the cohort is held in memory) and the five
  estimators for its seven outcomes;
* ``run_variation`` and ``run_virtual_ward``: what a user waits for,
  ``handbook run variation|virtual_ward --data spells=FILE`` end to end
  (no ``--engine``: DuckDB, the default; ``--engine spark`` for Spark) (checking and hashing the inputs, the whole notebook in its
  kernel, the report, the workbook, the figures and the output scan). Its
  peak memory is the largest sum of the resident sets of the command and its
  children (the notebook's kernel), sampled five times a second, as both are
  alive at once; the ``notes`` give the seconds ``run.json`` records for the
  notebook and the report.

The core tasks are the part of the run that does the statistics; the
difference between a ``run_`` row and its core row is the cost of the rest.
The parent process imports nothing heavy (a child inherits its parent's
peak at the fork). Prints a Markdown table (and writes it with ``--out``). Not a test: the
numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
#: What can be measured: the floor, the notebooks' cores, and ``handbook run`` end to end.
TASKS = ("scan", "variation", "virtual_ward", "run_variation", "run_virtual_ward")


# --------------------------------------------------------------------------- the child's work
def child(task: str, path: str, engine: str, extra: dict) -> dict:
    """Run one measurement in this (child) process; return what it found, for the table."""
    if task == "scan":
        import duckdb

        reader = "read_parquet" if path.endswith(".parquet") else "read_csv"
        # a hash of every value, so every column is read and decoded (a MIN could come from Parquet statistics)
        row = (
            duckdb.connect()
            .execute(f"SELECT COUNT(*) AS n, BIT_XOR(HASH(COLUMNS(*))) FROM {reader}('{path}')")
            .fetchone()
        )
        return {"rows": int(row[0])}
    if task == "variation":
        from helpers import casemix, funnel, opportunity
        from helpers import variation as eng

        indicator = extra.get("indicator", "los")
        definition = casemix.INDICATORS[indicator]
        prepared = eng.prepare_variation(path, indicator, engine=engine)
        result = funnel.funnel(prepared.model.providers, "ratio", scale=prepared.model.dispersion)
        opp = opportunity.opportunity(
            result,
            "median",
            definition.higher_is_better,
            prepared.bed_days_per_event,
            seed=2026,
            years=prepared.years,
        )
        return {
            "rows": prepared.spells_read,
            "cells": int(prepared.model.diagnostics.loc[0, "cells"]),
            "outliers": int((result.providers["outlier"] != "none").sum()),
            "naive_opportunity": float(opp.summary.loc[0, "opportunity"]),
        }
    if task == "virtual_ward":
        from helpers import cohort as co
        from helpers import evaluation as ev
        from helpers import io

        stays = io.load_table("virtual_ward", extra["virtual_ward"])
        prepared = co.prepare_virtual_ward(path, stays, covariates=ev.TARGET_TRIAL_COVARIATES, engine=engine)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = ev.estimate_target_trial(
                prepared.trial, co.TARGET_TRIAL_OUTCOMES, ev.TARGET_TRIAL_COVARIATES, seed=2026
            )
        effects = results.effects
        main = effects[(effects["outcome"] == "acute_los") & (effects["method"] == "aipw")]
        rows = prepared.spells.summary.rows_read
        return {
            "rows": int(rows),
            "cohort": int(len(prepared.trial.rows)),
            "acute_los_aipw": float(main["estimate"].iloc[0]) if len(main) else float("nan"),
        }
    raise ValueError(f"unknown task {task!r}")


def stop_spark() -> None:
    """Stop a Spark session this child started and wait for its JVM, so the JVM's peak counts in the child's."""
    try:
        from pyspark import SparkContext
    except ImportError:
        return
    gateway = SparkContext._gateway
    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    if gateway is not None:
        gateway.shutdown()
        proc = getattr(gateway, "proc", None)
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()  # the gateway JVM exits when its standard input closes
            try:
                proc.wait(timeout=60)
            except Exception:  # noqa: BLE001 - do not leave it running
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- the parent
def tree_rss_mib(pid: int) -> float:
    """Resident set of a process and all its descendants now, MiB (0 if psutil is absent or it has gone)."""
    try:
        import psutil
    except ImportError:
        return 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def run_command(task: str, path: Path, engine: str, extra: dict, out: Path) -> list[str]:
    """The ``handbook run`` command line of a ``run_`` task."""
    notebook = task.removeprefix("run_")
    cmd = [
        sys.executable,
        "-m",
        "helpers.cli",
        "run",
        notebook,
        "--data",
        f"spells={path}",
        "--out",
        str(out),
        "--quiet",
    ]
    if engine != "duckdb":  # DuckDB is the default: a user gives no --engine
        cmd += ["--engine", engine]
    if notebook == "virtual_ward":
        cmd += ["--data", f"virtual_ward={extra['virtual_ward']}"]
    if "indicator" in extra:
        cmd += ["--param", f"indicator={extra['indicator']}"]
    return cmd


def measure(task: str, path: Path, engine: str, extra: dict, timeout: float) -> dict:
    """Run ``child`` (or ``handbook run``) in a fresh interpreter; wall time and peak memory (MiB)."""
    run_dir = None
    if task.startswith("run_"):
        run_dir = Path(tempfile.mkdtemp(prefix="handbook-bench-run-")) / "run"
        cmd = run_command(task, path, engine, extra, run_dir)
    else:
        cmd = [sys.executable, __file__, "--child", task, str(path), engine, json.dumps(extra)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = started + timeout
    tree_peak, next_sample = 0.0, started
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                return {
                    "seconds": timeout,
                    "peak_mib": max(usage.ru_maxrss / 1024, tree_peak),
                    "error": f"over {timeout:.0f} s",
                }
            if run_dir is not None and time.perf_counter() >= next_sample:
                tree_peak = max(tree_peak, tree_rss_mib(proc.pid))
                next_sample = time.perf_counter() + 0.2
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        out, err = proc.stdout.read(), proc.stderr.read()
        # Linux reports KiB; for a run, the largest sampled sum over the command and its kernel
        result = {"seconds": seconds, "peak_mib": max(usage.ru_maxrss / 1024, tree_peak)}
        if os.waitstatus_to_exitcode(status) != 0:
            result["error"] = (err.strip().splitlines() or ["failed"])[-1][:200]
        elif run_dir is not None:
            record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
            result["notebook_and_report_s"] = float(record["seconds"])
            result["rows"] = (record["inputs"].get("spells") or {}).get("rows")
        else:
            result.update(json.loads(out.strip().splitlines()[-1]))
        return result
    finally:
        if run_dir is not None:
            shutil.rmtree(run_dir.parent, ignore_errors=True)


def make_data(size: int, workdir: Path) -> dict[str, Path]:
    """The simulated economy of ``size`` spells (CSV), and its spells as Parquet; reused if present."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from helpers import simulate

    folder = workdir / f"spells_{size}"
    csv, parquet, vw = folder / "spells.csv", folder / "spells.parquet", folder / "virtual_ward.csv"
    if not (csv.exists() and vw.exists()):
        t = time.perf_counter()
        simulate.write_sample(folder, n_spells=size)
        print(f"simulated {size:,} spells in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    if not parquet.exists():
        text = [
            "spell_id",
            "patient_id",
            "provider_code",
            "admission_method",
            "patient_classification",
            "sex",
            "primary_diagnosis",
            "hrg",
            "discharge_method",
        ]
        reader = pacsv.open_csv(
            csv, convert_options=pacsv.ConvertOptions(column_types={c: "string" for c in text})
        )
        with pq.ParquetWriter(parquet, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
    return {"csv": csv, "parquet": parquet, "virtual_ward": vw}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        task, path, engine, extra = argv[1:5]
        result = child(task, path, engine, json.loads(extra))
        if engine == "spark":
            stop_spark()
        print(json.dumps(result))
        return 0
    if argv and argv[0] == "--make":
        print(json.dumps({k: str(v) for k, v in make_data(int(argv[1]), Path(argv[2])).items()}))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--engines", nargs="+", default=["duckdb"], choices=["duckdb", "spark"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--indicators", nargs="+", default=["los", "readmission_30d"])
    parser.add_argument("--formats", nargs="+", default=["parquet", "csv"], choices=["parquet", "csv"])
    parser.add_argument(
        "--vw-max", type=int, default=10_000_000, help="largest size to run the virtual ward on"
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--workdir", type=Path, help="where the simulated files go (default: a temporary folder)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the simulated files")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args(argv)

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="handbook-bench-")
        args.workdir = Path(tmp.name)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    header = "| spells | file | task | engine | seconds | peak memory (MiB) | notes |\n|---:|---|---|---|---:|---:|---|"
    print(header)
    try:
        for size in args.sizes:
            # in a child too: the parent stays small, so it adds nothing to a child's peak memory
            made = subprocess.run(
                [sys.executable, __file__, "--make", str(size), str(args.workdir)],
                check=True,
                capture_output=True,
                text=True,
            )
            files = {k: Path(v) for k, v in json.loads(made.stdout.strip().splitlines()[-1]).items()}
            for fmt in args.formats:
                path = files[fmt]
                plan = []
                if "scan" in args.tasks:
                    plan.append(("scan", "duckdb", {}))
                for engine in args.engines:
                    for task in ("variation", "run_variation"):
                        if task in args.tasks:
                            plan += [(task, engine, {"indicator": ind}) for ind in args.indicators]
                    for task in ("virtual_ward", "run_virtual_ward"):
                        if task in args.tasks and size <= args.vw_max:
                            plan.append((task, engine, {"virtual_ward": str(files["virtual_ward"])}))
                for task, engine, extra in plan:
                    r = measure(task, path, engine, extra, args.timeout)
                    label = task + (f" ({extra['indicator']})" if "indicator" in extra else "")
                    notes = r.get("error") or ", ".join(
                        f"{k} {v:,.0f}" if isinstance(v, (int, float)) else f"{k} {v}"
                        for k, v in r.items()
                        if k in ("cells", "cohort", "outliers", "notebook_and_report_s")
                    )
                    line = (
                        f"| {size:,} | {fmt} | {label} | {engine if task != 'scan' else 'DuckDB (floor)'} | "
                        f"{r['seconds']:.1f} | {r['peak_mib']:,.0f} | {notes} |"
                    )
                    print(line, flush=True)
                    rows.append(line)
    finally:
        if tmp is not None and not args.keep:
            tmp.cleanup()
    if args.out:
        args.out.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
