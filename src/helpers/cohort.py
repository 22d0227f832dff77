"""The cohort and outcomes of a step-down virtual ward evaluation.

METHODS.md section 5. The cohort is every emergency spell in the eligible
pathways, at a provider that runs a virtual ward, admitted in the months when
that ward ran. Treated spells were followed by a step-down virtual ward stay;
controls are the other eligible spells at the same providers in the same
months (concurrent controls).

Linkage of a step-down stay to its spell (:func:`link_step_down`), rules in
order, each counted in the exclusions table:

1. only ``step_down`` stays are linked (``step_up`` stays replace an admission
   and answer a different question);
2. ``linked_spell_id`` must name a spell in the spells table;
3. the stay and the spell must belong to the same ``patient_id``;
4. the stay must start on the spell's discharge day or within ``max_gap_days``
   after it (a stay starting later is not a step-down from that spell);
5. one stay per spell: when several stays link to one spell, the earliest is
   kept and the others are counted.

Outcomes, each defined here once:

* ``acute_los`` — days in the acute bed (``los_days`` of
  :func:`helpers.derive.add_spell_fields`);
* ``vw_days`` — virtual ward discharge minus admission date (0 for controls);
* ``total_los`` — ``acute_los + vw_days``: days moved to the virtual ward are
  not days saved;
* ``end_of_care`` — the virtual ward discharge date for treated spells, the
  acute discharge date for controls;
* ``readmission_30d`` — an emergency admission of the same patient to any
  provider from the acute discharge date up to ``window_days - 1`` days after
  the end of care (so an escalation back to hospital during the virtual ward
  stay counts);
* ``readmission_30d_from_acute_discharge`` — the same counted from the acute
  discharge for everyone (``readmit_30d`` of ``helpers.derive``): the
  definition trap, because a treated patient's clock then runs while they are
  still under virtual ward care;
* ``readmission_or_death_30d`` — either (death competes with readmission: a
  patient who dies cannot be readmitted, so a ward that let more patients die
  would look better on readmission alone);
* ``readmission_other_provider`` — 1 when the readmission counted in
  ``readmission_30d`` was to a different provider (invisible in one trust's
  own data);
* ``death_30d`` — death from the acute discharge up to ``window_days - 1``
  days after it, the same window for both groups: in a later spell ending in
  death (``discharge_method`` 4), or on a ``date_of_death`` of a ``deaths``
  table of linked mortality records when one is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.contract import open_table
from helpers.derive import add_spell_fields, derived_spells_sql, load_spells, next_emergency_gap
from helpers.evaluation import monthly_bed_days, monthly_bed_days_sql
from helpers.io import LoadedTable, table_columns
from helpers.periods import coverage as extract_coverage
from helpers.periods import coverage_from_months
from helpers.quality import profile_table

#: Default pathways from the ICD-10 primary diagnosis (three-character codes;
#: ranges are inclusive). Acute respiratory infection: influenza and pneumonia
#: J09-J18 and other acute lower respiratory infections J20-J22, plus COPD J44
#: (exacerbations); heart failure I50; frailty: R54 (age-related physical
#: debility) and R26 (abnormalities of gait and mobility), as the issue asks.
DEFAULT_PATHWAYS: dict[str, list[str]] = {
    "acute respiratory infection": ["J09-J22", "J44"],
    "heart failure": ["I50"],
    "frailty": ["R54", "R26"],
}

COHORT_COLUMNS: list[str] = [
    "spell_id",
    "patient_id",
    "provider_code",
    "admission_date",
    "discharge_date",
    "pathway",
    "age",
    "sex",
    "frailty_score",
    "imd_decile",
    "month",
    "treated",
    "vw_stay_id",
    "vw_admission_date",
    "vw_discharge_date",
    "vw_days",
    "acute_los",
    "total_los",
    "end_of_care",
    "readmission_30d",
    "readmission_30d_from_acute_discharge",
    "death_30d",
    "readmission_or_death_30d",
    "readmission_other_provider",
]

_CODE = re.compile(r"^([A-Z])(\d{2})$")


def _parse_code(code: str) -> tuple[str, int]:
    m = _CODE.match(code.strip().upper())
    if not m:
        raise ValueError(f"pathway code {code!r} is not a three-character ICD-10 code like 'J44'")
    return m.group(1), int(m.group(2))


def assign_pathway(diagnosis: pd.Series, pathways: dict[str, list[str]] | None = None) -> pd.Series:
    """Pathway of each spell from its ICD-10 primary diagnosis (first three characters).

    ``pathways`` maps a pathway name to codes (``"I50"``) or inclusive ranges
    (``"J09-J22"``). A code in two pathways raises an error. Spells with no
    match (or no diagnosis) get a missing value.
    """
    pathways = DEFAULT_PATHWAYS if pathways is None else pathways
    letter = diagnosis.astype("str").str.strip().str.upper().str[0]
    number = pd.to_numeric(diagnosis.astype("str").str.strip().str[1:3], errors="coerce")
    out = pd.Series(pd.NA, index=diagnosis.index, dtype="str")
    for name, codes in pathways.items():
        hit = pd.Series(False, index=diagnosis.index)
        for code in codes:
            lo, _, hi = code.partition("-")
            (l1, n1), (l2, n2) = _parse_code(lo), _parse_code(hi or lo)
            if l1 != l2:
                raise ValueError(f"range {code!r} spans two ICD-10 letters; split it")
            hit |= (letter == l1) & number.between(n1, n2)
        hit = hit.fillna(False).astype(bool)
        clash = hit & out.notna()
        if clash.any():
            raise ValueError(
                f"pathway {name!r} overlaps another pathway, e.g. diagnosis {diagnosis[clash].iloc[0]!r}"
            )
        out = out.mask(hit, name)
    return out


def virtual_ward_periods(virtual_ward: pd.DataFrame, starts: dict[str, str] | None = None) -> pd.DataFrame:
    """When each provider's virtual ward ran: one row per provider_code.

    Columns: provider_code, vw_start (the first virtual ward admission, or the
    date given in ``starts``), vw_end (the last virtual ward discharge),
    period_start and period_end (the calendar months they fall in, so the
    cohort takes whole months: concurrent controls from the same months).
    """
    vw = virtual_ward.assign(provider_code=virtual_ward["provider_code"].astype("str"))
    g = vw.groupby("provider_code")
    out = pd.DataFrame({"vw_start": g["vw_admission_date"].min(), "vw_end": g["vw_discharge_date"].max()})
    out = out.reset_index()
    if starts:
        given = pd.Series({str(k): pd.Timestamp(v) for k, v in starts.items()})
        unknown = sorted(set(given.index) - set(out["provider_code"]))
        if unknown:
            raise ValueError(f"start dates given for providers with no virtual ward stays: {unknown}")
        out["vw_start"] = out["provider_code"].map(given).fillna(out["vw_start"])
    out["vw_start"] = pd.to_datetime(out["vw_start"])
    out["vw_end"] = pd.to_datetime(out["vw_end"])
    out["period_start"] = out["vw_start"].dt.to_period("M").dt.start_time
    out["period_end"] = out["vw_end"].dt.to_period("M").dt.end_time.dt.normalize()
    return out


def _count(rows: list[dict], table: str, step: str, before: int, after: int, reason: str) -> None:
    rows.append(
        {
            "table": table,
            "step": step,
            "rows_before": before,
            "rows_removed": before - after,
            "rows_after": after,
            "reason": reason,
        }
    )


def link_step_down(
    spells: pd.DataFrame, virtual_ward: pd.DataFrame, max_gap_days: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Link step-down virtual ward stays to the acute spells they followed.

    Applies the five rules in the module docstring. Returns (links,
    exclusions): links has spell_id, vw_stay_id, vw_admission_date,
    vw_discharge_date, vw_days, vw_pathway, vw_provider_code and
    referral_date (missing where the table has no such column); exclusions
    counts the stays set aside at each rule (table, step, rows_before,
    rows_removed, rows_after, reason).
    """
    ex: list[dict] = []
    vw = virtual_ward.copy()
    n = len(vw)
    vw = vw[vw["route"].astype("str") == "step_down"]
    _count(
        ex,
        "virtual_ward",
        "step-down stays only",
        n,
        len(vw),
        "step-up stays replace an admission; they are not linked to a spell",
    )
    n = len(vw)
    sp = spells[["spell_id", "patient_id", "discharge_date"]].rename(
        columns={"patient_id": "spell_patient_id"}
    )
    sp = sp.assign(spell_id=sp["spell_id"].astype("str"))
    vw = vw.assign(linked_spell_id=vw["linked_spell_id"].astype("str"))
    vw = vw.merge(sp, left_on="linked_spell_id", right_on="spell_id", how="left")
    found = vw["spell_id"].notna()
    vw = vw[found]
    _count(
        ex,
        "virtual_ward",
        "linked spell exists",
        n,
        len(vw),
        "linked_spell_id names no spell in the spells table",
    )
    n = len(vw)
    vw = vw[vw["patient_id"].astype("str") == vw["spell_patient_id"].astype("str")]
    _count(
        ex,
        "virtual_ward",
        "same patient",
        n,
        len(vw),
        "the stay's patient_id differs from the linked spell's",
    )
    n = len(vw)
    gap = (pd.to_datetime(vw["vw_admission_date"]) - pd.to_datetime(vw["discharge_date"])).dt.days
    vw = vw[(gap >= 0) & (gap <= max_gap_days)]
    _count(
        ex,
        "virtual_ward",
        f"starts 0-{max_gap_days} days after acute discharge",
        n,
        len(vw),
        "the stay does not start on the spell's discharge day or within the allowed gap",
    )
    n = len(vw)
    vw = vw.sort_values(["spell_id", "vw_admission_date", "vw_stay_id"]).drop_duplicates(
        "spell_id", keep="first"
    )
    _count(ex, "virtual_ward", "one stay per spell", n, len(vw), "a later stay linked to the same spell")
    links = pd.DataFrame(
        {
            "spell_id": vw["spell_id"].astype("str"),
            "vw_stay_id": vw["vw_stay_id"].astype("str"),
            "vw_admission_date": pd.to_datetime(vw["vw_admission_date"]),
            "vw_discharge_date": pd.to_datetime(vw["vw_discharge_date"]),
            "vw_pathway": vw["pathway"].astype("str"),
            "vw_provider_code": vw["provider_code"].astype("str"),
            "referral_date": (
                pd.to_datetime(vw["referral_date"])
                if "referral_date" in vw.columns
                else pd.Series(pd.NaT, index=vw.index, dtype="datetime64[ns]")
            ),
        }
    ).reset_index(drop=True)
    links.insert(
        4, "vw_days", (links["vw_discharge_date"] - links["vw_admission_date"]).dt.days.astype("int64")
    )
    return links, pd.DataFrame(ex)


@dataclass
class Cohort:
    """What :func:`build_cohort` returns.

    ``spells``: one row per cohort spell (columns ``COHORT_COLUMNS``; patient
    level, never published); ``exclusions``: every row set aside, by step;
    ``links``: the linked step-down stays; ``periods``: when each provider's
    virtual ward ran.
    """

    spells: pd.DataFrame
    exclusions: pd.DataFrame
    links: pd.DataFrame
    periods: pd.DataFrame


def _eligible_spells(
    sp: pd.DataFrame, periods: pd.DataFrame, pathways: dict[str, list[str]], min_age: int, ex: list[dict]
) -> pd.DataFrame:
    """Emergency spells of adults in the pathways, at a virtual ward provider in the months it ran.

    The first four cohort steps, each counted in ``ex``. Adds ``pathway``.
    """
    n = len(sp)
    c = sp[sp["emergency"].astype(bool)]
    _count(
        ex, "spells", "emergency admissions", n, len(c), "not an emergency admission (ADMIMETH 21-28, 2A-2D)"
    )
    n = len(c)
    c = c[c["age"] >= min_age]
    _count(ex, "spells", f"aged {min_age} or over", n, len(c), f"aged under {min_age}")
    n = len(c)
    c = c.assign(
        pathway=assign_pathway(c["primary_diagnosis"], pathways)
        if "primary_diagnosis" in c.columns
        else pd.Series(pd.NA, index=c.index, dtype="str")
    )
    c = c[c["pathway"].notna()]
    _count(
        ex, "spells", "eligible pathway", n, len(c), "primary diagnosis outside the pathways' ICD-10 codes"
    )
    n = len(c)
    c = c.merge(periods[["provider_code", "period_start", "period_end"]], on="provider_code", how="left")
    in_period = (pd.to_datetime(c["admission_date"]) >= c["period_start"]) & (
        pd.to_datetime(c["admission_date"]) <= c["period_end"]
    )
    c = c[in_period.fillna(False).astype(bool)].drop(columns=["period_start", "period_end"])
    _count(
        ex,
        "spells",
        "provider and months with a virtual ward",
        n,
        len(c),
        "admitted at a provider without a virtual ward, or outside the months it ran",
    )
    return c


def build_cohort(
    spells: pd.DataFrame,
    virtual_ward: pd.DataFrame,
    pathways: dict[str, list[str]] | None = None,
    window_days: int = 30,
    max_gap_days: int = 1,
    starts: dict[str, str] | None = None,
    covariates: list[str] | None = None,
    deaths: pd.DataFrame | None = None,
    follow_up_end: str | pd.Timestamp | None = None,
    min_age: int = 18,
    exclude_in_hospital_deaths: bool = True,
) -> Cohort:
    """The evaluation cohort with treatment, covariates and outcomes.

    Steps, each counted in ``exclusions``: emergency admissions; adults
    (``age >= min_age``; adult virtual wards, and children's stays are
    never comparable); a primary diagnosis in ``pathways``; at a provider with a virtual ward, admitted in
    the months it ran; discharged alive from the acute spell (a patient who
    dies in the acute bed can never be stepped down, so keeping them as
    controls would flatter the ward on deaths); follow-up complete (end of care
    plus ``window_days`` by ``follow_up_end``, default the last admission in
    the data); ``covariates`` complete. ``exclude_in_hospital_deaths=False``
    keeps the acute deaths as controls, only to show the immortal time trap. ``spells`` may be raw (as loaded) or
    already carry the fields of :func:`helpers.derive.add_spell_fields`.
    """
    pathways = DEFAULT_PATHWAYS if pathways is None else pathways
    window = int(window_days)
    if "los_days" not in spells.columns:
        spells = add_spell_fields(spells, readmission_window_days=window)
    sp = spells.copy()
    sp["spell_id"] = sp["spell_id"].astype("str")
    sp["provider_code"] = sp["provider_code"].astype("str")
    adm = pd.to_datetime(sp["admission_date"])
    dis = pd.to_datetime(sp["discharge_date"])
    end_data = pd.Timestamp(follow_up_end) if follow_up_end is not None else adm.max()

    # Readmission and death are looked for in every spell, not just the cohort.
    gap = next_emergency_gap(sp["patient_id"], sp["spell_id"], adm, dis, sp["emergency"])
    sp["_gap"] = gap.astype("Float64")

    links, ex_links = link_step_down(sp, virtual_ward, max_gap_days=max_gap_days)
    periods = virtual_ward_periods(virtual_ward, starts)
    ex: list[dict] = []

    c = _eligible_spells(sp, periods, pathways, min_age, ex)
    n = len(c)
    if exclude_in_hospital_deaths:
        c = c[~_died(c)]
    _count(
        ex, "spells", "discharged alive", n, len(c), "died in the acute spell, so could not be stepped down"
    )

    c = c.merge(
        links.drop(columns=["vw_pathway", "vw_provider_code", "referral_date"]), on="spell_id", how="left"
    )
    c["treated"] = c["vw_stay_id"].notna().astype(int)
    # the admission month: the discharge month comes after the treatment decision
    c["month"] = pd.to_datetime(c["admission_date"]).dt.to_period("M").dt.to_timestamp()
    c["vw_days"] = c["vw_days"].fillna(0).astype("int64")
    c["acute_los"] = c["los_days"].astype("int64")
    c["total_los"] = c["acute_los"] + c["vw_days"]
    cdis = pd.to_datetime(c["discharge_date"])
    c["end_of_care"] = c["vw_discharge_date"].where(c["treated"] == 1, cdis)
    care_days = (c["end_of_care"] - cdis).dt.days
    g = c["_gap"]
    c["readmission_30d"] = (g.notna() & (g <= care_days + window - 1)).fillna(False).astype(int)
    c["readmission_30d_from_acute_discharge"] = (g.notna() & (g <= window - 1)).fillna(False).astype(int)
    c["death_30d"] = _death_within(c, sp, deaths, window)
    c["readmission_or_death_30d"] = ((c["readmission_30d"] == 1) | (c["death_30d"] == 1)).astype(int)
    c["readmission_other_provider"] = _readmission_elsewhere(c, sp)
    return _finish_cohort(c, ex, ex_links, links, periods, covariates, window, end_data)


def _finish_cohort(
    c: pd.DataFrame,
    ex: list[dict],
    ex_links: pd.DataFrame,
    links: pd.DataFrame,
    periods: pd.DataFrame,
    covariates: list[str] | None,
    window: int,
    end_data: pd.Timestamp,
) -> Cohort:
    """The last steps of :func:`build_cohort`, shared by the pandas and SQL builds: follow-up and covariates complete."""
    # each step narrows one mask; the rows are taken once, at the end
    keep = (c["end_of_care"] + pd.Timedelta(days=window - 1) <= end_data).to_numpy(dtype=bool)
    _count(
        ex,
        "spells",
        "follow-up complete",
        len(c),
        int(keep.sum()),
        f"the {window}-day window after the end of care runs past the end of the data ({end_data:%d %b %Y})",
    )
    for col in covariates or []:
        n = int(keep.sum())
        if col not in c.columns:
            raise ValueError(f"covariate '{col}' is not a column of the spells (columns: {list(c.columns)})")
        keep = keep & c[col].notna().to_numpy(dtype=bool)
        _count(ex, "spells", f"{col} recorded", n, int(keep.sum()), f"{col} is missing")
    c = c[keep]

    treated_links = links[_isin(links["spell_id"], c["spell_id"])]
    ex_out = pd.concat([ex_links, pd.DataFrame(ex)], ignore_index=True)
    ex_out = pd.concat(
        [
            ex_out,
            pd.DataFrame(
                [
                    {
                        "table": "virtual_ward",
                        "step": "linked spell in the cohort",
                        "rows_before": len(links),
                        "rows_removed": len(links) - len(treated_links),
                        "rows_after": len(treated_links),
                        "reason": "the linked spell is outside the cohort (pathway, period, death or follow-up)",
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    cols = [col for col in COHORT_COLUMNS if col in c.columns]
    extra = [col for col in (covariates or []) if col not in cols]
    return Cohort(c[cols + extra].reset_index(drop=True), ex_out, links, periods)


def _distinct(codes: np.ndarray, mask: np.ndarray) -> int:
    """How many distinct values the rows in ``mask`` hold (``codes`` from :func:`pandas.factorize`; -1 is missing)."""
    kept = codes[mask]
    kept = kept[kept >= 0]
    return int(np.count_nonzero(np.bincount(kept))) if kept.size else 0


def _isin(values: pd.Series, among: pd.Series) -> np.ndarray:
    """``values.isin(among)`` compared on codes of one factorization (pandas' text ``isin`` converts ``among``
    value by value)."""
    codes = pd.factorize(pd.concat([values, among], ignore_index=True))[0]
    return np.isin(codes[: len(values)], codes[len(values) :])


def _died(frame: pd.DataFrame) -> pd.Series:
    """True where the spell ended in death; False where it did not or ``died`` is unknown/absent."""
    if "died" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["died"].astype("boolean").fillna(False).astype(bool)


def death_dates(spells: pd.DataFrame, deaths: pd.DataFrame | None = None) -> pd.Series:
    """Every known death, one row per (patient, date): a series of dates indexed by patient_id.

    From spells that ended in death (``discharge_method`` 4, on the discharge
    date) and, when given, linked mortality records (``patient_id``,
    ``date_of_death``). Empty (but typed as dates) when there are none, so
    comparisons with dates never fail.
    """
    died = spells[_died(spells)]
    parts = [
        pd.DataFrame(
            {
                "patient_id": died["patient_id"].astype("str"),
                "date_of_death": pd.to_datetime(died["discharge_date"]),
            }
        )
    ]
    if deaths is not None:
        parts.append(
            pd.DataFrame(
                {
                    "patient_id": deaths["patient_id"].astype("str"),
                    "date_of_death": pd.to_datetime(deaths["date_of_death"]),
                }
            )
        )
    dd = pd.concat(parts, ignore_index=True)
    dd["date_of_death"] = dd["date_of_death"].astype("datetime64[ns]")
    return dd.drop_duplicates().set_index("patient_id")["date_of_death"].sort_values()


def _first_death_between(
    patient_id: pd.Series, start: pd.Series, stop: pd.Series, dd: pd.Series
) -> pd.Series:
    """The first death date of each row's patient from ``start`` to ``stop`` (inclusive), else NaT."""
    frame = pd.DataFrame(
        {
            "patient_id": patient_id.astype("str").to_numpy(),
            "_row": np.arange(len(patient_id)),
            "start": pd.to_datetime(start).astype("datetime64[ns]").to_numpy(),
            "stop": pd.to_datetime(stop).astype("datetime64[ns]").to_numpy(),
        }
    )
    m = frame.merge(dd.rename("when").reset_index(), on="patient_id", how="inner")
    m = m[(m["when"] >= m["start"]) & (m["when"] <= m["stop"])]
    first = m.groupby("_row")["when"].min()
    out = pd.Series(pd.NaT, index=np.arange(len(patient_id)), dtype="datetime64[ns]")
    out.loc[first.index] = first.to_numpy()
    out.index = patient_id.index
    return out


def _death_within(c: pd.DataFrame, sp: pd.DataFrame, deaths: pd.DataFrame | None, window: int) -> pd.Series:
    """1 when the patient died from the acute discharge to ``window - 1`` days after it.

    The same window for both groups (a death on the virtual ward counts for a
    treated spell). An earlier version counted treated patients' deaths up to
    ``window - 1`` days after the virtual ward discharge: a longer window.
    """
    start = pd.to_datetime(c["discharge_date"])
    stop = start + pd.Timedelta(days=window - 1)
    when = _first_death_between(c["patient_id"], start, stop, death_dates(sp, deaths))
    return when.notna().astype(int)


def _readmission_elsewhere(c: pd.DataFrame, sp: pd.DataFrame) -> pd.Series:
    """1 when the readmission counted in ``readmission_30d`` was to another provider."""
    em = sp[sp["emergency"].astype(bool)]
    key = em.assign(
        patient_id=em["patient_id"].astype("str"), admission_date=pd.to_datetime(em["admission_date"])
    )
    key = key.sort_values(["patient_id", "admission_date", "spell_id"]).drop_duplicates(
        ["patient_id", "admission_date"]
    )
    lookup = key.set_index(["patient_id", "admission_date"])["provider_code"].astype("str")
    when = pd.to_datetime(c["discharge_date"]) + pd.to_timedelta(c["_gap"].astype("float"), unit="D")
    idx = pd.MultiIndex.from_arrays([c["patient_id"].astype("str"), when])
    prov = pd.Series(lookup.reindex(idx).to_numpy(), index=c.index)
    other = (c["readmission_30d"] == 1) & prov.notna() & (prov != c["provider_code"].astype("str"))
    return other.astype(int)


def readmission_destinations(cohort: pd.DataFrame) -> pd.DataFrame:
    """Where the cohort's 30-day readmissions went, by group.

    Columns: group (``virtual ward`` / ``control``), spells, readmissions,
    to_other_provider, share_other_provider. A trust that counts only its own
    readmissions misses the last column.
    """
    rows = []
    for label, flag in (("virtual ward", 1), ("control", 0)):
        g = cohort[cohort["treated"] == flag]
        r = int(g["readmission_30d"].sum())
        o = int(g["readmission_other_provider"].sum())
        rows.append(
            {
                "group": label,
                "spells": len(g),
                "readmissions": r,
                "to_other_provider": o,
                "share_other_provider": o / r if r else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def describe_cohort(cohort: pd.DataFrame) -> pd.DataFrame:
    """Who is in each group: one row per group (``virtual ward``, ``control``).

    Columns: group, spells, mean_age, share_female, mean_frailty, mean_imd_decile,
    mean_acute_los, mean_vw_days, mean_total_los, readmission_30d_rate,
    death_30d_rate (rates as proportions). Unadjusted: it shows why a naive
    comparison misleads.
    """
    rows = []
    for label, flag in (("virtual ward", 1), ("control", 0)):
        g = cohort[cohort["treated"] == flag]
        rows.append(
            {
                "group": label,
                "spells": len(g),
                "mean_age": g["age"].mean(),
                "share_female": (g["sex"].astype("str") == "2").mean(),
                "mean_frailty": g["frailty_score"].mean() if "frailty_score" in g else float("nan"),
                "mean_imd_decile": g["imd_decile"].mean() if "imd_decile" in g else float("nan"),
                "mean_acute_los": g["acute_los"].mean(),
                "mean_vw_days": g["vw_days"].mean(),
                "mean_total_los": g["total_los"].mean(),
                "readmission_30d_rate": g["readmission_30d"].mean(),
                "death_30d_rate": g["death_30d"].mean(),
            }
        )
    return pd.DataFrame(rows)


def pathway_spells(
    spells: pd.DataFrame, pathways: dict[str, list[str]] | None = None, min_age: int = 18
) -> pd.DataFrame:
    """Emergency spells of adults in the pathways, at every provider and in every month.

    The population a provider-level analysis (interrupted time series,
    difference-in-differences) counts bed days for. Adds ``pathway``.
    """
    if "emergency" not in spells.columns:
        spells = add_spell_fields(spells)
    out = spells[spells["emergency"].astype(bool) & (spells["age"] >= min_age)].copy()
    out["pathway"] = assign_pathway(out["primary_diagnosis"], pathways)
    return out[out["pathway"].notna()].reset_index(drop=True)


# ---------------------------------------------------------------------------
# The target-trial design: one time zero for both arms (METHODS.md section 5)
# ---------------------------------------------------------------------------

#: Outcomes of the target-trial design, all counted from time zero over the
#: same fixed windows in both arms.
TARGET_TRIAL_OUTCOMES: list[str] = [
    "acute_los",
    "total_los",
    "readmission_30d",
    "readmission_90d",
    "death_30d",
    "readmission_or_death_30d",
    "days_alive_out_of_hospital_30d",
]

#: Covariates measured before time zero that :func:`build_target_trial` adds.
PRIOR_USE_COVARIATES: list[str] = ["prior_emergency_admissions", "prior_bed_days"]

TARGET_TRIAL_COLUMNS: list[str] = [
    "risk_set",
    "landmark_day",
    "time_zero",
    "time_zero_source",
    "spell_id",
    "patient_id",
    "provider_code",
    "admission_date",
    "discharge_date",
    "pathway",
    "age",
    "sex",
    "frailty_score",
    "imd_decile",
    "month",
    *PRIOR_USE_COVARIATES,
    "treated",
    "vw_stay_id",
    "vw_days",
    "end_of_care",
    *TARGET_TRIAL_OUTCOMES,
    "readmission_other_provider",
]


@dataclass
class TargetTrial:
    """What :func:`build_target_trial` returns.

    ``rows``: one row per spell per risk set (a spell still in hospital on
    several landmark days is a control in each; patient level, never
    published); ``all_spells``: every eligible spell with its clock started at
    admission and no risk set (the naive comparison); ``exclusions``, ``links``
    and ``periods`` as in :class:`Cohort`; ``time_zero``: ``"referral_date"``,
    ``"step-down day"`` or ``"mixed"``; ``time_zero_counts``: treated spells by
    source of time zero.
    """

    rows: pd.DataFrame
    all_spells: pd.DataFrame
    exclusions: pd.DataFrame
    links: pd.DataFrame
    periods: pd.DataFrame
    time_zero: str
    time_zero_counts: dict[str, int]


def prior_use(cohort: pd.DataFrame, spells: pd.DataFrame, days: int = 365) -> pd.DataFrame:
    """Emergency admissions and bed days of each spell's patient in the ``days`` before its admission.

    Columns spell_id, prior_emergency_admissions (emergency spells admitted in
    [admission - days, admission), this spell excluded), prior_bed_days
    (nights in hospital in that year, any spell). Measured before time zero,
    from the spells themselves: in the first year of an extract the history
    is shorter than a year (admission month, a covariate, carries that).
    """
    left = pd.DataFrame(
        {
            "spell_id": cohort["spell_id"].astype("str").to_numpy(),
            "patient_id": cohort["patient_id"].astype("str").to_numpy(),
            "adm": pd.to_datetime(cohort["admission_date"]).astype("datetime64[ns]").to_numpy(),
        }
    )
    left = left.drop_duplicates("spell_id")
    right = pd.DataFrame(
        {
            "other_id": spells["spell_id"].astype("str").to_numpy(),
            "patient_id": spells["patient_id"].astype("str").to_numpy(),
            "adm_j": pd.to_datetime(spells["admission_date"]).astype("datetime64[ns]").to_numpy(),
            "dis_j": pd.to_datetime(spells["discharge_date"]).astype("datetime64[ns]").to_numpy(),
            "emergency_j": spells["emergency"].astype(bool).to_numpy(),
        }
    )
    m = left.merge(right[right["patient_id"].isin(left["patient_id"])], on="patient_id", how="inner")
    start = m["adm"] - pd.Timedelta(days=days)
    m = m[
        (m["other_id"] != m["spell_id"]) & (m["adm_j"] < m["adm"]) & (m["dis_j"] > start)
        | (m["other_id"] != m["spell_id"]) & (m["adm_j"] >= start) & (m["adm_j"] < m["adm"])
    ]
    start = m["adm"] - pd.Timedelta(days=days)
    nights = (np.minimum(m["dis_j"], m["adm"]) - np.maximum(m["adm_j"], start)).dt.days.clip(lower=0)
    admitted_in_year = (m["adm_j"] >= start) & (m["adm_j"] < m["adm"]) & m["emergency_j"]
    agg = pd.DataFrame({"spell_id": m["spell_id"], "n": admitted_in_year.astype(int), "nights": nights})
    agg = agg.groupby("spell_id").sum()
    out = left[["spell_id"]].merge(agg, left_on="spell_id", right_index=True, how="left")
    return pd.DataFrame(
        {
            "spell_id": out["spell_id"].to_numpy(),
            "prior_emergency_admissions": out["n"].fillna(0).astype("int64").to_numpy(),
            "prior_bed_days": out["nights"].fillna(0).astype("int64").to_numpy(),
        }
    )


def time_zero_outcomes(
    rows: pd.DataFrame,
    spells: pd.DataFrame,
    deaths: pd.DataFrame | None = None,
    window_days: int = 30,
    long_window_days: int = 90,
    end_data: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The target-trial outcomes of each row, counted from its ``time_zero``.

    ``rows`` needs spell_id, patient_id, provider_code, discharge_date,
    end_of_care, time_zero and ``_gap`` (days from the acute discharge to the
    patient's next emergency admission, any provider). The windows run from
    time zero to ``window_days - 1`` days after it in both arms:

    * ``acute_los`` — acute bed days from time zero (discharge minus time zero);
    * ``total_los`` — days under care from time zero (to the virtual ward
      discharge for a spell with a step-down stay, else the acute discharge);
    * ``readmission_30d`` / ``readmission_90d`` — an emergency admission of the
      patient to any provider after the acute discharge and within the window
      (an escalation from the virtual ward back to hospital counts); the
      90-day outcome is missing where its window runs past ``end_data``;
    * ``death_30d`` — death in the window (in hospital, in a later spell, or in
      the ``deaths`` records); deaths after time zero are outcomes, never
      exclusions;
    * ``readmission_or_death_30d`` — either;
    * ``days_alive_out_of_hospital_30d`` — ``window_days`` minus nights in an
      acute bed in the window (a day with a same-day admission counts one)
      minus days after death; days on the virtual ward are days at home;
    * ``readmission_other_provider`` — the counted 30-day readmission was to
      another provider.
    """
    w, w_long = int(window_days), int(long_window_days)
    t0 = pd.to_datetime(rows["time_zero"]).astype("datetime64[ns]")
    dis = pd.to_datetime(rows["discharge_date"]).astype("datetime64[ns]")
    eoc = pd.to_datetime(rows["end_of_care"]).astype("datetime64[ns]")
    out = pd.DataFrame(index=rows.index)
    out["acute_los"] = (dis - t0).dt.days.astype("int64")
    out["total_los"] = (eoc - t0).dt.days.astype("int64")
    gap = rows["_gap"].astype("Float64")
    readmit_at = dis + pd.to_timedelta(gap.astype("float"), unit="D")
    out["readmission_30d"] = (readmit_at <= t0 + pd.Timedelta(days=w - 1)).fillna(False).astype(int)
    r90 = (readmit_at <= t0 + pd.Timedelta(days=w_long - 1)).fillna(False).astype(float)
    if end_data is not None:
        r90 = r90.where(t0 + pd.Timedelta(days=w_long - 1) <= end_data)
    out["readmission_90d"] = r90
    dd = death_dates(spells, deaths)
    when = _first_death_between(rows["patient_id"], t0, t0 + pd.Timedelta(days=w - 1), dd)
    out["death_30d"] = when.notna().astype(int)
    out["readmission_or_death_30d"] = ((out["readmission_30d"] == 1) | (out["death_30d"] == 1)).astype(int)
    # days alive and out of hospital
    stop = t0 + pd.Timedelta(days=w)
    index_nights = (np.minimum(dis, stop) - t0).dt.days.clip(lower=0)
    key = pd.DataFrame(
        {
            "_row": np.arange(len(rows)),
            "patient_id": rows["patient_id"].astype("str").to_numpy(),
            "spell_id": rows["spell_id"].astype("str").to_numpy(),
            "t0": t0.to_numpy(),
            "stop": stop.to_numpy(),
            "dis": dis.to_numpy(),
        }
    )
    other = pd.DataFrame(
        {
            "patient_id": spells["patient_id"].astype("str").to_numpy(),
            "other_id": spells["spell_id"].astype("str").to_numpy(),
            "adm_j": pd.to_datetime(spells["admission_date"]).astype("datetime64[ns]").to_numpy(),
            "dis_j": pd.to_datetime(spells["discharge_date"]).astype("datetime64[ns]").to_numpy(),
        }
    )
    m = key.merge(other[other["patient_id"].isin(key["patient_id"])], on="patient_id", how="inner")
    m = m[(m["other_id"] != m["spell_id"]) & (m["adm_j"] >= m["dis"]) & (m["adm_j"] < m["stop"])]
    later = (np.minimum(m["dis_j"], m["stop"]) - np.maximum(m["adm_j"], m["t0"])).dt.days.clip(lower=1)
    later_nights = pd.Series(later.to_numpy(), index=m["_row"].to_numpy()).groupby(level=0).sum()
    later_nights = later_nights.reindex(np.arange(len(rows)), fill_value=0).to_numpy()
    dead_days = (stop - when).dt.days.fillna(0).clip(lower=0).to_numpy()
    daoh = (w - index_nights.to_numpy() - later_nights - dead_days).clip(0, w)
    out["days_alive_out_of_hospital_30d"] = daoh.astype("int64")
    # where the readmission went
    em = spells[spells["emergency"].astype(bool)]
    look = pd.DataFrame(
        {
            "patient_id": em["patient_id"].astype("str").to_numpy(),
            "when": pd.to_datetime(em["admission_date"]).astype("datetime64[ns]").to_numpy(),
            "prov": em["provider_code"].astype("str").to_numpy(),
            "sid": em["spell_id"].astype("str").to_numpy(),
        }
    )
    look = look.sort_values(["patient_id", "when", "sid"]).drop_duplicates(["patient_id", "when"])
    idx = pd.MultiIndex.from_arrays([rows["patient_id"].astype("str"), readmit_at])
    prov = pd.Series(look.set_index(["patient_id", "when"])["prov"].reindex(idx).to_numpy(), index=rows.index)
    out["readmission_other_provider"] = (
        (out["readmission_30d"] == 1) & prov.notna() & (prov != rows["provider_code"].astype("str"))
    ).astype(int)
    return out


def build_target_trial(
    spells: pd.DataFrame,
    virtual_ward: pd.DataFrame,
    pathways: dict[str, list[str]] | None = None,
    window_days: int = 30,
    max_gap_days: int = 1,
    starts: dict[str, str] | None = None,
    covariates: list[str] | None = None,
    deaths: pd.DataFrame | None = None,
    follow_up_end: str | pd.Timestamp | None = None,
    min_age: int = 18,
    long_window_days: int = 90,
    prior_days: int = 365,
) -> TargetTrial:
    """The evaluation cohort of a target trial with one time zero for both arms.

    METHODS.md section 5 (Hernán & Robins 2016, Am J Epidemiol 183:758, on
    emulating a target trial; risk-set matching as in Li, Propert & Rosenbaum
    2001, JASA 96:870). Eligible spells as in :func:`build_cohort` (emergency,
    adults, pathway, provider and months with a virtual ward; no exclusion of
    deaths). Time zero of a treated spell is its stay's ``referral_date`` when
    given (it must lie within the spell: counted and set aside otherwise), else
    the step-down day (the acute discharge onto the virtual ward): weaker,
    because the patient was discharged that day, so time zero comes after the
    decision and the shorter stay it caused. The treated spells of one
    provider and pathway whose time zero falls on hospital day k form a risk
    set with every eligible spell of that provider and pathway still in
    hospital and alive on day k (discharge on or after day k) and not stepped
    down before it; a spell stepped down later is a control here ("treat now
    or wait"). Outcomes are counted from time zero
    (:func:`time_zero_outcomes`); covariates are measured before it (age,
    sex, deprivation, frailty, pathway, admission month, prior-year emergency
    admissions and bed days). Rows whose ``window_days`` follow-up after time
    zero runs past ``follow_up_end`` (default: the last admission in the data)
    and rows missing a ``covariates`` value are counted and set aside.
    """
    pathways = DEFAULT_PATHWAYS if pathways is None else pathways
    window = int(window_days)
    if "los_days" not in spells.columns:
        spells = add_spell_fields(spells, readmission_window_days=window)
    sp = spells.copy()
    sp["spell_id"] = sp["spell_id"].astype("str")
    sp["provider_code"] = sp["provider_code"].astype("str")
    adm_all = pd.to_datetime(sp["admission_date"])
    end_data = pd.Timestamp(follow_up_end) if follow_up_end is not None else adm_all.max()
    sp["_gap"] = next_emergency_gap(
        sp["patient_id"], sp["spell_id"], adm_all, pd.to_datetime(sp["discharge_date"]), sp["emergency"]
    ).astype("Float64")
    links, ex_links = link_step_down(sp, virtual_ward, max_gap_days=max_gap_days)
    periods = virtual_ward_periods(virtual_ward, starts)
    ex: list[dict] = []
    c = _eligible_spells(sp, periods, pathways, min_age, ex)
    c = c.merge(links.drop(columns=["vw_pathway", "vw_provider_code"]), on="spell_id", how="left")
    adm = pd.to_datetime(c["admission_date"]).astype("datetime64[ns]")
    dis = pd.to_datetime(c["discharge_date"]).astype("datetime64[ns]")
    linked = c["vw_stay_id"].notna()
    ref = pd.to_datetime(c["referral_date"]).astype("datetime64[ns]")
    has_ref = linked & ref.notna()
    bad = has_ref & ((ref < adm) | (ref > dis))
    n = len(c)
    keep = ~bad.to_numpy()
    c, adm, dis, linked, ref, has_ref = (x[keep] for x in (c, adm, dis, linked, ref, has_ref))
    _count(
        ex,
        "spells",
        "referral_date within the linked spell",
        n,
        len(c),
        "the step-down stay's referral_date is before the admission or after the acute discharge",
    )
    c = c.assign(
        vw_days=c["vw_days"].fillna(0).astype("int64"),
        end_of_care=c["vw_discharge_date"].astype("datetime64[ns]").where(linked, dis),
        treatment_day=np.where(linked, np.where(has_ref, (ref - adm).dt.days, (dis - adm).dt.days), np.nan),
        time_zero_source=np.where(has_ref, "referral_date", np.where(linked, "step-down day", "")),
        month=adm.dt.to_period("M").dt.to_timestamp(),
    )
    c = c.merge(prior_use(c, sp, prior_days), on="spell_id", how="left")
    counts = {src: int((c["time_zero_source"] == src).sum()) for src in ("referral_date", "step-down day")}
    used = [k for k, v in counts.items() if v]
    time_zero = used[0] if len(used) == 1 else ("mixed" if used else "none")

    # risk sets: (provider, pathway, hospital day of a treated spell's time zero)
    keys = c.loc[c["treatment_day"].notna(), ["provider_code", "pathway", "treatment_day"]].drop_duplicates()
    keys = keys.rename(columns={"treatment_day": "landmark_day"})
    r = c.merge(keys, on=["provider_code", "pathway"], how="inner")
    r_los = (pd.to_datetime(r["discharge_date"]) - pd.to_datetime(r["admission_date"])).dt.days
    at_risk = (r_los >= r["landmark_day"]) & ~(r["treatment_day"] < r["landmark_day"])
    r = r[at_risk.to_numpy()].copy()
    r["landmark_day"] = r["landmark_day"].astype("int64")
    r["treated"] = (r["treatment_day"] == r["landmark_day"]).astype(int)
    r["time_source_row"] = r["time_zero_source"]
    r["time_zero_source"] = np.where(r["treated"] == 1, r["time_zero_source"], "")
    r["time_zero"] = pd.to_datetime(r["admission_date"]).astype("datetime64[ns]") + pd.to_timedelta(
        r["landmark_day"], unit="D"
    )
    r["risk_set"] = (
        r["provider_code"].astype("str")
        + " | "
        + r["pathway"].astype("str")
        + " | day "
        + r["landmark_day"].astype("str")
    )
    n_spells = c["spell_id"].nunique()
    _count(
        ex,
        "spells",
        "in a risk set",
        n_spells,
        r["spell_id"].nunique(),
        "not in hospital on the hospital day of any step-down decision at its provider and pathway",
    )
    r = r.reset_index(drop=True)
    r = pd.concat([r, time_zero_outcomes(r, sp, deaths, window, long_window_days, end_data)], axis=1)
    # the naive comparison: every eligible spell, clocks started at admission
    a = c.assign(
        treated=linked.astype(int).to_numpy(),
        time_zero=adm.to_numpy(),
        landmark_day=0,
        risk_set="all eligible spells",
    ).reset_index(drop=True)
    a = pd.concat([a, time_zero_outcomes(a, sp, deaths, window, long_window_days, end_data)], axis=1)
    return _finish_target_trial(
        r, a, ex, ex_links, links, periods, time_zero, counts, covariates, window, end_data
    )


def _finish_target_trial(
    r: pd.DataFrame,
    a: pd.DataFrame,
    ex: list[dict],
    ex_links: pd.DataFrame,
    links: pd.DataFrame,
    periods: pd.DataFrame,
    time_zero: str,
    counts: dict[str, int],
    covariates: list[str] | None,
    window: int,
    end_data: pd.Timestamp,
) -> TargetTrial:
    """The last steps of a target trial, shared by the pandas and SQL builds: follow-up and covariates complete.

    ``r``: the risk-set rows with their outcomes; ``a``: every eligible spell
    with its clock started at admission, with outcomes; ``ex``: the spell
    steps so far (appended to).
    """
    # later steps count spells (a spell leaves when none of its risk-set rows is left); each step
    # narrows one mask over the rows, and the rows are taken once, at the end
    spell = pd.factorize(r["spell_id"])[0]
    keep = np.ones(len(r), dtype=bool)
    n, n_rows = _distinct(spell, keep), len(r)
    keep = (r["time_zero"] + pd.Timedelta(days=window - 1) <= end_data).to_numpy(dtype=bool)
    _count(
        ex,
        "spells",
        "follow-up complete",
        n,
        _distinct(spell, keep),
        f"the {window}-day window after time zero runs past the end of the data ({end_data:%d %b %Y}); "
        f"{n_rows - int(keep.sum()):,} risk-set rows",
    )
    for col in covariates or []:
        n, n_rows = _distinct(spell, keep), int(keep.sum())
        if col not in r.columns:
            raise ValueError(f"covariate '{col}' is not a column of the spells (columns: {list(r.columns)})")
        keep = keep & r[col].notna().to_numpy(dtype=bool)
        _count(
            ex,
            "spells",
            f"{col} recorded",
            n,
            _distinct(spell, keep),
            f"{col} is missing; {n_rows - int(keep.sum()):,} risk-set rows",
        )
    r = r[keep]

    a = a[(a["end_of_care"] + pd.Timedelta(days=window - 1) <= end_data).to_numpy()]

    treated_links = links[_isin(links["spell_id"], r["spell_id"][r["treated"].to_numpy() == 1])]
    ex_out = pd.concat(
        [
            ex_links,
            pd.DataFrame(ex),
            pd.DataFrame(
                [
                    {
                        "table": "virtual_ward",
                        "step": "linked spell in a risk set",
                        "rows_before": len(links),
                        "rows_removed": len(links) - len(treated_links),
                        "rows_after": len(treated_links),
                        "reason": "the linked spell is outside the cohort (pathway, period, referral date or follow-up)",
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    cols = [col for col in TARGET_TRIAL_COLUMNS if col in r.columns]
    extra = [col for col in (covariates or []) if col not in cols]
    a_cols = [col for col in TARGET_TRIAL_COLUMNS if col in a.columns] + [x for x in extra if x in a.columns]
    return TargetTrial(
        r[cols + extra].reset_index(drop=True),
        a[a_cols].reset_index(drop=True),
        ex_out,
        links,
        periods,
        time_zero,
        counts,
    )


def describe_time_zero(trial: TargetTrial) -> str:
    """One paragraph: which time zero the evaluation used, and why the fallback is weaker."""
    c = trial.time_zero_counts
    n_ref, n_step = c.get("referral_date", 0), c.get("step-down day", 0)
    sets = trial.rows["risk_set"].nunique() if len(trial.rows) else 0
    head = (
        f"Time zero: {n_ref:,} step-down stays have a referral_date (the day the step-down was decided) "
        f"and {n_step:,} do not, so the step-down day (the acute discharge onto the virtual ward) is used "
        f"for them. {sets:,} risk sets (provider, pathway and hospital day of time zero)."
    )
    if n_step == 0:
        return head + " Every treated spell's clock starts on the day of the decision, like its controls'."
    return head + (
        " The step-down day comes after the decision and after the shorter stay the decision caused: "
        "the comparison then asks what the remaining stay of patients still in hospital that day was, "
        "which flatters the ward. Add referral_date to the virtual ward extract to fix this."
    )


# ---------------------------------------------------------------------------
# The target trial built in SQL: memory follows the cohort, not the file
# ---------------------------------------------------------------------------

_EPOCH = pd.Timestamp("1970-01-01")


def _day(column: str) -> str:
    """SQL: days from 1970-01-01 to a date column (integers compare and add in every dialect)."""
    return f"DATE_DIFF('day', DATE '1970-01-01', CAST({column} AS DATE))"


def _pathway_sql(
    pathways: dict[str, list[str]], diagnosis: str = "primary_diagnosis"
) -> list[tuple[str, str]]:
    """(name, SQL condition) of each pathway, as :func:`assign_pathway` reads the codes."""
    letter = f"SUBSTRING(UPPER(TRIM({diagnosis})), 1, 1)"
    number = f"TRY_CAST(SUBSTRING(TRIM({diagnosis}), 2, 2) AS DOUBLE)"
    out = []
    for name, codes in pathways.items():
        parts = []
        for code in codes:
            lo, _, hi = code.partition("-")
            (l1, n1), (l2, n2) = _parse_code(lo), _parse_code(hi or lo)
            if l1 != l2:
                raise ValueError(f"range {code!r} spans two ICD-10 letters; split it")
            parts.append(f"({letter} = '{l1}' AND {number} BETWEEN {n1} AND {n2})")
        out.append((name, "(" + (" OR ".join(parts) or "FALSE") + ")"))
    return out


def _lit(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _register(backend, name: str, frame: pd.DataFrame) -> None:
    """Make a small pandas frame (stays, periods) a table the engine's SQL can join."""
    if hasattr(backend, "con"):  # DuckDB
        backend.con.register(name, frame)
    else:  # Spark
        backend.spark.createDataFrame(
            frame.astype(object).where(frame.notna(), None)
        ).createOrReplaceTempView(name)


def _view(backend, name: str, sql: str) -> None:
    """A named query the later SQL reads (not kept: each use runs it again)."""
    if hasattr(backend, "con"):  # DuckDB
        backend.con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {sql}')
    else:  # Spark
        backend.spark.sql(backend.to_spark(sql)).createOrReplaceTempView(name)


def _fetch(backend, sql: str) -> pd.DataFrame:
    """A query's result as a pandas frame (DuckDB through Arrow: text stays Arrow-backed, dates are datetime64)."""
    if hasattr(backend, "arrow"):
        return backend.arrow(sql).to_pandas(date_as_object=False)
    return backend.query(sql)


def _from_days(values: pd.Series, unit: str = "ns") -> np.ndarray:
    """Dates back from days since 1970-01-01 (missing stays NaT)."""
    if pd.api.types.is_integer_dtype(values.dtype) and not isinstance(
        values.dtype, pd.api.extensions.ExtensionDtype
    ):
        return values.to_numpy().astype("datetime64[D]").astype(f"datetime64[{unit}]")
    days = pd.to_numeric(values, errors="coerce").astype("float64")
    return (pd.to_datetime(days, unit="D", origin="unix")).astype(f"datetime64[{unit}]").to_numpy()


def _text(values: pd.Series) -> pd.api.extensions.ExtensionArray:
    """A text column from SQL as pandas' ``str`` (missing stays missing); Arrow-backed text is kept as it is."""
    if values.dtype == "str":
        return values.array
    return pd.Series(values.to_numpy(dtype=object), dtype="object").astype("str").array


def _spell_column(values: pd.Series, kind: str) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """A contract column from SQL in the dtype :func:`helpers.derive.load_spells` gives it.

    Typed columns (DuckDB through Arrow) convert directly; object columns (Spark) value by value.
    """
    typed = values.dtype != object
    if kind == "string":
        return _text(values)
    if kind in ("integer", "number"):
        dtype = "Int64" if kind == "integer" else "Float64"
        if typed and pd.api.types.is_numeric_dtype(values.dtype):
            return pd.array(values.to_numpy(), dtype=dtype)
        return pd.array(pd.to_numeric(pd.Series(values.to_numpy(dtype=object))), dtype=dtype)
    if kind == "date":
        if typed and pd.api.types.is_datetime64_dtype(values.dtype):
            return values.to_numpy().astype("datetime64[us]")
        return pd.to_datetime(pd.Series(values.to_numpy(dtype=object))).astype("datetime64[us]").to_numpy()
    raise KeyError(kind)


def _month_start(dates: pd.Series | np.ndarray) -> np.ndarray:
    """The first day of each date's calendar month (datetime64[us], as ``dt.to_period("M").dt.to_timestamp()``)."""
    return np.asarray(dates).astype("datetime64[M]").astype("datetime64[us]")


def _outcomes_sql(rows: str, window: int, long_window: int, end_day: int) -> str:
    """:func:`time_zero_outcomes` in SQL over ``rows`` (integer days: _row, patient_id, spell_id,
    provider_code, dis, eoc, t0, gap), joined to every spell (``tt_spells``) and death (``tt_deaths``)."""
    w, wl = int(window), int(long_window)
    first_death = (
        f"SELECT x._row, MIN(d.dday) AS death_day FROM {rows} AS x JOIN tt_deaths AS d "
        f"ON d.patient_id = x.patient_id AND d.dday >= x.t0 AND d.dday <= x.t0 + {w - 1} GROUP BY x._row"
    )
    later = (
        f"SELECT x._row, SUM(GREATEST(LEAST(s.dis, x.t0 + {w}) - GREATEST(s.adm, x.t0), 1)) AS nights "
        f"FROM {rows} AS x JOIN tt_spells AS s ON s.patient_id = x.patient_id AND s.spell_id <> x.spell_id "
        f"AND s.adm >= x.dis AND s.adm < x.t0 + {w} GROUP BY x._row"
    )
    lookup = (
        "SELECT patient_id, adm, ARG_MIN(provider_code, spell_id) AS prov FROM tt_spells WHERE emergency "
        "GROUP BY patient_id, adm"
    )
    r30 = f"(x.gap IS NOT NULL AND x.dis + x.gap <= x.t0 + {w - 1})"
    dead = "CASE WHEN fd.death_day IS NULL THEN 0 ELSE GREATEST(x.t0 + {w} - fd.death_day, 0) END".format(w=w)
    index_nights = f"GREATEST(LEAST(x.dis, x.t0 + {w}) - x.t0, 0)"
    return (
        f"SELECT x.*, x.dis - x.t0 AS acute_los, x.eoc - x.t0 AS total_los, "
        f"CASE WHEN {r30} THEN 1 ELSE 0 END AS readmission_30d, "
        f"CAST(CASE WHEN x.t0 + {wl - 1} > {end_day} THEN NULL "
        f"WHEN x.gap IS NOT NULL AND x.dis + x.gap <= x.t0 + {wl - 1} THEN 1 ELSE 0 END AS DOUBLE) AS readmission_90d, "
        f"CASE WHEN fd.death_day IS NULL THEN 0 ELSE 1 END AS death_30d, "
        f"CASE WHEN {r30} OR fd.death_day IS NOT NULL THEN 1 ELSE 0 END AS readmission_or_death_30d, "
        f"CAST(LEAST(GREATEST({w} - {index_nights} - COALESCE(ln.nights, 0) - {dead}, 0), {w}) AS BIGINT) "
        f"AS days_alive_out_of_hospital_30d, "
        f"CASE WHEN {r30} AND lk.prov IS NOT NULL AND lk.prov <> x.provider_code THEN 1 ELSE 0 END "
        f"AS readmission_other_provider "
        f"FROM {rows} AS x LEFT JOIN ({first_death}) AS fd ON fd._row = x._row "
        f"LEFT JOIN ({later}) AS ln ON ln._row = x._row "
        f"LEFT JOIN ({lookup}) AS lk ON lk.patient_id = x.patient_id AND lk.adm = x.dis + x.gap"
    )


@dataclass
class VirtualWardInput:
    """What :func:`prepare_virtual_ward` returns: everything the virtual ward notebook takes from the spells.

    ``trial``: :func:`build_target_trial`; ``all_spells_design``: the
    all-spells design of :func:`build_cohort` (the pitfall shown beside the
    target trial); ``spells``: the spells as loaded (pandas) or, read by an
    engine, their load summary and data-quality profile without the rows
    (:func:`helpers.quality.profile_table`), for the data quality block;
    ``monthly``: :func:`helpers.evaluation.monthly_bed_days` of the pathway
    spells of every provider (counted by the engine when one read them:
    :func:`helpers.evaluation.monthly_bed_days_sql`); ``coverage``: the extract's coverage;
    ``engine``: what read the spells.
    """

    trial: TargetTrial
    all_spells_design: Cohort
    spells: LoadedTable
    monthly: pd.DataFrame
    coverage: object
    engine: str


#: Fields :func:`helpers.derive.load_spells` derives, which a covariate of the all-spells design may name.
DERIVED_SPELL_FIELDS: list[str] = [
    "los_days",
    "emergency",
    "elective",
    "day_case",
    "died",
    "readmission_days",
    "readmit_30d",
    "readmission_eligible",
    "financial_year",
    "month",
]


def prepare_virtual_ward(
    data_spells: str | None,
    virtual_ward: pd.DataFrame,
    pathways: dict[str, list[str]] | None = None,
    window_days: int = 30,
    max_gap_days: int = 1,
    starts: dict[str, str] | None = None,
    covariates: list[str] | None = None,
    deaths: pd.DataFrame | None = None,
    follow_up_end: str | pd.Timestamp | None = None,
    min_age: int = 18,
    long_window_days: int = 90,
    prior_days: int = 365,
    column_map: dict[str, str] | None = None,
    engine: str = "duckdb",
    spark=None,
) -> VirtualWardInput:
    """The virtual ward evaluation's cohorts from a spells file, read by ``engine``.

    ``engine="pandas"`` loads every spell (:func:`helpers.derive.load_spells`)
    and runs :func:`build_target_trial` and :func:`build_cohort`. ``"duckdb"``
    (the default) and ``"spark"`` (the same SQL through the engine's sqlglot
    translation) validate the file, link the stays, select the eligible
    spells, measure the prior-year history, build the risk sets and count
    every outcome in SQL; only the cohort comes back to pandas, so memory
    follows the cohort, not the file. The results are the same, column by
    column, to the last digit (``tests/test_cohort_sql.py``). The all-spells
    design takes the ``covariates`` that are spell columns, plus pathway.
    """
    pathways = DEFAULT_PATHWAYS if pathways is None else pathways
    trial_kw = dict(
        pathways=pathways,
        window_days=window_days,
        max_gap_days=max_gap_days,
        starts=starts,
        deaths=deaths,
        follow_up_end=follow_up_end,
        min_age=min_age,
    )
    if engine == "pandas":
        loaded = load_spells(data_spells, column_map, "pandas", window_days)
        spells = loaded.frame
        old_cov = [c for c in covariates or [] if c in spells.columns] + ["pathway"]
        trial = build_target_trial(
            spells,
            virtual_ward,
            covariates=covariates,
            long_window_days=long_window_days,
            prior_days=prior_days,
            **trial_kw,
        )
        old = build_cohort(spells, virtual_ward, covariates=old_cov, **trial_kw)
        monthly = monthly_bed_days(pathway_spells(spells, pathways, min_age))
        return VirtualWardInput(trial, old, loaded, monthly, extract_coverage(spells), engine)
    return _prepare_sql(
        data_spells,
        virtual_ward,
        covariates,
        long_window_days,
        prior_days,
        column_map,
        engine,
        spark,
        **trial_kw,
    )


def _prepare_sql(
    data_spells,
    virtual_ward,
    covariates,
    long_window_days,
    prior_days,
    column_map,
    engine,
    spark,
    pathways,
    window_days,
    max_gap_days,
    starts,
    deaths,
    follow_up_end,
    min_age,
) -> VirtualWardInput:
    """:func:`prepare_virtual_ward` with an engine: the steps of the pandas build, in SQL."""
    window = int(window_days)
    conditions = _pathway_sql(pathways)
    src = open_table("spells", data_spells, column_map, engine, spark=spark)
    be = src.backend
    try:
        spec = table_columns("spells")
        present = list(src.present)
        stand_in = profile_table(src)
        coverage = coverage_from_months(src.stats["admissions_by_month"])
        derived = derived_spells_sql(src, window, readmission=False)
        has_dx = "primary_diagnosis" in present
        case = (
            "CASE " + " ".join(f"WHEN {cond} THEN {_lit(name)}" for name, cond in conditions) + " END"
            if has_dx and conditions
            else "CAST(NULL AS VARCHAR)"
        )
        hits = (
            " + ".join(f"CASE WHEN {cond} THEN 1 ELSE 0 END" for _, cond in conditions)
            if has_dx and conditions
            else "0"
        )
        keep = ", ".join(f'"{c}"' for c in present if c not in ("spell_id", "patient_id", "provider_code"))
        adult = f"emergency AND age >= {int(min_age)}"
        # every spell, as a view: each use below is one scan of the engine's typed table, nothing is copied
        _view(
            be,
            "tt_all",
            (
                f"SELECT CAST(spell_id AS VARCHAR) AS spell_id, CAST(patient_id AS VARCHAR) AS patient_id, "
                f"CAST(provider_code AS VARCHAR) AS provider_code, {keep}, _rownum, "
                f"{_day('admission_date')} AS adm, {_day('discharge_date')} AS dis, emergency, "
                f"COALESCE(died, FALSE) AS died, "
                f"CASE WHEN {adult} THEN {case} END AS pathway, "
                f"CASE WHEN {adult} THEN {hits} ELSE 0 END AS n_pathways "
                f"FROM ({derived}) AS d"
            ),
        )

        # linkage and periods: the virtual ward table is small; only the spells it names come back
        vw_ids = pd.DataFrame(
            {"linked_spell_id": virtual_ward["linked_spell_id"].dropna().astype("str").unique()}
        )
        _register(be, "tt_vw_ids", vw_ids)
        named = _fetch(
            be,
            "SELECT spell_id, patient_id, dis FROM tt_all "
            "WHERE spell_id IN (SELECT linked_spell_id FROM tt_vw_ids) ORDER BY _rownum",
        )
        named = pd.DataFrame(
            {
                "spell_id": named["spell_id"].astype("str"),
                "patient_id": named["patient_id"].astype("str"),
                "discharge_date": _from_days(named["dis"], "us"),
            }
        )
        links, ex_links = link_step_down(named, virtual_ward, max_gap_days=max_gap_days)
        periods = virtual_ward_periods(virtual_ward, starts)
        _register(
            be,
            "tt_links",
            links[
                [
                    "spell_id",
                    "vw_stay_id",
                    "vw_admission_date",
                    "vw_discharge_date",
                    "vw_days",
                    "referral_date",
                ]
            ],
        )
        _register(be, "tt_periods", periods[["provider_code", "period_start", "period_end"]])

        # the eligible spells (_eligible_spells), each step counted: one scan of every spell counts the
        # first steps and one keeps the pathway spells (the later steps and the monthly bed days read those)
        in_period = (
            f"(p.provider_code IS NOT NULL AND a.adm >= {_day('p.period_start')} "
            f"AND a.adm <= {_day('p.period_end')})"
        )
        # the contract columns the cohorts keep (and the diagnosis, for a clash's message)
        old_cov = [c for c in covariates or [] if c in present or c in DERIVED_SPELL_FIELDS] + ["pathway"]
        old_columns = [c for c in present if c in COHORT_COLUMNS or c in old_cov]
        kept = [
            c
            for c in present
            if c in TARGET_TRIAL_COLUMNS
            or c in (covariates or [])
            or c in old_columns
            or c == "primary_diagnosis"
        ]
        be.materialise(
            "tt_pathway",
            "SELECT "
            + ", ".join(f'"{c}"' for c in kept)
            + ", _rownum, adm, dis, emergency, died, pathway, n_pathways FROM tt_all WHERE pathway IS NOT NULL",
        )
        first = be.query(
            f"SELECT COUNT(*) AS n0, SUM(CASE WHEN emergency THEN 1 ELSE 0 END) AS n1, "
            f"SUM(CASE WHEN {adult} THEN 1 ELSE 0 END) AS n2, MAX(adm) AS last_adm FROM tt_all"
        ).iloc[0]
        flow = be.query(
            f"SELECT COUNT(*) AS n3, SUM(CASE WHEN {in_period} THEN 1 ELSE 0 END) AS n4, "
            f"SUM(CASE WHEN {in_period} AND NOT died THEN 1 ELSE 0 END) AS n5, "
            f"SUM(CASE WHEN n_pathways > 1 THEN 1 ELSE 0 END) AS clashes "
            f"FROM tt_pathway AS a LEFT JOIN tt_periods AS p ON a.provider_code = p.provider_code"
        ).iloc[0]
        n = [int(first[f"n{i}"] or 0) for i in range(3)] + [int(flow[f"n{i}"] or 0) for i in range(3, 6)]
        if int(
            flow["clashes"] or 0
        ):  # assign_pathway's message, for the first spell whose diagnosis is in two
            clash = be.query(
                "SELECT primary_diagnosis FROM tt_pathway WHERE n_pathways > 1 ORDER BY _rownum LIMIT 1"
            )
            assign_pathway(clash["primary_diagnosis"].astype("str"), pathways)
        end_data = (
            pd.Timestamp(follow_up_end)
            if follow_up_end is not None
            else _EPOCH + pd.Timedelta(days=int(first["last_adm"]))
        )
        end_day = int((end_data.normalize() - _EPOCH).days)
        ex: list[dict] = []
        _count(
            ex,
            "spells",
            "emergency admissions",
            n[0],
            n[1],
            "not an emergency admission (ADMIMETH 21-28, 2A-2D)",
        )
        _count(ex, "spells", f"aged {min_age} or over", n[1], n[2], f"aged under {min_age}")
        _count(
            ex,
            "spells",
            "eligible pathway",
            n[2],
            n[3],
            "primary diagnosis outside the pathways' ICD-10 codes",
        )
        _count(
            ex,
            "spells",
            "provider and months with a virtual ward",
            n[3],
            n[4],
            "admitted at a provider without a virtual ward, or outside the months it ran",
        )
        ex_old = list(ex)
        # monthly bed days of the pathway spells of every provider, counted by the engine
        monthly = monthly_bed_days_sql(be, "SELECT provider_code, adm, dis FROM tt_pathway")
        be.materialise(
            "tt_eligible_link",
            (
                f"SELECT a.*, l.vw_stay_id, l.vw_admission_date, l.vw_discharge_date, l.referral_date, "
                f"COALESCE(l.vw_days, 0) AS vw_days, CASE WHEN l.vw_stay_id IS NOT NULL THEN 1 ELSE 0 END AS linked "
                f"FROM tt_pathway AS a JOIN tt_periods AS p ON a.provider_code = p.provider_code "
                f"LEFT JOIN tt_links AS l ON l.spell_id = a.spell_id WHERE {in_period}"
            ),
        )
        _drop(be, "tt_pathway")
        # the spells and deaths of the cohort's patients: all the history and the outcomes look at
        be.materialise(
            "tt_spells",
            "SELECT spell_id, patient_id, provider_code, adm, dis, emergency, died FROM tt_all "
            "WHERE patient_id IN (SELECT patient_id FROM tt_eligible_link)",
        )
        if deaths is not None:
            _register(
                be,
                "tt_death_records",
                pd.DataFrame(
                    {
                        "patient_id": deaths["patient_id"].astype("str"),
                        "date_of_death": deaths["date_of_death"],
                    }
                ),
            )
        be.materialise(
            "tt_deaths",
            "SELECT patient_id, dis AS dday FROM tt_spells WHERE died"
            + (
                f" UNION ALL SELECT CAST(patient_id AS VARCHAR) AS patient_id, {_day('date_of_death')} AS dday "
                f"FROM tt_death_records WHERE date_of_death IS NOT NULL"
                if deaths is not None
                else ""
            ),
        )
        # days to the next emergency admission (helpers.derive.next_emergency_gap): the first one on or
        # after the discharge day, at any provider, other than the spell itself
        be.materialise(
            "tt_eligible_all",
            (
                "SELECT e.*, g.gap FROM tt_eligible_link AS e LEFT JOIN (SELECT e2.spell_id, MIN(s.adm - e2.dis) AS gap "
                "FROM tt_eligible_link AS e2 JOIN tt_spells AS s ON s.patient_id = e2.patient_id AND s.emergency "
                "AND s.adm >= e2.dis AND s.spell_id <> e2.spell_id GROUP BY e2.spell_id) AS g ON g.spell_id = e.spell_id"
            ),
        )
        _drop(be, "tt_eligible_link")
        fetched = _trial_sql(
            be,
            present,
            ex,
            ex_links,
            links,
            periods,
            covariates,
            window,
            long_window_days,
            prior_days,
            end_data,
            end_day,
            n[4],
        )
        _count(
            ex_old,
            "spells",
            "discharged alive",
            n[4],
            n[5],
            "died in the acute spell, so could not be stepped down",
        )
        old_rows = _cohort_sql(be, old_columns, window)
    finally:
        be.close()
    # the engine has let go of the spells: the cohorts are finished in pandas
    trial = fetched.finish(spec, covariates, window)
    old = _finish_cohort(
        _cohort_frame(old_rows, old_columns, spec, links),
        ex_old,
        ex_links,
        links,
        periods,
        old_cov,
        window,
        end_data,
    )
    return VirtualWardInput(trial, old, stand_in, monthly, coverage, engine)


def _trial_sql(
    be,
    present,
    ex,
    ex_links,
    links,
    periods,
    covariates,
    window,
    long_window_days,
    prior_days,
    end_data,
    end_day,
    n_eligible,
) -> _TrialFetched:
    """The target trial's steps after the eligible spells (:func:`build_target_trial`), in SQL."""
    linked = "linked = 1"
    ref = _day("referral_date")
    has_ref = "(linked = 1 AND referral_date IS NOT NULL)"
    be.materialise(
        "tt_eligible",
        (
            f"SELECT *, {ref} AS ref, "
            f"CASE WHEN {linked} THEN {_day('vw_discharge_date')} ELSE dis END AS eoc, "
            f"CASE WHEN {has_ref} THEN {ref} - adm WHEN {linked} THEN dis - adm END AS treatment_day, "
            f"CASE WHEN {has_ref} THEN 'referral_date' WHEN {linked} THEN 'step-down day' ELSE '' END "
            f"AS time_zero_source, ROW_NUMBER() OVER (ORDER BY _rownum) AS _c "
            f"FROM tt_eligible_all WHERE NOT COALESCE({has_ref} AND ({ref} < adm OR {ref} > dis), FALSE)"
        ),
    )
    n_c = int(be.query("SELECT COUNT(*) AS n FROM tt_eligible").iloc[0]["n"])
    _count(
        ex,
        "spells",
        "referral_date within the linked spell",
        n_eligible,
        n_c,
        "the step-down stay's referral_date is before the admission or after the acute discharge",
    )
    # prior-year history (prior_use), measured before admission from every spell of the patient
    d = int(prior_days)
    prior = (
        f"SELECT e.spell_id, SUM(CASE WHEN s.emergency AND s.adm >= e.adm - {d} AND s.adm < e.adm THEN 1 ELSE 0 END) "
        f"AS n_prior, SUM(GREATEST(LEAST(s.dis, e.adm) - GREATEST(s.adm, e.adm - {d}), 0)) AS nights "
        f"FROM tt_eligible AS e JOIN tt_spells AS s ON s.patient_id = e.patient_id AND s.spell_id <> e.spell_id "
        f"AND ((s.adm < e.adm AND s.dis > e.adm - {d}) OR (s.adm >= e.adm - {d} AND s.adm < e.adm)) "
        f"GROUP BY e.spell_id"
    )
    be.materialise(
        "tt_cohort",
        (
            f"SELECT e.*, CAST(COALESCE(pr.n_prior, 0) AS BIGINT) AS prior_emergency_admissions, "
            f"CAST(COALESCE(pr.nights, 0) AS BIGINT) AS prior_bed_days FROM tt_eligible AS e "
            f"LEFT JOIN ({prior}) AS pr ON pr.spell_id = e.spell_id"
        ),
    )
    tz = be.query("SELECT time_zero_source, COUNT(*) AS n FROM tt_cohort GROUP BY time_zero_source")
    tz_n = dict(zip(tz["time_zero_source"].astype(str), tz["n"].astype(int)))
    counts = {k: int(tz_n.get(k, 0)) for k in ("referral_date", "step-down day")}
    used = [k for k, v in counts.items() if v]
    time_zero = used[0] if len(used) == 1 else ("mixed" if used else "none")

    # risk sets: (provider, pathway, hospital day of a treated spell's time zero), in order of first appearance
    keys = (
        "SELECT provider_code, pathway, treatment_day AS landmark_day, MIN(_c) AS _k FROM tt_cohort "
        "WHERE treatment_day IS NOT NULL GROUP BY provider_code, pathway, treatment_day"
    )
    be.materialise(
        "tt_rows",
        (
            f"SELECT c.*, k.landmark_day, c.adm + k.landmark_day AS t0, "
            f"CASE WHEN c.treatment_day = k.landmark_day THEN 1 ELSE 0 END AS treated, "
            f"ROW_NUMBER() OVER (ORDER BY c._c, k._k) AS _row "
            f"FROM tt_cohort AS c JOIN ({keys}) AS k ON k.provider_code = c.provider_code AND k.pathway = c.pathway "
            f"WHERE c.dis - c.adm >= k.landmark_day AND (c.treatment_day IS NULL OR c.treatment_day >= k.landmark_day)"
        ),
    )
    in_sets = be.query("SELECT COUNT(DISTINCT spell_id) AS n FROM tt_rows").iloc[0]
    _count(
        ex,
        "spells",
        "in a risk set",
        n_c,
        int(in_sets["n"]),
        "not in hospital on the hospital day of any step-down decision at its provider and pathway",
    )
    keep = [c for c in present if c in TARGET_TRIAL_COLUMNS or c in (covariates or [])]
    wanted = ", ".join(
        [f'"{c}"' for c in keep]
        + ["pathway", "landmark_day", "t0", "treated", "vw_stay_id", "eoc", *PRIOR_USE_COVARIATES, "vw_days"]
        + TARGET_TRIAL_OUTCOMES
        + ["readmission_other_provider"]
    )
    # only the columns the trial keeps come back; the risk set's label is made here, once per row
    label = "provider_code || ' | ' || pathway || ' | day ' || CAST(landmark_day AS VARCHAR)"
    rows = _fetch(
        be,
        f"SELECT {label} AS risk_set, CASE WHEN treated = 1 THEN time_zero_source ELSE '' END AS time_zero_source, "
        f"{wanted} FROM ({_outcomes_sql('tt_rows', window, long_window_days, end_day)}) AS o ORDER BY _row",
    )
    _drop(be, "tt_rows")
    be.materialise(
        "tt_naive", "SELECT *, linked AS treated, adm AS t0, 0 AS landmark_day, _c AS _row FROM tt_cohort"
    )
    naive = _fetch(
        be,
        f"SELECT time_zero_source, {wanted} "
        f"FROM ({_outcomes_sql('tt_naive', window, long_window_days, end_day)}) AS o ORDER BY _row",
    )
    _drop(be, "tt_naive")
    return _TrialFetched(rows, naive, keep, time_zero, counts, ex, ex_links, links, periods, end_data)


@dataclass
class _TrialFetched:
    """The target trial's rows as they came back from SQL, finished by :meth:`finish` once the engine is closed."""

    rows: pd.DataFrame
    naive: pd.DataFrame
    columns: list[str]
    time_zero: str
    counts: dict[str, int]
    ex: list[dict]
    ex_links: pd.DataFrame
    links: pd.DataFrame
    periods: pd.DataFrame
    end_data: pd.Timestamp

    def finish(self, spec: dict, covariates: list[str] | None, window: int) -> TargetTrial:
        r = _trial_frame(self.rows, self.columns, spec, risk_set=True)
        self.rows = pd.DataFrame()
        a = _trial_frame(self.naive, self.columns, spec, risk_set=False)
        self.naive = pd.DataFrame()
        return _finish_target_trial(
            r,
            a,
            self.ex,
            self.ex_links,
            self.links,
            self.periods,
            self.time_zero,
            self.counts,
            covariates,
            window,
            self.end_data,
        )


def _drop(be, name: str) -> None:
    """Let the engine free a table no longer needed (DuckDB; Spark's cached tables go when the backend closes)."""
    if hasattr(be, "con"):
        be.con.execute(f'DROP TABLE IF EXISTS "{name}"')


def _cohort_sql(be, columns: list[str], window: int) -> pd.DataFrame:
    """:func:`build_cohort` after the eligible spells, in SQL: the all-spells design, clocks from admission.

    Returns the rows with the contract ``columns`` and their outcomes as they come back
    (:func:`_cohort_frame` finishes them).
    """
    w = int(window)
    lookup = (
        "SELECT patient_id, adm, ARG_MIN(provider_code, spell_id) AS prov FROM tt_spells WHERE emergency "
        "GROUP BY patient_id, adm"
    )
    first_death = (
        f"SELECT x.spell_id, MIN(d.dday) AS death_day FROM tt_old AS x JOIN tt_deaths AS d "
        f"ON d.patient_id = x.patient_id AND d.dday >= x.dis AND d.dday <= x.dis + {w - 1} "
        f"GROUP BY x.spell_id"
    )
    be.materialise(
        "tt_old",
        (
            "SELECT *, CASE WHEN linked = 1 THEN " + _day("vw_discharge_date") + " ELSE dis END AS eoc "
            "FROM tt_eligible_all WHERE NOT died"
        ),
    )
    wanted = ", ".join(
        [f'x."{c}"' for c in columns]
        + [f"x.{c}" for c in ("pathway", "vw_stay_id", "vw_admission_date", "vw_discharge_date")]
        + [f"x.{c}" for c in ("linked", "vw_days", "adm", "dis")]
    )
    r30 = f"(x.gap IS NOT NULL AND x.gap <= x.eoc - x.dis + {w - 1})"
    sql = (
        f"SELECT {wanted}, CASE WHEN {r30} THEN 1 ELSE 0 END AS readmission_30d, "
        f"CASE WHEN x.gap IS NOT NULL AND x.gap <= {w - 1} THEN 1 ELSE 0 END AS readmission_30d_from_acute_discharge, "
        f"CASE WHEN fd.death_day IS NULL THEN 0 ELSE 1 END AS death_30d, "
        f"CASE WHEN {r30} OR fd.death_day IS NOT NULL THEN 1 ELSE 0 END AS readmission_or_death_30d, "
        f"CASE WHEN {r30} AND lk.prov IS NOT NULL AND lk.prov <> x.provider_code THEN 1 ELSE 0 END "
        f"AS readmission_other_provider "
        f"FROM tt_old AS x LEFT JOIN ({first_death}) AS fd ON fd.spell_id = x.spell_id "
        f"LEFT JOIN ({lookup}) AS lk ON lk.patient_id = x.patient_id AND lk.adm = x.dis + x.gap ORDER BY x._rownum"
    )
    got = _fetch(be, sql)
    _drop(be, "tt_old")
    return got


def _cohort_frame(got: pd.DataFrame, columns: list[str], spec: dict, links: pd.DataFrame) -> pd.DataFrame:
    """The all-spells design's rows from SQL (:func:`_cohort_sql`), in the columns and dtypes of the pandas build."""
    c = pd.DataFrame(index=pd.RangeIndex(len(got)))
    for col in columns:
        c[col] = _spell_column(got[col], spec[col]["type"])
    c["pathway"] = _text(got["pathway"])
    c["vw_stay_id"] = _text(got["vw_stay_id"])
    for col in ("vw_admission_date", "vw_discharge_date"):  # as merged from the links
        c[col] = pd.to_datetime(got[col]).astype(links[col].dtype).to_numpy()
    c["treated"] = got["linked"].astype("int64").to_numpy()
    c["month"] = _month_start(c["admission_date"])
    c["vw_days"] = got["vw_days"].astype("int64").to_numpy()
    c["acute_los"] = (got["dis"] - got["adm"]).astype("int64").to_numpy()
    c["total_los"] = c["acute_los"] + c["vw_days"]
    c["end_of_care"] = c["vw_discharge_date"].where(c["treated"] == 1, pd.to_datetime(c["discharge_date"]))
    for col in (
        "readmission_30d",
        "readmission_30d_from_acute_discharge",
        "death_30d",
        "readmission_or_death_30d",
        "readmission_other_provider",
    ):
        c[col] = got[col].astype("int64").to_numpy()
    return c


def _trial_frame(sql_rows: pd.DataFrame, columns: list[str], spec: dict, risk_set: bool) -> pd.DataFrame:
    """Risk-set rows (or the naive all-spells rows) from SQL, in the columns and dtypes of the pandas build.

    ``columns``: the contract columns fetched (:func:`_trial_sql`).
    """
    out = pd.DataFrame(index=pd.RangeIndex(len(sql_rows)))
    out["risk_set"] = _text(sql_rows["risk_set"]) if risk_set else "all eligible spells"
    out["landmark_day"] = sql_rows["landmark_day"].astype("int64").to_numpy()
    out["time_zero"] = _from_days(sql_rows["t0"])
    out["time_zero_source"] = _text(sql_rows["time_zero_source"])
    for c in columns:
        out[c] = _spell_column(sql_rows[c], spec[c]["type"])
    out["pathway"] = _text(sql_rows["pathway"])
    out["month"] = _month_start(out["admission_date"])
    for c in ("prior_emergency_admissions", "prior_bed_days", "treated", "vw_days"):
        out[c] = sql_rows[c].astype("int64").to_numpy()
    out["vw_stay_id"] = _text(sql_rows["vw_stay_id"])
    out["end_of_care"] = _from_days(sql_rows["eoc"])
    for c in TARGET_TRIAL_OUTCOMES + ["readmission_other_provider"]:
        out[c] = sql_rows[c].astype("float64" if c == "readmission_90d" else "int64").to_numpy()
    return out
