"""Language feeds: what one new seed rewrites under ``lang/``, and what it costs.

    python bench/langfeeds.py [--size 10000] [--data /work/bench-data] [--reps 5]

Builds ``--size`` generated seeds (bench/generate.py: en, it, de, fr, es; kept under
--data) in-process, then adds ``--reps`` new seeds one at a time, each in another of the
generated languages; for each prints the time of ``Builder.build(names={new})``, the time
spent in ``langfeeds.publish`` within it, and the files it wrote under ``lang/``.
Loopback only; nothing is served.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # noqa: E402

BASE = "http://127.0.0.1:8080/"
NEW = {  # one short article per language, so each pass changes another language
    "it": "Il comune ha deciso di aprire la biblioteca anche la domenica mattina per tutti.",
    "de": "Die Stadt öffnet die Bibliothek ab nächster Woche auch am Sonntagmorgen für alle.",
    "en": "The council will open the library on Sunday mornings from next week for everyone.",
    "fr": "La mairie ouvrira la bibliothèque le dimanche matin dès la semaine prochaine.",
    "es": "El ayuntamiento abrirá la biblioteca los domingos por la mañana desde la semana.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data"))
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    from feeder import langfeeds
    from feeder.builder import Builder
    from feeder.config import load
    from feeder.store import Store

    spent: list[float] = []
    real = langfeeds.publish

    def timed(*a: object, **kw: object) -> tuple[list[str], set[str], list]:
        t0 = time.perf_counter()
        try:
            return real(*a, **kw)
        finally:
            spent.append(time.perf_counter() - t0)

    langfeeds.publish = timed  # publish.py calls it through the module

    seeds = args.data / f"seeds-{args.size}"
    if not seeds.is_dir() or len(list(seeds.iterdir())) < args.size:
        generate.generate(seeds, args.size)
    work = Path(tempfile.mkdtemp(prefix="feeder-lang-bench-"))
    try:
        fresh = work / "seeds"
        shutil.copytree(seeds, fresh)
        cfg = load(None, env={}, seeds=fresh, out=work / "out", state=work / "state.sqlite3",
                   base_url=BASE)
        store = Store(cfg.state)
        builder = Builder(cfg, store, progress=False)
        t0 = time.perf_counter()
        report = builder.build()
        langs = sorted(os.listdir(work / "out" / "lang"))
        print(f"load average {os.getloadavg()[0]:.1f}; cold build of {args.size}: "
              f"{time.perf_counter() - t0:.1f} s, of which language feeds {spent[-1]:.2f} s;"
              f" {len(langs)} languages {langs}, "
              f"{sum(p.startswith('lang/') for p in report.written)} files under lang/")
        today = dt.date.today().isoformat()
        codes = list(NEW)
        for i in range(args.reps):
            code = codes[i % len(codes)]
            name = f"zz{i:04d}.txt"
            (fresh / name).write_text(f" date {today} {NEW[code]} Numero {i}.\n",
                                      encoding="utf-8")
            t0 = time.perf_counter()
            report = builder.build(names={name})
            ms = (time.perf_counter() - t0) * 1000
            written = sorted(p for p in report.written if p.startswith("lang/"))
            print(f"new seed {i} ({code}): pass {ms:.0f} ms, language feeds "
                  f"{spent[-1] * 1000:.0f} ms; wrote {written}")
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
