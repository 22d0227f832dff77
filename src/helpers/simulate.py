"""A seeded, simulated health economy: the handbook's sample data and its truths.

Everything here is synthetic. Identifiers are obviously made up (patients
``P0000123``, spells ``S00000001``, virtual ward stays ``V000001``, outcome
records ``O000001``) and providers are fictitious codes ``T01`` to ``T25``.
Every number the simulator uses is a constant of this module, chosen to look
plausible, not taken from any NHS data set; the costs are illustrative.

Public functions
----------------
``simulate_economy(n_spells, seed)``
    returns ``{"spells", "virtual_ward", "outcomes", "truth"}``: three tables
    that satisfy ``data/data_dictionary.yaml`` and a dictionary of known truths.
``write_sample(out_dir, seed, n_spells)``
    writes ``spells.csv``, ``virtual_ward.csv``, ``outcomes.csv`` and
    ``truth.json``; the same seed gives byte-identical files.
``write_spells_file(path, n_spells, seed, fmt)``
    writes a national-size spells table (Parquet or CSV), generated in chunks
    of patients so that memory stays bounded. Measured on one core: one
    million spells in about 4 seconds (peak memory about 0.8 GB), twenty
    million in about 75 to 90 seconds (peak memory about 0.8 GB, 280 MB of
    Parquet).

Dates in the returned DataFrames are ``datetime64[s]``; in the files they are
ISO ``yyyy-mm-dd``.

How the economy is generated
----------------------------
Period 2023-04-01 to 2025-03-31 (the financial years 2023/24 and 2024/25).

*Providers.* 25 fictitious trusts (``PROVIDERS`` below) whose sizes span a
three-fold range and whose catchments differ: mean age, deprivation (a tilt of
the IMD decile distribution), frailty, emergency share and elective mix (one
orthopaedic and one eye-heavy elective centre).

*Patients.* Each patient has a home provider (chosen in proportion to size),
sex, an age, an IMD decile (1 = most deprived) and a baseline Hospital Frailty
Risk Score that rises with age and deprivation and by 0.4 points with every
earlier spell. Patients are numbered in order of their first appearance.

*A patient's timeline* is a chain of events, simulated for all patients at
once (vectorised over patients, looping only over the event number). The chain
starts 180 days before the period (a burn-in so that the period opens in a
steady state; burn-in spells are dropped). After each spell:

1. the patient may die in hospital (``discharge_method`` "4"), which ends the
   chain; the logit of death rises with age, frailty and the diagnosis group;
2. otherwise an emergency readmission happens with probability
   ``logit p = -2.6 + 0.012 (age - 60) + 0.04 frailty + 0.06 (5.5 - imd)
   + group term (- 1.2 if elective) + log(OR) x virtual ward``. A readmission
   is a real later emergency spell of the same patient admitted 1 to 28 days
   after the END of care (the acute discharge, or the virtual ward discharge
   after a step-down stay); 15% go to another provider;
3. if not readmitted, the patient may leave the data (dies at home or moves:
   not recorded), else the next, unrelated admission comes at least 31 days
   after the end of care. So every emergency admission within 30 days of the
   end of care is a simulated readmission and nothing else is.

The spells table holds finished spells: admitted and discharged within the
period, the first ``n_spells`` of them in patient order (patients are drawn in
batches until there are enough). Index spells discharged near the end of the
period may have their readmission after it, as in a real extract.

*Each spell* is emergency or elective (by age and provider), gets an admission
method code, a diagnosis group (by age band, and for elective spells by the
provider's elective mix), an ICD-10 code with four characters and an
illustrative HRG code (higher complexity when frailty >= 10). Elective spells
are day cases (``patient_classification`` "2", length of stay 0) with a
group-specific probability plus a provider shift. Ordinary spells have a
negative-binomial length of stay (gamma-Poisson mixture, shape 1.8 emergency,
4 elective) with

    log mean = log(base of diagnosis group) + age band term + 0.04 male
               + admission method term + frailty band term
               + 0.02 (5.5 - imd) + 0.06 winter (December to February)
               + log(provider multiplier)

Age bands 0-17, 18-44, 45-64, 65-74, 75-84, 85+; frailty bands < 5, 5-15,
> 15 (the HFRS risk bands). All terms are in ``LOS_MODEL`` and in
``truth["los_model"]``. Provider multipliers are exp(N(0, 0.04)) except two
truly LONG providers (exactly x1.30) and two truly SHORT ones (exactly
x0.75), all four mid-to-large so a funnel plot can find them.

*PLICS-style cost* of a spell = (fixed cost of the group + £380 per bed day)
x the provider's cost multiplier x a mean-one gamma noise (CV 0.35).

*Virtual wards.* Six providers open a step-down virtual ward on staggered
dates. Eligible: emergency spells of adults (18+) alive at discharge whose
primary diagnosis is in a pathway (acute respiratory infection J09-J22 and
J44; heart failure I50; frailty R54 and R26), at a virtual ward provider on or
after its start date. Referral is logistic in age, frailty, IMD decile (the
less deprived are referred more), sex, pathway and winter month; the same
variables raise length of stay and readmission, so a naive comparison is
biased. All confounders are in the data (no unmeasured confounding). For each
eligible spell the simulator draws the acute stay without the ward (Y0); for a
treated spell the stay with it is Y1 = Y0 - Binomial(Y0, 0.20), the patient
goes home on the virtual ward on the acute discharge date for 2 to 14 days,
and the readmission clock starts at the virtual ward discharge. Step-up stays
replace some eligible emergency admissions at those providers (no spell,
``linked_spell_id`` empty).

*Outcomes (PROMs style).* For elective hip replacement, knee replacement,
cataract surgery and groin hernia repair spells, about 70% of patients (more
of the less deprived) return EQ-5D before and after. Before: normal around the
pathway mean, 0.02 lower per decile more deprived; gain: pathway mean x (1 +
provider gain effect) plus noise; both bounded to [-0.594, 1]. One provider
has high cost and low gain, one low cost and high gain. ``cost`` is the
spell's PLICS cost (illustrative: about £6,000 to £7,000 for joints, £1,000
for cataract, £2,000 for hernia).

Keys of ``truth`` (``truth.json``)
----------------------------------
``seed``, ``period_start``, ``period_end``
    the seed and the period (ISO dates).
``n_spells``, ``n_patients``
    rows of ``spells`` and distinct patients in it.
``providers``
    list of provider codes.
``provider_size``
    {code: relative size used to allocate patients}.
``los_provider_multiplier``
    {code: true multiplier of the expected length of stay, case mix held fixed}.
``los_outliers``
    {"high": [codes with multiplier 1.30], "low": [codes with 0.75]}.
``los_model``
    the case-mix terms of log mean length of stay: ``base_los_days`` by
    diagnosis group, ``age_band``, ``male``, ``admission_method``,
    ``frailty_band``, ``imd_per_decile_more_deprived``, ``winter``,
    ``nb_shape`` (emergency, elective), and ``diagnosis_group`` mapping each
    ICD-10 code to its group.
``cost_per_bed_day``
    the £ per ordinary bed day in the cost model.
``provider_cost_multiplier``
    {code: multiplier of every PLICS cost at that provider}.
``readmissions``
    counts in ``spells``: ``window_days`` (30), ``n_readmissions`` (spells
    followed by an emergency readmission 0-29 days after the end of care, the
    readmission itself in the data), ``n_cross_provider`` (of those, to another
    provider), ``n_across_year_end`` (index discharged in one financial year,
    readmitted in the next), ``n_deaths_in_hospital``.
``readmission_model``, ``death_model``
    the logit coefficients of readmission within 30 days of the end of care
    and of death in hospital, with the diagnosis group terms, and the share of
    readmissions to another provider.
``day_case``
    the day-case probability of each elective group at a provider with shift 0,
    and each provider's shift on the log-odds scale.
``virtual_ward``
    ``providers`` {code: start date}; ``pathways`` {name: [ICD-10 prefixes]};
    ``n_treated`` (step-down stays linked to a spell in ``spells``);
    ``n_eligible`` (eligible spells, treated or not); ``n_step_up``
    (admissions replaced by step-up stays); ``att_acute_los_days`` (mean of
    Y1 - Y0 acute length of stay over the treated); ``att_total_los_days``
    (mean of Y1 + virtual ward days - Y0); ``att_readmission_30d_rd`` (mean
    over the treated of the true risk of readmission within 30 days of the end
    of care with the ward minus without it); ``readmission_odds_ratio`` (the
    true odds ratio); ``naive_acute_los_difference_days`` (mean acute length
    of stay of the treated minus the eligible untreated: the biased answer);
    ``naive_acute_los_difference_all_controls_days`` (the same against every
    adult emergency pathway spell alive at discharge, at any provider or date);
    ``los_reduction_fraction`` (0.20); ``selection_model`` (logit
    coefficients of referral, with the pathway terms).
``outcomes``
    ``pathways`` {name: {"mean_gain", "mean_cost", "n"}}: expected EQ-5D gain
    (after - before, bounded scale) and expected cost over the pathway's
    records, with the records' own providers (the gain by averaging 200,000
    redraws of the noise over the records' covariates, so the bounds are
    allowed for; the cost in closed form); ``provider_gain_effect``
    {code: relative change of a provider's expected gain, e.g. -0.3};
    ``provider_cost_multiplier`` {code: multiplier} (the same as above);
    ``deprivation_gradient_before`` (EQ-5D before, per decile less deprived);
    ``high_cost_low_gain`` and ``low_cost_high_gain`` (codes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

PERIOD_START = "2023-04-01"
PERIOD_END = "2025-03-31"
BURN_IN_DAYS = 180
READMISSION_WINDOW = 30
CROSS_PROVIDER_READMISSION = 0.15

# --------------------------------------------------------------------------
# Providers: code, relative size, age shift (years), deprivation tilt (+ more
# deprived), frailty multiplier, emergency log-odds shift, elective mix.
PROVIDERS: tuple[tuple[str, float, float, float, float, float, str], ...] = (
    ("T01", 1.80, 2, 0.6, 1.10, 0.2, "general"),
    ("T02", 1.65, -1, 0.8, 1.00, 0.3, "general"),
    ("T03", 0.70, 5, -0.6, 1.20, -0.1, "general"),
    ("T04", 1.45, 1, 0.2, 1.05, 0.1, "general"),
    ("T05", 1.55, 3, -0.2, 1.15, 0.0, "general"),
    ("T06", 0.60, -2, -0.4, 0.85, -1.2, "orthopaedic"),
    ("T07", 1.35, 0, 0.4, 1.00, 0.1, "general"),
    ("T08", 0.95, 2, -0.3, 1.05, -0.3, "general"),
    ("T09", 1.50, -3, 0.9, 0.95, 0.3, "general"),
    ("T10", 0.80, 4, -0.8, 1.15, -0.2, "general"),
    ("T11", 1.40, -2, 0.5, 0.95, 0.2, "general"),
    ("T12", 0.65, 6, -0.9, 1.25, -0.2, "general"),
    ("T13", 1.25, 0, 0.0, 1.00, 0.0, "general"),
    ("T14", 0.90, 1, -0.5, 1.05, -0.6, "eye"),
    ("T15", 1.00, -1, 0.1, 1.00, -0.2, "general"),
    ("T16", 1.30, 2, 0.3, 1.10, 0.1, "general"),
    ("T17", 0.75, 3, -0.7, 1.10, -0.1, "general"),
    ("T18", 1.10, -4, 0.7, 0.90, 0.2, "general"),
    ("T19", 0.85, 1, -0.1, 1.00, 0.0, "general"),
    ("T20", 1.20, -1, 0.6, 1.00, 0.2, "general"),
    ("T21", 0.70, 4, -0.5, 1.20, -0.1, "general"),
    ("T22", 1.05, 0, 0.2, 1.00, 0.0, "general"),
    ("T23", 0.62, -5, 1.0, 0.85, 0.4, "general"),
    ("T24", 0.95, 2, -0.2, 1.05, 0.0, "general"),
    ("T25", 1.15, -2, 0.3, 0.95, 0.1, "general"),
)
LOS_OUTLIERS = {"high": ["T04", "T11"], "low": ["T07", "T16"]}
LOS_OUTLIER_MULTIPLIER = {"high": 1.30, "low": 0.75}
LOS_PROVIDER_SD = 0.04
VW_PROVIDERS = {
    "T01": "2023-05-01",
    "T02": "2023-08-01",
    "T05": "2023-11-01",
    "T09": "2024-02-01",
    "T13": "2024-05-01",
    "T20": "2024-08-01",
}
VW_PATHWAYS = {
    "acute respiratory infection": [f"J{k:02d}" for k in range(9, 23)] + ["J44"],
    "heart failure": ["I50"],
    "frailty": ["R54", "R26"],
}
HIGH_COST_LOW_GAIN = "T08"
LOW_COST_HIGH_GAIN = "T15"
COST_PER_BED_DAY = 380.0

AGE_BAND_EDGES = np.array([18, 45, 65, 75, 85])
AGE_BANDS = ("0-17", "18-44", "45-64", "65-74", "75-84", "85+")
FRAILTY_BANDS = ("<5", "5-15", ">15")

# Diagnosis groups: name, emergency?, ICD-10 codes, HRG (lower, higher
# complexity), base LOS days, day-case probability (elective), death logit at
# age 75 and frailty 5, readmission term, fixed cost £, virtual ward pathway,
# outcome pathway. Costs and HRG codes are illustrative.
GROUPS: tuple[tuple, ...] = (
    (
        "respiratory infection",
        True,
        ("J181", "J189", "J22X", "J159", "J101"),
        ("DZ22Q", "DZ22K"),
        5.0,
        0.0,
        -2.9,
        0.1,
        1700,
        "acute respiratory infection",
        None,
    ),
    (
        "bronchiolitis",
        True,
        ("J219",),
        ("PD12C", "PD12A"),
        2.0,
        0.0,
        -8.0,
        -0.3,
        900,
        "acute respiratory infection",
        None,
    ),
    (
        "copd",
        True,
        ("J440", "J441", "J449"),
        ("DZ65K", "DZ65E"),
        4.0,
        0.0,
        -3.8,
        0.4,
        1500,
        "acute respiratory infection",
        None,
    ),
    (
        "heart failure",
        True,
        ("I500", "I501", "I509"),
        ("EB03E", "EB03C"),
        6.5,
        0.0,
        -3.1,
        0.4,
        1900,
        "heart failure",
        None,
    ),
    (
        "frailty",
        True,
        ("R54X", "R268", "R262"),
        ("WD11Z", "WD11Z"),
        6.0,
        0.0,
        -3.8,
        0.25,
        1500,
        "frailty",
        None,
    ),
    ("urinary tract infection", True, ("N390",), ("LA04S", "LA04N"), 3.5, 0.0, -4.5, 0.2, 1300, None, None),
    ("chest pain", True, ("R074", "R073"), ("EB12C", "EB12A"), 0.8, 0.0, -7.0, -0.2, 700, None, None),
    ("abdominal pain", True, ("R104", "R101"), ("FD05B", "FD05A"), 1.6, 0.0, -7.0, -0.1, 800, None, None),
    ("stroke", True, ("I639", "I64X"), ("AA35F", "AA35C"), 8.0, 0.0, -2.7, 0.1, 2600, None, None),
    ("hip fracture", True, ("S720", "S721"), ("HE11C", "HE11A"), 11.0, 0.0, -3.3, 0.1, 5200, None, None),
    ("cellulitis", True, ("L031", "L039"), ("JD07J", "JD07F"), 3.5, 0.0, -6.0, 0.0, 1100, None, None),
    ("sepsis", True, ("A419",), ("WJ06H", "WJ06E"), 6.5, 0.0, -2.6, 0.2, 2300, None, None),
    ("atrial fibrillation", True, ("I489",), ("EB07E", "EB07C"), 2.2, 0.0, -5.5, 0.1, 1000, None, None),
    ("poisoning", True, ("T391", "T424"), ("WH04C", "WH04A"), 1.0, 0.0, -7.0, 0.3, 700, None, None),
    (
        "hip replacement",
        False,
        ("M161", "M169"),
        ("HN12D", "HN12B"),
        3.0,
        0.01,
        -8.5,
        0.0,
        5300,
        None,
        "hip replacement",
    ),
    (
        "knee replacement",
        False,
        ("M171", "M179"),
        ("HN22D", "HN22B"),
        2.8,
        0.02,
        -8.5,
        0.0,
        5000,
        None,
        "knee replacement",
    ),
    (
        "cataract",
        False,
        ("H251", "H259"),
        ("BZ34C", "BZ34A"),
        1.0,
        0.97,
        -10.0,
        0.0,
        1000,
        None,
        "cataract surgery",
    ),
    (
        "groin hernia",
        False,
        ("K409", "K402"),
        ("FF62C", "FF62A"),
        1.2,
        0.80,
        -9.0,
        0.0,
        1800,
        None,
        "groin hernia repair",
    ),
    (
        "lower GI endoscopy",
        False,
        ("K573", "K635", "D126"),
        ("FE32Z", "FE32Z"),
        1.0,
        0.95,
        -9.0,
        0.0,
        650,
        None,
        None,
    ),
    ("cardiology", False, ("I251", "I209"), ("EY43C", "EY43A"), 1.2, 0.75, -8.0, 0.0, 1800, None, None),
    ("cholecystectomy", False, ("K802", "K801"), ("GA10J", "GA10F"), 1.3, 0.60, -9.0, 0.0, 3000, None, None),
    ("skin lesion", False, ("D229", "C443"), ("JC43C", "JC43A"), 1.0, 0.95, -10.0, 0.0, 600, None, None),
    ("tonsillectomy", False, ("J350", "J351"), ("CA60B", "CA60A"), 1.0, 0.70, -10.0, 0.0, 1300, None, None),
)
N_GROUPS = len(GROUPS)
GROUP_NAMES = [g[0] for g in GROUPS]
GROUP_EMERGENCY = np.array([g[1] for g in GROUPS])
# Emergency group weights by age band (rows) — elective groups get 0.
_EM_WEIGHTS = {
    "respiratory infection": (10, 6, 8, 12, 15, 17),
    "bronchiolitis": (25, 0, 0, 0, 0, 0),
    "copd": (0, 0.5, 4, 8, 8, 5),
    "heart failure": (0, 0.3, 2.5, 6, 9, 11),
    "frailty": (0, 0, 0.5, 2, 7, 13),
    "urinary tract infection": (4, 4, 4, 5, 7, 9),
    "chest pain": (1, 12, 14, 9, 6, 3),
    "abdominal pain": (16, 20, 14, 8, 5, 3),
    "stroke": (0, 1, 4, 6, 7, 7),
    "hip fracture": (0, 0.3, 1, 2, 4, 7),
    "cellulitis": (4, 7, 6, 5, 4, 3),
    "sepsis": (5, 3, 4, 5, 6, 6),
    "atrial fibrillation": (0, 2, 5, 6, 5, 3),
    "poisoning": (5, 12, 5, 1, 0.5, 0.3),
}
# Elective mix by provider type, then an age modifier.
_EL_MIX = {
    "general": {
        "hip replacement": 8,
        "knee replacement": 9,
        "cataract": 18,
        "groin hernia": 8,
        "lower GI endoscopy": 22,
        "cardiology": 10,
        "cholecystectomy": 8,
        "skin lesion": 10,
        "tonsillectomy": 4,
    },
    "orthopaedic": {
        "hip replacement": 32,
        "knee replacement": 34,
        "cataract": 2,
        "groin hernia": 12,
        "lower GI endoscopy": 4,
        "cardiology": 1,
        "cholecystectomy": 6,
        "skin lesion": 6,
        "tonsillectomy": 1,
    },
    "eye": {
        "hip replacement": 6,
        "knee replacement": 6,
        "cataract": 45,
        "groin hernia": 7,
        "lower GI endoscopy": 14,
        "cardiology": 6,
        "cholecystectomy": 6,
        "skin lesion": 8,
        "tonsillectomy": 2,
    },
}
_EL_AGE = {
    "hip replacement": (0, 0.2, 0.9, 1.3, 1.2, 0.5),
    "knee replacement": (0, 0.2, 0.9, 1.3, 1.2, 0.4),
    "cataract": (0, 0.1, 0.5, 1.2, 1.6, 1.4),
    "groin hernia": (0.4, 1, 1, 1, 0.8, 0.5),
    "lower GI endoscopy": (0, 0.6, 1.2, 1.1, 0.9, 0.5),
    "cardiology": (0, 0.3, 1, 1.2, 1, 0.6),
    "cholecystectomy": (0, 1.2, 1.1, 0.8, 0.5, 0.3),
    "skin lesion": (0.3, 0.8, 1, 1.1, 1.1, 1.0),
    "tonsillectomy": (6, 0.3, 0, 0, 0, 0),
}

EMERGENCY_METHODS = ("21", "22", "23", "24", "28", "2A")
EMERGENCY_METHOD_P = (0.72, 0.10, 0.02, 0.03, 0.10, 0.03)
ELECTIVE_METHODS = ("11", "12", "13")
ELECTIVE_METHOD_P = (0.70, 0.20, 0.10)
METHODS = EMERGENCY_METHODS + ELECTIVE_METHODS

LOS_MODEL: dict[str, Any] = {
    "age_band": dict(zip(AGE_BANDS, (-0.35, -0.20, 0.0, 0.12, 0.25, 0.38))),
    "male": 0.04,
    "admission_method": dict(zip(METHODS, (0.0, 0.05, 0.0, 0.05, -0.10, 0.0, 0.0, -0.05, 0.05))),
    "frailty_band": dict(zip(FRAILTY_BANDS, (0.0, 0.25, 0.55))),
    "imd_per_decile_more_deprived": 0.02,
    "winter": 0.06,
    "nb_shape": {"emergency": 1.8, "elective": 4.0},
}

# Emergency readmission within 30 days of the end of care (logit scale);
# frailty is capped at 30 points in every model.
READMISSION_MODEL: dict[str, float] = {
    "intercept": -2.6,
    "age_per_year_over_60": 0.012,
    "frailty_per_point": 0.04,
    "imd_per_decile_more_deprived": 0.06,
    "elective": -1.2,
}
# Death in hospital (logit = the group's term + these).
DEATH_MODEL: dict[str, float] = {"age_per_year_over_75": 0.045, "frailty_per_point_over_5": 0.04}
# Referral to a step-down virtual ward (logit scale).
VW_SELECTION: dict[str, float] = {
    "intercept": 0.05,
    "age_per_year_over_78": 0.05,
    "frailty_per_point_over_10": 0.09,
    "imd_per_decile_less_deprived": 0.12,
    "female": 0.15,
    "winter": 0.4,
}

# Mid-stay economy: referral among patients still in hospital on the decision day is rarer
# (logit shifted) and less selective (the selection terms above scaled).
VW_MID_STAY_INTERCEPT_SHIFT = -1.0
VW_MID_STAY_SELECTION_SCALE = 0.5

# Virtual ward selection and effects.
VW_LOS_REDUCTION = 0.20
VW_READMISSION_OR = 0.90
VW_STEP_UP_SHARE = 0.06
VW_PATHWAY_TERM = {"acute respiratory infection": 0.0, "heart failure": 0.4, "frailty": 0.6}
VW_DAYS_P = {"acute respiratory infection": 0.25, "heart failure": 0.45, "frailty": 0.35}

# Outcomes: before mean, before sd, gain mean, gain sd.
OUTCOME_PATHWAYS = {
    "hip replacement": (0.35, 0.30, 0.48, 0.28),
    "knee replacement": (0.41, 0.28, 0.35, 0.27),
    "cataract surgery": (0.74, 0.18, 0.065, 0.11),
    "groin hernia repair": (0.78, 0.17, 0.11, 0.12),
}
EQ5D_MIN = -0.594
OUTCOME_DEPRIVATION_GRADIENT = 0.02
OUTCOME_RESPONSE = 0.70


# ---------------------------------------------------------------------------
# small vectorised tools
def _day(s: str) -> int:
    return int(np.datetime64(s, "D").astype(np.int64))


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _age_band(age: np.ndarray) -> np.ndarray:
    return np.searchsorted(AGE_BAND_EDGES, age, side="right")


def _frailty_band(f: np.ndarray) -> np.ndarray:
    return (f >= 5).astype(np.int8) + (f > 15).astype(np.int8)


def _categorical(rng: np.random.Generator, cum: np.ndarray, n: int) -> np.ndarray:
    """Draw ``n`` categories from one cumulative probability vector."""
    return np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), len(cum) - 1)


def _categorical_by(rng: np.random.Generator, weights: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Draw one category per row from the row of ``weights`` named by ``key``."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(key)) * cum[key, -1]
    out = np.zeros(len(key), dtype=np.int64)
    for k in np.unique(key):
        m = key == k
        out[m] = np.minimum(np.searchsorted(cum[k], u[m], side="right"), weights.shape[1] - 1)
    return out


def _nb(rng: np.random.Generator, mu: np.ndarray, shape: np.ndarray | float) -> np.ndarray:
    """Negative binomial draws as a gamma-Poisson mixture (mean mu, var mu + mu^2/shape)."""
    lam = mu * rng.gamma(shape, 1.0 / np.asarray(shape), size=len(mu))
    return rng.poisson(lam)


def _month(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12 + 1


def _fy_start(days: np.ndarray) -> np.ndarray:
    m = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return (m - 3) // 12  # financial years counted from April 1970


# ---------------------------------------------------------------------------
def _provider_parameters(rng: np.random.Generator) -> dict[str, Any]:
    codes = [p[0] for p in PROVIDERS]
    los_mult = np.exp(rng.normal(0, LOS_PROVIDER_SD, len(codes)))
    for kind, lst in LOS_OUTLIERS.items():
        for c in lst:
            los_mult[codes.index(c)] = LOS_OUTLIER_MULTIPLIER[kind]
    cost_mult = np.exp(rng.normal(0, 0.05, len(codes)))
    cost_mult[codes.index(HIGH_COST_LOW_GAIN)] = 1.25
    cost_mult[codes.index(LOW_COST_HIGH_GAIN)] = 0.85
    gain_eff = rng.normal(0, 0.04, len(codes))
    gain_eff[codes.index(HIGH_COST_LOW_GAIN)] = -0.30
    gain_eff[codes.index(LOW_COST_HIGH_GAIN)] = 0.20
    daycase_shift = rng.normal(0, 0.35, len(codes))
    return {
        "codes": codes,
        "size": np.array([p[1] for p in PROVIDERS]),
        "age_shift": np.array([p[2] for p in PROVIDERS], dtype=float),
        "deprivation": np.array([p[3] for p in PROVIDERS]),
        "frailty_mult": np.array([p[4] for p in PROVIDERS]),
        "emergency_shift": np.array([p[5] for p in PROVIDERS]),
        "specialty": [p[6] for p in PROVIDERS],
        "los_mult": los_mult,
        "cost_mult": cost_mult,
        "gain_effect": gain_eff,
        "daycase_shift": daycase_shift,
        "vw_start": np.array(
            [_day(VW_PROVIDERS[c]) if c in VW_PROVIDERS else np.iinfo(np.int64).max // 2 for c in codes]
        ),
    }


def _tables() -> dict[str, Any]:
    """Lookup arrays derived from the constants (no randomness)."""
    codes, code_group = [], []
    for gi, g in enumerate(GROUPS):
        for c in g[2]:
            codes.append(c)
            code_group.append(gi)
    code_group = np.array(code_group)
    first_code = np.array([code_group.tolist().index(g) for g in range(N_GROUPS)])
    n_codes = np.bincount(code_group, minlength=N_GROUPS)
    hrgs = sorted({h for g in GROUPS for h in g[3]})
    hrg_idx = np.array([[hrgs.index(g[3][0]), hrgs.index(g[3][1])] for g in GROUPS])
    em_w = np.zeros((6, N_GROUPS))
    for name, w in _EM_WEIGHTS.items():
        em_w[:, GROUP_NAMES.index(name)] = w
    specs = list(_EL_MIX)
    el_w = np.zeros((len(specs) * 6, N_GROUPS))
    for si, s in enumerate(specs):
        for name, w in _EL_MIX[s].items():
            gi = GROUP_NAMES.index(name)
            el_w[si * 6 : (si + 1) * 6, gi] = w * np.array(_EL_AGE[name])
    vw_names = list(VW_PATHWAYS)
    group_vw = np.array([vw_names.index(g[9]) if g[9] else -1 for g in GROUPS])
    out_names = list(OUTCOME_PATHWAYS)
    group_out = np.array([out_names.index(g[10]) if g[10] else -1 for g in GROUPS])
    return {
        "icd": codes,
        "code_group": code_group,
        "first_code": first_code,
        "n_codes": n_codes,
        "hrg": hrgs,
        "hrg_idx": hrg_idx,
        "em_w": em_w,
        "el_w": el_w,
        "specs": specs,
        "base_los": np.array([g[4] for g in GROUPS]),
        "daycase_p": np.array([g[5] for g in GROUPS]),
        "death_logit": np.array([g[6] for g in GROUPS]),
        "readmit_term": np.array([g[7] for g in GROUPS]),
        "fixed_cost": np.array([g[8] for g in GROUPS], dtype=float),
        "group_vw": group_vw,
        "vw_names": vw_names,
        "group_out": group_out,
        "out_names": out_names,
        "age_eff": np.array(list(LOS_MODEL["age_band"].values())),
        "method_eff": np.array(list(LOS_MODEL["admission_method"].values())),
        "frailty_eff": np.array(list(LOS_MODEL["frailty_band"].values())),
    }


def _patients(rng: np.random.Generator, n: int, prov: dict[str, Any]) -> dict[str, np.ndarray]:
    """Draw ``n`` patients: home provider, sex, age at the burn-in start, IMD, frailty."""
    size = prov["size"]
    home = _categorical(rng, np.cumsum(size), n)
    male = rng.random(n) < 0.47
    child = rng.random(n) < 0.08
    adult_age = 18 + 87 * rng.beta(1.6, 1.7, n) + prov["age_shift"][home]
    age0 = np.where(child, rng.uniform(0, 18, n), np.clip(adult_age, 18, 104))
    deciles = np.arange(1, 11)
    w = np.exp(-np.outer(prov["deprivation"], (deciles - 5.5) / 4.5) * 1.2)
    imd = 1 + _categorical_by(rng, w, home)
    fm = prov["frailty_mult"][home] * (1 + 0.04 * (5.5 - imd))
    old = np.clip(age0 - 50, 0, None)
    frailty = np.where(
        child,
        0.0,
        rng.gamma(np.where(age0 >= 65, 1.6, 0.6), np.where(age0 >= 65, 0.18 * old + 0.5, 2.0)) * fm,
    )
    # annual rate of unrelated admissions
    rate = 0.45 * np.exp(0.018 * (age0 - 50) + 0.04 * frailty) * (1 + 0.03 * (5.5 - imd))
    rate = np.where(child, 0.30, rate)
    return {
        "home": home,
        "male": male,
        "age0": age0,
        "imd": imd,
        "frailty0": frailty,
        "rate": rate,
        "child": child,
    }


# storage types of the per-spell arrays (memory for national-size runs)
_COMPACT = {
    "provider": np.int16,
    "adm": np.int32,
    "los": np.int32,
    "method": np.int8,
    "group": np.int8,
    "icd": np.int16,
    "hrg": np.int16,
    "age": np.int16,
    "imd": np.int8,
    "y0": np.int32,
    "vw_days": np.int16,
    "p_r1": np.float32,
    "p_r0": np.float32,
    "mu": np.float32,
    "dc_p": np.float32,
    "end_care": np.int32,
    "decision": np.int8,
    "death_day": np.int32,
}


def _vw_options(
    step_down: str = "admission", decision_days: tuple[int, int] = (2, 4), readmission_or: float | None = None
) -> dict[str, Any]:
    """The virtual ward options of :func:`simulate_economy`, checked."""
    if step_down not in ("admission", "mid_stay"):
        raise ValueError(f"step_down must be 'admission' or 'mid_stay', got {step_down!r}")
    lo, hi = (int(x) for x in decision_days)
    if not 0 <= lo <= hi:
        raise ValueError(
            f"decision_days must be (first, last) hospital days with 0 <= first <= last, got {decision_days}"
        )
    ratio = VW_READMISSION_OR if readmission_or is None else float(readmission_or)
    if ratio <= 0:
        raise ValueError(f"readmission_or must be positive, got {readmission_or}")
    return {"step_down": step_down, "decision_days": (lo, hi), "readmission_or": ratio}


def _simulate_chains(
    rng: np.random.Generator,
    pat: dict[str, np.ndarray],
    prov: dict[str, Any],
    tab: dict[str, Any],
    vw: dict[str, Any] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Simulate every patient's chain of spells, vectorised over patients.

    Returns the spells (all, including burn-in and after the period) and the
    step-up virtual ward stays, as dicts of numpy arrays. ``vw`` holds the
    virtual ward options of :func:`simulate_economy` (``step_down``,
    ``decision_days``, ``readmission_or``).
    """
    vw = _vw_options() if vw is None else vw
    mid_stay = vw["step_down"] == "mid_stay"
    start, end = _day(PERIOD_START), _day(PERIOD_END)
    burn = start - BURN_IN_DAYS
    n_pat = len(pat["home"])
    n_prov = len(prov["codes"])
    size_cum = np.cumsum(prov["size"])
    emergency_method_cum = np.cumsum(EMERGENCY_METHOD_P)
    elective_method_cum = np.cumsum(ELECTIVE_METHOD_P)
    spec_idx = np.array([tab["specs"].index(s) for s in prov["specialty"]])

    # state of every patient's chain
    t = burn + np.floor(rng.exponential(365.0 / pat["rate"])).astype(np.int64)
    readmit = np.zeros(n_pat, dtype=bool)
    prev_prov = pat["home"].copy()
    n_prior = np.zeros(n_pat, dtype=np.int64)
    active = np.nonzero(t <= end)[0]

    out: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "patient",
            "provider",
            "adm",
            "los",
            "method",
            "group",
            "icd",
            "hrg",
            "classpat",
            "died",
            "age",
            "frailty",
            "cost",
            "imd",
            "male",
            "treated",
            "eligible",
            "y0",
            "vw_days",
            "p_r1",
            "p_r0",
            "readmit_next",
            "mu",
            "dc_p",
            "end_care",
            "decision",
            "death_day",
        )
    }
    step_up: dict[str, list[np.ndarray]] = {
        k: [] for k in ("patient", "provider", "start", "days", "pathway")
    }

    while len(active):
        i = active
        n = len(i)
        a = t[i]
        is_re = readmit[i]
        # provider
        other = _categorical(rng, size_cum, n)
        move_re = rng.random(n) < CROSS_PROVIDER_READMISSION
        move_ix = rng.random(n) < 0.06
        base_prov = np.where(is_re, prev_prov[i], pat["home"][i])
        move = np.where(is_re, move_re, move_ix)
        other = np.where(other == base_prov, (other + 1 + rng.integers(0, n_prov - 1, n)) % n_prov, other)
        p = np.where(move, other, base_prov)
        # person at this spell
        age = np.clip(np.floor(pat["age0"][i] + (a - burn) / 365.25), 0, 110).astype(np.int64)
        ab = _age_band(age)
        frailty = np.round(np.where(pat["child"][i], 0.0, pat["frailty0"][i] + 0.4 * n_prior[i]), 1)
        fb = _frailty_band(frailty)
        imd = pat["imd"][i]
        male = pat["male"][i]
        # admission type and group
        p_em = _logistic(0.15 + 0.015 * (age - 60) + prov["emergency_shift"][p])
        emergency = is_re | (rng.random(n) < p_em)
        g_em = _categorical_by(rng, tab["em_w"], ab)
        g_el = _categorical_by(rng, tab["el_w"], spec_idx[p] * 6 + ab)
        group = np.where(emergency, g_em, g_el)
        method = np.where(
            emergency,
            _categorical(rng, emergency_method_cum, n),
            len(EMERGENCY_METHODS) + _categorical(rng, elective_method_cum, n),
        )
        icd = tab["first_code"][group] + np.floor(rng.random(n) * tab["n_codes"][group]).astype(np.int64)
        hrg = tab["hrg_idx"][group, (frailty >= 10).astype(np.int64)]
        month = _month(a)
        winter = np.isin(month, (12, 1, 2))
        # virtual ward pathway and step-up stays
        vw_path = tab["group_vw"][group]
        vw_open = (vw_path >= 0) & emergency & (age >= 18) & (a >= prov["vw_start"][p])
        su = vw_open & ~is_re & (rng.random(n) < VW_STEP_UP_SHARE)
        # length of stay (ordinary) and day cases
        lm = (
            np.log(tab["base_los"][group])
            + tab["age_eff"][ab]
            + LOS_MODEL["male"] * male
            + tab["method_eff"][method]
            + tab["frailty_eff"][fb]
            + LOS_MODEL["imd_per_decile_more_deprived"] * (5.5 - imd)
            + LOS_MODEL["winter"] * winter
            + np.log(prov["los_mult"][p])
        )
        mu = np.exp(lm)
        shape = np.where(emergency, LOS_MODEL["nb_shape"]["emergency"], LOS_MODEL["nb_shape"]["elective"])
        y0 = _nb(rng, mu, shape)
        dc_logit = np.log(
            np.clip(tab["daycase_p"][group], 1e-9, None) / np.clip(1 - tab["daycase_p"][group], 1e-9, None)
        )
        dc_p = np.where(emergency, 0.0, _logistic(dc_logit + prov["daycase_shift"][p]))
        day_case = ~emergency & (rng.random(n) < dc_p)
        y0 = np.where(day_case, 0, y0)
        # death in hospital
        frail30 = np.minimum(frailty, 30)
        p_die = _logistic(
            tab["death_logit"][group]
            + DEATH_MODEL["age_per_year_over_75"] * (age - 75)
            + DEATH_MODEL["frailty_per_point_over_5"] * (frail30 - 5)
        )
        died = rng.random(n) < p_die
        # virtual ward step-down
        if mid_stay:
            # the ward reviews on one hospital day, fixed by provider and pathway; only a patient
            # still in hospital that day can be referred; death is no bar (it is an outcome)
            lo, hi = vw["decision_days"]
            decision = lo + (p + np.maximum(vw_path, 0)) % (hi - lo + 1)
            eligible = vw_open & ~su & (y0 >= decision)
        else:
            decision = np.zeros(n, dtype=np.int64)  # referral at admission
            eligible = vw_open & ~su & ~died
        path_term = np.array([VW_PATHWAY_TERM[k] for k in tab["vw_names"]])[np.maximum(vw_path, 0)]
        sel = VW_SELECTION
        e_logit = (
            sel["age_per_year_over_78"] * (age - 78)
            + sel["frailty_per_point_over_10"] * (frail30 - 10)
            + sel["imd_per_decile_less_deprived"] * (imd - 5.5)
            + sel["female"] * ~male
            + path_term
            + sel["winter"] * winter
        )
        if mid_stay:
            e_logit = e_logit * VW_MID_STAY_SELECTION_SCALE + VW_MID_STAY_INTERCEPT_SHIFT
        e_logit = sel["intercept"] + e_logit
        treated = eligible & (rng.random(n) < _logistic(e_logit))
        # the ward shortens the stay still to come after the decision day
        remain = np.maximum(y0 - decision, 0)
        los = np.where(treated, y0 - rng.binomial(remain, VW_LOS_REDUCTION), y0)
        vw_p = np.array([VW_DAYS_P[k] for k in tab["vw_names"]])[np.maximum(vw_path, 0)]
        vw_days = np.where(treated | su, 2 + rng.binomial(12, vw_p), 0)
        # cost
        cost = (
            (tab["fixed_cost"][group] + COST_PER_BED_DAY * los)
            * prov["cost_mult"][p]
            * rng.gamma(8.0, 1 / 8.0, n)
        )
        # readmission from the end of care
        rm = READMISSION_MODEL
        r_logit = (
            rm["intercept"]
            + rm["age_per_year_over_60"] * (age - 60)
            + rm["frailty_per_point"] * frail30
            + rm["imd_per_decile_more_deprived"] * (5.5 - imd)
            + tab["readmit_term"][group]
            + rm["elective"] * ~emergency
        )
        p_r0 = _logistic(r_logit)
        p_r1 = _logistic(r_logit + math.log(vw["readmission_or"]))
        u = rng.random(n)
        re_next = ~died & ~su & (u < np.where(treated, p_r1, p_r0))
        end_care = np.where(su, a + vw_days, a + los + np.where(treated, vw_days, 0))
        # a treated patient who dies does so on the virtual ward, at its end (not in the acute bed)
        death_day = np.where(died, np.where(treated, end_care, a + los), -1)
        died = died & ~treated if mid_stay else died
        # leaving the data (death at home, moving away) when not readmitted
        q = _logistic(-4.6 + 0.06 * (age - 70) + 0.05 * frail30)
        leave = (death_day >= 0) | (~re_next & (rng.random(n) < q))
        gap_re = 1 + np.floor(28 * rng.random(n) ** 1.6).astype(np.int64)
        gap_ix = 31 + np.floor(rng.exponential(365.0 / pat["rate"][i])).astype(np.int64)
        nxt = end_care + np.where(re_next, gap_re, gap_ix)
        if mid_stay:
            # the readmission clock starts at the acute discharge: an escalation from the virtual
            # ward back to hospital is a readmission, and it ends the virtual ward stay
            acute_end = a + los
            re_at = acute_end + gap_re
            escalated = treated & re_next & (re_at < end_care)
            vw_days = np.where(escalated, re_at - acute_end, vw_days)
            end_care = np.where(escalated, re_at, end_care)
            nxt = np.where(re_next, re_at, end_care + gap_ix)

        keep = ~su
        for k, v in (
            ("patient", i),
            ("provider", p),
            ("adm", a),
            ("los", los),
            ("method", method),
            ("group", group),
            ("icd", icd),
            ("hrg", hrg),
            ("classpat", day_case),
            ("died", died),
            ("age", age),
            ("frailty", frailty),
            ("cost", cost),
            ("imd", imd),
            ("male", male),
            ("treated", treated),
            ("eligible", eligible),
            ("y0", y0),
            ("vw_days", vw_days),
            ("p_r1", p_r1),
            ("p_r0", p_r0),
            ("readmit_next", re_next),
            ("mu", mu),
            ("dc_p", dc_p),
            ("end_care", end_care),
            ("decision", decision),
            ("death_day", death_day),
        ):
            out[k].append(v[keep].astype(_COMPACT.get(k, v.dtype), copy=False))
        if su.any():
            step_up["patient"].append(i[su])
            step_up["provider"].append(p[su])
            step_up["start"].append(a[su])
            step_up["days"].append(vw_days[su])
            step_up["pathway"].append(vw_path[su])

        # update the chains
        t[i] = nxt
        readmit[i] = re_next
        prev_prov[i] = p
        n_prior[i] += 1
        go = ~leave & (nxt <= end)
        active = i[go]

    spells = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
    su_out = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in step_up.items()}
    return spells, su_out


def _generate(
    n_spells: int,
    rng: np.random.Generator,
    prov: dict[str, Any],
    tab: dict[str, Any],
    vw: dict[str, Any] | None = None,
):
    """Generate patients in batches until ``n_spells`` in-period spells exist; trim to exactly that."""
    start, end = _day(PERIOD_START), _day(PERIOD_END)
    batches, su_batches = [], []
    total, offset = 0, 0
    per_patient = 2.0
    while total < n_spells:
        n_pat = max(200, int(math.ceil((n_spells - total) / per_patient * 1.08)))
        pat = _patients(rng, n_pat, prov)
        sp, su = _simulate_chains(rng, pat, prov, tab, vw)
        sp["patient"] = sp["patient"] + offset
        su["patient"] = su["patient"] + offset
        inside = (sp["adm"] >= start) & (sp["adm"] + sp["los"] <= end)
        got = int(inside.sum())
        per_patient = max(0.5, got / n_pat)
        total += got
        offset += n_pat
        batches.append(sp)
        su_batches.append(su)
    sp = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    su = {k: np.concatenate([b[k] for b in su_batches]) for k in su_batches[0]}
    # order by patient, then admission
    order = np.lexsort((sp["adm"], sp["patient"]))
    sp = {k: v[order] for k, v in sp.items()}
    return sp, su


def _id_strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Fixed-width identifiers like ``P0000123`` built without Python loops."""
    numbers = np.asarray(numbers, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((numbers[:, None] // powers) % 10 + 48).astype(np.uint8)
    pre = np.frombuffer(prefix.encode(), dtype=np.uint8)
    mat = np.concatenate([np.broadcast_to(pre, (len(numbers), len(pre))), digits], axis=1)
    raw = np.ascontiguousarray(mat).view(f"S{width + len(pre)}").ravel()
    return pa.array(raw, type=pa.binary()).cast(pa.string())


def _codes(idx: np.ndarray, labels: list[str] | tuple[str, ...]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(idx, dtype=np.int32)), pa.array(list(labels))
    ).cast(pa.string())


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.int32()).cast(pa.date32())


def _seeds(seed: int) -> tuple[dict[str, Any], np.random.SeedSequence, np.random.SeedSequence]:
    """Provider parameters and the two child seeds (spells, extras) of ``seed``."""
    ss_prov, ss_main, ss_extra = np.random.SeedSequence(seed).spawn(3)
    return _provider_parameters(np.random.default_rng(ss_prov)), ss_main, ss_extra


def _simulate_spells_core(
    n_spells: int,
    ss: np.random.SeedSequence,
    prov: dict[str, Any],
    tab: dict[str, Any],
    vw: dict[str, Any] | None = None,
):
    """Run the simulation and return the in-period spells (first ``n_spells`` by patient)."""
    sp, su = _generate(n_spells, np.random.default_rng(ss), prov, tab, vw)
    start, end = _day(PERIOD_START), _day(PERIOD_END)
    inside = (sp["adm"] >= start) & (sp["adm"] + sp["los"] <= end)
    # the next spell of the same patient, in the full chain, before trimming
    same_next = np.zeros(len(sp["adm"]), dtype=bool)
    same_next[:-1] = sp["patient"][1:] == sp["patient"][:-1]
    kept_idx = np.nonzero(inside)[0][:n_spells]
    keep = np.zeros(len(inside), dtype=bool)
    keep[kept_idx] = True
    next_kept = np.zeros(len(keep), dtype=bool)
    next_kept[:-1] = same_next[:-1] & keep[1:]
    next_cross = np.zeros(len(keep), dtype=bool)
    next_cross[:-1] = sp["provider"][1:] != sp["provider"][:-1]
    next_adm = np.zeros(len(keep), dtype=np.int64)
    next_adm[:-1] = sp["adm"][1:]
    sp["next_kept"] = next_kept
    sp["next_cross"] = next_cross
    sp["next_adm"] = next_adm
    sp = {k: v[keep] for k, v in sp.items()}
    last_patient = sp["patient"][-1] if len(sp["patient"]) else -1
    last_adm = sp["adm"][-1] if len(sp["adm"]) else -1
    su_keep = (
        (su["start"] >= start)
        & (su["start"] + su["days"] <= end)
        & ((su["patient"] < last_patient) | ((su["patient"] == last_patient) & (su["start"] <= last_adm)))
    )
    # only step-up stays of patients who appear in the spells (or the batch before the last kept patient)
    su = {k: v[su_keep] for k, v in su.items()}
    return sp, su


def _spells_table(
    sp: dict[str, np.ndarray],
    prov,
    tab,
    patient_no: np.ndarray,
    spell_no: np.ndarray,
    pwidth: int,
    swidth: int,
) -> pa.Table:
    dis = sp["adm"] + sp["los"]
    return pa.table(
        {
            "spell_id": _id_strings("S", spell_no, swidth),
            "patient_id": _id_strings("P", patient_no, pwidth),
            "provider_code": _codes(sp["provider"], prov["codes"]),
            "admission_date": _dates(sp["adm"]),
            "discharge_date": _dates(dis),
            "admission_method": _codes(sp["method"], METHODS),
            "patient_classification": _codes(sp["classpat"].astype(np.int64), ("1", "2")),
            "age": pa.array(sp["age"].astype(np.int64)),
            "sex": _codes((~sp["male"]).astype(np.int64), ("1", "2")),
            "primary_diagnosis": _codes(sp["icd"], tab["icd"]),
            "hrg": _codes(sp["hrg"], tab["hrg"]),
            "discharge_method": _codes(sp["died"].astype(np.int64), ("1", "4")),
            "imd_decile": pa.array(sp["imd"].astype(np.int64)),
            "frailty_score": pa.array(np.round(sp["frailty"], 1)),
            "spell_cost": pa.array(np.round(sp["cost"], 2)),
        }
    )


def _to_pandas(table: pa.Table, date_cols: tuple[str, ...]) -> pd.DataFrame:
    df = table.to_pandas()
    for c in date_cols:
        df[c] = pd.to_datetime(df[c]).astype("datetime64[s]")
    return df


def _expected_gain_cost(
    rng, out_rows: dict[str, np.ndarray], n_mc: int = 200_000
) -> dict[str, dict[str, float]]:
    """Expected gain and cost per pathway (Monte Carlo over the records' covariates)."""
    res: dict[str, dict[str, float]] = {}
    for k, name in enumerate(OUTCOME_PATHWAYS):
        m = out_rows["pathway"] == k
        n = int(m.sum())
        if n == 0:
            res[name] = {"mean_gain": float("nan"), "mean_cost": float("nan"), "n": 0}
            continue
        pick = np.nonzero(m)[0][rng.integers(0, n, n_mc)]
        _, after, before = _draw_eq5d(
            rng, k, out_rows["imd"][pick], out_rows["age"][pick], out_rows["gain_eff"][pick]
        )
        res[name] = {
            "mean_gain": round(float(np.mean(after - before)), 4),
            "mean_cost": round(float(np.mean(out_rows["expected_cost"][m])), 2),
            "n": n,
        }
    return res


def _draw_eq5d(rng, k: int, imd, age, gain_eff):
    b_mean, b_sd, g_mean, g_sd = list(OUTCOME_PATHWAYS.values())[k]
    n = len(imd)
    before = np.clip(
        b_mean - OUTCOME_DEPRIVATION_GRADIENT * (5.5 - imd) - 0.002 * (age - 70) + rng.normal(0, b_sd, n),
        EQ5D_MIN,
        1.0,
    )
    gain = g_mean * (1 + gain_eff) + rng.normal(0, g_sd, n)
    after = np.clip(before + gain, EQ5D_MIN, 1.0)
    return gain, np.round(after, 3), np.round(before, 3)


def _finite(obj: Any) -> Any:
    """Replace NaN (a truth that does not exist, e.g. no treated spells) by None, so the JSON is valid."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def simulate_economy(
    n_spells: int = 50_000,
    seed: int = 2026,
    step_down: str = "admission",
    decision_days: tuple[int, int] = (2, 4),
    readmission_or: float | None = None,
) -> dict[str, pd.DataFrame | dict]:
    """Simulate the health economy described in this module's docstring.

    Returns ``{"spells", "virtual_ward", "outcomes", "deaths", "truth"}``:
    three DataFrames with the columns of ``data/data_dictionary.yaml`` (dates
    as ``datetime64``), every death (``patient_id``, ``date_of_death``: in
    hospital, or on the virtual ward; linked mortality records) and the
    dictionary of known truths (keys documented in the module docstring).
    Exactly ``n_spells`` spells; the same seed gives the same result.

    ``step_down="admission"`` (the shipped sample) decides referral at
    admission; ``"mid_stay"`` decides it on a hospital day in
    ``decision_days`` (fixed by provider and pathway), only for patients still
    in hospital that day, and shortens the stay still to come.
    ``readmission_or`` replaces the ward's true readmission odds ratio (0.90).
    """
    if n_spells < 100:
        raise ValueError(f"n_spells must be at least 100, got {n_spells}")
    vw = _vw_options(step_down, decision_days, readmission_or)
    prov, ss_main, ss_extra = _seeds(seed)
    tab = _tables()
    sp, su = _simulate_spells_core(n_spells, ss_main, prov, tab, vw)
    rng = np.random.default_rng(ss_extra)
    n = len(sp["adm"])

    # identifiers: patients numbered by first appearance, spells by admission date
    patients_all = np.concatenate([sp["patient"], su["patient"]])
    uniq, inv = np.unique(patients_all, return_inverse=True)
    first_seen = np.full(len(uniq), np.iinfo(np.int64).max)
    order_key = np.concatenate([sp["adm"], su["start"]])
    np.minimum.at(first_seen, inv, order_key)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.lexsort((uniq, first_seen))] = np.arange(len(uniq))
    patient_no = rank[inv] + 1
    sp_patient_no, su_patient_no = patient_no[:n], patient_no[n:]
    spell_order = np.lexsort((sp_patient_no, sp["provider"], sp["adm"]))
    spell_no = np.empty(n, dtype=np.int64)
    spell_no[spell_order] = np.arange(1, n + 1)
    pwidth = max(7, len(str(len(uniq))))
    swidth = max(8, len(str(n)))

    spells_tab = _spells_table(sp, prov, tab, sp_patient_no, spell_no, pwidth, swidth)
    spells = _to_pandas(spells_tab, ("admission_date", "discharge_date"))
    spells = spells.iloc[spell_order].reset_index(drop=True)

    # virtual ward stays: step-down (linked) and step-up
    dis = sp["adm"] + sp["los"]
    t_idx = np.nonzero(sp["treated"])[0]
    vw_patient = np.concatenate([sp_patient_no[t_idx], su_patient_no])
    vw_prov = np.concatenate([sp["provider"][t_idx], su["provider"]])
    vw_start = np.concatenate([dis[t_idx], su["start"]])
    vw_days = np.concatenate([sp["vw_days"][t_idx], su["days"]])
    vw_path = np.concatenate([tab["group_vw"][sp["group"][t_idx]], su["pathway"]])
    route = np.concatenate([np.ones(len(t_idx), dtype=np.int64), np.zeros(len(su["start"]), dtype=np.int64)])
    linked_no = np.concatenate([spell_no[t_idx], np.zeros(len(su["start"]), dtype=np.int64)])
    vw_order = np.lexsort((vw_patient, vw_prov, vw_start))
    n_vw = len(vw_start)
    linked = _id_strings("S", linked_no, swidth).to_numpy(zero_copy_only=False).astype(object)
    linked[route == 0] = None
    referral = np.concatenate(
        [sp["adm"][t_idx] + sp["decision"][t_idx], np.zeros(len(su["start"]), dtype=np.int64)]
    )
    vw_tab = pa.table(
        {
            "vw_stay_id": _id_strings("V", np.arange(1, n_vw + 1), max(6, len(str(n_vw)))),
            "patient_id": _id_strings("P", vw_patient[vw_order], pwidth),
            "provider_code": _codes(vw_prov[vw_order], prov["codes"]),
            "vw_admission_date": _dates(vw_start[vw_order]),
            "vw_discharge_date": _dates((vw_start + vw_days)[vw_order]),
            "pathway": _codes(vw_path[vw_order], tab["vw_names"]),
            "route": _codes(route[vw_order], ("step_up", "step_down")),
            "linked_spell_id": pa.array(list(linked[vw_order]), type=pa.string()),
            "referral_date": pa.array(
                np.asarray(referral[vw_order], dtype=np.int32), type=pa.int32(), mask=(route[vw_order] == 0)
            ).cast(pa.date32()),
        }
    )
    virtual_ward = _to_pandas(vw_tab, ("vw_admission_date", "vw_discharge_date", "referral_date"))
    dead = np.nonzero(sp["death_day"] >= 0)[0]
    deaths = pd.DataFrame(
        {
            "patient_id": _id_strings("P", sp_patient_no[dead], pwidth).to_pylist(),
            "date_of_death": pd.to_datetime(sp["death_day"][dead].astype("datetime64[D]")).astype(
                "datetime64[s]"
            ),
        }
    ).sort_values(["date_of_death", "patient_id"], ignore_index=True)

    # outcomes (PROMs style) for the elective pathways
    path = tab["group_out"][sp["group"]]
    cand = np.nonzero((path >= 0) & ~sp["died"] & ~GROUP_EMERGENCY[sp["group"]])[0]
    respond = rng.random(len(cand)) < _logistic(
        math.log(OUTCOME_RESPONSE / (1 - OUTCOME_RESPONSE)) + 0.08 * (sp["imd"][cand] - 5.5)
    )
    o_idx = cand[respond]
    o_idx = o_idx[np.lexsort((spell_no[o_idx], sp["adm"][o_idx]))]
    o_path = path[o_idx]
    gain_eff = prov["gain_effect"][sp["provider"][o_idx]]
    before = np.zeros(len(o_idx))
    after = np.zeros(len(o_idx))
    for k in range(len(OUTCOME_PATHWAYS)):
        m = o_path == k
        _, after[m], before[m] = _draw_eq5d(rng, k, sp["imd"][o_idx][m], sp["age"][o_idx][m], gain_eff[m])
    expected_cost = (
        tab["fixed_cost"][sp["group"][o_idx]] + COST_PER_BED_DAY * (1 - sp["dc_p"][o_idx]) * sp["mu"][o_idx]
    ) * prov["cost_mult"][sp["provider"][o_idx]]
    n_out = len(o_idx)
    out_tab = pa.table(
        {
            "outcome_id": _id_strings("O", np.arange(1, n_out + 1), max(6, len(str(n_out)))),
            "patient_id": _id_strings("P", sp_patient_no[o_idx], pwidth),
            "provider_code": _codes(sp["provider"][o_idx], prov["codes"]),
            "pathway": _codes(o_path, tab["out_names"]),
            "procedure_date": _dates(sp["adm"][o_idx]),
            "age": pa.array(sp["age"][o_idx].astype(np.int64)),
            "sex": _codes((~sp["male"][o_idx]).astype(np.int64), ("1", "2")),
            "imd_decile": pa.array(sp["imd"][o_idx].astype(np.int64)),
            "eq5d_before": pa.array(before),
            "eq5d_after": pa.array(after),
            "cost": pa.array(np.round(sp["cost"][o_idx], 2)),
        }
    )
    outcomes = _to_pandas(out_tab, ("procedure_date",))
    outcome_truth = _expected_gain_cost(
        rng,
        {
            "pathway": o_path,
            "imd": sp["imd"][o_idx],
            "age": sp["age"][o_idx],
            "gain_eff": gain_eff,
            "expected_cost": expected_cost,
        },
    )

    # truths
    codes = prov["codes"]
    readmitted = sp["readmit_next"] & sp["next_kept"]
    across = readmitted & (_fy_start(dis) != _fy_start(sp["next_adm"]))
    tr = sp["treated"]
    elig = sp["eligible"]
    naive = float(sp["los"][tr].mean() - sp["los"][elig & ~tr].mean()) if tr.any() else float("nan")
    pathway_spell = (
        (tab["group_vw"][sp["group"]] >= 0) & GROUP_EMERGENCY[sp["group"]] & (sp["age"] >= 18) & ~sp["died"]
    )
    naive_all = (
        float(sp["los"][tr].mean() - sp["los"][pathway_spell & ~tr].mean()) if tr.any() else float("nan")
    )
    truth: dict[str, Any] = {
        "seed": int(seed),
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "n_spells": int(n),
        "n_patients": int(len(np.unique(sp_patient_no))),
        "providers": codes,
        "provider_size": {c: float(s) for c, s in zip(codes, prov["size"])},
        "los_provider_multiplier": {c: round(float(m), 4) for c, m in zip(codes, prov["los_mult"])},
        "los_outliers": {k: list(v) for k, v in LOS_OUTLIERS.items()},
        "los_model": {
            "base_los_days": {g[0]: g[4] for g in GROUPS},
            **{k: v for k, v in LOS_MODEL.items()},
            "diagnosis_group": {c: GROUP_NAMES[g] for c, g in zip(tab["icd"], tab["code_group"])},
        },
        "cost_per_bed_day": COST_PER_BED_DAY,
        "provider_cost_multiplier": {c: round(float(m), 4) for c, m in zip(codes, prov["cost_mult"])},
        "readmissions": {
            "window_days": READMISSION_WINDOW,
            "n_readmissions": int(readmitted.sum()),
            "n_cross_provider": int((readmitted & sp["next_cross"]).sum()),
            "n_across_year_end": int(across.sum()),
            "n_deaths_in_hospital": int(sp["died"].sum()),
        },
        "readmission_model": {
            **READMISSION_MODEL,
            "group": {g[0]: g[7] for g in GROUPS},
            "cross_provider_share": CROSS_PROVIDER_READMISSION,
        },
        "death_model": {**DEATH_MODEL, "group": {g[0]: g[6] for g in GROUPS}},
        "day_case": {
            "probability_by_group": {g[0]: g[5] for g in GROUPS if not g[1]},
            "provider_log_odds_shift": {c: round(float(x), 4) for c, x in zip(codes, prov["daycase_shift"])},
        },
        "virtual_ward": {
            "providers": dict(VW_PROVIDERS),
            "pathways": {k: list(v) for k, v in VW_PATHWAYS.items()},
            "n_treated": int(tr.sum()),
            "n_eligible": int(elig.sum()),
            "n_step_up": int(len(su["start"])),
            "att_acute_los_days": round(float((sp["los"][tr] - sp["y0"][tr]).mean()), 4),
            "att_total_los_days": round(float((sp["los"][tr] + sp["vw_days"][tr] - sp["y0"][tr]).mean()), 4),
            "att_readmission_30d_rd": round(float((sp["p_r1"][tr] - sp["p_r0"][tr]).mean()), 4),
            "readmission_odds_ratio": vw["readmission_or"],
            "naive_acute_los_difference_days": round(naive, 4),
            "naive_acute_los_difference_all_controls_days": round(naive_all, 4),
            "los_reduction_fraction": VW_LOS_REDUCTION,
            **_time_zero_truths(sp, tr, vw),
            "selection_model": {**VW_SELECTION, "pathway": dict(VW_PATHWAY_TERM)},
        },
        "outcomes": {
            "pathways": outcome_truth,
            "provider_gain_effect": {c: round(float(g), 4) for c, g in zip(codes, prov["gain_effect"])},
            "provider_cost_multiplier": {c: round(float(m), 4) for c, m in zip(codes, prov["cost_mult"])},
            "deprivation_gradient_before": OUTCOME_DEPRIVATION_GRADIENT,
            "high_cost_low_gain": HIGH_COST_LOW_GAIN,
            "low_cost_high_gain": LOW_COST_HIGH_GAIN,
        },
    }
    return {
        "spells": spells,
        "virtual_ward": virtual_ward,
        "outcomes": outcomes,
        "deaths": deaths,
        "truth": _finite(truth),
    }


def _readmission_gap_cdf(g: np.ndarray) -> np.ndarray:
    """P(gap <= g) for the readmission gap 1 + floor(28 u^1.6) days after the end of care."""
    g = np.asarray(g, dtype=float)
    return np.where(g < 1, 0.0, np.minimum(1.0, np.clip(g, 1, None) / 28.0) ** (1 / 1.6))


def _time_zero_truths(sp: dict[str, np.ndarray], tr: np.ndarray, vw: dict[str, Any]) -> dict[str, Any]:
    """Truths of the target-trial outcomes, counted from time zero (the decision day).

    Over the treated: the expected risk of an emergency readmission admitted
    within 30 days of time zero with the ward minus without it (exact over the
    readmission gap), and the same for death; the decision days used.
    """
    if not tr.any():
        return {
            "step_down": vw["step_down"],
            "decision_days": list(vw["decision_days"]),  # no treated spells
            "att_readmission_30d_from_time_zero_rd": float("nan"),
            "att_death_30d_rd": float("nan"),
        }
    k = sp["decision"][tr].astype(float)
    mid_stay = vw["step_down"] == "mid_stay"
    # the readmission clock: from the acute discharge (mid-stay economy, escalations count) or
    # from the end of care (the shipped economy); deaths on the virtual ward at its end
    off1 = sp["los"][tr] - k + (0 if mid_stay else sp["vw_days"][tr])
    off0 = sp["y0"][tr] - k
    end1 = sp["los"][tr] - k + sp["vw_days"][tr]
    alive = sp["death_day"][tr] < 0
    w = READMISSION_WINDOW - 1
    r1 = alive * sp["p_r1"][tr] * _readmission_gap_cdf(w - off1)
    r0 = alive * sp["p_r0"][tr] * _readmission_gap_cdf(w - off0)
    d1 = ~alive & (end1 <= w)
    d0 = ~alive & (off0 <= w)
    return {
        "step_down": vw["step_down"],
        "decision_days": list(vw["decision_days"]) if mid_stay else [0, 0],
        "att_readmission_30d_from_time_zero_rd": round(float((r1 - r0).mean()), 4),
        "att_death_30d_rd": round(float((d1.astype(float) - d0).mean()), 4),
    }


def write_sample(
    out_dir: str | Path,
    seed: int = 2026,
    n_spells: int = 50_000,
    step_down: str = "admission",
    readmission_or: float | None = None,
    fmt: str = "csv",
) -> dict[str, Path]:
    """Write ``spells``, ``virtual_ward``, ``outcomes`` (and ``deaths``) plus ``truth.json`` to ``out_dir``.

    ``fmt`` is ``"csv"`` (ISO dates, yyyy-mm-dd; the same seed gives
    byte-identical files) or ``"parquet"`` (typed columns). The deaths table
    is written in the ``"mid_stay"`` mode, whose evaluation counts deaths after
    time zero; the shipped sample (``"admission"``) has none. ``step_down`` and
    ``readmission_or`` as in :func:`simulate_economy`. Returns the paths written.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = simulate_economy(n_spells=n_spells, seed=seed, step_down=step_down, readmission_or=readmission_or)
    tables = ["spells", "virtual_ward", "outcomes"] + (["deaths"] if step_down == "mid_stay" else [])
    paths = {}
    for name in tables:
        p = out / f"{name}.{fmt}"
        if fmt == "csv":
            res[name].to_csv(p, index=False, date_format="%Y-%m-%d", lineterminator="\n")
        else:
            res[name].to_parquet(p, index=False)
        paths[name] = p
    p = out / "truth.json"
    p.write_text(
        json.dumps(res["truth"], indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    paths["truth"] = p
    return paths


def write_spells_file(
    path: str | Path, n_spells: int, seed: int = 2026, fmt: str = "parquet", chunk_spells: int = 1_000_000
) -> Path:
    """Write a national-size spells table of exactly ``n_spells`` rows (Parquet or CSV).

    Patients are simulated in independent chunks (about ``chunk_spells``
    spells each, one child seed per chunk), so memory stays bounded; patient
    and spell numbers run on across chunks. Within a chunk, spells are in
    admission date order.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_chunks = max(1, math.ceil(n_spells / chunk_spells))
    sizes = [n_spells // n_chunks + (1 if k < n_spells % n_chunks else 0) for k in range(n_chunks)]
    prov, ss_main, _ = _seeds(seed)
    tab = _tables()
    seeds = [ss_main] if n_chunks == 1 else ss_main.spawn(n_chunks)
    pwidth = max(7, len(str(n_spells)))
    swidth = max(8, len(str(n_spells)))
    writer = None
    patient_offset, spell_offset = 0, 0
    try:
        for size, s in zip(sizes, seeds):
            sp, _ = _simulate_spells_core(size, s, prov, tab)
            _, pno = np.unique(sp["patient"], return_inverse=True)
            order = np.lexsort((sp["patient"], sp["provider"], sp["adm"]))
            sp = {k: v[order] for k, v in sp.items()}
            pno = pno[order]
            table = _spells_table(
                sp,
                prov,
                tab,
                pno + 1 + patient_offset,
                np.arange(1, len(order) + 1) + spell_offset,
                pwidth,
                swidth,
            )
            patient_offset += int(pno.max()) + 1
            spell_offset += len(order)
            if writer is None:
                if fmt == "parquet":
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                else:
                    writer = pacsv.CSVWriter(
                        path, table.schema, write_options=pacsv.WriteOptions(quoting_style="needed")
                    )
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path
