"""Outpost origin: the FastAPI inference service (model registry, batching, ONNX Runtime).

Run it with `python -m origin`; build an app with `origin.app.create_app(settings)`.
"""

__version__ = "0.1.0"
