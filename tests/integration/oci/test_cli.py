"""`coherex registry login | inspect | run REF | pull | push --sign` as a person uses them, in
another installation (its own data dir and vault key) than the team that pushed."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

from coherex.distribution import service
from coherex.services.agents import apply_spec
from coherex.store.db import Identity
from coherex.testing.fake_openai import FakeOpenAI, Text

from .conftest import PASSWORD, TEMPLATES, USER


def coherex(env, *args, input=None, timeout=90):
    return subprocess.run(
        [sys.executable, "-m", "coherex", *args],
        env=env,
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )


async def test_pull_and_run_in_another_installation(db, two_teams, oci_env, registry, tmp_path):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        saved = await apply_spec(s, alpha.team_id, (TEMPLATES / "csv-analysis.yaml").read_text())
    await service.login(db, alpha.identity, alpha.team_id, registry.host, USER, PASSWORD)
    pushed = await service.push(
        db, alpha.identity, alpha.team_id, "csv-analysis", f"{registry.host}/acme/csv-cli"
    )
    ref = pushed.ref

    other = {
        **oci_env,
        "COHEREX_DATA_DIR": str(tmp_path / "other-install"),
        "COHEREX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    res = coherex(
        other, "registry", "login", registry.host, "-u", USER, "--password-stdin", input=PASSWORD + "\n"
    )
    assert res.returncode == 0, res.stderr

    res = coherex(other, "inspect", ref)
    assert res.returncode == 0, res.stderr
    assert pushed.digest in res.stdout and "unsigned" in res.stdout and "python" in res.stdout

    with FakeOpenAI() as llm:
        llm.script([Text("The data set has 3 rows.")])
        env = {**other, "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": llm.api_key}
        res = coherex(env, "run", ref, "--json")
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)
    assert (
        run["execution"]["status"] == "completed"
        and run["execution"]["output"]["text"] == "The data set has 3 rows."
    )

    async with db.session(Identity.system()) as s, s.conn.cursor() as cur:
        await cur.execute(
            "select v.spec, v.source_digest, t.slug from public.agent_versions v join public.teams t on "
            "t.id = v.team_id where v.source_digest is not null"
        )
        rows = await cur.fetchall()
    assert rows == [(saved.version.spec, pushed.digest, "default")]  # the CLI's own team, the same spec

    res = coherex(other, "pull", ref)
    assert res.returncode == 0 and "was pulled before" in res.stdout and "nothing changed" in res.stdout
    res = coherex(other, "pull", f"{registry.host}/acme/csv-cli:9")
    assert res.returncode == 1 and "has no tag '9'" in res.stderr and "Traceback" not in res.stderr

    # sign in this installation, trust the key, require signatures: the signed push pulls
    assert coherex(other, "registry", "keygen").returncode == 0
    res = coherex(other, "push", "csv-analysis:1", f"{registry.host}/acme/csv-signed", "--sign")
    assert res.returncode == 0, res.stderr
    assert "signed" in res.stdout
    pub = tmp_path / "other-install" / "signing.pub"
    assert coherex(other, "registry", "trust", "me", str(pub)).returncode == 0
    assert coherex(other, "registry", "require-signature", "on").returncode == 0
    res = coherex(other, "pull", f"{registry.host}/acme/csv-signed:1")
    assert res.returncode == 0 and "verified (key me)" in res.stdout, res.stderr
