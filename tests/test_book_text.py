"""The book's text points somewhere: every mention of another chapter is a {doc} link.

A reader who meets "see the finance chapter" cannot click it and may not find
it. This test reads every chapter (``book/**/*.md``) and every notebook's
markdown cells and fails on "the ... chapter(s)" that is neither inside a
``{doc}`` role nor followed, within the same sentence, by one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: "the opportunity chapter", "the chapters on money", "the *opportunity* chapter".
MENTION = re.compile(r"\bthe\s+((?:[\w'’*-]+\s+){0,4}?)chapters?\b", re.I)
ROLE = re.compile(r"\{(?:doc|ref|numref)\}`[^`]*`")
#: Words that make a mention refer to the page itself or to its neighbours in the sidebar, not a named chapter.
SELF_WORDS = {
    "first",
    "next",
    "previous",
    "earlier",
    "this",
    "same",
    "whole",
    "each",
    "handbook's",
    "handbook’s",
    "book's",
    "book’s",
}
SENTENCE_END = re.compile(r"[.;:!?](\s|$)")


def unlinked_mentions(text: str) -> list[str]:
    """Plain-text mentions of another chapter in ``text`` (markdown), with a little context."""
    found = []
    for role in ROLE.finditer(text):  # blank the roles out, keeping positions
        text = text[: role.start()] + "\x00" * (role.end() - role.start()) + text[role.end() :]
    for m in MENTION.finditer(text):
        words = {w.strip("*").lower() for w in m.group(1).split()}
        if words & SELF_WORDS:
            continue
        rest = text[m.end() : m.end() + 120]
        end = SENTENCE_END.search(rest)
        if "\x00" in (rest[: end.start()] if end else rest):  # a link follows in the same sentence
            continue
        found.append(" ".join(text[max(0, m.start() - 40) : m.end() + 40].replace("\x00", "").split()))
    return found


def book_texts() -> list[tuple[str, str]]:
    texts = [
        (str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
        for p in sorted((ROOT / "book").rglob("*.md"))
    ]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts += [
            (f"{path.relative_to(ROOT)} cell {c.get('id')}", "".join(c["source"]))
            for c in cells
            if c["cell_type"] == "markdown"
        ]
    return texts


def test_the_rule_catches_plain_mentions_and_passes_links():
    assert unlinked_mentions("see the finance chapter of this handbook.") == [
        "see the finance chapter of this handbook."
    ]
    assert unlinked_mentions("The chapters on length of stay and on money in this book;")
    assert unlinked_mentions("cost it with the *opportunity* chapter.")
    assert not unlinked_mentions("see {doc}`the opportunity chapter <variation>`.")
    assert not unlinked_mentions("The chapter {doc}`value/index` says so.")
    assert not unlinked_mentions("The chapter on\n{doc}`statistical process control <spc>` helps.")
    assert not unlinked_mentions(
        "The next chapter, {doc}`efficiency`, looks at it. This is the first chapter on value."
    )


@pytest.mark.parametrize("where,text", book_texts(), ids=[w for w, _ in book_texts()])
def test_every_mention_of_another_chapter_is_a_link(where, text):
    assert not unlinked_mentions(text), f"{where}: write a {{doc}} link: {unlinked_mentions(text)}"


# --------------------------------------------------------------------------- references
CORE_SOURCES = [
    "kingsfund2018",
    "nhsdigital_shmi",
    "hes_guide",
    "mdc2019",
    "nhse_core20plus5",
    "nice2022",
    "funnelplotr",
    "nhsrplotthedots",
]


def test_reference_labels_read_as_author_and_year():
    from pybtex.database import parse_file

    from helpers.bibstyle import AuthorYearStyle

    bib = parse_file(str(ROOT / "book" / "references.bib"))
    labels = [e.label for e in AuthorYearStyle().format_bibliography(bib)]
    assert len(labels) == len(bib.entries) == len(set(labels))  # one label each, none repeated
    assert "Porter 2010" in labels and "Anhøj and Olesen 2014" in labels and "HFMA 2023" in labels
    assert {"Spiegelhalter 2005a", "Spiegelhalter 2005b"} <= set(labels)
    assert max(map(len, labels)) <= 60, max(labels, key=len)  # no run-together alpha labels
    assert labels == sorted(labels, key=str.lower)
    king = bib.entries["kingsfund2018"]
    assert [str(p) for p in king.persons["author"]] == ["{The King's Fund}"]  # no doubtful personal authors
    for key in CORE_SOURCES:
        assert bib.entries[key].fields.get("url", "").startswith("https://"), key


def test_data_page_rules_say_at_least_not_zero_to():
    from helpers.io import describe_table

    rules = [r for table in ("spells", "virtual_ward", "outcomes") for r in describe_table(table)["rule"]]
    assert not [r for r in rules if r.rstrip().endswith(" to") or r.startswith(" to") or " to ;" in r]
    assert any("at least 0" in r for r in rules)  # e.g. a length of stay: no upper limit
    assert any("0 to 120" in r for r in rules)  # age keeps both ends
