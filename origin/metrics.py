"""Prometheus metrics for one app instance (own registry, so several apps can coexist)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class OriginMetrics:
    """All origin metrics, prefixed `outpost_origin_`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "outpost_origin_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "outpost_origin_request_duration_seconds",
            "HTTP request duration",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_request_seconds = Histogram(
            "outpost_origin_model_request_duration_seconds",
            "HTTP request duration of requests a model answered, by model",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_size = Gauge(
            "outpost_origin_queue_size",
            "Inputs waiting in a model's batch queue",
            ["model"],
            registry=r,
        )
        self.queue_capacity = Gauge(
            "outpost_origin_queue_capacity",
            "Inputs a model's batch queue holds before answering 429 (batching.max_queue_size)",
            ["model"],
            registry=r,
        )
        self.batch_size = Histogram(
            "outpost_origin_batch_size",
            "Inputs per inference batch",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "outpost_origin_inference_duration_seconds",
            "Duration of one batched ORT call",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_versions = Gauge(
            "outpost_origin_model_versions",
            "Model versions by state (1 = in that state)",
            ["model", "version", "state"],
            registry=r,
        )
        self.load_failures = Counter(
            "outpost_origin_model_load_failures",
            "Failed model version loads",
            ["model"],
            registry=r,
        )
        self.rejected = Counter(
            "outpost_origin_rejected_requests",
            "Requests answered 429 (queue full)",
            ["model"],
            registry=r,
        )
        self.inputs = Counter(
            "outpost_origin_inference_inputs", "Inputs inferred", ["model", "version"], registry=r
        )
        self.caller_refused = Counter(
            "outpost_origin_caller_refused",
            "Caller proofs (X-Outpost-Caller) that failed, by reason: missing, malformed, "
            "unknown-key, expired, forged",
            ["reason"],
            registry=r,
        )
        self.grpc_requests = Counter(
            "outpost_origin_grpc_requests",
            "gRPC calls by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.grpc_request_seconds = Histogram(
            "outpost_origin_grpc_request_duration_seconds",
            "gRPC call duration",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )


class ModelObserver:
    """Adapter the batcher reports to (queue and batch metrics for one model version)."""

    def __init__(self, metrics: OriginMetrics, model: str, *, capacity: int | None = None) -> None:
        if capacity is not None:
            metrics.queue_capacity.labels(model).set(capacity)
        self._queue = metrics.queue_size.labels(model)
        self._batch = metrics.batch_size.labels(model)
        self._infer = metrics.inference_seconds.labels(model)

    def on_queue(self, size: int) -> None:
        self._queue.set(size)

    def on_batch(self, size: int, seconds: float) -> None:
        self._batch.observe(size)
        self._infer.observe(seconds)
