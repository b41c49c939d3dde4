"""The fake OAuth2 authorization servers of Google, GitHub and Slack (the sign-in flows in
coherex/integrations/oauth.py): authorize redirects straight back with a code, token checks client
credentials, redirect URI and the PKCE verifier, refresh and revocation. Served by `FakeSaaS`."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from coherex.testing.fake_saas import FakeSaaS, Recorded

#: the OAuth clients the fake servers know (client id, client secret)
CLIENTS = {
    "google": ("google-client", "google-secret"),
    "github": ("github-client", "github-secret"),
    "slack": ("slack-client", "slack-secret"),
}


async def _authorize(saas, request: Request) -> Response:
    """The person signs in and clicks Allow: redirect back with a code bound to this request."""
    rec = await saas._record("oauth", request)
    q = rec.query
    provider = request.path_params["provider"]
    if q.get("client_id") != CLIENTS[provider][0]:
        return PlainTextResponse("unknown client", status_code=400)
    code = secrets.token_urlsafe(16)
    with saas._lock:
        saas._codes[code] = {
            "provider": provider,
            "redirect_uri": q["redirect_uri"],
            "challenge": q.get("code_challenge", ""),
            "method": q.get("code_challenge_method", ""),
        }
    return RedirectResponse(
        f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}", status_code=302
    )


def check_code(saas, provider: str, form: dict[str, str], rec: Recorded) -> str | None:
    if (form.get("client_id"), form.get("client_secret")) != CLIENTS[provider]:
        return "invalid_client"
    with saas._lock:
        grant = saas._codes.pop(form.get("code", ""), None)
    if grant is None or grant["provider"] != provider:
        return "invalid_grant"
    if grant["redirect_uri"] != form.get("redirect_uri"):
        return "redirect_uri_mismatch"
    if grant["challenge"]:
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant["method"] != "S256" or digest != grant["challenge"]:
            return "invalid_grant"
    return None


async def _userinfo(saas, request: Request) -> Response:
    """OpenID-style user info for a Google access token: who signed in (`saas.signed_in_email`)."""
    rec = await saas._record("oauth", request)
    if not saas._token_ok(rec, "gmail"):
        return JSONResponse({"error": "invalid_token"}, status_code=401)
    return JSONResponse({"email": saas.signed_in_email, "name": saas.signed_in_email.split("@")[0]})


async def _token(saas, request: Request) -> Response:
    rec = await saas._record("oauth", request)
    provider = request.path_params["provider"]
    form = rec.body if isinstance(rec.body, dict) else {}
    if (fault := saas._fault("oauth")) is not None:
        return fault
    service = {"google": "gmail", "github": "github"}[provider]
    if form.get("grant_type") == "refresh_token":
        if (form.get("client_id"), form.get("client_secret")) != CLIENTS[provider]:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if (
            saas.refuse_refresh
            or form.get("refresh_token") not in saas._refresh
            or form.get("refresh_token") in saas.revoked
        ):
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
                status_code=400,
            )
        return JSONResponse(
            {
                "access_token": saas.issue_token(service, saas.google_expires_in),
                "expires_in": saas.google_expires_in,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/gmail.modify",
            }
        )
    error = check_code(saas, provider, form, rec)
    if error:
        # Google answers 400; GitHub answers 200 with an error field
        return JSONResponse({"error": error}, status_code=400 if provider == "google" else 200)
    body: dict[str, Any] = {
        "access_token": saas.issue_token(service, saas.google_expires_in if provider == "google" else None),
        "token_type": "Bearer",
    }
    if provider == "google":
        refresh = "1//fake-refresh-" + secrets.token_hex(12)
        saas._refresh[refresh] = "google"
        body.update(
            expires_in=saas.google_expires_in,
            refresh_token=refresh,
            scope="https://www.googleapis.com/auth/gmail.modify",
        )
    else:
        body["scope"] = "repo"
    return JSONResponse(body)


async def _google_revoke(saas, request: Request) -> Response:
    rec = await saas._record("oauth", request)
    token = (rec.body or {}).get("token", "")
    if token not in saas._refresh and token not in saas._tokens:
        return JSONResponse({"error": "invalid_token"}, status_code=400)
    saas.revoke(token)
    return Response(status_code=200)


def routes(saas: FakeSaaS) -> list[Route]:
    def bind(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return await handler(saas, request)

        return endpoint

    return [
        Route("/oauth/{provider}/authorize", bind(_authorize), methods=["GET"]),
        Route("/oauth/{provider}/token", bind(_token), methods=["POST"]),
        Route("/oauth/google/revoke", bind(_google_revoke), methods=["POST"]),
        Route("/oauth/userinfo", bind(_userinfo), methods=["GET"]),
    ]


def env(url: str) -> dict[str, str]:
    return {
        "GOOGLE_CLIENT_ID": CLIENTS["google"][0],
        "GOOGLE_CLIENT_SECRET": CLIENTS["google"][1],
        "GITHUB_CLIENT_ID": CLIENTS["github"][0],
        "GITHUB_CLIENT_SECRET": CLIENTS["github"][1],
        "SLACK_CLIENT_ID": CLIENTS["slack"][0],
        "SLACK_CLIENT_SECRET": CLIENTS["slack"][1],
    }
