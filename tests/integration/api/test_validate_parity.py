"""`coherex validate` (the CLI, as a user runs it) and the API (`POST /api/agents/validate`, what
saving uses) accept and refuse exactly the same specs: every template, the specs imported from the
shared peer fixtures (CrewAI, Letta), and malformed or hostile files. The API's team holds the
data sources and collections the files name, so the only difference left is the one that matters:
the tool catalogue each side sees (gmail.read_thread was unknown to the CLI before the registry)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SETTING = "COHEREX_SHARED_FIXTURES"


def shared_fixtures() -> Path | None:
    """Other platforms' files, shared beside the project and never committed: $COHEREX_SHARED_FIXTURES,
    else ../shared/fixtures next to the repository, else this machine's /work/shared/fixtures (a
    clone elsewhere, e.g. under /tmp, has no ../shared). None when there are none."""
    if os.environ.get(SETTING):
        given = Path(os.environ[SETTING])
        if not given.is_dir():  # a wrong setting is a mistake to fix, not a reason to skip quietly
            pytest.fail(f"{SETTING}={given} is not a folder; point it at the shared fixtures or unset it.")
        return given
    return next(
        (p for p in (ROOT.parent / "shared" / "fixtures", Path("/work/shared/fixtures")) if p.is_dir()), None
    )


HEAD = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: parity, description: a test}
    spec:
      instructions: Help with {{topic}}.
      inputs:
        topic: {type: string, default: mail}
    """)


def tools(text: str) -> str:
    return HEAD + "  tools:\n" + textwrap.indent(textwrap.dedent(text), "    ")


HOSTILE = {
    "read-thread.yaml": tools("- use: gmail.read_thread\n  dataSource: work-mail\n  access: read\n"),
    "create-draft.yaml": tools("- use: gmail.create_draft\n  dataSource: work-mail\n  access: write\n"),
    "draft-read-only.yaml": tools("- use: gmail.create_draft\n  dataSource: work-mail\n  access: read\n"),
    "misspelt-tool.yaml": tools("- use: gmail.read_thred\n  dataSource: work-mail\n"),
    "allow-list-on-one-tool.yaml": tools(
        "- use: slack.read_channel\n  dataSource: team-slack\n  tools: [x]\n"
    ),
    "discovering-unknown.yaml": tools("- use: mcp\n  tools: [search]\n"),  # no source named
    "python-with-source.yaml": tools("- use: python\n  dataSource: github\n"),
    "no-collection.yaml": tools("- use: knowledge.search\n"),
    "duplicate.yaml": tools("- use: python\n- use: python\n"),
    "fixed-unknown-arg.yaml": tools(
        "- use: slack.post_message\n  dataSource: team-slack\n  access: write\n  with: {chanel: '#ops'}\n"
    ),
    "placeholder.yaml": HEAD.replace("{{topic}}", "{{missing}}"),
    "wrong-version.yaml": HEAD.replace("coherex/v1", "coherex/v9"),
    "python-object-tag.yaml": HEAD + "  extra: !!python/object/apply:os.system ['true']\n",
    "alias-bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)),
    "duplicate-key.yaml": HEAD + "kind: Agent\n",
    "not-a-mapping.yaml": "- just\n- a list\n",
    "unclosed.yaml": "apiVersion: [unclosed\n",
    "empty.yaml": "",
    "binary.yaml": "\x00\x01\x02 not text",
    "deep.json": "[" * 5000 + "]" * 5000,
    "spec.json": json.dumps(
        {
            "apiVersion": "coherex/v1",
            "kind": "Agent",
            "metadata": {"name": "json-spec"},
            "spec": {"instructions": "x", "tools": [{"use": "gmail.read_thread", "dataSource": "work-mail"}]},
        }
    ),
    "bad-name.yaml": HEAD.replace("name: parity", "name: ../../etc/passwd"),
    "huge.yaml": HEAD + "# " + "x" * (1024 * 1024) + "\n",
}


@pytest.fixture
def api(api_env, monkeypatch):
    """The API with room for one request per file (the suite's default bucket is small)."""
    from coherex.settings import reset_settings_cache
    from coherex.testing.api import ApiServer

    monkeypatch.setenv("COHEREX_API_RATE", "1000")
    monkeypatch.setenv("COHEREX_API_BURST", "1000")
    reset_settings_cache()
    with ApiServer() as server:
        yield server


@pytest.fixture
async def team_with_references(db, two_teams):
    """Alpha holds every data source and collection the files name, with the right types."""
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        for name, kind in (("work-mail", "gmail"), ("team-slack", "slack"), ("github", "github")):
            await s.sources.create(alpha.team_id, name, kind, {})
        for name in ("handbook", "runbooks"):
            await s.knowledge.create_collection(alpha.team_id, name)
    return alpha


def own_corpus(tmp_path: Path) -> list[Path]:
    """Every template and the malformed or hostile files."""
    files = sorted((ROOT / "templates").glob("*.yaml"))
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    for name, text in HOSTILE.items():
        (hostile / name).write_text(text, encoding="utf-8")
        files.append(hostile / name)
    return files


def peer_corpus(peers: Path, tmp_path: Path) -> list[Path]:
    """The specs imported from the shared fixtures (CrewAI, Letta), through the real importers."""
    imported = tmp_path / "imported"
    run = [sys.executable, "-m", "coherex", "import"]
    subprocess.run(
        [*run, "crewai", str(peers / "crewai/latest-ai-development"), "-o", str(imported)],
        check=True,
        capture_output=True,
    )
    for af in sorted((peers / "letta").glob("*.af")):
        subprocess.run(
            [*run, "letta", str(af), "-o", str(imported / af.stem)], check=True, capture_output=True
        )
    return sorted(imported.rglob("*.yaml"))


def _errors(problems: list[dict]) -> list[str]:
    """Errors in the spec as `path: message`; a document that cannot be read as `(document)` (a file
    is read as JSON by its .json name or as bytes, the text sent to the API as YAML text: the
    wording and location of a parse error differ, the verdict does not)."""
    return sorted(
        "(document)" if not p["path"] or p["path"].startswith("line ") else f"{p['path']}: {p['message']}"
        for p in problems
        if p["severity"] == "error"
    )


async def _compare(api, keys, files: list[Path], cli_env) -> dict[str, bool]:
    """Validate `files` with the CLI and the API; assert they agree. → file name: valid?"""
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "coherex", "validate", "--json", *map(str, files)],
        check=False,
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert cli.returncode in (0, 1) and "Traceback" not in cli.stderr, cli.stderr
    by_cli = json.loads(cli.stdout)

    alpha, _ = keys
    verdicts = {}
    async with api.client(alpha) as c:
        for path in files:
            r = await c.post(
                "/api/agents/validate", json={"spec": path.read_bytes().decode("utf-8", "replace")}
            )
            assert r.status_code in (200, 413, 422), (path.name, r.status_code, r.text)
            body = r.json()
            api_ok = r.status_code == 200 and body["valid"]
            errors = _errors(body.get("problems", []))
            mine = by_cli[str(path)]
            cli_errors = _errors(mine["problems"])
            verdicts[path.name] = api_ok
            assert mine["valid"] == api_ok, (path.name, mine["problems"], body)
            if r.status_code == 200:  # the same problems, at the same places in the spec
                assert cli_errors == errors, (path.name, mine["problems"], body["problems"])
    return verdicts


async def test_cli_and_api_accept_and_refuse_the_same_specs(
    api, keys, team_with_references, tmp_path, cli_env
):
    files = own_corpus(tmp_path)
    verdicts = await _compare(api, keys, files, cli_env)
    # the corpus has both kinds, and the ones this issue is about come out right on both sides
    assert verdicts["read-thread.yaml"] and verdicts["create-draft.yaml"] and verdicts["spec.json"]
    assert not verdicts["draft-read-only.yaml"] and not verdicts["misspelt-tool.yaml"]
    assert not verdicts["allow-list-on-one-tool.yaml"] and not verdicts["huge.yaml"]
    assert all(verdicts[p.name] for p in files if p.parent.name == "templates")


async def test_cli_and_api_agree_on_the_specs_imported_from_other_platforms(
    api, keys, team_with_references, tmp_path, cli_env
):
    shared = shared_fixtures()
    if shared is None or not (shared / "peers").is_dir():
        pytest.skip(f"no shared peer fixtures here (set {SETTING} to a folder holding peers/)")
    files = await asyncio.to_thread(peer_corpus, shared / "peers", tmp_path)
    assert len(files) >= 3  # CrewAI's crew and Letta's agents came through the importers
    await _compare(api, keys, files, cli_env)
