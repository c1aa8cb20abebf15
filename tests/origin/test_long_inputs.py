"""Characters a model cannot read are cut before tokenizing, and the tokens stay exactly those
of the whole input: a 100 000-character input costs what its first max-length tokens cost."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from origin.engine.tasks import InputError
from origin.repository.loader import load_version
from tests.origin.conftest import write_yaml

WORDS = ("the", "app", "crashes", "when", "I", "open", "camera", "after", "an", "update")


def _english(n_chars: int) -> str:
    words = [WORDS[(i * 7) % len(WORDS)] for i in range(n_chars // 2)]
    return " ".join(words)[:n_chars]


@pytest.fixture(scope="module")
def emb(tiny_src: Path) -> Any:
    return load_version("emb", tiny_src / "emb", 1).pipeline


@pytest.fixture(scope="module")
def strict(tiny_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("strict") / "emb"
    shutil.copytree(tiny_src / "emb", root)
    base = (root / "model.yaml").read_text()
    write_yaml(root / "model.yaml", {**yaml.safe_load(base), "truncation": "reject"})
    return load_version("emb", root, 1).pipeline


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from outpost.modelkit.tiny import build_tiny_reranker

    root = tmp_path_factory.mktemp("rr")
    build_tiny_reranker(root / "rr", version=1, seed=0)
    return load_version("rr", root / "rr", 1).pipeline


def _full(pipeline: Any, text: str, pair: str | None = None) -> tuple[list[int], list[int]]:
    """What tokenizing the whole input with truncation gives (the reference)."""
    enc = (
        pipeline.tokenizer.encode(text, pair)
        if pair is not None
        else pipeline.tokenizer.encode(text)
    )
    return enc.ids, enc.type_ids


HARD_CASES = {
    "100k characters of English": _english(100_000),
    "the cut falls inside a long word": "x" * 1020 + " antidisestablishmentarianism " * 3000,
    "a run of spaces at the cut": "word " * 150 + " " * 50_000 + "tail " * 5000,
    "only spaces, then words": " " * 60_000 + "late words arrive here " * 2000,
    "words longer than the tokenizer splits (100+ characters)": ("y" * 150 + " ") * 900,
    "CJK without spaces": "東京の天気は晴れです" * 8000,
    "emoji and punctuation": "😀!?…—" * 20_000,
    "accents to strip (combining marks)": "cafe\u0301 nai\u0308ve " * 9000,
    "one unbroken 50k-character token": "z" * 50_000,
}


@pytest.mark.parametrize("name", list(HARD_CASES))
def test_long_input_gets_the_tokens_of_the_whole_input(emb: Any, name: str) -> None:
    text = HARD_CASES[name]
    assert len(text) > emb.char_budget
    (item,) = emb.tokenize([text])
    assert (item.ids, item.type_ids) == _full(emb, text)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["ab", "cd ", " ", "  \n", "état", "ñ", "東", "-", "!", "x" * 40, "😀", "e\u0301"]
        ),
        min_size=300,
        max_size=2500,
    )
)
def test_any_long_input_gets_the_tokens_of_the_whole_input(emb: Any, parts: list[str]) -> None:
    text = "".join(parts)
    (item,) = emb.tokenize([text])
    assert (item.ids, item.type_ids) == _full(emb, text)


def test_mixed_batches_keep_order(emb: Any) -> None:
    texts = ["short one", _english(40_000), "another short", HARD_CASES["CJK without spaces"]]
    items = emb.tokenize(texts)
    assert [(it.ids, it.type_ids) for it in items] == [_full(emb, t) for t in texts]


class _Recorder:
    """Stands in for a tokenizer and records how many characters each call was given."""

    def __init__(self, inner: Any, seen: list[int]) -> None:
        self._inner, self._seen = inner, seen

    def encode(self, text: str, *args: Any, **kw: Any) -> Any:
        self._seen.append(len(text))
        return self._inner.encode(text, *args, **kw)

    def encode_batch(self, texts: list[str], *args: Any, **kw: Any) -> Any:
        self._seen.extend(len(t) for t in texts)
        return self._inner.encode_batch(texts, *args, **kw)

    def post_process(self, *args: Any, **kw: Any) -> Any:
        return self._inner.post_process(*args, **kw)


def test_the_tokenizer_reads_only_a_bounded_prefix(
    emb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    monkeypatch.setattr(emb, "raw_tokenizer", _Recorder(emb.raw_tokenizer, seen))
    monkeypatch.setattr(emb, "tokenizer", _Recorder(emb.tokenizer, seen))
    emb.tokenize([_english(100_000)] * 10)
    assert max(seen) == emb.char_budget  # = max_sequence_length x CHARS_PER_TOKEN_BOUND
    assert sum(seen) <= 10 * emb.char_budget


def test_reject_mode_still_rejects_a_long_input_and_accepts_a_short_one(strict: Any) -> None:
    with pytest.raises(InputError, match="at most 64"):
        strict.tokenize(["ok", _english(100_000)])
    (item,) = strict.tokenize(["a short sentence"])
    assert item.ids == _full(strict, "a short sentence")[0]


@pytest.mark.parametrize(
    "query",
    ["how do I reset my password", _english(300), _english(5_000)],
    ids=["short query", "query near the limit", "query over the limit"],
)
def test_cross_encoder_pairs_get_the_tokens_of_the_whole_pair(reranker: Any, query: str) -> None:
    docs = [_english(100_000), "short doc", HARD_CASES["a run of spaces at the cut"], _english(900)]
    items = reranker.tokenize_pairs(query, docs)
    for item, doc in zip(items, docs, strict=True):
        assert (item.ids, item.type_ids) == _full(reranker, query, doc)
