"""Deterministic benchmark inputs: short (~8-16 tokens) and long (~128 tokens) English-like texts.

Every text is distinct, so no server can answer from a cache; the same seed gives every server
the same texts in the same order.
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


def make_texts(kind: str, n: int, seed: int = 8) -> list[str]:
    """Return `n` distinct texts; `kind` is "short" (~8-16 tokens) or "long" (~128 tokens)."""
    rng = random.Random(f"{seed}-{kind}")
    lo, hi = {"short": (7, 12), "long": (118, 126)}[kind]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
