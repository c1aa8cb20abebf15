"""The `openai` SDK, with its defaults (it asks for base64 vectors), against a real origin
process: plain, `dimensions` and token-id requests must equal the JSON float path, and every
error must arrive as the SDK's own exception type."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from tokenizers import Tokenizer

from tests.origin.conftest import OriginProcess

TEXTS = ["the openai sdk talks to the origin", "with its default settings"]


@pytest.fixture(scope="module")
def sdk(origin: OriginProcess) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=origin.url + "/v1", api_key="unused", max_retries=0)
    yield client
    client.close()


def json_vectors(client: httpx.Client, model: str, inputs, **extra) -> np.ndarray:
    body = {"model": model, "input": inputs, "encoding_format": "float", **extra}
    r = client.post("/v1/embeddings", json=body)
    assert r.status_code == 200, r.text
    return np.array([d["embedding"] for d in r.json()["data"]], np.float32)


def sdk_vectors(response) -> np.ndarray:
    return np.array([d.embedding for d in response.data], np.float32)


def test_default_request_equals_the_json_float_path(sdk, client):
    response = sdk.embeddings.create(model="emb", input=TEXTS)
    assert response.model == "emb" and response.usage.prompt_tokens > 0
    np.testing.assert_array_equal(sdk_vectors(response), json_vectors(client, "emb", TEXTS))


def test_dimensions_with_the_sdk_defaults_equal_the_json_path(sdk, client):
    response = sdk.embeddings.create(model="emb-mrl", input=TEXTS, dimensions=16)
    got = sdk_vectors(response)
    assert got.shape == (2, 16)
    np.testing.assert_array_equal(got, json_vectors(client, "emb-mrl", TEXTS, dimensions=16))
    full = json_vectors(client, "emb-mrl", TEXTS)[:, :16]
    np.testing.assert_allclose(got, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-6)


def test_token_ids_equal_text(sdk, client, served_dir: Path):
    tok = Tokenizer.from_file(str(served_dir / "emb" / "1" / "tokenizer.json"))
    tok.no_padding()
    ids = [tok.encode(t).ids for t in TEXTS]
    response = sdk.embeddings.create(model="emb", input=ids, user="device-42")
    np.testing.assert_allclose(sdk_vectors(response), json_vectors(client, "emb", TEXTS), atol=1e-6)
    single = sdk.embeddings.create(model="emb", input=ids[1])
    np.testing.assert_allclose(
        sdk_vectors(single)[0], json_vectors(client, "emb", TEXTS)[1], atol=1e-6
    )


def test_errors_arrive_as_the_sdks_exception_types(sdk):
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.embeddings.create(model="emb-mrl", input="x", dimensions=12)
    assert "[32, 16, 8]" in str(bad.value)
    assert (bad.value.type, bad.value.param) == ("unsupported-dimensions", "dimensions")
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        sdk.embeddings.create(model="emb", input=[[101, 10**7]])
    assert "token id 10000000" in str(invalid.value)


def test_model_list_has_created_timestamps(sdk):
    models = {m.id: m for m in sdk.models.list()}
    assert {"emb", "emb-mrl", "iris"} <= models.keys()
    assert all(isinstance(m.created, int) and m.created > 1_600_000_000 for m in models.values())
    assert sdk.models.retrieve("emb").created == models["emb"].created
