"""Seed cases as data files: ``tests/cases/NAME.txt`` holds the seed bytes and ``NAME.json``
what parsing and normalizing them must give (any subset of the keys in ``CHECKS``), or
``{"error": "..."}`` with a substring of the :class:`SeedError` reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feeder.errors import SeedError
from feeder.normalizer import Entry, Rules, normalize
from feeder.seed import SeedDocument, parse_seed

from .conftest import REAL_SEED

CASES = Path(__file__).parent / "cases"
RULES = Rules(authority="example.org", tag_date="2025")


def _contains(entry: Entry, wanted: list[str]) -> None:
    for text in wanted:
        assert text in entry.content_html


def _excludes(entry: Entry, unwanted: list[str]) -> None:
    for text in unwanted:
        assert text not in entry.content_html


# key -> (doc, entry, expected) -> None; every key a case file may use is here.
CHECKS = {
    "date": lambda d, e, x: _eq(d.date.isoformat(), x),
    "published": lambda d, e, x: _eq(e.published.isoformat(), x),
    "encoding": lambda d, e, x: _eq(d.encoding, x),
    "repaired": lambda d, e, x: _eq(list(d.repaired), x),
    "id": lambda d, e, x: _eq(e.id, x),
    "slug": lambda d, e, x: _eq(e.slug, x),
    "title": lambda d, e, x: _eq(e.title, x),
    "summary": lambda d, e, x: _eq(e.summary, x),
    "language": lambda d, e, x: _eq(e.language, x),
    "blocks": lambda d, e, x: _eq([list(b) for b in d.blocks], x),
    "content_html": lambda d, e, x: _eq(e.content_html, x),
    "content_contains": lambda d, e, x: _contains(e, x),
    "content_excludes": lambda d, e, x: _excludes(e, x),
}


def _eq(actual: object, expected: object) -> None:
    assert actual == expected


def _case_files() -> list[Path]:
    return sorted(CASES.glob("*.txt"))


def test_every_case_has_both_files() -> None:
    texts = {p.stem for p in CASES.glob("*.txt")}
    expectations = {p.stem for p in CASES.glob("*.json")}
    assert texts, "no cases found"
    assert texts == expectations


@pytest.mark.parametrize("path", _case_files(), ids=lambda p: p.name)
def test_case(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    data = path.read_bytes()
    if "error" in expected:
        assert set(expected) == {"error"}
        with pytest.raises(SeedError) as info:
            parse_seed(data, path.name)
        assert expected["error"] in info.value.reason
        assert info.value.name == path.name
        return
    unknown = set(expected) - set(CHECKS)
    assert expected and not unknown, f"unknown keys {sorted(unknown)}"
    doc = parse_seed(data, path.name)
    entry = normalize(doc, path.stem, RULES)
    for key, value in expected.items():
        CHECKS[key](doc, entry, value)


def test_real_seed() -> None:
    """The seed format as delivered: the user's own article, kept in tests/data."""
    doc = parse_seed(REAL_SEED.read_bytes(), REAL_SEED.name)
    entry = normalize(doc, REAL_SEED.stem, RULES)
    assert isinstance(doc, SeedDocument)
    assert doc.date.isoformat() == "2025-12-28"
    assert entry.language == "it"
    assert entry.title.startswith("Nel contesto del conflitto ucraino")
    assert len(entry.title) <= RULES.title_length
    assert len(entry.summary) <= RULES.summary_length
    assert entry.summary.endswith((".", "!", "?"))
    assert ("h", "Il ruolo della Corea del Nord nel conflitto") in doc.blocks
    assert entry.id == "tag:example.org,2025:000_d53b54a01c1a6f6f"
    assert entry.published.isoformat() == "2025-12-28T00:00:00+00:00"
