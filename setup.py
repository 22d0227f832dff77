"""Ship the handbook's own files inside the wheel, so that ``pip install .`` (not only ``-e``) works.

The package reads, at run time, files that live once in the repository: the
data contract (``data/data_dictionary.yaml``), the sample data
(``data/sample/``), the notebooks ``handbook run`` runs, and the book's
chapter headings and references that a report cites. A wheel build copies
them into ``helpers/_shipped/`` with their repository paths, and
``helpers.REPO_ROOT`` points there when it exists; an editable install reads
them where they are. ``tests/test_package.py`` builds a wheel and checks that
it holds every file the code reads. The project's metadata is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: Glob patterns, from the repository's root, of the files the package reads at run time.
SHIPPED = (
    "data/data_dictionary.yaml",
    "data/sample/*",
    "notebooks/*.ipynb",
    "book/**/*.md",
    "book/references.bib",
)
ROOT = Path(__file__).resolve().parent


class build_py_with_shipped_files(build_py):  # noqa: N801  (setuptools' command naming)
    """``build_py`` that also copies :data:`SHIPPED` into ``helpers/_shipped`` (not for an editable install)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for pattern in SHIPPED:
            for path in sorted(ROOT.glob(pattern)):
                if path.is_file():
                    target = Path(self.build_lib) / "helpers" / "_shipped" / path.relative_to(ROOT)
                    self.mkpath(str(target.parent))
                    self.copy_file(str(path), str(target))


setup(cmdclass={"build_py": build_py_with_shipped_files})
