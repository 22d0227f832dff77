"""`handbook run value` end to end: the answers a finance reader takes away from the run folder.

One run on the sample outcomes with a three-scheme CIP plan of the reader's own
(the issue's case: £1.0m approved, £0.5m rejected, £0.2m approved but not
cash-releasing), every other parameter at its default.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from shared_runs import RunSpec, run_spec

from helpers import value as hv

PLAN = pd.DataFrame(
    [
        {
            "scheme": "Prosthesis procurement",
            "value_gbp": 1_000_000,
            "cash_releasing": "yes",
            "recurrent": "yes",
            "qia_status": "approved",
            "qia_rating": "low",
            "start_month": "October",
        },
        {
            "scheme": "Ward closure",
            "value_gbp": 500_000,
            "cash_releasing": "yes",
            "recurrent": "yes",
            "qia_status": "rejected",
            "qia_rating": "high",
            "start_month": "",
        },
        {
            "scheme": "Four joints per list",
            "value_gbp": 200_000,
            "cash_releasing": "no",
            "recurrent": "yes",
            "qia_status": "approved",
            "qia_rating": "moderate",
            "start_month": "",
        },
    ]
)


def plan_run(folder: Path) -> RunSpec:
    plan = folder / "my_cip.csv"
    PLAN.to_csv(plan, index=False)
    return run_spec("value", {"cip_plan": plan}, ["cip_target_gbp=1500000"])


#: The run, started in the background when the session starts (tests/conftest.py).
PREFETCH_RUNS = {"run": lambda folder: [plan_run(folder)]}


@pytest.fixture(scope="module")
def run(tmp_path_factory, handbook_runs):
    folder = tmp_path_factory.mktemp("value_run")
    spec = plan_run(folder)
    plan = folder / "my_cip.csv"
    before = plan.read_bytes()
    out = handbook_runs.get(spec)
    read = Path(
        dict(handbook_runs.made_from(spec).data)["cip_plan"]
    )  # this file, or a copy written the same way
    assert read.read_bytes() == before  # the reader's file is never changed
    return out / "tables"


def test_default_incremental_is_two_options_for_one_pathway_never_hip_against_knee(run):
    inc = pd.read_csv(run / "incremental.csv")
    assert len(inc) == 1
    row = inc.iloc[0]
    pathways = set(pd.read_csv(run / "pathway_value.csv")["pathway"])
    # the two options are providers of one pathway, not pathways
    assert row["comparison"] == "incremental: same pathway" and row["by"] == "provider_code"
    assert row["pathway"] in pathways
    assert row["comparator"] not in pathways and row["intervention"] not in pathways
    assert not any(p in row["verdict"] for p in pathways)
    # with its uncertainty: a bootstrap interval around each difference and two probabilities
    assert row["delta_cost_ci_lower"] <= row["delta_cost"] <= row["delta_cost_ci_upper"]
    assert row["delta_qalys_ci_lower"] <= row["delta_qalys"] <= row["delta_qalys_ci_upper"]
    assert 0 <= row["prob_cost_effective_at_lower"] <= 1 and 0 <= row["prob_cost_effective_at_upper"] <= 1
    assert "probability cost-effective" in row["verdict"]
    # the default options are the pathway's two largest providers, and the numbers are its adjusted values
    quadrant = pd.read_csv(run / "quadrant.csv")
    part = quadrant[quadrant["pathway"] == row["pathway"]].sort_values(
        ["n", "provider_code"], ascending=[False, True]
    )
    assert [row["comparator"], row["intervention"]] == list(part["provider_code"].head(2))
    provider = pd.read_csv(run / "provider_value.csv").set_index(["pathway", "provider_code"])
    assert row["cost_comparator"] == pytest.approx(
        provider.loc[(row["pathway"], row["comparator"]), "adjusted_cost"]
    )


def test_cip_plan_file_counts_approved_schemes_and_lists_the_rejected_apart(run):
    summary = pd.read_csv(run / "cip_summary.csv").set_index("cip_class")
    assert summary.loc["plan total", "value_gbp"] == pytest.approx(1_200_000)
    assert summary.loc[list(hv.CIP_CLASSES), "value_gbp"].sum() == pytest.approx(1_200_000)
    rejected = summary.loc["rejected (not counted)"]
    assert rejected["value_gbp"] == pytest.approx(500_000) and rejected["n_schemes"] == 1
    assert not rejected["counted_in_plan"]
    # gap in recurrent cash: £1.5m target - £1.0m; the £0.2m of capacity beside it
    assert summary.loc["plan total", "gap_to_target_gbp"] == pytest.approx(500_000)
    assert summary.loc["plan total", "other_savings_gbp"] == pytest.approx(200_000)
    # the procurement starts in October: £1.0m in six months is £2.0m over a full year
    assert summary.loc["cash-releasing, recurrent", "full_year_effect_gbp"] == pytest.approx(2_000_000)
    assert summary.loc["plan total", "full_year_effect_gbp"] == pytest.approx(2_200_000)


def test_quadrant_counts_only_clear_providers(run):
    counts = pd.read_csv(run / "quadrant_counts.csv").set_index("pathway")
    quadrant = pd.read_csv(run / "quadrant.csv")
    labelled = quadrant[quadrant["quadrant"].isin(hv.QUADRANTS.values())]
    assert (labelled["gain_clear"] & labelled["cost_clear"]).all()
    assert counts[list(hv.QUADRANTS.values())].to_numpy().sum() == len(labelled)
    assert counts[hv.NOT_DISTINGUISHABLE].sum() == (quadrant["quadrant"] == hv.NOT_DISTINGUISHABLE).sum() > 0
