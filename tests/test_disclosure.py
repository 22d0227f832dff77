"""Small-number suppression (HES analysis guide: 1 to 7 shown as *, the row's other counts rounded to 5)."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.disclosure import guess_count_columns, suppress
from helpers.report import publish

TABLE = pd.DataFrame(
    {
        "provider_code": ["T01", "T02", "T03"],
        "denominator": [1234, 52, 0],
        "observed": [101, 3, 0],
        "rate": [101 / 1234, 3 / 52, float("nan")],
    }
)


def test_counts_are_recognised_by_name():
    assert guess_count_columns(TABLE) == ["denominator", "observed"]


def test_small_counts_starred_and_row_rounded_so_they_cannot_be_recovered():
    safe, n = suppress(TABLE)
    assert safe.loc[0, "denominator"] == 1234 and safe.loc[0, "observed"] == 101  # nothing small: untouched
    assert safe.loc[1, "observed"] == "*"
    assert safe.loc[1, "denominator"] == 50  # 52 rounded to the nearest 5
    assert safe.loc[1, "rate"] == "*"  # a rate from a suppressed count
    assert safe.loc[2, "observed"] == 0  # zero discloses nothing
    assert n == 2


def test_threshold_is_a_parameter():
    safe, _ = suppress(TABLE, threshold=2)
    assert safe.loc[1, "observed"] == 3
    safe, _ = suppress(TABLE, threshold=0)
    pd.testing.assert_frame_equal(safe, TABLE)


def test_publish_writes_suppressed_csv_and_refuses_identifiers(tmp_path):
    publish(TABLE, "provider_indicator", tmp_path)
    text = (tmp_path / "provider_indicator.csv").read_text()
    assert "T02,50,*,*" in text
    with pytest.raises(ValueError, match="identifier column"):
        publish(TABLE.assign(patient_id="P1"), "bad", tmp_path)
    with pytest.raises(ValueError, match="lower_snake_case"):
        publish(TABLE, "Bad Name", tmp_path)


from helpers.disclosure import is_valid_nhs_number, scan_outputs  # noqa: E402


@pytest.mark.parametrize(
    "number,valid",
    [
        ("9434765919", True),
        ("943 476 5919", True),
        ("9434765918", False),
        ("4010232137", True),
        ("1234567890", False),
    ],
)
def test_nhs_number_check_digit(number, valid):
    # 9434765919 and 4010232137 are NHS Digital's published test numbers; 1234567890 has check digit 10 (never valid)
    assert is_valid_nhs_number(number) is valid


def test_scan_catches_a_planted_nhs_number_and_an_input_identifier(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "ok.csv").write_text("provider_code,rate\nT01,0.1234567891\n")
    assert scan_outputs(tmp_path, {"P0001234"}) == []  # a float's digits are not an NHS number
    (tmp_path / "report.html").write_text("<p>Patient 943 476 5919 was readmitted</p>")
    (tmp_path / "tables" / "bad.csv").write_text("provider_code,who\nT01,P0001234\n")
    findings = scan_outputs(tmp_path, {"P0001234"})
    assert findings == [
        "report.html: 1 valid NHS number(s)",
        "tables/bad.csv: 1 input identifier value(s), e.g. P00…",
    ]
