"""The case mix uses the terms the data allow and says why the others were left out (issue 16)."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import casemix, io, variation


@pytest.fixture(scope="module")
def spells_without_optional(tmp_path_factory) -> str:
    """The sample spells without frailty_score and hrg, as a HES or SUS extract comes."""
    raw = pd.read_csv(io.sample_path("spells"), dtype=str, keep_default_na=False)
    path = tmp_path_factory.mktemp("terms") / "spells.csv"
    raw.drop(columns=["frailty_score", "hrg"]).to_csv(path, index=False)
    return str(path)


def test_resolve_terms_drops_absent_columns_with_reasons():
    used, table = casemix.resolve_terms(
        casemix.DEFAULT_TERMS, ["age", "sex", "admission_method", "imd_decile"]
    )
    assert used == ["age_band", "sex", "admission_method"]
    dropped = table.set_index("term").loc[["hrg", "frailty_band"]]
    assert (dropped["used"] == "no").all()
    assert "frailty score" in dropped.loc["frailty_band", "reason"]
    assert "diagnosis" in dropped.loc["frailty_band", "reason"]
    text = casemix.describe_terms(table)
    assert "Not used: hrg" in text and "age_band, sex, admission_method" in text


def test_resolve_terms_deprivation_and_empty_columns():
    used, table = casemix.resolve_terms(
        ["age_band", "hrg"], ["age", "hrg"], include_deprivation=True, non_missing={"age": 10, "hrg": 0}
    )
    assert used == ["age_band"]
    reasons = table.set_index("term")["reason"]
    assert "every value of hrg is missing" == reasons["hrg"]
    assert "IMD" in reasons["imd_decile"]


def test_unknown_term_is_a_clear_error():
    with pytest.raises(ValueError, match="did you mean 'frailty_band'"):
        casemix.resolve_terms(["frailty_bnd"], ["age"])


def test_one_term_given_as_text_is_one_term_not_its_letters():
    """`--param case_mix=age_band` arrives as the string "age_band"."""
    used, _ = casemix.resolve_terms("age_band", ["age", "sex"])
    assert used == ["age_band"]


def test_default_case_mix_runs_without_optional_columns(spells_without_optional):
    prepared = variation.prepare_variation(spells_without_optional, "los", engine="duckdb")
    terms = prepared.casemix_terms.set_index("term")
    assert terms.loc[["hrg", "frailty_band"], "used"].eq("no").all()
    assert prepared.model.terms == ["age_band", "sex", "admission_method"]
    # the same fit as asking for the three terms explicitly
    explicit = variation.prepare_variation(
        spells_without_optional, "los", ["age_band", "sex", "admission_method"], engine="duckdb"
    )
    pd.testing.assert_frame_equal(prepared.model.providers, explicit.model.providers)
