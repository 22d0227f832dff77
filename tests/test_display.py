"""The reader's table formatter: one number format rule for the book, the report and the workbook."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import display, report
from helpers.display import format_table, format_value, formatted_frame, number_format


def test_workbook_and_book_share_one_rule():
    # report re-exports the display module's definitions: one rule, not two copies
    assert report.number_format is display.number_format
    assert report.POUNDS == display.POUNDS and report.PERCENT == display.PERCENT
    # every format the rule can choose has a text rendering
    for code in (
        display.POUNDS,
        display.PERCENT,
        display.PERCENT_POINTS,
        display.P_VALUE,
        display.WHOLE,
        display.PLAIN_WHOLE,
        display.DECIMAL,
        display.ONE_DECIMAL,
        display.SMALL_DECIMAL,
        None,
    ):
        assert isinstance(format_value(1234.5678, code), str)


@pytest.mark.parametrize(
    "column,values,expected",
    [
        ("capacity_released_gbp", [2049598.4], "£2,049,598"),  # the raw 2.049598e+06 of the issue
        ("gap_to_target_gbp", [-1234567.6], "-£1,234,568"),
        ("share_of_plan", [0.459821], "46.0%"),  # a fraction shown as per cent
        ("pct_complete", [99.53], "99.5%"),  # already per cent
        ("p_value", [0.00003], "<0.0001"),
        ("p_value", [0.03124], "0.0312"),
        ("opportunity_bed_days", [5947.760932], "5,948"),  # bed days: whole above 100
        ("mean_los_days", [4.349], "4.3"),  # days: one decimal below 100
        ("n", [1234], "1,234"),
        ("financial_year_start", [2024], "2024"),  # a year is a label, no separator
        ("mean_age", [84.333], "84.33"),
        ("cost_ratio", [0.9461], "0.946"),  # a ratio, not money
        ("tau2", [0.00067], "0.00067"),
        ("ci_lower_days", [-0.04], "0.0"),  # no "-0.0"
        ("net_gbp", [-0.4], "£0"),
    ],
)
def test_number_rule_by_column_name(column, values, expected):
    assert format_value(values[0], number_format(column, values)) == expected


def test_blanks_suppression_and_text_are_shown_plainly():
    table = pd.DataFrame(
        {
            "scheme": ["Ward skill-mix review", None, "Sale of surplus land"],
            "value_gbp": [900000.0, np.nan, 1500000.0],
            "observed": pd.array([12, pd.NA, 40], dtype="Int64"),
            "share": ["*", 0.5, 0.25],  # after disclosure control: a suppressed cell is the text *
            "cash_releasing": [True, False, True],
        }
    )
    text = formatted_frame(table)
    assert list(text.columns) == ["scheme", "value", "observed", "share", "cash releasing"]
    assert text.iloc[1].tolist() == ["–", "–", "–", "50.0%", "no"]
    assert text.iloc[0].tolist() == ["Ward skill-mix review", "£900,000", "12", "*", "yes"]
    html = format_table(table).to_html()
    for raw in ("NaN", "<NA>", "None", "nan"):
        assert raw not in html
    assert "<th" in html and "blank" not in html  # no index column (pandas' index header is a 'blank' cell)
    assert "row_heading" not in html


def test_rows_with_their_own_units_are_formatted_row_by_row():
    impact = pd.DataFrame(
        {
            "measure": [
                "treated_spells",
                "bed_days_released",
                "beds_equivalent",
                "capacity_released_gbp",
                "effect_on_acute_los_days",
            ],
            "value": [412.0, 1234.567, 3.6712, 2049598.43, -1.2345],
            "ci_lower": [np.nan, 800.2, 2.31, 1400000.2, -1.9],
            "unit": ["spells", "bed days", "beds", "£", "days per treated spell"],
        }
    )
    text = formatted_frame(impact, labels=False)
    assert text["value"].tolist() == ["412", "1,235", "3.7", "£2,049,598", "-1.2"]
    assert text["ci_lower"].tolist() == ["–", "800", "2.3", "£1,400,000", "-1.9"]


def test_formats_can_be_set_by_name_and_bad_names_are_refused():
    table = pd.DataFrame({"value_qia_approved": [4250000.0], "ratio": [1.23456]})
    text = formatted_frame(table, {"value_qia_approved": "money", "ratio": display.ONE_DECIMAL})
    assert text.iloc[0].tolist() == ["£4,250,000", "1.2"]
    assert formatted_frame(table, {"nope": "money"}).iloc[0].tolist() == ["4,250,000", "1.235"]  # ignored
    assert formatted_frame(table, "money").iloc[0].tolist() == ["£4,250,000", "£1"]  # every numeric column
    with pytest.raises(ValueError, match="unknown format"):
        formatted_frame(table, {"ratio": "furlongs"})


def test_labels_dates_and_transpose():
    assert display.reader_label("capacity_released_gbp") == "capacity released"
    assert display.reader_label("pct_complete") == "% complete"
    assert display.reader_label("cost_per_qaly_ci_lower") == "cost per QALY CI lower"
    months = pd.DataFrame({"month": pd.to_datetime(["2024-04-01", "2024-05-01"]), "n": [3, 4]})
    assert formatted_frame(months)["month"].tolist() == ["Apr 2024", "May 2024"]
    one_row = pd.DataFrame({"comparator": ["knee"], "icer": [457.917], "delta_qalys": [0.66679]})
    shown = format_table(one_row, transpose=True)
    assert shown.data.columns.tolist() == ["measure", "value"]
    assert shown.data["value"].tolist() == ["knee", "£458", "0.667"]
    assert "£458" in repr(shown) and "comparator" in str(shown)


def test_table_is_a_styler_with_wrapping_and_right_aligned_numbers():
    table = pd.DataFrame({"scheme": ["A long scheme name that should wrap"], "value_gbp": [1.0e6]})
    styler = format_table(table, caption="The plan")
    assert isinstance(styler, pd.io.formats.style.Styler)
    html = styler.to_html()
    assert "white-space: normal" in html and "text-align: right" in html and "The plan" in html
    assert html == format_table(table, caption="The plan").to_html()  # the same table gives the same HTML


def test_a_meaningful_index_becomes_a_column_and_row_numbers_go():
    long = pd.DataFrame(
        {
            "pathway": ["hip", "hip", "knee", "knee"],
            "duration_years": [1.0, 10.0, 1.0, 10.0],
            "cost_per_qaly": [45123.4, 5123.4, 60321.9, 7001.2],
        }
    )
    wide = long.pivot(index="pathway", columns="duration_years", values="cost_per_qaly")
    text = formatted_frame(wide, "money")
    assert list(text.columns) == ["pathway", "duration years: 1", "duration years: 10"]
    assert text.iloc[1].tolist() == ["knee", "£60,322", "£7,001"]
    filtered = long[long["pathway"] == "knee"]  # index 2, 3: row numbers, not data
    assert list(formatted_frame(filtered).columns) == ["pathway", "duration years", "cost per QALY"]


def test_spc_summary_of_a_count_reports_no_negative_lower_limit():
    from helpers import spc

    # a small, very variable count: the XmR lower limit (mean - 2.66 x mean moving range) is below 0
    values = [3, 9, 1, 12, 2, 10, 0, 11, 4, 8, 1, 13, 2, 9]
    series = pd.DataFrame(
        {"date": pd.date_range("2024-04-01", periods=len(values), freq="MS"), "value": values}
    )
    table = spc.spc(series)
    assert table["lower_limit"].iloc[-1] < 0  # the chart's own limit, as computed
    summary = spc.summarise(table)
    assert summary["lower_limit"].iloc[0] == 0.0
    assert summary["upper_limit"].iloc[0] == pytest.approx(table["upper_limit"].iloc[-1])
    shown = formatted_frame(summary[["mean", "lower_limit"]])
    assert shown.iloc[0].tolist() == [f"{np.mean(values):.3f}", "0"]


def test_hostile_text_is_shown_not_run():
    table = pd.DataFrame(
        {"<i>provider</i>": ['<script>alert("x")</script>', "T01 & T02"], "value_gbp": [1.0, 2.0]}
    )
    html = format_table(table).to_html()
    assert "<script>" not in html and "<i>" not in html
    assert "&lt;script&gt;" in html and "&lt;i&gt;provider&lt;/i&gt;" in html and "T01 &amp; T02" in html
    assert format_table(table).data.iloc[0, 0] == '<script>alert("x")</script>'  # the text itself is kept
    wrapped = format_table(pd.DataFrame({"measure": ["capacity_released_gbp"]})).to_html()
    assert "capacity_\u200breleased_\u200bgbp" in wrapped  # may wrap after an underscore


def test_a_wide_summary_transposed_by_its_key_column():
    summary = pd.DataFrame(
        {
            "estimate": ["naive", "outliers_only"],
            "providers": [12, 3],
            "bed_days": [5947.76, 4626.4],
            "capacity_released_gbp": [2049598.4, 1594000.0],
        }
    )
    shown = format_table(summary, transpose="estimate").data
    assert shown.columns.tolist() == ["measure", "naive", "outliers_only"]
    assert shown["measure"].tolist() == ["providers", "bed days", "capacity released"]
    assert shown["naive"].tolist() == ["12", "5,948", "£2,049,598"]
