"""Consultant episodes to hospital provider spells, and spells to continuous inpatient spells.

HES Admitted Patient Care (and SUS+ APCE) hold one row per consultant
episode; the handbook's indicators count spells (admissions). Counting
episodes would count a patient who saw three consultants as three
admissions.

**Provider spells** follow NHS Digital's published method (NHS Digital,
*Methodology to create provider and CIP spells from HES APC data*, 2014;
the same rules as the HES "spell" derivations):

1. only finished episodes make spells (``episode_status`` 3, HES EPISTAT,
   when the extract carries it); the others are counted out;
2. the episodes of one patient with the same provider (PROCODE3) and provider
   spell number (PROVSPNO) form one spell, ordered by episode start, episode
   end, then episode order (EPISTART, EPIEND, EPIORDER);
3. the spell's admission details (admission date and method, source, patient
   classification, age, sex, deprivation) come from its first episode and
   its discharge details (discharge date, method and destination, HRG) from
   its last;
4. a spell whose last episode has no discharge date has not ended (the
   patient was in hospital when the extract was taken) and is counted out;
   an extract with no discharge date column at all takes the end of the last
   finished episode.

*Primary diagnosis.* ``primary_diagnosis_rule="first"`` (the default) takes
the primary diagnosis of the first episode, as HES spell-level statistics
do. ``"shmi"`` follows NHS Digital's SHMI specification: the first episode's,
unless it is a sign or symptom (ICD-10 chapter XVIII, R00-R99) and the spell
has a second episode, whose primary diagnosis is then used.

*Secondary diagnoses.* The Hospital Frailty Risk Score and the Charlson index
of a spell are computed from the distinct diagnoses of all its episodes
(:mod:`helpers.comorbidity`), when the extract has diagnosis columns.

**Continuous inpatient (CIP) spells** (optional, ``link_transfers=True``):
consecutive provider spells of one patient are linked when the next one
starts 0 to 2 days after the previous one ends and there is evidence of a
transfer - the first was discharged to another hospital (DISDEST 49-53 or
84), or the next was admitted from one (ADMISORC 49-53 or 87) or as a
transfer (ADMIMETH 2B or 81) - unless the first went home (DISDEST 19) and
the next is an emergency from A&E (ADMIMETH 21 with ADMISORC 51), and neither
is a regular day or night attender (CLASSPAT 3 or 4). These are the CIP rules
of the same NHS Digital method (as implemented in UKHSA's R package epidm,
``cip_spells``). A linked spell is one row: admission details from its first
provider spell, discharge details from its last, at the provider that
discharged the patient; so a transfer is neither a discharge nor an
emergency readmission.

Every episode is accounted for in the exclusions flow (``load_steps`` of the
load summary :func:`load_spells` returns, read by :func:`helpers.quality.exclusion_flow`):
episodes read, episodes not finished, spells not ended, episodes combined into
spells, spells linked into CIP spells.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from helpers import comorbidity, io

#: Columns whose presence marks an episode-level file.
EPISODE_MARKERS: tuple[str, ...] = ("episode_order", "provider_spell_number")
#: HES codes of the CIP rules (NHS Digital 2014; epidm::cip_spells).
TRANSFER_DESTINATIONS = frozenset({"49", "50", "51", "52", "53", "84"})
TRANSFER_SOURCES = frozenset({"49", "50", "51", "52", "53", "87"})
TRANSFER_METHODS = frozenset({"2B", "81"})
REGULAR_ATTENDER = frozenset({"3", "4"})
MAX_TRANSFER_GAP_DAYS = 2

_FIRST = [
    "patient_id",
    "provider_code",
    "admission_date",
    "admission_method",
    "admission_source",
    "patient_classification",
    "age",
    "sex",
    "imd_decile",
    "primary_diagnosis",
]
_LAST = ["discharge_date", "discharge_method", "discharge_destination", "hrg"]


def is_episode_level(columns: Any, column_map: Mapping[str, str] | None = None) -> bool:
    """Whether a file's columns are those of an episode-level table (an episode order and a provider spell number)."""
    mapping, _ = io.map_columns([str(c) for c in columns], io.table_columns("episodes"), column_map)
    return all(m in mapping.values() for m in EPISODE_MARKERS)


def _step(step: str, before: int, after: int, reason: str) -> dict[str, Any]:
    return {
        "table": "spells",
        "step": step,
        "rows_before": int(before),
        "rows_excluded": int(before - after),
        "rows_after": int(after),
        "reason": reason,
    }


def spells_from_episodes(
    episodes: pd.DataFrame,
    diagnoses: pd.DataFrame | None = None,
    *,
    primary_diagnosis_rule: Literal["first", "shmi"] = "first",
    link_transfers: bool = False,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Provider spells (or CIP spells) from validated episodes; see the module docstring.

    ``episodes``: the ``episodes`` contract table (:func:`helpers.io.load_table`).
    ``diagnoses``: optional long diagnoses, one row per episode row (``key``:
    the episodes' index) and ``code`` (:func:`helpers.comorbidity.long_from_wide`);
    when given, the spells get ``frailty_score`` and ``charlson_index``.
    Returns the spells (the ``spells`` contract's columns, a ``spell_id``
    made of provider code and provider spell number, in order of admission)
    and the exclusion steps.
    """
    if primary_diagnosis_rule not in ("first", "shmi"):
        raise ValueError(f"primary_diagnosis_rule must be 'first' or 'shmi'; got {primary_diagnosis_rule!r}.")
    steps: list[dict[str, Any]] = []
    ep = episodes.copy()
    ep["_row"] = np.arange(len(ep))
    n = len(ep)
    if "episode_status" in ep.columns:
        finished = ep["episode_status"].isna() | (ep["episode_status"] == "3")
        ep = ep.loc[finished]
        steps.append(
            _step(
                "finished episodes",
                n,
                len(ep),
                "episode not finished (EPISTAT 1 or 9): only finished episodes make spells",
            )
        )
    key = ["patient_id", "provider_code", "provider_spell_number"]
    end = ep["episode_end"] if "episode_end" in ep.columns else ep["episode_start"]
    ep = ep.assign(_end=end).sort_values(
        key + ["episode_start", "_end", "episode_order", "_row"], kind="stable"
    )
    ep["_spell"] = ep.groupby(key, sort=False).ngroup()
    first = ep.groupby("_spell", sort=True).head(1).set_index("_spell")
    last = ep.groupby("_spell", sort=True).tail(1).set_index("_spell")
    spells = pd.DataFrame(index=first.index)
    for col in _FIRST:
        if col in ep.columns:
            spells[col] = first[col]
    for col in _LAST:
        if col in ep.columns:
            spells[col] = last[col]
    if "discharge_date" not in ep.columns and "episode_end" in ep.columns:
        spells["discharge_date"] = last["episode_end"]  # no DISDATE column: the last episode's end
    spells["spell_id"] = (
        first["provider_code"].astype("str") + "/" + first["provider_spell_number"].astype("str")
    )
    spells["_episodes"] = ep.groupby("_spell", sort=True).size()
    spells["_last_row"] = last["_row"]
    if primary_diagnosis_rule == "shmi" and "primary_diagnosis" in ep.columns:
        second = ep.groupby("_spell", sort=True).nth(1).set_index("_spell")["primary_diagnosis"]
        symptom = spells["primary_diagnosis"].astype("str").str.startswith("R").fillna(False).astype(bool)
        use_second = symptom & spells.index.isin(second.index)
        spells.loc[use_second, "primary_diagnosis"] = second.reindex(spells.index)[use_second]
    if diagnoses is not None:
        spell_of_row = pd.Series(ep["_spell"].to_numpy(), index=ep.index)
        long = diagnoses.assign(key=diagnoses["key"].map(spell_of_row)).dropna(subset=["key"])
        scored = comorbidity.scores(long).reindex(spells.index)
        spells["frailty_score"] = scored["frailty_score"].fillna(0.0).astype("Float64")
        spells["charlson_index"] = scored["charlson_index"].fillna(0).astype("Int64")

    n_episodes = len(ep)
    ended = (
        spells["discharge_date"].notna()
        if "discharge_date" in spells.columns
        else pd.Series(False, spells.index)
    )
    open_episodes = int(spells.loc[~ended, "_episodes"].sum())
    spells = spells.loc[ended]
    steps.append(
        _step(
            "spells that ended",
            n_episodes,
            n_episodes - open_episodes,
            "the spell's last episode has no discharge date (the patient was still in hospital)",
        )
    )
    steps.append(
        _step(
            "episodes to provider spells",
            n_episodes - open_episodes,
            len(spells),
            "the episodes of one spell (patient, provider, provider spell number) make one row: "
            "admission details from the first, discharge from the last (NHS Digital spells method)",
        )
    )
    if link_transfers:
        before = len(spells)
        spells = link_continuous_spells(spells)
        steps.append(
            _step(
                "provider spells to continuous inpatient spells",
                before,
                len(spells),
                "a transfer to another hospital within 2 days continues the same stay (NHS Digital CIP "
                "spells): one row per stay, at the provider that discharged the patient",
            )
        )
    spells = spells.sort_values(["admission_date", "_last_row"], kind="stable").reset_index(drop=True)
    return spells, steps


def link_continuous_spells(spells: pd.DataFrame, max_gap_days: int = MAX_TRANSFER_GAP_DAYS) -> pd.DataFrame:
    """Provider spells linked into continuous inpatient spells (the CIP rules of the module docstring).

    ``spells`` carries the columns of :func:`spells_from_episodes` (admission
    source and discharge destination when the extract has them). The linked
    row keeps the first spell's admission details and spell_id and the last
    spell's discharge details and provider; frailty and Charlson scores take
    the highest of the linked spells.
    """
    s = spells.sort_values(["patient_id", "admission_date", "discharge_date"], kind="stable").copy()
    text = lambda c: (s[c].astype("str") if c in s.columns else pd.Series(pd.NA, index=s.index, dtype="str"))  # noqa: E731
    same = s["patient_id"].eq(s["patient_id"].shift(1))
    gap = (s["admission_date"] - s["discharge_date"].shift(1)).dt.days
    dest_prev = text("discharge_destination").shift(1)
    source, method = text("admission_source"), text("admission_method")
    transfer = (
        dest_prev.isin(TRANSFER_DESTINATIONS) | source.isin(TRANSFER_SOURCES) | method.isin(TRANSFER_METHODS)
    )
    excluded = dest_prev.eq("19") & source.eq("51") & method.eq("21")
    regular = text("patient_classification").isin(REGULAR_ATTENDER)
    regular_prev = regular.shift(1, fill_value=False).astype(bool)
    linked = (
        same
        & gap.between(0, max_gap_days)
        & transfer.fillna(False)
        & ~excluded.fillna(False)
        & ~regular
        & ~regular_prev
    )
    s["_cip"] = (~linked.fillna(False).astype(bool)).cumsum()
    groups = s.groupby("_cip", sort=False)
    out = groups.head(1).set_index("_cip")
    tail = groups.tail(1).set_index("_cip")
    for col in ["provider_code", *_LAST, "_last_row"]:
        if col in s.columns:
            out[col] = tail[col]
    for col in ("frailty_score", "charlson_index"):
        if col in s.columns:
            out[col] = groups[col].max()
    out["_episodes"] = groups["_episodes"].sum()
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- reading a file
#: HES codes for an age under one year (STARTAGE, ENDAGE, ADMIAGE 7001-7007: under a day to under a year).
HES_INFANT_AGES = frozenset({"7001", "7002", "7003", "7004", "7005", "7006", "7007"})
HES_AGE_COLUMNS = frozenset({"STARTAGE", "ADMIAGE", "ENDAGE", "STARTAGE_CALC"})
#: HES date columns whose names do not end in DATE (besides those that do).
HES_DATE_NAMES = frozenset({"EPISTART", "EPIEND", "ADMIDATE", "DISDATE", "ELECDATE"})
#: HES null dates: 1800-01-01 "not applicable", 1801-01-01 "not known" (and the 1582-10-15 and 1600-01-01 of some
#: extracts); read as blank.
HES_NULL_DATES = frozenset(
    {
        "1800-01-01",
        "1801-01-01",
        "1582-10-15",
        "1600-01-01",
        "01/01/1800",
        "01/01/1801",
        "15/10/1582",
        "01/01/1600",
    }
)


def read_hes_codes(raw: pd.DataFrame) -> pd.DataFrame:
    """A file read as text with two HES conventions undone: infant age codes and null dates.

    HES records an age under one year as 7001-7007 in STARTAGE (and ENDAGE,
    ADMIAGE); these become 0. HES fills a missing date with 1800-01-01 (not
    applicable) or 1801-01-01 (not known); these become blank, so that a spell
    without a discharge date is not read as discharged in 1801. Other columns,
    and a file without these names, are returned as they are (a copy is made
    only when something changes; the file itself is never touched).
    """
    out = raw
    for col in raw.columns:
        name = str(col).strip().upper()
        is_date = name.endswith("DATE") or name in HES_DATE_NAMES
        if name not in HES_AGE_COLUMNS and not is_date:
            continue
        values = raw[col].astype("str").str.strip()
        if name in HES_AGE_COLUMNS:
            infant = values.isin(HES_INFANT_AGES)
            if infant.any():
                out = out.copy() if out is raw else out
                out[col] = raw[col].where(~infant, "0")
        else:
            null = values.str.slice(0, 10).isin(HES_NULL_DATES)
            if null.any():
                out = out.copy() if out is raw else out
                out[col] = raw[col].where(~null, "")
    return out


def load_spells(
    raw: pd.DataFrame,
    path: str | Path,
    column_map: Mapping[str, str] | None = None,
    *,
    primary_diagnosis_rule: Literal["first", "shmi"] = "first",
    link_transfers: bool = False,
    sheet: str | int | None = None,
) -> io.LoadedTable:
    """The ``spells`` contract table built from an episode-level file already read as text.

    The episodes are checked against the ``episodes`` contract (one message
    naming file, column and rows, as every loader); diagnoses are read from
    the file's diagnosis columns (:func:`helpers.comorbidity.diagnosis_columns`).
    The frame has the dtypes :func:`helpers.io.load_table` gives spells; its
    summary has ``rows_read`` (episodes) and ``load_steps`` (the
    episodes-to-spells flow). ``sheet``: the workbook sheet ``raw`` came from.
    """
    loaded = io.load_input("episodes", path, column_map, raw=raw, sheet=sheet)
    episodes = loaded.frame
    wide, concatenated = comorbidity.diagnosis_columns(raw.columns)
    diagnoses = None
    if wide:
        diagnoses = comorbidity.long_from_wide(raw, wide)
    elif concatenated is not None:
        diagnoses = comorbidity.long_from_concatenated(raw, concatenated)
    built, steps = spells_from_episodes(
        episodes, diagnoses, primary_diagnosis_rule=primary_diagnosis_rule, link_transfers=link_transfers
    )
    spec = io.table_columns("spells")
    out = pd.DataFrame(index=built.index)
    for col in spec:
        if col in built.columns:
            out[col] = built[col]
    out["spell_id"] = out["spell_id"].astype("str")
    summary = replace(
        loaded.summary,
        table="spells",
        built_from="episodes",
        diagnoses=comorbidity.describe_source(raw.columns),
        load_steps=tuple(steps),
    )
    return io.LoadedTable(out, summary)


def add_diagnosis_scores(spells: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """Spells with ``frailty_score`` and ``charlson_index`` computed from the file's diagnoses where absent.

    ``raw`` is the file as read (same rows, same order). A score the file
    carries itself is kept. Without diagnosis columns, ``spells`` is returned
    unchanged.
    """
    missing = [c for c in ("frailty_score", "charlson_index") if c not in spells.columns]
    if not missing:
        return spells
    scored = comorbidity.scores_from_raw(raw)
    if scored is None:
        return spells
    out = spells.copy()
    if "frailty_score" in missing:
        out["frailty_score"] = pd.array(scored["frailty_score"].to_numpy(), dtype="Float64")
    if "charlson_index" in missing:
        out["charlson_index"] = pd.array(scored["charlson_index"].to_numpy(), dtype="Int64")
    return out


# --------------------------------------------------------------------------- for the SQL engines
def _header(path: Path) -> list[str]:
    """The column names of a file, read without its rows (Excel: the first sheet's header)."""
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return list(pq.read_schema(path).names)
    if suffix in {".xlsx", ".xlsm", ".xls"}:
        return [str(c) for c in pd.read_excel(path, nrows=0).columns]
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return [str(c).strip() for c in pd.read_csv(path, nrows=0, encoding=encoding).columns]
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
    return []


def needs_pandas(columns: list[str], column_map: Mapping[str, str] | None = None) -> bool:
    """Whether a spells file with these columns is first read by pandas: episodes to build into spells,
    or diagnoses to score (a file without a frailty score of its own)."""
    wide, concatenated = comorbidity.diagnosis_columns(columns)
    scores_absent = not {"FRAILTY_SCORE", "HFRS"} & {str(c).strip().upper() for c in columns}
    return is_episode_level(columns, column_map) or bool((wide or concatenated) and scores_absent)


def spells_file_for_engine(
    path: str | Path, column_map: Mapping[str, str] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """For the DuckDB and Spark engines: an episode-level file, or one with diagnoses, as a spells file.

    The engines read spells with SQL; building spells from episodes and
    scoring diagnoses is done here, with pandas (:func:`helpers.io.load_table`),
    and the result written as a Parquet file of text in a private temporary
    folder (removed at exit) for the engine to read. Returns that file and
    what the load summary should say of the original (file, rows read, steps),
    or None when the file is already plain spells.
    """
    path = Path(path)
    if not path.is_file():
        return None
    if not needs_pandas(_header(path), column_map):
        return None
    loaded = io.load_input("spells", path, column_map)
    spells, summary = loaded.frame, loaded.summary
    folder = Path(tempfile.mkdtemp(prefix="handbook-spells-"))
    atexit.register(shutil.rmtree, folder, True)
    text = pd.DataFrame(index=spells.index)
    for col in spells.columns:
        values = spells[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            text[col] = values.dt.strftime("%Y-%m-%d").where(values.notna(), None)
        else:
            text[col] = values.astype("str").where(values.notna(), None)
    target = folder / f"{path.stem}.parquet"
    text.to_parquet(target, index=False)
    origin = {
        "file": path.name,
        "rows_read": int(summary.rows_read),
        "columns_mapped": dict(summary.columns_mapped),  # the original's names, not the built file's
        "columns_ignored": list(summary.columns_ignored),
    }
    if summary.load_steps:
        origin["load_steps"] = list(summary.load_steps)
    return target, origin
