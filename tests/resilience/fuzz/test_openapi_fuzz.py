"""Property-based fuzzing of the origin (directly) and the edge from their real OpenAPI
documents: no 5xx, and every status, content type and body matches what the document says."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.resilience.conftest import Stack

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

        @FUZZ
        @given(case=op.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, checks=checks, headers=headers, timeout=30)

        try:
            run()
        except Exception as exc:
            failures.append(f"{op.label}: {str(exc)[:1500]}")
    return failures


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
