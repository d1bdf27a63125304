"""Write N synthetic seeds in feeder's seed format, deterministically.

    python bench/generate.py DIR N [--seed 1] [--start 0]

Each seed is `` date YYYY-MM-DD <lede>`` on its first line, then 3–6 paragraphs separated
by sub-headings, about 3 KB, in English, Italian, German, French or Spanish pseudo-text.
Names are ``NNNNNN_<16 hex>.txt``; dates are spread over 2005–2024. The same (N, seed)
gives the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from pathlib import Path

WORDS = {
    "en": """the city council library river market school station bridge winter summer
        morning evening people children workers farmers teachers doctors report plan money
        street harbour museum garden festival road weather storm price houses families
        new old small large quiet busy open closed early late local public second first
        will said found asked opened built moved started closed agreed planned reported
        with from after before under over between about during against through""".split(),
    "it": """il la comune biblioteca fiume mercato scuola stazione ponte inverno estate
        mattina sera persone bambini lavoratori contadini insegnanti medici rapporto piano
        soldi strada porto museo giardino festa tempo tempesta prezzo case famiglie nuovo
        vecchio piccolo grande tranquillo aperto chiuso presto tardi pubblico primo secondo
        ha detto trovato chiesto aperto costruito spostato iniziato deciso previsto con
        dopo prima sotto sopra tra durante contro attraverso della degli nella per che non""".split(),
    "de": """die der das Stadt Rat Bibliothek Fluss Markt Schule Bahnhof Brücke Winter
        Sommer Morgen Abend Leute Kinder Arbeiter Bauern Lehrer Ärzte Bericht Plan Geld
        Straße Hafen Museum Garten Fest Wetter Sturm Preis Häuser Familien neue alte kleine
        große ruhige offene geschlossen früh spät öffentlich erste zweite hat gesagt gefunden
        gefragt eröffnet gebaut begonnen beschlossen geplant mit nach vor unter über zwischen
        während gegen durch und nicht auch noch wird wurde sind""".split(),
    "fr": """le la les conseil bibliothèque rivière marché école gare pont hiver été matin
        soir gens enfants ouvriers agriculteurs enseignants médecins rapport projet argent
        rue port musée jardin fête temps orage prix maisons familles nouveau vieux petit
        grand calme ouvert fermé tôt tard public premier deuxième a dit trouvé demandé ouvert
        construit déménagé commencé décidé prévu avec après avant sous sur entre pendant
        contre par et ne pas aussi encore sera était sont des du dans pour que""".split(),
    "es": """el la los consejo biblioteca río mercado escuela estación puente invierno
        verano mañana tarde gente niños trabajadores agricultores maestros médicos informe
        plan dinero calle puerto museo jardín fiesta tiempo tormenta precio casas familias
        nuevo viejo pequeño grande tranquilo abierto cerrado temprano público primero
        segundo ha dicho encontrado pedido abierto construido empezado decidido previsto
        con después antes bajo sobre entre durante contra por y no también todavía será
        era son del en para que""".split(),
}
LANGS = tuple(WORDS)
FIRST_DAY = dt.date(2005, 1, 1)
DAYS = (dt.date(2024, 12, 31) - FIRST_DAY).days


def _sentence(rng: random.Random, words: list[str]) -> str:
    text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 18)))
    return text[0].upper() + text[1:] + rng.choice("....!?")


def _paragraph(rng: random.Random, words: list[str], sentences: int) -> str:
    return " ".join(_sentence(rng, words) for _ in range(sentences))


def _heading(rng: random.Random, words: list[str]) -> str:
    text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5)))
    return text[0].upper() + text[1:]


def seed_text(rng: random.Random, date: dt.date) -> str:
    """One seed (~3 KB): lede on the header line, then headed paragraphs."""
    words = WORDS[rng.choice(LANGS)]
    parts = [f" date {date.isoformat()} {_paragraph(rng, words, 5)}"]
    for _ in range(rng.randint(2, 5)):  # 3–6 paragraphs with the lede
        parts.append(_heading(rng, words))
        parts.append(_paragraph(rng, words, rng.randint(6, 9)))
    return "\n\n".join(parts) + "\n"


def seed_name(rng: random.Random, number: int) -> str:
    return f"{number:06d}_{rng.getrandbits(64):016x}.txt"


def generate(folder: Path, count: int, seed: int = 1, start: int = 0) -> list[str]:
    """Write seeds number ``start`` .. ``start + count - 1``; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for number in range(start, start + count):
        rng = random.Random(f"{seed}:{number}")  # each seed independent of N
        date = FIRST_DAY + dt.timedelta(days=rng.randrange(DAYS))
        name = seed_name(rng, number)
        (folder / name).write_text(seed_text(rng, date), encoding="utf-8")
        names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    generate(args.folder, args.count, args.seed, args.start)


if __name__ == "__main__":
    main()
