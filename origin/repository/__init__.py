"""Model repository: `model.yaml` schema, folder validation, loading, registry and watcher."""

from origin.repository.config import ModelConfig, ModelFolderError, load_model_config

__all__ = ["ModelConfig", "ModelFolderError", "load_model_config", "validate_model_folder"]


def __getattr__(name: str):  # lazy: validation pulls in onnxruntime and transformers
    if name == "validate_model_folder":
        from origin.repository.loader import validate_model_folder

        return validate_model_folder
    raise AttributeError(name)
