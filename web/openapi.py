"""The OpenAPI 3.1 document, generated from the route declarations and their msgspec types."""

from __future__ import annotations

import re
from typing import Any, Iterable

import msgspec

from web.api import OPTIONAL, PUBLIC, REQUIRED, RouteSpec
from web.errors import status_of
from web.ratelimit import UNLIMITED

_REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{(\w+)\}")

_ERROR = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            },
        },
    },
}
_PAGINATION = {
    "type": "object",
    "required": ["total", "page", "pageSize", "totalPages", "hasNext", "hasPrevious"],
    "properties": {
        "total": {"type": "integer"}, "page": {"type": "integer"}, "pageSize": {"type": "integer"},
        "totalPages": {"type": "integer"}, "hasNext": {"type": "boolean"}, "hasPrevious": {"type": "boolean"},
    },
}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests allowed in the window"},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Requests left in the window"},
    "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Epoch seconds when the window resets"},
    "X-RateLimit-Policy": {"schema": {"type": "string"}, "description": "Name of the policy that answered"},
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying"}}
_REQUEST_ID = {"X-Request-ID": {"schema": {"type": "string"}, "description": "Request id (echoed or generated)"}}


def _limited(spec: RouteSpec) -> bool:
    return spec.policy is not None and spec.policy != UNLIMITED


def _always_errors(spec: RouteSpec) -> list[str]:
    codes = ["VALIDATION_ERROR", "SERVICE_UNAVAILABLE"]
    if spec.auth in (REQUIRED, OPTIONAL, PUBLIC):  # credentials sent to a public route are still checked
        codes.append("UNAUTHORIZED")
    if spec.permission:
        codes.append("FORBIDDEN")
    if _limited(spec):
        codes.append("RATE_LIMIT_EXCEEDED")
    if spec.body is not None:
        codes += ["PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE"]
    if spec.idempotent:
        codes.append("IDEMPOTENCY_KEY_REUSED")
    return codes


def _query_parameters(query_type: Any, components: dict[str, Any]) -> list[dict[str, Any]]:
    (schema,), comps = msgspec.json.schema_components([query_type], ref_template=_REF)
    name = schema["$ref"].rsplit("/", 1)[-1]
    struct = comps[name]
    required = set(struct.get("required", ()))
    params = []
    for pname, pschema in struct.get("properties", {}).items():
        params.append({"name": pname, "in": "query", "required": pname in required, "schema": pschema})
    for other, value in comps.items():
        if other != name:
            components[other] = value
    return params


def _money_as_number(node: Any) -> Any:
    """msgspec describes Decimal as a decimal string; the engine sends money as a JSON number."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "decimal":
            out = {k: v for k, v in node.items() if k not in ("type", "format")} | {"type": "number"}
            if isinstance(out.get("default"), str):
                value = float(out["default"])
                out["default"] = int(value) if value.is_integer() else value
            return out
        return {k: _money_as_number(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_money_as_number(v) for v in node]
    return node


def build(specs: Iterable[RouteSpec], *, title: str = "Commerce API", version: str = "2.4.0") -> dict[str, Any]:
    specs = list(specs)
    types = {id(t): t for s in specs for t in (s.body, s.response) if t is not None}
    schemas, components = msgspec.json.schema_components(list(types.values()), ref_template=_REF)
    schema_of = dict(zip(types.keys(), schemas))
    components = dict(components)
    components["Error"] = _ERROR
    components["Pagination"] = _PAGINATION

    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        op: dict[str, Any] = {
            "operationId": f"{spec.method.lower()}_{spec.handler.__name__}",
            "summary": spec.summary or spec.handler.__name__.replace("_", " "),
            "tags": [spec.tag],
        }
        if spec.handler.__doc__:
            op["description"] = spec.handler.__doc__.strip()
        params: list[dict[str, Any]] = []
        for pname in _PARAM.findall(spec.path):
            pschema = {"type": "string"} if pname in spec.text_params else {"type": "string", "format": "uuid"}
            params.append({"name": pname, "in": "path", "required": True, "schema": pschema})
        if spec.query is not None:
            params += _query_parameters(spec.query, components)
        if spec.idempotent:
            params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
        if spec.auth in (PUBLIC, OPTIONAL):
            params.append({"name": "X-Tenant", "in": "header", "required": False, "schema": {"type": "string"}})
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema_of[id(spec.body)]}}}
        if spec.auth == REQUIRED:
            op["security"] = [{"BearerAuth": []}, {"ApiKey": []}]
        elif spec.auth == OPTIONAL:
            op["security"] = [{"BearerAuth": []}, {"ApiKey": []}, {}]

        if spec.policy:
            op["x-rate-limit-policy"] = spec.policy + (f" ({spec.user_policy} for signed-in users)" if spec.user_policy else "")
        ok_headers = dict(_REQUEST_ID)
        if _limited(spec):
            ok_headers.update(_RATE_HEADERS)
        if spec.raw:
            ok_content: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
        else:
            data_schema = schema_of[id(spec.response)] if spec.response is not None else {}
            envelope = {"type": "object", "required": ["success", "data"],
                        "properties": {"success": {"const": True}, "data": data_schema,
                                       "meta": {"type": "object",
                                                "properties": {"pagination": {"$ref": _REF.format(name="Pagination")}}}}}
            if spec.paginated:
                envelope["required"] = ["success", "data", "meta"]
            ok_content = {"application/json": {"schema": envelope}}
        responses: dict[str, Any] = {str(spec.status): {"description": "Success", "headers": ok_headers, "content": ok_content}}
        by_status: dict[int, list[str]] = {}
        for code in [*_always_errors(spec), *spec.errors]:
            by_status.setdefault(status_of(code), [])
            if code not in by_status[status_of(code)]:
                by_status[status_of(code)].append(code)
        for status, codes in sorted(by_status.items()):
            headers = dict(_REQUEST_ID)
            if status in (429, 503):
                headers.update(_RETRY_AFTER)
            if status == 429:
                headers.update(_RATE_HEADERS)
            responses[str(status)] = {
                "description": ", ".join(codes), "headers": headers,
                "content": {"application/json": {"schema": {"$ref": _REF.format(name="Error")}}},
            }
        op["responses"] = responses
        paths.setdefault(spec.full_path, {})[spec.method.lower()] = op

    return _money_as_number({
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Storefront and platform API of the commerce engine. Every response uses the "
                                "`{success, data, meta}` / `{success, error}` envelope."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    })

