"""Maths without the internet: MathJax served from the built book, not from a CDN.

MathJax 3 comes from the PyPI package ``django-static-mathjax`` (pinned in
``requirements.txt``; despite its name it is MathJax's files and no Django),
so ``pip install -r requirements.txt`` is the whole set-up, on Windows too.
:func:`mathjax_dir` finds the files; used as a Sphinx extension (listed in
``_config.yml``), this module points Sphinx's ``mathjax_path`` at
``_static/mathjax/`` and copies MathJax there when the book is built, so a page
opened from disk, offline or behind a proxy, shows its formulas. A report
writer that needs MathJax takes the script from :func:`mathjax_script`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mathjax  # the django-static-mathjax distribution's package (requirements.txt)

#: The MathJax component the book loads: TeX and MathML input, HTML/CSS output (Sphinx's default).
MATHJAX_SCRIPT = "tex-mml-chtml.js"
#: Where the book serves MathJax, relative to its ``_static`` folder.
STATIC_FOLDER = "mathjax"
# Folders MathJax loads parts from at run time (fonts, TeX extensions, the menu, accessibility).
_PARTS = ("a11y", "adaptors", "input", "output", "sre", "ui")


def mathjax_dir() -> Path:
    """The folder of MathJax's browser files (``es5``) in the installed ``django-static-mathjax`` package."""
    folder = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (folder / MATHJAX_SCRIPT).is_file():
        raise RuntimeError(
            f"MathJax's {MATHJAX_SCRIPT} is missing from {folder}: reinstall django-static-mathjax."
        )
    return folder


def mathjax_script(name: str = MATHJAX_SCRIPT) -> Path:
    """The path of one MathJax component, e.g. ``tex-svg.js`` (fonts inside it) for a single-file page."""
    path = mathjax_dir() / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def copy_mathjax(static_dir: Path) -> Path:
    """Copy the book's MathJax component and the parts it loads into ``static_dir/mathjax``; return that folder."""
    source, target = mathjax_dir(), Path(static_dir) / STATIC_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / MATHJAX_SCRIPT, target / MATHJAX_SCRIPT)
    for part in _PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
    return target


# --------------------------------------------------------------------------- Sphinx extension
def _use_local_mathjax(app: Any, config: Any) -> None:
    config.mathjax_path = f"{STATIC_FOLDER}/{MATHJAX_SCRIPT}"


def _copy_after_build(app: Any, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir) / "_static")


def setup(app: Any) -> dict[str, Any]:
    """Sphinx extension: serve MathJax from ``_static/mathjax`` of the built book."""
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_after_build)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
