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
