"""The "what most people write" baseline: FastAPI + sentence-transformers, one encode per request.

Runs inside the bench venv `.outpost/bench-venvs/st` (see setup.sh), not the project's venv:
    python bench/peers/st_server.py --port 8001 --model-path /path/to/all-MiniLM-L6-v2
It answers an OpenAI-shaped `POST /v1/embeddings` and `GET /health`, nothing more.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import SentenceTransformer


class EmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str = "minilm"


def create_app(model_path: str) -> FastAPI:
    """Build the app; the model loads once at import time, as in most tutorials."""
    model = SentenceTransformer(model_path, device="cpu")
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # A plain `def` endpoint: FastAPI runs it in its thread pool, which is the common pattern.
    @app.post("/v1/embeddings")
    def embeddings(req: EmbeddingRequest) -> dict:
        texts = [req.input] if isinstance(req.input, str) else req.input
        vectors = model.encode(texts, batch_size=32, convert_to_numpy=True)
        return {
            "object": "list",
            "model": req.model,
            "data": [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-path", required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.model_path), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
