"""Feeds spliced from cached entry fragments are byte for byte what feedgen renders whole, and
entry pages filled into template skeletons what the template renders for each."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeder import render
from feeder.normalizer import Entry

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
         dt.timezone(-dt.timedelta(hours=8))]
# text XML can carry (no controls, surrogates or non-characters), with markup and spacing mixed in
CHARACTERS = st.characters(exclude_categories=("Cs", "Cc", "Cn")) | st.sampled_from("\n\t<>&\"' ")
TEXT = st.text(CHARACTERS, max_size=40)
WORDS = TEXT.filter(str.strip)  # what feedgen requires (and RSS the feed's description)
LANGUAGES = st.sampled_from(["en", "it", "ar", "pt-BR", "zh"])
DATES = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2040, 1, 1),
                     timezones=st.sampled_from(ZONES))
PATHS = st.none() | st.sampled_from(["archive/atom-1.xml", "archive/rss-2.xml", "atom.xml"])


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    # ids from a small set, so that the cache meets one id with other content across examples
    number = draw(st.integers(0, 6))
    return Entry(
        id=f"tag:127.0.0.1,2025:e{number}", stem=f"e{number}", slug=draw(st.sampled_from(
            [f"e{number}", "caffè", "a&b", "x y"])),
        title=draw(WORDS), summary=draw(TEXT), content_html=draw(TEXT),
        published=draw(DATES), updated=draw(DATES), language=draw(LANGUAGES),
    )


@st.composite
def infos(draw: st.DrawFn) -> render.FeedInfo:
    return render.FeedInfo(
        title=draw(WORDS), subtitle=draw(WORDS), author=draw(WORDS),
        base_url=draw(st.sampled_from(["http://127.0.0.1:8080/", "https://example.org/ü/"])),
        language=draw(LANGUAGES), feed_id="tag:127.0.0.1,2025:feed",
        hubs=tuple(draw(st.lists(st.sampled_from(["http://127.0.0.1:9/hub", "https://h.io/?a&b"]),
                                 max_size=2, unique=True))),
        home=draw(st.sampled_from(["", "https://example.org/lang/it/"])),
        max_bytes=draw(st.integers(200, 6000)),
    )


ARCHIVES = st.builds(render.Archive, prev=PATHS, next=PATHS, current=PATHS,
                     is_archive=st.booleans())
DOCUMENTS = st.tuples(infos(), st.lists(entries(), max_size=8), ARCHIVES, st.data())


def _twins(info: render.FeedInfo) -> tuple[render.FeedInfo, render.FeedInfo]:
    """The feed, and one with another base URL and language: the same entries render
    differently in the two, and the cache must tell them apart."""
    return info, dataclasses.replace(
        info, base_url=info.base_url.replace("/ü/", "/"), language=info.language[::-1])


def _brief(data: st.DataObject, items: list[Entry]) -> set[str]:
    return data.draw(st.sets(st.sampled_from([e.id for e in items]))) if items else set()


@SETTINGS
@given(DOCUMENTS)
@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_spliced_xml_is_what_feedgen_writes(kind: str, document: tuple) -> None:
    info, items, archive, data = document
    brief = _brief(data, items)
    fast = getattr(render, f"render_{kind}")
    for one in _twins(info):
        links = {"self_path": "x/feed.xml", "archive": archive, "brief": brief}
        reference = getattr(render, f"render_{kind}_reference")(one, items, **links)
        for _ in range(2):  # a cache miss, then every fragment from the cache
            assert fast(one, items, **links) == reference


@SETTINGS
@given(DOCUMENTS)
def test_spliced_json_is_what_json_dumps_writes(document: tuple) -> None:
    info, items, _, data = document
    brief = _brief(data, items)
    for one in _twins(info):
        reference = render.render_json_reference(one, items, self_path="x/f.json", brief=brief)
        for _ in range(2):
            assert render.render_json(one, items, self_path="x/f.json", brief=brief) == reference


@SETTINGS
@given(DOCUMENTS)
@pytest.mark.parametrize("kind", ["atom", "rss", "json"])
def test_fit_spliced_is_fit_by_reference(kind: str, document: tuple) -> None:
    info, items, archive, _ = document
    links = {} if kind == "json" else {"archive": archive}
    for one in _twins(info):
        expected = render.fit_reference(kind, one, items, **links)
        assert render.fit(kind, one, items, **links) == expected


def test_one_entry_empty_and_cleared_cache() -> None:
    when = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    entry = Entry(id="tag:127.0.0.1,2025:one", stem="one", slug="one", title="Ünïcode <one>",
                  summary="s & t", content_html="<p>é</p>", published=when, updated=when,
                  language="it")
    info = render.FeedInfo(title="T", subtitle="S", author="A", base_url="http://127.0.0.1/",
                           language="en", feed_id="tag:127.0.0.1,2025:feed")
    for kind in ("atom", "rss", "json"):
        fast = getattr(render, f"render_{kind}")
        reference = getattr(render, f"render_{kind}_reference")
        for items in ([], [entry], [entry, dataclasses.replace(entry, content_html="<p>2</p>")]):
            render.clear_fragments()
            assert fast(info, items) == reference(info, items)
            assert fast(info, items) == reference(info, items)


def test_one_moment_in_two_time_zones_is_two_fragments() -> None:
    """Equal datetimes are written with their own offsets: the cache must not mix them up."""
    utc = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    india = utc.astimezone(ZONES[1])
    entry = Entry(id="tag:127.0.0.1,2025:tz", stem="tz", slug="tz", title="T", summary="s",
                  content_html="c", published=utc, updated=utc, language="en")
    info = render.FeedInfo(title="T", subtitle="S", author="A", base_url="http://127.0.0.1/",
                           language="en", feed_id="tag:127.0.0.1,2025:feed")
    for kind in ("atom", "rss", "json"):
        fast = getattr(render, f"render_{kind}")
        reference = getattr(render, f"render_{kind}_reference")
        for when in (utc, india):
            items = [dataclasses.replace(entry, published=when, updated=when)]
            assert fast(info, items) == reference(info, items)


# Markup, XML's trouble spots, right-to-left and non-Latin scripts, emoji; and, in half the
# entries, anything else a str holds (controls, "\r", surrogates, non-characters)
PIECES = CHARACTERS | st.sampled_from([
    "]]>", "<![CDATA[", "&amp;", "&#13;", "&lt;", "\"'", "<b>x</b>", "<script>", "\u202e",
    "\u200f", "שלום", "مرحبا", "日本語", "Ελληνικά", "😀", "👩\u200d💻", "\U0010fffd",
    "&", "<", ">"])
ODD = st.characters() | st.sampled_from(["\r\n", "\ufffe", "\x00", "\x85", "\ud800", "\ufdd0"])
HOSTILE = st.lists(PIECES, min_size=1, max_size=12).map("".join)
ODDER = st.lists(PIECES | ODD, max_size=12).map("".join)
WIDE_DATES = st.datetimes(timezones=st.builds(
    dt.timezone, st.integers(-86399, 86399).map(lambda s: dt.timedelta(seconds=s))))


@st.composite
def hostile_entries(draw: st.DrawFn) -> Entry:
    number = draw(st.integers(0, 6))
    text = draw(st.sampled_from([HOSTILE, ODDER]))
    return Entry(
        id=draw(st.just(f"tag:127.0.0.1,2025:e{number}") | text), stem=f"e{number}",
        slug=draw(st.sampled_from([f"e{number}", "caffè", "a&b", 'q"<>', "x\ty"]) | text),
        title=draw(text), summary=draw(text), content_html=draw(text),
        published=draw(DATES | WIDE_DATES), updated=draw(DATES | WIDE_DATES),
        language=draw(LANGUAGES | st.sampled_from(["", 'x"&<>', "he"]) | text),
    )


def _feedgen_fragment(kind: str, info: render.FeedInfo, entry: Entry, brief: bool) -> bytes:
    cut = render._xml_fragments(kind, info, [entry], {entry.id} if brief else set())
    assert cut is not None
    return cut[0]


@settings(SETTINGS, max_examples=400)
@given(infos(), hostile_entries(), st.booleans(),
       st.sampled_from(["", "https://x.org/a&b\"<>/"]))
@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_direct_fragment_is_feedgen_s_or_left_to_feedgen(
        kind: str, info: render.FeedInfo, entry: Entry, brief: bool, base_url: str) -> None:
    """Where the direct renderer writes an entry, its bytes are those cut out of feedgen's
    document; where it declines (None), the feedgen path renders it as before."""
    if base_url:
        info = dataclasses.replace(info, base_url=base_url)
    for one in _twins(info):
        direct = render._direct_fragment(kind, one, entry, brief)
        if direct is not None:
            assert direct == _feedgen_fragment(kind, one, entry, brief)


@settings(SETTINGS, max_examples=100)
@given(infos(), st.lists(hostile_entries(), max_size=6), ARCHIVES, st.data())
@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_spliced_hostile_xml_is_what_feedgen_writes_or_refuses(
        kind: str, info: render.FeedInfo, items: list[Entry], archive: render.Archive,
        data: st.DataObject) -> None:
    """Documents mixing direct fragments with feedgen's: the same bytes, or the same error
    where feedgen refuses a value (a control character, an empty id)."""
    links = {"self_path": "x/feed.xml", "archive": archive, "brief": _brief(data, items)}
    fast = getattr(render, f"render_{kind}")
    try:
        reference = getattr(render, f"render_{kind}_reference")(info, items, **links)
    except ValueError:
        with pytest.raises(ValueError):
            fast(info, items, **links)
        return
    for _ in range(2):
        assert fast(info, items, **links) == reference


@SETTINGS
@given(infos(), entries(), st.booleans())
@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_ordinary_entries_are_rendered_directly(
        kind: str, info: render.FeedInfo, entry: Entry, brief: bool) -> None:
    """Text XML carries as it is goes the direct way (unless a field is empty), so the
    comparison above is not vacuous."""
    direct = render._direct_fragment(kind, info, entry, brief)
    if entry.summary and entry.content_html:
        assert direct == _feedgen_fragment(kind, info, entry, brief)
    else:
        assert direct is None


NEIGHBOURS = st.none() | st.builds(render.Neighbour, title=WORDS,
                                   slug=st.sampled_from(["e1", "caffè", "a&b", "x y"]),
                                   language=LANGUAGES)


@settings(SETTINGS, max_examples=60)
@given(infos(), entries(), NEIGHBOURS, NEIGHBOURS, st.booleans())
def test_entry_page_from_its_skeleton_is_what_the_template_renders(
        info: render.FeedInfo, entry: Entry, prev: render.Neighbour | None,
        next_: render.Neighbour | None, edited: bool) -> None:
    if not edited:  # the same moment, maybe written with another offset
        entry = dataclasses.replace(entry, updated=entry.published.astimezone(ZONES[1]))
    for one in _twins(info):
        reference = render.render_entry_page_reference(one, entry, prev, next_)
        for _ in range(2):  # a new skeleton, then the cached one
            assert render.render_entry_page(one, entry, prev, next_) == reference


def test_entry_page_of_a_feed_holding_the_hole_marker_is_the_template_s() -> None:
    info = render.FeedInfo(title="T\x00title\x00", subtitle="S", author="A",
                           base_url="http://127.0.0.1/", language="en",
                           feed_id="tag:127.0.0.1,2025:feed")
    when = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    entry = Entry(id="tag:127.0.0.1,2025:one", stem="one", slug="one", title="<b>",
                  summary="s", content_html="<p>c</p>", published=when, updated=when,
                  language="ar")
    page = render.render_entry_page(info, entry)
    assert page == render.render_entry_page_reference(info, entry)
    assert b"T\x00title\x00" in page


@settings(SETTINGS, max_examples=100)
@given(infos(), hostile_entries() | entries(), st.sampled_from(["index_item", "language_item"]))
def test_list_item_from_its_skeleton_is_what_the_macro_renders(
        info: render.FeedInfo, entry: Entry, kind: str) -> None:
    for one in _twins(info):
        reference = render._list_item_reference(kind, one, entry)
        assert render._list_item(kind, one, entry) == reference


def test_list_items_of_an_archive_page_are_the_macro_s() -> None:
    info = render.FeedInfo(title="T", subtitle="S", author="A", base_url="http://127.0.0.1/",
                           language="en", feed_id="tag:127.0.0.1,2025:feed")
    when = dt.datetime(2025, 6, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    items = [Entry(id=f"tag:127.0.0.1,2025:{lang}", stem=lang, slug=f"{lang}&x",
                   title=f"<b>'{lang}'</b>", summary='"s" & t', content_html="<p>c</p>",
                   published=when, updated=when, language=lang)
             for lang in ("ar", "en", "he-IL", "x\"y")]
    for kind in ("index_item", "language_item"):
        assert (str(render._list_items(kind, info, items))
                == "".join(render._list_item_reference(kind, info, e) for e in items))


@settings(SETTINGS, max_examples=100)
@given(infos(), hostile_entries(), st.sampled_from(["", "\ue000title\ue000", "</script>"]))
def test_entry_page_json_ld_from_its_skeleton_is_script_json_s(
        info: render.FeedInfo, entry: Entry, author: str) -> None:
    """Controls, quotes, "</script>" and the JSON-LD skeleton's own hole marker, in the
    entry or in the feed's settings."""
    info = dataclasses.replace(info, author=author or info.author)
    try:
        reference = render.render_entry_page_reference(info, entry)
    except UnicodeEncodeError:  # a lone surrogate: no page either way
        with pytest.raises(UnicodeEncodeError):
            render.render_entry_page(info, entry)
        return
    assert render.render_entry_page(info, entry) == reference


@settings(SETTINGS, max_examples=300)
@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31),
                    timezones=st.timezones() | st.sampled_from([
                        dt.timezone(dt.timedelta(hours=-3, seconds=-7)),
                        dt.timezone(dt.timedelta(minutes=5, microseconds=3)),
                        dt.timezone(dt.timedelta(hours=23, minutes=59))])))
def test_rfc2822_dates_are_strftime_s(moment: dt.datetime) -> None:
    reference = (f"{render._DAYS[moment.weekday()]}, {moment.day:02d} "
                 f"{render._MONTHS[moment.month - 1]} {moment.year} {moment:%H:%M:%S %z}")
    assert render._rfc2822(moment) == reference


# every character class _UNSURE draws a line between, on both sides of each line
EDGES = st.sampled_from("\x00\x08\t\n\x0b\r\x1f -~\x7f\x80\x85\x9f\xa0\xe9\xff\u0100\u2014"
                        "\ud7ff\ud800\udfff\ue000\ufdcf\ufdd0\ufdef\ufdf0\ufffd\ufffe\uffff"
                        "\U00010000\U0001f600\U0010ffff")


@settings(SETTINGS, max_examples=1000)
@given(st.text(EDGES | st.characters(max_codepoint=0xFF) | st.characters(), max_size=30))
def test_the_quick_unsure_test_is_the_regex_s(text: str) -> None:
    """``_unsure`` (Latin-1 text by its bytes, the rest by the regex from its first character
    past Latin-1) says what ``_UNSURE.search`` says, for any text."""
    assert render._unsure(text) == (render._UNSURE.search(text) is not None)
