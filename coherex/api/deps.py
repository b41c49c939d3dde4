"""What every API request needs: the open database and queue, who is calling, rate limits, and
errors turned into clear JSON (never a traceback)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from coherex.api.oauth import Caller as _OAuthCaller
from coherex.errors import (
    BackendError,
    CoherexError,
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthorized,
    UserError,
)
from coherex.runtime import QuotaExceeded, Runtime
from coherex.settings import Settings
from coherex.store.db import Database, Identity

log = logging.getLogger(__name__)


@dataclass
class ApiState:
    db: Database
    runtime: Runtime
    settings: Settings
    queue: Any  # an open procrastinate App


@dataclass(frozen=True)
class Caller(_OAuthCaller):
    """An API key's identity: its creator, narrowed by RLS to the key's team."""

    key_id: UUID | None = None

    @property
    def identity(self) -> Identity:
        # the key's id travels in the claims: the database counts runs against the key's own quotas
        return Identity(
            self.user_id, "authenticated", self.team_id, {"key_id": str(self.key_id)} if self.key_id else {}
        )


def state(request: Request) -> ApiState:
    return request.app.state.coherex


def db(request: Request) -> Database:
    return state(request).db


_bearer = HTTPBearer(auto_error=False, description="An API key: `coherex keys create NAME`.")
_STATUS_BY_TYPE: list[tuple[type[CoherexError], int]] = [
    (Unauthorized, 401),
    (RateLimited, 429),
    (QuotaExceeded, 402),
    (NotFound, 404),
    (PermissionDenied, 403),
    (Conflict, 409),
    (UserError, 422),
    (BackendError, 503),
    (CoherexError, 400),
]


async def caller(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
    """An API key (`Authorization: Bearer …`), or the chat session of the same browser (its login
    cookie; the team is the `X-Coherex-Team` header's slug, or the person's first team)."""
    known = getattr(request.state, "coherex_caller", None)
    if known is not None:  # already authenticated by AuthFirstRoute (and its rate-limit token taken)
        return known
    st = state(request)
    if creds is not None and creds.credentials:
        who = await key_caller(st.db, creds.credentials)
    else:
        who = await _chat_caller(request, st)
    await take_rate_token(st.db, st.settings, who)
    return who


async def key_caller(database: Database, key: str) -> Caller:
    """The caller an API key stands for (Unauthorized when it is unknown, revoked or expired)."""
    from coherex.services.keys import resolve_key

    found = await resolve_key(database, key)
    if found is None:
        raise Unauthorized("This API key is not valid (unknown, revoked or expired).")
    return Caller(user_id=found.user_id, team_id=found.team_id, key_id=found.id)


async def bearer_caller(st: ApiState, request: Request, what: str) -> Caller:
    """The caller of a request to an endpoint that takes API keys only (`what`: its name in the
    refusal), its rate-limit token taken: for the apps mounted beside the API (/mcp, A2A)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized(
            f"{what} needs an API key: send `Authorization: Bearer <key>`.",
            hint="Create one with `coherex keys create NAME`.",
        )
    who = await key_caller(st.db, key)
    await take_rate_token(st.db, st.settings, who)
    return who


async def take_rate_token(database: Database, settings: Settings, who: Caller) -> None:
    """One request's token: one bucket per API key, or per person for the chat's session (shared by
    every web process, and by `coherex mcp serve`); RateLimited when it is empty."""
    from coherex.services.keys import take_rate_token as take

    wait = await take(
        database, who.key_id or who.user_id, settings.api_rate_per_second, settings.api_rate_burst
    )
    if wait:
        raise RateLimited("Too many requests for this API key.", retry_after=wait)


async def _chat_caller(request: Request, st: ApiState) -> Caller:
    from coherex.chat.session import user_id_from_cookies

    user_id = user_id_from_cookies(request.cookies)
    if user_id is None:
        raise Unauthorized(
            "This endpoint needs an API key: send `Authorization: Bearer <key>`.",
            hint="Create one with `coherex keys create NAME`, or sign in to the chat.",
        )
    # the header from scripts; `?team=` from links the chat shows (a person in several teams)
    wanted = request.headers.get("x-coherex-team") or request.query_params.get("team")
    from coherex.services.teams import my_teams

    mine = await my_teams(st.db, Identity.user(user_id))
    if not mine:
        raise Unauthorized("This chat login belongs to no team.")
    teams = {t.slug: t.id for t in mine}
    if wanted and wanted not in teams:
        raise Unauthorized(
            f"You are not a member of team {wanted!r}.", hint=f"Your teams: {', '.join(teams)}."
        )
    return Caller(user_id=user_id, team_id=teams[wanted] if wanted else mine[0].id)


_RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}


async def require_role(st: ApiState, who: Caller, minimum: str, action: str) -> None:
    """Refuse (403) unless the caller (an API key's creator, or the chat's person) has at least
    `minimum` in the team. For actions RLS cannot stop on its own: reading a secret through the
    service identity, or an outbound call made before anything is written."""
    from coherex.services.teams import member as membership

    member = await membership(st.db, who.identity, who.team_id, who.user_id)
    if member is None or _RANK[member.role] < _RANK[minimum]:
        yours = f"your role is {member.role}" if member else "you have no role in it"
        raise PermissionDenied(
            f"{action} needs the {minimum} role or above in this team; {yours}.",
            hint="An admin can change your role: `coherex teams role EMAIL ROLE`.",
        )


#: largest body an authenticated API request may send (specs, transcripts, searches); uploads may
#: send their file limit (COHEREX_KB_MAX_FILE_MB) plus this much for the form's other parts
API_BODY_MAX = 16 << 20
_FORM_OVERHEAD = 1 << 20


def capped(request: Request, limit: int, what: str = "The request body", hint: str | None = None) -> Request:
    """The request with its body refused (413 too_large) past `limit` bytes: a larger
    Content-Length before a byte is read, any body as soon as it passes the limit. Nothing beyond
    is read. (An HTTPException, so that FastAPI's own body parsing passes it on unchanged.)"""

    def too_large() -> HTTPException:
        return HTTPException(413, f"{what} is larger than {limit:,} bytes." + (f" {hint}" if hint else ""))

    declared = request.headers.get("content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
        raise too_large()
    seen = 0
    receive = request.receive

    async def capped_receive() -> Any:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large()
        return message

    return Request(request.scope, capped_receive)


def _body_limit(request: Request) -> tuple[int, str | None]:
    if request.headers.get("content-type", "").startswith("multipart/"):
        from coherex.knowledge.ingest import max_file_bytes

        return max_file_bytes() + _FORM_OVERHEAD, "Raise the file limit with COHEREX_KB_MAX_FILE_MB."
    return API_BODY_MAX, None


class AuthFirstRoute(APIRoute):
    """A route that authenticates (key or chat cookie, and the rate limit) before its body is read,
    and reads at most its limit. FastAPI reads a route's body (spooling uploads to disk) before
    it resolves dependencies: without this, anyone could make us read a whole body only to
    answer 401. Routes without the `caller` dependency (webhooks, health) are left alone."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()
        if not any(d.call is caller for d in self.dependant.dependencies):
            return handler

        async def authenticate_then_read(request: Request) -> Any:
            request.state.coherex_caller = await caller(request, await _bearer(request))
            limit, hint = _body_limit(request)
            return await handler(capped(request, limit, hint=hint))

        return authenticate_then_read


def error_response(exc: CoherexError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """`exc` as the API answers it: `{"error": …}` with the status saying who must act, and
    Retry-After on a 429. `headers`: more of them (a 401's WWW-Authenticate)."""
    status = next(code for kind, code in _STATUS_BY_TYPE if isinstance(exc, kind))
    extra = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, RateLimited) else {}
    return JSONResponse(
        error_body(exc.code, exc.message, exc.hint), status_code=status, headers={**extra, **(headers or {})}
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CoherexError)
    async def coherex_error(request: Request, exc: CoherexError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # framework errors (an unparseable multipart body, 404 on an unknown path, 405) in our shape
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return JSONResponse(
            error_body(code.get(exc.status_code, "error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse(
            error_body("invalid_request", "; ".join(problems) or "invalid request"), status_code=422
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side; it was logged."), status_code=500
        )


def error_body(code: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **({"hint": hint} if hint else {})}}
