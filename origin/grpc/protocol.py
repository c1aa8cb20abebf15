"""The messages of `inference.GRPCInferenceService`, from a private descriptor pool.

Built from origin/grpc/descriptor.py (grpc_predict_v2.proto compiled by `outpost.protogen`), not
from protoc's generated `_pb2` modules: those register `inference.*` in protobuf's default pool,
where Triton's and KServe's client packages register the same names, and they tie the protobuf
runtime to the generator's major version. A private pool has neither problem.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import ServiceDescriptor

from origin.grpc.descriptor import FILE_DESCRIPTOR

SERVICE_NAME = "inference.GRPCInferenceService"

_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(FILE_DESCRIPTOR)

SERVICE: ServiceDescriptor = _POOL.FindServiceByName(SERVICE_NAME)


def message(name: str) -> Any:
    """The message class `inference.<name>`."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"inference.{name}"))


ServerLiveResponse = message("ServerLiveResponse")
ServerReadyResponse = message("ServerReadyResponse")
ModelReadyResponse = message("ModelReadyResponse")
ServerMetadataResponse = message("ServerMetadataResponse")
ModelMetadataResponse = message("ModelMetadataResponse")
ModelInferRequest = message("ModelInferRequest")
ModelInferResponse = message("ModelInferResponse")
InferTensorContents = message("InferTensorContents")


def method_types(method: str) -> tuple[Any, Any]:
    """(request class, response class) of one method of the service."""
    m = SERVICE.methods_by_name[method]
    return (
        message_factory.GetMessageClass(m.input_type),
        message_factory.GetMessageClass(m.output_type),
    )
