"""Tests of helpers.engine: DuckDB and Spark give the pandas path's numbers and messages.

The truth here is the pandas path itself (helpers.io, helpers.derive,
helpers.casemix, helpers.funnel, helpers.opportunity), which its own tests
check against hand calculations and the simulator's truths: on the sample
data every engine must give the same tables, and the same InputError text
for a bad file.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers import casemix, contract, derive, engine, funnel, io, opportunity, variation

SAMPLE = io.sample_path("spells")
EXACT = {"check_exact": True}  # the engines add up in the rows' order: the same numbers to the last bit


def provider_indicator(prepared: variation.VariationInput, indicator: str) -> pd.DataFrame:
    """The variation notebook's provider_indicator table from a prepared input (its cells 11 and 13)."""
    definition = casemix.INDICATORS[indicator]
    model = prepared.model
    result = funnel.funnel(
        model.providers,
        "ratio",
        levels=[95, 99.8],
        overdispersion="additive",
        tau2_method="robust",
        min_expected=10,
        scale=model.dispersion,
    )
    opp = opportunity.opportunity(
        result,
        "median",
        definition.higher_is_better,
        prepared.bed_days_per_event,
        344.60,
        0.92,
        0.0,
        seed=2026,
        years=prepared.years,
        price_year="2020/21",
    )
    columns = ["provider_code", "denominator", "observed", "expected", result.value_column, "z"]
    columns += [c for c in opp.providers.columns if c.startswith(("lower_", "upper_"))]
    columns += [
        "outlier",
        "small",
        "ci_lower",
        "ci_upper",
        "opportunity",
        "opportunity_bed_days",
        "opportunity_gbp",
    ]
    return opp.providers[columns]


@pytest.fixture(scope="module")
def duckdb_results() -> dict[str, variation.VariationInput]:
    """The DuckDB results, the reference the Spark engine must reproduce."""
    return {
        ind: variation.prepare_variation(None, ind, engine="duckdb") for ind in ("los", "readmission_30d")
    }


def bad_spells(tmp_path: Path) -> pd.DataFrame:
    """300 sample spells with one broken rule per row, and some rows that are valid in unusual forms."""
    b = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(300)
    b.loc[3, "admission_date"] = "2024-02-30"  # no such day
    b.loc[4, "discharge_date"] = "01/01/2020"  # UK form, before admission
    b.loc[5, "admission_method"] = "99"
    b.loc[6, "age"] = "130"
    b.loc[7, "age"] = "abc"
    b.loc[8, "age"] = "4.5"
    b.loc[9, "sex"] = "Q"
    b.loc[10, "sex"] = "m"  # valid: recoded to 1
    b.loc[11, "spell_id"] = b.loc[12, "spell_id"]
    b.loc[13, "patient_id"] = ""
    b.loc[14, "primary_diagnosis"] = "123"
    b.loc[15, "frailty_score"] = "-1"
    b.loc[16, "spell_cost"] = "£1,234.50"  # valid
    b.loc[17, "admission_date"] = "05/06/2023"  # valid form, after its discharge
    b.loc[18, "imd_decile"] = "NA"  # valid: blank
    b.loc[19, "patient_id"] = (
        " null "  # NA-like text in a required column: missing, reported like row 13's blank
    )
    for k in range(20, 30):  # more than five rows: the message says how many more
        b.loc[k, "discharge_date"] = "2020-1-1"
    return b


# --------------------------------------------------------------------------- DuckDB
@pytest.mark.parametrize("indicator", ["day_case", "mortality"])
def test_duckdb_binomial_indicators_and_one_year(indicator):
    b = variation.prepare_variation(
        None, indicator, financial_year="2024/25", include_deprivation=True, engine="duckdb"
    )
    assert b.exclusions.loc[0, "rows_excluded"] > 0  # 2023/24 left out, and counted
    assert b.years == 1


def test_fit_cells_negative_binomial_and_rare_levels_match_fit_casemix():
    spells = casemix.add_casemix_bands(derive.add_spell_fields(io.load_table("spells")))
    population, _ = casemix.indicator_population(spells, "los")
    population = population.iloc[:4000]
    terms = ["age_band", "sex", "hrg"]  # many HRGs have fewer than 30 spells here: pooled into "other"
    rows = casemix.fit_casemix(population, terms, "negative_binomial")
    cells_in = population.assign(
        **{t: population[t].astype("str").where(population[t].notna(), None) for t in terms}
    )
    pcells = (
        cells_in.groupby(terms + ["provider_code"], dropna=False)
        .agg(n=("outcome", "size"), events=("outcome", "sum"))
        .reset_index()
    )
    vcells = (
        cells_in.assign(_y=cells_in["outcome"])
        .groupby(terms + ["_y"], dropna=False)
        .size()
        .rename("w")
        .reset_index()
    )
    cells = casemix.fit_cells(pcells, terms, "negative_binomial", vcells=vcells)
    assert rows.pooled_levels.loc[rows.pooled_levels["term"] == "hrg", "levels_pooled"].iloc[0] > 0
    pd.testing.assert_frame_equal(cells.pooled_levels, rows.pooled_levels)
    pd.testing.assert_frame_equal(cells.providers, rows.providers, rtol=1e-7)
    assert cells.diagnostics.loc[0, "nb_alpha"] == pytest.approx(
        rows.diagnostics.loc[0, "nb_alpha"], rel=1e-6
    )


def test_duckdb_spells_frame_is_the_pandas_frame():
    expected = derive.add_spell_fields(io.load_table("spells"))
    got = derive.load_spells(None, engine="duckdb")
    pd.testing.assert_frame_equal(got, expected)
    # the linkage found readmissions to another provider, the definition's point
    readmitted = got[got["readmit_30d"].fillna(False)]
    assert len(readmitted) > 100


def test_readmission_linkage_by_hand(tmp_path):
    """Four spells of one patient and one of another, gaps worked out by hand (helpers.derive's definition)."""
    rows = [
        # spell, patient, provider, admitted, discharged, method
        ("S1", "P1", "A", "2024-01-01", "2024-01-05", "21"),  # next emergency: S3 on 2024-01-05, gap 0
        (
            "S2",
            "P1",
            "A",
            "2024-01-03",
            "2024-01-04",
            "11",
        ),  # elective; next emergency on/after 01-04: S3, gap 1
        (
            "S3",
            "P1",
            "B",
            "2024-01-05",
            "2024-01-05",
            "22",
        ),  # same-day emergency: not itself; next S4, gap 34
        ("S4", "P1", "B", "2024-02-08", "2024-02-10", "21"),  # none after: missing
        ("S5", "P2", "A", "2024-01-06", "2024-01-06", "21"),  # other patient: missing
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "spell_id",
            "patient_id",
            "provider_code",
            "admission_date",
            "discharge_date",
            "admission_method",
        ],
    ).assign(age="70", sex="1", discharge_method="1")
    path = tmp_path / "five.csv"
    frame.to_csv(path, index=False)
    got = derive.load_spells(path, engine="duckdb")
    assert got["readmission_days"].tolist() == [0, 1, 34, pd.NA, pd.NA]
    assert got["readmit_30d"].tolist() == [True, True, False, False, False]
    pd.testing.assert_frame_equal(got, derive.add_spell_fields(io.load_table("spells", path)))


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_duckdb_reads_a_hes_style_extract_as_pandas_does(tmp_path, suffix):
    """Byte-order mark, dd/mm/yyyy dates, HES names in other cases and spaces, an extra column."""
    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(1500)
    for c in ["admission_date", "discharge_date"]:
        raw[c] = pd.to_datetime(raw[c]).dt.strftime("%d/%m/%Y")
    raw = raw.rename(
        columns={
            "provider_code": "PROCODE3",
            "admission_date": "admidate",
            "discharge_date": "DISDATE",
            "age": "STARTAGE",
            "sex": "Gender ",
            "hrg": "SUSHRG",
        }
    ).assign(extra="x")
    path = tmp_path / f"extract.{suffix}"
    if suffix == "csv":
        raw.to_csv(path, index=False, encoding="utf-8-sig")
    else:
        raw.to_excel(path, index=False)
    expected = derive.add_spell_fields(io.load_table("spells", path))
    got = derive.load_spells(path, engine="duckdb")
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs["load_summary"]["columns_mapped"] == expected.attrs["load_summary"]["columns_mapped"]
    assert got.attrs["load_summary"]["columns_ignored"] == ["extra"]


def test_numbers_and_dates_the_file_already_types_are_read_as_their_text_would_be(tmp_path):
    """A typed Parquet (numbers, NaN, timestamps, HES infant ages and null dates) and the same values as CSV text.

    The two take different paths through the contract's SQL: the text is parsed,
    the typed values are used as they are. They must give the same table, and the same message.
    """
    text = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(300).rename(columns={"age": "STARTAGE"})
    text.loc[5, "STARTAGE"] = "7003"  # a HES infant age: 0
    text.loc[7, "frailty_score"] = ""  # missing (NaN in Parquet)
    typed = text.assign(
        STARTAGE=text["STARTAGE"].astype("int64"),
        imd_decile=text["imd_decile"].astype("float64"),
        frailty_score=pd.to_numeric(text["frailty_score"]),
        spell_cost=pd.to_numeric(text["spell_cost"]),
        admission_date=pd.to_datetime(text["admission_date"]),
        discharge_date=pd.to_datetime(text["discharge_date"]).dt.date,
    )
    assert typed["frailty_score"].isna().sum() == 1
    csv, parquet = tmp_path / "text.csv", tmp_path / "typed.parquet"
    text.to_csv(csv, index=False)
    typed.to_parquet(parquet, index=False)
    from_text, from_typed = io.load_table("spells", csv), io.load_table("spells", parquet)
    pd.testing.assert_frame_equal(from_typed, from_text)
    assert from_typed.loc[5, "age"] == 0 and pd.isna(from_typed.loc[7, "frailty_score"])
    # a HES null date in a required column is missing, with the same message either way
    text = text.rename(columns={"admission_date": "ADMIDATE"})
    text.loc[9, "ADMIDATE"] = "1800-01-01"
    typed = typed.rename(columns={"admission_date": "ADMIDATE"})
    typed.loc[9, "ADMIDATE"] = pd.Timestamp("1800-01-01")
    text.to_csv(csv, index=False)
    typed.to_parquet(parquet, index=False)
    messages = []
    for path in (csv, parquet):
        with pytest.raises(io.InputError, match="expected a value in every row") as err:
            io.load_table("spells", path)
        messages.append(str(err.value).replace(path.name, "FILE").replace(str(path), "PATH"))
    assert "row 11:" in messages[0] and messages[0] == messages[1].replace(
        "1800-01-01 00:00:00", "1800-01-01"
    )


@pytest.mark.parametrize("suffix", ["csv", "cp1252.csv", "parquet"])
def test_duckdb_bad_file_gives_the_pandas_message(tmp_path, suffix):
    bad = bad_spells(tmp_path)
    path = tmp_path / f"bad.{suffix}"
    if suffix == "parquet":
        bad.to_parquet(path)
    else:
        bad.to_csv(path, index=False, encoding="cp1252" if suffix.startswith("cp") else "utf-8")
    with pytest.raises(io.InputError) as pandas_error:
        io.load_table("spells", path)
    with pytest.raises(io.InputError) as duck_error:
        contract.validate_table("spells", path, engine="duckdb")
    assert str(duck_error.value) == str(pandas_error.value)
    message = str(duck_error.value)
    assert "11 problems found" in message
    assert "row 5: admission_date=2024-02-30" in message  # header is row 1, data row 4 (0-based 3)
    assert "(12 rows)" in message and "... and 7 more" in message
    assert re.search(
        r"column 'patient_id': expected a value in every row \(it is required\) \(2 rows\)\n"
        r"\s+row 15: patient_id=''\n\s+row 21: patient_id=' null '\n",
        message,
    )


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_duckdb_na_like_text_in_required_columns_gives_the_pandas_message(tmp_path, suffix):
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(30)
    frame.loc[2, "provider_code"] = "NA"
    frame.loc[7, "provider_code"] = "None"
    frame.loc[4, "admission_date"] = "NULL"
    frame.loc[5, "spell_id"] = "nan"
    path = tmp_path / f"na.{suffix}"
    frame.to_parquet(path) if suffix == "parquet" else frame.to_csv(path, index=False)
    with pytest.raises(io.InputError) as pandas_error:
        io.load_table("spells", path)
    with pytest.raises(io.InputError) as duck_error:
        contract.validate_table("spells", path, engine="duckdb")
    assert str(duck_error.value) == str(pandas_error.value)
    message = str(duck_error.value)
    assert "3 problems found" in message
    assert re.search(
        r"column 'provider_code': expected a value in every row \(it is required\) \(2 rows\)\n"
        r"\s+row 4: provider_code=NA\n\s+row 9: provider_code=None\n",
        message,
    )
    assert (
        "column 'admission_date': expected a value in every row (it is required) (1 row)\n      row 6: admission_date=NULL"
        in message
    )
    assert (
        "column 'spell_id': expected a value in every row (it is required) (1 row)\n      row 7: spell_id=nan"
        in message
    )


def test_duckdb_missing_column_message_matches(tmp_path):
    frame = (
        pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
        .head(20)
        .rename(columns={"admission_date": "ADMDATE"})
    )
    path = tmp_path / "renamed.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(io.InputError) as pandas_error:
        io.load_table("spells", path)
    with pytest.raises(io.InputError) as duck_error:
        contract.validate_table("spells", path, engine="duckdb")
    assert str(duck_error.value) == str(pandas_error.value)
    assert "Did you mean 'ADMDATE'?" in str(duck_error.value)
    # and the column map fixes it, with the same rows as pandas
    assert contract.validate_table("spells", path, {"ADMDATE": "admission_date"}, engine="duckdb") == 20


def broken_file(tmp_path: Path, rule: contract.ContractRule) -> Path:
    """200 sample rows of the rule's table with its example: one row that breaks the rule and nothing else."""
    table, column, value = rule.example
    frame = pd.read_csv(io.sample_path(table), dtype=str, keep_default_na=False).head(200)
    row = 5
    when = io.table_columns(table)[column].get("required_when")
    if when:  # a row where the column is needed
        ((other, needed),) = when.items()
        row = int(frame.index[frame[other] == needed][0])
    if value == contract.DROPPED:
        frame = frame.drop(columns=[column])
    elif value == contract.DUPLICATE:
        frame.loc[row, column] = frame.loc[row - 1, column]
    else:
        frame.loc[row, column] = value
    path = tmp_path / f"{table}.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("rule", contract.CONTRACT_RULES, ids=lambda r: r.name)
def test_every_contract_rule_gives_the_pandas_message_in_duckdb(tmp_path, rule):
    """Loops over the records of helpers.contract: a new rule is checked in every engine with no new test."""
    table, column, _ = rule.example
    path = broken_file(tmp_path, rule)
    with pytest.raises(io.InputError) as pandas_error:
        io.load_table(table, path)
    with pytest.raises(io.InputError) as duckdb_error:
        contract.validate_table(table, path, engine="duckdb")
    message = str(duckdb_error.value)
    assert message == str(pandas_error.value)
    assert "1 problem found" in message and f"column '{column}'" in message


def test_virtual_ward_table_rules(tmp_path):
    vw = pd.read_csv(io.sample_path("virtual_ward"), dtype=str, keep_default_na=False).head(50)
    vw.loc[2, "route"] = "step-down"  # recoded
    vw.loc[3, "route"] = "sideways"
    step_down = vw.index[vw["route"] == "step_down"][0]
    vw.loc[step_down, "linked_spell_id"] = ""
    path = tmp_path / "vw.csv"
    vw.to_csv(path, index=False)
    with pytest.raises(io.InputError) as pandas_error:
        io.load_table("virtual_ward", path)
    with pytest.raises(io.InputError) as duck_error:
        contract.validate_table("virtual_ward", path, engine="duckdb")
    assert str(duck_error.value) == str(pandas_error.value)
    assert "a value where route is step_down" in str(duck_error.value)


def test_empty_indicator_population_is_the_same_input_error_in_every_engine(tmp_path):
    """A short extract (three weeks of admissions): no spell has 30 days of follow-up inside it."""
    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    first = pd.to_datetime(raw["admission_date"]).min()
    short = raw[pd.to_datetime(raw["admission_date"]) < first + pd.Timedelta(days=21)]
    assert 500 < len(short) < len(raw)
    path = tmp_path / "short.csv"
    short.to_csv(path, index=False)
    with pytest.raises(io.InputError) as info:
        variation.prepare_variation(path, "readmission_30d", engine="duckdb")
    assert str(info.value) == casemix.empty_population_message("readmission_30d")
    assert "no spell has a full 30-day follow-up inside the extract" in str(info.value)
    # the other indicators still fit on the same extract
    assert variation.prepare_variation(path, "los", engine="duckdb").model.providers["denominator"].sum() > 0


def test_unknown_term_and_year_are_clear_errors():
    with pytest.raises(ValueError, match=r"Case-mix term\(s\) 'ethnicity' unknown"):
        variation.prepare_variation(None, "los", ["age_band", "ethnicity"], engine="duckdb")
    with pytest.raises(ValueError, match="the data cover 2023/24, 2024/25"):
        variation.prepare_variation(None, "los", financial_year="2019/20", engine="duckdb")


def test_engine_option_is_refused_by_a_notebook_without_the_parameter(tmp_path):
    from helpers import cli

    # a notebook without the parameter refuses the option instead of ignoring it
    assert cli.main(["run", "spc", "--engine", "duckdb", "--out", str(tmp_path / "spc"), "--quiet"]) == 2
    assert not (tmp_path / "spc").exists()


def _spark_or_skip():
    pytest.importorskip(
        "pyspark", reason="pyspark is not installed (requirements-spark.txt): the Spark engine is not tested"
    )
    pytest.importorskip(
        "sqlglot", reason="sqlglot is not installed (requirements-spark.txt): the Spark engine is not tested"
    )
    if shutil.which("java") is None:
        pytest.skip("Java is not installed: the Spark engine is not tested")


@pytest.fixture(scope="module")
def spark():
    _spark_or_skip()
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("test_engine")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_provider_indicator_is_the_pandas_table(duckdb_results, spark):
    for indicator in ("readmission_30d",):  # the one with the linkage; the rest of the SQL is shared
        got = variation.prepare_variation(None, indicator, engine="spark", spark=spark)
        expected = provider_indicator(duckdb_results[indicator], indicator)
        pd.testing.assert_frame_equal(provider_indicator(got, indicator), expected, **EXACT)
        pd.testing.assert_frame_equal(got.exclusions, duckdb_results[indicator].exclusions)
        assert got.bed_days_per_event == duckdb_results[indicator].bed_days_per_event


@pytest.fixture(scope="module")
def spells_by_engine(tmp_path_factory, spark) -> dict[str, pd.DataFrame]:
    """3,000 sample spells with their derived fields, from each engine and from a frame already loaded."""
    path = tmp_path_factory.mktemp("spells") / "spells.csv"
    pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(3000).to_csv(path, index=False)
    return {
        "frame": derive.add_spell_fields(io.load_table("spells", path)),  # the SQL run on a loaded frame
        "duckdb": derive.load_spells(path, engine="duckdb"),
        "spark": derive.load_spells(path, engine="spark", spark=spark),
    }


@pytest.mark.parametrize("field", derive.SPELL_FIELDS, ids=lambda f: f.name)
def test_every_derived_field_is_the_same_in_every_engine(spells_by_engine, field):
    """Loops over the records of helpers.derive: a new field is compared across engines with no new test."""
    duck = spells_by_engine["duckdb"][field.name]
    assert str(duck.dtype) == field.dtype
    pd.testing.assert_series_equal(spells_by_engine["spark"][field.name], duck)
    pd.testing.assert_series_equal(spells_by_engine["frame"][field.name], duck)
    if field.dtype in {"bool", "boolean"}:  # both values occur in 3,000 spells (died: where the file says so)
        assert duck.fillna(False).any() and not duck.fillna(False).all()


def test_spark_bad_file_gives_the_pandas_message(tmp_path, spark):
    path = tmp_path / "bad.parquet"
    bad_spells(tmp_path).to_parquet(path)
    with pytest.raises(io.InputError) as pandas_error:
        io.load_table("spells", path)
    with pytest.raises(io.InputError) as spark_error:
        contract.validate_table("spells", path, engine="spark", spark=spark)
    assert str(spark_error.value) == str(pandas_error.value)


@pytest.mark.parametrize("rule", contract.CONTRACT_RULES, ids=lambda r: r.name)
def test_every_contract_rule_gives_the_same_message_in_spark(tmp_path, spark, rule):
    path = broken_file(tmp_path, rule)
    with pytest.raises(io.InputError) as duckdb_error:
        contract.validate_table(rule.example[0], path, engine="duckdb")
    with pytest.raises(io.InputError) as spark_error:
        contract.validate_table(rule.example[0], path, engine="spark", spark=spark)
    assert str(spark_error.value) == str(duckdb_error.value)


def test_spark_sql_is_transpiled_not_handwritten(spark):
    backend = engine.Spark(spark)
    sql = backend.to_spark(
        "SELECT DATE_DIFF('day', DATE '2024-01-01', DATE '2024-03-01') AS d, "
        "REGEXP_MATCHES('J44', '^[A-Z][0-9]{2}') AS ok"
    )
    row = spark.sql(sql).collect()[0]
    assert (row["d"], row["ok"]) == (60, True)  # 31 days of January + 29 of February 2024
