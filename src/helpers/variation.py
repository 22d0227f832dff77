"""The variation workflow: spells to a case-mix model of one indicator, in SQL.

:func:`prepare_variation` reads the spells with an engine
(:mod:`helpers.contract`, :mod:`helpers.engine`), derives their fields
(:mod:`helpers.derive`), keeps the financial year and the indicator's
population (:mod:`helpers.indicators`) and sums the case-mix cells; only the
aggregated cells (a few thousand rows) reach pandas, where
:func:`helpers.casemix.fit_cells` fits the indirectly standardised model (the
cell totals are the sufficient statistics of the binomial and Poisson
likelihoods; METHODS.md section 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from helpers import casemix, disclosure, indicators, periods
from helpers import engine as engines
from helpers.casemix import INDICATORS, MIN_LEVEL_SPELLS, CasemixModel, fit_cells, term_sql
from helpers.contract import TableSource, open_table
from helpers.derive import spell_fields_sql
from helpers.engine import literal, quote
from helpers.indicators import OUTCOME_SQL, deaths_sql
from helpers.quality import profile_sql, stand_in


@dataclass
class VariationInput:
    """What the variation notebook needs from the spells, whichever engine read them.

    ``model``: the fitted :class:`helpers.casemix.CasemixModel`; ``exclusions``:
    step, rows_before, rows_excluded, rows_after, reason (the financial year,
    then each step of the indicator's definition); ``years``: length in years of the extract's coverage;
    ``bed_days_per_event``: see :func:`helpers.casemix.bed_days_per_event`;
    ``spells_read``: rows in the file; ``engine``: which engine ran;
    ``spells``: a frame with no rows whose attrs
    carry the load summary and the data quality profile computed in SQL, for
    :func:`helpers.quality.data_quality`, :func:`helpers.quality.describe` and
    :func:`helpers.quality.exclusion_flow`; ``casemix_terms``: the case-mix
    terms asked for, whether each was used and why not
    (:func:`helpers.casemix.resolve_terms`).
    """

    model: CasemixModel
    exclusions: pd.DataFrame
    years: float
    bed_days_per_event: float | None
    spells_read: int
    engine: str
    spells: pd.DataFrame | None = None
    casemix_terms: pd.DataFrame | None = None
    definition: indicators.Indicator | None = None


def prepare_variation(
    data_spells: str | Path | None = None,
    indicator: str = "los",
    case_mix: Sequence[str] | None = None,
    include_deprivation: bool = False,
    financial_year: str | None = None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "duckdb",
    *,
    data_deaths: str | Path | None = None,
    min_level_spells: int = MIN_LEVEL_SPELLS,
    spark: Any | None = None,
) -> VariationInput:
    """Read the spells, derive, restrict, and fit the case-mix model of one indicator.

    The spell-level steps run in SQL on ``engine`` (``"duckdb"``, the default,
    or ``"spark"``; ``"pandas"``, the retired in-memory path, runs on DuckDB)
    and the model is fitted on the aggregated cells with
    :func:`helpers.casemix.fit_cells`: the numbers of
    :func:`helpers.casemix.fit_casemix` on the rows, without holding the spells in memory.
    The definition is :func:`helpers.indicators.resolve` for the file's columns
    (and ``data_deaths``, a deaths table, for mortality); ``case_mix=None``
    uses the definition's own terms. ``years`` is the length of the extract's
    coverage (:mod:`helpers.periods`), within the financial year if one is chosen.
    An indicator whose population is empty raises :class:`helpers.io.InputError`
    (:func:`helpers.casemix.empty_population_message`) whichever engine ran.
    """
    if indicator not in INDICATORS:
        raise ValueError(f"indicator must be one of {', '.join(INDICATORS)}; got {indicator!r}.")
    engine = engines.engine_name(engine)
    src = open_table("spells", data_spells, column_map or None, engine, spark=spark)
    try:
        deaths_src = None
        if data_deaths is not None:
            deaths_src = open_table("deaths", data_deaths, column_map or None, engine, backend=src.backend)
        definition = indicators.resolve(indicator, src.present, deaths_src is not None)
        terms = definition.case_mix if case_mix is None else case_mix
        return _variation_sql(
            src, definition, terms, include_deprivation, financial_year, min_level_spells, engine, deaths_src
        )
    finally:
        src.backend.close()


def _variation_sql(
    src: TableSource,
    definition: indicators.Indicator,
    case_mix: Sequence[str],
    include_deprivation: bool,
    financial_year: str | None,
    min_level_spells: int,
    engine: str,
    deaths: TableSource | None = None,
) -> VariationInput:
    threshold = disclosure.DEFAULT_THRESHOLD
    be = src.backend
    counted = ", ".join(f"COUNT({quote(c)}) AS {quote(c)}" for c in src.present)
    non_missing = {
        str(k): int(v) for k, v in be.query(f"SELECT {counted} FROM ({src.typed_sql}) AS v").iloc[0].items()
    }
    terms, term_table = casemix.resolve_terms(case_mix, src.present, include_deprivation, non_missing)
    include_deprivation = casemix.DEPRIVATION_TERM in terms
    terms_sql = [term_sql(t, src.present) for t in terms]
    readmit = "emergency"
    if definition.readmission_excludes is not None:
        readmit = f"(emergency AND NOT {indicators.rule_sql(definition.readmission_excludes, src.present)})"
    derived = spell_fields_sql(
        src, 30, None, readmission=definition.kind == "readmission", carry=["_rownum"], readmit=readmit
    )
    outcome = OUTCOME_SQL.get(definition.outcome)
    if definition.outcome == "died_30d":
        derived = deaths_sql(derived, deaths, src)
        outcome = "CASE WHEN died_30d THEN 1 ELSE 0 END"
    flags = [
        indicators.rule_sql(s.rule, src.present) if s.needs is None or s.needs in src.present else "FALSE"
        for s in definition.steps
    ]
    in_year = "TRUE" if financial_year is None else f"financial_year = {literal(financial_year)}"
    term_cols = ", ".join(f"{sql} AS _t{i}" for i, sql in enumerate(terms_sql))
    flag_cols = "".join(f", ({f}) AS _x{i}" for i, f in enumerate(flags))
    in_pop = " AND ".join(f"NOT _x{i}" for i in range(len(flags))) or "TRUE"
    be.materialise(  # one pass over the spells: everything the counts and the cells below need
        "variation_pop",
        f"SELECT *, ({in_pop}) AS _in_pop FROM (SELECT _rownum, provider_code, financial_year, emergency, "
        f"elective, day_case, los_days, ({in_year}) AS _in_year, CAST({outcome} AS BIGINT) AS _y, "
        f"{term_cols}{flag_cols} FROM ({derived}) AS d) AS b",
    )
    step_counts = "".join(
        f", SUM(CASE WHEN _in_year AND {' AND '.join([f'NOT _x{j}' for j in range(i)] + [f'_x{i}'])} THEN 1 ELSE 0 END) AS x{i}"
        for i in range(len(flags))
    )
    c = be.query(
        "SELECT COUNT(*) AS n_all, SUM(CASE WHEN _in_year THEN 1 ELSE 0 END) AS n_year, "
        "SUM(CASE WHEN _in_year AND _in_pop THEN 1 ELSE 0 END) AS n_pop, "
        "COUNT(DISTINCT CASE WHEN _in_year THEN financial_year END) AS n_years, "
        "AVG(CASE WHEN _in_year AND emergency THEN los_days END) AS los_emergency, "
        f"AVG(CASE WHEN _in_year AND elective AND NOT day_case THEN los_days END) AS los_ordinary_elective{step_counts} "
        "FROM variation_pop"
    ).iloc[0]
    n_all, n_year = int(c["n_all"]), int(c["n_year"] or 0)
    if financial_year is not None and n_year == 0:
        years = be.query("SELECT DISTINCT financial_year FROM variation_pop WHERE financial_year IS NOT NULL")
        listed = ", ".join(sorted(years["financial_year"].astype(str)))
        raise ValueError(
            f"Spells: no spell discharged in financial year {financial_year!r}; the data cover {listed}."
        )
    year_ex = pd.DataFrame(
        {
            "step": [f"financial year {financial_year}" if financial_year else "all financial years"],
            "rows_before": [n_all],
            "rows_excluded": [n_all - n_year],
            "rows_after": [n_year],
            "reason": ["discharged in another financial year" if financial_year else "none excluded"],
        }
    )
    pop_ex = indicators.exclusions_table(
        definition, [int(c[f"x{i}"] or 0) for i in range(len(flags))], n_year, src.present
    )
    groups = ", ".join(f"_t{i}" for i in range(len(terms)))
    # _first (the cell's first row in the file) lets fit_cells add up in the order the rows would be
    pcells = be.query(
        f"SELECT {groups}, provider_code, COUNT(*) AS n, SUM(_y) AS events, MIN(_rownum) AS _first "
        f"FROM variation_pop "
        f"WHERE _in_year AND _in_pop GROUP BY {groups}, provider_code"
    )
    vcells = None
    if definition.family != "binomial":
        vcells = be.query(
            f"SELECT {groups}, _y, COUNT(*) AS w, MIN(_rownum) AS _first FROM variation_pop "
            f"WHERE _in_year AND _in_pop GROUP BY {groups}, _y"
        )
    names = {f"_t{i}": t for i, t in enumerate(terms)}
    pcells = pcells.rename(columns=names)
    if vcells is not None:
        vcells = vcells.rename(columns=names)
    model = fit_cells(
        pcells,
        terms,
        definition.family,
        vcells=vcells,
        include_deprivation=include_deprivation,
        min_level_spells=min_level_spells,
        indicator=definition.name,
    )
    per_event = {
        "los": 1.0,
        "readmission": c["los_emergency"],
        "day_case": c["los_ordinary_elective"],
        "mortality": None,
    }[definition.kind]
    per_event = None if per_event is None else float(per_event) if not pd.isna(per_event) else float("nan")
    # the profile of the contract columns needs the derived fields only to keep one financial year
    profiled = src.typed_sql if financial_year is None else spell_fields_sql(src, 30, None, readmission=False)
    profile = profile_sql(src, in_year, profiled, threshold)
    cover = periods.coverage_from_months(src.stats["admissions_by_month"])
    if financial_year is not None:
        cover = cover.clip(*periods.financial_year_bounds(financial_year))
    return VariationInput(
        model,
        pd.concat([year_ex, pop_ex], ignore_index=True),
        cover.years,
        per_event,
        src.rows,
        engine,
        stand_in(src, n_year, profile),
        casemix_terms=term_table,
        definition=definition,
    )
