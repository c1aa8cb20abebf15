"""Which pipeline serves each `task` of model.yaml."""

from __future__ import annotations

from origin.engine.tasks import (
    ClassificationPipeline,
    EmbeddingsPipeline,
    RerankPipeline,
    TensorPipeline,
)
from origin.engine.vision import ImageClassificationPipeline, ImageEmbeddingsPipeline

Pipeline = (
    EmbeddingsPipeline
    | ClassificationPipeline
    | RerankPipeline
    | ImageClassificationPipeline
    | ImageEmbeddingsPipeline
    | TensorPipeline
)

PIPELINES: dict[str, type[Pipeline]] = {
    "embeddings": EmbeddingsPipeline,
    "text-classification": ClassificationPipeline,
    "rerank": RerankPipeline,
    "image-classification": ImageClassificationPipeline,
    "image-embeddings": ImageEmbeddingsPipeline,
    "tensor": TensorPipeline,
}
