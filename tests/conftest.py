"""Session-wide fixtures: the shared ``handbook run`` folders (tests/shared_runs.py, issue 15).

``handbook_runs`` makes each distinct run once per session and hands its
folder to every test that asks for it. When the session starts, the runs that
the selected tests declared in their module's ``PREFETCH_RUNS`` are started in
the background, one at a time (``HANDBOOK_TEST_PREFETCH=0`` turns this off;
``HANDBOOK_TEST_PREFETCH=2`` makes two at a time, for a machine with cores to
spare).
"""

from __future__ import annotations

import os

import pytest
from shared_runs import REPO, HandbookRuns


@pytest.fixture(scope="session")
def handbook_runs(tmp_path_factory) -> HandbookRuns:
    env = dict(os.environ)  # as the session started: no test's monkeypatched variable reaches a shared run
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO / "src"), env.get("PYTHONPATH", "")] if p)
    workers = os.environ.get("HANDBOOK_TEST_PREFETCH", "1")
    runs = HandbookRuns(tmp_path_factory.mktemp, env, workers=int(workers) if workers.isdigit() else 1)
    yield runs
    runs.close()


@pytest.fixture(scope="session", autouse=True)
def _prefetch_runs(request, handbook_runs, tmp_path_factory) -> None:
    """Queue the runs the selected tests declared (``PREFETCH_RUNS`` of their module), in the tests' order."""
    if os.environ.get("HANDBOOK_TEST_PREFETCH", "1") == "0":
        return
    wanted = {}
    for item in request.session.items:
        module = getattr(item, "module", None)
        for name, builder in (getattr(module, "PREFETCH_RUNS", None) or {}).items():
            if name in getattr(item, "fixturenames", ()) or getattr(item, "originalname", None) == name:
                wanted.setdefault((module.__name__, name), builder)
    for (_, name), builder in wanted.items():
        try:  # a builder that cannot build (missing data) leaves the run to its test, which says why
            specs = builder(tmp_path_factory.mktemp(f"inputs-{name}"))
        except Exception:
            continue
        for spec in specs:
            handbook_runs.prefetch(spec)
