"""The package as a whole: its map of modules, and that PySpark stays an optional extra.

PySpark (about 500 MB) is installed by ``make test`` from requirements-spark.txt
but not by ``make book``: so nothing the book, a notebook or ``handbook run``
imports may need it, and a user who asks for ``engine="spark"`` without it is
told what to install.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
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
    done = subprocess.run([sys.executable, "-c", BLOCKED_RUN, json.dumps(SPARK_EXTRA), json.dumps(imports)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    # asking for Spark without the extra says what to install, instead of a bare ImportError
    assert "requirements-spark.txt" in result["message"], result["message"]
