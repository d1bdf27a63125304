"""Does feeder's language detection answer as py3langid's own does, text for text?

    python bench/language_agreement.py [SEEDS ...]

Classifies the sample ``normalizer.detect_language`` takes of every seed in the bundled
``seeds/``, ``tests/cases``, ``tests/data`` and each SEEDS folder given (e.g. a generated
10k set), plus the multi-language texts of tests/test_language.py and
tests/test_normalizer.py, once with feeder's identifier (``language.identifier``: the model
unpacked and mapped), in chunks of ``sync.READ_CHUNK`` as the workers do
(``language.classify_many``) and one at a time, and once with py3langid's own
(``LanguageIdentifier.from_model_file``). Prints, per corpus, how many texts got the same
language, and the same score to the bit. Exits 1 unless every language is the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feeder import language, normalizer, sync  # noqa: E402
from feeder.errors import SeedError  # noqa: E402
from feeder.seed import parse_seed  # noqa: E402


def samples(folder: Path) -> list[str]:
    """What detect_language classifies of each seed that has enough letters."""
    texts = []
    for path in sorted(folder.glob("*.txt")):
        try:
            doc = parse_seed(path.read_bytes(), path.name)
        except SeedError:
            continue
        body = " ".join(doc.paragraphs) or doc.blocks[0].text
        sample = body[:normalizer._LANG_SAMPLE]
        if normalizer._enough_letters(sample, normalizer._LANG_MIN_LETTERS):
            texts.append(sample)
    return texts


def main() -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    sys.path.insert(0, str(ROOT / "tests"))
    from test_language import TEXTS
    from test_normalizer import SAMPLES

    corpora = {"seeds/": samples(ROOT / "seeds"), "tests/cases": samples(ROOT / "tests/cases"),
               "tests/data": samples(ROOT / "tests/data"),
               "test texts (8 languages)": [*TEXTS, *SAMPLES.values()]}
    for arg in sys.argv[1:]:
        corpora[arg] = samples(Path(arg))
    own = LanguageIdentifier.from_model_file(MODEL_FILE)
    mapped = language.identifier(())
    worst = 1.0
    for name, texts in corpora.items():
        # as a worker does it: a chunk of seeds at a time
        together = [lang for i in range(0, len(texts), sync.READ_CHUNK)
                    for lang in language.classify_many(mapped, texts[i:i + sync.READ_CHUNK])]
        ours = [mapped.classify(t) for t in texts]
        theirs = [own.classify(t) for t in texts]
        same = sum(a == b[0] for a, b in zip(together, theirs, strict=True))
        exact = sum(a == b for a, b in zip(ours, theirs, strict=True))
        langs = len({b[0] for b in theirs})
        print(f"{name:28} {len(texts):6} texts, {langs:3} languages: same language "
              f"{same}/{len(texts)}, same score one at a time {exact}/{len(texts)}")
        worst = min(worst, same / len(texts) if texts else 1.0)
    sys.exit(0 if worst == 1.0 else 1)


if __name__ == "__main__":
    main()
