"""The HTML pages as a browser, a search engine and a link preview read them.

Pages are parsed with lxml.html; assertions are about elements and attributes, not text
patterns, so attribute order and escaping choices do not matter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import lxml.html
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup

from feeder import render
from feeder.normalizer import Entry

from .conftest import Site

ROME = dt.timezone(dt.timedelta(hours=1))
INFO = render.FeedInfo(title="Notizie & co", subtitle="s", author="Redazione",
                       base_url="https://news.example.org/", language="en", feed_id="tag:x")


def make_entry(language: str = "it", **fields: object) -> Entry:
    values: dict = {
        "id": "tag:news.example.org,2025:001_kim", "stem": "001_kim", "slug": "001_kim",
        "title": "Kim scrive a Putin", "summary": "Un messaggio di auguri. Breve.",
        "content_html": "<p>Un messaggio di auguri. Breve.</p>",
        "published": dt.datetime(2025, 12, 28, 0, 0, tzinfo=ROME),
        "updated": dt.datetime(2025, 12, 30, 9, 15, 30, 123456, tzinfo=ROME),
        "language": language,
    }
    values.update(fields)
    return Entry(**values)


def page_of(html: bytes) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def meta(page: lxml.html.HtmlElement) -> dict[str, str]:
    """``property`` (OpenGraph) and ``name`` metas; each must occur once."""
    tags = [(m.get("property") or m.get("name"), m.get("content"))
            for m in page.iter("meta") if m.get("content") is not None]
    keys = [k for k, _ in tags]
    assert len(keys) == len(set(keys)), keys
    return dict(tags)


def json_ld(page: lxml.html.HtmlElement) -> dict:
    scripts = page.xpath("//script")
    assert [s.get("type") for s in scripts] == ["application/ld+json"]
    return json.loads(scripts[0].text)


def canonical(page: lxml.html.HtmlElement) -> str:
    (link,) = page.xpath("//link[@rel='canonical']")
    return link.get("href")


def test_entry_page_carries_canonical_opengraph_and_news_article() -> None:
    entry = make_entry()
    page = page_of(render.render_entry_page(INFO, entry))
    url = "https://news.example.org/entries/001_kim.html"
    assert canonical(page) == url
    assert page.get("lang") == "it" and page.get("dir") is None
    tags = meta(page)
    assert {k: v for k, v in tags.items() if k.startswith(("og:", "article:"))} == {
        "og:type": "article",
        "og:title": "Kim scrive a Putin",
        "og:description": "Un messaggio di auguri. Breve.",
        "og:url": url,
        "og:locale": "it_IT",
        "og:site_name": "Notizie & co",
        "article:published_time": "2025-12-28T00:00:00+01:00",
        "article:modified_time": "2025-12-30T09:15:30+01:00",
    }
    assert tags["description"] == entry.summary
    assert page.xpath("//p[@class='meta']/span[@lang='en']/text()") == ["updated"]
    assert tags["viewport"].startswith("width=device-width")
    article = json_ld(page)
    assert article == {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": "Kim scrive a Putin",
        "description": "Un messaggio di auguri. Breve.",
        "inLanguage": "it",
        "datePublished": "2025-12-28T00:00:00+01:00",
        "dateModified": "2025-12-30T09:15:30+01:00",
        "url": url,
        "mainEntityOfPage": {"@type": "WebPage", "@id": url},
        "author": {"@type": "Person", "name": "Redazione"},
        "publisher": {"@type": "Organization", "name": "Notizie & co",
                      "url": "https://news.example.org/"},
    }
    for stamp in (article["datePublished"], article["dateModified"]):
        assert dt.datetime.fromisoformat(stamp).utcoffset() == dt.timedelta(hours=1)


HOSTILE = "</script><script>alert(1)</script><!-- & </SCRIPT >"


def test_hostile_seed_cannot_break_out_of_the_json_ld(site: Site) -> None:
    site.write("001_x.txt", body=f"Breaking {HOSTILE} now. {HOSTILE} again.\n\nMore text.")
    site.build()
    raw = site.read("entries/001_x.html")
    page = page_of(raw)
    # one script element, still JSON, holding the seed's text unchanged
    article = json_ld(page)
    assert HOSTILE in article["headline"] and HOSTILE in article["description"]
    assert meta(page)["og:title"] == article["headline"]
    assert page.xpath("//h1")[0].text_content() == article["headline"]
    opening = b'<script type="application/ld+json">'
    body = raw[raw.index(opening) + len(opening):raw.index(b"</script>")]
    assert json.loads(body) == article
    assert not {ord("<"), ord(">"), ord("&")} & set(body)


@pytest.mark.parametrize(("language", "locale"), [
    ("it", "it_IT"), ("de", "de_DE"), ("en", "en_US"), ("pt", "pt_BR"), ("zh", "zh_CN"),
    ("pt-PT", "pt_PT"), ("en_gb", "en_GB"), ("zh-Hant-TW", "zh_TW"), ("EO", None),
    ("zxx", None), ("", None),
])
def test_og_locale(language: str, locale: str | None) -> None:
    assert render.og_locale(language) == locale


def test_language_without_a_territory_has_no_og_locale() -> None:
    page = page_of(render.render_entry_page(INFO, make_entry("eo")))
    assert page.get("lang") == "eo" and "og:locale" not in meta(page)


def test_right_to_left_entry_page_and_index_item() -> None:
    entry = make_entry("ar", title="مكتبة جديدة", summary="افتتاح مكتبة.")
    page = page_of(render.render_entry_page(INFO, entry))
    assert (page.get("lang"), page.get("dir")) == ("ar", "rtl")
    (nav,) = page.xpath("//nav")  # the site's own name stays in the site's language
    assert (nav.get("lang"), nav.get("dir")) == ("en", "ltr")
    index = page_of(render.render_index(INFO, [entry, make_entry()]))
    assert [(li.get("lang"), li.get("dir")) for li in index.xpath("//main//li")] == [
        ("ar", "rtl"), ("it", None)]


def test_index_links_its_neighbour_pages_only_when_given() -> None:
    entries = [make_entry()]
    plain = page_of(render.render_index(INFO, entries))
    assert not plain.xpath("//*[@rel='prev' or @rel='next']")
    assert plain.get("lang") == "en"
    paged = page_of(render.render_index(INFO, entries, prev_page="page/2.html",
                                        next_page="page/4.html"))
    for rel, href in (("prev", "https://news.example.org/page/2.html"),
                      ("next", "https://news.example.org/page/4.html")):
        assert [el.get("href") for el in paged.xpath(f"//head/link[@rel='{rel}']")] == [href]
        assert [el.get("href") for el in paged.xpath(f"//body//a[@rel='{rel}']")] == [href]
    only_next = page_of(render.render_index(INFO, entries, next_page="page/2.html"))
    assert not only_next.xpath("//*[@rel='prev']")
    assert len(only_next.xpath("//*[@rel='next']")) == 2


def test_every_detectable_language_has_a_locale_but_the_few_without_a_territory() -> None:
    from feeder.normalizer import _identifier

    detectable = set(_identifier(()).nb_classes)
    assert {lang for lang in detectable if render.og_locale(lang) is None} == {"eo", "vo", "zxx"}


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=40), max_size=4))
def test_script_json_escapes_exactly_as_a_translation_table(data) -> None:  # noqa: ANN001
    """script_json replaces <, > and & with str.replace for speed: the bytes are those of
    the translation table it replaced, and parse back to the same data."""
    table = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
    expected = json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(table)
    assert render.script_json(data) == expected
    assert json.loads(render.script_json(data)) == data


def test_load_templates_leaves_no_page_template_to_compile_in_a_pass(monkeypatch) -> None:  # noqa: ANN001
    """The daemon compiles them at its start: the first seed's pass would otherwise wait
    for Jinja to parse and compile the entry page's template, ~100 ms here."""
    render._templates.cache.clear()
    render.load_templates()
    loads: list[str] = []
    real = render._templates.loader.get_source

    def spy(env, name):  # noqa: ANN001, ANN202
        loads.append(name)
        return real(env, name)

    monkeypatch.setattr(render._templates.loader, "get_source", spy)
    render.render_entry_page(INFO, make_entry())
    render.render_index(INFO, [make_entry()])
    render.render_archive_page(INFO, 1, 2, [make_entry()])
    render.render_search_page(INFO)
    assert loads == []


def test_index_archive_and_language_pages_from_shells_are_their_templates_bytes() -> None:
    """The index, archive and language pages are their list items put into a shell of the
    template cached by the settings, links, languages and dates it shows: page after page,
    each is byte for byte the template rendered with every entry, whatever changes from one
    to the next (the span of an archive page, its links, the index's languages, no entries,
    another language's direction, another site's settings for the same Entry objects)."""
    made: dict[tuple[int, str], Entry] = {}

    def day(n: int, language: str = "it") -> Entry:  # the same object each time: as kept
        moment = dt.datetime(2025, 1, 1, 12, tzinfo=ROME) + dt.timedelta(days=n)
        return made.setdefault((n, language), make_entry(
            language, stem=f"{n:03d}_x", slug=f"{n:03d}_x", title=f"Giorno {n}",
            id=f"tag:news.example.org,2025:{n:03d}_x", published=moment, updated=moment))

    def items(kind: str, info: render.FeedInfo, entries: list[Entry]) -> object:
        return Markup("".join(render._list_item_reference(kind, info, e) for e in entries))

    def index(info: render.FeedInfo, entries: list[Entry], prev_page: str | None = None,
              next_page: str | None = None, number: int | None = None,
              languages: object = ()) -> bytes:  # the template itself, its items the macro's
        return render._templates.get_template("index.html").render(
            info=info, entries=entries, prev_page=prev_page, next_page=next_page,
            number=number, languages=languages,
            items=items("index_item", info, entries)).encode()

    def language(info: render.FeedInfo, site: render.FeedInfo, folder: str,
                 entries: list[Entry]) -> bytes:
        return render._templates.get_template("language.html").render(
            info=info, site=site, folder=folder, entries=entries,
            items=items("language_item", info, entries)).encode()

    other = dataclasses.replace(INFO, title="Другое & <co>", base_url="https://b.example/x/")
    for info in (INFO, other, dataclasses.replace(INFO, archive_count=12),
                 dataclasses.replace(INFO, language="it")):
        for n in range(1, 5):  # archive pages: each its own span and links
            entries = [day(10 * n + i) for i in range(3)]
            for kind in ("atom", "rss", "json"):  # their entries' fragments, by identity too
                assert render.fit(kind, info, entries) == \
                    render.fit_reference(kind, info, entries)
            assert render.render_archive_page(info, n, 4, entries) == index(
                info, entries, prev_page=render.archive_page_path(n + 1) if n < 4 else "",
                next_page=render.archive_page_path(n - 1) if n > 1 else None, number=n)
        for entries, older, languages in (
                ([day(1), day(2)], None, ()), ([day(2), day(3)], "archive/page-1.html", ["it"]),
                ([day(2), day(3)], "archive/page-2.html", ["ar", "it"]), ([], None, []),
                ([day(4, "ar")], None, ["ar"]), ([day(5)], None, ["ar"])):
            assert render.render_index(info, entries, next_page=older, languages=languages) \
                == index(info, entries, next_page=older, languages=languages)
        for code, entries in (("it", [day(1)]), ("ar", [day(2, "ar")]), ("it", [])):
            lang = dataclasses.replace(info, language=code, title=f"{info.title} ({code})")
            assert render.render_language_page(lang, info, f"lang/{code}/", entries) == \
                language(lang, info, f"lang/{code}/", entries)
