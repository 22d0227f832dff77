"""Every parameter a notebook declares can be set with ``handbook run --param``.

``handbook`` reads a notebook's parameters with papermill's parser; a line it
cannot parse (for example a comment containing ``=``) silently disappears from
``handbook list`` and ``--param`` then refuses it. Here each notebook's
parameters cell is parsed independently with Python's ``ast`` and compared
with what papermill sees, value by value.
"""

from __future__ import annotations

import ast

import nbformat
import pytest

from helpers.cli import available_notebooks, notebook_parameters, parse_value

NOTEBOOKS = sorted(available_notebooks())


def _declared(name: str) -> dict[str, object]:
    nb = nbformat.read(available_notebooks()[name], as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    out = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_parameter_round_trips_through_papermill(name):
    declared = _declared(name)
    seen = notebook_parameters(available_notebooks()[name])
    assert set(seen) == set(declared), (
        f"{name}: papermill cannot parse {sorted(set(declared) - set(seen))} (a comment with '=' ?)"
    )
    for key, value in declared.items():
        assert ast.literal_eval(seen[key]["default"]) == value, (name, key, seen[key]["default"])
        assert seen[key]["help"], f"{name}: parameter {key} has no comment"


def test_virtual_ward_marginal_cost_share_is_settable():
    seen = notebook_parameters(available_notebooks()["virtual_ward"])
    assert ast.literal_eval(seen["marginal_cost_share"]["default"]) == 0.0
    assert parse_value("0.5") == 0.5  # what --param marginal_cost_share=0.5 passes
