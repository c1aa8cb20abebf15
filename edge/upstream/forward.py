"""What crosses the hop to an origin: the headers forwarded, and the origin's answer (or its
failure) turned into the edge's response."""

from __future__ import annotations

import logging

from edge.core.problems import problem
from edge.core.request import EdgeRequest, EdgeResponse, UpstreamResponse
from edge.tracing import EdgeSpan
from edge.upstream.pool import ForwardFailure, NoOriginAvailable
from edge.upstream.proof import HEADER as PROOF_HEADER
from edge.upstream.proof import ProofSigner

log = logging.getLogger("edge.upstream")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "content-length",
    "accept-encoding",
    "x-forwarded-for",
    "x-real-ip",
    "cf-connecting-ip",
    PROOF_HEADER,  # only the edge's own proof reaches an origin
}
_NOT_RETURNED = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}
# How an origin says it did not accept the edge's proof (origin/caller.py).
_PROOF_REFUSED = "outpostcaller"


def forward_headers(
    req: EdgeRequest,
    rid: str,
    span: EdgeSpan,
    *,
    signer: ProofSigner | None = None,
    subject: str = "",
    method: str | None = None,
) -> dict[str, str]:
    """The request's headers as sent to the origin: hop-by-hop ones (and those the client named
    in Connection, RFC 9110 §7.6.1) and client-address claims dropped; the request id, the
    client's address as the edge saw it, the trace context with the edge's span as the parent,
    and `Accept-Encoding: identity` (the edge compresses itself) set.

    With `signer`, the caller proof (`edge.upstream.proof`) for `subject` (the plan's: whom the
    edge verified) is added; `method` is the one sent when it is not the request's own."""
    listed = {t.strip().lower() for t in req.headers.get("connection", "").split(",")}
    out = {k: v for k, v in req.headers.items() if k not in _NOT_FORWARDED and k not in listed}
    out["x-request-id"] = rid
    out["accept-encoding"] = "identity"
    out.pop("tracestate", None)  # the client's, unless the edge continued its trace
    out.update(span.outgoing_headers())
    if req.client_ip:
        out["x-forwarded-for"] = req.client_ip
    if signer is not None:
        out[PROOF_HEADER] = signer.header(method or req.method, req.target, rid, subject)
    return out


def from_upstream(up: UpstreamResponse) -> EdgeResponse:
    """The origin's answer as the edge's response (hop-by-hop and framing headers dropped).
    An origin that refused the edge's caller proof is the edge's fault, not the client's: 502,
    logged (a wrong or rotated-away `caller_key`)."""
    if up.status == 401 and up.headers.get("www-authenticate", "").lower().startswith(
        _PROOF_REFUSED
    ):
        rid = up.headers.get("x-request-id", "")
        log.error("request_id=%s an origin refused the edge's caller proof: check caller_key", rid)
        return problem(502, "bad-gateway", "The origin refused the edge's credentials.", rid)
    headers = {k: v for k, v in up.headers.items() if k not in _NOT_RETURNED}
    return EdgeResponse(up.status, headers, up.body)


def upstream_problem(exc: ForwardFailure | NoOriginAvailable, rid: str, pool: str) -> EdgeResponse:
    """The answer when no origin answered usefully: the last origin answer if there was one,
    else 504 (timed out), 502 (unreachable, or the connection broke) or 503 (nothing
    available, retry soon)."""
    if isinstance(exc, ForwardFailure) and exc.last is not None:
        return from_upstream(exc.last)
    if isinstance(exc, ForwardFailure) and exc.kind == "timeout":
        log.warning("request_id=%s origins timed out (pool %s)", rid, pool)
        return problem(504, "gateway-timeout", "The origin did not answer in time.", rid)
    if isinstance(exc, ForwardFailure) and exc.kind in ("connect", "disconnected"):
        log.warning("request_id=%s no origin reachable (pool %s)", rid, pool)
        return problem(502, "bad-gateway", "No origin could be reached.", rid)
    log.warning("request_id=%s no origin available (pool %s)", rid, pool)
    return problem(503, "unavailable", "No origin is available.", rid, {"retry-after": "1"})
