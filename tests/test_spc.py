"""Tests of helpers.spc against hand calculations, constructed series and real data.

Hand calculations use the Making Data Count formulas: limits = mean ± 2.66 ×
mean moving range, 2σ lines at mean ± (2/3) × 2.66 × mean moving range,
screening of moving ranges ≥ 3.267 × their mean; p-chart limits
p̄ ± 3√(p̄(1 − p̄)/nᵢ).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import spc

AE_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "ae_attendances.csv"

# 12 points: sum 144, so the mean is 12; moving ranges 2,1,2,1,2,3,1,1,1,1,2 sum to 17.
SERIES_A = [10, 12, 11, 13, 12, 14, 11, 12, 13, 12, 11, 13]


def frame(values, start="2022-04-01", **extra) -> pd.DataFrame:
    """A monthly series starting at ``start``."""
    out = pd.DataFrame({"date": pd.date_range(start, periods=len(values), freq="MS"), "value": values})
    for k, v in extra.items():
        out[k] = v
    return out


def rules(values, centre, lower=np.nan, upper=np.nan, run_length=7, two_of_three="current"):
    """Apply the rules with symmetric 2σ lines at two thirds of the limit distance."""
    sigma = (upper - centre) / 3 if not np.isnan(upper) else np.nan
    return spc.special_causes(
        values, centre, lower, upper, centre - 2 * sigma, centre + 2 * sigma, run_length, two_of_three
    )


# --------------------------------------------------------------------------- limits


def test_xmr_limits_by_hand():
    lim = spc.xmr_limits(SERIES_A)
    amr = 17 / 11
    assert lim["mean"] == pytest.approx(12.0)
    assert lim["mean_moving_range"] == pytest.approx(amr)
    assert lim["n_moving_ranges"] == 11
    assert lim["upper_limit"] == pytest.approx(12 + 2.66 * amr)
    assert lim["lower_limit"] == pytest.approx(12 - 2.66 * amr)
    assert lim["upper_2sigma"] == pytest.approx(12 + 2 / 3 * 2.66 * amr)
    assert lim["lower_2sigma"] == pytest.approx(12 - 2 / 3 * 2.66 * amr)
    # through the table: every point carries the same limits and none is flagged
    table = spc.spc(frame(SERIES_A))
    assert table["upper_limit"].to_numpy() == pytest.approx(np.full(12, 12 + 2.66 * amr))
    assert table["moving_range"].iloc[1:].sum() == 17 and np.isnan(table["moving_range"].iloc[0])
    assert (table["point_type"] == "common_cause").all()


def test_moving_range_screening_by_hand():
    # NHSRplotthedots' "deviations" vignette series. 18 points summing to 35;
    # moving ranges 1,1,1,8,9 then twelve 1s: mean 32/17; 3.267 × 32/17 = 6.15,
    # so screening drops 8 and 9 and leaves fifteen 1s (mean 1).
    y = [1, 2, 1, 2, 10, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1]
    raw = spc.xmr_limits(y, screen_moving_ranges=False)
    screened = spc.xmr_limits(y, screen_moving_ranges=True)
    assert raw["mean"] == pytest.approx(35 / 18)
    assert raw["upper_limit"] == pytest.approx(35 / 18 + 2.66 * 32 / 17)
    assert screened["n_moving_ranges"] == 15
    assert screened["mean_moving_range"] == pytest.approx(1.0)
    assert screened["upper_limit"] == pytest.approx(35 / 18 + 2.66)
    # the default follows the MDC Excel tool: no screening
    assert spc.spc(frame(y))["upper_limit"].iloc[0] == pytest.approx(raw["upper_limit"])
    assert spc.spc(frame(y), screen_moving_ranges=True)["upper_limit"].iloc[0] == pytest.approx(
        35 / 18 + 2.66
    )


# --------------------------------------------------------------------------- rules


def test_point_outside_limits_and_precedence():
    r = rules([0, 1, 3.5, -3.2, 3.0], centre=0, lower=-3, upper=3)
    assert r["outside_limits"].tolist() == ["", "", "high", "low", ""]  # exactly on a limit is inside
    assert r["special_cause"].tolist()[2:4] == ["outside_limits", "outside_limits"]
    # a point outside the limits inside a run is labelled by the higher rule, both recorded
    r = rules([1, 1, 1, 4, 1, 1, 1], centre=0, lower=-3, upper=3)
    assert r.loc[3, "special_cause"] == "outside_limits"
    assert r.loc[3, "rules"] == "outside_limits+run"
    assert r.loc[0, "special_cause"] == "run"


def test_trend_counts_points_and_run_length():
    up = rules([1, 2, 3, 4, 5, 6, 7], centre=4)
    assert (up["trend"] == "high").all() and (up["special_cause"] == "trend").all()
    six = [6, 5, 4, 3, 2, 1]
    assert (rules(six, centre=3.5)["trend"] == "").all()  # 6 points: not a trend of 7
    assert (rules(six, centre=3.5, run_length=6)["trend"] == "low").all()


def test_equal_values_neither_count_towards_nor_break_a_trend():
    # 1,2,3,3,4,5,6: six counted points (the repeat does not count) -> no trend of 7
    assert (rules([1, 2, 3, 3, 4, 5, 6], centre=3.5)["trend"] == "").all()
    # 1,2,3,3,4,5,6,7: seven counted points; the repeat does not break it, and is flagged with it
    r = rules([1, 2, 3, 3, 4, 5, 6, 7], centre=4)
    assert (r["trend"] == "high").all()
    # a repeat at the end is not part of the trend
    r = rules([1, 2, 3, 4, 5, 6, 7, 7], centre=4)
    assert r["trend"].tolist() == ["high"] * 7 + [""]
    # a fall breaks it: 1,2,3,2,4,5,6,7 holds no seven rising points
    assert (rules([1, 2, 3, 2, 4, 5, 6, 7], centre=4)["trend"] == "").all()


def test_peak_shared_by_two_trends_keeps_the_earlier_label():
    r = rules([1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1], centre=4)
    assert r["trend"].tolist() == ["high"] * 7 + ["low"] * 6


def test_run_on_one_side_of_the_mean_and_points_on_the_mean():
    assert (rules([1] * 7, centre=0)["run"] == "high").all()
    assert (rules([-1] * 6, centre=0)["run"] == "").all()
    assert (rules([-1] * 6, centre=0, run_length=6)["run"] == "low").all()
    # a point exactly on the mean neither counts nor breaks the run, and is not flagged
    r = rules([1, 1, 1, 0, 1, 1, 1, 1], centre=0)
    assert r["run"].tolist() == ["high"] * 3 + [""] + ["high"] * 4
    assert (rules([1, 1, 1, 0, 1, 1, 1], centre=0)["run"] == "").all()  # six counted points
    # a point on the other side breaks it
    assert (rules([1, 1, 1, -1, 1, 1, 1, 1], centre=0)["run"] == "").all()


def test_two_of_three_beyond_two_sigma():
    # centre 0, limits ±3, 2σ lines ±2
    r = rules([1, 2.5, 1, 2.5, 0.5], centre=0, lower=-3, upper=3)
    assert r["two_of_three"].tolist() == ["", "high", "", "high", ""]  # only points beyond 2σ flagged
    # the three points must lie on the same side of the mean
    assert (rules([2.5, -0.5, 2.5], centre=0, lower=-3, upper=3)["two_of_three"] == "").all()
    assert (rules([-2.5, 2.5, -2.5, 2.5], centre=0, lower=-3, upper=3)["two_of_three"] == "").all()
    # a point exactly on the 2σ line is not beyond it
    assert (rules([2.0, 2.5, 1], centre=0, lower=-3, upper=3)["two_of_three"] == "").all()
    assert rules([-2.5, -1, -2.2], centre=0, lower=-3, upper=3)["two_of_three"].tolist() == ["low", "", "low"]


def test_two_of_three_current_rule_counts_points_beyond_the_limits_old_rule_does_not():
    values = [1, 2.5, 3.5, 1, -1]
    current = rules(values, centre=0, lower=-3, upper=3, two_of_three="current")
    old = rules(values, centre=0, lower=-3, upper=3, two_of_three="old")
    assert current["two_of_three"].tolist() == ["", "high", "high", "", ""]
    assert current.loc[1, "special_cause"] == "two_of_three"
    assert current.loc[2, "rules"] == "outside_limits+two_of_three"
    assert old["two_of_three"].tolist() == [""] * 5
    assert old.loc[1, "special_cause"] == "none"
    assert old.loc[2, "special_cause"] == "outside_limits"
    # two points between 2σ and 3σ count under both rules
    both = [1, 2.5, 2.8, 1]
    assert rules(both, 0, -3, 3, two_of_three="old")["two_of_three"].tolist() == ["", "high", "high", ""]
    with pytest.raises(ValueError, match="two_of_three"):
        rules(both, 0, -3, 3, two_of_three="2023")


# --------------------------------------------------------------------------- labels and icons


def test_improvement_concern_and_neutral_labels():
    values = SERIES_A[:11] + [25]  # one high point: 25 is far above any limit from this series
    for better, label, icon in [
        ("increase", "improvement", "improvement_high"),
        ("decrease", "concern", "concern_high"),
        (None, "neutral", "neutral_high"),
    ]:
        table = spc.spc(frame(values), better=better)
        assert table["point_type"].iloc[-1] == label
        assert table["special_cause"].iloc[-1] == "outside_limits"
        assert (table["point_type"].iloc[:-1] == "common_cause").all()
        assert spc.summarise(table, better=better)["variation_icon"].iloc[0] == icon
    low = spc.spc(frame(SERIES_A[:11] + [-5]), better="decrease")
    assert low["point_type"].iloc[-1] == "improvement"
    assert spc.summarise(low, "decrease")["variation_icon"].iloc[0] == "improvement_low"
    assert spc.point_type("low", "increase") == "concern"
    with pytest.raises(ValueError, match="better"):
        spc.spc(frame(SERIES_A), better="up")


def test_assurance_icon_against_a_target():
    table = spc.spc(frame(SERIES_A), better="increase")
    lower, upper = 12 - 2.66 * 17 / 11, 12 + 2.66 * 17 / 11  # 7.89 and 16.11
    assert table["lower_limit"].iloc[-1] == pytest.approx(lower)
    assert table["upper_limit"].iloc[-1] == pytest.approx(upper)

    def icon(target, better="increase"):
        return spc.summarise(table, better=better, target=target)["assurance_icon"].iloc[0]

    assert icon(7) == "consistently_passing"  # target below the lower limit, higher is better
    assert icon(20) == "consistently_failing"
    assert icon(12) == "hit_and_miss"
    assert icon(7, "decrease") == "consistently_failing"
    assert icon(20, "decrease") == "consistently_passing"
    assert icon(None) == "none"
    assert icon(7, None) == "none"
    assert (
        spc.summarise(table, "increase", target={"all": 20})["assurance_icon"].iloc[0]
        == "consistently_failing"
    )


# --------------------------------------------------------------------------- periods


def test_rebasing_gives_limits_per_period():
    first = SERIES_A
    second = [x + 10 for x in [9, 11, 10, 12, 11, 13, 10, 11, 12, 11, 10, 12]]  # mean 21, same mR sum 17
    data = frame(first + second)
    rebased = spc.spc(data, rebase_dates=["2023-04-01"])
    p1, p2 = rebased[rebased["period"] == 1], rebased[rebased["period"] == 2]
    assert len(p1) == 12 and len(p2) == 12
    assert p1["mean"].iloc[0] == pytest.approx(12.0)
    assert p2["mean"].iloc[0] == pytest.approx(21.0)
    assert p2["upper_limit"].iloc[0] == pytest.approx(21 + 2.66 * 17 / 11)
    assert np.isnan(p2["moving_range"].iloc[0])  # the jump between periods is not a moving range
    assert (p2["period_start"] == pd.Timestamp("2023-04-01")).all()
    assert (rebased["point_type"] == "common_cause").all()
    # without the rebase the step change shows as runs below then above the one mean
    single = spc.spc(data)
    assert single["mean"].iloc[0] == pytest.approx((144 + 252) / 24)
    assert set(single["special_cause"]) >= {"run"}
    summary = spc.summarise(rebased, target=15, better="increase")
    assert summary["n_periods"].iloc[0] == 2
    assert summary["assurance_icon"].iloc[0] == "consistently_passing"  # latest period's limits: 16.9 to 25.1


def test_baseline_fixing_uses_the_first_points_only():
    values = SERIES_A + [20, 21, 22, 20]
    table = spc.spc(frame(values), baseline_points=12)
    assert table["baseline"].tolist() == [True] * 12 + [False] * 4
    assert table["upper_limit"].iloc[-1] == pytest.approx(12 + 2.66 * 17 / 11)
    assert (table["special_cause"].iloc[12:] == "outside_limits").all()
    with pytest.raises(ValueError, match="at least 12"):
        spc.spc(frame(values), baseline_points=8)


def test_fewer_than_twelve_points_shows_data_without_limits():
    with pytest.warns(spc.SPCWarning, match="11 point"):
        table = spc.spc(frame(SERIES_A[:11]), better="increase")
    assert table[["mean", "lower_limit", "upper_limit"]].isna().all().all()
    assert (table["point_type"] == "not_assessed").all()
    assert table["value"].tolist() == SERIES_A[:11]
    assert "at least 12" in table["note"].iloc[0]
    summary = spc.summarise(table, better="increase", target=10)
    assert summary["variation_icon"].iloc[0] == "not_assessed"
    assert summary["assurance_icon"].iloc[0] == "none"
    assert "at least 12" in summary["note"].iloc[0]
    # a rebase that leaves a short latest period: the first period keeps its limits
    with pytest.warns(spc.SPCWarning, match="5 point"):
        table = spc.spc(frame(SERIES_A + [20, 21, 20, 22, 21]), rebase_dates=["2023-04-01"])
    assert table.loc[table["period"] == 1, "upper_limit"].notna().all()
    assert table.loc[table["period"] == 2, "upper_limit"].isna().all()


# --------------------------------------------------------------------------- attribute charts


def test_p_chart_limits_by_hand():
    num = np.array([10, 12, 8, 15, 9, 11, 14, 10, 7, 13, 12, 40])
    den = np.array([100, 120, 90, 130, 100, 110, 125, 95, 80, 120, 115, 150])
    table = spc.spc(
        frame([0] * 12, numerator=num, denominator=den),
        chart="p",
        numerator="numerator",
        denominator="denominator",
        better="decrease",
    )
    pbar = num.sum() / den.sum()
    sigma = np.sqrt(pbar * (1 - pbar) / den)
    assert table["value"].to_numpy() == pytest.approx(num / den)
    assert table["mean"].iloc[0] == pytest.approx(pbar)
    assert table["upper_limit"].to_numpy() == pytest.approx(pbar + 3 * sigma)
    assert table["lower_limit"].to_numpy() == pytest.approx(np.maximum(pbar - 3 * sigma, 0))
    assert table["upper_2sigma"].to_numpy() == pytest.approx(pbar + 2 * sigma)
    # larger denominators give narrower limits
    assert table["upper_limit"].iloc[11] < table["upper_limit"].iloc[8]
    assert table["special_cause"].iloc[-1] == "outside_limits"  # 40/150 = 0.27 against an upper limit of 0.20
    assert table["point_type"].iloc[-1] == "concern"


def test_laney_p_prime_u_and_c_charts_by_hand():
    num = np.array([10, 12, 8, 15, 9, 11, 14, 10, 7, 13, 12, 11], dtype=float)
    den = np.array([100, 120, 90, 130, 100, 110, 125, 95, 80, 120, 115, 150], dtype=float)
    data = frame([0] * 12, numerator=num, denominator=den)
    pbar = num.sum() / den.sum()
    sigma = np.sqrt(pbar * (1 - pbar) / den)
    z = (num / den - pbar) / sigma
    sigma_z = np.abs(np.diff(z)).mean() / 1.128
    pp = spc.spc(data, chart="pprime", numerator="numerator", denominator="denominator")
    assert pp["upper_limit"].to_numpy() == pytest.approx(pbar + 3 * sigma * sigma_z)
    ubar = num.sum() / den.sum()
    u = spc.spc(data, chart="u", numerator="numerator", denominator="denominator")
    assert u["upper_limit"].to_numpy() == pytest.approx(ubar + 3 * np.sqrt(ubar / den))
    counts = [4, 6, 3, 5, 7, 2, 5, 4, 6, 5, 3, 10]  # mean 5
    c = spc.spc(frame(counts), chart="c")
    assert c["upper_limit"].iloc[0] == pytest.approx(5 + 3 * np.sqrt(5))
    assert c["lower_limit"].iloc[0] == 0  # 5 − 3√5 < 0, cut at 0
    run = spc.spc(frame(counts), chart="run")
    assert run["mean"].iloc[0] == pytest.approx(5.0)  # the median
    assert run["upper_limit"].isna().all()


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_named():
    data = frame(SERIES_A)
    data.loc[3, "value"] = np.nan
    with pytest.raises(ValueError, match=r"column 'value'.*rows \[3\]"):
        spc.spc(data)
    data = pd.concat([frame(SERIES_A), frame([5], start="2022-05-01")], ignore_index=True)
    with pytest.raises(ValueError, match="share a date"):
        spc.spc(data)
    bad = frame([0] * 12, numerator=[5] * 12, denominator=[4] + [10] * 11)
    with pytest.raises(ValueError, match="exceeds denominator"):
        spc.spc(bad, chart="p", numerator="numerator", denominator="denominator")
    with pytest.raises(ValueError, match="missing column"):
        spc.spc(frame(SERIES_A), value="breaches")


# --------------------------------------------------------------------------- groups and sample series


def test_groups_are_charted_separately():
    data = pd.concat([frame(SERIES_A, org="A"), frame([x * 2 for x in SERIES_A], org="B")], ignore_index=True)
    table = spc.spc(data, group="org")
    assert table.groupby("group")["mean"].first().to_dict() == pytest.approx({"A": 12.0, "B": 24.0})
    assert len(spc.summarise(table)) == 2


def test_monthly_series_from_spells():
    from helpers.derive import add_spell_fields

    spells = pd.DataFrame(
        {
            "spell_id": ["s1", "s2", "s3", "s4", "s5", "s6"],
            "patient_id": ["p1", "p2", "p3", "p1", "p4", "p3"],
            "provider_code": ["RAA", "RAA", "RBB", "RAA", "RBB", "RAA"],
            "admission_date": pd.to_datetime(
                ["2023-01-02", "2023-01-05", "2023-01-10", "2023-03-01", "2023-03-03", "2023-01-20"]
            ),
            "discharge_date": pd.to_datetime(
                ["2023-01-06", "2023-01-05", "2023-01-13", "2023-03-04", "2023-03-10", "2023-01-22"]
            ),
            "admission_method": ["21", "11", "22", "21", "21", "21"],
        }
    )
    derived = add_spell_fields(spells)
    # admissions run from 2 January to 3 March: January and March are only partly covered, so by
    # default only February is charted (and named in a warning)
    with pytest.warns(spc.SPCWarning, match="Jan 2023, Mar 2023 \\(only partly inside"):
        inferred = spc.build_monthly_series(derived, "emergency_bed_days", lead_in_days=0)
    assert sorted(inferred.frame["date"].dt.month.unique()) == [2]
    assert [m.month for m, _ in inferred.months_left_out] == [1, 3]
    # stated as the whole quarter, every month is complete
    stated = {"coverage_start": "2023-01-01", "coverage_end": "2023-03-31"}
    bed_days = spc.monthly_series(derived, "emergency_bed_days", lead_in_days=0, **stated)
    got = bed_days.set_index(["group", "date"])["value"]
    assert got[("RAA", pd.Timestamp("2023-01-01"))] == 4 + 2  # s1 and s6: the elective s2 does not count
    assert got[("RBB", pd.Timestamp("2023-01-01"))] == 3
    assert got[("RAA", pd.Timestamp("2023-02-01"))] == 0  # an empty month is 0, not missing
    assert got[("RBB", pd.Timestamp("2023-03-01"))] == 7
    assert len(bed_days) == 6  # 3 months × 2 providers
    with pytest.raises(ValueError, match="add_spell_fields"):
        spc.monthly_series(spells)
    # January starts on the first admission date: spells admitted before the
    # extract would be missing from it, so by default it is left out
    with pytest.warns(spc.SPCWarning, match="Jan 2023"):
        default = spc.monthly_series(derived, "emergency_bed_days", **stated)
    assert sorted(default["date"].dt.month.unique()) == [2, 3]
    # readmissions: follow-up ends at the last admission (3 March). January's
    # windows (discharges on 5, 6, 13 and 22 January, + 29 days) all end by then;
    # March's do not, so March is left out; February has no discharges at all.
    with pytest.warns(spc.SPCWarning) as caught:
        rate = spc.monthly_series(derived, "readmission_rate", lead_in_days=0, **stated)
    messages = " | ".join(str(w.message) for w in caught)
    assert (
        "left out 1 discharge month(s)" in messages and "Mar 2023 (its 30-day follow-up runs past" in messages
    )
    assert "2 group-month(s) have no spell" in messages  # February, both providers
    jan = rate[rate["date"] == "2023-01-01"].set_index("group")
    # s1 (RAA, patient p1) is followed by an emergency admission on 1 March: 54 days, not within 30
    assert jan.loc["RAA", "denominator"] == 3 and jan.loc["RAA", "numerator"] == 0
    # s3 (RBB, patient p3, out 13 January) is readmitted on 20 January (s6, at RAA): counted at RBB
    assert jan.loc["RBB", "denominator"] == 1 and jan.loc["RBB", "numerator"] == 1
    assert sorted(rate["date"].dt.month.unique()) == [1]


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def rf4():
    if not AE_PATH.exists():
        pytest.skip(f"real A&E data not found at {AE_PATH} (it sits beside the repository)")
    ae = pd.read_csv(AE_PATH)
    out = ae[(ae["org_code"] == "RF4") & (ae["type"] == "1")].sort_values("period").reset_index(drop=True)
    assert len(out) == 36  # April 2016 to March 2019, complete
    return out


def test_real_series_xmr_matches_a_numpy_hand_calculation(rf4):
    """Type 1 four-hour breaches at RF4 (Barking, Havering and Redbridge), 2016/17 to 2018/19."""
    x = rf4["breaches"].to_numpy()
    mean = x.mean()
    amr = np.abs(np.diff(x)).mean()
    upper, lower = mean + 2.66 * amr, mean - 2.66 * amr
    table = spc.spc(rf4, date="period", value="breaches", better="decrease")
    assert table["mean"].iloc[0] == pytest.approx(mean)
    assert table["upper_limit"].iloc[0] == pytest.approx(upper)
    assert table["lower_limit"].iloc[0] == pytest.approx(lower)
    outside = table.loc[table["special_cause"] == "outside_limits", "date"].dt.strftime("%Y-%m").tolist()
    by_hand = pd.to_datetime(rf4["period"])[(x > upper) | (x < lower)].dt.strftime("%Y-%m").tolist()
    assert outside == by_hand
    # verified by eye: January 2019 (7,363 breaches) is a winter high above the
    # upper limit of about 6,325, a concern because fewer breaches is better;
    # August 2016 (1,724) is below the lower limit of about 2,026.
    assert outside == ["2016-08", "2018-03", "2019-01"]
    jan19 = table[table["date"] == "2019-01-01"].iloc[0]
    assert jan19["point_type"] == "concern" and jan19["side"] == "high"
    assert table.loc[table["date"] == "2016-08-01", "point_type"].iloc[0] == "improvement"


def test_real_series_p_chart_and_laney(rf4):
    """The four-hour breach proportion: with ~20,000 attendances a month the p-chart
    limits are too narrow for the month-to-month variation (over-dispersion), so
    it flags most months; Laney's p′ widens them."""
    num, den = rf4["breaches"].to_numpy(), rf4["attendances"].to_numpy()
    p = spc.spc(rf4, date="period", numerator="breaches", denominator="attendances", chart="p")
    pbar = num.sum() / den.sum()
    assert p["upper_limit"].to_numpy() == pytest.approx(pbar + 3 * np.sqrt(pbar * (1 - pbar) / den))
    pp = spc.spc(rf4, date="period", numerator="breaches", denominator="attendances", chart="pprime")
    flagged_p = (p["special_cause"] != "none").sum()
    flagged_pp = (pp["special_cause"] != "none").sum()
    assert flagged_p > 0.8 * len(p)
    assert flagged_pp < flagged_p
    assert (pp["upper_limit"] - pp["lower_limit"]).min() > 5 * (p["upper_limit"] - p["lower_limit"]).max()


def test_spc_table_has_documented_columns(rf4):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = spc.spc(rf4, date="period", value="breaches")
    assert list(table.columns) == spc.SPC_COLUMNS
    assert list(spc.summarise(table).columns) == spc.SUMMARY_COLUMNS


# --------------------------------------------------------------------------- words and figures


def test_titles_state_the_finding():
    table = spc.spc(frame(SERIES_A[:11] + [25], org="RAA"), group="org", better="decrease")
    summary = spc.summarise(table, better="decrease", target=5)  # limits about 6.0 to 20.0
    row = summary.iloc[0]
    assert row["variation_icon"] == "concern_high" and row["assurance_icon"] == "consistently_failing"
    assert spc.headline(row, "Bed days") == (
        "Bed days at RAA: the latest month is special cause concern (higher); "
        "it will miss the target every month unless the process changes"
    )
    assert spc.overview(summary, "Bed days", "providers") == (
        "Bed days, latest month: special cause in 1 of 1 providers (1 concern)"
    )
    quiet = spc.summarise(spc.spc(frame(SERIES_A)))
    assert spc.overview(quiet, "Bed days", "providers") == (
        "Bed days, latest month: no special cause in any of the 1 providers with limits"
    )


def test_chart_draws_badges_and_colours_special_causes():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_hex

    from helpers.plots import NHS
    from helpers.plots import spc as spc_plots

    table = spc.spc(frame(SERIES_A[:11] + [25], org="RAA"), group="org", better="decrease")
    summary = spc.summarise(table, better="decrease", target=5)
    fig = spc_plots.spc_chart(table, summary, title="t")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"Concern (high)", "Target: failing"} <= texts
    orange = [c for c in fig.axes[0].collections if to_hex(c.get_facecolor()[0]) == NHS["orange"].lower()]
    assert len(orange) == 1 and len(orange[0].get_offsets()) == 1  # the one concern point
    multi = spc_plots.small_multiples(
        pd.concat([table, table.assign(group="RBB")]), pd.concat([summary, summary.assign(group="RBB")])
    )
    assert sum(ax.get_visible() for ax in multi.axes) == 2
    matplotlib.pyplot.close("all")


def test_rebase_dates_per_group():
    data = pd.concat([frame(SERIES_A * 2, org="A"), frame(SERIES_A * 2, org="B")], ignore_index=True)
    table = spc.spc(data, group="org", rebase_dates={"B": ["2023-04-01"]})
    assert table.groupby("group")["period"].max().to_dict() == {"A": 1, "B": 2}
    with pytest.raises(ValueError, match=r"\['C'\]"):
        spc.spc(data, group="org", rebase_dates={"C": ["2023-04-01"]})


def test_focus_group_prefers_a_latest_concern():
    quiet = frame(SERIES_A, org="A")
    worrying = frame(SERIES_A[:11] + [25], org="B")  # latest point above the limit
    summary = spc.summarise(spc.spc(pd.concat([quiet, worrying]), group="org", better="decrease"), "decrease")
    assert spc.focus_group(summary) == "B"
    summary = spc.summarise(spc.spc(pd.concat([quiet, worrying]), group="org", better="increase"), "increase")
    assert spc.focus_group(summary) == "B"  # improvement is still special cause
    assert spc.focus_group(summary.iloc[:1]) == "A"


def test_read_series_checks_columns(tmp_path):
    from helpers.io import InputError

    path = tmp_path / "series.csv"
    frame(SERIES_A, org="A").to_csv(path, index=False)
    got = spc.read_series(str(path), "xmr", group="org")
    assert got.frame["value"].tolist() == SERIES_A and got.summary.table == "series"
    with pytest.raises(InputError, match="numerator"):
        spc.read_series(str(path), "p")
