"""Every inference answer tells the edge its model's cache scope (`X-Outpost-Cache-Scope`),
and `/v1/models` lists it: `subject` by default, `shared` when model.yaml says so."""

from __future__ import annotations

import httpx
import pytest

from origin.repository.config import ModelFolderError, parse_model_config
from origin.repository.registry import CACHE_SCOPE_HEADER

TEXT_INFER = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]}


@pytest.mark.parametrize(("model", "scope"), [("emb", "subject"), ("emb-shared", "shared")])
def test_inference_answers_carry_the_models_cache_scope(
    client: httpx.Client, model: str, scope: str
) -> None:
    answers = [
        client.post("/v1/embeddings", json={"model": model, "input": "hi"}),
        client.post("/v2/models/" + model + "/infer", json=TEXT_INFER),
        client.post(
            "/v2/models/" + model + "/infer",
            json={**TEXT_INFER, "parameters": {"binary_data_output": True}},
        ),
        client.post("/v1/rerank", json={"model": model, "query": "q", "documents": ["a", "b"]}),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.headers[CACHE_SCOPE_HEADER] == scope, r.request.url
        assert r.headers["cache-control"].startswith("public, max-age=")


def test_other_tasks_carry_it_too(client: httpx.Client) -> None:
    r = client.post("/v1/classifications", json={"model": "cls", "input": "ok"})
    assert r.headers[CACHE_SCOPE_HEADER] == "subject"
    row = {"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
    iris = {"inputs": [row]}
    r = client.post("/v2/models/iris/infer", json=iris)
    assert r.status_code == 200, r.text
    assert r.headers[CACHE_SCOPE_HEADER] == "subject"


def test_errors_and_listings_carry_no_scope_header(client: httpx.Client) -> None:
    """They are `no-store`: nothing to scope."""
    bad = client.post("/v1/embeddings", json={"model": "emb", "input": ""})
    listing = client.get("/v1/models")
    for r in (bad, listing):
        assert CACHE_SCOPE_HEADER not in r.headers
        assert r.headers["cache-control"] == "no-store"


def test_the_model_list_says_each_models_scope(client: httpx.Client) -> None:
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["emb"]["cache_scope"] == "subject"
    assert models["emb-shared"]["cache_scope"] == "shared"
    assert client.get("/v1/models/emb-shared").json()["cache_scope"] == "shared"


def test_an_unknown_scope_is_refused_naming_the_field() -> None:
    with pytest.raises(ModelFolderError) as err:
        parse_model_config({"task": "embeddings", "cache_scope": "public"}, "models/x/model.yaml")
    assert err.value.field == "cache_scope"
    assert "'shared' or 'subject'" in err.value.message
