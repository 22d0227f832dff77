"""Small-number suppression for every table a run writes.

Rule (NHS Digital, *Hospital Episode Statistics analysis guide*, "small
numbers"): counts from 1 to 7 are replaced by ``*``; so that a suppressed
count cannot be worked out by subtraction, the other counts in the same row
are rounded to the nearest 5 (secondary suppression); and a rate, mean or
ratio computed from a count below the threshold is suppressed too. Zero is
shown: it discloses nothing about a person.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

#: HES analysis guide: counts 1 to 7 are suppressed.
DEFAULT_THRESHOLD = 7
#: Secondary suppression rounds the row's other counts to a multiple of this.
ROUND_TO = 5
SUPPRESSED = "*"

_COUNT_NAMES = {
    "n", "count", "denominator", "observed", "numerator", "events", "spells",
    "patients", "admissions", "readmissions", "deaths", "attendances", "breaches",
}
_COUNT_PATTERN = re.compile(r"^(n|count|number)_|_(n|count|spells|patients|events)$")


def guess_count_columns(table: pd.DataFrame) -> list[str]:
    """Columns that hold counts of people or events, recognised by name.

    Names in the handbook's result tables: ``n``, ``denominator``,
    ``observed``, ``n_treated``, ``spells`` ... Only integer-valued numeric
    columns qualify.
    """
    found = []
    for col in table.columns:
        name = str(col).lower()
        if name in _COUNT_NAMES or _COUNT_PATTERN.search(name):
            values = pd.to_numeric(table[col], errors="coerce")
            if values.notna().any() and np.allclose(values.dropna() % 1, 0):
                found.append(col)
    return found


def suppress(
    table: pd.DataFrame,
    counts: Iterable[str] | None = None,
    derived: Mapping[str, Iterable[str]] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
) -> tuple[pd.DataFrame, int]:
    """Apply small-number suppression; return the safe table and cells suppressed.

    ``counts`` are the count columns (default: :func:`guess_count_columns`);
    ``derived`` maps a rate or mean column to the count columns it comes from
    (default: every other numeric column depends on every count column of its
    row). The result holds ``*`` in suppressed cells, so its count columns are
    text where anything was suppressed.
    """
    counts = list(counts) if counts is not None else guess_count_columns(table)
    out = table.copy()
    if not counts or threshold <= 0:
        return out, 0
    values = out[counts].apply(pd.to_numeric, errors="coerce")
    small = (values >= 1) & (values <= threshold)
    row_hit = small.any(axis=1)
    if derived is None:
        numeric = [c for c in out.columns if c not in counts and pd.api.types.is_numeric_dtype(out[c])]
        derived = {c: counts for c in numeric}
    n_suppressed = int(small.to_numpy().sum())
    result = out.astype({c: "object" for c in counts})
    for col in counts:
        rounded = (np.round(values[col] / ROUND_TO) * ROUND_TO).astype("Int64")
        col_out = values[col].astype("Int64").astype("object")
        col_out = col_out.where(~row_hit, rounded.astype("object"))
        col_out = col_out.where(~small[col], SUPPRESSED)
        result[col] = col_out
    for col, sources in derived.items():
        sources = [s for s in sources if s in counts]
        if not sources or col not in result.columns:
            continue
        hit = small[sources].any(axis=1)
        if hit.any():
            result[col] = result[col].astype("object").where(~hit, SUPPRESSED)
            n_suppressed += int(hit.sum())
    return result, n_suppressed
