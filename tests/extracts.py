"""Extracts shaped as HES and SUS+ deliver them, built from the sample spells (shared by issue 16's tests).

:func:`hes_episodes` splits spells into consultant episodes with HES APC
names (PROCODE3, PROVSPNO, EPIORDER, EPISTART, EPIEND, ADMIDATE, DISDATE,
DIAG_4_01 ...), dates as dd/mm/yyyy and no frailty score; secondary
diagnoses come from a small set of codes whose HFRS points and Charlson
weights are written out here by hand (Gilbert 2018; Quan 2005 with Charlson
1987 weights), so the expected scores are known without the code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import io

#: Every code the test extracts use -> (HFRS category, its points; Charlson condition, its weight), worked out
#: by hand from Gilbert et al. 2018 (supplementary table) and Quan et al. 2005 with Charlson's 1987 weights.
#: The sample's primary diagnoses first, then the secondary codes the extract adds.
HAND_CODES: dict[str, tuple[str | None, float, str | None, int]] = {
    "N390": ("N39", 3.2, None, 0),
    "H251": (None, 0, None, 0),
    "H259": (None, 0, None, 0),
    "A419": ("A41", 1.6, None, 0),
    "R101": (None, 0, None, 0),
    "R104": (None, 0, None, 0),
    "I489": (None, 0, None, 0),
    "R074": (None, 0, None, 0),
    "R073": (None, 0, None, 0),
    "D126": (None, 0, None, 0),
    "K573": (None, 0, None, 0),
    "K635": (None, 0, None, 0),
    "D229": (None, 0, None, 0),
    "C443": (None, 0, None, 0),  # C44 (other skin) is not a Charlson cancer
    "I64X": (None, 0, "cevd", 1),
    "K402": (None, 0, None, 0),
    "J181": ("J18", 1.1, None, 0),
    "I639": ("I63", 0.8, "cevd", 1),
    "J159": (None, 0, None, 0),
    "J22X": ("J22", 0.7, None, 0),
    "J101": (None, 0, None, 0),
    "J189": ("J18", 1.1, None, 0),
    "L031": ("L03", 2.0, None, 0),
    "L039": ("L03", 2.0, None, 0),
    "K409": (None, 0, None, 0),
    "I501": (None, 0, "chf", 1),
    "I209": (None, 0, None, 0),
    "K802": (None, 0, None, 0),
    "K801": (None, 0, None, 0),
    "I251": (None, 0, None, 0),  # I25.1: neither old infarction (I25.2) nor cardiomyopathy (I25.5)
    "M179": (None, 0, None, 0),
    "M161": (None, 0, None, 0),
    "M169": (None, 0, None, 0),
    "M171": (None, 0, None, 0),
    "I500": (None, 0, "chf", 1),
    "I509": (None, 0, "chf", 1),
    "R268": ("R26", 2.6, None, 0),
    "R262": ("R26", 2.6, None, 0),
    "J449": (None, 0, "copd", 1),
    "J440": (None, 0, "copd", 1),
    "J441": (None, 0, "copd", 1),
    "R54X": ("R54", 2.2, None, 0),
    "S721": ("S72", 1.4, None, 0),
    "S720": ("S72", 1.4, None, 0),
    "T391": (None, 0, None, 0),
    "T424": (None, 0, None, 0),
    "J351": (None, 0, None, 0),
    "J350": (None, 0, None, 0),
    "J219": (None, 0, None, 0),
    # secondary codes added by the test extracts
    "F009": ("F00", 7.1, "dementia", 1),
    "R296": ("R29", 3.6, None, 0),
    "I10X": (None, 0, None, 0),
    "C787": (None, 0, "metacanc", 6),
    "N184": ("N18", 1.4, "rend", 2),
    "Z539": (None, 0, None, 0),
}
SECONDARY_CODES = ["F009", "R296", "N390", "J181", "I10X", "I500", "C787", "N184"]
#: Primary diagnosis of episodes after the first (not scored by either index).
LATER_PRIMARY = "Z539"


def hand_scores(codes: list[str]) -> tuple[float, int]:
    """HFRS and Charlson index of a spell's codes from :data:`HAND_CODES`: each category or condition once."""
    categories = {HAND_CODES[c][0]: HAND_CODES[c][1] for c in codes if HAND_CODES[c][0]}
    conditions = {HAND_CODES[c][2]: HAND_CODES[c][3] for c in codes if HAND_CODES[c][2]}
    return round(sum(categories.values()), 1), int(sum(conditions.values()))


def sample_spells(n: int | None = None) -> pd.DataFrame:
    """The shipped sample spells as text (the first ``n``)."""
    raw = pd.read_csv(io.sample_path("spells"), dtype=str, keep_default_na=False)
    return raw if n is None else raw.head(n).copy()


def uk_date(iso: pd.Series) -> pd.Series:
    return pd.to_datetime(iso).dt.strftime("%d/%m/%Y")


def hes_episodes(spells: pd.DataFrame, seed: int = 16) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(episode-level HES extract, the equivalent spell-level file built by hand).

    Each spell becomes 1 to 3 episodes: the first carries the admission
    details and the spell's primary diagnosis, the last the discharge; the
    episodes split the stay at whole days. Secondary diagnoses are drawn from
    :data:`SECONDARY_CODES`, the first repeated on the last episode (it
    counts once). The spell-level file has the sample's columns with frailty_score
    and charlson_index worked out from :data:`HAND_CODES`.
    """
    rng = np.random.default_rng(seed)
    episodes, truth = [], []
    for i, s in enumerate(spells.itertuples(index=False)):
        adm, dis = pd.Timestamp(s.admission_date), pd.Timestamp(s.discharge_date)
        los = (dis - adm).days
        k = int(min(rng.integers(1, 4), los + 1))
        cuts = sorted(rng.choice(np.arange(1, los + 1), size=k - 1, replace=False)) if k > 1 else []
        starts = [adm] + [adm + pd.Timedelta(days=int(c)) for c in cuts]
        ends = starts[1:] + [dis]
        chosen = list(rng.choice(SECONDARY_CODES, size=int(rng.integers(0, 4)), replace=False))
        hfrs, charlson = hand_scores([s.primary_diagnosis, LATER_PRIMARY, *chosen])
        for j, (a, b) in enumerate(zip(starts, ends)):
            last = j == k - 1
            # every secondary code on the first episode; the first of them repeated on the last
            secondary = chosen if j == 0 else (chosen[:1] if last else [])
            row = {
                "EPIKEY": f"{9000000 + len(episodes)}",
                "HESID": s.patient_id,
                "PROCODE3": s.provider_code,
                "PROVSPNO": f"SP{i:06d}",
                "EPIORDER": str(j + 1),
                "EPISTAT": "3",
                "EPISTART": a.strftime("%d/%m/%Y"),
                "EPIEND": b.strftime("%d/%m/%Y"),
                "ADMIDATE": adm.strftime("%d/%m/%Y"),
                "DISDATE": dis.strftime("%d/%m/%Y") if last else "",
                "ADMIMETH": s.admission_method,
                "CLASSPAT": s.patient_classification,
                "STARTAGE": s.age,
                "SEX": s.sex,
                "SUSHRG": s.hrg if last else "",
                "DISMETH": s.discharge_method if last else "",
                "IMD04_DECILE": s.imd_decile,
                "DIAG_4_01": s.primary_diagnosis if j == 0 else LATER_PRIMARY,
            }
            for p in range(2, 7):
                row[f"DIAG_4_{p:02d}"] = secondary[p - 2] if p - 2 < len(secondary) else ""
            episodes.append(row)
        spell = {k: v for k, v in s._asdict().items() if k not in ("frailty_score", "spell_cost")}
        truth.append({**spell, "frailty_score": f"{hfrs:.1f}", "charlson_index": str(charlson)})
    hes = pd.DataFrame(episodes)
    by_hand = pd.DataFrame(truth)
    return hes, by_hand


def sus_spells(hes: pd.DataFrame, by_hand: pd.DataFrame) -> pd.DataFrame:
    """The spells of :func:`hes_episodes` as a SUS+ / NCDR APCS extract: its own names, no --map needed.

    ``Der_Diagnosis_All`` concatenates every episode's codes (``||`` between
    episodes, ``,`` between codes, as in NCDR); dates come as SQL Server
    writes them (``yyyy-mm-dd 00:00:00.000``); no IMD column.
    """
    ep = hes.copy()
    ep["_order"] = ep["EPIORDER"].astype(int)
    ep = ep.sort_values(["PROVSPNO", "_order"])
    diag_cols = [c for c in ep.columns if c.startswith("DIAG_4_")]
    ep["_codes"] = ep[diag_cols].apply(lambda r: " ,".join(c for c in r if isinstance(c, str) and c), axis=1)
    joined = ep.groupby("PROVSPNO", sort=False)["_codes"].apply(lambda s: "||" + "||".join(s))
    spells = by_hand.reset_index(drop=True)
    when = lambda iso: pd.to_datetime(iso).dt.strftime("%Y-%m-%d 00:00:00.000")  # noqa: E731
    return pd.DataFrame(
        {
            "APCS_Ident": [f"{480000000000 + 7919 * i}" for i in range(len(spells))],  # bigints, as NCDR
            "Der_Pseudo_NHS_Number": spells["patient_id"],
            "Der_Provider_Code": spells["provider_code"],
            "Admission_Date": when(spells["admission_date"]),
            "Discharge_Date": when(spells["discharge_date"]),
            "Admission_Method": spells["admission_method"],
            "Patient_Classification": spells["patient_classification"],
            "Der_Age_at_CDS_Activity_Date": spells["age"],
            "Sex": spells["sex"],
            "Der_Primary_Diagnosis_Code": spells["primary_diagnosis"],
            "Spell_Core_HRG": spells["hrg"],
            "Discharge_Method": spells["discharge_method"],
            "Der_Diagnosis_All": joined.loc[[f"SP{i:06d}" for i in range(len(spells))]].to_numpy(),
        }
    )
