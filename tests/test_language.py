"""The mapped language model (``feeder/language.py``): the same answers as py3langid's own
loading, no model held once released, and py3langid's loading where no cache is writable."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder import language

TEXTS = [
    "The city council opened the new library by the river this morning, said the mayor.",
    "Il comune ha aperto la nuova biblioteca vicino al fiume questa mattina, ha detto.",
    "Der Stadtrat hat heute Morgen die neue Bibliothek am Fluss eröffnet, sagte er.",
    "Le conseil a ouvert la nouvelle bibliothèque près de la rivière ce matin.",
    "El ayuntamiento abrió la nueva biblioteca junto al río esta mañana, dijo.",
    "Городской совет открыл новую библиотеку у реки сегодня утром.",
    "市议会今天上午在河边开放了新图书馆。",
]


def mapped_model_files() -> list[str]:
    with open("/proc/self/maps") as fh:
        return [line for line in fh if "langid-" in line and ".npy" in line]


@pytest.fixture
def cache(language_cache: Path) -> Iterator[Path]:
    language.release()
    yield language_cache
    language.release()


def test_mapped_model_answers_as_py3langid_does(cache: Path):
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    own = LanguageIdentifier.from_model_file(MODEL_FILE)
    mapped = language.identifier(())
    assert list(cache.glob("feeder/langid-*/ptc.npy")), "the model was not unpacked"
    assert [mapped.classify(t) for t in TEXTS] == [own.classify(t) for t in TEXTS]
    subset = language.identifier(("en", "it"))
    own.set_languages(["en", "it"])
    assert [subset.classify(t) for t in TEXTS] == [own.classify(t) for t in TEXTS]


def test_released_model_is_unmapped(cache: Path):
    language.identifier(()).classify(TEXTS[0])
    assert mapped_model_files()
    language.release()
    gc.collect()
    assert mapped_model_files() == []
    assert language.identifier(()).classify(TEXTS[1])[0] == "it"  # mapped again


def test_without_a_writable_cache_the_model_is_loaded(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(language, "_cache_roots", lambda: [blocker])
    language.release()
    try:
        ident = language.identifier(())
        assert ident.classify(TEXTS[2])[0] == "de"
        assert mapped_model_files() == []
        language.release()
        assert language.identifier(()) is ident  # kept: loading it again costs a second
    finally:
        language._loaded = False
        language.release()


def test_cld2_decides_where_it_is_sure_and_py3langid_elsewhere() -> None:
    """detect_language asks CLD2 first and keeps its answer only if CLD2 is sure of it and
    it is a code feeder knows (one of ``languages``, when given); else py3langid's answer
    (restricted the same way) is the one, as before."""
    from feeder.normalizer import DETECTABLE_LANGUAGES, _cld2_language, detect_language

    german = "Die Ernte begann dieses Jahr früher. Die Bauern freuten sich über Sonne und Regen."
    assert _cld2_language(german, ()) == "de" == detect_language(german, "en")
    # not among the configured languages: py3langid, limited to them, decides
    restricted = language.identifier(("es", "fr")).classify(german)[0]
    assert _cld2_language(german, ("es", "fr")) is None
    assert detect_language(german, "en", ("es", "fr")) == restricted
    # CLD2 unsure (a few words of two languages) or refusing the text (a control
    # character): py3langid's answer
    for text in ("Hello bonjour hallo ciao hola gracias danke merci thanks grazie",
                 "Die Ernte\x01 begann dieses Jahr früher, die Bauern freuten sich sehr."):
        assert _cld2_language(text, ()) is None
        assert detect_language(text, "en") == language.identifier(()).classify(text)[0]
    # every answer is one of feeder's codes, for each of the tests' texts
    assert {detect_language(text, "en") for text in TEXTS} <= DETECTABLE_LANGUAGES
