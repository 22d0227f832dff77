"""The Spark engine through Spark Connect (``SPARK_REMOTE``), against a real server on 127.0.0.1.

tests/test_engine.py runs the Spark engine in local mode, in the test's own
process. Here a Spark Connect server is started from the pyspark install
(``sbin/start-connect-server.sh``, as an NHS data platform would run it) on a
free port of the loopback address, and the engine reaches it the way a user
does: ``SPARK_REMOTE=sc://127.0.0.1:PORT`` and no session handed in. The truth
is the DuckDB path's tables, as in tests/test_engine.py; the server is stopped
afterwards. Skipped with a message when pyspark, its Connect client (the
optional extra, requirements-spark.txt) or Java is absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_engine import EXACT, bad_spells, provider_indicator

from helpers import contract, engine, io, variation

#: Seconds to wait for the server's port to open (a JVM start; about 15 s on an idle 2-core machine).
START_TIMEOUT = 240
#: Seconds to wait for the server to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 30


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group (the launcher scripts and the JVM they exec)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def spark_remote(tmp_path_factory):
    """A Spark Connect server on 127.0.0.1 for this module; yields its ``sc://`` URL."""
    pyspark = pytest.importorskip(
        "pyspark",
        reason="pyspark is not installed (requirements-spark.txt): the Spark Connect path is not tested",
    )
    pytest.importorskip(
        "sqlglot",
        reason="sqlglot is not installed (requirements-spark.txt): the Spark Connect path is not tested",
    )
    pytest.importorskip(
        "grpc",
        reason="the Spark Connect client (pyspark[connect], requirements-spark.txt) "
        "is not installed: the Spark Connect path is not tested",
    )
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Java is not installed: the Spark Connect path is not tested")
    home = Path(pyspark.__file__).parent
    script = home / "sbin" / "start-connect-server.sh"
    if not script.exists():
        pytest.skip(f"this pyspark has no {script.name}: the Spark Connect path is not tested")
    logs = tmp_path_factory.mktemp("spark-connect")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    env.update(
        SPARK_HOME=str(home),
        SPARK_LOG_DIR=str(logs),
        SPARK_PID_DIR=str(logs),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    command = [
        "bash",
        str(script),
        "--wait",
        "--master",
        "local[2]",
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf",
        f"spark.connect.grpc.binding.port={port}",
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.driver.bindAddress=127.0.0.1",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.shuffle.partitions=4",
    ]
    log = open(logs / "server.log", "wb")  # closed after the server stops
    # a process group of its own, so that stopping it stops the JVM the scripts exec
    proc = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                tail = (logs / "server.log").read_text(errors="replace").splitlines()[-20:]
                pytest.fail(
                    f"the Spark Connect server did not start on 127.0.0.1:{port} within {START_TIMEOUT} s "
                    f"(exit code {proc.returncode}); its log ends:\n" + "\n".join(tail)
                )
            time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)  # set by pyspark for a Connect session
        _stop(proc)
        log.close()


@pytest.fixture
def through_remote(spark_remote, monkeypatch):
    """The environment a user sets: SPARK_REMOTE, and no session handed to the engine."""
    monkeypatch.setenv(engine.SPARK_REMOTE_ENV, spark_remote)
    return spark_remote


def test_spark_connect_provider_indicator_is_the_duckdb_table(through_remote):
    session = engine.spark_session()
    assert type(session).__module__.startswith("pyspark.sql.connect"), type(
        session
    )  # Connect, not local mode
    assert session.range(3).count() == 3  # the server answers
    indicator = "readmission_30d"  # the one with the linkage across providers; the rest of the SQL is shared
    expected = variation.prepare_variation(None, indicator, engine="duckdb")
    got = variation.prepare_variation(None, indicator, engine="spark")  # the session comes from SPARK_REMOTE
    pd.testing.assert_frame_equal(
        provider_indicator(got, indicator), provider_indicator(expected, indicator), **EXACT
    )
    pd.testing.assert_frame_equal(got.exclusions, expected.exclusions)
    for table in ("diagnostics", "coefficients", "pooled_levels"):
        pd.testing.assert_frame_equal(getattr(got.model, table), getattr(expected.model, table), **EXACT)
    assert got.years == expected.years == 2
    assert got.bed_days_per_event == expected.bed_days_per_event


def test_spark_connect_bad_file_gives_the_loader_message(tmp_path, through_remote):
    path = tmp_path / "bad.parquet"
    bad_spells(tmp_path).to_parquet(path)
    with pytest.raises(io.InputError) as loader_error:
        io.load_table("spells", path)
    with pytest.raises(io.InputError) as spark_error:
        contract.validate_table("spells", path, engine="spark")
    assert str(spark_error.value) == str(loader_error.value)
    assert "11 problems found" in str(
        spark_error.value
    )  # the rows are numbered as the file's (test_engine.py)
