"""The OpenAPI 3.1 document, generated from the route declarations and their msgspec types."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any, Iterable

import msgspec
import msgspec.inspect as mi

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


# The versions of the two source documents this API implements (CONTRACT.md); `info.version`
# is the engine's own version, which changes with every release of this code.
SOURCE_DOCUMENTS = {"platform-api-overview.txt": "2.4.0", "storefront-api-v1.txt": "1"}


def engine_version() -> str:
    try:
        return importlib.metadata.version("commerce-engine")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


def _timestamp_fields(types: Iterable[Any]) -> dict[str, set[str]]:
    """Struct name -> the encoded names of its datetime fields, across every reachable Struct.
    msgspec describes a datetime as a bare string; clients need to know it is a timestamp."""
    found: dict[str, set[str]] = {}
    seen: set[type] = set()

    def is_datetime(t: Any) -> bool:
        if isinstance(t, mi.Metadata):
            return is_datetime(t.type)
        if isinstance(t, mi.UnionType):
            return any(is_datetime(x) for x in t.types)
        return isinstance(t, mi.DateTimeType)

    def visit(t: Any) -> None:
        if isinstance(t, mi.Metadata):
            visit(t.type)
        elif isinstance(t, mi.StructType):
            if t.cls in seen:
                return
            seen.add(t.cls)
            names = found.setdefault(t.cls.__name__, set())
            for f in t.fields:
                if is_datetime(f.type):
                    names.add(f.encode_name)
                visit(f.type)
        elif isinstance(t, mi.UnionType):
            for x in t.types:
                visit(x)
        elif isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            visit(t.item_type)
        elif isinstance(t, mi.TupleType):
            for x in t.item_types:
                visit(x)
        elif isinstance(t, mi.DictType):
            visit(t.value_type)

    for info in mi.multi_type_info(list(types)):
        visit(info)
    return found


def _as_date_time(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("type") == "string" and "format" not in node:
            return {**node, "format": "date-time"}
        return {k: (_as_date_time(v) if k == "anyOf" else v) for k, v in node.items()}
    if isinstance(node, list):
        return [_as_date_time(v) for v in node]
    return node


def _mark_timestamps(components: dict[str, Any], types: Iterable[Any]) -> None:
    for name, fields in _timestamp_fields(types).items():
        props = components.get(name, {}).get("properties", {})
        for field in fields:
            if field in props:
                props[field] = _as_date_time(props[field])


def _raw_response(spec: RouteSpec, headers: dict[str, Any]) -> dict[str, Any]:
    """A route answering its own response: its real content type, or a redirect."""
    if 300 <= spec.status < 400:
        return {"description": "Redirect", "headers": {**headers, "Location": {"schema": {"type": "string"}}}}
    schema = {"type": "object"} if spec.content_type == "application/json" else {"type": "string"}
    return {"description": "Success", "headers": headers, "content": {spec.content_type: {"schema": schema}}}


def build(specs: Iterable[RouteSpec], *, title: str = "Commerce API", version: str | None = None) -> dict[str, Any]:
    specs = list(specs)
    types = {id(t): t for s in specs for t in (s.body, s.response) if t is not None}
    schemas, components = msgspec.json.schema_components(list(types.values()), ref_template=_REF)
    schema_of = dict(zip(types.keys(), schemas))
    components = dict(components)
    _mark_timestamps(components, types.values())
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
            ok_response = _raw_response(spec, ok_headers)
        else:
            data_schema = schema_of[id(spec.response)] if spec.response is not None else {}
            envelope = {"type": "object", "required": ["success", "data"],
                        "properties": {"success": {"const": True}, "data": data_schema,
                                       "meta": {"type": "object",
                                                "properties": {"pagination": {"$ref": _REF.format(name="Pagination")}}}}}
            if spec.paginated:
                envelope["required"] = ["success", "data", "meta"]
            ok_response = {"description": "Success", "headers": ok_headers,
                           "content": {"application/json": {"schema": envelope}}}
        responses: dict[str, Any] = {str(spec.status): ok_response}
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
        "info": {"title": title, "version": version or engine_version(),
                 "x-source-documents": SOURCE_DOCUMENTS,
                 "description": "Storefront and platform API of the commerce engine. Every response uses the "
                                "`{success, data, meta}` / `{success, error}` envelope."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "Server-to-server key; `Authorization: ApiKey <key>` is accepted too."},
            },
        },
    })

