"""Inference engine: onnxruntime sessions, per-task pipelines and the dynamic batcher."""
