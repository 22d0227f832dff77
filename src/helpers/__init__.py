"""Computations behind the NHS value and efficiency handbook.

One module per concept: ``io`` (loading and validating the data contract),
``derive`` (derived fields), ``simulate`` (the simulated health economy),
``casemix``, ``funnel``, ``opportunity``, ``spc``, ``evaluation``, ``finance``,
``value``, ``disclosure``, ``plots``, ``report`` and ``cli``.
"""

from pathlib import Path

__version__ = "0.1.0"

#: Root of the repository (the package is installed in editable mode from it).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Folder of the sample data shipped with the book.
SAMPLE_DIR = REPO_ROOT / "data" / "sample"
