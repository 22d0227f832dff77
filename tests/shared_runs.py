"""One ``handbook run`` per distinct run for the whole test session (issue 15; fixtures in tests/conftest.py).

A run executes a whole notebook in a fresh kernel (15 to 30 seconds), so the
end-to-end tests ask the session-wide :class:`HandbookRuns` (the
``handbook_runs`` fixture) for a run instead of making their own. A run is
identified by its :class:`RunSpec`: the notebook, each input by its name, its
file name and the SHA-256 of its bytes (a database input by its address), the
``--param`` values in the order given and any other options (``--pdf``). Two
tests that write the same input to their own folders and ask for the same
notebook and parameters get the same run folder. A shared run folder is read,
never changed: a test that changes files works on :func:`copy_run`.

Every run is a ``handbook run`` subprocess in the repository, with the
environment the session started with (and this worktree's ``src`` first on
``PYTHONPATH``), so a test that sets an environment variable for itself cannot
leak it into a run another test reads.

Runs a selected test will need can be started in the background when the
session starts (tests/conftest.py, one at a time by default, on the core the
tests leave idle; one more while a test waits for a run): a test module lists them in a module-level
``PREFETCH_RUNS = {test or fixture name: builder}``, where ``builder(folder)``
writes the inputs into ``folder`` and returns the :class:`RunSpec` objects.
A test that asks for a run still waiting in the queue makes it at once itself.
The results are the same with or without prefetching
(``HANDBOOK_TEST_PREFETCH=0`` turns it off).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
#: Seconds a run may take before it is stopped (a guard against a hung kernel, not a timing).
TIMEOUT = 900


@dataclass(frozen=True)
class RunSpec:
    """``handbook run NOTEBOOK --data name=where ... --param k=v ... OPTIONS --out DIR --quiet``."""

    notebook: str
    data: tuple[tuple[str, str], ...] = ()
    params: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def arguments(self, out: Path) -> list[str]:
        args = ["run", self.notebook]
        for name, where in self.data:
            args += ["--data", f"{name}={where}"]
        for p in self.params:
            args += ["--param", p]
        return [*args, *self.options, "--out", str(out), "--quiet"]


def run_spec(
    notebook: str,
    data: Mapping[str, str | os.PathLike] | None = None,
    params: Sequence[str] = (),
    options: Sequence[str] = (),
) -> RunSpec:
    return RunSpec(
        notebook, tuple((k, str(v)) for k, v in (data or {}).items()), tuple(params), tuple(options)
    )


def chromium_available() -> bool:
    from helpers import pdf

    return any(shutil.which(n) for n in pdf.CHROMIUM_NAMES)


def sample_run(notebook: str) -> RunSpec:
    """The run on the shipped sample with every parameter at its default.

    The value notebook's is made with ``--pdf`` when Chromium is installed:
    ``--pdf`` only adds report.pdf, printed from the finished report.html
    (helpers.cli), so tests/test_cli.py and the PDF check of
    tests/test_summary.py read one run.
    """
    return run_spec(notebook, options=("--pdf",) if notebook == "value" and chromium_available() else ())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_key(spec: RunSpec) -> tuple:
    """What makes two runs the same: notebook, inputs by name, file name and content, parameters, options."""
    data = []
    for name, where in spec.data:
        path = Path(where)
        data.append((name, (path.name, _sha256(path)) if "://" not in where and path.is_file() else where))
    return spec.notebook, tuple(sorted(data)), spec.params, tuple(sorted(spec.options))


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of a shared run folder, for a test that changes files in it."""
    return Path(shutil.copytree(run, dest))


@dataclass
class _Run:
    spec: RunSpec
    out: Path
    state: str = "queued"  # queued, running, done
    result: subprocess.CompletedProcess | None = None
    error: str = ""


class HandbookRuns:
    """The session's runs, each made once: :meth:`get` returns a run folder, :meth:`prefetch` queues a run."""

    def __init__(self, folder: Callable[[str], Path], env: Mapping[str, str], workers: int = 1):
        self._folder = folder  # makes a fresh folder; called from the test thread only
        self._env = dict(env)
        self._workers = workers
        self._lock = threading.Condition()
        self._runs: dict[tuple, _Run] = {}
        self._queue: list[tuple] = []
        self._threads: list[threading.Thread] = []
        self._active = 0  # background threads making runs
        self._waiting = 0  # tests waiting for a run: each lends its core to one more background run
        self._procs: set[subprocess.Popen] = set()
        self._closed = False

    def _new(self, spec: RunSpec) -> _Run:
        return _Run(spec, self._folder(f"run-{spec.notebook}") / "run")

    def prefetch(self, spec: RunSpec) -> None:
        """Queue ``spec`` to be made in the background, unless it is known already."""
        key = run_key(spec)
        with self._lock:
            if key in self._runs or self._closed:
                return
            self._runs[key] = self._new(spec)
            self._queue.append(key)
            self._start_workers()

    def _start_workers(self) -> None:
        """Start background threads up to the number allowed (called holding the lock)."""
        while self._queue and not self._closed and self._active < self._workers + self._waiting:
            self._active += 1
            thread = threading.Thread(target=self._work, name="handbook-prefetch", daemon=True)
            self._threads.append(thread)
            thread.start()

    def get(self, spec: RunSpec) -> Path:
        """The folder of this run (made now if nobody has made or started it); fails the test if the run failed."""
        key = run_key(spec)
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                run = self._runs[key] = self._new(spec)
            mine = run.state == "queued"
            if mine:
                if key in self._queue:
                    self._queue.remove(key)
                run.state = "running"
        if mine:
            self._execute(run)
        else:
            with self._lock:
                self._waiting += 1
                self._start_workers()
                self._lock.wait_for(lambda: run.state == "done")
                self._waiting -= 1
        result = run.result
        assert result is not None, f"handbook {' '.join(spec.arguments(run.out))} did not run: {run.error}"
        assert result.returncode == 0, result.stderr[-3000:]
        assert run_key(run.spec) == key, (
            "an input of the run was changed by the run"
        )  # inputs are never modified
        return run.out

    def made_from(self, spec: RunSpec) -> RunSpec:
        """The spec the shared run was made with (its inputs may be another test's copies of the same files)."""
        return self._runs[run_key(spec)].spec

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue or self._closed or self._active > self._workers + self._waiting:
                    self._active -= 1
                    return
                run = self._runs[self._queue.pop(0)]
                run.state = "running"
            self._execute(run)

    def _execute(self, run: _Run) -> None:
        command = [sys.executable, "-m", "helpers.cli", *run.spec.arguments(run.out)]
        try:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the session is ending")
                proc = subprocess.Popen(
                    command,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=self._env,
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )  # its kernel too is stopped by close()
                self._procs.add(proc)
            try:
                out, err = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                err += f"\n(stopped after {TIMEOUT} s)"
            finally:
                with self._lock:
                    self._procs.discard(proc)
            run.result = subprocess.CompletedProcess(command, proc.returncode, out, err)
        except Exception as exc:  # reported by get() in the test that asks for the run
            run.error = repr(exc)
        finally:
            with self._lock:
                run.state = "done"
                self._lock.notify_all()

    def close(self) -> None:
        """Drop what is queued and stop runs still going (the session ended or was interrupted)."""
        with self._lock:
            self._closed = True
            for key in self._queue:
                self._runs[key].state = "done"
                self._runs[key].error = "the session ended first"
            self._queue.clear()
            procs = list(self._procs)
            self._lock.notify_all()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for thread in self._threads:
            thread.join(timeout=30)
