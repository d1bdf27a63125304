"""Why the "mostly UTF-8" rule in feeder/seed.py is safe, and what the stray-byte path costs.

    python bench/stray_bytes.py

1. Legacy text forms valid multibyte UTF-8 sequences only by accident: for each sample below,
   the well-formed UTF-8 characters per stray byte. feeder reads bytes as UTF-8 with repairs
   only with at most 4 stray bytes or at least 2 such characters per stray byte.
2. Decoding a ~1 MB UTF-8 seed with one stray byte: the repair path against the two
   charset-normalizer calls feeder made before, and a strict decode of the clean bytes.
"""

from __future__ import annotations

import time

from charset_normalizer import from_bytes

from feeder.seed import decode

SAMPLES = {
    "cp1252": "Le café de la gare a rouvert. « C’est très bien », a déclaré le maire. "
              "Die Bürger können über die Hängebrücke gehen. ÉTÉ, ÜBER, Öl – 5 €.",
    "cp1250": "Příliš žluťoučký kůň úpěl ďábelské ódy. Zażółć gęślą jaźń. ŘEDITEL, ŁÓDŹ.",
    "cp1251": "Съешь же ещё этих мягких французских булок. ВІДДІЛ, ЇЖАК, Київ, Ґанок.",
    "koi8_r": "Съешь же ещё этих мягких французских булок да выпей чаю. МОСКВА, ЁЛКА.",
    "shift_jis": "市は月曜日に新しい橋を開通しました。市長は「とても良いニュースです」と述べました。"
                 "ﾃｽﾄ ﾃﾞｰﾀ。",
    "euc_jp": "市は月曜日に新しい橋を開通しました。今年の夏は忙しくなるでしょう。東京都の天気は晴れです。",
    "gbk": "该市周一开通了一座新桥。市长说这是一个非常好的消息。北京的天气很好，我们去公园散步吧。",
    "big5": "該市週一開通了一座新橋。市長說這是一個非常好的消息。台北的天氣很好，我們去公園散步吧。",
    "euc_kr": "시는 월요일에 새 다리를 개통했습니다. 시장은 매우 좋은 소식이라고 말했습니다.",
    "cp1253": "Η πόλη άνοιξε μια νέα γέφυρα τη Δευτέρα. ΑΘΗΝΑ, ΕΛΛΑΔΑ.",
}
PARAGRAPH = ("Über die Brücke gehen täglich tausende Menschen zur Arbeit; die Stadt hat sie "
             "früher als geplant eröffnet, und der Bürgermeister spricht von einem Erfolg.\n\n")


def best_of(runs: int, func) -> float:  # noqa: ANN001
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    print("valid UTF-8 characters per stray byte, by accident, in legacy text:")
    for encoding, text in SAMPLES.items():
        escaped = text.encode(encoding).decode("utf-8", "surrogateescape")
        strays = sum("\udc80" <= c <= "\udcff" for c in escaped)
        valid = sum(c >= "\x80" for c in escaped) - strays
        print(f"  {encoding:10} {valid:3} / {strays:3} = {valid / strays:.2f}")
    clean = (" date 2025-01-02 " + PARAGRAPH * (1_000_000 // len(PARAGRAPH.encode()))).encode()
    stray = clean[:500_000] + b"\xff" + clean[500_000:]
    assert decode(stray, "x").repaired
    print(f"\ndecoding {len(stray):,} bytes of UTF-8 with one stray byte (best of 3):")
    print(f"  strict UTF-8, clean bytes     {best_of(3, lambda: clean.decode()) * 1000:8.1f} ms")
    print(f"  feeder, with the stray byte   {best_of(3, lambda: decode(stray, 'x')) * 1000:8.1f} ms")
    before = best_of(1, lambda: (from_bytes(stray).best(),
                                 from_bytes(stray, cp_isolation=["cp1252"]).best()))
    print(f"  charset-normalizer, as before {before * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
