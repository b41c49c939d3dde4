"""Repositories: the only place with SQL. One `Session` = one transaction under one identity.

async with db.session(Identity.user(uid)) as s:
    agent = await s.agents.get_by_name(team_id, "inbox-digest")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from coherex.store.repos.agents import AgentRepo
from coherex.store.repos.approvals import ApprovalRepo
from coherex.store.repos.audit import AuditRepo
from coherex.store.repos.executions import ExecutionRepo
from coherex.store.repos.invitations import InvitationRepo, QuotaRepo, SharingRepo
from coherex.store.repos.keys import ApiKeyRepo
from coherex.store.repos.knowledge import KnowledgeRepo
from coherex.store.repos.rate_limits import RateLimitRepo
from coherex.store.repos.sources import DataSourceRepo
from coherex.store.repos.syncs import SyncRepo
from coherex.store.repos.teams import MemberRepo, TeamRepo, UserRepo
from coherex.store.repos.threads import ThreadRepo
from coherex.store.repos.triggers import TriggerRepo
from coherex.store.repos.uploads import UploadRepo

if TYPE_CHECKING:
    from coherex.store.db import Identity


class Session:
    def __init__(self, conn: psycopg.AsyncConnection, identity: Identity):
        self.conn = conn
        self.identity = identity
        self.users = UserRepo(conn, identity)
        self.teams = TeamRepo(conn, identity)
        self.members = MemberRepo(conn, identity)
        self.agents = AgentRepo(conn, identity)
        self.sources = DataSourceRepo(conn, identity)
        self.executions = ExecutionRepo(conn, identity)
        self.knowledge = KnowledgeRepo(conn, identity)
        self.api_keys = ApiKeyRepo(conn, identity)
        self.rate_limits = RateLimitRepo(conn, identity)
        self.audit = AuditRepo(conn, identity)
        self.approvals = ApprovalRepo(conn, identity)
        self.triggers = TriggerRepo(conn, identity)
        self.uploads = UploadRepo(conn, identity)
        self.syncs = SyncRepo(conn, identity)
        self.threads = ThreadRepo(conn, identity)
        self.invitations, self.quotas, self.sharing = (
            InvitationRepo(conn, identity),
            QuotaRepo(conn, identity),
            SharingRepo(conn, identity),
        )


__all__ = ["Session"]
