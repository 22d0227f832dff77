"""Indicators built from spells, each defined once as a record: who is counted, what counts, the source.

Every indicator the variation notebook builds from spells is one
:class:`Indicator` in :data:`INDICATORS`. A record names its outcome, its
exclusions in order (each a :class:`Step`: a rule, the words the exclusions
flow shows, and the contract column it needs), the spells that may count as
a readmission, its default case-mix terms, its published source and the
ways the handbook departs from that source. Each rule is written once, in
SQL (:func:`rule_sql`): the engines run it on a file
(:mod:`helpers.variation`) and DuckDB runs it on spells a notebook already
holds (:func:`exclusion_masks`, :func:`add_outcome`).

The default names follow the published NHS definitions:

* ``readmission_30d`` - NHS Digital's *Emergency readmissions within 30 days
  of discharge from hospital* (Compendium indicator I02040, also NHS
  Outcomes Framework 3b and CCG Outcomes Indicator Set 3.2): emergency
  admissions to any hospital 0 to 29 days after the last discharge; index
  spells that ended in death, day cases, maternity spells and spells with
  cancer or chemotherapy for cancer are excluded; a readmitting spell with
  cancer or obstetric care does not count; indirectly standardised by age,
  sex, method of admission and diagnosis/procedure.
  https://digital.nhs.uk/data-and-information/publications/statistical/compendium-emergency-readmissions/current/specifications/emergency-readmissions-within-30-days-of-discharge-from-hospital_3
  and https://data.england.nhs.uk/dataset/ccgois-3-2-emergency-readmissions-within-30-days-of-discharge-from-hospital
* ``mortality`` - in the style of NHS England's *Summary Hospital-level
  Mortality Indicator* (SHMI): deaths in hospital or within 30 days of
  discharge, the death attributed to the patient's last spell; day cases,
  regular attenders and stillbirths excluded; standardised by age, sex,
  admission method and diagnosis group.
  https://digital.nhs.uk/data-and-information/publications/statistical/shmi
  Without a deaths table it counts deaths in hospital only, and says so.
* ``day_case`` - the day-case rate of a named basket of procedures from the
  British Association of Day Surgery *Directory of Procedures*
  (https://bads.co.uk/publications/), as GIRFT and the Model Health System
  report it, when the extract has OPCS-4 procedure codes; without them, the
  generic rate of all elective admissions, labelled as such.

The generic teaching versions keep their own names: ``readmission_30d_all``,
``mortality_in_hospital`` and ``day_case_all_elective``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence, Union

import numpy as np
import pandas as pd

from helpers import derive, periods
from helpers import engine as engines
from helpers.contract import TableSource
from helpers.engine import DuckDB, quote

Family = Literal["binomial", "poisson", "negative_binomial"]

#: Default case-mix terms (columns after :func:`helpers.casemix.add_casemix_bands`).
DEFAULT_TERMS: tuple[str, ...] = ("age_band", "sex", "admission_method", "hrg", "frailty_band")
#: The terms of the published indicators: age, sex, method of admission and a diagnosis/procedure
#: group, for which the spell's HRG (a grouping of diagnoses and procedures) stands in.
PUBLISHED_TERMS: tuple[str, ...] = ("age_band", "sex", "admission_method", "hrg")
#: Days after discharge in which an emergency admission is a readmission (0 to 29 days: I02040).
READMISSION_WINDOW = 30
#: Days after discharge in which a death counts (SHMI: in hospital or within 30 days of discharge).
DEATH_WINDOW = 30


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Codes:
    """Spells whose code in ``column`` has its first three characters in one of ``ranges``
    (ICD-10 or OPCS-4 stems, inclusive: ``("C00", "C97")``) or starts with one of ``prefixes``
    (written without the dot: ``"Z511"``, ``"A651"``). A missing code matches nothing."""

    column: str
    ranges: tuple[tuple[str, str], ...] = ()
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Values:
    """Spells whose ``column`` is one of ``values`` (codes as text)."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Flag:
    """Spells whose derived yes/no ``column`` is true (``negate``: is not true; missing counts as not true)."""

    column: str
    negate: bool = False


@dataclass(frozen=True)
class Missing:
    """Spells whose ``column`` is missing."""

    column: str


@dataclass(frozen=True)
class AnyOf:
    """Spells matching any of ``parts``."""

    parts: tuple["Rule", ...]


@dataclass(frozen=True)
class Not:
    """Spells that ``part`` does not match."""

    part: "Rule"


Rule = Union[Codes, Values, Flag, Missing, AnyOf, Not]


def rule_columns(rule: Rule) -> set[str]:
    """The columns a rule reads."""
    if isinstance(rule, Not):
        return rule_columns(rule.part)
    if isinstance(rule, AnyOf):
        return set().union(*(rule_columns(p) for p in rule.parts))
    return {rule.column}


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def rule_sql(rule: Rule, present: Sequence[str]) -> str:
    """The same rule as a SQL condition (DuckDB dialect) over the spells and their derived fields.

    ``present``: the contract columns the file has; a rule on a missing column
    is ``FALSE`` (``TRUE`` for a negated flag). Derived columns (``died``,
    ``day_case``, ...) are always present.
    """
    if isinstance(rule, Not):
        return f"(NOT {rule_sql(rule.part, present)})"
    if isinstance(rule, AnyOf):
        return "(" + " OR ".join(rule_sql(p, present) for p in rule.parts) + ")"
    col = '"' + rule.column.replace('"', '""') + '"'
    contract = rule.column in _CONTRACT_COLUMNS
    if contract and rule.column not in present:
        return "TRUE" if isinstance(rule, Flag) and rule.negate else "FALSE"
    if isinstance(rule, Missing):
        return f"({col} IS NULL)"
    if isinstance(rule, Flag):
        return f"(NOT COALESCE({col}, FALSE))" if rule.negate else f"COALESCE({col}, FALSE)"
    if isinstance(rule, Values):
        return f"COALESCE(CAST({col} AS VARCHAR) IN ({', '.join(_lit(v) for v in rule.values)}), FALSE)"
    code = f"REPLACE(UPPER(TRIM(CAST({col} AS VARCHAR))), '.', '')"
    parts = [f"SUBSTRING({code}, 1, 3) BETWEEN {_lit(lo)} AND {_lit(hi)}" for lo, hi in rule.ranges]
    parts += [f"{code} LIKE {_lit(prefix + '%')}" for prefix in rule.prefixes]
    return f"COALESCE(({' OR '.join(parts)}), FALSE)"


#: Contract columns rules may read (a rule on one the file lacks matches nothing).
_CONTRACT_COLUMNS = frozenset(
    {
        "primary_diagnosis",
        "primary_procedure",
        "patient_classification",
        "admission_method",
        "discharge_method",
    }
)


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Step:
    """One exclusion of an indicator: the spells ``rule`` matches are set aside, for ``reason``.

    ``needs``: the contract column the rule reads; when the extract lacks it
    the step still appears in the exclusions flow, with 0 spells and the
    words "not applied".
    """

    step: str
    reason: str
    rule: Rule
    needs: str | None = None


@dataclass(frozen=True)
class Indicator:
    """How an indicator is built from spells.

    The first seven fields are what the notebooks read (name, the outcome
    column, the GLM family, the population in words, direction, unit,
    label). ``kind`` groups a published indicator with its generic version
    (``los``, ``readmission``, ``mortality``, ``day_case``). ``steps``: the
    exclusions, in order. ``readmission_excludes``: emergency admissions that
    do not count as a readmission. ``case_mix``: default terms.
    ``source``: the published definition. ``departures``: where the handbook
    differs from it, one sentence each. ``generic``: the name of the generic
    version, if this one is published.
    """

    name: str
    outcome: str
    family: Family
    population: str
    higher_is_better: bool
    unit: str
    label: str
    kind: str = ""
    steps: tuple[Step, ...] = ()
    readmission_excludes: Rule | None = None
    case_mix: tuple[str, ...] = DEFAULT_TERMS
    source: str = ""
    departures: tuple[str, ...] = ()
    generic: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


# code lists, each defined once
CANCER = Codes("primary_diagnosis", (("C00", "C97"), ("D37", "D48")), ("Z510", "Z511"))
CANCER_READMISSION = Codes("primary_diagnosis", (("C00", "C97"),), ("Z510", "Z511"))
OBSTETRIC = AnyOf(
    (
        Codes("primary_diagnosis", (("O00", "O99"),)),
        Values("admission_method", ("31", "32", "82", "83")),
        Values("patient_classification", ("5",)),
    )
)
NOT_ORDINARY = AnyOf((Flag("day_case"), Values("patient_classification", ("3", "4"))))
STILLBIRTH = Codes("primary_diagnosis", prefixes=("P95",))

#: The handbook's day-case basket: procedures of the BADS Directory of Procedures with their
#: OPCS-4 codes (a subset of the directory; name -> code prefixes without the dot).
BADS_BASKET: dict[str, tuple[str, ...]] = {
    "inguinal hernia repair": ("T20", "T21"),
    "cholecystectomy": ("J18",),
    "carpal tunnel release": ("A651",),
    "tonsillectomy": ("F34",),
    "varicose vein operations": ("L85", "L86", "L87", "L88"),
    "transurethral resection of bladder tumour": ("M42",),
    "knee arthroscopy": ("W85", "W87", "W88"),
    "circumcision": ("N303",),
    "haemorrhoidectomy": ("H51",),
    "palmar fasciectomy (Dupuytren's)": ("T52",),
    "excision of ganglion": ("T59",),
    "excision of breast lesion": ("B28",),
    "myringotomy with ventilation tube": ("D151",),
    "laparoscopic sterilisation": ("Q35",),
}
BASKET = Codes("primary_procedure", prefixes=tuple(p for codes in BADS_BASKET.values() for p in codes))

_I02040 = (
    "NHS Digital, Emergency readmissions within 30 days of discharge from hospital, Compendium indicator I02040 "
    "(specification v3; also NHS Outcomes Framework 3b and CCG Outcomes Indicator Set 3.2)"
)
_SHMI = "NHS England (formerly NHS Digital), Summary Hospital-level Mortality Indicator (SHMI) methodology"
_BADS = "British Association of Day Surgery, BADS Directory of Procedures (as used by GIRFT and the Model Health System)"

_FOLLOW_UP = Step(
    "30 days of follow-up",
    "discharged less than 30 days before the extract's last admission date: the "
    "readmission window is not complete in the data",
    Flag("readmission_eligible", negate=True),
)

INDICATORS: dict[str, Indicator] = {
    "los": Indicator(
        "los",
        "los_days",
        "poisson",
        "ordinary admissions (day cases excluded)",
        False,
        "bed days",
        "length of stay",
        kind="los",
        steps=(
            Step(
                "day cases",
                "day cases (planned same-day care) are not part of length of stay",
                Flag("day_case"),
            ),
        ),
        source="Handbook definition: length of stay of ordinary admissions, as in the Model Health System's average length of stay.",
    ),
    "readmission_30d": Indicator(
        "readmission_30d",
        "readmit_30d_nhs",
        "binomial",
        "index spells of the NHS indicator I02040 (alive, ordinary admission, no cancer, no obstetric care, 30 days of follow-up)",
        False,
        "readmissions",
        "emergency readmission within 30 days (NHS indicator I02040)",
        kind="readmission",
        steps=(
            Step(
                "died in hospital",
                "discharged dead (discharge method 4): the published indicator excludes index spells "
                "ending in death",
                Flag("died"),
            ),
            Step(
                "day case or regular attender",
                "day case or regular day or night attender (patient classification 2, 3 "
                "or 4): the published indicator counts ordinary admissions",
                NOT_ORDINARY,
            ),
            Step(
                "index spell with a cancer diagnosis",
                "index spell with a cancer diagnosis (ICD-10 C00-C97, D37-D48) or "
                "chemotherapy or radiotherapy for cancer (Z51.0, Z51.1) as primary diagnosis: readmission may be part of "
                "the care plan",
                CANCER,
                "primary_diagnosis",
            ),
            Step(
                "index spell for obstetric or maternity care",
                "obstetric or maternity care (ICD-10 O00-O99, maternity or "
                "birth admission method 31, 32, 82, 83, or patient classification 5): readmission may be part of the care plan",
                OBSTETRIC,
            ),
            _FOLLOW_UP,
        ),
        readmission_excludes=AnyOf((CANCER_READMISSION, Codes("primary_diagnosis", (("O00", "O99"),)))),
        case_mix=PUBLISHED_TERMS,
        source=_I02040,
        departures=(
            "Only the primary diagnosis is read; the published indicator looks for cancer in every diagnosis of the spell.",
            "The spell's HRG stands in for the published diagnosis and procedure groups, and the age bands are the handbook's.",
            "Spells are provider spells as supplied, not continuous inpatient spells joined across transfers, and no "
            "specialty filter is applied (the extract has no treatment specialty).",
        ),
        generic="readmission_30d_all",
    ),
    "readmission_30d_all": Indicator(
        "readmission_30d_all",
        "readmit_30d",
        "binomial",
        "spells eligible for a 30-day readmission (alive, full follow-up)",
        False,
        "readmissions",
        "emergency readmission within 30 days (generic: every spell)",
        kind="readmission",
        steps=(
            Step(
                "spells eligible for a 30-day readmission (alive, full follow-up)",
                "died in hospital, or discharged too late for 30 days of follow-up",
                Flag("readmission_eligible", negate=True),
            ),
        ),
        source="Handbook teaching definition: any emergency admission 0-29 days after any discharge alive.",
    ),
    "mortality": Indicator(
        "mortality",
        "died_30d",
        "binomial",
        "SHMI-style spells (ordinary admissions, no stillbirths)",
        False,
        "deaths",
        "mortality in hospital or within 30 days of discharge (SHMI-style)",
        kind="mortality",
        steps=(
            Step(
                "day case or regular attender",
                "day case or regular day or night attender (patient classification 2, 3 "
                "or 4): the SHMI leaves them out",
                NOT_ORDINARY,
            ),
            Step(
                "stillbirth",
                "stillbirth (ICD-10 P95 as primary diagnosis): the SHMI leaves stillbirths out",
                STILLBIRTH,
                "primary_diagnosis",
            ),
            Step(
                "discharge method not recorded",
                "discharge method not recorded: a death in hospital cannot be seen",
                Missing("died"),
            ),
        ),
        case_mix=PUBLISHED_TERMS,
        source=_SHMI,
        departures=(
            "The spell's HRG stands in for the SHMI's diagnosis groups, and there is no Charlson comorbidity term.",
            "Spells are provider spells as supplied, not linked across transfers into superspells.",
        ),
        generic="mortality_in_hospital",
    ),
    "mortality_in_hospital": Indicator(
        "mortality_in_hospital",
        "died",
        "binomial",
        "spells with a recorded discharge method",
        False,
        "deaths",
        "in-hospital mortality (generic: every spell)",
        kind="mortality",
        steps=(
            Step("spells with a recorded discharge method", "discharge method not recorded", Missing("died")),
        ),
        source="Handbook teaching definition: deaths in hospital among spells with a recorded discharge method.",
    ),
    "day_case": Indicator(
        "day_case",
        "day_case",
        "binomial",
        "elective admissions for a procedure in the BADS basket",
        True,
        "day cases",
        "day-case rate, BADS procedure basket",
        kind="day_case",
        steps=(
            Step("not an elective admission", "not an elective admission", Flag("elective", negate=True)),
            Step(
                "procedure not in the BADS basket",
                "primary procedure missing or not one of the basket's "
                f"{len(BADS_BASKET)} procedures (OPCS-4 {', '.join(BASKET.prefixes)})",
                AnyOf((Missing("primary_procedure"), Not(BASKET))),
                "primary_procedure",
            ),
        ),
        source=_BADS,
        departures=(
            f"The basket is a subset of {len(BADS_BASKET)} common procedures of the directory, read from the primary "
            "procedure only, and each provider gets one rate over the basket instead of one per procedure.",
        ),
        generic="day_case_all_elective",
    ),
    "day_case_all_elective": Indicator(
        "day_case_all_elective",
        "day_case",
        "binomial",
        "elective admissions",
        True,
        "day cases",
        "day-case rate (generic: all elective admissions)",
        kind="day_case",
        steps=(Step("elective admissions", "not an elective admission", Flag("elective", negate=True)),),
        source="Handbook teaching definition: the share of elective admissions that were day cases.",
    ),
}


def resolve(name: str, columns: Sequence[str], deaths: bool = False) -> Indicator:
    """The definition that applies to an extract with these ``columns`` (and a deaths table or not).

    ``day_case`` without ``primary_procedure`` is the generic rate of all
    elective admissions, labelled as such; ``mortality`` without a deaths
    table counts deaths in hospital only, and says so.
    """
    if name not in INDICATORS:
        raise ValueError(f"indicator must be one of {', '.join(INDICATORS)}; got {name!r}.")
    ind = INDICATORS[name]
    if name == "day_case" and "primary_procedure" not in columns:
        generic = INDICATORS["day_case_all_elective"]
        return replace(
            generic,
            name="day_case",
            label="day-case rate, all elective admissions (generic: no procedure codes)",
            steps=(
                replace(
                    generic.steps[0],
                    reason="not an elective admission (generic rate: the extract has "
                    "no primary_procedure codes, so every elective admission counts, not the BADS basket)",
                ),
            ),
            source=INDICATORS["day_case"].source,
            generic="day_case_all_elective",
            departures=(
                "Without procedure codes this is the share of all elective admissions that were day "
                "cases, not the BADS basket's rate: it will not match GIRFT or the Model Health System.",
            ),
        )
    if name == "mortality" and not deaths:
        return replace(
            ind,
            outcome="died",
            label="in-hospital mortality (SHMI-style spells; no deaths after discharge)",
            departures=(
                "No deaths table was given, so only deaths in hospital are counted; the SHMI also "
                "counts deaths within 30 days of discharge.",
                *ind.departures,
            ),
        )
    if name == "mortality":
        return replace(
            ind,
            steps=(
                *ind.steps,
                Step(
                    "30 days of follow-up",
                    "discharged less than 30 days before the "
                    "extract's last admission date: deaths after discharge are not all known",
                    Flag("death_follow_up", negate=True),
                ),
            ),
        )
    return ind


# --------------------------------------------------------------------------- on spells a notebook holds
def exclusion_masks(spells: pd.DataFrame, indicator: Indicator) -> list[np.ndarray]:
    """For each step of ``indicator``, the spells its rule matches (before earlier steps are applied).

    The SQL of :func:`rule_sql` run on the frame by DuckDB. A step whose
    column the frame lacks matches nothing; so does a derived flag the frame
    lacks (a negated one matches everything).
    """
    if not indicator.steps:
        return []
    present = [str(c) for c in spells.columns]
    used = sorted(set().union(*(rule_columns(s.rule) for s in indicator.steps)))
    frame = pd.DataFrame(index=pd.RangeIndex(len(spells)))
    for c in used:
        if c in spells.columns:
            frame[c] = spells[c].reset_index(drop=True)
        elif c not in _CONTRACT_COLUMNS:  # a derived flag not there: missing, so not true
            frame[c] = pd.array([pd.NA] * len(spells), dtype="boolean")
    conditions = [
        rule_sql(s.rule, present) if s.needs is None or s.needs in spells.columns else "FALSE"
        for s in indicator.steps
    ]
    select = ", ".join(f"COALESCE({c}, FALSE) AS _x{i}" for i, c in enumerate(conditions))
    result = engines.query_frame(frame, select)
    return [result[f"_x{i}"].to_numpy(bool) for i in range(len(conditions))]


def exclusions_table(
    indicator: Indicator, counts: Sequence[int], start: int, present: Sequence[str]
) -> pd.DataFrame:
    """The steps of ``indicator`` as exclusion rows: step, rows_before, rows_excluded, rows_after, reason."""
    rows, remaining = [], int(start)
    for s, k in zip(indicator.steps, counts):
        reason = (
            s.reason
            if s.needs is None or s.needs in present
            else (f"{s.reason} - not applied: the extract has no {s.needs} column")
        )
        rows.append(
            {
                "step": f"{indicator.name}: {s.step}",
                "rows_before": remaining,
                "rows_excluded": int(k),
                "rows_after": remaining - int(k),
                "reason": reason,
            }
        )
        remaining -= int(k)
    return pd.DataFrame(rows, columns=["step", "rows_before", "rows_excluded", "rows_after", "reason"])


def population(spells: pd.DataFrame, indicator: Indicator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spells left after every step of ``indicator``, with its outcome in ``outcome``, and the exclusions table."""
    missing = [c for c in [indicator.outcome] if c not in spells.columns]
    if missing:
        raise KeyError(
            f"Spells: column(s) {', '.join(missing)} missing; run helpers.derive.add_spell_fields and "
            "helpers.indicators.add_outcome first."
        )
    keep = np.ones(len(spells), bool)
    counts = []
    for mask in exclusion_masks(spells, indicator):
        counts.append(int((keep & mask).sum()))
        keep &= ~mask
    out = spells.loc[keep].copy()
    out["outcome"] = out[indicator.outcome].astype("float64")
    return out, exclusions_table(indicator, counts, len(spells), list(spells.columns))


def add_outcome(
    spells: pd.DataFrame,
    indicator: Indicator,
    deaths: pd.DataFrame | None = None,
    follow_up_end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Copy of ``spells`` (with :func:`helpers.derive.add_spell_fields`) with the outcome ``indicator`` needs.

    Run it on the whole extract, before any restriction to a year, so that a
    readmission or a death in the next year is seen. ``readmit_30d_nhs``: an
    emergency admission 0 to 29 days after discharge, to any provider, that
    is not itself excluded (``readmission_excludes``). ``died_30d``: death in
    hospital, or a death in ``deaths`` (patient_id, date_of_death) 0 to 30 days
    after discharge, attributed to the patient's last spell discharged on or
    before the death (as the SHMI does); ``death_follow_up``: the 30 days end
    by ``follow_up_end`` (default: the end of the extract's coverage). The
    SQL the engines run on a file (:func:`helpers.derive.spell_fields_sql`
    with the indicator's readmission rule, :func:`deaths_sql`), run on the
    frame by DuckDB.
    """
    out = spells.copy()
    readmission = indicator.readmission_excludes is not None and indicator.outcome not in out.columns
    death = indicator.outcome == "died_30d"
    if death and deaths is None:
        raise ValueError("died_30d needs a deaths table (patient_id, date_of_death).")
    if not (readmission or death):
        return out
    be = DuckDB()
    try:
        src = derive.frame_source(be, spells, derive.SPELL_INPUTS + tuple(sorted(_CONTRACT_COLUMNS)))
        readmit = "emergency"
        if readmission:
            readmit = f"(emergency AND NOT {rule_sql(indicator.readmission_excludes, src.present)})"
        sql = derive.spell_fields_sql(
            src,
            READMISSION_WINDOW,
            None,
            readmission=readmission,
            carry=["_rownum"],
            readmit=readmit,
            key="_rownum",
        )
        names = []
        if readmission:
            sql = f"SELECT *, readmit_30d AS {quote(indicator.outcome)} FROM ({sql}) AS r"
            names.append(indicator.outcome)
        if death:
            d = deaths[["patient_id", "date_of_death"]].reset_index(drop=True)
            be.con.register(
                "deaths_frame",
                pd.DataFrame(
                    {
                        "patient_id": d["patient_id"].astype("str").to_numpy(),
                        "date_of_death": pd.to_datetime(d["date_of_death"]).astype("datetime64[us]"),
                    }
                ),
            )
            dsrc = replace(
                src, table="deaths", raw_view="deaths_frame", typed_sql="SELECT * FROM deaths_frame"
            )
            sql = deaths_sql(sql, dsrc, src, follow_up_end)
            names += ["died_30d", "death_follow_up"]
        result = be.arrow(f"SELECT {', '.join(names)} FROM ({sql}) AS o ORDER BY _rownum").to_pandas()
    finally:
        be.close()
    for name in names:
        out[name] = result[name].fillna(False).astype(bool).to_numpy()
    return out


def definitions_table() -> pd.DataFrame:
    """One row per indicator: name, label, population, exclusions, readmissions not counted, case mix, source, departures."""
    rows = []
    for ind in INDICATORS.values():
        rows.append(
            {
                "indicator": ind.name,
                "label": ind.label,
                "kind": ind.kind,
                "population": ind.population,
                "exclusions": "; ".join(s.reason for s in ind.steps),
                "case_mix": ", ".join(ind.case_mix),
                "source": ind.source,
                "departures": " ".join(ind.departures),
                "generic_version": ind.generic or "",
            }
        )
    return pd.DataFrame(rows)


def describe(indicator: Indicator) -> str:
    """What the indicator is, its source, and each departure from it, in plain sentences for a report."""
    text = f"Indicator: {indicator.label}. Source: {indicator.source}"
    text = text if text.endswith(".") else text + "."
    if indicator.departures:
        text += " Where the handbook departs from it: " + " ".join(indicator.departures)
    return text


# --------------------------------------------------------------------------- in SQL
#: The outcome of each kind of indicator in SQL over the derived spells (helpers.indicators records).
OUTCOME_SQL: dict[str, str] = {
    "los_days": "los_days",
    "readmit_30d": "CASE WHEN readmit_30d THEN 1 ELSE 0 END",
    "readmit_30d_nhs": "CASE WHEN readmit_30d THEN 1 ELSE 0 END",  # linked with the indicator's readmission rule
    "day_case": "CASE WHEN day_case THEN 1 ELSE 0 END",
    "died": "CASE WHEN died THEN 1 ELSE 0 END",
}


def deaths_sql(
    derived: str, deaths: TableSource | None, src: TableSource, follow_up_end: Any | None = None
) -> str:
    """The derived spells with ``died_30d`` and ``death_follow_up`` (used by :func:`add_outcome`).

    Death in hospital, or a death 0 to 30 days after discharge attributed to
    the patient's last spell discharged on or before it (as the SHMI does);
    follow-up complete when discharge + 30 days is by ``follow_up_end``
    (default: the end of the extract's coverage, its last admission date).
    """
    if deaths is None:
        raise ValueError("died_30d needs a deaths table (patient_id, date_of_death).")
    end = (
        pd.Timestamp(follow_up_end)
        if follow_up_end is not None
        else periods.coverage_from_months(src.stats["admissions_by_month"]).end
    )
    end_day = int((end - pd.Timestamp("1970-01-01")).days)
    window = DEATH_WINDOW
    dod = (
        f"SELECT CAST(patient_id AS VARCHAR) AS _dpid, MIN(date_of_death) AS _dod FROM ({deaths.typed_sql}) AS t "
        f"GROUP BY CAST(patient_id AS VARCHAR)"
    )
    joined = (
        f"SELECT d.*, x._dod, MAX(CASE WHEN d.discharge_date <= x._dod THEN d.discharge_date END) "
        f"OVER (PARTITION BY d.patient_id) AS _last_before FROM ({derived}) AS d "
        f"LEFT JOIN ({dod}) AS x ON CAST(d.patient_id AS VARCHAR) = x._dpid"
    )
    return (
        f"SELECT *, (COALESCE(died, FALSE) OR COALESCE(discharge_date = _last_before AND "
        f"DATE_DIFF('day', discharge_date, _dod) <= {window}, FALSE)) AS died_30d, "
        f"(_dis_day + {window} <= {end_day}) AS death_follow_up FROM ({joined}) AS j"
    )
