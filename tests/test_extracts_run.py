"""Real-extract shapes end to end through ``handbook run variation`` (issue 16, "Done when").

* A HES-style episode-level extract (HES names, dd/mm/yyyy dates, wide
  diagnosis columns, no frailty column), with no --map and no --param, gives
  the same provider_indicator table as the equivalent spell-level file built
  by hand (tests/extracts.py).
* A SUS+ / NCDR-style spell extract with its own names runs with no --map, and
  gives the same table.
* The same spells read from a PostgreSQL server (started here on 127.0.0.1)
  write the same tables as the file, and the password is written nowhere.

Four notebook runs on 4,000 spells of the sample (from the session's ``handbook_runs``,
tests/conftest.py; the three file runs start in the background when the session starts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import postgres_server
import pytest
from extracts import hes_episodes, sample_spells, sus_spells
from shared_runs import RunSpec, run_spec

N_SPELLS = 4000
PASSWORD = "Pw-0f-th3-analyst"
SPELL_TYPES = {  # the hand-built file as a warehouse would type it
    "spell_id": "text",
    "patient_id": "text",
    "provider_code": "char(3)",
    "admission_date": "date",
    "discharge_date": "date",
    "admission_method": "varchar(2)",
    "patient_classification": "text",
    "age": "integer",
    "sex": "text",
    "primary_diagnosis": "text",
    "hrg": "text",
    "discharge_method": "text",
    "imd_decile": "smallint",
    "frailty_score": "numeric(5,1)",
    "charlson_index": "integer",
}


def write_extracts(folder: Path) -> dict[str, Path]:
    hes, by_hand = hes_episodes(sample_spells(N_SPELLS))
    paths = {
        "hes": folder / "hes_apc.csv",
        "hand": folder / "spells_by_hand.csv",
        "sus": folder / "sus_apcs.csv",
    }
    hes.to_csv(paths["hes"], index=False)
    by_hand.to_csv(paths["hand"], index=False)
    sus_spells(hes, by_hand).to_csv(paths["sus"], index=False)
    return paths


def variation_run(data: str | Path) -> RunSpec:
    """`handbook run variation --data spells=DATA --out DIR --quiet`."""
    return run_spec("variation", {"spells": data})


#: The file runs, started in the background when the session starts (tests/conftest.py); the database run
#: waits for its server.
PREFETCH_RUNS = {"files": lambda folder: [variation_run(p) for p in extracts_in_test_order(folder)]}


def extracts_in_test_order(folder: Path) -> list[Path]:
    paths = write_extracts(folder)
    return [paths["hand"], paths["hes"], paths["sus"]]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_extracts(tmp_path_factory.mktemp("extracts"))


@pytest.fixture(scope="module")
def hand_run(files, handbook_runs) -> Path:
    return handbook_runs.get(variation_run(files["hand"]))


def table(run: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run / "tables" / f"{name}.csv")


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal, numbers to 1e-9 relative (spells arrive in another order, so sums may differ in the last bit)."""
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-12)


def test_hes_episode_extract_gives_the_same_provider_indicator(files, hand_run, handbook_runs):
    run = handbook_runs.get(variation_run(files["hes"]))
    assert_same_table(table(run, "provider_indicator"), table(hand_run, "provider_indicator"))
    flow = table(run, "exclusions").set_index("step")
    episodes = len(pd.read_csv(files["hes"], usecols=["EPIKEY"]))
    assert flow.loc["read from hes_apc.csv", "rows_after"] == episodes
    assert flow.loc["episodes to provider spells", "rows_after"] == N_SPELLS
    terms = table(run, "casemix_terms").set_index("term")["used"]
    assert terms.eq(
        "yes"
    ).all()  # the frailty band comes from the Hospital Frailty Risk Score of the diagnoses


def test_sus_extract_runs_without_a_map(files, hand_run, handbook_runs):
    run = handbook_runs.get(variation_run(files["sus"]))
    assert_same_table(table(run, "provider_indicator"), table(hand_run, "provider_indicator"))
    quality = table(run, "data_quality").set_index("column")
    assert quality.loc["provider_code", "source_column"] == "Der_Provider_Code"
    assert quality.loc["hrg", "source_column"] == "Spell_Core_HRG"


@pytest.fixture(scope="module")
def postgres(files):
    if postgres_server.server_binaries() is None:
        pytest.skip("PostgreSQL server not installed (Debian package postgresql; .ci/run installs it)")
    with postgres_server.running(PASSWORD) as server:
        rows = postgres_server.load_csv(server, files["hand"], "apc.spells", SPELL_TYPES)
        assert rows == N_SPELLS
        yield server


def test_database_run_writes_the_same_tables_as_the_file(postgres, hand_run, handbook_runs):
    # the password written in the URL (the worst case): it must still be recorded nowhere
    run = handbook_runs.get(variation_run(postgres.url(with_password=True, table="apc.spells")))
    names = sorted(p.stem for p in (hand_run / "tables").glob("*.csv"))
    assert names == sorted(p.stem for p in (run / "tables").glob("*.csv"))
    for name in names:
        a, b = table(run, name), table(hand_run, name)
        if name == "exclusions":  # the first step names the source
            a, b = a.iloc[1:].reset_index(drop=True), b.iloc[1:].reset_index(drop=True)
        if name == "data_quality":  # the source's column names are the database's (lower case)
            a, b = a.drop(columns="source_column"), b.drop(columns="source_column")
        assert_same_table(a, b)
    record = json.loads((run / "run.json").read_text())
    assert record["inputs"]["spells"]["file"] == (
        f"table apc.spells from postgresql://analyst@127.0.0.1:{postgres.port}/handbook?table=apc.spells"
    )
    assert record["inputs"]["spells"]["rows"] == N_SPELLS
    for path in run.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path.name
