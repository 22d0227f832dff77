"""Time the variation pipeline on one million spells and report peak memory.

    .venv/bin/python benchmarks/variation_1m.py            # simulate 1,000,000 spells to a temp file
    .venv/bin/python benchmarks/variation_1m.py --spells PATH --indicator readmission_30d

Stages: load and validate (helpers.io.load_table), derived fields
(helpers.derive.add_spell_fields), case-mix bands and population, the case-mix
model on aggregated cells, the funnel and the opportunity (with its 2,000-draw
interval). Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from helpers import casemix, derive, funnel, io, opportunity


def peak_mib() -> float:
    """Maximum resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spells", type=Path, help="an existing spells file; default: simulate one")
    parser.add_argument("--n", type=int, default=1_000_000, help="spells to simulate (default 1,000,000)")
    parser.add_argument("--indicator", default="los", choices=list(casemix.INDICATORS))
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    timings: list[tuple[str, float, float]] = []

    def stage(name: str, start: float) -> float:
        now = time.perf_counter()
        timings.append((name, now - start, peak_mib()))
        return now

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        path = args.spells
        if path is None:
            from helpers.simulate import write_spells_file

            path = write_spells_file(Path(tmp) / "spells.parquet", args.n, seed=args.seed, fmt="parquet")
            t = stage(f"simulate {args.n:,} spells (not part of the pipeline)", t)
        spells = io.load_table("spells", path)
        t = stage(f"load and validate {len(spells):,} spells", t)
        spells = derive.add_spell_fields(spells)
        t = stage("derived fields", t)
        spells = casemix.add_casemix_bands(spells)
        spells, years, _ = casemix.restrict_to_year(spells)
        population, _ = casemix.indicator_population(spells, args.indicator)
        t = stage(f"bands and population ({len(population):,} spells)", t)
        model = casemix.fit_casemix(population, family=casemix.INDICATORS[args.indicator].family)
        t = stage(f"case-mix model ({int(model.diagnostics.loc[0, 'cells']):,} cells)", t)
        result = funnel.funnel(model.providers, "ratio", scale=model.dispersion)
        t = stage(f"funnel ({len(result.providers)} providers)", t)
        per_event = casemix.bed_days_per_event(spells, args.indicator)
        opp = opportunity.opportunity(result, bed_days_per_unit=per_event, years=years, seed=args.seed)
        stage("opportunity (2,000 draws)", t)

    width = max(len(name) for name, _, _ in timings)
    print(f"{'stage':<{width}}  seconds  peak MiB")
    for name, seconds, mib in timings:
        print(f"{name:<{width}}  {seconds:7.1f}  {mib:8.0f}")
    pipeline = sum(s for n, s, _ in timings if not n.startswith("simulate"))
    print(f"{'pipeline total':<{width}}  {pipeline:7.1f}  {peak_mib():8.0f}")
    print(
        f"c-statistic {model.diagnostics.loc[0, 'c_statistic']:.3f}; outliers: "
        f"{', '.join(result.providers.loc[result.providers['outlier'] != 'none', 'provider_code']) or 'none'}; "
        f"naive opportunity {opp.summary.loc[0, 'opportunity']:,.0f} a year"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
