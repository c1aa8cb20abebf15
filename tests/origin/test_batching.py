"""Batched and unbatched results are identical; concurrent requests get their own results."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from origin.repository.loader import load_version

SENTENCES = [
    f"sentence number {i} " + " ".join(["padding"] * (i % 7)) + f" ends {i * 31 % 17}"
    for i in range(24)
]


@pytest.fixture(scope="module")
def reference(served_dir: Path) -> dict[str, np.ndarray]:
    """Each sentence embedded alone (batch of one, no padding) in-process."""
    lv = load_version("emb", served_dir / "emb", 1)
    p = lv.pipeline
    return {s: p.run_batch(p.tokenize([s]))[0] for s in SENTENCES}


async def test_concurrent_requests_get_their_own_results(origin, reference: dict[str, np.ndarray]):
    async with httpx.AsyncClient(base_url=origin.url, timeout=30) as client:

        async def one(text: str) -> np.ndarray:
            r = await client.post("/v1/embeddings", json={"model": "emb", "input": text})
            assert r.status_code == 200, r.text
            return np.array(r.json()["data"][0]["embedding"], dtype=np.float32)

        for _ in range(3):
            results = await asyncio.gather(*(one(s) for s in SENTENCES))
            for text, got in zip(SENTENCES, results, strict=True):
                np.testing.assert_allclose(got, reference[text], atol=1e-5)


def test_one_request_with_many_inputs_equals_single_requests(
    client: httpx.Client, reference: dict[str, np.ndarray]
):
    body = client.post("/v1/embeddings", json={"model": "emb", "input": SENTENCES}).json()
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, np.stack([reference[s] for s in SENTENCES]), atol=1e-5)


def test_padding_in_a_batch_does_not_change_results(served_dir: Path):
    lv = load_version("emb", served_dir / "emb", 1)
    p = lv.pipeline
    items = p.tokenize(SENTENCES)
    batched = p.run_batch(items)
    for item, vec in zip(items, batched, strict=True):
        np.testing.assert_allclose(p.run_batch([item])[0], vec, atol=1e-5)
