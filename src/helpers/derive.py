"""Derived fields of the spells table, defined once for every notebook.

Length of stay is derived from the dates, never trusted from input
(DESIGN.md). Emergency and elective follow the HES admission method codes
(ADMIMETH 21-28 and 2A-2D emergency; 11-13 elective). An emergency
readmission is the patient's next emergency admission, to any provider in the
data, from 0 to ``window - 1`` days after discharge ("within 30 days" as in
NHS Digital's emergency readmissions indicator, which counts 0 to 29 days).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import periods

EMERGENCY_CODES = frozenset({"21", "22", "23", "24", "25", "26", "27", "28", "2A", "2B", "2C", "2D"})
ELECTIVE_CODES = frozenset({"11", "12", "13"})


def financial_year(dates: pd.Series) -> pd.Series:
    """NHS financial year (April to March) of each date, as ``'2024/25'``."""
    d = pd.to_datetime(dates)
    start = d.dt.year - (d.dt.month < 4).astype(int)
    label = start.astype("Int64").astype("str") + "/" + ((start + 1) % 100).astype("Int64").astype("str").str.zfill(2)
    return label.where(d.notna(), None)


def add_spell_fields(
    spells: pd.DataFrame,
    readmission_window_days: int = 30,
    follow_up_end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Return a copy of ``spells`` with the derived fields added.

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
    out = spells.copy()
    adm = pd.to_datetime(out["admission_date"])
    dis = pd.to_datetime(out["discharge_date"])
    out["los_days"] = (dis - adm).dt.days.astype("int64")
    method = out["admission_method"].astype("str")
    out["emergency"] = method.isin(EMERGENCY_CODES)
    out["elective"] = method.isin(ELECTIVE_CODES)
    if "patient_classification" in out.columns and out["patient_classification"].notna().any():
        out["day_case"] = out["patient_classification"].astype("str").eq("2").fillna(False).astype(bool)
    else:
        out["day_case"] = out["elective"] & (out["los_days"] == 0)
    if "discharge_method" in out.columns:
        died = out["discharge_method"].astype("str").eq("4")
        out["died"] = died.astype("boolean").where(out["discharge_method"].notna(), pd.NA)
    else:
        out["died"] = pd.array([pd.NA] * len(out), dtype="boolean")

    days = next_emergency_gap(out["patient_id"], out["spell_id"], adm, dis, out["emergency"])
    window = int(readmission_window_days)
    out["readmission_days"] = days
    out["readmit_30d"] = days.notna() & (days < window)
    end = pd.Timestamp(follow_up_end) if follow_up_end is not None else periods.coverage(out).end
    alive = ~out["died"].fillna(False).astype(bool)
    out["readmission_eligible"] = alive & (dis + pd.Timedelta(days=window - 1) <= end)
    out["financial_year"] = financial_year(dis)
    out["month"] = dis.dt.to_period("M").dt.to_timestamp()
    return out


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
