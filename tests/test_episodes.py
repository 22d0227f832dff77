"""Consultant episodes built into provider spells and continuous inpatient spells (issue 16).

Small HES-style extracts written out by hand, one rule per patient, read the
way ``handbook run`` reads them (``helpers.io.load_table("spells", ...)``).
"""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import derive, episodes, io, quality

COLUMNS = [
    "EPIKEY",
    "HESID",
    "PROCODE3",
    "PROVSPNO",
    "EPIORDER",
    "EPISTAT",
    "EPISTART",
    "EPIEND",
    "ADMIDATE",
    "DISDATE",
    "ADMIMETH",
    "ADMISORC",
    "DISDEST",
    "CLASSPAT",
    "STARTAGE",
    "SEX",
    "DISMETH",
    "DIAG_4_01",
    "DIAG_4_02",
]


def extract(rows: list[list[str]], tmp_path, name: str = "hes.csv") -> str:
    path = tmp_path / name
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    return str(path)


# one patient per rule; dates dd/mm/yyyy as HES extracts often come
ROWS = [
    # P1: three episodes given out of order; admission from the first, discharge from the last
    [
        "E3",
        "P1",
        "RA1",
        "100",
        "3",
        "3",
        "05/01/2024",
        "09/01/2024",
        "01/01/2024",
        "09/01/2024",
        "21",
        "19",
        "19",
        "1",
        "81",
        "2",
        "1",
        "Z539",
        "F001",
    ],
    [
        "E1",
        "P1",
        "RA1",
        "100",
        "1",
        "3",
        "01/01/2024",
        "03/01/2024",
        "01/01/2024",
        "",
        "21",
        "19",
        "",
        "1",
        "80",
        "2",
        "",
        "R074",
        "N390",
    ],
    [
        "E2",
        "P1",
        "RA1",
        "100",
        "2",
        "3",
        "03/01/2024",
        "05/01/2024",
        "01/01/2024",
        "",
        "21",
        "19",
        "",
        "1",
        "80",
        "2",
        "",
        "I219",
        "F001",
    ],
    # P2: the same provider spell number at another provider is another spell; one unfinished episode
    [
        "E4",
        "P2",
        "RB2",
        "100",
        "1",
        "3",
        "02/02/2024",
        "02/02/2024",
        "02/02/2024",
        "02/02/2024",
        "12",
        "19",
        "19",
        "2",
        "55",
        "1",
        "1",
        "K635",
        "",
    ],
    [
        "E5",
        "P2",
        "RB2",
        "200",
        "1",
        "1",
        "10/02/2024",
        "",
        "10/02/2024",
        "",
        "21",
        "19",
        "",
        "1",
        "55",
        "1",
        "",
        "J181",
        "",
    ],
    # P3: a spell still open at the end of the extract (no discharge date on its last episode)
    [
        "E6",
        "P3",
        "RA1",
        "300",
        "1",
        "3",
        "20/03/2024",
        "22/03/2024",
        "20/03/2024",
        "",
        "21",
        "19",
        "",
        "1",
        "70",
        "1",
        "",
        "J449",
        "",
    ],
    # P4: emergency at RA1, transferred to RB2 the next day (discharged to another hospital, admitted as a transfer)
    [
        "E7",
        "P4",
        "RA1",
        "400",
        "1",
        "3",
        "01/04/2024",
        "04/04/2024",
        "01/04/2024",
        "04/04/2024",
        "21",
        "19",
        "51",
        "1",
        "90",
        "2",
        "1",
        "S720",
        "R296",
    ],
    [
        "E8",
        "P4",
        "RB2",
        "401",
        "1",
        "3",
        "05/04/2024",
        "20/04/2024",
        "05/04/2024",
        "20/04/2024",
        "2B",
        "51",
        "19",
        "1",
        "90",
        "2",
        "1",
        "S720",
        "I10X",
    ],
    # P5: went home, back through A&E two days later: not a transfer (DISDEST 19, ADMISORC 51, ADMIMETH 21)
    [
        "E9",
        "P5",
        "RA1",
        "500",
        "1",
        "3",
        "01/05/2024",
        "03/05/2024",
        "01/05/2024",
        "03/05/2024",
        "21",
        "19",
        "19",
        "1",
        "60",
        "1",
        "1",
        "I500",
        "",
    ],
    [
        "E10",
        "P5",
        "RB2",
        "501",
        "1",
        "3",
        "05/05/2024",
        "08/05/2024",
        "05/05/2024",
        "08/05/2024",
        "21",
        "51",
        "19",
        "1",
        "60",
        "1",
        "1",
        "I500",
        "",
    ],
]


@pytest.fixture()
def hes(tmp_path) -> str:
    return extract(ROWS, tmp_path)


def test_episode_level_file_is_recognised_by_its_columns():
    assert episodes.is_episode_level(COLUMNS)
    assert not episodes.is_episode_level([c for c in COLUMNS if c != "EPIORDER"])
    assert not episodes.is_episode_level(pd.read_csv(io.sample_path("spells"), nrows=1).columns)


def test_provider_spells_follow_the_nhs_digital_method(hes):
    spells = io.load_table("spells", hes)
    assert (
        len(spells) == 6
    )  # P1, P2 (RB2/100), P4 x2, P5 x2; P2's unfinished episode and P3's open spell left out
    p1 = spells.loc[spells["patient_id"] == "P1"].iloc[0]
    assert p1["spell_id"] == "RA1/100"
    assert (p1["admission_date"], p1["discharge_date"]) == (
        pd.Timestamp("2024-01-01"),
        pd.Timestamp("2024-01-09"),
    )
    assert (
        p1["age"] == 80 and p1["discharge_method"] == "1"
    )  # age of the first episode, discharge of the last
    assert p1["primary_diagnosis"] == "R074"  # the first episode's
    # HFRS of P1's distinct categories R07 (0), N39 3.2, I21 (0), F00 7.1 (twice: once), Z53 (0) = 10.3;
    # Charlson: MI (I21) 1 + dementia (F00) 1 = 2
    assert p1["frailty_score"] == 10.3 and p1["charlson_index"] == 2
    assert set(spells.loc[spells["patient_id"] == "P2", "spell_id"]) == {"RB2/100"}
    assert "P3" not in set(spells["patient_id"])


def test_exclusions_flow_counts_every_episode(hes):
    flow = quality.exclusion_flow(io.load_input("spells", hes))
    steps = flow.set_index("step")
    assert steps.loc["read from hes.csv", "rows_after"] == 10
    assert steps.loc["finished episodes", "rows_excluded"] == 1
    assert steps.loc["spells that ended", "rows_excluded"] == 1
    assert steps.loc[
        "episodes to provider spells", ["rows_before", "rows_excluded", "rows_after"]
    ].tolist() == [8, 2, 6]
    assert steps.loc["analysed", "rows_after"] == 6


def test_shmi_primary_diagnosis_rule(hes):
    raw = io.read_raw(hes)
    eps = io.load_table("episodes", hes)
    first, _ = episodes.spells_from_episodes(eps)
    shmi, _ = episodes.spells_from_episodes(eps, primary_diagnosis_rule="shmi")
    p1 = lambda s: s.loc[s["patient_id"] == "P1", "primary_diagnosis"].iloc[0]  # noqa: E731
    assert p1(first) == "R074" and p1(shmi) == "I219"  # a symptom code gives way to the second episode's
    assert len(raw) == 10


def test_a_transfer_is_a_readmission_unless_linked(hes):
    raw = io.read_raw(hes)
    provider = episodes.load_spells(raw, hes).frame
    linked_loaded = episodes.load_spells(raw, hes, link_transfers=True)
    linked = linked_loaded.frame
    end = pd.Timestamp("2024-12-31")
    d = derive.add_spell_fields(provider, follow_up_end=end).set_index("spell_id")
    assert bool(
        d.loc["RA1/400", "readmit_30d"]
    )  # the transfer looks like an emergency readmission the next day
    assert bool(d.loc["RA1/500", "readmit_30d"])  # P5 really came back
    d = derive.add_spell_fields(linked, follow_up_end=end).set_index("spell_id")
    assert len(linked) == len(provider) - 1
    stay = d.loc["RA1/400"]
    assert not bool(stay["readmit_30d"])
    assert stay["provider_code"] == "RB2"  # the provider that discharged the patient
    assert (stay["admission_date"], stay["discharge_date"]) == (
        pd.Timestamp("2024-04-01"),
        pd.Timestamp("2024-04-20"),
    )
    assert stay["admission_method"] == "21" and stay["los_days"] == 19
    assert stay["frailty_score"] == pytest.approx(1.4 + 3.6)  # S72 and R29 across both spells
    assert bool(d.loc["RA1/500", "readmit_30d"])  # going home and coming back through A&E is not a transfer
    flow = quality.exclusion_flow(linked_loaded).set_index("step")
    assert flow.loc["provider spells to continuous inpatient spells", "rows_excluded"] == 1


def test_link_rules_gap_and_regular_attenders():
    base = dict(
        patient_id="P",
        provider_code="A",
        admission_method="21",
        admission_source="19",
        discharge_destination="51",
        patient_classification="1",
        _episodes=1,
        _last_row=0,
    )
    spells = pd.DataFrame(
        [
            {
                **base,
                "spell_id": "1",
                "admission_date": pd.Timestamp("2024-01-01"),
                "discharge_date": pd.Timestamp("2024-01-02"),
            },
            {
                **base,
                "spell_id": "2",
                "admission_date": pd.Timestamp("2024-01-04"),
                "discharge_date": pd.Timestamp("2024-01-05"),
                "provider_code": "B",
            },  # 2 days later: linked
            {
                **base,
                "spell_id": "3",
                "admission_date": pd.Timestamp("2024-01-08"),
                "discharge_date": pd.Timestamp("2024-01-09"),
                "provider_code": "C",
            },  # 3 days later: a new stay
            {
                **base,
                "spell_id": "4",
                "admission_date": pd.Timestamp("2024-01-09"),
                "discharge_date": pd.Timestamp("2024-01-09"),
                "provider_code": "D",
                "patient_classification": "3",
            },  # regular attender: never linked
        ]
    )
    out = episodes.link_continuous_spells(spells)
    assert out["spell_id"].tolist() == ["1", "3", "4"]
    assert out["provider_code"].tolist() == ["B", "C", "D"]


def test_bad_episode_is_reported_by_file_row(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[4][7] = "01/01/2020"  # episode end before its start, row 6 of the file
    with pytest.raises(io.InputError) as err:
        io.load_table("spells", extract(rows, tmp_path))
    text = str(err.value)
    assert "'episodes' table" in text and "episode_end" in text and "row 6" in text


def test_epikey_alone_is_not_a_spell_id(tmp_path):
    spells = pd.read_csv(io.sample_path("spells"), dtype=str, nrows=20).rename(columns={"spell_id": "EPIKEY"})
    path = tmp_path / "epikey.csv"
    spells.to_csv(path, index=False)
    with pytest.raises(io.InputError, match="spell_id"):
        io.load_table("spells", path)


def test_duckdb_engine_builds_spells_from_episodes_too(tmp_path):
    from extracts import hes_episodes, sample_spells

    from helpers import variation

    hes, _ = hes_episodes(sample_spells(3000))
    path = tmp_path / "hes_apc.csv"
    hes.to_csv(path, index=False)
    terms = ["age_band", "sex", "admission_method", "hrg", "frailty_band", "charlson_band"]
    by_duckdb = variation.prepare_variation(str(path), "los", terms, engine="duckdb")
    assert by_duckdb.model.terms == terms  # both scores computed from the diagnoses
    assert by_duckdb.model.providers["denominator"].sum() > 0
    flow = quality.exclusion_flow(by_duckdb.loaded, by_duckdb.exclusions)
    assert flow.iloc[0]["rows_after"] == len(hes)  # the flow starts from every episode


def test_hes_infant_ages_and_null_dates(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[1][9] = rows[2][9] = "01/01/1800"  # HES "not applicable" date on P1's episodes before the last
    rows[5][9] = "1801-01-01"  # P3's open spell: "not known"
    rows[3][14] = "7002"  # P2 under one year old (HES STARTAGE 7001-7007)
    spells = io.load_table("spells", extract(rows, tmp_path)).set_index("patient_id")
    expected = io.load_table("spells", extract(ROWS, tmp_path, "plain.csv")).set_index("patient_id")
    assert spells.loc["P2", "age"] == 0
    assert spells.loc["P1", "discharge_date"] == pd.Timestamp("2024-01-09")
    assert "P3" not in spells.index  # a null-coded discharge date is no discharge
    pd.testing.assert_frame_equal(spells.drop(columns="age"), expected.drop(columns="age"))


def test_without_a_discharge_date_column_the_last_episode_ends_the_spell(tmp_path):
    rows = [r[:9] + r[10:] for r in ROWS if r[5] == "3" and r[1] != "P3"]
    path = tmp_path / "no_disdate.csv"
    pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "DISDATE"]).to_csv(path, index=False)
    spells = io.load_table("spells", path).set_index("spell_id")
    assert spells.loc["RA1/100", "discharge_date"] == pd.Timestamp("2024-01-09")
    assert len(spells) == 6
