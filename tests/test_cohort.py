"""Tests of helpers.cohort: pathways, linkage rules and outcome definitions.

Every expected value below is worked out by hand from the small tables built
in the test (dates chosen so each rule and each clock is exercised once).
"""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.cohort import (
    DEFAULT_PATHWAYS,
    assign_pathway,
    build_cohort,
    link_step_down,
    virtual_ward_periods,
)


def _spell(spell_id, patient, adm, dis, diag="J18", method="21", provider="AAA", dismeth="1", age=80):
    return {
        "spell_id": spell_id,
        "patient_id": patient,
        "provider_code": provider,
        "admission_date": pd.Timestamp(adm),
        "discharge_date": pd.Timestamp(dis),
        "admission_method": method,
        "age": age,
        "sex": "2",
        "primary_diagnosis": diag,
        "discharge_method": dismeth,
        "imd_decile": 3,
        "frailty_score": 6.0,
    }


def _stay(
    stay_id,
    patient,
    adm,
    dis,
    linked,
    route="step_down",
    provider="AAA",
    pathway="acute respiratory infection",
):
    return {
        "vw_stay_id": stay_id,
        "patient_id": patient,
        "provider_code": provider,
        "vw_admission_date": pd.Timestamp(adm),
        "vw_discharge_date": pd.Timestamp(dis),
        "pathway": pathway,
        "route": route,
        "linked_spell_id": linked,
    }


@pytest.fixture()
def tables():
    spells = pd.DataFrame(
        [
            # treated: acute 1-5 Mar, virtual ward 5-12 Mar, readmitted 8 Apr:
            # 34 days after acute discharge (outside 0-29), 27 after VW discharge (inside)
            _spell("S1", "P1", "2024-03-01", "2024-03-05"),
            _spell("S1R", "P1", "2024-04-08", "2024-04-10", diag="K35"),
            # treated: escalated back to hospital on day 3 of the virtual ward stay
            _spell("S2", "P2", "2024-03-02", "2024-03-06", diag="I50"),
            _spell("S2R", "P2", "2024-03-09", "2024-03-12", diag="I50"),
            # control: discharged 10 Mar, readmitted 9 Apr = 30 days later: not within 30 (0-29)
            _spell("S3", "P3", "2024-03-03", "2024-03-10", diag="R54"),
            _spell("S3R", "P3", "2024-04-09", "2024-04-11", diag="R54"),
            # control: readmitted 28 days after discharge to ANOTHER provider, died there on day 29
            _spell("S4", "P4", "2024-03-04", "2024-03-06", diag="J44"),
            _spell("S4R", "P4", "2024-04-03", "2024-04-04", diag="A41", provider="ZZZ", dismeth="4"),
            # excluded: elective
            _spell("S5", "P5", "2024-03-05", "2024-03-06", method="11"),
            # excluded: diagnosis outside the pathways (J23 is just past J22)
            _spell("S6", "P6", "2024-03-05", "2024-03-06", diag="J23"),
            # excluded: died in the acute spell
            _spell("S7", "P7", "2024-03-05", "2024-03-09", dismeth="4"),
            # excluded: provider without a virtual ward
            _spell("S8", "P8", "2024-03-05", "2024-03-09", provider="ZZZ"),
            # excluded: admitted before the month the virtual ward started (Feb)
            _spell("S9", "P9", "2024-02-20", "2024-02-25"),
            # excluded: a child
            _spell("S10", "P10", "2024-03-05", "2024-03-07", age=4),
            # follow-up end marker: a late elective spell so the data run to 30 Jun
            _spell("SEND", "P99", "2024-06-30", "2024-06-30", method="11"),
        ]
    )
    vw = pd.DataFrame(
        [
            _stay("V1", "P1", "2024-03-05", "2024-03-12", "S1"),
            _stay(
                "V2", "P2", "2024-03-07", "2024-03-09", "S2", pathway="heart failure"
            ),  # 1-day gap: allowed
            _stay("V3", "P3", "2024-03-20", "2024-03-25", "S3"),  # 10 days after discharge: not a step-down
            _stay("V4", "P4", "2024-03-06", "2024-03-08", "NOPE"),  # no such spell
            _stay("V5", "P5", "2024-03-06", "2024-03-08", "S1"),  # another patient's spell
            _stay("V6", "P1", "2024-03-06", "2024-03-09", "S1"),  # second stay on S1
            _stay("V7", "P6", "2024-03-01", "2024-03-04", None, route="step_up"),
        ]
    )
    return spells, vw


def test_assign_pathway_ranges_and_detail_codes():
    diag = pd.Series(["J09", "J22", "J23", "J44.1", "J441", "I50", "I509", "R54", "R26.8", "R27", None])
    got = assign_pathway(diag, DEFAULT_PATHWAYS)
    ari, hf, fr = "acute respiratory infection", "heart failure", "frailty"
    expected = [ari, ari, None, ari, ari, hf, hf, fr, fr, None, None]
    assert [None if pd.isna(v) else v for v in got] == expected


def test_assign_pathway_rejects_overlapping_pathways():
    with pytest.raises(ValueError, match="overlaps"):
        assign_pathway(pd.Series(["J10"]), {"a": ["J09-J12"], "b": ["J10"]})


def test_link_rules_count_every_stay(tables):
    spells, vw = tables
    links, ex = link_step_down(spells, vw, max_gap_days=1)
    assert sorted(links["spell_id"]) == ["S1", "S2"]
    assert links.set_index("spell_id").loc["S1", "vw_stay_id"] == "V1"  # earliest of V1 and V6
    removed = ex.set_index("step")["rows_removed"]
    assert removed["step-down stays only"] == 1  # V7
    assert removed["linked spell exists"] == 1  # V4
    assert removed["same patient"] == 1  # V5
    assert removed["starts 0-1 days after acute discharge"] == 1  # V3
    assert removed["one stay per spell"] == 1  # V6
    assert ex["rows_after"].iloc[-1] + ex["rows_removed"].sum() == len(vw)


def test_periods_cover_whole_months(tables):
    _, vw = tables
    p = virtual_ward_periods(vw).set_index("provider_code")
    assert p.loc["AAA", "period_start"] == pd.Timestamp("2024-03-01")
    assert p.loc["AAA", "period_end"] == pd.Timestamp("2024-03-31")
    p2 = virtual_ward_periods(vw, starts={"AAA": "2024-02-15"}).set_index("provider_code")
    assert p2.loc["AAA", "period_start"] == pd.Timestamp("2024-02-01")
    with pytest.raises(ValueError, match="no virtual ward"):
        virtual_ward_periods(vw, starts={"QQQ": "2024-01-01"})


def test_cohort_membership_and_exclusions(tables):
    spells, vw = tables
    res = build_cohort(spells, vw)
    c = res.spells.set_index("spell_id")
    # S2R (admitted 9 Mar, I50) is itself an eligible emergency spell in March
    assert sorted(c.index) == ["S1", "S2", "S2R", "S3", "S4"]
    assert c["treated"].to_dict() == {"S1": 1, "S2": 1, "S2R": 0, "S3": 0, "S4": 0}
    ex = res.exclusions[res.exclusions["table"] == "spells"].set_index("step")["rows_removed"]
    assert ex["emergency admissions"] == 2  # S5, SEND
    assert ex["aged 18 or over"] == 1  # S10
    assert ex["eligible pathway"] == 3  # S6 (J23), S1R (K35), S4R (A41)
    assert ex["provider and months with a virtual ward"] == 3  # S8, S9, S3R (April)
    assert ex["discharged alive"] == 1  # S7
    assert res.exclusions.loc[res.exclusions["table"] == "spells", "rows_after"].iloc[-1] == 5


def test_outcomes_by_hand(tables):
    spells, vw = tables
    c = build_cohort(spells, vw, window_days=30).spells.set_index("spell_id")
    assert c.loc["S1", "acute_los"] == 4 and c.loc["S1", "vw_days"] == 7 and c.loc["S1", "total_los"] == 11
    assert c.loc["S3", "total_los"] == c.loc["S3", "acute_los"] == 7
    # S1: readmitted 34 days after acute discharge, 27 after virtual ward discharge
    assert c.loc["S1", "readmission_30d"] == 1
    assert c.loc["S1", "readmission_30d_from_acute_discharge"] == 0
    # S2: escalated during the virtual ward stay: counts on both clocks
    assert c.loc["S2", "readmission_30d"] == 1
    assert c.loc["S2", "readmission_30d_from_acute_discharge"] == 1
    # S3: readmitted 30 days after discharge: outside 0-29 days
    assert c.loc["S3", "readmission_30d"] == 0
    # S4: readmitted 28 days after discharge at another provider, died there 29 days after
    assert c.loc["S4", "readmission_30d"] == 1
    assert c.loc["S4", "death_30d"] == 1
    assert c.loc["S1", "death_30d"] == 0
    assert c.loc["S1", "end_of_care"] == pd.Timestamp("2024-03-12")
    # S4's readmission was to provider ZZZ; S1's to its own provider; death competes with readmission
    assert c.loc["S4", "readmission_other_provider"] == 1 and c.loc["S1", "readmission_other_provider"] == 0
    assert c.loc["S4", "readmission_or_death_30d"] == 1


def test_readmission_destinations_and_immortal_time_option(tables):
    from helpers.cohort import readmission_destinations

    spells, vw = tables
    c = build_cohort(spells, vw).spells
    d = readmission_destinations(c).set_index("group")
    # treated S1, S2 both readmitted at their own provider; controls: S4 elsewhere (S3 at day 30 is not)
    assert d.loc["virtual ward", ["spells", "readmissions", "to_other_provider"]].tolist() == [2, 2, 0]
    assert d.loc["control", ["spells", "readmissions", "to_other_provider"]].tolist() == [3, 1, 1]
    # keeping the acute death S7 as a control adds a death the treated could never have had
    kept = build_cohort(spells, vw, exclude_in_hospital_deaths=False).spells.set_index("spell_id")
    assert kept.loc["S7", "treated"] == 0 and kept.loc["S7", "death_30d"] == 1


def test_death_from_linked_mortality_records(tables):
    spells, vw = tables
    # 29 days after the acute discharge (5 Mar): inside the 30-day window, the same for both groups
    deaths = pd.DataFrame({"patient_id": ["P1"], "date_of_death": ["2024-04-03"]})
    c = build_cohort(spells, vw, deaths=deaths).spells.set_index("spell_id")
    assert c.loc["S1", "death_30d"] == 1
    assert c.loc["S4", "death_30d"] == 1  # its death in hospital counts as well as the records given
    # 29 days after the virtual ward discharge is day 36 after the acute one: outside the window
    later = build_cohort(spells, vw, deaths=deaths.assign(date_of_death=["2024-04-10"])).spells
    assert later.set_index("spell_id").loc["S1", "death_30d"] == 0


def test_follow_up_and_missing_covariates_are_counted(tables):
    spells, vw = tables
    spells = spells.copy()
    spells.loc[spells["spell_id"] == "S3", "imd_decile"] = None
    res = build_cohort(spells, vw, covariates=["imd_decile"], follow_up_end="2024-04-05")
    ex = res.exclusions.set_index("step")["rows_removed"]
    # follow-up to 5 Apr: S1 ends care 12 Mar (+29 = 10 Apr: incomplete); S2 9 Mar (+29 = 7 Apr: incomplete);
    # S2R 12 Mar, S3 10 Mar (8 Apr): incomplete; S4 6 Mar (+29 = 4 Apr): complete
    assert ex["follow-up complete"] == 4
    assert sorted(res.spells["spell_id"]) == ["S4"]
    res2 = build_cohort(spells, vw, covariates=["imd_decile"])
    assert res2.exclusions.set_index("step").loc["imd_decile recorded", "rows_removed"] == 1
    assert "S3" not in set(res2.spells["spell_id"])


def test_sample_links_every_step_down_stay():
    """On the sample, every simulated step-down stay links to its spell (truth n_treated)."""
    import json

    from helpers import SAMPLE_DIR, io

    truth_path = SAMPLE_DIR / "truth.json"
    if not truth_path.exists():
        pytest.skip("sample data not written yet")
    truth = json.loads(truth_path.read_text())["virtual_ward"]
    spells, vw = io.load_table("spells"), io.load_table("virtual_ward")
    links, ex = link_step_down(spells, vw)
    assert len(links) == truth["n_treated"]
    assert ex.set_index("step").loc["step-down stays only", "rows_removed"] == truth["n_step_up"]
    res = build_cohort(spells, vw, starts=truth["providers"])
    assert set(res.periods["provider_code"]) == set(truth["providers"])


def test_describe_cohort_and_pathway_spells(tables):
    from helpers.cohort import describe_cohort, pathway_spells

    spells, vw = tables
    d = describe_cohort(build_cohort(spells, vw).spells).set_index("group")
    # treated S1 (4 days) and S2 (4 days); controls S2R 3, S3 7, S4 2
    assert d.loc["virtual ward", "mean_acute_los"] == pytest.approx(4.0)
    assert d.loc["control", "mean_acute_los"] == pytest.approx(4.0)
    assert d.loc["virtual ward", "mean_total_los"] == pytest.approx((11 + 6) / 2)
    p = pathway_spells(spells)
    # emergency adults in the pathways at any provider and month: all but S5, SEND, S10, S1R, S4R, S6
    assert sorted(p["spell_id"]) == ["S1", "S2", "S2R", "S3", "S3R", "S4", "S7", "S8", "S9"]
