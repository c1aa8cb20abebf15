"""Problems as gRPC statuses: the same error taxonomy as HTTP, in gRPC's codes.

400/413/415/422 -> INVALID_ARGUMENT, 404 -> NOT_FOUND, 429 -> RESOURCE_EXHAUSTED, 503 ->
UNAVAILABLE (and the rest below). When the problem says when to retry (`Retry-After`), the
delay travels twice in the trailing metadata: as a `google.rpc.RetryInfo` detail inside
`grpc-status-details-bin` (gRPC's rich error model, read with grpcio-status or
googleapis-common-protos) and as a plain `retry-after` entry in seconds.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from origin.problems import PROBLEM_TYPE, Problem

STATUS_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

Metadata = tuple[tuple[str, str | bytes], ...]


def status_code(problem: Problem) -> grpc.StatusCode:
    return STATUS_CODES.get(problem.status, grpc.StatusCode.INTERNAL)


def retry_after(problem: Problem) -> int | None:
    value = problem.headers.get("Retry-After")
    return int(value) if value is not None and value.isdigit() else None


def problem_metadata(problem: Problem, request_id: str) -> Metadata:
    """Trailing metadata of a failed call: request id, problem type, and the retry delay."""
    out: list[tuple[str, str | bytes]] = [
        ("x-request-id", request_id),
        ("problem-type", PROBLEM_TYPE + problem.slug),
    ]
    delay = retry_after(problem)
    if delay is not None:
        code = status_code(problem)
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=delay)))
        status = status_pb2.Status(
            code=code.value[0], message=problem.detail or problem.title, details=[detail]
        )
        out.append(("grpc-status-details-bin", status.SerializeToString()))
        out.append(("retry-after", str(delay)))
    return tuple(out)
