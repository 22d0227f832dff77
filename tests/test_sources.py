"""A SQL database as an input (helpers.sources), against a real PostgreSQL server started on 127.0.0.1 (issue 16)."""

from __future__ import annotations

import os

import pandas as pd
import postgres_server
import pytest
from extracts import hes_episodes, sample_spells

from helpers import io, sources

PASSWORD = "t0p-secret-Pa55"


# --------------------------------------------------------------------------- addresses
def test_is_url():
    assert sources.is_url("postgresql://analyst@warehouse/sus?table=apc.spells")
    assert sources.is_url("mssql+pyodbc://server/db?table=dbo.apcs")
    assert not sources.is_url("/secure/extracts/spells.csv")
    assert not sources.is_url("C:\\extracts\\spells.csv")
    assert not sources.is_url("file:///secure/spells.csv")


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            "postgresql://analyst:pw@host:5432/sus?table=apc.spells",
            "postgresql://analyst@host:5432/sus?table=apc.spells",
        ),
        ("postgresql://analyst:p%40ss@host/sus?table=t", "postgresql://analyst@host/sus?table=t"),
        ("postgresql://analyst:p@ss@host/sus?table=t", "postgresql://analyst@host/sus?table=t"),
        ("postgresql://analyst@host/sus?table=t", "postgresql://analyst@host/sus?table=t"),
    ],
)
def test_redact_never_shows_a_password(url, shown):
    assert sources.redact(url) == shown


def test_address_must_say_what_to_read():
    with pytest.raises(io.InputError, match=r"\?table=schema.table or \?query="):
        sources._parse("postgresql://analyst@host/sus")
    with pytest.raises(io.InputError, match="one of the two"):
        sources._parse("postgresql://analyst@host/sus?table=a&query=SELECT 1")
    with pytest.raises(io.InputError, match="%40") as err:
        sources._parse("postgresql://analyst:p@ss@host/sus?table=t")
    assert "p@ss" not in str(err.value)
    parsed, table, sql = sources._parse(
        "postgresql://a@h/db?sslmode=require&query=SELECT%20*%20FROM%20x%20WHERE%20y%3D%271%27"
    )
    assert (table, sql) == (None, "SELECT * FROM x WHERE y='1'")
    assert parsed.drivername == "postgresql+psycopg" and dict(parsed.query) == {"sslmode": "require"}


# --------------------------------------------------------------------------- a real server
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if postgres_server.server_binaries() is None:
        pytest.skip("PostgreSQL server not installed (Debian package postgresql; .ci/run installs it)")
    folder = tmp_path_factory.mktemp("pg_data")
    _, spells = hes_episodes(sample_spells(1500))
    csv = folder / "spells.csv"
    spells.to_csv(csv, index=False)
    types = {
        "spell_id": "text",
        "patient_id": "text",
        "provider_code": "text",
        "admission_date": "date",
        "discharge_date": "date",
        "admission_method": "text",
        "patient_classification": "smallint",
        "age": "integer",
        "sex": "integer",
        "primary_diagnosis": "text",
        "hrg": "text",
        "discharge_method": "text",
        "imd_decile": "integer",
        "frailty_score": "numeric(6,2)",
        "charlson_index": "bigint",
    }
    with postgres_server.running(PASSWORD) as srv:
        postgres_server.load_csv(srv, csv, "apc.spells", types)
        yield srv, csv


def test_fetch_in_chunks_gives_the_rows_of_the_file(server, tmp_path, monkeypatch):
    srv, csv = server
    monkeypatch.setenv("PGPASSWORD", PASSWORD)  # credentials from the environment, as documented
    got = sources.fetch(srv.url(table="apc.spells"), tmp_path, "spells", chunk_rows=400)  # four chunks
    assert got.rows == 1500 and got.what == "table apc.spells" and PASSWORD not in got.address
    from_db = io.load_table("spells", got.path).sort_values("spell_id", ignore_index=True)
    from_file = io.load_table("spells", csv).sort_values("spell_id", ignore_index=True)
    pd.testing.assert_frame_equal(
        from_db, from_file
    )  # typed columns (date, smallint, numeric) read as the file
    assert not (tmp_path / "spells.duckdb").exists()  # the staging database is removed


def test_fetch_a_query(server, tmp_path, monkeypatch):
    srv, _ = server
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    query = (
        "SELECT provider_code, COUNT(*) AS n FROM apc.spells GROUP BY provider_code ORDER BY provider_code"
    )
    got = sources.fetch(srv.url(query=query), tmp_path, "counts")
    counts = pd.read_parquet(got.path)
    assert got.what == "a query" and counts["n"].astype(int).sum() == 1500
    assert list(counts.columns) == ["provider_code", "n"]


def test_refusals_never_show_the_password(server, tmp_path, monkeypatch):
    srv, _ = server
    monkeypatch.delenv("PGPASSWORD", raising=False)
    wrong = srv.url(with_password=False, table="apc.spells").replace("analyst@", "analyst:Wr0ng-Pa55@")
    with pytest.raises(io.InputError, match="password authentication failed") as err:
        sources.fetch(wrong, tmp_path, "spells")
    assert "Wr0ng-Pa55" not in str(err.value)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with pytest.raises(io.InputError, match="apc.no_such_table") as err:
        sources.fetch(srv.url(table="apc.no_such_table"), tmp_path, "spells")
    assert PASSWORD not in str(err.value)
    assert os.environ["PGPASSWORD"] == PASSWORD
