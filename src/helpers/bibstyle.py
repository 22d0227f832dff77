"""Readable author-year labels for the book's list of references.

sphinxcontrib-bibtex labels the reference list with pybtex's "alpha" style by
default, which glues corporate authors into labels such as
``[AcademyoMRCollegesFacultyoMLa...14]`` that overflow the column. Used as a
Sphinx extension (listed in ``_config.yml``), this module registers a pybtex
style ``authoryear``: the list is sorted by author and year and labelled
"Porter 2010", "Willan and O'Brien 1996", "Spiegelhalter 2005a", "Barnett et
al. 2005"; an entry's ``shortauthor`` field, when present, replaces a long
corporate name ("HFMA 2023").
"""

from __future__ import annotations

import string
from collections import Counter
from typing import Any, Iterable, Iterator

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle

STYLE_NAME = "authoryear"


def _plain(latex: str) -> str:
    return Text.from_latex(latex).render_as("text").replace("{", "").replace("}", "").strip()


def author_year_label(entry: Any) -> str:
    """The label of one pybtex entry: surnames (one, two, or the first and "et al.") and the year."""
    year = _plain(entry.fields.get("year", "n.d."))
    if entry.fields.get("shortauthor"):
        return f"{_plain(entry.fields['shortauthor'])} {year}"
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
    others = "others" in names
    names = [n for n in names if n and n != "others"]
    if not names:
        who = _plain(entry.fields.get("institution", entry.fields.get("title", entry.key)))
    elif len(names) > 2 or others:
        who = f"{names[0]} et al."
    else:
        who = " and ".join(names)
    return f"{who} {year}"


class AuthorYearLabels(BaseLabelStyle):
    """Author-year labels; the same author and year twice become 2005a, 2005b."""

    def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [author_year_label(e) for e in entries]
        total, seen = Counter(labels), Counter()
        for label in labels:
            if total[label] > 1:
                seen[label] += 1
                yield label + string.ascii_lowercase[seen[label] - 1]
            else:
                yield label


class AuthorYearSorting(BaseSortingStyle):
    """Sorted as the labels read: by the label's author words, then year, then title."""

    def sorting_key(self, entry: Any) -> tuple[str, str]:
        return author_year_label(entry).lower(), _plain(entry.fields.get("title", ""))


class AuthorYearStyle(UnsrtStyle):
    """pybtex's ``unsrt`` formatting, sorted by author and year, with :class:`AuthorYearLabels`."""

    default_label_style = AuthorYearLabels
    default_sorting_style = AuthorYearSorting


def setup(app: Any) -> dict[str, Any]:
    """Sphinx extension: register the ``authoryear`` pybtex style (set ``bibtex_default_style: authoryear``)."""
    register_plugin("pybtex.style.labels", STYLE_NAME, AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", STYLE_NAME, AuthorYearStyle, force=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
