"""The OpenAPI schema says what the API really answers: FastAPI documents only the success and its own validation
error, so the error responses every route can give (one JSON error model), /ready's 503, /metrics' text and the
image routes' bytes are added here, in one place, instead of on every route. The fuzz test
(tests/api/test_fuzz.py) holds the schema to the responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}}
_WHY = {
    400: "the input is well-formed but unusable (undecodable photo, bad filter, nothing to match on)",
    401: "an API key is required, or the key is unknown or revoked",
    403: "the key's scope does not allow this request",
    404: "no such product, image or query",
    405: "the route does not take this method",
    408: "the request body did not arrive in time",
    413: "the request body is over this route's limit",
    422: "the request does not follow this schema",
    429: "over the rate limit",
    503: "a store or the model is unavailable or too slow; retry later",
}
_READY = {"type": "object", "required": ["ready", "parts"], "properties": {"ready": {"type": "boolean"}}}


def install_openapi(app: FastAPI) -> None:
    """Replace APP's schema builder with one that documents every error response (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    _document(path, operation)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if path == "/ready":
        responses["200"]["content"] = {"application/json": {"schema": _READY}}
        responses["503"] = {"description": "not ready: each part's state", "content": responses["200"]["content"]}
    elif path == "/metrics":
        responses["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif path.endswith(("/image", "/thumbnail")) and "{product_id}" in path:
        responses["200"]["content"] = {"image/*": {"schema": {"type": "string", "format": "binary"}}}
    for status in _statuses(path, operation):
        headers = _RETRY_AFTER if status in (429, 503) else None
        responses[str(status)] = _error_response(_WHY[status], headers)


def _statuses(path: str, operation: dict[str, Any]) -> list[int]:
    """The errors an operation can answer with: every operation checks its input's shape and size; /v1 routes
    also keys, rates, the stores and the model's time limit, and routes naming a thing may not find it."""
    statuses = [405, 408, 413, 422]
    if path.startswith("/v1/"):
        statuses += [400, 401, 403, 429, 503]
    if "{" in path or path == "/v1/feedback":
        statuses.append(404)
    return statuses


def _error_response(description: str, headers: dict[str, Any] | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response
