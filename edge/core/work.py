"""How much work a request asks of the origin, read from its body without a tokenizer.

`inputs` counts the items the model runs on (texts, token-id sequences, documents to rank, a
tensor's batch rows). `tokens` estimates the tokens they carry: a text costs a token per four
UTF-8 bytes, at least one (about what BERT-style and GPT-style tokenizers give for English; more
for other scripts, which only makes the estimate cautious), token ids count exactly, and a
tensor row counts one. Both are capped per input at `MAX_TOKENS_PER_INPUT`: models truncate
longer inputs, so they cost no more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_TOKENS_PER_INPUT = 512


@dataclass(frozen=True, slots=True)
class Work:
    inputs: int = 1
    tokens: int = 1


def _text_tokens(text: str) -> int:
    size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
    return min(MAX_TOKENS_PER_INPUT, max(1, (size + 3) // 4))


def _item_tokens(item: Any) -> int:
    if isinstance(item, str):
        return _text_tokens(item)
    if isinstance(item, list):  # token ids
        return min(MAX_TOKENS_PER_INPUT, max(1, len(item)))
    return 1


def _v1(payload: dict[str, Any]) -> Work:
    if "documents" in payload:  # rerank: the query is read once per document
        docs = payload.get("documents")
        docs = docs if isinstance(docs, list) else [docs]
        query = payload.get("query")
        extra = _text_tokens(query) if isinstance(query, str) else 1
        tokens = sum(
            min(
                MAX_TOKENS_PER_INPUT,
                _item_tokens(d.get("text") if isinstance(d, dict) else d) + extra,
            )
            for d in docs
        )
        return Work(max(1, len(docs)), max(1, tokens))
    value = payload.get("input")
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return Work(len(value), max(1, sum(_item_tokens(v) for v in value)))
    return Work(1, _item_tokens(value))


def _rows(shape: Any) -> int:
    if isinstance(shape, list) and shape and isinstance(shape[0], int) and shape[0] > 0:
        return shape[0]
    return 1


def _v2(payload: dict[str, Any]) -> Work:
    inputs = payload.get("inputs")
    first = inputs[0] if isinstance(inputs, list) and inputs else None
    if not isinstance(first, dict):
        return Work()
    rows = _rows(first.get("shape"))
    data = first.get("data")
    if first.get("datatype") == "BYTES" and isinstance(data, list):
        flat = [x for x in data if isinstance(x, str)]
        if flat:
            return Work(rows, max(rows, sum(_text_tokens(x) for x in flat)))
    return Work(rows, rows)


def work_of(payload: dict[str, Any], route_name: str) -> Work:
    """The work of a parsed JSON request body on route `route_name`."""
    if route_name.startswith("v2-"):
        return _v2(payload)
    return _v1(payload)
