"""The origin's OpenAPI document states the error contract it keeps: every error answer is RFC
9457 problem+json, FastAPI's default `422` body included, except the token endpoint's OAuth
errors (tests/resilience/fuzz checks live answers against the document)."""

from __future__ import annotations

import json
from pathlib import Path

from origin.app import create_app
from origin.identity.metrics import VaultMetrics
from origin.identity.router import build_router
from origin.identity.settings import IdentitySettings
from origin.settings import OriginSettings


def test_every_error_answer_in_the_openapi_document_is_problem_json(tmp_path: Path) -> None:
    app = create_app(OriginSettings(models_dir=tmp_path, watch=False))
    # The identity routes are mounted at start-up, when Vault is there; their handlers never
    # run here.
    app.include_router(build_router(IdentitySettings(), None, None, VaultMetrics()))  # type: ignore[arg-type]
    doc = app.openapi()
    errors = {
        (path, method, code): list(answer.get("content", {}))
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        for code, answer in op["responses"].items()
        if int(code) >= 400
    }
    # The token endpoint's 400 and 401 are OAuth errors (RFC 6749 §5.2: `error`,
    # `error_description` in application/json), which OAuth clients read; it never answers 422.
    oauth = {("/oauth/token", "post", "400"), ("/oauth/token", "post", "401")}
    assert all(errors[where] == ["application/json"] for where in oauth)
    wrong = {
        where: kinds
        for where, kinds in errors.items()
        if kinds != ["application/problem+json"] and where not in oauth
    }
    assert not wrong
    # FastAPI's own 422 (path parameters, form fields) is described as the problem it is.
    assert ("/v2/models/{model}", "get", "422") in errors
    assert ("/oauth/token", "post", "422") not in errors
    token_form = doc["paths"]["/oauth/token"]["post"]["requestBody"]["content"]
    assert "grant_type" in token_form["application/x-www-form-urlencoded"]["schema"]["required"]
    assert "HTTPValidationError" not in json.dumps(doc)
    assert doc["paths"]["/v1/embeddings"]["post"]["responses"]["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
