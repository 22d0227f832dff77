"""Computations behind the NHS value and efficiency handbook.

Every number the book, the notebooks and ``handbook run`` show is computed
here; a notebook explains and calls. The modules, as they are (each one's own
docstring gives its sources):

Data in
    ``io``: reading a file (CSV in UTF-8 or cp1252, Excel, Parquet), mapping
    HES/SUS names, checking every rule of ``data/data_dictionary.yaml``, and
    :class:`~helpers.io.InputError`, whose message names file, column and rows;
    :class:`~helpers.io.LoadedTable` holds a loaded table with what was read.
    ``derive``: the spells' derived fields (length of stay, emergency, day case,
    the 30-day readmission linked across providers, financial year), defined once.
    ``quality``: the data quality table and the exclusions flow of every report.
    ``sources``: a SQL database table as an input (``--data spells=postgresql://...``).
    ``episodes``: consultant episodes to provider spells, and spells to
    continuous inpatient spells. ``comorbidity``: HFRS and the Charlson index
    from ICD-10 diagnoses.
    ``simulate``: the seeded simulated health economy behind ``data/sample/``
    and its known truths (``truth.json``).

Spell-level work, in SQL
    ``engine``: the engines that run it: DuckDB (one machine, the default) or
    Spark (``--engine spark``; PySpark is the optional extra of
    ``requirements-spark.txt``, imported only when asked for), the same SQL
    transpiled by sqlglot. ``contract``: a contract table read by an engine and
    every rule of ``data/data_dictionary.yaml`` checked, with the message of
    :class:`~helpers.io.InputError`. ``variation``: spells to the case-mix
    cells of one indicator (reading, derived fields, year, population) and
    the fitted model. The rules are written once, in SQL, in the module of
    their concept (``derive``, ``casemix``, ``indicators``, ``quality``);
    ``tests/test_engine.py`` checks that the engines agree.

Methods
    ``indicators``: the indicators built from spells, each a record of its
    published NHS definition (exclusions, source, departures) and its generic
    version, whose rules are SQL run on a file or on a frame alike. ``periods``:
    the period an extract covers and monthly measures over complete months.
    ``casemix``: indirect standardisation fitted on aggregated cells. ``funnel``: funnel plots (Spiegelhalter 2005) with
    overdispersion. ``opportunity``: GIRFT-style opportunity with its interval.
    ``comparison``: the variation notebook's funnel input, from spells or an indicator file, decided once.
    ``spc``: *Making Data Count* SPC charts and their icons. ``cohort`` and
    ``evaluation``: the virtual ward cohort and its effects (matching,
    weighting, regression, time series, difference in differences).
    ``finance``: bed days to beds and pounds, with cited unit costs.
    ``value``: cost, outcome gain and the ratios between them.

Out
    ``disclosure``: small-number suppression and the identifier scan.
    ``report``: ``publish`` (a notebook hands a table to a run),
    ``publish_data_quality`` (every notebook's data quality block, one call) and the run's
    writers (report.html, results.xlsx, run.json, figures). ``plots``: the
    shared theme and one module of figures per topic; they compute nothing new.
    ``display``: how a result table is shown (number formats shared by the
    book, report.html and results.xlsx). ``summary``: the findings a report
    opens with, written from the notebook's own result tables, and the data
    box. ``pdf``: report.pdf printed from report.html by headless Chromium.
    ``cli``: the ``handbook`` command (``run``, ``list``, ``template``, ``simulate``).
    ``run``: the steps of ``handbook run`` (inputs checked and hashed once,
    the checked tables handed to the notebook's kernel, staging, report,
    identifier scan without rereading the inputs, the final move).

The book itself
    ``bibstyle``: author-year labels for the list of references.
    ``offline``: MathJax served from the built book, not from a CDN.

``tests/test_package.py`` checks that this list names every module.
"""

from pathlib import Path

__version__ = "0.1.0"

#: Where the handbook's own files are read from (``data/``, ``notebooks/``, ``book/``): the repository in a
#: checkout (an editable install), or the copy a wheel ships in ``helpers/_shipped`` (``pip install .``; setup.py).
SHIPPED_DIR = Path(__file__).resolve().parent / "_shipped"
REPO_ROOT = SHIPPED_DIR if SHIPPED_DIR.is_dir() else Path(__file__).resolve().parents[2]
#: Folder of the sample data shipped with the book.
SAMPLE_DIR = REPO_ROOT / "data" / "sample"
