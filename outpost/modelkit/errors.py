"""Typed failures of the model kit; each message names the file or field at fault."""

from __future__ import annotations

from outpost.errors import OutpostError


class ModelKitError(OutpostError):
    """Base class: something about building, exporting or importing a model went wrong."""


class CheckpointError(ModelKitError):
    """The source folder is not a usable Hugging Face checkpoint (missing/invalid file)."""


class VerificationError(ModelKitError):
    """The exported ONNX model does not match PyTorch (or int8 drifts too far from fp32)."""


class ModelExistsError(ModelKitError):
    """The target version folder already exists (versions are immutable)."""
