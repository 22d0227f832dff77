"""The package as a whole: its map of modules, and that PySpark stays an optional extra.

PySpark (about 500 MB) is installed by ``make test`` from requirements-spark.txt
but not by ``make book``: so nothing the book, a notebook or ``handbook run``
imports may need it, and a user who asks for ``engine="spark"`` without it is
told what to install.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import helpers

ROOT = Path(__file__).resolve().parents[1]
#: The optional extra's packages (requirements-spark.txt) and what they bring.
SPARK_EXTRA = ("pyspark", "py4j", "sqlglot", "grpc", "google.protobuf", "zstandard")


def test_package_docstring_names_every_module():
    modules = sorted(m.name for m in pkgutil.iter_modules(helpers.__path__))
    assert {"io", "engine", "cli", "plots"} <= set(modules)
    missing = [name for name in modules if f"``{name}``" not in helpers.__doc__]
    assert not missing, f"helpers/__init__.py's docstring does not describe: {', '.join(missing)}"


def _notebook_imports() -> list[str]:
    """Every import line of the notebooks' code cells (the book runs the same notebooks)."""
    lines = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                lines += [ln for ln in source.splitlines() if ln.startswith(("import ", "from "))]
    return lines


# Run in a fresh interpreter where the Spark extra cannot be imported, whether or not it is installed.
BLOCKED_RUN = r"""
import importlib, json, pkgutil, sys

BLOCKED = tuple(json.loads(sys.argv[1]))

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or name.startswith(tuple(b + "." for b in BLOCKED)):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, Blocker())
import helpers
for package in ("helpers", "helpers.plots"):
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
        importlib.import_module(module.name)
for line in json.loads(sys.argv[2]):
    exec(line)
from helpers import variation
try:
    variation.prepare_variation(None, "los", engine="spark")
except RuntimeError as error:
    message = str(error)
else:
    message = "no error"
loaded = sorted(m for m in sys.modules if m in BLOCKED or m.startswith(tuple(b + "." for b in BLOCKED)))
print(json.dumps({"message": message, "loaded": loaded}))
"""


def test_helpers_and_notebook_imports_need_no_pyspark():
    imports = _notebook_imports()
    assert any("helpers" in line for line in imports)  # the notebooks' imports were found
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, json.dumps(SPARK_EXTRA), json.dumps(imports)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    # asking for Spark without the extra says what to install, instead of a bare ImportError
    assert "requirements-spark.txt" in result["message"], result["message"]


# --------------------------------------------------------------------------- habits: private names, imports at the top
SRC = ROOT / "src" / "helpers"
#: Lazy imports allowed inside functions: the optional Spark extra (requirements-spark.txt), which a user
#: without it must be able to do without (see test_helpers_and_notebook_imports_need_no_pyspark).
LAZY_IMPORTS_ALLOWED = ("pyspark", "py4j", "sqlglot")
#: And, in one module each, packages that only a writer of the run needs and that would cost every
#: notebook's kernel seconds to import (nbformat's schema validator): helpers.report's docstring says so.
LAZY_IMPORTS_ALLOWED_IN = {"helpers.report": ("nbformat", "nbconvert", "jinja2")}


def _modules() -> dict[str, ast.Module]:
    """Every module of the package, by dotted name, parsed."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return out


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_uses_another_modules_private_names():
    modules = _modules()
    found = []
    for name, tree in modules.items():
        aliases = {}  # local name -> helpers module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "helpers":
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in modules:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    elif _is_private(alias.name):
                        found.append(f"{name}: from {node.module} import {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != name
                and _is_private(node.attr)
            ):
                found.append(f"{name}: {node.value.id}.{node.attr} (line {node.lineno})")
    assert not found, "private names used across modules (make them public, or move the code):\n" + "\n".join(
        sorted(set(found))
    )


def test_imports_are_at_the_top_of_each_module():
    found = []
    for name, tree in _modules().items():
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                imported = (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                )
                allowed = LAZY_IMPORTS_ALLOWED + LAZY_IMPORTS_ALLOWED_IN.get(name, ())
                if all(i.split(".")[0] in allowed for i in imported):
                    continue
                found.append(f"{name} line {node.lineno}: {ast.unparse(node)}")
    assert not found, "imports inside functions (move them to the top of the module):\n" + "\n".join(found)


# --------------------------------------------------------------------------- a non-editable install
_DOC_ROLE = re.compile(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`")


def _read_at_run_time() -> set[str]:
    """The repository's files the code reads at run time, as paths from helpers.REPO_ROOT."""
    from helpers import cli, io

    root = helpers.REPO_ROOT
    paths = {io.DICTIONARY_PATH, root / "book" / "references.bib"}  # the contract; the report's citations
    samples = {
        io.sample_path(table) for table in io.data_dictionary()["tables"]
    }  # `handbook run` on the sample
    paths |= {p for p in samples if p.is_file()}  # (deaths and episodes have no sample)
    for notebook in cli.available_notebooks().values():
        paths.add(notebook)
        for target in _DOC_ROLE.findall(notebook.read_text(encoding="utf-8")):  # a report's chapter titles
            chapter = (cli.NOTEBOOKS_DIR / target.strip()).with_suffix(".md").resolve()
            if not chapter.with_suffix(".ipynb").is_file():  # another notebook is named, not read
                assert chapter.is_file(), (notebook.name, target)
                paths.add(chapter)
    return {p.resolve().relative_to(root.resolve()).as_posix() for p in paths}


def test_the_wheel_ships_what_the_code_reads(tmp_path):
    """``pip install .`` (not editable) works: the wheel holds every module and every file read at run time."""
    tree = tmp_path / "repo"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "_build", "images")
    for folder in ("src", "data", "notebooks", "book"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=skip)
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(ROOT / name, tree / name)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(tree),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"{p.relative_to(SRC.parent).as_posix()}" for p in SRC.rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    shipped = {f"helpers/_shipped/{p}" for p in _read_at_run_time()}
    assert len(shipped) >= 10 and shipped <= names, sorted(shipped - names)
    assert not any(n.startswith(("tests/", ".venv/")) for n in names)
    # the entry point `handbook` is declared
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "handbook = helpers.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
