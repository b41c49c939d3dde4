"""GitHub REST v3 over httpx (base URL from settings: api.github.com or a GitHub Enterprise host).

Fake server for tests: coherex/testing/fake_github.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, model_validator

from coherex.errors import PermissionDenied, UserError
from coherex.integrations.base import Call, Check, Model, ServiceError, SourceType, http_client, json_of, send
from coherex.integrations.vault import remember_secrets
from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import EventHooks, Provider, Verified, action
from coherex.tools.schema import integer, obj, params, string, strings

if TYPE_CHECKING:
    import httpx

SERVICE = "GitHub"


class GitHubConfig(Model):
    #: what the builder offers agents as their `repo` input (list_data_sources, templates)
    repo: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="the repository agents work on unless told otherwise (owner/name)",
    )


class GitHubCredentials(Model):
    """Either a token, or a GitHub App installation (app id, its private key, installation id)."""

    #: a fine-grained or classic personal access token, or an OAuth app token
    token: SecretStr | None = None
    app_id: str | None = None
    #: the app's private key (PEM), used to mint short-lived installation tokens
    private_key: SecretStr | None = Field(None, json_schema_extra={"x-multiline": True})  # a PEM
    installation_id: int | None = None
    #: the repository webhook's secret, needed only to receive webhooks (event triggers)
    webhook_secret: SecretStr | None = None
    #: obtained through `sources connect` (OAuth): revoked at the provider when the source is removed
    from_oauth: bool = Field(False, json_schema_extra={"x-internal": True})  # set by the sign-in flow

    @model_validator(mode="after")
    def _one_way_in(self) -> GitHubCredentials:
        app = (self.app_id, self.private_key, self.installation_id)
        if self.token is None and None in app:
            raise ValueError("give a token, or app_id + private_key + installation_id for a GitHub App")
        return self


_HEADERS = {"X-GitHub-Api-Version": "2022-11-28", "User-Agent": "coherex"}
#: installation tokens by (api url, app id, installation id): (token, expires at); they live an hour
_installation_tokens: dict[tuple[str, str, int], tuple[str, float]] = {}


@asynccontextmanager
async def _client(
    call: Call, accept: str = "application/vnd.github+json"
) -> AsyncIterator[httpx.AsyncClient]:
    token = await _access_token(call)
    async with http_client(
        call.settings.github_api_url, {"Authorization": f"Bearer {token}", "Accept": accept, **_HEADERS}
    ) as c:
        yield c


async def _access_token(call: Call) -> str:
    creds: GitHubCredentials = call.credentials
    if creds.token is not None:
        return creds.token.get_secret_value()
    key = (call.settings.github_api_url, str(creds.app_id), int(creds.installation_id))
    cached = _installation_tokens.get(key)
    if cached and cached[1] - time.time() > 300:
        return cached[0]
    now = int(time.time())
    import jwt

    # the app proves itself with a 9-minute JWT signed by its private key (GitHub's App auth)
    assertion = jwt.encode(
        {"iat": now - 60, "exp": now + 540, "iss": str(creds.app_id)},
        creds.private_key.get_secret_value(),
        algorithm="RS256",
    )
    async with http_client(
        call.settings.github_api_url,
        {"Authorization": f"Bearer {assertion}", "Accept": "application/vnd.github+json", **_HEADERS},
    ) as c:
        r = await send(c, SERVICE, "POST", f"/app/installations/{creds.installation_id}/access_tokens")
    data = json_of(r, SERVICE)
    token = data.get("token")
    if not token:
        raise ServiceError("GitHub did not return an installation token for this app.")
    remember_secrets([token])
    expires = data.get("expires_at")
    expires_at = datetime.fromisoformat(expires).timestamp() if expires else now + 3600
    _installation_tokens[key] = (token, expires_at)
    return token


async def _get(call: Call, path: str, **params: Any) -> Any:
    async with _client(call) as c:
        r = await send(c, SERVICE, "GET", path, params={k: v for k, v in params.items() if v is not None})
        return json_of(r, SERVICE)


async def _write(call: Call, method: str, path: str, body: dict[str, Any]) -> Any:
    async with _client(call) as c:
        return json_of(await send(c, SERVICE, method, path, json=body), SERVICE)


def _repo(args: dict[str, Any]) -> str:
    repo = args["repo"].strip()
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name or ".." in repo:
        raise ServiceError(f"{repo!r} is not a repository name; use owner/name.")
    return f"/repos/{owner}/{name}"


def _issue(i: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "number": i.get("number"),
        "title": i.get("title"),
        "state": i.get("state"),
        "user": (i.get("user") or {}).get("login"),
        "labels": [lb.get("name") for lb in i.get("labels", [])],
        "comments": i.get("comments", 0),
        "url": i.get("html_url"),
        "updated_at": i.get("updated_at"),
        "is_pull_request": "pull_request" in i,
    }


_ISSUE = obj(
    number={"type": "integer"},
    title={"type": "string"},
    state={"type": "string"},
    user={"type": "string"},
    labels={"type": "array", "items": {"type": "string"}},
    url={"type": "string"},
)


@action(
    ToolInfo(
        "github.list_issues",
        "github",
        "List issues of a repository.",
        needs_data_source=True,
        parameters=params(
            {
                "repo": string("owner/name"),
                "state": string("issue state", enum=["open", "closed", "all"]),
                "labels": strings("only issues with all of these labels"),
                "since": string("only issues updated after this ISO 8601 time"),
                "limit": integer("maximum issues", 1, 500),
            },
            ["repo"],
        ),
    ),
    obj(issues={"type": "array", "items": _ISSUE}),
)
async def list_issues(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    labels = ",".join(args.get("labels") or []) or None
    data = await _get(
        call,
        f"{_repo(args)}/issues",
        state=args.get("state", "open"),
        labels=labels,
        since=args.get("since"),
        per_page=min(args.get("limit", 30), 100),
    )
    # the issues endpoint lists pull requests too; the tool is about issues
    return {"issues": [_issue(i) for i in data if "pull_request" not in i][: args.get("limit", 30)]}


@action(
    ToolInfo(
        "github.read_issue",
        "github",
        "Read one issue with its comments.",
        needs_data_source=True,
        parameters=params(
            {"repo": string("owner/name"), "number": integer("issue number", 1, 10**9)}, ["repo", "number"]
        ),
    ),
    obj(issue=_ISSUE, body={"type": "string"}, comments={"type": "array"}),
)
async def read_issue(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    base = f"{_repo(args)}/issues/{int(args['number'])}"
    issue = await _get(call, base)
    comments = await _get(call, f"{base}/comments", per_page=100) if issue.get("comments") else []
    return {
        "issue": _issue(issue),
        "body": issue.get("body") or "",
        "comments": [
            {
                "user": (c.get("user") or {}).get("login"),
                "body": c.get("body"),
                "created_at": c.get("created_at"),
            }
            for c in comments
        ],
    }


@action(
    ToolInfo(
        "github.create_issue",
        "github",
        "Open a new issue.",
        access="write",
        needs_data_source=True,
        parameters=params(
            {
                "repo": string("owner/name"),
                "title": string("issue title"),
                "body": string("markdown body"),
                "labels": strings("labels to set"),
            },
            ["repo", "title"],
        ),
    ),
    _ISSUE,
)
async def create_issue(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    body = {"title": args["title"], "body": args.get("body", "")}
    if args.get("labels"):
        body["labels"] = args["labels"]
    return _issue(await _write(call, "POST", f"{_repo(args)}/issues", body))


@action(
    ToolInfo(
        "github.comment_issue",
        "github",
        "Comment on an issue or pull request.",
        access="write",
        needs_data_source=True,
        parameters=params(
            {
                "repo": string("owner/name"),
                "number": integer("issue number", 1, 10**9),
                "body": string("markdown comment"),
            },
            ["repo", "number", "body"],
        ),
    ),
    obj(id={"type": "integer"}, url={"type": "string"}),
)
async def comment_issue(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    data = await _write(
        call, "POST", f"{_repo(args)}/issues/{int(args['number'])}/comments", {"body": args["body"]}
    )
    return {"id": data.get("id"), "url": data.get("html_url")}


@action(
    ToolInfo(
        "github.add_labels",
        "github",
        "Add labels to an issue or pull request.",
        access="write",
        needs_data_source=True,
        parameters=params(
            {
                "repo": string("owner/name"),
                "number": integer("issue number", 1, 10**9),
                "labels": strings("labels"),
            },
            ["repo", "number", "labels"],
        ),
    ),
    obj(labels={"type": "array", "items": {"type": "string"}}),
)
async def add_labels(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    data = await _write(
        call, "POST", f"{_repo(args)}/issues/{int(args['number'])}/labels", {"labels": args["labels"]}
    )
    return {"labels": [lb.get("name") for lb in data]}


@action(
    ToolInfo(
        "github.list_pull_requests",
        "github",
        "List pull requests of a repository.",
        needs_data_source=True,
        parameters=params(
            {
                "repo": string("owner/name"),
                "state": string("state", enum=["open", "closed", "all"]),
                "limit": integer("maximum pull requests", 1, 500),
            },
            ["repo"],
        ),
    ),
    obj(pull_requests={"type": "array", "items": _ISSUE}),
)
async def list_pull_requests(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    data = await _get(
        call,
        f"{_repo(args)}/pulls",
        state=args.get("state", "open"),
        per_page=min(args.get("limit", 30), 100),
    )
    return {
        "pull_requests": [
            {
                **_issue(p),
                "head": (p.get("head") or {}).get("ref"),
                "base": (p.get("base") or {}).get("ref"),
                "draft": p.get("draft", False),
            }
            for p in data
        ][: args.get("limit", 30)]
    }


@action(
    ToolInfo(
        "github.read_pull_request_diff",
        "github",
        "Read the unified diff of a pull request.",
        needs_data_source=True,
        parameters=params(
            {"repo": string("owner/name"), "number": integer("pull request number", 1, 10**9)},
            ["repo", "number"],
        ),
    ),
    obj(diff={"type": "string"}, truncated={"type": "boolean"}),
)
async def read_pull_request_diff(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    async with _client(call, accept="application/vnd.github.diff") as c:
        r = await send(c, SERVICE, "GET", f"{_repo(args)}/pulls/{int(args['number'])}")
    limit = 200_000  # an LLM cannot use more, and a huge diff would blow the context
    return {"diff": r.text[:limit], "truncated": len(r.text) > limit}


@action(
    ToolInfo(
        "github.list_commits",
        "github",
        "List recent commits of a branch.",
        needs_data_source=True,
        parameters=params(
            {
                "repo": string("owner/name"),
                "branch": string("branch name (default branch if omitted)"),
                "since": string("only commits after this ISO 8601 time"),
                "limit": integer("maximum commits", 1, 500),
            },
            ["repo"],
        ),
    ),
    obj(
        commits={
            "type": "array",
            "items": obj(
                sha={"type": "string"},
                author={"type": "string"},
                message={"type": "string"},
                date={"type": "string"},
            ),
        }
    ),
)
async def list_commits(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    data = await _get(
        call,
        f"{_repo(args)}/commits",
        sha=args.get("branch"),
        since=args.get("since"),
        per_page=min(args.get("limit", 30), 100),
    )
    return {
        "commits": [
            {
                "sha": c.get("sha"),
                "author": ((c.get("commit") or {}).get("author") or {}).get("name"),
                "message": (c.get("commit") or {}).get("message"),
                "date": ((c.get("commit") or {}).get("author") or {}).get("date"),
            }
            for c in data
        ][: args.get("limit", 30)]
    }


async def test_connection(call: Call) -> Check:
    if call.credentials.token is None:  # a GitHub App installation has no user; list what it may reach
        repos = await _get(call, "/installation/repositories")
        names = [r.get("full_name") for r in repos.get("repositories", [])]
        return Check(
            True,
            f"Connected as GitHub App {call.credentials.app_id} (installation "
            f"{call.credentials.installation_id}); it can reach {len(names)} repositories.",
            {"repositories": names},
        )
    async with _client(call) as c:
        r = await send(c, SERVICE, "GET", "/user")
    user = json_of(r, SERVICE)
    scopes = r.headers.get("x-oauth-scopes")
    what = f"scopes: {scopes}" if scopes else "fine-grained token (permissions are set per repository)"
    return Check(
        True,
        f"Connected to GitHub as {user.get('login')!r}; {what}.",
        {"login": user.get("login"), "scopes": scopes},
    )


async def revoke(call: Call) -> None:
    # An OAuth app token is revoked with the app's credentials; a personal token cannot be
    # revoked through the API — the owner deletes it in GitHub's settings.
    s = call.settings
    if not (call.credentials.from_oauth and s.github_client_id and s.github_client_secret):
        return
    async with http_client(s.github_api_url, {"Accept": "application/vnd.github+json"}) as c:
        await send(
            c,
            SERVICE,
            "DELETE",
            f"/applications/{s.github_client_id}/token",
            auth=(s.github_client_id, s.github_client_secret.get_secret_value()),
            json={"access_token": call.credentials.token.get_secret_value()},
        )


def verify_github_webhook(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Check X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the webhook secret)."""
    lower = {k.lower(): v for k, v in headers.items()}
    given = lower.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise PermissionDenied("This GitHub webhook is not signed with the configured secret.")


async def markdown_files(call: Call, repo: str, prefix: str = "") -> list[tuple[str, str]]:
    """(path, text) of every Markdown file of the repository's default branch under `prefix`
    (knowledge sync; not an agent tool)."""
    base = _repo({"repo": repo})
    tree = await _get(call, f"{base}/git/trees/HEAD", recursive=1)
    paths = [
        t["path"]
        for t in tree.get("tree", [])
        if t.get("type") == "blob"
        and t["path"].startswith(prefix)
        and t["path"].lower().endswith((".md", ".markdown"))
    ]
    out = []
    for path in paths[:500]:  # a documentation folder, not a whole monorepo
        item = await _get(call, f"{base}/contents/{path}")
        out.append((path, base64.b64decode(item.get("content", "")).decode("utf-8", errors="replace")))
    return out


_EVENT_TYPES = {
    ("issues", "opened"): "github.issue_opened",
    ("issue_comment", "created"): "github.issue_comment",
    ("pull_request", "opened"): "github.pull_request_opened",
}


def verify(credentials: GitHubCredentials, headers: Mapping[str, str], body: bytes) -> Verified:
    if credentials.webhook_secret is None:
        raise PermissionDenied("This GitHub source has no webhook secret, so it cannot receive webhooks.")
    verify_github_webhook(credentials.webhook_secret.get_secret_value(), headers, body)
    try:
        payload = json.loads(body)
    except ValueError:
        raise UserError("The GitHub webhook body is not JSON.") from None
    kind = _EVENT_TYPES.get((headers.get("x-github-event", ""), payload.get("action")))
    return Verified(kind, payload, headers.get("x-github-delivery", ""))


async def sync(call: Call, options: dict[str, Any]) -> tuple[str, list[Any]]:
    """A repository's Markdown files (under `path`) as knowledge documents."""
    from coherex.knowledge import SourceDocument

    repo, path = options.get("repo"), options.get("path") or ""
    if not repo:
        raise UserError("Syncing a GitHub source needs the repository (owner/name).")
    files = await markdown_files(call, repo, path)
    docs = [SourceDocument(f"github:{repo}/{p}", p, text, {"repo": repo, "path": p}) for p, text in files]
    return f"github:{repo}/{path}", docs


GITHUB = SourceType(
    name="github",
    title="GitHub (token or GitHub App)",
    config_model=GitHubConfig,
    credentials_model=GitHubCredentials,
    test_connection=test_connection,
    revoke=revoke,
    oauth_provider="github",
    rate_per_second=10.0,
    rate_burst=20,  # 5,000 requests/hour per token; secondary limits on bursts
    credentials_from_oauth=lambda b: GitHubCredentials(token=SecretStr(b["access_token"]), from_oauth=True),
)


PROVIDER = Provider(
    "github",
    (
        list_issues,
        read_issue,
        create_issue,
        comment_issue,
        add_labels,
        list_pull_requests,
        read_pull_request_diff,
        list_commits,
    ),
    source_type=GITHUB,
    # an event run gets the webhook's whole payload: its top-level fields fill inputs of the same name
    events=EventHooks(
        tuple(_EVENT_TYPES.values()),
        verify,
        {
            "github.issue_opened": ("action", "issue", "repository", "sender"),
            "github.issue_comment": ("action", "issue", "comment", "repository", "sender"),
            "github.pull_request_opened": ("action", "number", "pull_request", "repository", "sender"),
        },
    ),
    sync=sync,
)
