"""`handbook run variation` on indicator files: FunnelPlotR's reference cases and a calibrated default.

Each run executes the variation notebook (about 25 seconds); the runs come from the session's
``handbook_runs`` (tests/conftest.py) and start in the background when the session starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_runs import HandbookRuns, RunSpec, run_spec

AE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ae_attendances.csv"


def indicator_run(folder: Path, data: pd.DataFrame, *params: str) -> RunSpec:
    src = folder / "indicator.csv"
    data.to_csv(src, index=False)
    return run_spec("variation", {"indicator": src}, params)


def run_variation(handbook_runs: HandbookRuns, tmp_path: Path, data: pd.DataFrame, *params: str) -> Path:
    """The tables of `handbook run variation --data indicator=indicator.csv --param ...` (one run per session)."""
    return handbook_runs.get(indicator_run(tmp_path, data, *params)) / "tables"


def six_units() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "provider_code": list("ABCDEF"),
            "observed": [100, 150, 180, 80, 120, 225],
            "expected": [108, 112, 165, 95, 100, 220],
        }
    )


def ae_type1_2018_19() -> pd.DataFrame:
    ae = pd.read_csv(AE, dtype={"type": "str", "org_code": "str"})
    ae["period"] = pd.to_datetime(ae["period"])
    year = ae[(ae["type"] == "1") & ae["period"].between("2018-04-01", "2019-03-01")]
    return (
        year.groupby("org_code", as_index=False)
        .agg(numerator=("breaches", "sum"), denominator=("attendances", "sum"))
        .rename(columns={"org_code": "provider_code"})
    )


def four_hundred_providers() -> pd.DataFrame:
    # 400 providers, observed drawn around expected with between-provider SD 0.1 on the log scale
    rng = np.random.default_rng(400)
    e = rng.uniform(50, 2000, 400).round(1)
    o = rng.poisson(e * np.exp(rng.normal(0, 0.1, 400)))
    return pd.DataFrame({"provider_code": [f"P{i:03d}" for i in range(400)], "observed": o, "expected": e})


#: The runs this module reads, started in the background when the session starts (tests/conftest.py).
PREFETCH_RUNS = {
    "test_shmi_run_reproduces_funnelplotr_six_unit_case": lambda f: [
        indicator_run(f, six_units(), "tau2_method=shmi")
    ],
    "test_shmi_run_reproduces_funnelplotr_on_real_ae_data": lambda f: [
        indicator_run(f, ae_type1_2018_19(), "tau2_method=shmi")
    ]
    if AE.exists()
    else [],
    "test_default_run_is_calibrated_without_true_outliers": lambda f: [
        indicator_run(f, four_hundred_providers())
    ],
}


def test_shmi_run_reproduces_funnelplotr_six_unit_case(tmp_path, handbook_runs):
    data = six_units()
    tables = run_variation(handbook_runs, tmp_path, data, "tau2_method=shmi")
    d = pd.read_csv(tables / "dispersion.csv").iloc[0]
    assert d["tau2_method"] == "shmi"
    assert d["phi"] == pytest.approx(2.948033, abs=1e-6)
    assert d["tau2"] == pytest.approx(0.01947753, abs=1e-6)
    assert d["providers_kept"] == 6


def test_shmi_run_reproduces_funnelplotr_on_real_ae_data(tmp_path, handbook_runs):
    if not AE.exists():
        pytest.skip(f"Real A&E data not found at {AE} (it sits beside the repository in shared/data).")
    data = ae_type1_2018_19()
    assert len(data) == 137
    tables = run_variation(handbook_runs, tmp_path, data, "tau2_method=shmi")
    d = pd.read_csv(tables / "dispersion.csv").iloc[0]
    assert d["phi"] == pytest.approx(3828.85, abs=5e-3)
    assert d["tau2"] == pytest.approx(0.00843625, abs=1e-6)
    providers = pd.read_csv(tables / "provider_indicator.csv")
    assert len(providers) == 137 and (providers["outlier"] == "none").all()
    target = data["numerator"].sum() / data["denominator"].sum()
    assert target == pytest.approx(0.184614, abs=1e-6)
    # the side-by-side table: neither method flags a trust at 99.8%
    assert pd.read_csv(tables / "flag_comparison.csv").empty


def test_default_run_is_calibrated_without_true_outliers(tmp_path, handbook_runs):
    tables = run_variation(handbook_runs, tmp_path, four_hundred_providers())
    assert pd.read_csv(tables / "dispersion.csv").loc[0, "tau2_method"] == "robust"
    p = pd.read_csv(tables / "provider_indicator.csv")
    outside = (p["ratio"] > p["upper_95"]) | (p["ratio"] < p["lower_95"])
    assert outside.mean() <= 0.08
