"""The seam for per-call checks on the gRPC server (e.g. proof that a call comes from the edge).

A check is any async callable taking a `CallInfo` (the full method name and the call's metadata)
that raises a `Problem` to refuse the call; the problem is answered with its gRPC status (see
`origin.grpc.status`), before the servicer runs. Pass checks to `create_app(call_checks=...)`;
they run, in order, on every call of every service on the port, health included (a check that
should let health probes through tests `info.method`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from origin.grpc.status import problem_metadata, status_code
from origin.problems import Problem


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What a check sees of a call: `/package.Service/Method` and its metadata (lower-case
    keys; a repeated key keeps its last value; binary `-bin` values are bytes)."""

    method: str
    metadata: Mapping[str, str | bytes]


CallCheck = Callable[[CallInfo], Awaitable[None]]


class CheckInterceptor(grpc.aio.ServerInterceptor):
    """Runs the checks before the handler; the first Problem raised refuses the call."""

    def __init__(self, checks: Sequence[CallCheck]) -> None:
        self._checks = list(checks)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        metadata = {k.lower(): v for k, v in handler_call_details.invocation_metadata or ()}
        info = CallInfo(handler_call_details.method, metadata)  # type: ignore[arg-type]
        try:
            for check in self._checks:
                await check(info)
        except Problem as problem:
            return _refusal(problem, str(metadata.get("x-request-id", "")))
        return await continuation(handler_call_details)


def _refusal(problem: Problem, request_id: str) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            status_code(problem),
            problem.detail or problem.title,
            trailing_metadata=problem_metadata(problem, request_id),
        )

    # The request is never read: any method can be refused with the same handler.
    return grpc.unary_unary_rpc_method_handler(refuse, request_deserializer=lambda b: b)
