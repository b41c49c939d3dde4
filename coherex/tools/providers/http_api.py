"""A generic HTTP API: requests strictly below the configured base URL.

The agent (an LLM) chooses the path, so the path is hostile input: absolute URLs, `//host`,
`..` segments (also percent-encoded), backslashes and userinfo are refused, and the final URL must
have the base's scheme, host, port and path prefix. Every connection, redirects included, passes
the egress guard (coherex/egress.py); the credentials (a header, a bearer token, basic auth or a
query key, see `auth_parts`) go only to URLs below the base URL (a redirect elsewhere is followed
without them). A source may also carry an OpenAPI document whose operations become tools
(coherex/tools/providers/openapi.py).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Literal
from urllib.parse import unquote, urljoin, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from coherex.integrations.base import (
    Call,
    Check,
    Model,
    ServiceError,
    SourceType,
    check_status,
    http_client,
    send,
)
from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import Provider, action
from coherex.tools.schema import obj, params, string

SERVICE = "The HTTP API"
_MAX_BODY = 200_000
_MAX_REDIRECTS = 5


class HttpApiConfig(Model):
    base_url: str
    #: how the secret `auth_value` is sent: "header" — verbatim in `auth_header`; "bearer" —
    #: `Authorization: Bearer <auth_value>`; "basic" — auth_value is `user:password`; "query" — as
    #: the query parameter `auth_query` (an API key in the URL); "cookie" — as the cookie `auth_cookie`
    auth: Literal["header", "bearer", "basic", "query", "cookie"] = "header"
    #: the header that carries the secret, e.g. Authorization or X-Api-Key
    auth_header: str = "Authorization"
    #: the query parameter that carries the secret when auth is "query", e.g. api_key
    auth_query: str = ""
    #: the cookie that carries the secret when auth is "cookie", e.g. session_id
    auth_cookie: str = ""
    #: a path to GET for `sources test` (default: the base URL itself)
    health_path: str = ""
    #: the URL of an OpenAPI 3 document whose operations become tools (fetched through the egress guard)
    openapi: str = ""
    #: an OpenAPI 3 document given as a file (`coherex sources add … --openapi FILE` stores its content)
    openapi_document: dict[str, Any] | None = Field(None, json_schema_extra={"x-internal": True})

    @field_validator("base_url")
    @classmethod
    def _absolute_http(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
            raise ValueError(
                "must be an http(s) URL with a host and no credentials or query, "
                "e.g. https://api.example.com/v1"
            )
        return v.rstrip("/")

    @field_validator("openapi")
    @classmethod
    def _document_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if v and (parts.scheme not in ("http", "https") or not parts.hostname or parts.username):
            # never a path: the platform must not read files of its own host for a team
            raise ValueError(
                "must be the http(s) URL of an OpenAPI document, e.g. https://api.example.com/openapi.json "
                "(for a file, `coherex sources add http_api NAME --openapi FILE` stores its content)"
            )
        return v

    @model_validator(mode="after")
    def _query_name(self) -> HttpApiConfig:
        if self.auth == "query" and not self.auth_query.strip():
            raise ValueError("auth 'query' needs auth_query, the query parameter's name (e.g. api_key)")
        if self.auth == "cookie" and not _COOKIE_NAME.fullmatch(self.auth_cookie):
            raise ValueError("auth 'cookie' needs auth_cookie, the cookie's name (e.g. session_id)")
        return self


class HttpApiCredentials(Model):
    #: the secret: the header's value (e.g. "Bearer abc…"), the bearer token, `user:password` for
    #: basic auth, or the query key (see the config's `auth`); optional for open APIs
    auth_value: SecretStr | None = None


def auth_parts(cfg: HttpApiConfig, creds: HttpApiCredentials) -> tuple[dict[str, str], dict[str, str]]:
    """The (headers, query parameters) that carry the source's secret, as its `auth` setting says."""
    if creds.auth_value is None:
        return {}, {}
    secret = creds.auth_value.get_secret_value()
    if cfg.auth == "bearer":
        return {"Authorization": f"Bearer {secret}"}, {}
    if cfg.auth == "basic":
        return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}, {}
    if cfg.auth == "query":
        return {}, {cfg.auth_query: secret}
    if cfg.auth == "cookie":
        return {"Cookie": f"{cfg.auth_cookie}={cookie_value(secret, 'the source credential auth_value')}"}, {}
    return {cfg.auth_header: secret}, {}


_COOKIE_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 6265 token
_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")


def cookie_value(value: str, what: str) -> str:
    """`value` as a cookie value; a `;`, comma, quote, backslash, space or control character would
    end the cookie or start another one (e.g. a model's value carrying `; session=…`)."""
    if not _COOKIE_OCTETS.fullmatch(value):
        raise ServiceError(
            f"{what} cannot be sent as a cookie: it has a character a cookie value may not contain "
            "(space, ';', ',', '\"', '\\' or a control character)."
        )
    return value


def _cookies(*headers: dict[str, str]) -> dict[str, str]:
    """The headers merged, their Cookie headers joined into one (later cookies of a name win)."""
    merged: dict[str, str] = {}
    jar: dict[str, str] = {}
    for h in headers:
        for k, v in h.items():
            if k.lower() == "cookie":
                for part in v.split(";"):
                    name, _, val = part.strip().partition("=")
                    if name:
                        jar[name] = val
            else:
                merged[k] = v
    if jar:
        merged["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    return merged


_TRAVERSAL = re.compile(r"(^|/)\.\.?(/|$)")


def resolve(base_url: str, path: str) -> str:
    """The absolute URL for `path` below `base_url`, or ServiceError if it would leave it."""
    decoded = unquote(unquote(path))
    if (
        "://" in decoded
        or decoded.startswith("//")
        or "\\" in decoded
        or "@" in decoded.split("?")[0]
        or _TRAVERSAL.search(decoded.split("?")[0])
        or any(ord(ch) < 32 for ch in decoded)
    ):
        raise ServiceError(
            f"The path {path!r} is not allowed: give a path below {base_url} "
            "(no full URLs, '..' or other hosts)."
        )
    url = f"{base_url}/{path.lstrip('/')}" if path.strip("/") else base_url
    base, final = urlsplit(base_url), urlsplit(url)
    if (final.scheme, final.hostname, final.port) != (base.scheme, base.hostname, base.port) or not (
        final.path + "/"
    ).startswith(base.path.rstrip("/") + "/"):
        raise ServiceError(f"The path {path!r} leads outside {base_url}.")
    return url


def _below(base_url: str, url: str) -> bool:
    base, final = urlsplit(base_url), urlsplit(url)
    return (final.scheme, final.hostname, final.port) == (base.scheme, base.hostname, base.port) and (
        final.path + "/"
    ).startswith(base.path.rstrip("/") + "/")


async def _request(
    call: Call,
    method: str,
    path: str,
    query: dict[str, Any] | list[tuple[str, Any]] | None = None,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    body_type: str = "application/json",
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
) -> dict[str, Any]:
    """One request below the base URL with the source's credentials; `body` is sent as JSON, a form
    (application/x-www-form-urlencoded), multipart/form-data (its fields, with `files`: field →
    (file name, content, media type)), bytes or text, as `body_type` says."""
    cfg: HttpApiConfig = call.config
    url = resolve(cfg.base_url, path)
    auth_headers, auth_query = auth_parts(cfg, call.credentials)
    params = list(query.items() if isinstance(query, dict) else query or [])
    params = [(k, v) for k, v in params if k not in auth_query]  # the agent never sets the key
    sent_body: dict[str, Any] = {}
    if body is not None:
        if body_type == "multipart/form-data" and isinstance(body, dict):
            # every field as a part (a file-less form too: httpx would send it urlencoded otherwise);
            # httpx writes the boundary's Content-Type
            parts: list[tuple[str, Any]] = [
                (k, (None, v) if isinstance(v, str) else (None, json.dumps(v), "application/json"))
                for k, v in body.items()
            ]
            sent_body = {"files": parts + list(files or [])}
        elif body_type == "application/x-www-form-urlencoded" and isinstance(body, dict):
            sent_body = {"data": body}
        elif isinstance(body, bytes):
            sent_body = {"content": body, "headers": {"Content-Type": body_type}}
        elif body_type.startswith("text/") or (body_type != "application/json" and isinstance(body, str)):
            sent_body = {"content": str(body).encode(), "headers": {"Content-Type": body_type}}
        else:
            sent_body = {"json": body}
    async with http_client(headers={"Accept": "application/json, text/plain;q=0.9, */*;q=0.5"}) as c:
        for _ in range(_MAX_REDIRECTS + 1):
            below = _below(cfg.base_url, url)
            # the credentials last: a header the agent chose never replaces them
            hop_headers = _cookies(headers or {}, sent_body.get("headers", {}), auth_headers if below else {})
            hop_params = params + (list(auth_query.items()) if below else [])
            kwargs = {k: v for k, v in sent_body.items() if k != "headers"}
            r = await send(
                c, SERVICE, method, url, check=False, headers=hop_headers, params=hop_params or None, **kwargs
            )
            location = r.headers.get("location")
            if r.status_code not in (301, 302, 303, 307, 308) or not location:
                break
            # the next hop passes the egress guard like the first (send → the guarded transport)
            url, params = urljoin(str(r.url), location), []
            if urlsplit(url).scheme not in ("http", "https"):
                raise ServiceError(f"{SERVICE} redirected to {location!r}, which is not an http(s) URL.")
            if r.status_code == 303 or (r.status_code in (301, 302) and method not in ("GET", "HEAD")):
                method, sent_body = "GET", {}  # as browsers do; the body is not sent again
        else:
            raise ServiceError(f"{SERVICE} redirected more than {_MAX_REDIRECTS} times.")
    # Other 4xx answers are the API's reply to the agent (e.g. 404 for a missing item), not failures.
    if r.status_code in (401, 429) or r.status_code >= 500:
        check_status(r, SERVICE)
    try:
        data: Any = r.json()
    except ValueError:
        data = r.text[:_MAX_BODY]
    return {"status": r.status_code, "content_type": r.headers.get("content-type", ""), "body": data}


_RESPONSE = obj(status={"type": "integer"}, content_type={"type": "string"}, body={})


@action(
    ToolInfo(
        "http.get",
        "http_api",
        "GET a path of the data source's API; returns status, headers and body.",
        needs_data_source=True,
        parameters=params(
            {
                "path": string("path below the base URL, e.g. /v1/items"),
                "query": {"type": "object", "description": "query parameters"},
            },
            ["path"],
        ),
    ),
    _RESPONSE,
)
async def get(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    return await _request(call, "GET", args["path"], args.get("query"))


@action(
    ToolInfo(
        "http.request",
        "http_api",
        "Send any HTTP request (GET, POST, PUT, PATCH, DELETE) to the data source's API.",
        access="write",
        needs_data_source=True,
        parameters=params(
            {
                "method": string("HTTP method", enum=["GET", "POST", "PUT", "PATCH", "DELETE"]),
                "path": string("path below the base URL"),
                "query": {"type": "object", "description": "query parameters"},
                "json": {"description": "JSON request body"},
            },
            ["method", "path"],
        ),
    ),
    _RESPONSE,
)
async def request(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = args["method"]
    return await _request(call, method, args["path"], args.get("query"), args.get("json"))


async def test_connection(call: Call) -> Check:
    r = await _request(call, "GET", call.config.health_path)
    documented = bool(call.config.openapi) or call.config.openapi_document is not None
    # an API described by a document often has nothing at its base URL: then only refusals count
    # (the check then lists the document's operations: the openapi provider's discover)
    ok = r["status"] < 400 or (documented and not call.config.health_path and r["status"] in (404, 405))
    auth = "with" if call.credentials.auth_value is not None else "without"
    summary = f"{call.config.base_url} answered HTTP {r['status']} {auth} credentials." + (
        "" if ok else " Check the base URL, health path and credentials."
    )
    return Check(ok, summary, {"status": r["status"]})


def _destinations(cfg: HttpApiConfig, creds: HttpApiCredentials) -> list[tuple[str, int]]:
    urls = [cfg.base_url] + ([cfg.openapi] if cfg.openapi else [])  # the document's host is checked too
    from coherex.egress import destination

    return [destination(u) for u in urls]


HTTP_API = SourceType(
    name="http_api",
    title="HTTP API (base URL + auth header)",
    config_model=HttpApiConfig,
    credentials_model=HttpApiCredentials,
    test_connection=test_connection,
    destinations=_destinations,
    rate_per_second=5.0,
    rate_burst=10,
)


PROVIDER = Provider("http_api", (get, request), source_type=HTTP_API)
