"""The fake GitHub REST v3 API (beside coherex/tools/providers/github.py): issues, pull requests,
commits and files in `GitHubState`, GitHub App installation tokens. Served by `FakeSaaS` under /github/."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from coherex.testing.fake_saas import FakeSaaS, Recorded


@dataclass
class GitHubState:
    issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    diffs: dict[tuple[str, int], str] = field(default_factory=dict)
    commits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # repo -> path -> text

    def add_file(self, repo: str, path: str, text: str) -> None:
        self.files.setdefault(repo, {})[path] = text
        self.issues.setdefault(repo, [])

    def add_issue(
        self,
        repo: str,
        title: str,
        body: str = "",
        labels: list[str] = (),
        pull: bool = False,
        diff: str = "",
    ) -> int:
        items = self.issues.setdefault(repo, [])
        number = len(items) + 1
        issue = {
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "user": {"login": "octocat"},
            "labels": [{"name": n} for n in labels],
            "comments": 0,
            "updated_at": "2026-11-20T10:00:00Z",
            "html_url": f"https://github.example/{repo}/issues/{number}",
            "draft": False,
            "head": {"ref": "feature"},
            "base": {"ref": "main"},
        }
        if pull:
            issue["pull_request"] = {"url": "..."}
            self.diffs[(repo, number)] = diff
        items.append(issue)
        return number

    def add_commit(self, repo: str, message: str, author: str = "Ann") -> None:
        sha = hashlib.sha1(f"{repo}{message}{len(self.commits.get(repo, []))}".encode()).hexdigest()
        self.commits.setdefault(repo, []).insert(
            0,
            {
                "sha": sha,
                "commit": {"message": message, "author": {"name": author, "date": "2026-11-20T10:00:00Z"}},
            },
        )


async def _github(saas, request: Request) -> Response:
    rec = await saas._record("github", request)
    path = "/" + request.path_params["path"]
    parts = path.strip("/").split("/")
    if parts[0] == "applications" and request.method == "DELETE":  # revoke an OAuth app token
        body = rec.body if isinstance(rec.body, dict) else {}
        saas.revoke(body.get("access_token", ""))
        return Response(status_code=204)
    if (fault := saas._fault("github")) is not None:
        return fault
    if parts[:2] == ["app", "installations"] and parts[-1] == "access_tokens":
        return _github_app_token(saas, rec, int(parts[2]))
    if not saas._token_ok(rec, "github"):
        return JSONResponse(
            {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
            status_code=401,
        )
    g = saas.github
    if path == "/installation/repositories":
        return JSONResponse(
            {
                "total_count": len(g.issues),
                "repositories": [{"full_name": name} for name in sorted(g.issues)],
            }
        )
    if path == "/user":
        return JSONResponse({"login": "octocat", "id": 1}, headers={"x-oauth-scopes": "repo, read:org"})
    if parts[0] != "repos" or len(parts) < 4:
        return JSONResponse({"message": "Not Found"}, status_code=404)
    repo, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    issues = g.issues.get(repo)
    if issues is None and rest[0] != "commits":
        return JSONResponse({"message": "Not Found"}, status_code=404)
    body = rec.body if isinstance(rec.body, dict) else {}
    if rest == ["issues"] and request.method == "GET":
        state = rec.query.get("state", "open")
        return JSONResponse([i for i in issues if state == "all" or i["state"] == state])
    if rest == ["issues"] and request.method == "POST":
        n = g.add_issue(repo, body["title"], body.get("body", ""), body.get("labels", []))
        return JSONResponse(issues[n - 1], status_code=201)
    if rest[0] in ("issues", "pulls") and len(rest) >= 2:
        n = int(rest[1])
        if n > len(issues):
            return JSONResponse({"message": "Not Found"}, status_code=404)
        issue = issues[n - 1]
        if len(rest) == 2 and rest[0] == "pulls" and "diff" in rec.headers.get("accept", ""):
            return PlainTextResponse(g.diffs.get((repo, n), ""), media_type="text/x-diff")
        if len(rest) == 2:
            return JSONResponse(issue)
        if rest[2] == "comments" and request.method == "GET":
            return JSONResponse(g.comments.get((repo, n), []))
        if rest[2] == "comments":
            c = {
                "id": 1000 + len(g.comments.get((repo, n), [])),
                "body": body["body"],
                "user": {"login": "coherex"},
                "html_url": f"https://github.example/{repo}/issues/{n}#c",
                "created_at": "2026-11-25T10:00:00Z",
            }
            g.comments.setdefault((repo, n), []).append(c)
            issue["comments"] += 1
            return JSONResponse(c, status_code=201)
        if rest[2] == "labels":
            issue["labels"] += [{"name": n_} for n_ in body["labels"] if {"name": n_} not in issue["labels"]]
            return JSONResponse(issue["labels"])
    if rest == ["pulls"]:
        return JSONResponse([i for i in issues if "pull_request" in i])
    if rest == ["commits"]:
        return JSONResponse(g.commits.get(repo, []))
    files = g.files.get(repo, {})
    if rest[:2] == ["git", "trees"]:
        return JSONResponse(
            {
                "sha": "head",
                "truncated": False,
                "tree": [
                    {
                        "path": p,
                        "type": "blob",
                        "sha": hashlib.sha1(t.encode()).hexdigest(),
                        "size": len(t),
                    }
                    for p, t in sorted(files.items())
                ],
            }
        )
    if rest[0] == "contents" and "/".join(rest[1:]) in files:
        path = "/".join(rest[1:])
        return JSONResponse(
            {
                "path": path,
                "type": "file",
                "encoding": "base64",
                "content": base64.b64encode(files[path].encode()).decode(),
            }
        )
    return JSONResponse({"message": "Not Found"}, status_code=404)


def _github_app_token(saas, rec: Recorded, installation_id: int) -> Response:
    """A GitHub App asks for an installation token with a JWT signed by its private key."""
    import jwt

    app = saas.github_app
    assertion = rec.headers.get("authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(assertion, app["public_key"], algorithms=["RS256"]) if app else None
    except jwt.PyJWTError:
        claims = None
    if not claims or claims.get("iss") != app["app_id"] or installation_id != app["installation_id"]:
        return JSONResponse({"message": "A JSON web token could not be decoded"}, status_code=401)
    token = saas.issue_token("github", expires_in=3600)
    return JSONResponse({"token": token, "expires_at": "2099-01-01T00:00:00Z"}, status_code=201)


def routes(saas: FakeSaaS) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await _github(saas, request)

    return [Route("/github/{path:path}", endpoint, methods=["GET", "POST", "PATCH", "DELETE", "PUT"])]


def env(url: str) -> dict[str, str]:
    return {
        "COHEREX_GITHUB_API_URL": f"{url}/github",
        "COHEREX_GITHUB_AUTH_URL": f"{url}/oauth/github/authorize",
        "COHEREX_GITHUB_TOKEN_URL": f"{url}/oauth/github/token",
    }
