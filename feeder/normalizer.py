"""SeedDocument -> :class:`Entry`: id, title, summary, HTML content, date and language.

Pure: the caller supplies the file stem and the settings; ``updated`` history is the
store's business, so a fresh entry has ``updated == published``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import operator
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from .language import identifier as _identifier
from .seed import SeedDocument

_SENTENCE_END = re.compile(r"[.!?…。！？](?:[\"'”’»)\]“‘«‹]*)(?=\s|$)")  # “‘«‹ close in German
_SLUG_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_LANG_SAMPLE = 200
_LANG_MIN_LETTERS = 20
# The codes py3langid's model can answer (tests/test_normalizer.py checks them against the
# model): config validation needs them without loading the model, which takes a second.
DETECTABLE_LANGUAGES = frozenset("""
    ace af am an ar ary arz as az ba bcl be bg bn br bs ca crh cs cy da de dz el en eo es et
    eu ext fa fi fo fr fuv fy ga gcf gcr gd gl gom grc gu gug guw ha hbo he hi hr ht hu hy
    id ig is it ja jv ka kab kik kk km kn ko ku ky la lb lg lij ln lo lt ltg lv mg mk ml mn
    mr ms mt my ne nl nn no nso oc om or pa pcm pl ps pt qu ro ru rw sa sdh se si sk sl sn
    so sq sr st sv sw ta te tg th tk tl tr tt ug uk ur uz uzs vec vi vo wa wuu xh yo yue zh
    zu zxx
""".split())  # noqa: SIM905 - a word list reads better than 140 quoted strings


_FIELDS: dict[type, Callable[[object], tuple]] = {}  # class -> getter of its slots, in order


def reduce_by_fields(obj: object) -> tuple:
    """``__reduce__`` for a slotted dataclass: its class and its fields in order. (The
    dataclasses' own pickling of a slotted class looks its fields up at every call: half the
    cost of the entries that cross between the pool's workers and the publishing process.)"""
    cls = type(obj)
    fields = _FIELDS.get(cls)
    if fields is None:
        slots = cls.__slots__
        if len(slots) > 1:  # one operator.attrgetter call for all (with one name: no tuple)
            fields = operator.attrgetter(*slots)
        else:
            def fields(obj: object, slots: tuple = tuple(slots)) -> tuple:
                return tuple(map(obj.__getattribute__, slots))
        _FIELDS[cls] = fields
    return cls, fields(obj)


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    stem: str
    slug: str
    title: str
    summary: str
    content_html: str
    published: dt.datetime
    updated: dt.datetime
    language: str

    __reduce__ = reduce_by_fields

    def __post_init__(self) -> None:
        if self.published.tzinfo is None or self.updated.tzinfo is None:
            raise ValueError("Entry dates must be time-zone aware")


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings that shape an entry (a picklable subset of Config for worker processes)."""

    authority: str
    tag_date: str
    timezone: str = "UTC"
    title_length: int = 90
    summary_length: int = 300
    default_language: str = "en"
    languages: tuple[str, ...] = ()
    # how languages are detected: part of the rules' key (sync.py), so that a state made
    # with another detector has its entries detected again, not a mix of two detectors'
    detector: str = "cld2, else py3langid"

    @classmethod
    def from_config(cls, config) -> Rules:  # noqa: ANN001 - avoids importing config here
        return cls(
            authority=config.authority, tag_date=config.tag_date, timezone=config.timezone,
            title_length=config.title_length, summary_length=config.summary_length,
            default_language=config.default_language, languages=config.languages,
        )


def canonical_stem(stem: str) -> str:
    """File names from different systems may spell the same stem in NFC or NFD."""
    return unicodedata.normalize("NFC", stem)


def entry_id(authority: str, tag_date: str, stem: str) -> str:
    """An RFC 4151 tag URI; depends only on the settings and the file stem, never the text."""
    # surrogateescape: a file name that is not UTF-8 reaches us with its raw bytes escaped.
    raw = canonical_stem(stem).encode("utf-8", "surrogateescape")
    specific = quote(raw, safe="-._~:@!$()*+,;=")
    return f"tag:{authority},{tag_date}:{specific}"


def slug_for(stem: str) -> str:
    """A safe file/URL name for the entry page: the stem itself when it is plain ASCII."""
    stem = canonical_stem(stem)
    if _SLUG_OK.fullmatch(stem) and not stem.endswith("."):
        return stem
    ascii_part = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    ascii_part = re.sub(r"[^A-Za-z0-9]+", "-", ascii_part).strip("-")[:60] or "entry"
    digest = hashlib.sha1(stem.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{ascii_part}-{digest}"


def first_sentence(text: str) -> str:
    match = _SENTENCE_END.search(text)
    return text[: match.end()] if match else text


def cut_words(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 1)]
    space = head.rfind(" ")
    if space > 0:
        head = head[:space]
    return head.rstrip(" ,;:–—-") + "…"


def make_title(doc: SeedDocument, limit: int) -> str:
    first = doc.blocks[0]
    text = first.text if first.kind == "h" else first_sentence(first.text)
    title = cut_words(text, limit)
    if not title.endswith("…") and title.endswith(".") and not title.endswith(".."):
        title = title[:-1] or title  # "." alone stays: feeds must not have an empty title
    return title


def make_summary(doc: SeedDocument, limit: int) -> str:
    lede = next(iter(doc.paragraphs), doc.blocks[0].text)
    if len(lede) <= limit:
        return lede
    summary = ""
    for match in _SENTENCE_END.finditer(lede):
        if match.end() > limit:
            break
        summary = lede[: match.end()]
    return summary or cut_words(lede, limit)


_BLOCK = {"p": "<p>%s</p>", "h": "<h2>%s</h2>"}


def render_content(doc: SeedDocument) -> str:
    # html.escape(text, quote=False), but only where it changes something: a str.replace
    # that finds nothing still counts one character at a time, and most texts have no &<>
    return "\n".join([_BLOCK[kind] % (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if "&" in text or "<" in text or ">" in text else text) for kind, text in doc.blocks])


def _enough_letters(text: str, needed: int) -> bool:
    for c in text:  # stops at the 20th letter: counting all 200 cost more than langid's setup
        if c.isalpha():
            needed -= 1
            if needed <= 0:
                return True
    return False


# CLD2's codes that py3langid (and so DETECTABLE_LANGUAGES) spells otherwise
_CLD2_CODES = {"iw": "he", "jw": "jv", "zh-Hant": "zh"}


@functools.cache
def _pycld2():  # noqa: ANN202 - untyped; imported on first use (not by `feeder serve`)
    import pycld2

    return pycld2


def _cld2_language(sample: str, languages: tuple[str, ...]) -> str | None:
    """CLD2's answer for ``sample`` (pycld2: ~11 us where py3langid takes ~75), if it is
    sure of it and it is one feeder knows (and, with ``languages``, one of them); else
    None, and py3langid decides. On the tests' texts, the bundled seeds and 10,000
    generated ones both give the same answers (``python bench/langdet.py``)."""
    cld2 = _pycld2()
    try:
        reliable, _bytes, details = cld2.detect(sample)
    except (cld2.error, UnicodeError):  # text it cannot take (control characters, surrogates)
        return None
    code = _CLD2_CODES.get(details[0][1], details[0][1])
    if not reliable or code not in DETECTABLE_LANGUAGES or (languages and code not in languages):
        return None
    return code


def detect_language(text: str, default: str, languages: tuple[str, ...] = ()) -> str:
    """Offline and deterministic: CLD2 where it is sure, else py3langid's naive Bayes;
    ``default`` for too little text."""
    sample = text[:_LANG_SAMPLE]
    if not _enough_letters(sample, _LANG_MIN_LETTERS):
        return default
    sure = _cld2_language(sample, languages)
    if sure is not None:
        return sure
    lang, _score = _identifier(languages).classify(sample)
    return lang


def published_at(date: dt.date | dt.datetime, timezone: str) -> dt.datetime:
    import zoneinfo

    tz = zoneinfo.ZoneInfo(timezone)
    if isinstance(date, dt.datetime):
        return date if date.tzinfo else date.replace(tzinfo=tz)
    return dt.datetime(date.year, date.month, date.day, tzinfo=tz)


def normalize(doc: SeedDocument, stem: str, rules: Rules) -> Entry:
    published = published_at(doc.date, rules.timezone)
    body = " ".join(doc.paragraphs) or doc.blocks[0].text
    return Entry(
        id=entry_id(rules.authority, rules.tag_date, stem),
        stem=canonical_stem(stem),
        slug=slug_for(stem),
        title=make_title(doc, rules.title_length),
        summary=make_summary(doc, rules.summary_length),
        content_html=render_content(doc),
        published=published,
        updated=published,
        language=detect_language(body, rules.default_language, rules.languages),
    )
