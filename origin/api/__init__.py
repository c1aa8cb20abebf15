"""HTTP routers: OpenAI-compatible /v1, Open Inference Protocol /v2, health and metrics."""
