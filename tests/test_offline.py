"""MathJax comes from an installed package and is copied into the built book (helpers.offline)."""

from __future__ import annotations

from types import SimpleNamespace

from helpers import offline


def test_mathjax_is_installed_with_its_fonts():
    folder = offline.mathjax_dir()
    assert (folder / offline.MATHJAX_SCRIPT).stat().st_size > 500_000
    assert list((folder / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_Main-Regular.woff"))
    assert offline.mathjax_script("tex-svg.js").is_file()  # one file with its fonts, for a single-page report


def test_the_extension_points_sphinx_at_the_copy_and_makes_it(tmp_path):
    config = SimpleNamespace(mathjax_path="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js")
    offline._use_local_mathjax(None, config)
    assert config.mathjax_path == "mathjax/tex-mml-chtml.js"  # relative: Sphinx serves it from _static
    app = SimpleNamespace(outdir=str(tmp_path), builder=SimpleNamespace(format="html"))
    offline._copy_after_build(app, None)
    copied = tmp_path / "_static" / "mathjax"
    assert (copied / "tex-mml-chtml.js").is_file()
    assert (copied / "input" / "tex" / "extensions" / "ams.js").is_file()
    assert list((copied / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    offline._copy_after_build(
        SimpleNamespace(outdir=str(tmp_path / "x"), builder=app.builder), RuntimeError()
    )
    assert not (tmp_path / "x").exists()  # a failed build gets no copy
