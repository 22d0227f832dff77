"""What makes two `handbook run`s the same run (tests/shared_runs.py): notebook, inputs by name, file name
and content, parameters in order, options."""

from __future__ import annotations

import os

import pytest
from shared_runs import REPO, HandbookRuns, run_key, run_spec


def test_the_same_inputs_in_two_folders_are_one_run_and_any_difference_is_another(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "spells.csv").write_text("spell_id\n1\n")
    same = run_key(run_spec("variation", {"spells": a / "spells.csv"}, ["indicator=los"]))
    assert same == run_key(run_spec("variation", {"spells": b / "spells.csv"}, ["indicator=los"]))
    (b / "other.csv").write_text("spell_id\n1\n")  # the file's name is shown in the report
    (a / "spells2.csv").write_text("spell_id\n2\n")
    for other in [
        run_spec("variation", {"spells": b / "other.csv"}, ["indicator=los"]),
        run_spec("variation", {"spells": a / "spells2.csv"}, ["indicator=los"]),
        run_spec("variation", {"spells": a / "spells.csv"}, ["indicator=mortality"]),
        run_spec("variation", {"spells": a / "spells.csv"}, ["indicator=los"], ["--pdf"]),
        run_spec("spc", {"spells": a / "spells.csv"}, ["indicator=los"]),
    ]:
        assert run_key(other) != same, other
    address = "postgresql://analyst@127.0.0.1:5432/handbook?table=apc.spells"
    assert run_key(run_spec("variation", {"spells": address}))[1] == (("spells", address),)


def test_a_failed_run_fails_every_test_that_reads_it_with_its_message(tmp_path):
    made = []

    def folder(name):
        made.append(tmp_path / f"{name}{len(made)}")
        made[-1].mkdir()
        return made[-1]

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    runs = HandbookRuns(folder, env, workers=1)
    spec = run_spec("no_such_notebook")
    runs.prefetch(spec)
    for _ in range(2):  # made once, reported to each reader
        with pytest.raises(AssertionError, match="No notebook called 'no_such_notebook'"):
            runs.get(spec)
    assert len(made) == 1
    runs.close()
