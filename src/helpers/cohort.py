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
  days after the end of care: in a later spell ending in death
  (``discharge_method`` 4), or, when a ``deaths`` table of linked mortality
  records is given, on its ``date_of_death``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from helpers.derive import add_spell_fields, next_emergency_gap

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
    "spell_id", "patient_id", "provider_code", "admission_date", "discharge_date", "pathway",
    "age", "sex", "frailty_score", "imd_decile", "month", "treated", "vw_stay_id",
    "vw_admission_date", "vw_discharge_date", "vw_days", "acute_los", "total_los", "end_of_care",
    "readmission_30d", "readmission_30d_from_acute_discharge", "death_30d", "readmission_or_death_30d",
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
            raise ValueError(f"pathway {name!r} overlaps another pathway, e.g. diagnosis "
                             f"{diagnosis[clash].iloc[0]!r}")
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
    rows.append({"table": table, "step": step, "rows_before": before, "rows_removed": before - after,
                 "rows_after": after, "reason": reason})


def link_step_down(spells: pd.DataFrame, virtual_ward: pd.DataFrame,
                   max_gap_days: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Link step-down virtual ward stays to the acute spells they followed.

    Applies the five rules in the module docstring. Returns (links,
    exclusions): links has spell_id, vw_stay_id, vw_admission_date,
    vw_discharge_date, vw_days, vw_pathway, vw_provider_code; exclusions
    counts the stays set aside at each rule (table, step, rows_before,
    rows_removed, rows_after, reason).
    """
    ex: list[dict] = []
    vw = virtual_ward.copy()
    n = len(vw)
    vw = vw[vw["route"].astype("str") == "step_down"]
    _count(ex, "virtual_ward", "step-down stays only", n, len(vw),
           "step-up stays replace an admission; they are not linked to a spell")
    n = len(vw)
    sp = spells[["spell_id", "patient_id", "discharge_date"]].rename(
        columns={"patient_id": "spell_patient_id"})
    sp = sp.assign(spell_id=sp["spell_id"].astype("str"))
    vw = vw.assign(linked_spell_id=vw["linked_spell_id"].astype("str"))
    vw = vw.merge(sp, left_on="linked_spell_id", right_on="spell_id", how="left")
    found = vw["spell_id"].notna()
    vw = vw[found]
    _count(ex, "virtual_ward", "linked spell exists", n, len(vw), "linked_spell_id names no spell in the spells table")
    n = len(vw)
    vw = vw[vw["patient_id"].astype("str") == vw["spell_patient_id"].astype("str")]
    _count(ex, "virtual_ward", "same patient", n, len(vw), "the stay's patient_id differs from the linked spell's")
    n = len(vw)
    gap = (pd.to_datetime(vw["vw_admission_date"]) - pd.to_datetime(vw["discharge_date"])).dt.days
    vw = vw[(gap >= 0) & (gap <= max_gap_days)]
    _count(ex, "virtual_ward", f"starts 0-{max_gap_days} days after acute discharge", n, len(vw),
           "the stay does not start on the spell's discharge day or within the allowed gap")
    n = len(vw)
    vw = vw.sort_values(["spell_id", "vw_admission_date", "vw_stay_id"]).drop_duplicates("spell_id", keep="first")
    _count(ex, "virtual_ward", "one stay per spell", n, len(vw), "a later stay linked to the same spell")
    links = pd.DataFrame({
        "spell_id": vw["spell_id"].astype("str"),
        "vw_stay_id": vw["vw_stay_id"].astype("str"),
        "vw_admission_date": pd.to_datetime(vw["vw_admission_date"]),
        "vw_discharge_date": pd.to_datetime(vw["vw_discharge_date"]),
        "vw_pathway": vw["pathway"].astype("str"),
        "vw_provider_code": vw["provider_code"].astype("str"),
    }).reset_index(drop=True)
    links.insert(4, "vw_days", (links["vw_discharge_date"] - links["vw_admission_date"]).dt.days.astype("int64"))
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


def build_cohort(spells: pd.DataFrame, virtual_ward: pd.DataFrame,
                 pathways: dict[str, list[str]] | None = None, window_days: int = 30,
                 max_gap_days: int = 1, starts: dict[str, str] | None = None,
                 covariates: list[str] | None = None, deaths: pd.DataFrame | None = None,
                 follow_up_end: str | pd.Timestamp | None = None, min_age: int = 18,
                 exclude_in_hospital_deaths: bool = True) -> Cohort:
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

    n = len(sp)
    c = sp[sp["emergency"].astype(bool)]
    _count(ex, "spells", "emergency admissions", n, len(c), "not an emergency admission (ADMIMETH 21-28, 2A-2D)")
    n = len(c)
    c = c[c["age"] >= min_age]
    _count(ex, "spells", f"aged {min_age} or over", n, len(c), f"aged under {min_age}")
    n = len(c)
    c = c.assign(pathway=assign_pathway(c["primary_diagnosis"], pathways) if "primary_diagnosis" in c.columns
                 else pd.Series(pd.NA, index=c.index, dtype="str"))
    c = c[c["pathway"].notna()]
    _count(ex, "spells", "eligible pathway", n, len(c), "primary diagnosis outside the pathways' ICD-10 codes")
    n = len(c)
    c = c.merge(periods[["provider_code", "period_start", "period_end"]], on="provider_code", how="left")
    in_period = (pd.to_datetime(c["admission_date"]) >= c["period_start"]) & \
                (pd.to_datetime(c["admission_date"]) <= c["period_end"])
    c = c[in_period.fillna(False).astype(bool)].drop(columns=["period_start", "period_end"])
    _count(ex, "spells", "provider and months with a virtual ward", n, len(c),
           "admitted at a provider without a virtual ward, or outside the months it ran")
    n = len(c)
    if exclude_in_hospital_deaths:
        c = c[~c["died"].fillna(False).astype(bool)]
    _count(ex, "spells", "discharged alive", n, len(c), "died in the acute spell, so could not be stepped down")

    c = c.merge(links.drop(columns=["vw_pathway", "vw_provider_code"]), on="spell_id", how="left")
    c["treated"] = c["vw_stay_id"].notna().astype(int)
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

    n = len(c)
    complete = c["end_of_care"] + pd.Timedelta(days=window - 1) <= end_data
    c = c[complete]
    _count(ex, "spells", "follow-up complete", n, len(c),
           f"the {window}-day window after the end of care runs past the end of the data ({end_data:%d %b %Y})")
    for col in covariates or []:
        n = len(c)
        if col not in c.columns:
            raise ValueError(f"covariate '{col}' is not a column of the spells (columns: {list(c.columns)})")
        c = c[c[col].notna()]
        _count(ex, "spells", f"{col} recorded", n, len(c), f"{col} is missing")

    treated_links = links[links["spell_id"].isin(c["spell_id"])]
    ex_out = pd.concat([ex_links, pd.DataFrame(ex)], ignore_index=True)
    ex_out = pd.concat([ex_out, pd.DataFrame([{
        "table": "virtual_ward", "step": "linked spell in the cohort", "rows_before": len(links),
        "rows_removed": len(links) - len(treated_links), "rows_after": len(treated_links),
        "reason": "the linked spell is outside the cohort (pathway, period, death or follow-up)"}])],
        ignore_index=True)
    cols = [col for col in COHORT_COLUMNS if col in c.columns]
    extra = [col for col in (covariates or []) if col not in cols]
    return Cohort(c[cols + extra].reset_index(drop=True), ex_out, links, periods)


def _death_within(c: pd.DataFrame, sp: pd.DataFrame, deaths: pd.DataFrame | None, window: int) -> pd.Series:
    """1 when the patient died from acute discharge to end of care + window - 1 days."""
    start = pd.to_datetime(c["discharge_date"])
    stop = c["end_of_care"] + pd.Timedelta(days=window - 1)
    if deaths is not None:
        dd = deaths.assign(patient_id=deaths["patient_id"].astype("str"),
                           date_of_death=pd.to_datetime(deaths["date_of_death"]))
        dd = dd.groupby("patient_id")["date_of_death"].min()
    else:
        died = sp[sp["died"].fillna(False).astype(bool)]
        dd = died.assign(patient_id=died["patient_id"].astype("str"),
                         date_of_death=pd.to_datetime(died["discharge_date"]))
        dd = dd.groupby("patient_id")["date_of_death"].min()
    when = c["patient_id"].astype("str").map(dd)
    return ((when >= start) & (when <= stop)).fillna(False).astype(int)


def _readmission_elsewhere(c: pd.DataFrame, sp: pd.DataFrame) -> pd.Series:
    """1 when the readmission counted in ``readmission_30d`` was to another provider."""
    em = sp[sp["emergency"].astype(bool)]
    key = em.assign(patient_id=em["patient_id"].astype("str"), admission_date=pd.to_datetime(em["admission_date"]))
    key = key.sort_values(["patient_id", "admission_date", "spell_id"]).drop_duplicates(["patient_id", "admission_date"])
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
        rows.append({"group": label, "spells": len(g), "readmissions": r, "to_other_provider": o,
                     "share_other_provider": o / r if r else float("nan")})
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
        rows.append({
            "group": label, "spells": len(g), "mean_age": g["age"].mean(),
            "share_female": (g["sex"].astype("str") == "2").mean(),
            "mean_frailty": g["frailty_score"].mean() if "frailty_score" in g else float("nan"),
            "mean_imd_decile": g["imd_decile"].mean() if "imd_decile" in g else float("nan"),
            "mean_acute_los": g["acute_los"].mean(), "mean_vw_days": g["vw_days"].mean(),
            "mean_total_los": g["total_los"].mean(), "readmission_30d_rate": g["readmission_30d"].mean(),
            "death_30d_rate": g["death_30d"].mean(),
        })
    return pd.DataFrame(rows)


def pathway_spells(spells: pd.DataFrame, pathways: dict[str, list[str]] | None = None,
                   min_age: int = 18) -> pd.DataFrame:
    """Emergency spells of adults in the pathways, at every provider and in every month.

    The population a provider-level analysis (interrupted time series,
    difference-in-differences) counts bed days for. Adds ``pathway``.
    """
    if "emergency" not in spells.columns:
        spells = add_spell_fields(spells)
    out = spells[spells["emergency"].astype(bool) & (spells["age"] >= min_age)].copy()
    out["pathway"] = assign_pathway(out["primary_diagnosis"], pathways)
    return out[out["pathway"].notna()].reset_index(drop=True)
