"""Providers compared on one indicator: the funnel's input from spells or from an indicator file, decided once.

The variation notebook takes either patient-level spells, from which it builds
the indicator and fits its case-mix model
(:func:`helpers.variation.prepare_variation`), or an aggregate indicator file
with one row per provider (:func:`helpers.funnel.from_indicator_table`).
:func:`prepare_comparison` makes that choice and returns a
:class:`Comparison` with everything the later steps read (the funnel input,
its kind and scale, the years covered, the definition, the exclusions, the
table whose data quality is reported, the case-mix tables to publish, the
bed days per event), so that no later cell has to ask which input was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from helpers import casemix, disclosure, funnel, indicators, io, report, variation
from helpers.display import format_table

#: What the calibration step says when the indicator file carries its own expected values.
NO_MODEL_NOTE = "No case-mix model: the indicator file carries its own expected values."
#: The columns an aggregate indicator file may have, with their types (helpers.io.load_frame).
INDICATOR_FILE_COLUMNS = {
    "observed": "number",
    "expected": "number",
    "numerator": "number",
    "denominator": "number",
}


@dataclass(frozen=True)
class ModelTable:
    """A table of the case-mix model to publish: its name, its data and its suppression threshold."""

    name: str
    table: pd.DataFrame
    threshold: int = disclosure.DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Comparison:
    """The providers' funnel input and what goes with it, whichever input the notebook was given.

    ``source``: ``"spells"`` or ``"indicator"``; ``funnel_input`` and ``kind``
    (``"ratio"`` or ``"proportion"``) for :func:`helpers.funnel.funnel`;
    ``scale``: the model's dispersion (1 for an indicator file); ``years``:
    the extract's coverage in years (1 for an indicator file);
    ``definition``: the indicator's definition as applied;
    ``loaded``: the input the data quality block reports on (:class:`helpers.io.LoadedTable`); ``exclusions``:
    the indicator's exclusion steps (None for an indicator file);
    ``model_tables``: case-mix diagnostics, calibration and terms (none for an
    indicator file); ``bed_days_per_event``: bed days one avoided event
    releases (the parameter if given, else estimated from the spells; 1 for
    length of stay; None when unknown); ``inputs``: the input's name and file,
    for the summary; ``notes``: what to print about the definition and the coverage;
    ``terms_note``: the case-mix terms used and those left out, in words.
    """

    source: str
    funnel_input: pd.DataFrame
    kind: str
    scale: float
    years: float
    definition: Any
    loaded: io.LoadedTable
    exclusions: pd.DataFrame | None
    bed_days_per_event: float | None
    inputs: Mapping[str, Any]
    model_tables: tuple[ModelTable, ...] = ()
    notes: tuple[str, ...] = ()
    terms_note: str = NO_MODEL_NOTE
    engine: str | None = None

    @property
    def precision_label(self) -> str:
        """The funnel's x axis: expected events (a ratio) or cases (a proportion)."""
        if self.kind != "ratio":
            return "Cases (denominator)"
        return "Expected " + (self.definition.unit if self.source == "spells" else "count")

    @property
    def value_label(self) -> str:
        """The funnel's y axis."""
        return "Observed / expected" if self.kind == "ratio" else self.definition.label.capitalize()

    @property
    def opportunity_unit(self) -> str:
        """What the opportunity is counted in: bed days when events convert to bed days, else the indicator's unit."""
        return "bed days" if self.bed_days_per_event is not None else self.definition.unit

    def publish_model_tables(self, output_dir: str | Path | None) -> dict[str, pd.DataFrame]:
        """Publish the case-mix tables (:func:`helpers.report.publish`); returns them as published, by name."""
        return {
            t.name: report.publish(t.table, t.name, output_dir, threshold=t.threshold)
            for t in self.model_tables
        }

    @staticmethod
    def show(published: Mapping[str, pd.DataFrame], name: str) -> Any:
        """A published model table formatted for reading, or the sentence that says there is no model."""
        return format_table(published[name]) if name in published else NO_MODEL_NOTE


def prepare_comparison(
    data_spells: str | Path | None = None,
    data_indicator: str | Path | None = None,
    indicator: str = "los",
    case_mix: Sequence[str] | None = None,
    adjust_for_deprivation: bool = False,
    financial_year: str | None = None,
    column_map: Mapping[str, str] | None = None,
    engine: str = "duckdb",
    *,
    data_deaths: str | Path | None = None,
    higher_is_better: bool | None = None,
    bed_days_per_event: float | None = None,
) -> Comparison:
    """The funnel input of the variation notebook, from ``data_indicator`` if given, else from the spells.

    From spells: :func:`helpers.variation.prepare_variation` (read, derive,
    restrict, fit the case-mix model) with ``engine``; the model's providers
    are the funnel input (a ratio), its dispersion the scale. From an
    indicator file: :func:`helpers.io.load_own_input` and
    :func:`helpers.funnel.from_indicator_table`. ``higher_is_better`` and
    ``bed_days_per_event`` override the indicator's own when not None.
    """
    casemix.indicator_definition(
        indicator, data_indicator is not None, higher_is_better
    )  # a wrong name stops here
    if data_indicator is not None:
        return _from_indicator_file(
            data_indicator, indicator, column_map, higher_is_better, bed_days_per_event
        )
    prepared = variation.prepare_variation(
        data_spells,
        indicator,
        case_mix,
        adjust_for_deprivation,
        financial_year,
        column_map or None,
        engine,
        data_deaths=data_deaths,
    )
    definition = casemix.indicator_definition(indicator, False, higher_is_better, prepared.definition)
    model = prepared.model
    tables = (
        ModelTable("casemix_diagnostics", model.diagnostics, 0),
        ModelTable("calibration", model.calibration),
        ModelTable("casemix_terms", prepared.casemix_terms, 0),
    )
    notes = (
        indicators.describe(definition),
        f"Per-year figures divide by the extract's coverage: {prepared.years:.2f} years.",
    )
    per_event = bed_days_per_event if bed_days_per_event is not None else prepared.bed_days_per_event
    return Comparison(
        "spells",
        model.providers,
        "ratio",
        model.dispersion,
        prepared.years,
        definition,
        prepared.loaded,
        prepared.exclusions,
        per_event,
        {"spells": data_spells},
        tables,
        notes,
        casemix.describe_terms(prepared.casemix_terms),
        prepared.engine,
    )


def _from_indicator_file(
    data_indicator: str | Path,
    indicator: str,
    column_map: Mapping[str, str] | None,
    higher_is_better: bool | None,
    bed_days_per_event: float | None,
) -> Comparison:
    definition = casemix.indicator_definition(indicator, True, higher_is_better)
    loaded = io.load_own_input(
        data_indicator, {"provider_code": "string"}, "indicator", column_map or None, INDICATOR_FILE_COLUMNS
    )
    funnel_input, kind = funnel.from_indicator_table(loaded.frame)
    per_event = (
        bed_days_per_event if bed_days_per_event is not None else (1.0 if indicator == "los" else None)
    )
    return Comparison(
        "indicator",
        funnel_input,
        kind,
        1.0,
        1,
        definition,
        loaded,
        None,
        per_event,
        {"indicator": data_indicator},
        (),
        (NO_MODEL_NOTE,),
    )
