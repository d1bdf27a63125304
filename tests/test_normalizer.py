"""Unit and property tests of the normalizer that do not fit as case files."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeder.normalizer import (
    DETECTABLE_LANGUAGES,
    Rules,
    _identifier,
    cut_words,
    detect_language,
    entry_id,
    normalize,
    published_at,
    slug_for,
)
from feeder.seed import parse_seed

RULES = Rules(authority="example.org", tag_date="2025")
FAST = settings(max_examples=200, deadline=None)
WORDS = st.lists(st.text("abcdéß’-.,", min_size=1, max_size=12), min_size=1, max_size=40)


@FAST
@given(WORDS, st.integers(min_value=13, max_value=120))
def test_cut_words_cuts_only_between_words(words: list[str], limit: int) -> None:
    text = " ".join(words)
    cut = cut_words(text, limit)
    assert len(cut) <= limit
    if len(text) <= limit:
        assert cut == text
        return
    assert cut.endswith("…")
    head = cut[:-1]
    assert text.startswith(head)
    # the character after the kept text ends a word: a space or punctuation stripped before "…"
    assert text[len(head)] in " ,;:–—-"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short enough", 12, "short enough"),
        ("one two three four", 12, "one two…"),
        ("one two, three", 10, "one two…"),
        ("Unbreakablelongword here", 10, "Unbreakab…"),  # no space to cut at: cut the word
    ],
)
def test_cut_words_examples(text: str, limit: int, expected: str) -> None:
    assert cut_words(text, limit) == expected


def _entry(text: str, stem: str = "001_article"):
    return normalize(parse_seed(text.encode(), stem), stem, RULES)


def test_entry_id_does_not_depend_on_the_text() -> None:
    before = _entry(" date 2025-01-02 The first version of the article.")
    after = _entry(" date 2025-06-30 A rewritten article.\n\nWith a second paragraph.")
    assert before.id == after.id == "tag:example.org,2025:001_article"


def test_nfc_and_nfd_stems_give_the_same_id_and_slug() -> None:
    nfc, nfd = unicodedata.normalize("NFC", "café_été"), unicodedata.normalize("NFD", "café_été")
    assert nfc != nfd
    assert entry_id("example.org", "2025", nfc) == entry_id("example.org", "2025", nfd)
    assert slug_for(nfc) == slug_for(nfd)
    assert _entry(" date 2025-01-02 Text.", nfc).id == _entry(" date 2025-01-02 Text.", nfd).id


def test_entry_id_of_a_name_that_is_not_utf8() -> None:
    # os.listdir() hands such a name over with its bytes escaped as lone surrogates
    stem = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert entry_id("example.org", "2025", stem) == "tag:example.org,2025:caf%E9"
    assert entry_id("example.org", "2025", "café") == "tag:example.org,2025:caf%C3%A9"


SAFE_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@pytest.mark.parametrize(
    "stem",
    ["my article", "..", ".", "../../etc/passwd", "a/b", "a\\b", "Überraschung für alle", "日本語",
     ".hidden", "trailing.", "x" * 300, "", "caf\udce9"],
)
def test_slug_for_is_a_safe_file_name(stem: str) -> None:
    slug = slug_for(stem)
    assert SAFE_SLUG.fullmatch(slug)
    assert not slug.endswith(".") and len(slug) <= 100


@FAST
@given(st.text(max_size=80))
def test_slug_for_any_stem(stem: str) -> None:
    slug = slug_for(stem)
    assert SAFE_SLUG.fullmatch(slug) and not slug.endswith(".")
    assert slug == slug_for(unicodedata.normalize("NFD", stem))


def test_slug_keeps_plain_stems_and_separates_lookalikes() -> None:
    assert slug_for("001_d53b54a01c1a6f6f") == "001_d53b54a01c1a6f6f"
    assert slug_for("my article") != slug_for("my-article")
    assert slug_for("Überraschung").startswith("Uberraschung-")


@pytest.mark.parametrize(
    ("date", "timezone", "expected"),
    [
        (dt.date(2025, 1, 15), "UTC", "2025-01-15T00:00:00+00:00"),
        (dt.date(2025, 1, 15), "Europe/Rome", "2025-01-15T00:00:00+01:00"),
        (dt.date(2025, 7, 15), "Europe/Rome", "2025-07-15T00:00:00+02:00"),
        (dt.date(2025, 7, 15), "America/New_York", "2025-07-15T00:00:00-04:00"),
        (dt.datetime(2025, 7, 15, 9, 30), "Europe/Rome", "2025-07-15T09:30:00+02:00"),
        # an offset written in the seed wins over the configured zone
        (dt.datetime(2025, 7, 15, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
         "Europe/Rome", "2025-07-15T09:30:00-03:00"),
    ],
)
def test_published_at(date: dt.date, timezone: str, expected: str) -> None:
    published = published_at(date, timezone)
    assert published.tzinfo is not None and published.utcoffset() is not None
    assert published.isoformat() == expected


def test_normalize_uses_the_configured_timezone() -> None:
    doc = parse_seed(b" date 2025-03-04 Text.", "x")
    entry = normalize(doc, "x", Rules(authority="example.org", tag_date="2025",
                                      timezone="Asia/Tokyo"))
    assert entry.published == entry.updated
    assert entry.published.isoformat() == "2025-03-04T00:00:00+09:00"


@pytest.mark.parametrize("text", ["", "Ciao!", "Hallo Welt", "1234567890 ... 2025-01-02 !!"])
def test_detect_language_falls_back_for_short_text(text: str) -> None:
    assert detect_language(text, "it") == "it"
    assert detect_language(text, "xx") == "xx"


SAMPLES = {
    "en": "The council approved the new budget on Thursday after a long debate about the roads.",
    "it": "Il consiglio comunale ha approvato il nuovo bilancio giovedì dopo un lungo dibattito.",
    "de": "Der Stadtrat hat am Donnerstag nach einer langen Debatte den Haushalt beschlossen.",
    "fr": "Le conseil municipal a adopté jeudi le nouveau budget après un long débat.",
    "es": "El ayuntamiento aprobó el jueves el nuevo presupuesto tras un largo debate.",
}


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_detect_language_is_right_and_deterministic(lang: str) -> None:
    results = {detect_language(SAMPLES[lang], "en") for _ in range(3)}
    assert results == {lang}


def test_detect_language_respects_the_allowed_languages() -> None:
    assert detect_language(SAMPLES["es"], "en", ("it", "es")) == "es"
    assert detect_language(SAMPLES["de"], "en", ("en", "it")) in {"en", "it"}


def test_detectable_languages_are_the_models_own() -> None:
    """Config validation trusts this list instead of loading the model: it must not drift."""
    assert set(_identifier(()).labels) == DETECTABLE_LANGUAGES
