"""The target-trial cohort built in SQL is the cohort built in pandas (METHODS.md section 5).

:func:`helpers.cohort.prepare_virtual_ward` with an engine (DuckDB) reads
the spells in SQL and brings only the cohort to pandas; with ``"pandas"`` it
holds every spell. Every column of the risk-set rows and of the all-spells
rows, the exclusions, the links, the all-spells design of
:func:`helpers.cohort.build_cohort`, the provider-level monthly bed days and
the effect table must be the same to the last digit: on the shipped sample, on a mid-stay simulation (decisions on
hospital day 2 to 4, linked deaths, known true effects) and on small tables
built by hand to hit the edge cases (deaths in hospital and after, a
referral date outside its spell, an escalation back to hospital, a history
more than a year old).
"""

from __future__ import annotations

import shutil
import warnings

import pandas as pd
import pytest

from helpers import cohort as co
from helpers import evaluation as ev
from helpers import io, quality, simulate

COVARIATES = ev.TARGET_TRIAL_COVARIATES  # the virtual ward notebook's
PARTS = ("rows", "all_spells", "exclusions", "links", "periods")


def _both(path, stays, deaths=None, **kw):
    by_pandas = co.prepare_virtual_ward(path, stays, deaths=deaths, engine="pandas", **kw)
    by_sql = co.prepare_virtual_ward(path, stays, deaths=deaths, engine="duckdb", **kw)
    _assert_same_design(by_pandas.all_spells_design, by_sql.all_spells_design)
    pd.testing.assert_frame_equal(by_pandas.monthly, by_sql.monthly, check_exact=True, obj="monthly")
    assert by_pandas.coverage == by_sql.coverage
    return by_pandas.trial, by_sql.trial, by_sql.spells


def _assert_same(a: co.TargetTrial, b: co.TargetTrial) -> None:
    for part in PARTS:
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part), check_exact=True, obj=part)
    assert (a.time_zero, a.time_zero_counts) == (b.time_zero, b.time_zero_counts)


def _assert_same_design(a: co.Cohort, b: co.Cohort) -> None:
    for part in ("spells", "exclusions", "links", "periods"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part), check_exact=True, obj=part)


def test_sample_cohort_is_the_same_in_sql_and_pandas():
    stays = io.load_table("virtual_ward")
    a, b, stand_in = _both(None, stays, covariates=COVARIATES)
    _assert_same(a, b)
    assert len(b.rows) > 1000 and b.rows["treated"].sum() > 500
    # the spells never reached pandas: no rows, but the profile of all of them
    assert stand_in.frame is None
    profile = quality.data_quality(stand_in)
    assert (profile["rows"] == 50_000).all()
    assert quality.describe({"spells": stand_in}).startswith("spells: 50,000 rows read")


@pytest.fixture(scope="module")
def mid_stay(tmp_path_factory):
    econ = simulate.simulate_economy(20_000, seed=1, step_down="mid_stay")
    folder = tmp_path_factory.mktemp("mid_stay")
    econ["spells"].to_parquet(folder / "spells.parquet", index=False)
    return folder / "spells.parquet", econ


def test_mid_stay_cohort_and_effects_are_the_same_in_sql_and_pandas(mid_stay):
    path, econ = mid_stay
    stays = econ["virtual_ward"]
    a, b, _ = _both(path, stays, deaths=econ["deaths"], covariates=COVARIATES)
    _assert_same(a, b)
    assert set(b.rows["time_zero_source"]) == {"", "referral_date"}
    assert b.rows["death_30d"].sum() > 0 and b.rows["readmission_other_provider"].sum() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ea = ev.estimate_target_trial(a, ["acute_los", "readmission_30d", "death_30d"], COVARIATES, seed=1)
        eb = ev.estimate_target_trial(b, ["acute_los", "readmission_30d", "death_30d"], COVARIATES, seed=1)
    pd.testing.assert_frame_equal(ea.effects, eb.effects, check_exact=True)
    # and the SQL-built cohort still finds the simulated effect on the acute stay
    truth = econ["truth"]["virtual_ward"]
    main = eb.effects.query("outcome == 'acute_los' and method == 'aipw'").iloc[0]
    assert main["ci_lower"] <= truth["att_acute_los_days"] <= main["ci_upper"]


def test_mid_stay_without_deaths_or_referral_dates_other_windows_and_follow_up_end(mid_stay):
    path, econ = mid_stay
    a, b, _ = _both(
        path, econ["virtual_ward"].drop(columns=["referral_date"]), covariates=["age", "prior_bed_days"]
    )
    _assert_same(a, b)
    assert b.time_zero == "step-down day"
    kw = dict(
        window_days=14,
        long_window_days=60,
        prior_days=180,
        max_gap_days=0,
        min_age=65,
        follow_up_end="2024-12-31",
        pathways={"heart failure": ["I50"], "respiratory": ["J09-J22", "J44"]},
    )
    a, b, _ = _both(path, econ["virtual_ward"], **kw)
    _assert_same(a, b)


def _spell(spell_id, patient, adm, dis, diag="J18", method="21", dismeth="1", age=80, provider="AAA"):
    return {
        "spell_id": spell_id,
        "patient_id": patient,
        "provider_code": provider,
        "admission_date": adm,
        "discharge_date": dis,
        "admission_method": method,
        "age": age,
        "sex": "2",
        "primary_diagnosis": diag,
        "discharge_method": dismeth,
        "imd_decile": 3,
        "frailty_score": 6.0,
    }


def _stay(stay_id, patient, adm, dis, linked, referral=""):
    return {
        "vw_stay_id": stay_id,
        "patient_id": patient,
        "provider_code": "AAA",
        "vw_admission_date": adm,
        "vw_discharge_date": dis,
        "pathway": "acute respiratory infection",
        "route": "step_down",
        "linked_spell_id": linked,
        "referral_date": referral,
    }


def test_edge_cases_by_hand_are_the_same_in_sql_and_pandas(tmp_path):
    spells = pd.DataFrame(
        [
            _spell("T1", "P1", "2024-03-01", "2024-03-06"),
            _spell(
                "T1R", "P1", "2024-03-09", "2024-03-12", diag="K35", provider="BBB"
            ),  # escalation, elsewhere
            _spell("C1", "P2", "2024-03-05", "2024-03-12"),
            _spell("C1R", "P2", "2024-04-08", "2024-04-09", diag="K35"),
            _spell("C1P", "P2", "2023-11-28", "2023-12-02"),  # prior-year emergency history
            _spell("C1E", "P2", "2024-01-10", "2024-01-12", method="11", diag="K40"),
            _spell(
                "C1O", "P2", "2023-02-01", "2023-02-03", method="11", diag="K40"
            ),  # more than a year before
            _spell("C2", "P3", "2024-03-10", "2024-03-11"),
            _spell("C3", "P4", "2024-03-02", "2024-03-04", dismeth="4"),  # died in hospital on day 2
            _spell("C4", "P5", "2024-03-01", "2024-03-02", dismeth="4"),
            _spell("T2", "P6", "2024-03-04", "2024-03-09"),  # no referral date: the step-down day
            _spell("H1", "P7", "2024-03-01", "2024-03-10", diag="I50"),
            _spell("T3", "P8", "2024-03-01", "2024-03-05"),  # referral after discharge: set aside
            _spell("Y1", "P9", "2024-03-02", "2024-03-09", age=16),  # a child
            _spell("END", "P99", "2024-06-30", "2024-06-30", method="11"),
        ]
    )
    vw = pd.DataFrame(
        [
            _stay("V1", "P1", "2024-03-06", "2024-03-10", "T1", referral="2024-03-03"),
            _stay("V2", "P6", "2024-03-09", "2024-03-12", "T2"),
            _stay("V3", "P8", "2024-03-05", "2024-03-07", "T3", referral="2024-03-06"),
            _stay("V4", "P9", "2024-03-20", "2024-03-22", "C2"),  # another patient's spell: not linked
        ]
    )
    spells.to_csv(tmp_path / "spells.csv", index=False)
    vw.to_csv(tmp_path / "virtual_ward.csv", index=False)
    stays = io.load_table("virtual_ward", tmp_path / "virtual_ward.csv")
    deaths = pd.DataFrame(
        {"patient_id": ["P2", "P6"], "date_of_death": pd.to_datetime(["2024-03-20", "2024-05-01"])}
    )
    a, b, _ = _both(tmp_path / "spells.csv", stays, deaths=deaths)
    _assert_same(a, b)
    rows = b.rows.set_index(["landmark_day", "spell_id"])
    assert rows.loc[(2, "T1"), "readmission_other_provider"] == 1
    assert rows.loc[(2, "C1"), "death_30d"] == 1 and rows.loc[(2, "C3"), "death_30d"] == 1
    assert "T3" not in set(b.rows["spell_id"]) and "Y1" not in set(b.all_spells["spell_id"])


def test_overlapping_pathways_are_refused_in_sql_as_in_pandas():
    stays = io.load_table("virtual_ward")
    with pytest.raises(ValueError, match="overlaps another pathway"):
        co.prepare_virtual_ward(None, stays, pathways={"a": ["J09-J22"], "b": ["J18"]})


def test_spark_builds_the_same_cohort_from_the_same_sql(tmp_path):
    """The cohort SQL is written once (DuckDB's dialect) and runs on Spark through the engine's sqlglot translation.

    On a small mid-stay economy (with deaths and referral dates): Spark's cost
    here is planning each query, not the rows, and every branch of the SQL is hit.
    """
    pytest.importorskip(
        "pyspark", reason="pyspark is not installed (requirements-spark.txt): the Spark engine is not tested"
    )
    pytest.importorskip(
        "sqlglot", reason="sqlglot is not installed (requirements-spark.txt): the Spark engine is not tested"
    )
    if shutil.which("java") is None:
        pytest.skip("Java is not installed: the Spark engine is not tested")
    from pyspark.sql import SparkSession

    econ = simulate.simulate_economy(4_000, seed=3, step_down="mid_stay")
    path = tmp_path / "spells.parquet"
    econ["spells"].to_parquet(path, index=False)
    stays, deaths = econ["virtual_ward"], econ["deaths"]
    session = (
        SparkSession.builder.master("local[2]")
        .appName("handbook-cohort-test")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    by_duckdb = co.prepare_virtual_ward(path, stays, deaths=deaths, covariates=COVARIATES, engine="duckdb")
    assert by_duckdb.trial.rows["treated"].sum() > 20 and by_duckdb.trial.rows["death_30d"].sum() > 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PySpark's notice about pandas 3
            by_spark = co.prepare_virtual_ward(
                path, stays, deaths=deaths, covariates=COVARIATES, engine="spark", spark=session
            )
    finally:
        session.stop()
    _assert_same(by_duckdb.trial, by_spark.trial)
    _assert_same_design(by_duckdb.all_spells_design, by_spark.all_spells_design)
    pd.testing.assert_frame_equal(by_duckdb.monthly, by_spark.monthly, check_exact=True)
