"""The BentoML peer: sentence-transformers behind BentoML's adaptive batching.

Runs inside the bench venv `.outpost/bench-venvs/bentoml` (see setup.sh), not the project's venv:
    BENCH_MINILM_PATH=/path/to/all-MiniLM-L6-v2 bentoml serve bento_service:Embeddings --port 8002

Two services, composed as BentoML's docs show for a custom request shape in front of a batched
model: `Embeddings` answers the OpenAI-shaped `POST /v1/embeddings` and calls `Encoder.encode`,
a batchable API, so BentoML's dispatcher groups the inputs of concurrent requests into one
`encode` call (up to 32 inputs, its adaptive window). BentoML runs each service in its own
process; its health endpoint is `GET /readyz`.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np

MODEL_PATH = os.environ.get("BENCH_MINILM_PATH", "")
MAX_BATCH = 32
# Peers run without access logs (Outpost's origin and infinity too).
QUIET = {"logging": {"access": {"enabled": False}}}


# With the default (100), BentoML 1.4 replaces its client session to a dependency every 100
# calls and closes the old one while concurrent calls still use it: those calls fail with
# ServerDisconnectedError (about 20% of requests at 32 clients when measured). A limit no run
# reaches keeps BentoML's batching measured, not that defect.
STABLE_CLIENT = {"runner_connection": {"max_requests": 10**9, "max_age": 86_400.0}}


@bentoml.service(workers=1, **QUIET, **STABLE_CLIENT)
class Encoder:
    """The model, loaded once; `encode` is batched across callers by BentoML."""

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(MODEL_PATH, device="cpu")

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=60_000)
    def encode(self, sentences: list[str]) -> np.ndarray:
        return self.model.encode(sentences, batch_size=MAX_BATCH, convert_to_numpy=True)


@bentoml.service(workers=1, **QUIET)
class Embeddings:
    """OpenAI-shaped front: one request may carry one text or a list of them."""

    encoder = bentoml.depends(Encoder)

    @bentoml.api(route="/v1/embeddings")
    async def embeddings(self, input: str | list[str], model: str = "minilm") -> dict:
        # BentoML maps the JSON body's keys to parameters: `input` is the OpenAI field name.
        texts = [input] if isinstance(input, str) else input
        vectors = await self.encoder.to_async.encode(texts)
        return {
            "object": "list",
            "model": model,
            "data": [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
