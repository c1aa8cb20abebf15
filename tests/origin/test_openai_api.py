"""OpenAI-compatible /v1 endpoints against a real origin process serving tiny real models."""

from __future__ import annotations

import base64
import time

import httpx
import numpy as np


def _embed(client: httpx.Client, inputs, **extra) -> httpx.Response:
    return client.post("/v1/embeddings", json={"model": "emb", "input": inputs, **extra})


def test_embeddings_have_openai_shape_usage_and_name_the_model_version(client: httpx.Client):
    r = _embed(client, ["hello world", "a second, longer sentence here"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    assert body["model"] == "emb" and body["model_version"] == 1
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 32 for d in body["data"])
    vec = np.array(body["data"][0]["embedding"])
    assert abs(np.linalg.norm(vec) - 1) < 1e-5  # normalize: true
    usage = body["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] > 4
    assert r.headers["x-model-name"] == "emb" and r.headers["x-model-version"] == "1"
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert r.headers["x-request-id"]


def test_single_string_input_counts_tokens_like_the_tokenizer(client: httpx.Client):
    body = _embed(client, "hello world").json()
    assert len(body["data"]) == 1
    assert body["usage"]["prompt_tokens"] == 4  # [CLS] hello world [SEP]


def test_base64_encoding_equals_float_encoding(client: httpx.Client):
    texts = ["base64 please", "and another"]
    floats = _embed(client, texts).json()["data"]
    b64 = _embed(client, texts, encoding_format="base64").json()["data"]
    for f, b in zip(floats, b64, strict=True):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        np.testing.assert_allclose(decoded, np.array(f["embedding"], dtype=np.float32), atol=1e-7)


def test_request_id_from_the_edge_is_echoed(client: httpx.Client):
    r = client.post(
        "/v1/embeddings",
        json={"model": "emb", "input": "x"},
        headers={"X-Request-ID": "edge-abc-123"},
    )
    assert r.headers["x-request-id"] == "edge-abc-123"


def test_dimensions_other_than_the_model_size_are_a_400_naming_the_allowed_sizes(
    client: httpx.Client,
):
    r = _embed(client, "x", dimensions=8)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert "supports dimensions [32]" in r.json()["detail"]
    assert _embed(client, "x", dimensions=32).status_code == 200  # the full size is always fine
    r = client.post("/v1/embeddings", json={"model": "emb-mrl", "input": "x", "dimensions": 12})
    assert r.status_code == 400 and "[32, 16, 8]" in r.json()["detail"]


def test_matryoshka_dimensions_cut_and_renormalise(client: httpx.Client):
    texts = ["cut me down", "to size"]
    full = client.post("/v1/embeddings", json={"model": "emb-mrl", "input": texts}).json()
    cut = client.post(
        "/v1/embeddings", json={"model": "emb-mrl", "input": texts, "dimensions": 8}
    ).json()
    for f, c in zip(full["data"], cut["data"], strict=True):
        head = np.array(f["embedding"][:8])
        np.testing.assert_allclose(c["embedding"], head / np.linalg.norm(head), atol=1e-6)
        assert abs(np.linalg.norm(c["embedding"]) - 1) < 1e-5


def test_token_id_inputs_equal_text_inputs(client: httpx.Client, served_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(served_dir / "emb" / "1" / "tokenizer.json"))
    tok.no_padding()  # the file pads to 128; the model's own ids are unpadded
    texts = ["hello world", "token ids in, same vectors out"]
    ids = [tok.encode(t).ids for t in texts]
    by_text = _embed(client, texts).json()
    by_ids = _embed(client, ids).json()
    assert by_ids["usage"] == by_text["usage"]
    for a, b in zip(by_text["data"], by_ids["data"], strict=True):
        np.testing.assert_allclose(a["embedding"], b["embedding"], atol=1e-6)
    one = _embed(client, ids[0]).json()  # a single list of ints is one input
    np.testing.assert_allclose(
        one["data"][0]["embedding"], by_text["data"][0]["embedding"], atol=1e-6
    )


def test_bad_token_ids_are_rejected_naming_the_input(client: httpx.Client):
    for ids, status, words in (
        ([[101, 10**6, 102]], 422, "token id 1000000"),
        ([[101, -1]], 422, "token id -1"),
        ([list(range(100, 200))], 422, "at most 64"),
        ([[101], []], 422, "input[1] has no token ids"),
        ([[101, True]], 422, ""),  # booleans are not token ids
        ([[1.5]], 422, ""),
    ):
        r = _embed(client, ids)
        assert r.status_code == status, (ids, r.text)
        assert words in r.json()["detail"], r.text


def test_user_is_accepted(client: httpx.Client):
    assert _embed(client, "x", user="user-1234").status_code == 200


def test_models_carry_a_created_timestamp(client: httpx.Client, served_dir):
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    onnx = served_dir / "emb" / "1" / "model.onnx"
    assert models["emb"]["created"] >= int(onnx.stat().st_mtime)
    assert models["emb"]["created"] <= int(time.time())


def test_classification_uses_config_json_labels_sorted_best_first(client: httpx.Client):
    r = client.post("/v1/classifications", json={"model": "cls", "input": ["good", "bad"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "cls" and r.headers["x-model-version"] == "1"
    for item in body["data"]:
        labels = [x["label"] for x in item["labels"]]
        assert sorted(labels) == ["negative", "neutral", "positive"]
        scores = [x["score"] for x in item["labels"]]
        assert scores == sorted(scores, reverse=True)
        assert abs(sum(scores) - 1) < 1e-5


def test_classification_labels_and_top_k_from_model_yaml(client: httpx.Client):
    body = client.post("/v1/classifications", json={"model": "cls-top2", "input": "ok"}).json()
    labels = body["data"][0]["labels"]
    assert len(labels) == 2  # top_k: 2 in model.yaml
    assert {x["label"] for x in labels} <= {"sad", "meh", "glad"}
    one = client.post(
        "/v1/classifications", json={"model": "cls-top2", "input": "ok", "top_k": 1}
    ).json()
    assert one["data"][0]["labels"] == labels[:1]


def test_same_weights_give_same_scores_whatever_the_label_source(client: httpx.Client):
    a = client.post("/v1/classifications", json={"model": "cls", "input": "same"}).json()
    b = client.post(
        "/v1/classifications", json={"model": "cls-top2", "input": "same", "top_k": 3}
    ).json()
    rename = {"negative": "sad", "neutral": "meh", "positive": "glad"}
    sa = {rename[x["label"]]: x["score"] for x in a["data"][0]["labels"]}
    sb = {x["label"]: x["score"] for x in b["data"][0]["labels"]}
    assert sa == sb


def test_wrong_task_is_a_client_error(client: httpx.Client):
    r = client.post("/v1/classifications", json={"model": "emb", "input": "x"})
    assert r.status_code == 422
    assert "embeddings" in r.json()["detail"]


def test_models_list_names_tasks_versions_and_state(client: httpx.Client):
    r = client.get("/v1/models")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    models = {m["name"]: m for m in r.json()["data"]}
    assert models["emb"]["task"] == "embeddings"
    assert models["cls"]["task"] == "text-classification"
    assert models["iris"]["task"] == "tensor"
    assert models["emb"]["served_version"] == 1
    assert models["emb"]["versions"] == [{"version": 1, "state": "ready"}]
    assert models["emb"]["id"] == "emb" and models["emb"]["object"] == "model"
