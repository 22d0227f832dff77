"""`handbook run` under hostile and careless input (issue 14).

One hostile but valid run of the SPC notebook is shared by several tests (a run
costs seconds; it comes from the session's ``handbook_runs``, tests/conftest.py):
a series file whose name is an HTML tag with an ``onerror`` handler, whose
groups look like spreadsheet formulas, charted as a c-chart of small counts
with a parameter value holding a script tag. The other tests are
refusals, which stop before the notebook starts.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from shared_runs import RunSpec, run_spec

from helpers import report
from helpers.cli import main

HOSTILE_NAME = "<img src=x onerror=alert(1)>.csv"
FORMULAS = ['=HYPERLINK("http://example.org/x","x")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3"]
SCRIPT_LABEL = "<script>alert(2)</script> spells"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "spells.csv"


def months(n: int, start: str = "2022-04-01") -> list[str]:
    return list(pd.date_range(start, periods=n, freq="MS").strftime("%Y-%m-%d"))


def hostile_series() -> pd.DataFrame:
    """Four series of 24 monthly counts; the first has counts of 1 to 7, the others do not."""
    frames = []
    for k, group in enumerate(FORMULAS):
        values = [(i % 7) + 1 for i in range(24)] if k == 0 else [40 + (i * 7 + k) % 11 for i in range(24)]
        frames.append(pd.DataFrame({"date": months(24), "value": values, "group": group}))
    return pd.concat(frames, ignore_index=True)


def hostile_spec(folder: Path, small_spells: str) -> RunSpec:
    """`handbook run spc --data series=HOSTILE_NAME --data spells=... --param chart=c --param better=increase
    --param measure_label=SCRIPT_LABEL`."""
    src = folder / HOSTILE_NAME
    hostile_series().to_csv(src, index=False)
    return run_spec(
        "spc",
        {"series": src, "spells": small_spells.split("=", 1)[1]},
        ["chart=c", "better=increase", f"measure_label={SCRIPT_LABEL}"],
    )


#: The hostile run, started in the background when the session starts (tests/conftest.py).
PREFETCH_RUNS = {"hostile_run": lambda folder: [hostile_spec(folder, write_small_spells(folder))]}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, small_spells, handbook_runs):
    return handbook_runs.get(hostile_spec(tmp_path_factory.mktemp("hostile"), small_spells))


# --------------------------------------------------------------------------- S1 nothing live in a spreadsheet
@pytest.mark.parametrize(
    "text,expected",
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-250.5", "-250.5"),
        ("-3", "-3"),
        ("-1e-05", "-1e-05"),
        ("T01", "T01"),
        ("", ""),
        (-2, -2),
        (None, None),
    ],
)
def test_inert_text_neutralises_formula_starts_and_keeps_negative_numbers(text, expected):
    assert report.inert_text(text) == expected


def test_formula_like_text_is_inert_in_every_csv_and_the_workbook(hostile_run):
    for table in (hostile_run / "tables").glob("*.csv"):
        with open(table, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                for cell in row:
                    live = cell.startswith(report.FORMULA_STARTS) and not re.fullmatch(
                        r"-[\d.]+(e-?\d+)?", cell
                    )
                    assert not live, (table.name, cell)
    spc = pd.read_csv(hostile_run / "tables" / "spc.csv", dtype=str, keep_default_na=False)
    assert set(spc["group"]) == {"'" + f for f in FORMULAS}
    wb = load_workbook(hostile_run / "results.xlsx")  # not read-only: formulas show as data_type "f"
    formulas = [
        (ws.title, c.coordinate)
        for ws in wb.worksheets
        for row in ws.iter_rows()
        for c in row
        if c.data_type == "f"
    ]
    assert formulas == []
    header = [c.value for c in wb["spc"][1]]
    column = header.index("group") + 1
    groups = {c.value for c in next(wb["spc"].iter_cols(min_col=column, max_col=column, min_row=2))}
    assert groups == {"'" + f for f in FORMULAS}


# --------------------------------------------------------------------------- S3 report.html
def _live_elements(html: str) -> list[str]:
    """Elements a browser would build with an event handler (``on…``), or an ``<img src=x>``.

    Parsed as a browser parses, so escaped text inside an attribute value (the summary's
    ``data-where``) or in the page's text is not mistaken for markup."""
    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            names = {name for name, _ in attrs}
            if any(name.startswith("on") for name in names) or (
                tag == "img" and dict(attrs).get("src") == "x"
            ):
                found.append(f"<{tag} {attrs}>")

    Parser().feed(html)
    return found


def test_report_escapes_the_file_name_and_parameters_and_forbids_scripts(hostile_run):
    html = (hostile_run / "report.html").read_text(encoding="utf-8")
    live = _live_elements(html)
    assert live == [], live  # no element carries an event handler, and the hostile <img> is not an element
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in html  # the name is shown, as text
    assert "<script" not in html and "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy and html.index(policy.group(0)) < html.index("<style")
    rules = dict(r.strip().split(" ", 1) for r in policy.group(1).split(";"))
    assert rules["default-src"] == "'none'" and "script-src" not in rules  # so no script of any kind
    assert rules["img-src"] == "data:"  # the embedded figures still show
    assert "data:image/png;base64," in html
    # every resource the page refers to is embedded
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


# --------------------------------------------------------------------------- quick runs
@pytest.fixture
def quick_run(monkeypatch, hostile_run):
    """``handbook run`` with the notebook's execution replaced by the hostile run's executed notebook and tables.

    Everything else a run does (checks, report, workbook, run.json, scan, the final move) is real.
    """
    from helpers import cli

    def execute(nb_path, executed, params, quiet):
        shutil.copy(hostile_run / "spc.ipynb", executed)
        for table in (hostile_run / "tables").glob("*.csv"):
            shutil.copy(table, Path(params["output_dir"]) / table.name)

    monkeypatch.setattr(cli, "_execute", execute)
    return execute


def write_small_spells(folder: Path) -> str:
    path = folder / "spells.csv"
    pd.read_csv(SAMPLE, dtype=str, keep_default_na=False, nrows=300).to_csv(path, index=False)
    return f"spells={path}"


@pytest.fixture(scope="module")
def small_spells(tmp_path_factory) -> str:
    """``--data spells=`` a 300-row extract: the checks before a quick run then take a moment."""
    return write_small_spells(tmp_path_factory.mktemp("small"))


def leftovers(folder: Path) -> list[str]:
    """Hidden staging or set-aside folders a run left beside its results."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- D1, D8, D10, D11 --out
def test_force_never_deletes_a_folder_that_is_not_a_previous_run(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "extracts"
    folder.mkdir()
    spells = folder / "spells.csv"
    shutil.copy(SAMPLE, spells)
    (folder / "notes.txt").write_text("my notes")
    before = sorted(p.name for p in folder.iterdir())
    assert main(["run", "spc", "--data", f"spells={spells}", "--out", str(folder), "--force", "--quiet"]) == 2
    assert "holds the input spells.csv; write the results to another folder" in capsys.readouterr().err
    monkeypatch.chdir(folder)
    assert main(["run", "spc", "--data", "spells=spells.csv", "--out", ".", "--force", "--quiet"]) == 2
    assert "holds the input spells.csv" in capsys.readouterr().err
    assert main(["run", "spc", "--out", "/", "--force", "--quiet"]) == 2
    assert "holds files that are not a previous run (no run.json)" in capsys.readouterr().err
    assert (
        sorted(p.name for p in folder.iterdir()) == before
        and (folder / "notes.txt").read_text() == "my notes"
    )


def test_force_replaces_only_a_previous_run_atomically(tmp_path, small_spells, quick_run, capsys):
    out = tmp_path / "run"
    assert main(["run", "spc", "--data", small_spells, "--out", str(out), "--quiet"]) == 0
    first = (out / "run.json").read_bytes()
    assert main(["run", "spc", "--data", small_spells, "--out", str(out), "--quiet"]) == 2
    assert "holds a previous run; use --force to replace it" in capsys.readouterr().err
    started = int(time.time())
    while int(time.time()) == started:  # run.json records the time to the second: let it change
        time.sleep(0.05)
    assert main(["run", "spc", "--data", small_spells, "--out", str(out), "--force", "--quiet"]) == 0
    assert (out / "run.json").read_bytes() != first  # replaced (its time differs)
    assert leftovers(tmp_path) == []
    # a previous run folder into which the user has put the input is not replaced
    shutil.copy(SAMPLE, out / "spells.csv")
    assert (
        main(
            ["run", "spc", "--data", f"spells={out / 'spells.csv'}", "--out", str(out), "--force", "--quiet"]
        )
        == 2
    )
    assert "holds the input spells.csv" in capsys.readouterr().err and (out / "spells.csv").is_file()


def test_a_second_run_to_the_same_folder_does_not_overwrite_the_first(
    tmp_path, small_spells, quick_run, monkeypatch, capsys
):
    """Two runs started together both find --out free; the one that finishes second must fail, not replace."""
    out = tmp_path / "run"
    write_run_json = report.write_run_json

    def meanwhile(path, record):  # the other run finishes while this one is writing
        out.mkdir(exist_ok=True)
        (out / "run.json").write_text('{"notebook": "theirs"}')
        write_run_json(path, record)

    monkeypatch.setattr(report, "write_run_json", meanwhile)
    assert main(["run", "spc", "--data", small_spells, "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "was written by someone else while this run was going; nothing was replaced" in err
    assert (out / "run.json").read_text() == '{"notebook": "theirs"}' and leftovers(tmp_path) == []
    # with --force, a previous run that changes while this one works is put back untouched
    assert main(["run", "spc", "--data", small_spells, "--out", str(out), "--force", "--quiet"]) == 1
    assert "written by someone else" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["run.json"] and leftovers(tmp_path) == []


def test_out_a_file_an_unwritable_folder_a_full_disk_and_an_alias_bomb_give_messages(
    tmp_path, small_spells, quick_run, monkeypatch, capsys
):
    target = tmp_path / "report.txt"
    target.write_text("mine")
    assert main(["run", "spc", "--data", small_spells, "--out", str(target), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is a file; give the name of a folder" in err and target.read_text() == "mine"
    assert (
        main(["run", "spc", "--data", small_spells, "--out", "/proc/handbook_results", "--quiet"]) == 2
    )  # unwritable even by root
    err = capsys.readouterr().err
    assert "Cannot write in /proc" in err and "Traceback" not in err

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "x.xlsx"))

    monkeypatch.setattr(report, "write_workbook", full)
    assert main(["run", "spc", "--data", small_spells, "--out", str(tmp_path / "run"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Could not write the results (No space left on device" in err and "nothing was written" in err
    assert not (tmp_path / "run").exists() and leftovers(tmp_path) == []

    bomb = tmp_path / "map.yaml"
    bomb.write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
        )
    )
    assert (
        main(
            [
                "run",
                "spc",
                "--data",
                small_spells,
                "--map",
                str(bomb),
                "--out",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "uses YAML anchors or aliases" in capsys.readouterr().err


def test_sigterm_removes_the_staging_folder_like_ctrl_c(tmp_path, small_spells):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helpers.cli",
            "run",
            "spc",
            "--data",
            small_spells,
            "--out",
            str(out),
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not leftovers(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert leftovers(tmp_path), "the run never started its staging folder"
    time.sleep(1.0)  # into the notebook
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped (SIGTERM); nothing was written" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- S2, D13 every input through one path
def test_a_data_parameter_is_an_input_checked_hashed_scanned_and_recorded(
    tmp_path, small_spells, quick_run, capsys
):
    series = hostile_series()
    plain = tmp_path / "series.csv"
    series.to_csv(plain, index=False)
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "spc",
                "--data",
                small_spells,
                "--param",
                f"data_series={plain}",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    record = json.loads((out / "run.json").read_text())
    assert record["inputs"]["series"]["file"] == "series.csv" and record["inputs"]["series"]["rows"] == len(
        series
    )
    assert "data_series" not in record["parameters"]
    about = [
        c.value for c in next(load_workbook(out / "results.xlsx")["about"].iter_cols(min_col=2, max_col=2))
    ]
    assert any(str(v).startswith("series: series.csv, 96 rows, SHA-256") for v in about), about
    # the same file given twice, and a file that is not there
    assert (
        main(
            [
                "run",
                "spc",
                "--data",
                small_spells,
                "--data",
                f"series={plain}",
                "--param",
                f"data_series={plain}",
                "--out",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "is given twice" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "spc",
                "--data",
                small_spells,
                "--param",
                f"data_series={tmp_path / 'nope.csv'}",
                "--out",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "Cannot find the file for series" in capsys.readouterr().err
    # a patient id in that file is looked for in the outputs: here the (stand-in) notebook writes it
    leaky = tmp_path / "leaky.csv"
    series.assign(patient_id=["P" + "7" * 7] + ["P0000001"] * (len(series) - 1)).to_csv(leaky, index=False)
    execute = quick_run

    def leak(nb_path, executed, params, quiet):
        execute(nb_path, executed, params, quiet)
        (Path(params["output_dir"]) / "leak.csv").write_text("provider_code,who\nT01,P7777777\n")

    from helpers import cli

    cli._execute = leak
    assert (
        main(
            [
                "run",
                "spc",
                "--data",
                small_spells,
                "--param",
                f"data_series={leaky}",
                "--out",
                str(tmp_path / "y"),
                "--quiet",
            ]
        )
        == 1
    )
    assert "tables/leak.csv: 1 input identifier value(s)" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize(
    "param,phrase",
    [
        ("seed=abc", "--param seed=abc: expected a number, like the notebook's default 2026"),
        ("adjust_for_deprivation=maybe", "expected true or false"),
        ("limits=95", "expected a list such as [a, b]"),
        ("column_map=[a]", "expected a mapping such as {a: b}"),
    ],
)
def test_parameter_types_are_checked_before_the_run(param, phrase, tmp_path, capsys):
    assert main(["run", "variation", "--param", param, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- D17 the identifier scan
HASH_WITH_A_VALID_NUMBER = (
    "284de502c9847342318c17d474733ef468fbdbe252cddf6e4b4be0676706d9d0"  # holds 9847342318
)


def plant(quick_run, monkeypatch, table: str, printed: str, figure_text: str) -> None:
    """Make the stand-in notebook write ``table`` as tables/planted.csv, print ``printed`` and label a figure."""
    import nbformat

    from helpers import cli

    def execute(nb_path, executed, params, quiet):
        quick_run(nb_path, executed, params, quiet)
        (Path(params["output_dir"]) / "planted.csv").write_text(table, encoding="utf-8")
        nb = nbformat.read(executed, as_version=4)
        code = [
            c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
        ]
        code[-1].outputs.append(nbformat.v4.new_output("stream", name="stdout", text=printed + "\n"))
        svg_output = next(o for c in code for o in c.outputs if "image/svg+xml" in o.get("data", {}))
        svg = svg_output["data"]["image/svg+xml"]
        svg_output["data"]["image/svg+xml"] = svg.replace("</svg>", f"<!-- {figure_text} --></svg>")
        nbformat.write(nb, executed)

    monkeypatch.setattr(cli, "_execute", execute)


def test_counts_hashes_and_pounds_side_by_side_are_not_nhs_numbers(
    tmp_path, small_spells, quick_run, monkeypatch, capsys
):
    from helpers.disclosure import is_valid_nhs_number

    assert is_valid_nhs_number("2259651917") and is_valid_nhs_number(
        "9847342318"
    )  # both would pass if joined
    table = (
        "step,rows_before,rows_excluded,input_sha256,cost_gbp,rate\n"
        f'all spells,225965,1917,{HASH_WITH_A_VALID_NUMBER},"£1,234,567,890",0.9434765919\n'
    )
    plant(
        quick_run,
        monkeypatch,
        table,
        f"225965 1917 spells; SHA-256 {HASH_WITH_A_VALID_NUMBER}; £943,476,591",
        "225965 1917",
    )
    out = tmp_path / "run"
    assert main(["run", "spc", "--data", small_spells, "--out", str(out), "--quiet"]) == 0, (
        capsys.readouterr().err
    )
    assert "225965" in (out / "tables" / "planted.csv").read_text()


def test_a_planted_nhs_number_stops_the_run_whichever_output_holds_it(
    tmp_path, small_spells, quick_run, monkeypatch, capsys
):
    table = "provider_code,note\nT01,patient 943 476 5919\n"
    plant(quick_run, monkeypatch, table, "looked at 4010232137 today", "9434765919")
    out = tmp_path / "run"
    assert main(["run", "spc", "--data", small_spells, "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Nothing was written: the outputs would contain identifiers." in err
    for where in [
        "tables/planted.csv: 1 valid",
        "results.xlsx: 1 valid",
        "report.html: 1 valid",
        "spc.ipynb: 2 valid",
        "figure_01.svg: 1 valid",
    ]:
        assert where in err, (where, err)
    assert not out.exists() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- D2 small counts in SPC series
def test_small_counts_of_an_spc_series_are_hidden_in_tables_and_workbook(hostile_run):
    spc_csv = pd.read_csv(hostile_run / "tables" / "spc.csv", dtype=str, keep_default_na=False)
    small, large = (
        spc_csv[spc_csv["group"] == "'" + FORMULAS[0]],
        spc_csv[spc_csv["group"] != "'" + FORMULAS[0]],
    )
    assert len(small) == 24 and set(small["value"]) == {"*"}  # counts of 1 to 7 every month
    assert set(small["moving_range"]) <= {"*", ""}  # a difference of two counts would give them back
    assert "*" not in set(large["value"]) and pd.to_numeric(large["value"]).min() >= 40
    summary = pd.read_csv(hostile_run / "tables" / "spc_summary.csv", dtype=str, keep_default_na=False)
    assert summary.set_index("group").loc["'" + FORMULAS[0], "latest_value"] == "*"
    wb = load_workbook(hostile_run / "results.xlsx", read_only=True)
    rows = list(wb["spc"].iter_rows(values_only=True))
    header = rows[0]
    shown = [r[header.index("value")] for r in rows[1:] if r[header.index("group")] == "'" + FORMULAS[0]]
    assert shown == ["*"] * 24


def test_a_hidden_point_is_a_gap_on_the_charts():
    import matplotlib

    matplotlib.use("Agg")
    from helpers import spc
    from helpers.plots import spc as spc_plots

    series = hostile_series()
    table = spc.spc(series, chart="c", group="group", better="increase")
    table, summary = spc.suppress_small_counts(table, spc.summarise(table, better="increase"))
    multiples = spc_plots.small_multiples(table, summary)
    chart = spc_plots.spc_chart(table, summary, group=FORMULAS[0])
    panel = multiples.axes[sorted(FORMULAS).index(FORMULAS[0])]  # one panel a group, in order
    for ax in [panel, chart.axes[0]]:
        drawn = [y for line in ax.get_lines() if line.get_linestyle() == "-" for y in line.get_ydata()]
        drawn += [float(y) for c in ax.collections for _, y in c.get_offsets().filled(float("nan"))]
        assert drawn, "nothing drawn"
        points = [y for y in drawn if not pd.isna(y) and float(y).is_integer() and 1 <= y <= 7]
        assert points == []
    # the p-chart of a small numerator: its proportion is hidden too
    p = pd.DataFrame(
        {"date": pd.to_datetime(months(15)), "numerator": [30] * 14 + [3], "denominator": [400] * 15}
    )
    p_table = spc.spc(p, chart="p", numerator="numerator", denominator="denominator")
    table, summary = spc.suppress_small_counts(p_table, spc.summarise(p_table))
    assert table["value"].iloc[-1] == "*" and summary["latest_value"].iloc[0] == "*"
    assert table["value"].iloc[0] != "*"


# --------------------------------------------------------------------------- D4-D7, D9, D12, D14 reading rules
def extract(n: int = 60) -> pd.DataFrame:
    return pd.read_csv(SAMPLE, dtype=str, keep_default_na=False, nrows=n)


def refused(tmp_path: Path, capsys, data: Path | str, *extra: str, notebook: str = "spc") -> str:
    """Run ``handbook run`` on a bad input: it must exit 2, write nothing and leave the input as it was."""
    data = Path(data)
    before = data.read_bytes() if data.is_file() else None
    out = tmp_path / "out"
    status = main(["run", notebook, "--data", f"spells={data}", *extra, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and not out.exists() and leftovers(tmp_path) == []
    if before is not None:
        assert data.read_bytes() == before
    return err


def test_a_comma_is_only_a_thousands_separator(tmp_path, capsys):
    df = extract()
    df.loc[4, "age"] = "4,5"
    df.loc[6, "spell_cost"] = "12,5"
    df.loc[7, "spell_cost"] = "1,234.50"  # fine
    path = tmp_path / "extract.csv"
    df.to_csv(path, index=False)
    err = refused(tmp_path, capsys, path, notebook="variation")
    assert (
        "column 'age': expected a number with commas only between thousands" in err
        and "row 6: age=4,5" in err
    )
    assert "row 8: spell_cost=12,5" in err and "1,234.50" not in err
    from helpers import io

    df.loc[4, "age"], df.loc[6, "spell_cost"] = "45", "12.5"
    df.to_csv(path, index=False)
    assert io.load_table("spells", path)["spell_cost"].iloc[7] == 1234.5


def test_dates_outside_the_plausible_window_are_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HANDBOOK_DATES", "")  # restored after the test: --dates below sets it
    df = extract()
    df.loc[2, "admission_date"] = "1901-05-01"
    df.loc[9, "discharge_date"] = "2099-01-01"
    path = tmp_path / "extract.csv"
    df.to_csv(path, index=False)
    err = refused(tmp_path, capsys, path, notebook="variation")
    assert (
        "column 'admission_date': expected a date from 1990-01-01 to " in err
        and "row 4: admission_date=1901-05-01" in err
    )
    assert (
        "column 'discharge_date': expected a date from 1990-01-01" in err
        and "row 11: discharge_date=2099-01-01" in err
    )
    # the window is a parameter: a wider one lets 1901 through, and a malformed one is refused
    err = refused(tmp_path, capsys, path, "--dates", "1900-01-01:2050-12-31", notebook="variation")
    assert "admission_date" not in err and "row 11: discharge_date=2099-01-01" in err and "2050-12-31" in err
    err = refused(tmp_path, capsys, path, "--dates", "2030:1990", notebook="variation")
    assert "--dates expects FROM:TO as two ISO dates" in err


def test_repeated_column_names_are_refused_not_resolved(tmp_path, capsys):
    df = extract()
    path = tmp_path / "extract.csv"
    text = df.to_csv(index=False).splitlines()
    # age twice, and age beside "age " (a trailing space)
    for header, name in [(text[0] + ",age", "'age' (column A"), (text[0] + ",age ", "'age ' (column")]:
        path.write_text("\n".join([header] + [line + ",50" for line in text[1:]]) + "\n")
        err = refused(tmp_path, capsys, path)
        assert (
            "appear more than once (ignoring case and spaces)" in err
            and "'age'" in err
            and name.split(" (")[0] in err
        )


def test_limits_before_reading_a_huge_header(tmp_path, capsys):
    path = tmp_path / "wide.csv"
    path.write_text("a" + "," * 400_000 + "\n1\n")  # about 400 KB of header
    assert "its first line (the header) is longer than 256 KB" in refused(tmp_path, capsys, path)
    path.write_text(",".join(f"c{i}" for i in range(3000)) + "\n" + ",".join("1" * 3000) + "\n")
    assert "it has 3,000 columns; an extract has at most 2,000" in refused(tmp_path, capsys, path)


def test_utf16_semicolons_and_a_pipe_get_their_own_messages(tmp_path, capsys):
    df = extract(10)
    path = tmp_path / "extract.csv"
    path.write_bytes(df.to_csv(index=False).encode("utf-16"))
    err = refused(tmp_path, capsys, path)
    assert "it is UTF-16 text" in err and "Save it as CSV UTF-8" in err
    path.write_text(df.to_csv(index=False, sep=";"))
    assert "separated by semicolons (;)" in refused(tmp_path, capsys, path)
    path.unlink()
    os.mkfifo(path)
    assert "it is not an ordinary file (a pipe" in refused(tmp_path, capsys, path)


def test_excel_reads_the_active_visible_sheet_and_parquet_float_codes(tmp_path):
    from openpyxl import Workbook

    from helpers import contract, io

    df = extract(30)
    wb = Workbook()
    hidden = wb.active
    hidden.title = "old export"
    hidden.append(["nothing", "here"])
    hidden.sheet_state = "hidden"
    sheet = wb.create_sheet("spells")
    sheet.append(list(df.columns))
    for row in df.itertuples(index=False):
        sheet.append(list(row))
    wb.active = 1
    path = tmp_path / "extract.xlsx"
    wb.save(path)
    loaded = io.load_input("spells", path)
    assert len(loaded.frame) == 30 and loaded.summary.sheet == "spells"
    # codes saved by pandas as floats (a nullable integer column written to Parquet)
    floats = df.assign(
        admission_method=df["admission_method"].astype(float),
        sex=df["sex"].astype(float),
        age=df["age"].astype(float),
    )
    floats.to_parquet(tmp_path / "extract.parquet")
    df.to_csv(tmp_path / "x.csv", index=False)
    reference = io.load_table("spells", tmp_path / "x.csv")
    parquet = io.load_table("spells", tmp_path / "extract.parquet")
    pd.testing.assert_series_equal(parquet["admission_method"], reference["admission_method"])
    assert contract.validate_table("spells", tmp_path / "extract.parquet", None, "duckdb") == 30


# --------------------------------------------------------------------------- D3 small providers in figures
def test_providers_starred_in_the_tables_are_not_drawn(tmp_path, capfd):
    """Funnel, caterpillar and opportunity figures of an indicator file with two providers of 1 to 7 events."""
    rng = __import__("random").Random(1)
    rows = []
    for i in range(20):
        d = rng.randint(800, 1500)
        rows.append(
            {"provider_code": f"R{i:02d}", "numerator": int(d * rng.uniform(0.08, 0.14)), "denominator": d}
        )
    rows += [
        {"provider_code": "SMALLA", "numerator": 2, "denominator": 5},  # 5 cases
        {"provider_code": "SMALLB", "numerator": 3, "denominator": 900},
    ]  # 3 events
    src = tmp_path / "indicator.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "variation",
                "--data",
                f"indicator={src}",
                "--param",
                "indicator=breaches",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    quiet = capfd.readouterr()
    assert quiet.out == "" and quiet.err == ""  # --quiet: nothing from papermill, the kernel or the run
    table = pd.read_csv(out / "tables" / "provider_indicator.csv", dtype=str).set_index("provider_code")
    assert table.loc["SMALLA", "denominator"] == "*" and table.loc["SMALLB", "observed"] == "*"
    svgs = {p.name: p.read_text() for p in sorted((out / "figures").glob("*.svg"))}
    assert len(svgs) >= 2
    from helpers.disclosure import svg_text

    texts = {name: svg_text(svg) for name, svg in svgs.items()}
    assert any("R00" in t for t in texts.values())  # the caterpillar names every provider it draws
    assert not any("SMALL" in t for t in texts.values())
    html = (out / "report.html").read_text()
    assert "SMALLA" in html  # listed in the table, starred, but drawn nowhere


def test_the_quadrant_leaves_out_a_provider_of_1_to_7_patients():
    import matplotlib

    matplotlib.use("Agg")
    from helpers import value as hv
    from helpers.plots import value as pv

    rows = [("A", 100, 0.30, 5000), ("B", 100, 0.40, 6000), ("C", 100, 0.35, 7000), ("E", 5, 0.90, 100)]
    table = pd.DataFrame(
        [
            {
                "pathway": "hip",
                "provider_code": p,
                "n": n,
                "adjusted_gain": g,
                "adjusted_gain_ci_lower": g - 0.01,
                "adjusted_gain_ci_upper": g + 0.01,
                "adjusted_cost": c,
                "adjusted_cost_ci_lower": c - 50,
                "adjusted_cost_ci_upper": c + 50,
            }
            for p, n, g, c in rows
        ]
    )
    fig = pv.quadrant_plot(hv.quadrant(table, min_patients=30), "hip")
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # A, B and C; E's mean gain and cost come from 5 patients
    assert "E" not in {t.get_text() for t in ax.texts}


# --------------------------------------------------------------------------- D16 reproducible report
def test_two_runs_give_the_same_report_but_for_the_time(tmp_path, small_spells, quick_run):
    pages = []
    for name in ["a", "b"]:
        assert main(["run", "spc", "--data", small_spells, "--out", str(tmp_path / name), "--quiet"]) == 0
        html = (tmp_path / name / "report.html").read_text(encoding="utf-8")
        pages.append(re.sub(r"run at:</strong> [0-9T:-]+", "", html))
    assert pages[0] == pages[1]
    assert re.findall(r'id="cell-id=([^"]+)"', pages[0])[:3] == ["cell-000", "cell-001", "cell-002"]


def test_an_indicator_file_of_one_provider_is_a_message_not_a_failure(tmp_path, capsys):
    src = tmp_path / "indicator.csv"
    src.write_text("provider_code,numerator,denominator\nR01,40,400\n")
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "variation",
                "--data",
                f"indicator={src}",
                "--param",
                "indicator=breaches",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "At least 3 providers are needed to estimate overdispersion; got 1" in err and "Traceback" not in err
    )
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_named_excel_sheet_is_read_and_a_wrong_name_is_a_message(tmp_path, capsys, monkeypatch):
    from openpyxl import Workbook

    from helpers import io

    monkeypatch.setenv("HANDBOOK_EXCEL_SHEETS", "")  # restored after the test: --sheet below sets it
    df = extract(20)
    wb = Workbook()
    wb.active.title = "notes"
    wb.active.append(["read me"])
    for title, rows in [("2023-24", df.head(8)), ("2024-25", df)]:
        sheet = wb.create_sheet(title)
        sheet.append(list(df.columns))
        for row in rows.itertuples(index=False):
            sheet.append(list(row))
    path = tmp_path / "extract.xlsx"
    wb.save(path)
    err = refused(tmp_path, capsys, path, "--sheet", "spells=2025-26")
    assert "it has no sheet called '2025-26'; its sheets are 'notes', '2023-24', '2024-25'" in err
    assert "--sheet spells=x: there is no Excel input" in refused(
        tmp_path, capsys, SAMPLE, "--sheet", "spells=x"
    )
    monkeypatch.setenv("HANDBOOK_EXCEL_SHEETS", json.dumps({str(path.resolve()): "2023-24"}))
    loaded = io.load_input("spells", path)
    assert len(loaded.frame) == 8 and loaded.summary.sheet == "2023-24"
