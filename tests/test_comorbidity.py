"""HFRS and the Charlson index from ICD-10 diagnoses, on examples worked by hand (issue 16).

Reference tables: Gilbert et al., Lancet 2018;391:1775-82 (HFRS, 109
categories); Quan et al., Med Care 2005;43:1130-9 (Charlson ICD-10 codes)
with Charlson's 1987 weights.
"""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import casemix, comorbidity


def long(rows: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame([{"key": k, "code": c} for k, codes in rows.items() for c in codes])


def test_hfrs_table_is_the_published_one():
    points = comorbidity.HFRS_POINTS
    assert len(points) == 109
    # the top and bottom of the published table, and a few in between
    assert points["F00"] == 7.1 and points["G81"] == 4.4 and points["G30"] == 4.0 and points["R50"] == 0.1
    assert points["R29"] == 3.6 and points["N39"] == 3.2 and points["E87"] == 2.3 and points["J18"] == 1.1
    assert round(sum(points.values()), 1) == 173.2
    assert all(len(k) == 3 for k in points)


def test_hfrs_hand_worked():
    # A: dementia in Alzheimer's (F00.1, 7.1) + fall (W19, 3.2) + UTI (N39.0, 3.2) + hypertension (I10, 0) = 13.5
    # B: the same category twice (R29.6 and R29.8) counts once: 3.6; plus delirium F05.9 3.2 = 6.8
    # C: nothing on the list: 0
    # D: codes written with dots, lower case and HES padding: "f03.x", "E86X", "R54 " = 2.1 + 2.3 + 2.2 = 6.6
    scores = comorbidity.hfrs(
        long(
            {
                "A": ["F001", "W19", "N39.0", "I10X"],
                "B": ["R296", "R298", "F059"],
                "C": ["K359", "Z539"],
                "D": ["f03.x", "E86X", "R54 "],
            }
        )
    )
    assert scores.to_dict() == {"A": 13.5, "B": 6.8, "C": 0.0, "D": 6.6}


def test_hfrs_risk_groups_are_gilberts():
    bands = casemix.add_casemix_bands(pd.DataFrame({"frailty_score": [0, 4.9, 5, 15, 15.1, None]}))[
        "frailty_band"
    ]
    assert bands.tolist() == ["<5", "<5", "5-15", "5-15", ">15", "missing"]


def test_charlson_hand_worked():
    # A: old MI (I25.2, 1) + heart failure (I50.0, 1) + COPD (J44.9, 1) = 3
    # B: diabetes without (E11.9, 1) and with complications (E11.2, 2): the complicated form only = 2
    # C: cancer (C18.7, 2) and liver metastasis (C78.7, 6): metastatic only = 6; plus CKD (N18.4, 2) = 8
    # D: mild (K70.3 cirrhosis, 1) and severe liver disease (I85.0 varices, 3): 3; plus dementia (F03, 1) = 4
    # E: I25.1 (not I25.2) and C44.3 (skin, not a Charlson cancer) = 0
    # F: hemiplegia G81.9 (2) + AIDS B20 (6) + peptic ulcer K25 (1) + rheumatic M05 (1) + PVD I70 (1) = 11
    scores = comorbidity.charlson(
        long(
            {
                "A": ["I252", "I500", "J449"],
                "B": ["E119", "E112"],
                "C": ["C187", "C787", "N184"],
                "D": ["K703", "I850", "F03X"],
                "E": ["I251", "C443"],
                "F": ["G819", "B20", "K25", "M059", "I702"],
            }
        )
    )
    assert scores.to_dict() == {"A": 3, "B": 2, "C": 8, "D": 4, "E": 0, "F": 11}


def test_charlson_codes_match_quan_and_the_r_package():
    codes = comorbidity.CHARLSON_CODES
    assert len(codes) == 17 and set(codes) == set(comorbidity.CHARLSON_WEIGHTS)
    # cancer: C00-C26, C30-C34, C37-C41, C43, C45-C58, C60-C76, C81-C85, C88, C90-C97 (83 categories)
    assert len(codes["canc"]) == 83 and "C44" not in codes["canc"] and "C77" not in codes["canc"]
    assert codes["metacanc"] == ("C77", "C78", "C79", "C80")
    assert sum(comorbidity.CHARLSON_WEIGHTS.values()) == 33


def test_wide_long_and_concatenated_give_the_same_scores():
    wide = pd.DataFrame(
        {
            "DIAG_4_01": ["F001", "E112", None],
            "DIAG_4_02": ["W19X", "E119", None],
            "DIAG_4_03": ["F001", None, None],
        }
    )
    cols, concatenated = comorbidity.diagnosis_columns(wide.columns)
    assert cols == ["DIAG_4_01", "DIAG_4_02", "DIAG_4_03"] and concatenated is None
    from_wide = comorbidity.scores(comorbidity.long_from_wide(wide, cols))
    ncdr = pd.DataFrame({"Der_Diagnosis_All": ["||F001 ,W19X ||F001", "||E112 ,E119", None]})
    _, concatenated = comorbidity.diagnosis_columns(ncdr.columns)
    from_text = comorbidity.scores(comorbidity.long_from_concatenated(ncdr, concatenated))
    assert from_wide.loc[0].tolist() == [10.3, 1] and from_wide.loc[1].tolist() == [0.0, 2]
    pd.testing.assert_frame_equal(from_wide, from_text.loc[from_wide.index])
    # a row with no diagnosis at all scores 0 (it is not dropped)
    raw = comorbidity.scores_from_raw(wide)
    assert raw.loc[2, "frailty_score"] == 0.0 and raw.loc[2, "charlson_index"] == 0


def test_diagnosis_columns_prefer_four_character_and_number_positions():
    cols, _ = comorbidity.diagnosis_columns(["DIAG_3_01", "DIAG_4_10", "DIAG_4_02", "DIAG_4_01", "diag_3_02"])
    assert cols == ["DIAG_4_01", "DIAG_4_02", "DIAG_4_10"]
    cols, _ = comorbidity.diagnosis_columns(["Primary_Diagnosis_Code", "Secondary_Diagnosis_Code_1"])
    assert cols == ["Primary_Diagnosis_Code", "Secondary_Diagnosis_Code_1"]
    assert comorbidity.diagnosis_columns(["age", "sex"]) == ([], None)


@pytest.mark.parametrize(
    "index, band", [(0, "0"), (1, "1-2"), (2, "1-2"), (3, "3-4"), (4, "3-4"), (5, "5+"), (12, "5+")]
)
def test_charlson_bands(index, band):
    assert comorbidity.charlson_band(pd.Series([index])).iloc[0] == band
