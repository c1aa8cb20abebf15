"""`/v1/rerank`: a tiny random cross-encoder gives PyTorch's scores and order, through Cohere's
and Jina-style clients, and OIP; embedding models rerank by cosine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.origin.conftest import OriginProcess, install_version

QUERY = "how do I reset my password"
DOCS = [
    "Tap Settings, then Account, then Reset password to get a reset link by email.",
    "Our offices are closed on public holidays.",
    "The camera app crashes on Android 14 when HDR is on.",
    "Password resets expire after 24 hours; request a new link if yours has expired.",
    "Billing happens on the first day of each month.",
    "ok",
]


@pytest.fixture(scope="module")
def rerank_models(tmp_path_factory: pytest.TempPathFactory, tiny_src: Path) -> Path:
    from outpost.modelkit.tiny import build_tiny_reranker

    src = tmp_path_factory.mktemp("rerank-src")
    build_tiny_reranker(src / "rr", version=1, seed=3)
    root = tmp_path_factory.mktemp("rerank-models")
    install_version(src / "rr", 1, root / "rr", 1)
    install_version(tiny_src / "emb", 1, root / "emb", 1)
    install_version(tiny_src / "cls", 1, root / "cls", 1)
    return root


@pytest.fixture(scope="module")
def origin(
    rerank_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OriginProcess]:
    log = tmp_path_factory.mktemp("logs") / "rerank.log"
    yield from OriginProcess(rerank_models, log, OUTPOST_ORIGIN_WATCH="false").serve()


@pytest.fixture(scope="module")
def torch_scores(rerank_models: Path) -> np.ndarray:
    """sigmoid(logit) of each (query, document) pair from the PyTorch model, tokenized as
    sentence-transformers' CrossEncoder does (pairs, longest-first truncation)."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from outpost.modelkit.tiny import TINY_MAX_SEQUENCE_LENGTH, _tiny_bert_config

    vdir = rerank_models / "rr" / "1"
    tok = AutoTokenizer.from_pretrained(str(vdir), local_files_only=True)
    torch.manual_seed(3)
    model = BertForSequenceClassification(_tiny_bert_config(num_labels=1)).eval()
    enc = tok(
        [QUERY] * len(DOCS),
        DOCS,
        padding=True,
        truncation=True,
        max_length=TINY_MAX_SEQUENCE_LENGTH,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = model(**enc).logits[:, 0].numpy()
    return 1 / (1 + np.exp(-logits.astype(np.float64)))


def test_cross_encoder_scores_and_order_match_pytorch(client, torch_scores) -> None:
    r = client.post("/v1/rerank", json={"model": "rr", "query": QUERY, "documents": DOCS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "rr" and body["model_version"] == 1
    assert r.headers["x-model-version"] == "1" and "max-age" in r.headers["cache-control"]
    got = {res["index"]: res["relevance_score"] for res in body["results"]}
    np.testing.assert_allclose([got[i] for i in range(len(DOCS))], torch_scores, atol=1e-5)
    assert [res["index"] for res in body["results"]] == list(
        np.argsort(-torch_scores, kind="stable")
    )
    assert body["usage"]["total_tokens"] > len(DOCS)


def test_top_n_return_documents_and_document_objects(client, torch_scores) -> None:
    docs = [{"text": d, "id": f"doc-{i}"} for i, d in enumerate(DOCS)]
    r = client.post(
        "/v1/rerank",
        json={
            "model": "rr",
            "query": QUERY,
            "documents": docs,
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    best = list(np.argsort(-torch_scores, kind="stable")[:2])
    assert [res["index"] for res in results] == best
    assert [res["document"] for res in results] == [{"text": DOCS[i]} for i in best]
    plain = client.post("/v1/rerank", json={"model": "rr", "query": QUERY, "documents": DOCS})
    assert all("document" not in res for res in plain.json()["results"])


def test_cohere_sdk_v1_and_v2_clients_rerank(origin: OriginProcess, torch_scores) -> None:
    import cohere

    order = list(np.argsort(-torch_scores, kind="stable"))
    v1 = cohere.Client(api_key="unused", base_url=origin.url)
    res = v1.rerank(model="rr", query=QUERY, documents=DOCS, top_n=3, return_documents=True)
    assert [r.index for r in res.results] == order[:3]
    assert res.results[0].document.text == DOCS[order[0]]
    assert res.results[0].relevance_score == pytest.approx(torch_scores[order[0]], abs=1e-5)
    v2 = cohere.ClientV2(api_key="unused", base_url=origin.url)
    res2 = v2.rerank(model="rr", query=QUERY, documents=DOCS)
    assert [r.index for r in res2.results] == order


def test_jina_style_client_reranks(origin: OriginProcess, torch_scores) -> None:
    """The `rerankers` library's Jina provider (Jina's request and answer shape)."""
    from rerankers import Reranker

    ranker = Reranker(
        "rr",
        model_type="APIRanker",
        api_provider="jina",
        api_key="unused",
        url=origin.url + "/v1/rerank",
        verbose=0,
    )
    ranked = ranker.rank(QUERY, DOCS)
    assert [r.document.text for r in ranked.results] == [
        DOCS[i] for i in np.argsort(-torch_scores, kind="stable")
    ]
    assert ranked.results[0].score == pytest.approx(float(torch_scores.max()), abs=1e-5)


def test_embedding_model_reranks_by_cosine(client) -> None:
    r = client.post("/v1/rerank", json={"model": "emb", "query": QUERY, "documents": DOCS})
    assert r.status_code == 200, r.text
    vecs = client.post("/v1/embeddings", json={"model": "emb", "input": [QUERY, *DOCS]}).json()
    e = np.array([d["embedding"] for d in vecs["data"]])
    cos = e[1:] @ e[0]
    results = r.json()["results"]
    assert [res["index"] for res in results] == list(np.argsort(-cos, kind="stable"))
    np.testing.assert_allclose(
        [res["relevance_score"] for res in results], np.sort(cos)[::-1], atol=1e-5
    )


def test_oip_cross_encoder_infer(client, torch_scores) -> None:
    meta = client.get("/v2/models/rr").json()
    assert [i["name"] for i in meta["inputs"]] == ["query", "document"]
    r = client.post(
        "/v2/models/rr/infer",
        json={
            "inputs": [
                {"name": "query", "datatype": "BYTES", "shape": [1], "data": [QUERY]},
                {"name": "document", "datatype": "BYTES", "shape": [len(DOCS)], "data": DOCS},
            ]
        },
    )
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["name"] == "score" and out["shape"] == [len(DOCS)]
    np.testing.assert_allclose(out["data"], torch_scores, atol=1e-5)
    pairs = client.post(
        "/v2/models/rr/infer",
        json={
            "inputs": [
                {"name": "document", "datatype": "BYTES", "shape": [2], "data": DOCS[:2]},
                {"name": "query", "datatype": "BYTES", "shape": [2], "data": [QUERY, QUERY]},
            ]
        },
    )
    np.testing.assert_allclose(pairs.json()["outputs"][0]["data"], torch_scores[:2], atol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"model": "rr", "query": QUERY, "documents": []}, 422, "invalid-request"),
        ({"model": "rr", "query": "", "documents": DOCS}, 422, "invalid-request"),
        ({"model": "rr", "query": QUERY, "documents": ["a", ""]}, 422, "invalid-request"),
        (
            {"model": "rr", "query": QUERY, "documents": [{"title": "no text"}]},
            422,
            "invalid-request",
        ),
        ({"model": "rr", "query": QUERY, "documents": DOCS, "top_n": 0}, 422, "invalid-request"),
        (
            {"model": "rr", "query": QUERY, "documents": DOCS, "rank_fields": ["title"]},
            422,
            "invalid-request",
        ),
        ({"model": "cls", "query": QUERY, "documents": DOCS}, 422, "wrong-task"),
        ({"model": "nope", "query": QUERY, "documents": DOCS}, 404, "model-not-found"),
        ({"model": "rr", "query": QUERY, "documents": ["x"] * 300}, 422, "too-many-inputs"),
    ],
)
def test_bad_rerank_requests_get_problems(client, body, status, slug) -> None:
    r = client.post("/v1/rerank", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith(slug)


def test_oip_rerank_needs_query_and_document(client) -> None:
    r = client.post(
        "/v2/models/rr/infer",
        json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
    )
    assert r.status_code == 422 and "query" in r.json()["detail"]
    r = client.post(
        "/v2/models/rr/infer",
        json={
            "inputs": [
                {"name": "query", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
                {"name": "document", "datatype": "BYTES", "shape": [3], "data": ["x", "y", "z"]},
            ]
        },
    )
    assert r.status_code == 422, r.text
