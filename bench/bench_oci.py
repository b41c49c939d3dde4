"""Push and pull time of a typical agent against a local registry (issue 22).

A real docker-registry (htpasswd auth, filesystem storage) on 127.0.0.1, a real Postgres; the
agent is the email-digest template (3 tools, 2 data sources). Each round saves a changed version
(new blobs), pushes it (`service.push`: secret scan, blob uploads, manifest) and pulls its digest
into a second team (`service.pull`: manifest, config, spec, signature lookup, validation, save).
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentiles, record  # noqa: E402

ROUNDS = 30
WARMUP = 3


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="coherex-bench-oci-"))
    from coherex.testing.fake_saas import FakeSaaS
    from coherex.testing.postgres import TestPostgres
    from coherex.testing.registry import LocalRegistry

    with LocalRegistry(tmp / "registry", users={"bench": "bench-pw"}) as reg, FakeSaaS() as saas:
        env = {
            **saas.env(),
            "COHEREX_DATA_DIR": str(tmp / "data"),
            "COHEREX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "COHEREX_EGRESS_ALLOW": f"{saas.env()['COHEREX_EGRESS_ALLOW']},{reg.host}",
        }
        os.environ.update(env)
        from coherex.distribution import service
        from coherex.integrations.oauth import OAuthToken
        from coherex.integrations.service import add_source
        from coherex.services.agents import apply_spec
        from coherex.store.db import Database, Identity

        server = TestPostgres.start()
        urls = server.create_database()
        try:
            async with Database(urls.app, max_size=4) as db:
                teams = []
                for slug in ("pusher", "puller"):
                    async with db.session(Identity.system()) as s:
                        user = await s.users.create(f"{slug}@example.com")
                    async with db.session(Identity.user(user.id)) as s:
                        team = await s.teams.create(slug, slug)
                    who = Identity.user(user.id)
                    await add_source(
                        db,
                        who,
                        team.id,
                        "gmail",
                        "work-mail",
                        credentials=OAuthToken(
                            access_token=saas.gmail_token, refresh_token=saas.gmail_refresh_token
                        ),
                    )
                    await add_source(
                        db, who, team.id, "slack", "team-slack", credentials={"bot_token": saas.slack_token}
                    )
                    await service.login(db, who, team.id, reg.host, "bench", "bench-pw")
                    teams.append((who, team.id))
                (pusher, team_a), (puller, team_b) = teams
                template = (
                    Path(__file__).resolve().parents[1] / "templates" / "email-digest.yaml"
                ).read_text()
                push_ms, pull_ms = [], []
                for i in range(ROUNDS + WARMUP):
                    async with db.session(pusher) as s:
                        await apply_spec(s, team_a, template.replace("busy team.", f"busy team (round {i})."))
                    t = time.perf_counter()
                    pushed = await service.push(
                        db, pusher, team_a, "email-digest", f"{reg.host}/bench/email-digest"
                    )
                    t_push = (time.perf_counter() - t) * 1000
                    t = time.perf_counter()
                    pulled = await service.pull(
                        db, puller, team_b, f"{reg.host}/bench/email-digest@{pushed.digest}"
                    )
                    t_pull = (time.perf_counter() - t) * 1000
                    assert pulled.created_version
                    if i >= WARMUP:
                        push_ms.append(t_push)
                        pull_ms.append(t_pull)
                size = pushed.size
        finally:
            server.drop_database(urls)
            server.stop()
    record(
        "oci",
        {
            "agent": "email-digest template",
            "artifact_bytes": size,
            "registry": "docker-registry 2.8.2",
            "push": percentiles(push_ms),
            "pull": percentiles(pull_ms),
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
