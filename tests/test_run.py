"""helpers.run: each input read once to be checked and hashed, the scan without rereading, DuckDB by default.

The notebook's execution is replaced by a stand-in that writes an unexecuted
copy of the notebook and one result table, so these tests take seconds; every
other step of ``handbook run`` is real. helpers.comparison: the variation
notebook's one decision between spells and an indicator file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from helpers import cli, comparison, contract, io, run, variation
from helpers.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "spells.csv"


@pytest.fixture
def spells_file(tmp_path) -> Path:
    """A 300-row extract of the sample spells, as Parquet (as a national file would be)."""
    path = tmp_path / "in" / "spells.parquet"
    path.parent.mkdir()
    pd.read_csv(SAMPLE, dtype=str, keep_default_na=False, nrows=300).to_parquet(path, index=False)
    return path


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """Count every read of an input: by DuckDB (contract.open_table), pandas (io.load_table) or the raw reader."""
    seen: Counter = Counter()

    def spy(name, function):
        def wrapped(table, path=None, *args, **kwargs):
            seen[(name, str(path) if path is not None else None)] += 1
            return function(table, path, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(contract, "open_table", spy("duckdb", contract.open_table))
    monkeypatch.setattr(io, "load_table", spy("pandas", io.load_table))
    read_raw = io.read_raw
    monkeypatch.setattr(
        io,
        "read_raw",
        lambda path, name=None: (seen.update([("reader", str(path))]), read_raw(path, name))[1],
    )
    return seen


def stand_in(monkeypatch, table: str = "provider_code,spells\nT01,100\n", printed: str = "") -> None:
    """Replace the notebook's execution: an unexecuted copy of the notebook, one table, one printed line."""

    def execute(nb_path, executed, params, quiet):
        nb = nbformat.read(nb_path, as_version=4)
        if printed:
            code = [c for c in nb.cells if c.cell_type == "code"]
            code[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed + "\n")]
        nbformat.write(nb, executed)
        (Path(params["output_dir"]) / "result.csv").write_text(table, encoding="utf-8")

    monkeypatch.setattr(cli, "_execute", execute)


def test_each_input_is_read_once_hashed_and_recorded_with_the_engine(
    tmp_path, spells_file, reads, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the private folder of identifier values
    (tmp_path / "tmp").mkdir()
    stand_in(monkeypatch)
    out = tmp_path / "run"
    assert main(["run", "variation", "--data", f"spells={spells_file}", "--out", str(out), "--quiet"]) == 0
    # read once, by DuckDB (the default), and never again for the scan; the optional deaths input is not read
    assert reads == Counter({("duckdb", str(spells_file)): 1}), reads
    record = json.loads((out / "run.json").read_text())
    assert record["engine"] == "duckdb" and "engine" not in record["parameters"]
    spells = record["inputs"]["spells"]
    assert spells["sha256"] == hashlib.sha256(spells_file.read_bytes()).hexdigest()
    assert spells["rows"] == 300 and spells["checked_by"] == "duckdb" and spells["file"] == "spells.parquet"
    assert spells["bytes"] == spells_file.stat().st_size
    assert "<strong>engine:</strong> duckdb" in (out / "report.html").read_text(encoding="utf-8")
    assert list((tmp_path / "tmp").iterdir()) == []  # the identifier values kept for the scan are gone
    assert sorted(p.name for p in spells_file.parent.iterdir()) == ["spells.parquet"]  # the input untouched


def test_the_scan_finds_a_planted_identifier_without_reading_the_input_again(
    tmp_path, spells_file, reads, monkeypatch, capsys
):
    patient = pd.read_parquet(spells_file)["patient_id"].iloc[123]
    stand_in(monkeypatch, printed=f"a patient to look at: {patient} (ward 3)")
    out = tmp_path / "run"
    assert main(["run", "variation", "--data", f"spells={spells_file}", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Nothing was written" in err and "1 input identifier value(s)" in err and patient not in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert reads == Counter({("duckdb", str(spells_file)): 1}), reads
    # a whole value of a table, and a spell id: found too
    spell = pd.read_parquet(spells_file)["spell_id"].iloc[7]
    stand_in(monkeypatch, table=f"provider_code,note\nT01,{spell}\n")
    assert main(["run", "variation", "--data", f"spells={spells_file}", "--out", str(out), "--quiet"]) == 1
    assert "tables/result.csv: 1 input identifier value(s)" in capsys.readouterr().err


def test_a_clean_run_with_numbers_like_identifiers_passes(tmp_path, spells_file, monkeypatch):
    # ids of other patients (not in this extract), short numbers and counts side by side are not identifiers
    first = pd.read_parquet(spells_file)["patient_id"]
    absent = next(f"P{n:07d}" for n in range(9_000_000, 9_999_999) if f"P{n:07d}" not in set(first))
    stand_in(monkeypatch, table=f"provider_code,spells,note\nT01,1234567,{absent}\nT02,300 7,S00999999\n")
    assert (
        main(
            ["run", "variation", "--data", f"spells={spells_file}", "--out", str(tmp_path / "run"), "--quiet"]
        )
        == 0
    )


def test_identifiers_in_outputs_looks_up_kept_values_and_small_inputs(tmp_path):
    kept = tmp_path / "ids.parquet"
    pd.DataFrame({"v": ["P0000001", "S0000001", "P0000002"]}).to_parquet(kept)
    outputs = tmp_path / "out"
    outputs.mkdir()
    (outputs / "t.csv").write_text("a,b\nP0000002,x\nrow 5,AB 123456\n", encoding="utf-8")
    (outputs / "log.txt").write_text("see S0000001\n", encoding="utf-8")
    big = run.CheckedInput(
        "spells",
        tmp_path / "s.csv",
        "s.csv",
        "0",
        3,
        "duckdb",
        identifier_file=kept,
        identifier_columns=("v",),
    )
    small = run.CheckedInput(
        "series",
        tmp_path / "x.csv",
        "x.csv",
        "0",
        1,
        "reader",
        identifier_values=frozenset({"AB 123456", "Q7654321"}),
    )
    found = run.identifiers_in_outputs(outputs, {"spells": big, "series": small})
    assert found == {"P0000002", "S0000001", "AB 123456"}  # a whole value with a space too
    assert (
        run.identifiers_in_outputs(
            outputs, {"series": run.CheckedInput("series", tmp_path, "x", "0", 1, "reader")}
        )
        == set()
    )


def test_a_bad_input_is_refused_before_anything_is_written(tmp_path, spells_file, monkeypatch, capsys):
    bad = pd.read_parquet(spells_file)
    bad.loc[4, "discharge_date"] = "1999-01-01"
    path = tmp_path / "in" / "bad.parquet"
    bad.to_parquet(path, index=False)
    ran = []
    monkeypatch.setattr(cli, "_execute", lambda *a: ran.append(a))
    assert (
        main(["run", "variation", "--data", f"spells={path}", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    )
    err = capsys.readouterr().err
    assert "column 'discharge_date': expected a date not before admission_date" in err and "row 6:" in err
    assert ran == [] and sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_the_engine_a_notebook_reads_with_is_its_default_unless_given():
    declared = cli.notebook_parameters(cli.available_notebooks()["variation"])
    assert cli.notebook_engine({}, declared) == run.DEFAULT_ENGINE == "duckdb"
    assert cli.notebook_engine({"engine": "spark"}, declared) == "spark"
    assert cli.notebook_engine({}, {"data_spells": {}}) is None  # no choice: read with pandas
    request = run.RunRequest("x", Path("x"), {}, {}, {}, Path("out"), engine=None)
    assert run.checking_engine("spells", request) == "pandas" and run.run_engine(request) == "pandas"


# --------------------------------------------------------------------------- helpers.comparison
def test_comparison_from_spells_is_the_case_mix_model_and_from_a_file_the_file(tmp_path):
    from helpers import funnel

    compared = comparison.prepare_comparison(indicator="los")
    prepared = variation.prepare_variation(None, "los", engine="duckdb")
    pd.testing.assert_frame_equal(compared.funnel_input, prepared.model.providers)
    assert (compared.source, compared.kind, compared.scale) == ("spells", "ratio", prepared.model.dispersion)
    assert compared.years == prepared.years and compared.bed_days_per_event == 1.0
    assert [t.name for t in compared.model_tables] == ["casemix_diagnostics", "calibration", "casemix_terms"]
    assert compared.precision_label == "Expected bed days" and compared.opportunity_unit == "bed days"
    published = compared.publish_model_tables(tmp_path)
    assert sorted(p.stem for p in tmp_path.glob("*.csv")) == sorted(published)
    assert comparison.Comparison.show(published, "calibration") is not comparison.NO_MODEL_NOTE

    table = pd.DataFrame(
        {"provider_code": ["A", "B", "A"], "numerator": [3, 10, 4], "denominator": [50, 80, 60]}
    )
    path = tmp_path / "indicator.csv"
    table.to_csv(path, index=False)
    from_file = comparison.prepare_comparison(None, path, "four_hour_breaches", higher_is_better=False)
    expected, kind = funnel.from_indicator_table(
        io.load_frame(path, {"provider_code": "string"}, "indicator", None, comparison.INDICATOR_FILE_COLUMNS)
    )
    pd.testing.assert_frame_equal(from_file.funnel_input, expected)
    assert from_file.funnel_input["observed"].tolist() == [7, 10] and kind == from_file.kind == "proportion"
    assert (from_file.scale, from_file.years, from_file.exclusions, from_file.model_tables) == (
        1.0,
        1,
        None,
        (),
    )
    assert from_file.bed_days_per_event is None and from_file.opportunity_unit == "events"
    assert from_file.publish_model_tables(tmp_path / "none") == {} and not (tmp_path / "none").exists()
    assert comparison.Comparison.show({}, "calibration") == comparison.NO_MODEL_NOTE
    with pytest.raises(io.InputError, match="indicator must be one of"):
        comparison.prepare_comparison(None, None, "four_hour_breaches")


def test_a_stop_during_the_checks_leaves_no_identifier_values_behind(
    tmp_path, spells_file, monkeypatch, capsys
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    check = run.check_contract_table

    def stopped(name, path, column_map, engine_name, keep):
        check(
            name, path, column_map, engine_name, keep
        )  # the checked table (with its identifiers) is kept, then Ctrl+C
        assert list(keep.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "check_contract_table", stopped)
    assert (
        main(
            ["run", "variation", "--data", f"spells={spells_file}", "--out", str(tmp_path / "run"), "--quiet"]
        )
        == 130
    )
    assert "stopped (Ctrl+C); nothing was written" in capsys.readouterr().err
    assert list((tmp_path / "tmp").iterdir()) == [] and not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- checked once, read by the kernel
def typed_rows(src: contract.TableSource) -> pd.DataFrame:
    """The contract columns of a table read by DuckDB, in file order, with their order numbers."""
    columns = ", ".join(f'"{c}"' for c in src.present)
    return src.backend.query(f"SELECT {columns}, _rownum FROM ({src.typed_sql}) AS v ORDER BY _rownum")


def test_the_notebook_reads_the_table_the_command_checked_not_the_file_again(
    tmp_path, spells_file, reads, monkeypatch
):
    seen = {}

    def execute(nb_path, executed, params, quiet):
        # what the notebook's kernel does: open the spells it was given (the kernel inherits the environment)
        src = contract.open_table("spells", params["data_spells"])
        try:
            seen["typed_sql"] = src.typed_sql
            seen["tables"] = set(
                src.backend.query("SELECT table_name FROM duckdb_tables() WHERE temporary")["table_name"]
            )
            seen["rows"] = typed_rows(src)
            seen["stats"] = (src.rows, src.stats["n_rows"], len(src.stats["admissions_by_month"]))
        finally:
            src.backend.close()
        nbformat.write(nbformat.read(nb_path, as_version=4), executed)
        (Path(params["output_dir"]) / "result.csv").write_text("provider_code,spells\nT01,100\n")

    monkeypatch.setattr(cli, "_execute", execute)
    out = tmp_path / "run"
    assert main(["run", "variation", "--data", f"spells={spells_file}", "--out", str(out), "--quiet"]) == 0
    # the kernel read the checked table the command kept, and built no typed table of its own
    assert "read_parquet(" in seen["typed_sql"] and "spells_typed" not in seen["tables"]
    fresh = contract.open_table("spells", spells_file)  # outside a run: read and checked from the file
    try:
        assert "read_parquet(" not in fresh.typed_sql
        pd.testing.assert_frame_equal(seen["rows"], typed_rows(fresh))
        assert seen["stats"] == (300, fresh.stats["n_rows"], len(fresh.stats["admissions_by_month"]))
    finally:
        fresh.backend.close()
    assert contract.CHECKED_TABLES_ENV not in os.environ


def test_a_kept_table_is_used_only_for_the_same_file_and_column_map(tmp_path, spells_file, monkeypatch):
    kept = tmp_path / "kept"
    contract.open_table("spells", spells_file, keep_in=kept).backend.close()
    monkeypatch.setenv(contract.CHECKED_TABLES_ENV, str(kept))

    def attached(path, column_map=None) -> bool:
        src = contract.open_table("spells", path, column_map)
        src.backend.close()
        return "read_parquet(" in src.typed_sql

    assert attached(spells_file)
    assert not attached(spells_file, {"spell_id": "spell_id"})  # another column map: checked again
    other = tmp_path / "other.parquet"
    pd.read_parquet(spells_file).iloc[:200].to_parquet(other, index=False)
    assert not attached(other)  # another file
    pd.read_parquet(spells_file).iloc[:200].to_parquet(spells_file, index=False)  # the file changed since
    assert not attached(spells_file)
    bad = pd.read_parquet(spells_file)
    bad.loc[3, "age"] = "300"
    bad.to_parquet(spells_file, index=False)  # and a changed file is checked again, so its fault is found
    with pytest.raises(io.InputError, match="column 'age'"):
        attached(spells_file)
