"""Derived fields of the spells table, defined once for every notebook.

Length of stay is derived from the dates, never trusted from input
(DESIGN.md). Emergency and elective follow the HES admission method codes
(ADMIMETH 21-28 and 2A-2D emergency; 11-13 elective). An emergency
readmission is the patient's next emergency admission, to any provider in the
data, from 0 to ``window - 1`` days after discharge ("within 30 days" as in
NHS Digital's emergency readmissions indicator, which counts 0 to 29 days).

Each field is a record of :data:`SPELL_FIELDS` (its name, what it means, its
SQL): the engines build the spells' fields from those records
(:func:`spell_fields_sql`, :func:`load_spells`) and ``tests/test_engine.py``
compares every record across DuckDB, Spark and :func:`add_spell_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers import engine as engines
from helpers import io, periods
from helpers.contract import DTYPES, TableSource, open_table, typed_values
from helpers.engine import DuckDB, literal, quote

EMERGENCY_CODES = frozenset({"21", "22", "23", "24", "25", "26", "27", "28", "2A", "2B", "2C", "2D"})
ELECTIVE_CODES = frozenset({"11", "12", "13"})


def financial_year(dates: pd.Series) -> pd.Series:
    """NHS financial year (April to March) of each date, as ``'2024/25'``."""
    d = pd.to_datetime(dates)
    start = d.dt.year - (d.dt.month < 4).astype(int)
    label = (
        start.astype("Int64").astype("str")
        + "/"
        + ((start + 1) % 100).astype("Int64").astype("str").str.zfill(2)
    )
    return label.where(d.notna(), None)


def add_spell_fields(
    spells: pd.DataFrame,
    readmission_window_days: int = 30,
    follow_up_end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Return a copy of ``spells`` with the derived fields added, by the SQL of :data:`SPELL_FIELDS` run on it.

    DuckDB reads the frame (the columns the fields need, in memory); the
    frame's other columns are carried as they are.

    Added columns:

    * ``los_days`` — discharge date minus admission date, in days (0 same day);
    * ``emergency``, ``elective`` — from ``admission_method``;
    * ``day_case`` — ``patient_classification == "2"``; where that column is
      absent, an elective spell with a length of stay of 0;
    * ``died`` — ``discharge_method == "4"`` (missing where the column is absent);
    * ``readmit_30d`` — an emergency admission of the same patient, to any
      provider, 0 to ``window - 1`` days after this spell's discharge;
    * ``readmission_days`` — days from discharge to that admission;
    * ``readmission_eligible`` — the patient left alive and the whole window
      ends by ``follow_up_end`` (default: the end of the extract's coverage,
      :func:`helpers.periods.coverage`: its last admission date, unless only a
      few readmissions run on after its admissions stop),
      so a spell near the end of the extract is not counted as "no readmission";
    * ``financial_year`` (of discharge, ``'2024/25'``) and ``month`` (first day
      of the discharge month).
    """
    be = DuckDB()
    try:
        src = frame_source(be, spells, SPELL_INPUTS, with_coverage=follow_up_end is None)
        sql = spell_fields_sql(
            src,
            int(readmission_window_days),
            follow_up_end,
            readmission=True,
            carry=["_rownum"],
            key="_rownum",
        )
        names = ", ".join(f.name for f in SPELL_FIELDS)
        fields = be.arrow(f"SELECT {names} FROM ({sql}) AS d ORDER BY _rownum").to_pandas()
    finally:
        be.close()
    out = spells.copy()
    for f in SPELL_FIELDS:
        out[f.name] = field_values(fields[f.name], f.dtype)
    return out


#: The columns of the spells the derived fields read.
SPELL_INPUTS: tuple[str, ...] = (
    "spell_id",
    "patient_id",
    "admission_date",
    "discharge_date",
    "admission_method",
    "patient_classification",
    "discharge_method",
)


def frame_source(
    be: DuckDB, spells: pd.DataFrame, columns: Sequence[str], with_coverage: bool = True
) -> TableSource:
    """Spells a notebook holds as a table DuckDB reads, for the SQL of :data:`SPELL_FIELDS` and the indicators.

    The ``columns`` the frame has (dates as dates, the others as text, as
    the engines read a file) and ``_rownum``, the row's position; its stats
    as :func:`spell_fields_sql` reads them (``with_coverage``: the admissions
    by month, for the end of follow-up).
    """
    inputs = [c for c in columns if c in spells.columns]
    frame = pd.DataFrame(index=pd.RangeIndex(len(spells)))
    for c in inputs:
        values = spells[c].reset_index(drop=True)
        if c in {"admission_date", "discharge_date"}:
            frame[c] = pd.to_datetime(values).astype("datetime64[us]")
        else:
            frame[c] = values.astype("str").where(values.notna(), None)
    frame["_rownum"] = np.arange(len(frame))
    be.con.register("spells_frame", frame)
    src = TableSource(
        "spells",
        "",
        be,
        "spells_frame",
        "SELECT * FROM spells_frame",
        {},
        inputs,
        {},
        "frame",
        {},
        [],
        rows=len(frame),
    )
    src.stats = {
        "n_classpat": int(frame["patient_classification"].notna().sum())
        if "patient_classification" in inputs
        else 0
    }
    if with_coverage:
        src.stats["admissions_by_month"] = admissions_by_month(src)
    return src


def admissions_by_month(src: TableSource) -> pd.DataFrame:
    """Admissions per month (month, n, first, last) of a table with an admission date, in SQL.

    What :func:`helpers.periods.coverage_from_months` reads to find the end of follow-up.
    """
    return src.backend.query(
        "SELECT DATE_TRUNC('month', admission_date) AS month, COUNT(*) AS n, MIN(admission_date) AS first, "
        f"MAX(admission_date) AS last FROM ({src.typed_sql}) AS v WHERE admission_date IS NOT NULL "
        "GROUP BY DATE_TRUNC('month', admission_date)"
    )


def next_emergency_gap(
    patient_id: pd.Series,
    spell_id: pd.Series,
    admission: pd.Series,
    discharge: pd.Series,
    emergency: pd.Series,
) -> pd.Series:
    """Days from each spell's discharge to the same patient's next emergency admission.

    The next emergency admission is the first one on or after the discharge
    date, at any provider, other than the spell itself. Missing where there is
    none. Vectorised with a sorted search, so it scales to millions of spells.
    """
    codes, _ = pd.factorize(patient_id.astype("str"), sort=True)
    day = lambda s: (pd.to_datetime(s).to_numpy().astype("datetime64[D]").astype(np.int64))  # noqa: E731
    adm_day, dis_day = day(admission), day(discharge)
    span = int(max(adm_day.max(), dis_day.max()) - min(adm_day.min(), dis_day.min()) + 2)
    base = min(adm_day.min(), dis_day.min())
    em = np.flatnonzero(emergency.to_numpy(dtype=bool))
    em_key = codes[em].astype(np.int64) * span + (adm_day[em] - base)
    order = np.argsort(em_key, kind="stable")
    em_sorted, em_rows = em_key[order], em[order]
    left_key = codes.astype(np.int64) * span + (dis_day - base)
    pos = np.searchsorted(em_sorted, left_key, side="left")
    n = len(em_sorted)
    # skip the spell itself when it is an emergency spell admitted on its discharge day
    own = np.arange(len(codes))
    at = np.minimum(pos, n - 1) if n else pos
    is_self = (pos < n) & (em_rows[at] == own) if n else np.zeros(len(codes), bool)
    pos = pos + is_self
    valid = pos < n
    at = np.minimum(pos, n - 1) if n else pos
    same_patient = valid & ((em_sorted[at] // span) == codes) if n else valid
    gap = np.where(same_patient, adm_day[em_rows[at]] - dis_day if n else 0, -1)
    result = pd.Series(gap, index=patient_id.index, dtype="Int64")
    return result.where(same_patient, pd.NA)


# --------------------------------------------------------------------------- derived fields in SQL
@dataclass(frozen=True)
class SpellField:
    """One derived field of the spells: its name, what it means and its SQL (DuckDB's dialect).

    ``sql`` reads the contract columns of the typed spells and the fields
    listed before it, with the placeholders ``{emergency_codes}``,
    ``{elective_codes}``, ``{window}``, ``{last_day}`` (days from discharge to
    the window's last day: ``window - 1``) and ``{end_day}`` (the end of
    follow-up, in days since 1970). ``needs``: a contract column the SQL reads
    that a file may lack (or hold empty); ``otherwise`` is the SQL then.
    ``stage``: ``"spell"`` (from the spell's own row), ``"linkage"`` (the
    readmission linkage across the patient's spells, :func:`spell_fields_sql`)
    or ``"linked"`` (after the linkage). ``dtype``: the pandas dtype of the field.
    """

    name: str
    meaning: str
    sql: str
    stage: str = "spell"
    needs: str | None = None
    otherwise: str | None = None
    dtype: str = "bool"


#: The derived fields, in the order they are added. One edit here adds a field to every engine.
SPELL_FIELDS: tuple[SpellField, ...] = (
    SpellField(
        "los_days",
        "discharge date minus admission date, in days (0 for a same-day spell)",
        "DATE_DIFF('day', admission_date, discharge_date)",
        dtype="int64",
    ),
    SpellField(
        "emergency",
        "admission method 21-28 or 2A-2D (HES ADMIMETH)",
        "admission_method IN ({emergency_codes})",
    ),
    SpellField("elective", "admission method 11-13 (HES ADMIMETH)", "admission_method IN ({elective_codes})"),
    SpellField(
        "day_case",
        "patient classification 2 (HES CLASSPAT); without it, an elective spell of 0 days",
        "COALESCE(patient_classification = '2', FALSE)",
        needs="patient_classification",
        otherwise="(admission_method IN ({elective_codes}) AND DATE_DIFF('day', admission_date, discharge_date) = 0)",
    ),
    SpellField(
        "died",
        "discharge method 4 (died); missing where the file has no discharge method",
        "(discharge_method = '4')",
        needs="discharge_method",
        otherwise="CAST(NULL AS BOOLEAN)",
        dtype="boolean",
    ),
    SpellField(
        "readmission_days",
        "days from discharge to the patient's next emergency admission, to any provider, "
        "on or after the discharge day (missing if none)",
        "readmission_days",
        stage="linkage",
        dtype="Int64",
    ),
    SpellField(
        "readmit_30d",
        "an emergency readmission 0 to window - 1 days after discharge",
        "COALESCE(readmission_days < {window}, FALSE)",
        stage="linked",
        dtype="boolean",
    ),
    SpellField(
        "readmission_eligible",
        "left alive, and the whole readmission window ends by the end of follow-up",
        "(NOT COALESCE(died, FALSE) AND _dis_day + {last_day} <= {end_day})",
        stage="linked",
    ),
    SpellField(
        "financial_year",
        "NHS financial year (April to March) of discharge, as 2024/25",
        "CAST(_fy AS VARCHAR) || '/' || LPAD(CAST((_fy + 1) % 100 AS VARCHAR), 2, '0')",
        stage="linked",
        dtype="str",
    ),
    SpellField(
        "month",
        "first day of the discharge month",
        "DATE_TRUNC('month', discharge_date)",
        stage="linked",
        dtype="datetime64[us]",
    ),
)


def spell_fields_sql(
    src: TableSource,
    window: int,
    follow_up_end: Any | None,
    readmission: bool,
    typed_sql: str | None = None,
    carry: Sequence[str] = (),
    readmit: str = "emergency",
    key: str = "spell_id",
) -> str:
    """SQL of the spells with the fields of :data:`SPELL_FIELDS`; the readmission linkage only if asked.

    ``readmit``: the SQL condition of a spell that counts as a readmission
    (any emergency admission; a published indicator leaves some out).
    Without the linkage, ``readmission_days`` is missing and ``readmit_30d`` false.
    ``key``: the column that tells the spells apart (``_rownum`` when spell ids may repeat).
    """
    cols = ", ".join([quote(c) for c in src.present] + [quote(c) for c in carry])
    typed_sql = typed_sql or src.typed_sql
    end = (
        pd.Timestamp(follow_up_end)
        if follow_up_end is not None
        else periods.coverage_from_months(src.stats["admissions_by_month"]).end
    )
    values = {
        "emergency_codes": ", ".join(literal(c) for c in sorted(EMERGENCY_CODES)),
        "elective_codes": ", ".join(literal(c) for c in sorted(ELECTIVE_CODES)),
        "window": int(window),
        "last_day": int(window) - 1,
        "end_day": int((end.normalize() - pd.Timestamp("1970-01-01")).days),
    }
    has = {"patient_classification": int(src.stats.get("n_classpat") or 0) > 0}

    def field_sql(f: SpellField) -> str:
        usable = f.needs is None or (f.needs in src.present and has.get(f.needs, True))
        return (f.sql if usable else str(f.otherwise)).format(**values)

    epoch = "DATE '1970-01-01'"
    spell = ", ".join(f"{field_sql(f)} AS {f.name}" for f in SPELL_FIELDS if f.stage == "spell")
    base = (
        f"SELECT {cols}, {spell}, "
        f"DATE_DIFF('day', {epoch}, admission_date) AS _adm_day, DATE_DIFF('day', {epoch}, discharge_date) AS _dis_day, "
        f"YEAR(discharge_date) - CASE WHEN MONTH(discharge_date) < 4 THEN 1 ELSE 0 END AS _fy "
        f"FROM ({typed_sql}) AS v"
    )
    linked = ", ".join(f"{field_sql(f)} AS {f.name}" for f in SPELL_FIELDS if f.stage == "linked")
    if not readmission:
        return f"SELECT *, {linked} FROM (SELECT *, CAST(NULL AS BIGINT) AS readmission_days FROM ({base}) AS b) AS l"
    return f"SELECT *, {linked} FROM ({readmission_linkage_sql(base, readmit, key)}) AS l"


def derived_spells_sql(
    src: TableSource,
    readmission_window_days: int = 30,
    follow_up_end: Any | None = None,
    carry: Sequence[str] = ("_rownum",),
    readmission: bool = True,
) -> str:
    """SQL (DuckDB dialect) of the spells of ``src`` with the derived fields of :func:`load_spells`.

    For modules that build on the spells in SQL and bring only their result
    to pandas (:func:`helpers.cohort.prepare_virtual_ward`). Columns: the
    contract columns present, ``carry`` and the fields of :data:`SPELL_FIELDS`.
    ``readmission=False`` leaves out the readmission linkage (a window over
    every spell): readmission_days is then missing.
    """
    return spell_fields_sql(
        src, int(readmission_window_days), follow_up_end, readmission=readmission, carry=list(carry)
    )


def readmission_linkage_sql(base: str, readmit: str = "emergency", key: str = "spell_id") -> str:
    """The spells of ``base`` with ``readmission_days``: the next emergency admission on or after discharge.

    Other than the spell itself (as :func:`next_emergency_gap`): one sorted
    pass over discharges and emergency admissions per patient. Another
    emergency admission on the discharge day gives 0; otherwise the first one
    on a later day. ``base`` has ``key`` (unique per spell), ``patient_id``,
    ``_adm_day`` and ``_dis_day``; ``readmit`` is the SQL condition of a readmission.
    """
    events = (
        f"SELECT {key} AS _key, patient_id, _dis_day AS day, 1 AS is_dis, "
        f"CASE WHEN ({readmit}) AND _adm_day = _dis_day THEN 1 ELSE 0 END AS self_today FROM ({base}) AS b "
        f"UNION ALL SELECT {key} AS _key, patient_id, _adm_day AS day, 0 AS is_dis, 0 AS self_today "
        f"FROM ({base}) AS b WHERE {readmit}"
    )
    windowed = (
        f"SELECT _key, is_dis, day, self_today, "
        f"MIN(CASE WHEN is_dis = 0 THEN day END) OVER (PARTITION BY patient_id ORDER BY day "
        f"RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_later, "
        f"SUM(1 - is_dis) OVER (PARTITION BY patient_id ORDER BY day "
        f"RANGE BETWEEN CURRENT ROW AND CURRENT ROW) AS adm_today FROM ({events}) AS e"
    )
    gaps = (
        f"SELECT _key AS _gap_key, CASE WHEN adm_today - self_today > 0 THEN 0 "
        f"ELSE next_later - day END AS readmission_days FROM ({windowed}) AS w WHERE is_dis = 1"
    )
    return f"SELECT b.*, g.readmission_days FROM ({base}) AS b JOIN ({gaps}) AS g ON b.{key} = g._gap_key"


def load_spells(
    path: str | Path | None = None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "duckdb",
    readmission_window_days: int = 30,
    follow_up_end: Any | None = None,
    *,
    spark: Any | None = None,
) -> io.LoadedTable:
    """Spells with the derived fields, read, validated and derived by an engine, and what was read.

    The frame is the same as ``derive.add_spell_fields(io.load_table("spells",
    path, column_map), readmission_window_days, follow_up_end)`` - same
    columns, order, dtypes and values - for patient-level analyses (the
    virtual ward evaluation); the summary is :class:`helpers.io.LoadSummary`.
    ``engine="pandas"``, the retired in-memory path, runs on DuckDB.
    """
    engine = engines.engine_name(engine)
    src = open_table("spells", path, column_map, engine, spark=spark)
    try:
        be = src.backend
        sql = spell_fields_sql(
            src, int(readmission_window_days), follow_up_end, readmission=True, carry=["_rownum"]
        )
        keep = ", ".join([quote(c) for c in src.present] + [f.name for f in SPELL_FIELDS])
        final = f"SELECT {keep} FROM ({sql}) AS d ORDER BY _rownum"
        frame = be.arrow(final).to_pandas() if isinstance(be, DuckDB) else be.query(final)
    finally:
        src.backend.close()
    spec = io.table_columns("spells")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for c in src.present:
        out[c] = typed_values(frame[c], DTYPES[spec[c]["type"]])
    for f in SPELL_FIELDS:
        out[f.name] = field_values(frame[f.name], f.dtype)
    return io.LoadedTable(out, src.load_summary(engine))


def field_values(values: pd.Series, dtype: str) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """A derived field as an engine returned it, in its pandas dtype (:attr:`SpellField.dtype`)."""
    if dtype in {"int64", "bool"}:
        return values.astype(dtype).to_numpy()
    if dtype in {"boolean", "Int64"}:
        return pd.array(values.to_numpy(), dtype=dtype)
    if dtype == "str":
        return values.astype("str").to_numpy()
    if dtype == "datetime64[us]":
        return pd.to_datetime(values).astype("datetime64[us]").to_numpy()
    raise KeyError(f"Unknown dtype {dtype!r} of a derived field")
