"""The seam for per-call checks on the gRPC server (e.g. proof that a call comes from the edge).

A check is any async callable taking a `CallInfo` (the full method name and the call's metadata)
that raises a `Problem` to refuse the call; the problem is answered with its gRPC status (see
`origin.grpc.status`), before the servicer runs. A check may return the subject the call proved
it comes for: unary handlers then run with it in `origin.caller.caller_subject` (fair
scheduling), as HTTP requests do. Pass checks to `create_app(call_checks=...)`;
they run, in order, on every call of every service on the port, health included (a check that
should let health probes through tests `info.method`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from origin.caller import caller_subject
from origin.grpc.status import problem_metadata, status_code
from origin.problems import Problem


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What a check sees of a call: `/package.Service/Method` and its metadata (lower-case
    keys; a repeated key keeps its last value; binary `-bin` values are bytes)."""

    method: str
    metadata: Mapping[str, str | bytes]


CallCheck = Callable[[CallInfo], Awaitable[str | None]]


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
        subject = None
        try:
            for check in self._checks:
                subject = await check(info) or subject
        except Problem as problem:
            return _refusal(problem, str(metadata.get("x-request-id", "")))
        handler = await continuation(handler_call_details)
        if subject is None or handler is None or handler.unary_unary is None:
            return handler
        return _with_subject(handler, subject)


def _with_subject(handler: grpc.RpcMethodHandler, subject: str) -> grpc.RpcMethodHandler:
    """`handler` (unary) run with `subject` bound to `caller_subject` in its own context."""
    inner = handler.unary_unary

    async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = caller_subject.set(subject)
        try:
            return await inner(request, context)
        finally:
            caller_subject.reset(token)

    return grpc.unary_unary_rpc_method_handler(
        run,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _refusal(problem: Problem, request_id: str) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            status_code(problem),
            problem.detail or problem.title,
            trailing_metadata=problem_metadata(problem, request_id),
        )

    # The request is never read: any method can be refused with the same handler.
    return grpc.unary_unary_rpc_method_handler(refuse, request_deserializer=lambda b: b)
