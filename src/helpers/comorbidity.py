"""Frailty and comorbidity scores from ICD-10 diagnoses: HFRS and the Charlson index.

**Hospital Frailty Risk Score** (Gilbert T, Neuburger J, Kraindler J, et al.
Development and validation of a Hospital Frailty Risk Score focusing on older
people in acute care settings using electronic hospital records: an
observational study. Lancet 2018;391:1775-82, supplementary table): 109
three-character ICD-10 categories, each with its points; a patient's score is
the sum of the points of the distinct categories recorded, in any diagnosis
position. Risk groups: low < 5, intermediate 5-15, high > 15
(:data:`helpers.casemix.FRAILTY_BREAKS`). The paper looks back over two years
of admissions; here the score is computed from the diagnoses of the spell
itself (all its episodes), as an extract of one period allows. The points
below were cross-checked against the table shipped with the R package
``hfrs`` (J van Oppen, ``inst/extdata/points.tsv``); unlike that package,
which adds the points once per diagnosis column, a category recorded twice in
a spell counts once, as in the paper.

**Charlson comorbidity index** with the ICD-10 coding algorithm of Quan H,
Sundararajan V, Halfon P, et al. Coding algorithms for defining comorbidities
in ICD-9-CM and ICD-10 administrative data. Med Care 2005;43:1130-9 (the
coding SHMI's comorbidity adjustment is based on), and Charlson's original
weights (Charlson ME, et al. J Chron Dis 1987;40:373-83): 1 for myocardial
infarction, heart failure, peripheral vascular disease, cerebrovascular
disease, dementia, chronic pulmonary disease, rheumatic disease, peptic
ulcer, mild liver disease and diabetes without complications; 2 for diabetes
with complications, hemiplegia or paraplegia, renal disease and cancer; 3 for
moderate or severe liver disease; 6 for metastatic solid tumour and AIDS/HIV.
A condition and its more severe form count once, at the higher weight (mild
and severe liver disease, diabetes without and with complications, cancer and
metastatic cancer). The code lists were cross-checked against the R package
``comorbidity`` (A Gasparini, ``data-raw/make-mapping.R``, map
``charlson_icd10_quan``). Bands of the index for case mix: 0, 1-2, 3-4, 5+.

Codes are matched on their leading characters after removing dots, spaces and
dashes and upper-casing (``I10X``, ``I10.X`` and ``i10`` are all I10).

Diagnoses come wide (one column per position: HES ``DIAG_4_01`` ...
``DIAG_4_20``), long (one row per key and code) or concatenated in one text
column (NCDR's ``Der_Diagnosis_All``, ``"||E119 ,E780 ||I801"``);
:func:`long_from_wide` and :func:`long_from_concatenated` turn the first and
last into the second, and :func:`scores` scores the long form.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

#: HFRS points by three-character ICD-10 category (Gilbert et al. 2018, 109 categories).
HFRS_POINTS: dict[str, float] = {
    "F00": 7.1,
    "G81": 4.4,
    "G30": 4.0,
    "I69": 3.7,
    "R29": 3.6,
    "N39": 3.2,
    "F05": 3.2,
    "W19": 3.2,
    "S00": 3.2,
    "R31": 3.0,
    "B96": 2.9,
    "R41": 2.7,
    "R26": 2.6,
    "I67": 2.6,
    "R56": 2.6,
    "R40": 2.5,
    "T83": 2.4,
    "S06": 2.4,
    "S42": 2.3,
    "E87": 2.3,
    "M25": 2.3,
    "E86": 2.3,
    "R54": 2.2,
    "Z50": 2.1,
    "F03": 2.1,
    "W18": 2.1,
    "Z75": 2.0,
    "F01": 2.0,
    "S80": 2.0,
    "L03": 2.0,
    "H54": 1.9,
    "E53": 1.9,
    "Z60": 1.8,
    "G20": 1.8,
    "R55": 1.8,
    "S22": 1.8,
    "K59": 1.8,
    "N17": 1.8,
    "L89": 1.7,
    "Z22": 1.7,
    "B95": 1.7,
    "L97": 1.6,
    "R44": 1.6,
    "K26": 1.6,
    "I95": 1.6,
    "N19": 1.6,
    "A41": 1.6,
    "Z87": 1.5,
    "J96": 1.5,
    "X59": 1.5,
    "M19": 1.5,
    "G40": 1.5,
    "M81": 1.4,
    "S72": 1.4,
    "S32": 1.4,
    "E16": 1.4,
    "R94": 1.4,
    "N18": 1.4,
    "R33": 1.3,
    "R69": 1.3,
    "N28": 1.3,
    "R32": 1.2,
    "G31": 1.2,
    "Y95": 1.2,
    "S09": 1.2,
    "R45": 1.2,
    "G45": 1.2,
    "Z74": 1.1,
    "M79": 1.1,
    "W06": 1.1,
    "S01": 1.1,
    "A04": 1.1,
    "A09": 1.1,
    "J18": 1.1,
    "J69": 1.0,
    "R47": 1.0,
    "E55": 1.0,
    "Z93": 1.0,
    "R02": 1.0,
    "R63": 0.9,
    "H91": 0.9,
    "W10": 0.9,
    "W01": 0.9,
    "E05": 0.9,
    "M41": 0.9,
    "R13": 0.8,
    "Z99": 0.8,
    "U80": 0.8,
    "M80": 0.8,
    "K92": 0.8,
    "I63": 0.8,
    "N20": 0.7,
    "F10": 0.7,
    "Y84": 0.7,
    "R00": 0.7,
    "J22": 0.7,
    "Z73": 0.6,
    "R79": 0.6,
    "Z91": 0.5,
    "S51": 0.5,
    "F32": 0.5,
    "M48": 0.5,
    "E83": 0.4,
    "M15": 0.4,
    "D64": 0.4,
    "L08": 0.4,
    "R11": 0.3,
    "K52": 0.3,
    "R50": 0.1,
}

#: Charlson conditions: ICD-10 code prefixes of Quan et al. (2005), as in R's comorbidity (charlson_icd10_quan).
CHARLSON_CODES: dict[str, tuple[str, ...]] = {
    "ami": ("I21", "I22", "I252"),
    "chf": (
        "I099",
        "I110",
        "I130",
        "I132",
        "I255",
        "I420",
        "I425",
        "I426",
        "I427",
        "I428",
        "I429",
        "I43",
        "I50",
        "P290",
    ),
    "pvd": (
        "I70",
        "I71",
        "I731",
        "I738",
        "I739",
        "I771",
        "I790",
        "I792",
        "K551",
        "K558",
        "K559",
        "Z958",
        "Z959",
    ),
    "cevd": ("G45", "G46", "H340", "I60", "I61", "I62", "I63", "I64", "I65", "I66", "I67", "I68", "I69"),
    "dementia": ("F00", "F01", "F02", "F03", "F051", "G30", "G311"),
    "copd": (
        "I278",
        "I279",
        "J40",
        "J41",
        "J42",
        "J43",
        "J44",
        "J45",
        "J46",
        "J47",
        "J60",
        "J61",
        "J62",
        "J63",
        "J64",
        "J65",
        "J66",
        "J67",
        "J684",
        "J701",
        "J703",
    ),
    "rheumd": ("M05", "M06", "M315", "M32", "M33", "M34", "M351", "M353", "M360"),
    "pud": ("K25", "K26", "K27", "K28"),
    "mld": (
        "B18",
        "K700",
        "K701",
        "K702",
        "K703",
        "K709",
        "K713",
        "K714",
        "K715",
        "K717",
        "K73",
        "K74",
        "K760",
        "K762",
        "K763",
        "K764",
        "K768",
        "K769",
        "Z944",
    ),
    "diab": (
        "E100",
        "E101",
        "E106",
        "E108",
        "E109",
        "E110",
        "E111",
        "E116",
        "E118",
        "E119",
        "E120",
        "E121",
        "E126",
        "E128",
        "E129",
        "E130",
        "E131",
        "E136",
        "E138",
        "E139",
        "E140",
        "E141",
        "E146",
        "E148",
        "E149",
    ),
    "diabwc": (
        "E102",
        "E103",
        "E104",
        "E105",
        "E107",
        "E112",
        "E113",
        "E114",
        "E115",
        "E117",
        "E122",
        "E123",
        "E124",
        "E125",
        "E127",
        "E132",
        "E133",
        "E134",
        "E135",
        "E137",
        "E142",
        "E143",
        "E144",
        "E145",
        "E147",
    ),
    "hp": ("G041", "G114", "G801", "G802", "G81", "G82", "G830", "G831", "G832", "G833", "G834", "G839"),
    "rend": (
        "I120",
        "I131",
        "N032",
        "N033",
        "N034",
        "N035",
        "N036",
        "N037",
        "N052",
        "N053",
        "N054",
        "N055",
        "N056",
        "N057",
        "N18",
        "N19",
        "N250",
        "Z490",
        "Z491",
        "Z492",
        "Z940",
        "Z992",
    ),
    "canc": tuple(
        f"C{n:02d}"
        for n in (
            *range(0, 27),
            *range(30, 35),
            *range(37, 42),
            43,
            *range(45, 59),
            *range(60, 77),
            *range(81, 86),
            88,
            *range(90, 98),
        )
    ),
    "msld": ("I850", "I859", "I864", "I982", "K704", "K711", "K721", "K729", "K765", "K766", "K767"),
    "metacanc": ("C77", "C78", "C79", "C80"),
    "aids": ("B20", "B21", "B22", "B24"),
}

#: Charlson's original weights (1987), by condition.
CHARLSON_WEIGHTS: dict[str, int] = {
    "ami": 1,
    "chf": 1,
    "pvd": 1,
    "cevd": 1,
    "dementia": 1,
    "copd": 1,
    "rheumd": 1,
    "pud": 1,
    "mld": 1,
    "diab": 1,
    "diabwc": 2,
    "hp": 2,
    "rend": 2,
    "canc": 2,
    "msld": 3,
    "metacanc": 6,
    "aids": 6,
}

#: A more severe form (key) replaces the milder one (value) when both are recorded.
CHARLSON_HIERARCHY: dict[str, str] = {"msld": "mld", "diabwc": "diab", "metacanc": "canc"}

#: Bands of the Charlson index used as a case-mix term.
CHARLSON_BREAKS = [-np.inf, 1, 3, 5, np.inf]
CHARLSON_LABELS = ["0", "1-2", "3-4", "5+"]

_NOT_CODE = re.compile(r"[^A-Z0-9]")


def normalise_codes(codes: pd.Series) -> pd.Series:
    """ICD-10 codes upper-cased with dots, spaces and dashes removed; blanks become missing."""
    text = codes.astype("str").str.upper().str.replace(_NOT_CODE, "", regex=True)
    return text.where(codes.notna() & (text.str.len() >= 3), None)


def long_from_wide(frame: pd.DataFrame, columns: Sequence[str], key: str | None = None) -> pd.DataFrame:
    """Diagnoses held one column per position, as one row per key, position and code.

    ``key`` names the column that identifies a row (default: the frame's
    index). Positions count from 1 in the order of ``columns``. Blank cells
    are left out.
    """
    keys = frame[key].to_numpy() if key else frame.index.to_numpy()
    parts = []
    for position, col in enumerate(columns, start=1):
        parts.append(pd.DataFrame({"key": keys, "position": position, "code": frame[col].to_numpy()}))
    if not parts:
        return pd.DataFrame(
            {
                "key": pd.Series(dtype=object),
                "position": pd.Series(dtype="int64"),
                "code": pd.Series(dtype="str"),
            }
        )
    long = pd.concat(parts, ignore_index=True)
    long["code"] = normalise_codes(long["code"])
    return long.loc[long["code"].notna()].reset_index(drop=True)


def long_from_concatenated(frame: pd.DataFrame, column: str, key: str | None = None) -> pd.DataFrame:
    """Diagnoses concatenated in one text column (NCDR ``Der_Diagnosis_All``) as one row per code.

    Codes are separated by anything that is not a letter, a digit or a dot
    (``"||E119 ,E780 ||I801"`` gives E119, E780, I801); positions count from 1.
    """
    keys = frame[key] if key else pd.Series(frame.index, index=frame.index)
    text = frame[column].astype("str").where(frame[column].notna(), "")
    split = text.str.upper().str.split(r"[^A-Z0-9.]+", regex=True)
    long = pd.DataFrame({"key": keys.to_numpy(), "code": split.to_numpy()}).explode("code")
    long["code"] = normalise_codes(long["code"].astype("str").where(long["code"].notna(), None))
    long = long.loc[long["code"].notna()].copy()
    long["position"] = long.groupby("key", sort=False).cumcount() + 1
    return long[["key", "position", "code"]].reset_index(drop=True)


def hfrs(long: pd.DataFrame, key: str = "key", code: str = "code") -> pd.Series:
    """Hospital Frailty Risk Score by key: the sum of the points of the distinct categories recorded.

    ``long`` has one row per key and diagnosis (see :func:`long_from_wide`).
    Keys with no scoring code score 0; keys absent from ``long`` are absent from
    the result.
    """
    category = normalise_codes(long[code]).str.slice(0, 3)
    points = category.map(HFRS_POINTS)
    found = pd.DataFrame(
        {"key": long[key].to_numpy(), "category": category.to_numpy(), "points": points.to_numpy()}
    )
    found = found.dropna(subset=["points"]).drop_duplicates(["key", "category"])
    total = found.groupby("key", sort=False)["points"].sum()
    keys = pd.unique(long[key].to_numpy())
    return total.reindex(keys, fill_value=0.0).round(1).rename("frailty_score")


def charlson_conditions(long: pd.DataFrame, key: str = "key", code: str = "code") -> pd.DataFrame:
    """One row per key, one boolean column per Charlson condition (before the hierarchy)."""
    codes = normalise_codes(long[code]).fillna("")
    keys = pd.unique(long[key].to_numpy())
    out = pd.DataFrame(index=pd.Index(keys, name=key))
    for condition, prefixes in CHARLSON_CODES.items():
        hit = codes.str.startswith(prefixes)
        out[condition] = out.index.isin(long.loc[hit.to_numpy(), key].to_numpy())
    return out


def charlson(long: pd.DataFrame, key: str = "key", code: str = "code") -> pd.Series:
    """Charlson comorbidity index by key (Quan 2005 ICD-10 codes, Charlson 1987 weights, hierarchy applied)."""
    flags = charlson_conditions(long, key, code)
    for severe, mild in CHARLSON_HIERARCHY.items():
        flags[mild] = flags[mild] & ~flags[severe]
    weights = pd.Series(CHARLSON_WEIGHTS)
    return (flags[list(weights.index)].astype(int) @ weights).astype("int64").rename("charlson_index")


def scores(long: pd.DataFrame, key: str = "key", code: str = "code") -> pd.DataFrame:
    """HFRS (``frailty_score``) and Charlson index (``charlson_index``) by key."""
    return pd.concat([hfrs(long, key, code), charlson(long, key, code)], axis=1)


def charlson_band(index: pd.Series) -> pd.Series:
    """The Charlson index in the bands 0, 1-2, 3-4, 5+ (missing stays missing)."""
    band = pd.cut(pd.to_numeric(index), CHARLSON_BREAKS, right=False, labels=CHARLSON_LABELS).astype("str")
    return band.where(index.notna(), None)


# --------------------------------------------------------------------------- finding diagnosis columns
#: Wide diagnosis columns: a stem and a position number (HES DIAG_4_01, DIAG_3_02, DIAG_01; SUS-style
#: Primary_Diagnosis_Code / Secondary_Diagnosis_Code_1 ...). Matched ignoring case.
WIDE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^DIAG_4_(\d{1,2})$", re.I),
    re.compile(r"^DIAG_3_(\d{1,2})$", re.I),
    re.compile(r"^DIAG_(\d{1,2})$", re.I),
    re.compile(r"^DIAG(?:NOSIS)?_?CODE_?(\d{1,2})$", re.I),
    re.compile(r"^SECONDARY_DIAGNOSIS_CODE_?(\d{1,2})$", re.I),
)
#: Single columns holding every diagnosis of a record (NCDR / SUS+ derived fields).
CONCATENATED_NAMES: tuple[str, ...] = ("DER_DIAGNOSIS_ALL", "DIAGNOSIS_ALL", "ALL_DIAGNOSES")
#: Single columns holding the primary diagnosis, scored together with the wide secondary ones.
PRIMARY_NAMES: tuple[str, ...] = ("PRIMARY_DIAGNOSIS_CODE", "DER_PRIMARY_DIAGNOSIS_CODE", "PRIMARY_DIAGNOSIS")


def diagnosis_columns(columns: Iterable[str]) -> tuple[list[str], str | None]:
    """The wide diagnosis columns of a file (in position order) and its concatenated column, if any.

    Only one family of wide columns is used: the first of :data:`WIDE_PATTERNS`
    that matches (DIAG_4_nn before DIAG_3_nn, so a HES extract carrying both is
    not counted twice), when it has secondary positions: a primary diagnosis
    alone gives no score. A primary-diagnosis column (:data:`PRIMARY_NAMES`) is
    put first when the wide family has no position 1 or numbers the secondary
    diagnoses only (``Secondary_Diagnosis_Code_1`` ...).
    """
    columns = [str(c) for c in columns]
    wide: list[str] = []
    for pattern in WIDE_PATTERNS:
        found = sorted(
            ((int(m.group(1)), c) for c in columns if (m := pattern.match(c.strip()))), key=lambda t: t[0]
        )
        if found:
            wide = [c for _, c in found]
            if found[0][0] != 1 or pattern is WIDE_PATTERNS[-1]:  # no position 1, or secondary positions only
                primary = [c for c in columns if c.strip().upper() in PRIMARY_NAMES]
                wide = primary[:1] + wide
            break
    if len(wide) < 2:  # a primary diagnosis alone is not a record of comorbidity: no score from it
        wide = []
    concatenated = next((c for c in columns if c.strip().upper() in CONCATENATED_NAMES), None)
    return wide, concatenated


def scores_from_raw(raw: pd.DataFrame) -> pd.DataFrame | None:
    """HFRS and Charlson index of each row of a file read as text, or None without diagnoses.

    Diagnoses are found by :func:`diagnosis_columns`: the wide columns, else the
    concatenated one. The result has the frame's index and the columns
    ``frailty_score`` and ``charlson_index``; a row with no diagnosis at all
    scores 0.
    """
    wide, concatenated = diagnosis_columns(raw.columns)
    if wide:
        long = long_from_wide(raw, wide)
    elif concatenated is not None:
        long = long_from_concatenated(raw, concatenated)
    else:
        return None
    out = scores(long).reindex(raw.index)
    out["frailty_score"] = out["frailty_score"].fillna(0.0).astype("float64")
    out["charlson_index"] = out["charlson_index"].fillna(0).astype("int64")
    return out


def describe_source(columns: Iterable[str]) -> str:
    """Where the diagnoses of a file were read from, in words (for the report)."""
    wide, concatenated = diagnosis_columns(columns)
    if wide:
        return f"{len(wide)} diagnosis columns ({wide[0]} to {wide[-1]})"
    if concatenated is not None:
        return f"the concatenated diagnosis column {concatenated}"
    return "no diagnosis columns"
