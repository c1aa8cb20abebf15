"""Property-based fuzzing of the origin (directly) and the edge from their real OpenAPI
documents: no 5xx, and every status, content type and body matches what the document says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.resilience.conftest import ProvenStack, Stack, proof_headers

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz_schema(
    doc_url: str,
    base_url: str,
    checks: list = CHECKS,
    headers: dict[str, str] | None = None,
) -> list[str]:
    """Run every operation of the document at `base_url`; returns one line per failure.

    (schemathesis' lazy pytest loader does not support pytest 9 yet, so each operation's
    hypothesis strategy is driven directly.)
    """
    schema = schemathesis.openapi.from_url(doc_url)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the OpenAPI document lists no operations"
    for op in operations:
        failure = fuzz_operation(op, base_url, checks, lambda: headers)
        if failure is not None:
            failures.append(failure)
    return failures


def fuzz_operation(
    op: Any, base_url: str, checks: list, headers: Callable[[], dict[str, str] | None]
) -> str | None:
    """Drive one operation's strategy at `base_url` (`headers()` per request); the failure."""

    @FUZZ
    @given(case=op.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, checks=checks, headers=headers(), timeout=30)

    try:
        run()
    except Exception as exc:
        return f"{op.label} at {base_url}: {str(exc)[:1500]}"
    return None


def test_origin_conforms_to_its_openapi_document(stack: Stack) -> None:
    url = stack.origins[0].url
    failures = fuzz_schema(url + "/openapi.json", url)
    assert not failures, "\n\n".join(failures)


def test_edge_conforms_to_its_openapi_document(stack: Stack) -> None:
    url = stack.edge.url
    failures = fuzz_schema(url + "/openapi.json", url, headers=stack.auth())
    assert not failures, "\n\n".join(failures)


def test_edge_never_fails_on_inputs_generated_from_the_origin_document(stack: Stack) -> None:
    """The edge serves the origin's routes behind auth: the same generated requests, sent
    through it with a valid token, never give a 5xx (the edge's statuses differ from the
    origin's document, e.g. 401/429, so only the server-error check applies)."""
    failures = fuzz_schema(
        stack.origins[0].url + "/openapi.json",
        stack.edge.url,
        checks=[not_a_server_error],
        headers=stack.auth(),
    )
    assert not failures, "\n\n".join(failures)


def test_the_token_endpoint_conforms_on_both_tiers(proven_stack: ProvenStack) -> None:
    """The token endpoint of an origin with Vault, from its document's form schema: directly
    (with a caller proof, as an internal service) every answer matches the document; through
    the edge, none is a 5xx."""
    origin, key = proven_stack.origin.url, proven_stack.key()
    doc = httpx.get(
        origin + "/openapi.json", headers=proof_headers(key, "GET", "/openapi.json"), timeout=30
    ).json()
    schema = schemathesis.openapi.from_dict(doc)
    (op,) = [
        r.ok()
        for r in schema.get_all_operations()
        if r.ok().path == "/oauth/token" and r.ok().method == "post"
    ]

    def proven() -> dict[str, str]:  # per request: a proof names its time and request id
        return proof_headers(key, "POST", "/oauth/token", subject="ip:127.0.0.1")

    failures = [
        fuzz_operation(op, origin, CHECKS, proven),
        fuzz_operation(op, proven_stack.edge.url, [not_a_server_error], proven),
    ]
    assert failures == [None, None], "\n\n".join(f for f in failures if f)
