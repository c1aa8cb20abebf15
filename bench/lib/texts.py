"""Deterministic benchmark inputs: short (~8-16 tokens) and long (~128 tokens) English-like texts.

The one text generator of bench/. `make_texts` gives distinct texts, so no server can answer from
a cache, and the same seed gives every server the same texts in the same order; `sentence` draws
one text from a caller's random stream (repeats possible).
"""

from __future__ import annotations

import random

_VOCAB = (
    "the app user phone order city weather train ticket coffee music photo friend message "
    "account payment delivery store price review search map route station morning evening "
    "weekend holiday family school office team project meeting report update battery screen "
    "camera video game score player match season ticket hotel room flight airport bag "
    "restaurant menu table dinner lunch breakfast market garden park river mountain beach "
    "summer winter spring autumn rain snow wind sun cloud street bridge car bus bike walk "
    "run read write send open close start stop find share like love need want help check "
    "book call pay buy sell cook clean learn teach play watch listen travel visit meet "
    "quick slow happy sad new old big small good bad late early fast cheap warm cold quiet "
    "busy simple clear bright dark fresh local nearby daily weekly favourite popular useful "
    "after before during with without about under over near from into through across"
)
_WORDS = _VOCAB.split()
# Words per text: short ~10-15 tokens (mean 12.7), long ~121-129 tokens (mean 125) with MiniLM's
# tokenizer, as bench/results/peers.json records.
LENGTHS = {"short": (7, 12), "long": (118, 126)}


def sentence(rng: random.Random, kind: str = "short") -> str:
    """One capitalised text of `kind` ("short" or "long") drawn from `rng`."""
    lo, hi = LENGTHS[kind]
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."


def make_texts(kind: str, n: int, seed: int = 8) -> list[str]:
    """Return `n` distinct texts of `kind` ("short" or "long"), the same for the same seed."""
    rng = random.Random(f"{seed}-{kind}")
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        text = sentence(rng, kind)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
