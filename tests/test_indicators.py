"""Tests of helpers.indicators: every exclusion of every definition, on hand-built spells (the SQL, on a file and on a frame).

Each hand-built spell is set aside by exactly one step (or by none), so the
expected counts are known by construction; the readmission and death
linkages are checked spell by spell against what the published definitions
say (I02040: 0 to 29 days, cancer and obstetric readmissions not counted;
SHMI: in hospital or within 30 days of discharge, on the patient's last spell).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from shared_runs import RunSpec, run_spec

from helpers import casemix, derive, indicators, io, variation
from helpers.engine import query_frame

END = "2024-06-30"  # the last admission date: the extract's coverage ends here

# spell_id, patient, admitted, discharged, method, classpat, diagnosis, dismeth, procedure
_SPELLS = [
    # readmission_30d index exclusions, one each
    ("died", "p01", "2024-01-05", "2024-01-09", "21", "1", "J18", "4", None),
    ("daycase", "p02", "2024-01-05", "2024-01-05", "12", "2", "K80", "1", "J18.3"),
    ("regular", "p03", "2024-01-05", "2024-01-05", "13", "3", "D50", "1", None),
    ("cancerC", "p04", "2024-01-05", "2024-01-08", "21", "1", "C34.1", "1", None),
    ("cancerD", "p05", "2024-01-05", "2024-01-08", "11", "1", "D47", "1", None),
    ("chemo", "p06", "2024-01-05", "2024-01-06", "11", "1", "Z51.1", "1", None),
    ("obstetO", "p07", "2024-01-05", "2024-01-07", "21", "1", "O80", "1", None),
    ("matmeth", "p08", "2024-01-05", "2024-01-07", "31", "1", "Z34", "1", None),
    ("motherbaby", "p09", "2024-01-05", "2024-01-07", "11", "5", "Z39", "1", None),
    ("late", "p10", "2024-06-01", "2024-06-10", "21", "1", "J18", "1", None),
    # readmission linkage: index spells (kept) and what follows them
    ("ixA", "p11", "2024-02-01", "2024-02-05", "21", "1", "I50", "1", None),
    (
        "rdA",
        "p11",
        "2024-02-10",
        "2024-02-12",
        "21",
        "1",
        "C18",
        "1",
        None,
    ),  # cancer readmission: not counted
    ("ixB", "p12", "2024-02-01", "2024-02-05", "11", "1", "M16", "1", "W37.1"),
    (
        "rdB",
        "p12",
        "2024-02-20",
        "2024-02-22",
        "21",
        "1",
        "O03",
        "1",
        None,
    ),  # obstetric readmission: not counted
    ("ixC", "p13", "2024-02-01", "2024-02-05", "21", "1", "J44", "1", None),
    ("rdC", "p13", "2024-03-05", "2024-03-07", "21", "1", "J44", "1", None),  # day 29: counted
    ("ixD", "p14", "2024-02-01", "2024-02-05", "21", "1", "J44", "1", None),
    ("rdD", "p14", "2024-03-06", "2024-03-08", "22", "1", "J44", "1", None),  # day 30: not counted
    ("ixE", "p15", "2024-02-01", "2024-02-05", "21", "1", "I21", "1", None),
    ("rdE1", "p15", "2024-02-07", "2024-02-09", "21", "1", "C61", "1", None),  # cancer first, then ...
    ("rdE2", "p15", "2024-02-15", "2024-02-16", "21", "1", "I21", "1", None),  # ... a counted one on day 10
    # mortality: SHMI-style exclusions
    ("stillbirth", "p16", "2024-03-01", "2024-03-01", "82", "1", "P95", "4", None),
    ("nodismeth", "p17", "2024-03-01", "2024-03-04", "21", "1", "J18", None, None),
    # deaths after discharge (deaths table): p18 twice, dies 10 days after the second; p19 dies 31 days after
    ("d1", "p18", "2024-03-01", "2024-03-05", "21", "1", "I50", "1", None),
    ("d2", "p18", "2024-04-01", "2024-04-05", "21", "1", "I50", "1", None),
    ("d3", "p19", "2024-03-01", "2024-03-05", "21", "1", "I50", "1", None),
    ("d4", "p20", "2024-03-01", "2024-03-05", "21", "1", "I50", "1", None),  # dies on day 30: counted
    # day-case basket
    ("hernia", "p21", "2024-04-01", "2024-04-01", "11", "2", "K40", "1", "T20.1"),
    ("carpal", "p22", "2024-04-01", "2024-04-02", "11", "1", "G56", "1", "A65.1"),
    ("notbasket", "p23", "2024-04-01", "2024-04-01", "11", "2", "G56", "1", "A65.2"),
    ("noproc", "p24", "2024-04-01", "2024-04-03", "12", "1", "M17", "1", None),
    ("last", "p25", "2024-06-30", "2024-07-02", "21", "1", "R07", "1", None),  # the last admission
]
DEATHS = pd.DataFrame(
    {"patient_id": ["p18", "p19", "p20"], "date_of_death": ["2024-04-15", "2024-04-05", "2024-04-04"]}
)


def hand_spells() -> pd.DataFrame:
    rows = []
    for i, (sid, pid, adm, dis, meth, cls, diag, dm, proc) in enumerate(_SPELLS):
        rows.append(
            {
                "spell_id": sid,
                "patient_id": pid,
                "provider_code": "T0" + str(i % 3 + 1),
                "admission_date": adm,
                "discharge_date": dis,
                "admission_method": meth,
                "patient_classification": cls,
                "age": 40 + i,
                "sex": "1" if i % 2 else "2",
                "primary_diagnosis": diag,
                "hrg": "XX01A",
                "discharge_method": dm,
                "primary_procedure": proc,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hand")
    spells, deaths = folder / "spells.csv", folder / "deaths.csv"
    hand_spells().to_csv(spells, index=False)
    DEATHS.to_csv(deaths, index=False)
    return {"spells": spells, "deaths": deaths}


@pytest.fixture(scope="module")
def loaded(files) -> pd.DataFrame:
    return derive.add_spell_fields(io.load_table("spells", files["spells"]))


def steps(prepared: variation.VariationInput) -> dict[str, int]:
    ex = prepared.exclusions
    return dict(zip(ex["step"].str.split(": ", n=1).str[-1], ex["rows_excluded"]))


def prepared(files, indicator, **kw) -> variation.VariationInput:
    """The variation input of the hand-built spells, from the SQL path (the one dialect)."""
    kw.setdefault("case_mix", ["age_band", "sex"])  # the hand-built spells have no frailty score
    return variation.prepare_variation(files["spells"], indicator, engine="duckdb", min_level_spells=1, **kw)


def test_published_readmission_every_exclusion_and_the_readmissions_it_counts(files, loaded):
    got = prepared(files, "readmission_30d")
    # by construction: died + stillbirth (discharge method 4); daycase, hernia, notbasket (class 2) and regular
    # (class 3); cancerC, cancerD, chemo and the cancer readmissions rdA, rdE1; obstetO, matmeth, motherbaby, rdB;
    # late and last (discharged less than 30 days before the last admission)
    assert steps(got) == {
        "all financial years": 0,
        "died in hospital": 2,
        "day case or regular attender": 4,
        "index spell with a cancer diagnosis": 5,
        "index spell for obstetric or maternity care": 4,
        "30 days of follow-up": 2,
    }
    with_outcome = indicators.add_outcome(loaded, indicators.INDICATORS["readmission_30d"]).set_index(
        "spell_id"
    )
    counted = with_outcome["readmit_30d_nhs"]
    assert not counted["ixA"] and not counted["ixB"]  # readmitted for cancer, for obstetric care
    assert counted["ixC"] and not counted["ixD"]  # day 29 counts, day 30 does not
    assert counted["ixE"]  # the cancer readmission is skipped, the later one on day 10 counts
    assert counted["d1"]  # readmitted as an emergency 27 days later (d2)
    # the generic version counts any emergency readmission (ixA, ixB too)
    generic = with_outcome["readmit_30d"]
    assert generic["ixA"] and generic["ixB"] and generic["ixC"] and not generic["ixD"]
    assert got.definition.case_mix == indicators.PUBLISHED_TERMS
    assert got.model.providers["observed"].sum() == 3  # ixC, ixE, d1


def test_published_readmission_population_by_hand(loaded):
    pop, ex = casemix.indicator_population(loaded, "readmission_30d")
    excluded = {
        "died",
        "stillbirth",
        "daycase",
        "hernia",
        "notbasket",
        "regular",
        "cancerC",
        "cancerD",
        "chemo",
        "rdA",
        "rdE1",
        "obstetO",
        "matmeth",
        "motherbaby",
        "rdB",
        "late",
        "last",
    }
    assert set(pop["spell_id"]) == set(loaded["spell_id"]) - excluded
    assert int(pop["outcome"].sum()) == 3
    assert ex["rows_excluded"].sum() == len(excluded)
    assert (ex["rows_before"] - ex["rows_excluded"] == ex["rows_after"]).all()
    assert ex["step"].str.contains("cancer").any() and ex["step"].str.contains("obstetric or maternity").any()


def test_generic_readmission_keeps_cancer_and_obstetric_spells(files):
    got = prepared(files, "readmission_30d_all")
    assert steps(got) == {
        "all financial years": 0,
        "spells eligible for a 30-day readmission (alive, full follow-up)": 4,
    }
    assert "generic" in got.definition.label


def test_shmi_style_mortality_in_hospital_only_without_deaths(files, loaded):
    got = prepared(files, "mortality")
    # daycase, hernia, notbasket (class 2), regular (class 3); the stillbirth; nodismeth (no discharge method)
    assert steps(got) == {
        "all financial years": 0,
        "day case or regular attender": 4,
        "stillbirth": 1,
        "discharge method not recorded": 1,
    }
    assert "in-hospital" in got.definition.label and "no deaths after discharge" in got.definition.label
    assert any("deaths table" in d for d in got.definition.departures)
    assert got.model.providers["observed"].sum() == 1  # "died"; the stillbirth's death is excluded with it


def test_shmi_style_mortality_with_deaths_counts_30_days_after_discharge_on_the_last_spell(files, loaded):
    got = prepared(files, "mortality", data_deaths=files["deaths"])
    assert (
        steps(got)["30 days of follow-up"] == 2
    )  # "late" and "last" end within 30 days of the last admission
    deaths_table = io.load_table("deaths", files["deaths"])
    out = indicators.add_outcome(
        loaded, indicators.resolve("mortality", list(loaded.columns), True), deaths_table
    ).set_index("spell_id")
    assert out.loc["died", "died_30d"]  # in hospital
    assert (
        not out.loc["d1", "died_30d"] and out.loc["d2", "died_30d"]
    )  # the last spell before the death carries it
    assert not out.loc["d3", "died_30d"]  # 31 days after discharge
    assert out.loc["d4", "died_30d"]  # 30 days after discharge
    # follow-up: by default to the last admission (END), so "late" and "last" lack their 30 days; a stated
    # end a year later gives every spell its 30 days
    assert set(out.index[~out["death_follow_up"]]) == {"late", "last"}
    later = indicators.add_outcome(
        loaded, indicators.resolve("mortality", list(loaded.columns), True), deaths_table, "2025-06-30"
    )
    assert later["death_follow_up"].all() and later["died_30d"].tolist() == out["died_30d"].tolist()
    assert got.model.providers["observed"].sum() == 3  # died, d2, d4
    assert got.definition.label.startswith("mortality in hospital or within 30 days")


def test_day_case_basket_with_procedure_codes(files):
    got = prepared(files, "day_case")
    elective = sum(1 for r in _SPELLS if r[4] in ("11", "12", "13"))
    # basket: J18.3 (daycase), T20.1 (hernia), A65.1 (carpal); W37.1 and A65.2 are not in it
    assert steps(got) == {
        "all financial years": 0,
        "not an elective admission": len(_SPELLS) - elective,
        "procedure not in the BADS basket": elective - 3,
    }
    assert got.model.providers["denominator"].sum() == 3 and got.model.providers["observed"].sum() == 2
    assert "BADS" in got.definition.label


def test_day_case_without_procedure_codes_is_the_generic_rate_labelled(files, tmp_path):
    path = tmp_path / "spells.csv"
    hand_spells().drop(columns="primary_procedure").to_csv(path, index=False)
    got = prepared({"spells": path}, "day_case")
    assert "generic" in got.definition.label
    assert "no primary_procedure" in got.exclusions["reason"].iloc[-1]


def test_every_step_of_every_definition_is_exercised(files, loaded):
    """Each step of each record excludes at least one hand-built spell (with a deaths table for mortality)."""
    deaths = io.load_table("deaths", files["deaths"])
    for name in indicators.INDICATORS:
        ind = indicators.resolve(name, list(loaded.columns), deaths=True)
        frame = indicators.add_outcome(loaded, ind, deaths if ind.outcome == "died_30d" else None)
        for step, mask in zip(ind.steps, indicators.exclusion_masks(frame, ind)):
            assert mask.any(), f"{name}: step {step.step!r} never fires on the hand-built spells"


def test_rule_sql_on_codes_with_dots_case_and_missing_against_hand_reading():
    """Each code list's SQL on a frame, against the codes read by hand (ICD-10 stems, dots and case ignored)."""
    frame = pd.DataFrame(
        {
            "primary_diagnosis": ["C97", "C98", "D37", "D49", "Z511", None, "o99", "Z51.1"],
            "admission_method": ["31", "21", "82", None, "11", "21", "21", "21"],
        }
    )
    by_hand = {
        # C00-C97 and D37-D48 stems, or Z51.0/Z51.1 (chemotherapy); a missing code matches nothing
        "CANCER": [True, False, True, False, True, False, False, True],
        # O00-O99 (any case), or admission method 31, 32, 82, 83; no patient classification: not applied
        "OBSTETRIC": [True, False, True, False, False, False, True, False],
        "STILLBIRTH": [False] * 8,  # P95 only
    }
    for name, expected in by_hand.items():
        rule = getattr(indicators, name)
        got = query_frame(frame, f"{indicators.rule_sql(rule, list(frame.columns))} AS m")["m"]
        assert got.tolist() == expected, name
    # on a frame, a step whose derived flag is absent matches nothing, or everything when negated
    steps = (
        indicators.Step("no follow-up", "", indicators.Flag("death_follow_up", negate=True)),
        indicators.Step("died", "", indicators.Flag("died")),
    )
    ind = indicators.Indicator("t", "los_days", "poisson", "", False, "", "", steps=steps)
    follow_up, died = indicators.exclusion_masks(frame, ind)
    assert follow_up.all() and not died.any()


def test_definitions_table_lists_each_indicator_with_its_source():
    table = indicators.definitions_table()
    assert set(table["indicator"]) == set(indicators.INDICATORS)
    assert (table["source"].str.len() > 20).all()
    assert table.set_index("indicator").loc["readmission_30d", "generic_version"] == "readmission_30d_all"


def write_cancer_and_obstetric_spells(folder: Path) -> Path:
    """The sample's first 20,000 spells, with obstetric (O80) and cancer (C50.9) primary diagnoses planted."""
    s = pd.read_csv(io.sample_path("spells"), dtype=str, keep_default_na=False).head(20000)
    s.loc[s.index[::97], "primary_diagnosis"] = "O80"
    s.loc[s.index[5::89], "primary_diagnosis"] = "C50.9"
    path = folder / "spells.csv"
    s.to_csv(path, index=False)
    return path


def readmission_run(path: Path) -> RunSpec:
    return run_spec("variation", {"spells": path}, ["indicator=readmission_30d"])


#: The run, started in the background when the session starts (tests/conftest.py).
PREFETCH_RUNS = {
    "test_handbook_run_variation_names_cancer_and_obstetric_exclusions": lambda folder: [
        readmission_run(write_cancer_and_obstetric_spells(folder))
    ]
}


def test_handbook_run_variation_names_cancer_and_obstetric_exclusions(tmp_path, handbook_runs):
    """Done-when of issue 19: cancer and obstetric index spells are excluded, each a named, counted step."""
    path = write_cancer_and_obstetric_spells(tmp_path)
    out = handbook_runs.get(readmission_run(path))
    flow = pd.read_csv(out / "tables" / "exclusions.csv", dtype=str)
    loaded = derive.add_spell_fields(io.load_table("spells", path))
    expected, _ = casemix.indicator_population(loaded, "readmission_30d")
    by_step = flow.set_index("step")
    cancer = by_step.loc["readmission_30d: index spell with a cancer diagnosis"]
    obstetric = by_step.loc["readmission_30d: index spell for obstetric or maternity care"]
    assert "C00-C97" in cancer["reason"] and "O00-O99" in obstetric["reason"]
    assert int(cancer["rows_excluded"]) > 7 and int(obstetric["rows_excluded"]) > 7  # shown, not suppressed
    assert int(by_step.loc["analysed", "rows_after"]) == len(expected)
    summary = pd.read_csv(out / "tables" / "opportunity_summary.csv")
    from helpers import periods

    assert (summary["years"] == periods.coverage(loaded).years).all()  # first to last admission, in years


def test_definitions_page_lists_every_indicator_and_is_in_the_book():
    root = Path(__file__).resolve().parents[1]
    page = (root / "book" / "definitions.md").read_text()
    for name in indicators.INDICATORS:
        assert f"`{name}`" in page, name
    for code in ("C00–C97", "D37–D48", "O00–O99", "P95"):
        assert code in page
    for procedure in indicators.BADS_BASKET:
        assert procedure in page
    for key in ("nhsd_readmissions_i02040", "nhsd_shmi", "bads_directory"):
        assert f"{{cite}}`{key}`" in page and key in (root / "book" / "references.bib").read_text()
    assert "book/definitions" in (root / "_toc.yml").read_text()
