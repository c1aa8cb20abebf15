"""`POST /v1/rerank`: order documents by relevance to a query, as Cohere's and Jina's APIs do.

The body is what their clients send: `model`, `query`, `documents` (strings, or objects with a
`text`), `top_n`, `return_documents`. The answer is readable by both: `results` ordered best
first, each with `index` (into `documents`), `relevance_score` and, when asked, `document:
{"text": ...}`; plus `model`, `model_version` and `usage.total_tokens`. `/v2/rerank` (what
Cohere's v2 client calls) is the same endpoint.

A `rerank` model (a cross-encoder) scores each (query, document) pair. An `embeddings` model
reranks too: the score is the cosine similarity of the query's and the document's embeddings
(between -1 and 1), so any embedding model is a reranker out of the box.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from origin.api.common import (
    caller_subject,
    check_texts,
    json_response,
    parse_body,
    require_task,
    run_on_model,
    tokenize,
    tokenize_pairs,
)
from origin.problems import Problem
from origin.repository.registry import ModelRegistry, ServedVersion

router = APIRouter(tags=["rerank"])


class RerankDocument(BaseModel):
    """A document as an object (Cohere v1, Jina); only `text` is ranked."""

    model_config = ConfigDict(extra="ignore")

    text: str


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    query: str
    documents: list[str | RerankDocument]
    top_n: int | None = Field(None, ge=1, description="Results returned (default: all).")
    return_documents: bool = Field(False, description="Repeat each document's text.")
    rank_fields: list[str] | None = Field(None, description="Only ['text'] is supported.")


async def score(
    registry: ModelRegistry,
    model: str,
    version: int | None,
    queries: list[str],
    docs: list[str],
    subject: str | None = None,
) -> tuple[ServedVersion, int, list[float]]:
    """Relevance of each document to its query (`queries`: one for all documents, or one per
    document), by a cross-encoder, or by embedding cosine (one query only); batched as
    `subject`'s."""

    async def prepare(served: ServedVersion) -> tuple[list[Any], int]:
        require_task(served, "rerank", "embeddings")
        if served.pipeline.task == "rerank":
            items: list[Any] = [None] * len(docs)
            each = queries if len(queries) == len(docs) else queries * len(docs)
            for query in dict.fromkeys(each):  # one tokenization per distinct query
                idx = [i for i, q in enumerate(each) if q == query]
                pairs = await tokenize_pairs(served, query, [docs[i] for i in idx])
                for i, item in zip(idx, pairs, strict=True):
                    items[i] = item
        else:
            items = await tokenize(served, queries[:1], field="query")
            items += await tokenize(served, docs, field="documents")
        return items, sum(it.cost for it in items)

    served, tokens, results = await run_on_model(registry, model, version, prepare, subject)
    if served.pipeline.task == "rerank":
        return served, tokens, list(results)
    vectors = np.stack(results).astype(np.float64)
    vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return served, tokens, [float(x) for x in vectors[1:] @ vectors[0]]


@router.post("/v1/rerank")
@router.post("/v2/rerank", include_in_schema=False)
async def rerank(request: Request) -> Response:
    """Documents ordered by relevance to the query (Cohere- and Jina-compatible)."""
    req = await parse_body(request, RerankRequest)
    if req.rank_fields not in (None, ["text"]):
        raise Problem(
            422,
            "invalid-request",
            "rank_fields: only the documents' text is ranked (omit it, or send ['text'])",
            errors=[{"field": "rank_fields", "message": "unsupported"}],
        )
    settings = request.app.state.settings
    docs = [d if isinstance(d, str) else d.text for d in req.documents]
    check_texts([req.query], settings, field="query")
    check_texts(docs, settings, field="documents")
    served, tokens, scores = await score(
        request.app.state.registry, req.model, None, [req.query], docs, caller_subject(request)
    )
    order = sorted(range(len(docs)), key=lambda i: -scores[i])[: req.top_n or len(docs)]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if req.return_documents:
            item["document"] = {"text": docs[i]}
        results.append(item)
    body = {
        "object": "rerank",
        "model": served.name,
        "model_version": served.version,
        "results": results,
        "usage": {"total_tokens": tokens},
    }
    return json_response(body, served.headers)
