"""OpenAPI 3 documents as tools: each operation of an `http_api` source's document is one tool.

    document = await load_document(config, credentials)   # its URL (egress guard) or the stored file
    ops = operations(document)                            # → [Operation], or DocumentError
    result = await call_operation(call, op, args)         # with the source's credentials

The document is checked by `openapi-spec-validator` (OpenAPI 3.0/3.1), walked with `jsonschema-path`
and its `$ref`s resolved by `referencing` with no retrieval at all: a `$ref` to another file or URL is
refused, never fetched (it would be a request the egress guard does not see, or a read of the
platform's own files). An operation's tool: name from `operationId` (else method + path),
description from summary/description, parameters (path, query, header) and the request body (under
`body`) as one JSON-Schema object with every `$ref` inlined (recursion cut, expansion bounded);
GET/HEAD read, others write. Calls go through `http_api`'s request path: below the base URL, every
connection through the egress guard, credentials as the source's `auth` says (a parameter that
would carry them is never offered to the model). Responses are checked loosely against the
documented schema: a mismatch is a note in the result, never a failed call.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urljoin, urlsplit

import httpx
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from coherex import egress
from coherex.integrations.base import Call, ServiceError, http_client
from coherex.spec.catalogue import ToolInfo
from coherex.tools.providers.http_api import (
    HTTP_API,
    HttpApiConfig,
    HttpApiCredentials,
    _below,
    _request,
    auth_parts,
    cookie_value,
)

if TYPE_CHECKING:
    from jsonschema_path import SchemaPath

    from coherex.integrations.service import Opened
    from coherex.tools.port import ToolCall

MAX_DOCUMENT_BYTES = 2_000_000
#: JSON-Schema nodes one document may expand to once its $refs are inlined (a few `$ref`s that each
#: use the next one twice grow exponentially: the bound keeps a hostile document from filling memory)
MAX_SCHEMA_NODES = 200_000
MAX_DEPTH = 16
#: what of a schema mismatch goes back with the result
_NOTE_CHARS = 300
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_READ_METHODS = ("get", "head")
#: OpenAPI keywords that are not JSON Schema (or only noise for a model)
_DROP = {"xml", "example", "externalDocs", "discriminator", "nullable", "x-nullable"}
#: OpenAPI: the first three are never parameters; cookies are `in: cookie` ones (the source's wins)
_IGNORED_HEADERS = {"accept", "content-type", "authorization", "cookie"}
MAX_UPLOAD_BYTES = 25_000_000
_MULTIPART = "multipart/form-data"
_FILE_HINT = (
    "the name of a file of this run to send: an upload, or a file the python tool saved in its "
    "working directory"
)


class _NoRetrieval(dict):
    """Resolver handlers that retrieve nothing. jsonschema-path falls back to `requests`/`urllib` for
    any scheme it has no handler for (an empty dict included): a `$ref` to `file:///…` or an
    internal URL would be read by the platform, around the egress guard."""

    def __contains__(self, scheme: object) -> bool:
        return True

    def __getitem__(self, scheme: str) -> Any:
        return _refuse


def _refuse(uri: str) -> Any:
    raise LookupError(f"{uri} is not retrieved")


class DocumentError(ServiceError):
    """The document is not usable; the message names what is wrong and where."""


@dataclass(frozen=True)
class Operation:
    """One operation as a tool, with what a call needs to build the request (JSON-able)."""

    name: str
    method: str
    path: str
    description: str
    access: Literal["read", "write"]
    #: the JSON-Schema object the model fills
    parameters: dict[str, Any]
    #: argument → [in, the parameter's name, style, explode]
    locations: dict[str, list[Any]] = field(default_factory=dict)
    #: the request body's media type, when the operation takes one (argument `body`)
    body_type: str | None = None
    #: the documented schema of a successful JSON response (a loose check only), when small
    response_schema: dict[str, Any] | None = None
    #: arguments that name files of the run, sent as their content: fields of a multipart `body`,
    #: or ["body"] when the whole body is one file (e.g. application/octet-stream)
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        return cls(**data)


# ---------------------------------------------------------------- the document


def parse_document(raw: bytes | str, where: str) -> dict[str, Any]:
    """JSON or YAML text → the document (a mapping); DocumentError naming `where` otherwise."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"The OpenAPI document {where} is larger than {MAX_DOCUMENT_BYTES // 1_000_000} MB "
            f"({size:,} bytes): give a document with only the operations the agents need."
        )
    try:
        data = yaml.safe_load(raw)  # YAML 1.1 reads JSON too
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DocumentError(f"The OpenAPI document {where} is neither JSON nor YAML{at}.") from None
    if not isinstance(data, dict):
        raise DocumentError(f"The OpenAPI document {where} is not a JSON/YAML object.")
    return data


async def load_document(cfg: HttpApiConfig, creds: HttpApiCredentials) -> dict[str, Any]:
    """The source's document: the stored file's content, or fetched from its URL (credentials only
    when the URL is below the base URL, like every call)."""
    if cfg.openapi_document is not None:
        return cfg.openapi_document
    if not cfg.openapi:
        raise DocumentError(
            "This data source has no OpenAPI document: set its `openapi` config to the document's URL."
        )
    headers, params = auth_parts(cfg, creds)
    url = cfg.openapi
    async with http_client(headers={"Accept": "application/json, application/yaml;q=0.9, */*;q=0.5"}) as c:
        for _ in range(6):
            below = _below(cfg.base_url, url)
            request = c.build_request(
                "GET", url, headers=headers if below else None, params=params if below else None
            )
            try:
                r = await c.send(request, stream=True)
            except egress.EgressDenied as exc:
                raise DocumentError(exc.message) from None
            except httpx.HTTPError as exc:
                raise DocumentError(
                    f"Cannot fetch the OpenAPI document {cfg.openapi}: {type(exc).__name__}.", retryable=True
                ) from None
            try:
                location = r.headers.get("location")
                if r.status_code in (301, 302, 303, 307, 308) and location:
                    url = urljoin(url, location)
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise DocumentError(f"The OpenAPI document's URL redirected to {location!r}.")
                    continue
                if r.status_code >= 400:
                    raise DocumentError(
                        f"Fetching the OpenAPI document {cfg.openapi} answered HTTP {r.status_code}: "
                        "check the source's `openapi` URL (and its credentials)."
                    )
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        return parse_document(bytes(body), cfg.openapi)  # says it is too large
                return parse_document(bytes(body), cfg.openapi)
            finally:
                await r.aclose()
    raise DocumentError(f"The OpenAPI document's URL {cfg.openapi} redirected too many times.")


def _check(document: dict[str, Any], where: str) -> SchemaPath:
    """Validate the document (OpenAPI 3 only); → its root for walking, with no $ref retrieval."""
    # imported here: `coherex validate` imports every provider, and these are slow to load
    from jsonschema_path import SchemaPath
    from openapi_spec_validator.shortcuts import get_validator_cls
    from openapi_spec_validator.validation.exceptions import ValidatorDetectError
    from referencing.exceptions import Unresolvable

    version = str(document.get("openapi", ""))
    if "swagger" in document:
        raise DocumentError(
            f"The document {where} is Swagger {document.get('swagger')} (OpenAPI 2); give an OpenAPI 3 "
            "document (converters such as swagger2openapi turn one into the other)."
        )
    try:
        validator_cls = get_validator_cls(document)
    except ValidatorDetectError:
        raise DocumentError(
            f"The document {where} is not an OpenAPI document: it has no `openapi: 3.x` field."
        ) from None
    if not version.startswith("3."):
        raise DocumentError(f"The document {where} is OpenAPI {version}; only OpenAPI 3 is supported.")
    root = SchemaPath.from_dict(document, handlers=_NoRetrieval())  # no file or URL is ever read
    try:
        first = next(iter(validator_cls(root).iter_errors()), None)
    except Unresolvable as exc:
        raise DocumentError(_ref_message(exc, where, _find_ref(document, exc))) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # the validator trips on some
        # malformed documents instead of reporting them
        raise DocumentError(
            f"The OpenAPI document {where} is not valid OpenAPI 3 ({type(exc).__name__}: {exc})."
        ) from None
    if first is not None:
        at = getattr(first, "json_path", "$")
        raise DocumentError(
            f"The OpenAPI document {where} is not valid OpenAPI {version}: "
            f"{first.message.splitlines()[0]} (at {at})."
        )
    return root


def _ref_message(exc: Exception, where: str, at: str = "") -> str:
    from referencing.exceptions import PointerToNowhere

    ref = getattr(exc, "ref", "?")
    place = f" (in {at})" if at else ""
    if isinstance(exc, PointerToNowhere) or str(ref).startswith("#") or str(ref).startswith("/"):
        return (
            f"The OpenAPI document {where} has a broken $ref {_ref_text(ref)}{place}: it points to nothing."
        )
    return (
        f"The OpenAPI document {where} has a $ref to another file or URL ({ref}){place}; only references "
        "inside the document are followed (bundle it first, e.g. `redocly bundle`)."
    )


def _find_ref(document: Any, exc: Exception) -> str:
    """The JSON path of the first `$ref` that names what `exc` could not resolve."""
    ref = str(getattr(exc, "ref", ""))
    wanted = {ref, "#" + ref}
    todo: list[tuple[Any, str]] = [(document, "$")]
    while todo:
        node, at = todo.pop(0)
        if isinstance(node, dict):
            if node.get("$ref") in wanted:
                return at
            todo.extend((v, f"{at}['{k}']" if "/" in str(k) else f"{at}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            todo.extend((v, f"{at}[{i}]") for i, v in enumerate(node))
    return ""


def _ref_text(ref: Any) -> str:
    ref = str(ref)
    return repr(ref if ref.startswith("#") else "#" + ref)


# ---------------------------------------------------------------- operations → tools


def hidden_parameters(cfg: HttpApiConfig) -> set[tuple[str, str]]:
    """The (in, name) of parameters that carry the source's credentials: never the model's to fill."""
    if cfg.auth == "query":
        return {("query", cfg.auth_query)}
    if cfg.auth == "cookie":
        return {("cookie", cfg.auth_cookie)}
    if cfg.auth == "header":
        return {("header", cfg.auth_header.lower())}
    return set()  # bearer and basic use Authorization, which OpenAPI never lists as a parameter


def operations(
    document: dict[str, Any], where: str = "", hidden: set[tuple[str, str]] = frozenset()
) -> list[Operation]:
    """Every operation of the document as a tool, without the `hidden` parameters (those the
    source's credentials fill); DocumentError names the first problem."""
    from referencing.exceptions import Unresolvable

    where = where or "given"  # e.g. "at https://…/openapi.json", "in petstore.yaml"
    root = _check(document, where)
    budget = _Budget(MAX_SCHEMA_NODES, where)
    out: list[Operation] = []
    seen: set[str] = set()
    try:
        paths = root / "paths"
        for path in paths.str_keys() if "paths" in root else []:
            item = paths / path
            shared = list(item / "parameters") if "parameters" in item else []
            for method in _METHODS:
                if method not in item:
                    continue
                op = item / method
                at = f"paths['{path}'].{method}"
                name = _unique(_tool_name(op, method, path), seen)
                out.append(_operation(op, name, method, path, shared, at, budget, hidden))
    except Unresolvable as exc:  # PointerToNowhere included
        raise DocumentError(_ref_message(exc, where, _find_ref(document, exc))) from None
    if not out:
        raise DocumentError(f"The OpenAPI document {where} has no operations under `paths`.")
    return out


def _tool_name(op: SchemaPath, method: str, path: str) -> str:
    with op.open() as contents:
        raw = str(contents.get("operationId") or "") or f"{method}_{path}"
    name = re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9_-]+", "_", raw)).strip("_") or method
    return name[:64]


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 2
    while candidate in seen:
        candidate = f"{name[:60]}_{n}"
        n += 1
    seen.add(candidate)
    return candidate


def _operation(
    op: SchemaPath,
    name: str,
    method: str,
    path: str,
    shared: list[SchemaPath],
    at: str,
    budget: _Budget,
    hidden: set[tuple[str, str]],
) -> Operation:
    with op.open() as raw:
        summary = str(raw.get("summary") or "").strip()
        detail = str(raw.get("description") or "").strip()
    description = " — ".join(x for x in (summary, detail if detail != summary else "") if x)
    description = description or f"{method.upper()} {path}"
    if len(description) > 1000:
        description = description[:999] + "…"

    # operation-level parameters replace path-level ones of the same name and location
    params: dict[tuple[str, str], SchemaPath] = {}
    for p in shared + (list(op / "parameters") if "parameters" in op else []):
        with p.open() as raw:
            params[(raw["in"], raw["name"])] = p

    properties: dict[str, Any] = {}
    required: list[str] = []
    locations: dict[str, list[Any]] = {}
    for (where_in, pname), p in params.items():
        key = (where_in, pname.lower() if where_in == "header" else pname)
        if key in hidden or (where_in == "header" and pname.lower() in _IGNORED_HEADERS):
            continue
        arg = pname if pname not in properties and pname != "body" else f"{where_in}_{pname}"
        with p.open() as raw:
            style = raw.get("style") or ("form" if where_in == "query" else "simple")
            explode = raw.get("explode", style == "form")
            schema_at = p / "schema" if "schema" in p else _first_media_schema(p)
            schema = budget.inline(schema_at, f"{at} parameter {pname!r}") if schema_at else {}
            if raw.get("description") and "description" not in schema:
                schema = {**schema, "description": str(raw["description"])[:500]}
            if where_in == "path" or raw.get("required"):
                required.append(arg)
        properties[arg] = schema
        locations[arg] = [where_in, pname, style, bool(explode)]

    body_type = None
    files: list[str] = []
    if "requestBody" in op:
        body = op / "requestBody"
        media, schema_at = _pick_media(body)
        if media is not None:
            body_type = media
            schema = budget.inline(schema_at, f"{at} requestBody") if schema_at is not None else {}
            schema, files = _files_by_name(media, schema)
            with body.open() as raw:
                if raw.get("description") and "description" not in schema:
                    schema = {**schema, "description": str(raw["description"])[:500]}
                if raw.get("required"):
                    required.append("body")
            properties["body"] = schema

    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return Operation(
        name=name,
        method=method.upper(),
        path=path,
        description=description,
        access="read" if method in _READ_METHODS else "write",
        parameters=parameters,
        locations=locations,
        body_type=body_type,
        response_schema=_response_schema(op, at, budget),
        files=files,
    )


def _is_binary(schema: Any) -> bool:
    """A file's content (OpenAPI 3.0 `format: binary`, 3.1 `contentMediaType`)."""
    return isinstance(schema, dict) and (
        (schema.get("type") in ("string", None) and schema.get("format") == "binary")
        or ("contentMediaType" in schema and "contentEncoding" not in schema)
    )


def _files_by_name(media: str, schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A model cannot write a file's bytes: binary parts of a body become the names of files of
    the run (sent as their content when called). → (the schema the model fills, those arguments)."""
    as_name = {"type": "string", "description": _FILE_HINT}
    if media == _MULTIPART and isinstance(schema.get("properties"), dict):
        props, files = dict(schema["properties"]), []
        for key, prop in props.items():
            if _is_binary(prop):
                props[key] = {**as_name, **({"title": prop["title"]} if "title" in prop else {})}
                files.append(key)
            elif isinstance(prop, dict) and prop.get("type") == "array" and _is_binary(prop.get("items")):
                props[key] = {"type": "array", "items": as_name, "description": "files of this run, by name"}
                files.append(key)
        return {**schema, "properties": props}, files
    if not media.endswith("json") and media != "application/x-www-form-urlencoded" and _is_binary(schema):
        return {**as_name, **({"description": schema["description"]} if "description" in schema else {})}, [
            "body"
        ]
    return schema, []


def _first_media_schema(p: SchemaPath) -> SchemaPath | None:
    if "content" not in p:
        return None
    for media in (p / "content").str_keys():
        m = p / "content" / media
        return m / "schema" if "schema" in m else None
    return None


def _pick_media(body: SchemaPath) -> tuple[str | None, SchemaPath | None]:
    """The media type a call sends: JSON first, then a form, then text; else the first listed."""
    if "content" not in body:
        return None, None
    content = body / "content"
    types = content.str_keys()
    ranked = sorted(
        types,
        key=lambda t: (
            0
            if t == "application/json" or t.endswith("+json")
            else 1
            if t == "application/x-www-form-urlencoded"
            else 2
            if t == _MULTIPART
            else 3
            if t.startswith("text/")
            else 4
        ),
    )
    if not ranked:
        return None, None
    media = ranked[0]
    m = content / media
    kind = "application/json" if media.endswith("+json") or media == "*/*" else media
    return kind, (m / "schema" if "schema" in m else None)


def _response_schema(op: SchemaPath, at: str, budget: _Budget) -> dict[str, Any] | None:
    if "responses" not in op:
        return None
    responses = op / "responses"
    for code in ("200", "201", "2XX", "default"):
        if code in responses:
            r = responses / code
            if "content" in r and "application/json" in (r / "content"):
                m = r / "content" / "application/json"
                if "schema" in m:
                    schema = budget.inline(m / "schema", f"{at} response {code}", keep_budget=True)
                    return schema if len(json.dumps(schema)) < 20_000 else None
            return None
    return None


class _Budget:
    """Inlines schemas (OpenAPI → JSON Schema) within one document's node budget."""

    def __init__(self, nodes: int, where: str):
        self.left = nodes
        self.where = where

    def inline(self, schema: SchemaPath, at: str, *, keep_budget: bool = False) -> dict[str, Any]:
        from referencing.exceptions import Unresolvable

        left = self.left
        try:
            # from the parent, so that a schema that is a $ref starts the recursion check
            with schema.parent.resolve() as resolved:
                raw = resolved.contents[schema.parts[-1]]
                out = self._node(raw, resolved.resolver, (), at, 0)
        except Unresolvable as exc:
            raise DocumentError(_ref_message(exc, self.where, at)) from None
        if keep_budget:
            self.left = left  # response schemas are optional: they never make a document too large
        return out if isinstance(out, dict) else {}

    def _node(self, node: Any, resolver: Any, stack: tuple[str, ...], at: str, depth: int) -> Any:
        self.left -= 1
        if self.left < 0:
            raise DocumentError(
                f"The OpenAPI document {self.where} is too large to turn into tools: its schemas expand "
                f"to more than {MAX_SCHEMA_NODES:,} entries once their $refs are inlined (reached at {at})."
            )
        if isinstance(node, list):
            return [self._node(v, resolver, stack, at, depth + 1) for v in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node and isinstance(node["$ref"], str):
            ref = node["$ref"]
            if ref in stack or depth > MAX_DEPTH:
                name = ref.rsplit("/", 1)[-1]
                return {"description": f"a {name} (nested as above)"}
            target = resolver.lookup(ref)
            return self._node(target.contents, target.resolver, (*stack, ref), at, depth + 1)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP or key.startswith("x-"):
                continue
            if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(value, dict):
                out[key] = {k: self._node(v, resolver, stack, at, depth + 1) for k, v in value.items()}
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                if value and bound in node:  # OpenAPI 3.0 (draft 4): a flag on minimum/maximum
                    out[key] = node[bound]
            else:
                out[key] = self._node(value, resolver, stack, at, depth + 1)
        if (
            out.get("exclusiveMinimum") is not None
            and "minimum" in out
            and node.get("exclusiveMinimum") is True
        ):
            del out["minimum"]
        if (
            out.get("exclusiveMaximum") is not None
            and "maximum" in out
            and node.get("exclusiveMaximum") is True
        ):
            del out["maximum"]
        if node.get("nullable") is True:  # OpenAPI 3.0's way of saying null is allowed
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        return out


# ---------------------------------------------------------------- calls


async def call_operation(
    call: Call, op: Operation, args: dict[str, Any], read_file: FileReader | None = None
) -> dict[str, Any]:
    """Build the request from the arguments and send it through `http_api` (below the base URL,
    egress guard, credentials); → {status, content_type, body[, note]}. `read_file`: a file of the
    run by name, for arguments that name files (`op.files`)."""
    cfg: HttpApiConfig = call.config
    auth_headers, auth_query = auth_parts(cfg, call.credentials)
    path = op.path
    query: list[tuple[str, Any]] = []
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for arg, value in args.items():
        if arg == "body" and op.body_type is not None and arg not in op.locations:
            continue
        if arg not in op.locations:
            raise ServiceError(f"{op.name} has no argument {arg!r}.")
        where_in, pname, style, explode = op.locations[arg]
        if where_in == "path":
            text = _simple(value)
            path = path.replace("{" + pname + "}", quote(text, safe=""))
        elif where_in == "query":
            if pname in auth_query:
                continue  # the source's key is not the model's to choose
            query.extend(_query_pairs(pname, value, style, explode))
        elif where_in == "header":
            if pname.lower() in {h.lower() for h in auth_headers}:
                continue
            text = _simple(value)
            if any(ord(ch) < 32 for ch in text):
                raise ServiceError(f"The header {pname!r} of {op.name} may not contain control characters.")
            headers[pname] = text
        elif where_in == "cookie":
            if cfg.auth == "cookie" and pname == cfg.auth_cookie:
                continue  # the source's secret cookie is not the model's to set
            cookies.append(f"{pname}={cookie_value(_simple(value), f'The cookie {pname!r} of {op.name}')}")
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    missing = re.findall(r"\{([^}]+)\}", path)
    if missing:
        raise ServiceError(f"{op.name} needs the path parameter(s) {', '.join(missing)}.")
    body = args.get("body") if op.body_type is not None else None
    files = None
    if op.files and body is not None:
        body, files = await _with_files(op, body, read_file)
    result = await _request(
        call,
        op.method,
        path,
        query,
        body,
        headers=headers,
        body_type=op.body_type or "application/json",
        files=files,
    )
    note = _mismatch(op, result)
    if note:
        result["note"] = note
    return result


FileReader = Callable[[str], Awaitable[bytes]]


async def _with_files(
    op: Operation, body: Any, read_file: FileReader | None
) -> tuple[Any, list[tuple[str, tuple[str, bytes, str]]]]:
    """The body with its file names replaced by the files: (the bytes, []) for a one-file body, or
    (the other fields, the file parts) for a multipart one."""
    if read_file is None:
        raise ServiceError(f"{op.name} sends files, which only an agent's run has.")

    async def load(arg: str, name: Any) -> tuple[str, bytes, str]:
        if not isinstance(name, str) or not name.strip():
            raise ServiceError(f"{op.name}: `{arg}` must be the name of a file of this run, e.g. report.pdf.")
        data = await read_file(name)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ServiceError(
                f"{op.name}: the file {name!r} is {len(data):,} bytes; at most "
                f"{MAX_UPLOAD_BYTES // 1_000_000} MB can be sent."
            )
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        return base, data, mimetypes.guess_type(base)[0] or "application/octet-stream"

    if op.files == ["body"] and op.body_type != _MULTIPART:
        return (await load("body", body))[1], []
    if not isinstance(body, dict):
        raise ServiceError(f"{op.name}: `body` must be an object with the form's fields.")
    fields, parts = dict(body), []
    for arg in op.files:
        if arg not in fields:
            continue
        names = fields.pop(arg)
        for name in names if isinstance(names, list) else [names]:
            parts.append((arg, await load(f"body.{arg}", name)))
    return fields, parts


def _simple(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_simple(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k},{_simple(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def _query_pairs(name: str, value: Any, style: str, explode: bool) -> list[tuple[str, str]]:
    if isinstance(value, list):
        if explode and style == "form":
            return [(name, _simple(v)) for v in value]
        sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(style, ",")
        return [(name, sep.join(_simple(v) for v in value))]
    if isinstance(value, dict):
        if style == "deepObject":
            return [(f"{name}[{k}]", _simple(v)) for k, v in value.items()]
        if explode:
            return [(str(k), _simple(v)) for k, v in value.items()]
        return [(name, _simple(value))]
    return [(name, _simple(value))]


def _mismatch(op: Operation, result: dict[str, Any]) -> str | None:
    """A short note when a successful JSON response does not match the documented schema: the
    model may want to know, but a provider's sloppy schema never fails a call."""
    if (
        op.response_schema is None
        or not 200 <= result["status"] < 300
        or "json" not in result["content_type"]
    ):
        return None
    try:
        error = next(iter(Draft202012Validator(op.response_schema).iter_errors(result["body"])), None)
    except (SchemaError, TypeError, ValueError, KeyError, RecursionError):  # the document's problem,
        # not the call's
        return None
    if error is None:
        return None
    where = "/".join(map(str, error.absolute_path)) or "(body)"
    return f"The response does not match the documented schema at {where}: {error.message}"[:_NOTE_CHARS]


# ---------------------------------------------------------------- one source


def document_place(cfg: HttpApiConfig) -> str:
    """How messages name the source's document."""
    return "stored with the source" if cfg.openapi_document is not None else f"at {cfg.openapi}"


async def source_operations(cfg: HttpApiConfig, creds: HttpApiCredentials) -> list[Operation]:
    """The operations of a source's document, without the parameters its credentials fill."""
    document = await load_document(cfg, creds)
    return operations(document, document_place(cfg), hidden_parameters(cfg))


def server_url(document: dict[str, Any], document_url: str = "") -> str | None:
    """The document's first server as an absolute URL (relative ones against the document's URL):
    the base URL when a person gives none."""
    servers = document.get("servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return None
    url = str(servers[0].get("url") or "")
    if "{" in url:
        for name, var in (servers[0].get("variables") or {}).items():
            url = url.replace("{" + name + "}", str((var or {}).get("default", "")))
    url = urljoin(document_url, url) if document_url else url
    return url.rstrip("/") if urlsplit(url).scheme in ("http", "https") else None


async def openapi_config(value: str, config: dict[str, Any], credentials: dict[str, Any]) -> dict[str, Any]:
    """`coherex sources add http_api NAME --openapi URL|FILE`: the source's config with the document
    (a URL to fetch later, or a file's content: the platform never reads a path given to it), its
    base URL taken from the document's server when none was given. The document is checked now:
    a bad one is refused before anything is stored."""
    from pathlib import Path

    from coherex.errors import UserError

    config = dict(config)
    is_url = urlsplit(value).scheme in ("http", "https")
    try:
        if is_url:
            config["openapi"] = value
            probe = HttpApiConfig.model_validate({"base_url": config.get("base_url") or value, **config})
            try:
                creds = HttpApiCredentials.model_validate(credentials)
            except ValueError:  # add_source says what is wrong with them
                creds = HttpApiCredentials()
            document = await load_document(probe, creds)
            where = f"at {value}"
        else:
            path = Path(value).expanduser()
            if not path.is_file():
                raise UserError(
                    f"--openapi {value}: no such file.", hint="Give the document's URL or a path to its file."
                )
            where = f"in {value}"
            document = parse_document(path.read_bytes(), where)
            config["openapi_document"] = document
        count = len(operations(document, where))
    except DocumentError as exc:
        raise UserError(exc.message, hint="Fix the document or give another one with --openapi.") from None
    if not config.get("base_url"):
        base = server_url(document, value if is_url else "")
        if base is None:
            raise UserError(
                f"The OpenAPI document {where} names no absolute server URL.",
                hint="Give the API's base URL with --base-url.",
            )
        config["base_url"] = base
    config["_operations"] = count  # for the CLI's message; removed before saving
    return config


# ---------------------------------------------------------------- the provider's two functions


def tool_infos(ops: list[Operation], integration: str = "http_api") -> list[ToolInfo]:
    return [
        ToolInfo(
            o.name,
            integration,
            o.description,
            access=o.access,
            needs_data_source=True,
            parameters=o.parameters,
        )
        for o in ops
    ]


#: (source id, when its tools were listed) → its operations by name: a call needs the request's
#: shape (method, path, where each argument goes), which the tool cache does not keep; the document
#: is read again at most once per process and listing
_OPERATIONS: OrderedDict[tuple[str, str], dict[str, Operation]] = OrderedDict()
_CACHED_SOURCES = 64


def _remember(key: tuple[str, str], ops: list[Operation]) -> dict[str, Operation]:
    by_name = {o.name: o for o in ops}
    _OPERATIONS[key] = by_name
    _OPERATIONS.move_to_end(key)
    while len(_OPERATIONS) > _CACHED_SOURCES:
        _OPERATIONS.popitem(last=False)
    return by_name


def _key(call: Call) -> tuple[str, str]:
    listed = getattr(call.source, "tools_checked_at", None)
    return str(call.source.id), str(listed or call.source.updated_at)


async def discover_tools(call: Call) -> list[ToolInfo]:
    """The tools of an http_api source: its document's operations ([] when it has no document)."""
    cfg: HttpApiConfig = call.config
    if not cfg.openapi and cfg.openapi_document is None:
        return []
    ops = await source_operations(cfg, call.credentials)
    _remember(_key(call), ops)
    return tool_infos(ops)


async def call_tool(
    call: Call, name: str, args: dict[str, Any], read_file: FileReader | None = None
) -> dict[str, Any]:
    """Run the operation `name` of the source's document with the model's arguments."""
    key = _key(call)
    by_name = _OPERATIONS.get(key)
    if by_name is None:
        by_name = _remember(key, await source_operations(call.config, call.credentials))
    op = by_name.get(name)
    if op is None:
        raise ServiceError(
            f"The OpenAPI document {document_place(call.config)} no longer has the operation {name!r}: "
            f"run `coherex sources test {call.source.name}` to list its operations again."
        )
    return await call_operation(call, op, args, read_file)


# ---------------------------------------------------------------- on the tool-provider port


class OpenApiProvider:
    """`- use: openapi` + `dataSource: NAME` (+ `tools: [operationIds]`): the operations of an
    http_api source's OpenAPI document. The http_api provider owns the source type (settings,
    credentials, check); this one only discovers and runs the document's operations."""

    name = "openapi"
    source_type = HTTP_API
    events = None
    sync = None

    def tools(self) -> list[ToolInfo]:
        return []  # all discovered, per data source

    async def discover(self, opened: Opened) -> list[ToolInfo]:
        return await discover_tools(opened.call)

    async def call(self, call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
        assert call.source is not None, "an operation runs with its data source opened"
        reader = call.run.run_file if call.run is not None else None  # files the operation sends
        return await call_tool(call.source.call, call.tool.name, args, reader)


PROVIDER = OpenApiProvider()
