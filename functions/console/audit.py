"""The console's one call site for audit records: h11's ``AuditRepository(db).record(...)``
(functions/adapters/audit_repo.py, table audit_log of migration 0013). Details never carry secrets (tokens
are never passed here; the repository scrubs secret-looking keys too). Feedback, suppression reviews and
uploads are audited by the services that do them, in their own transactions."""

from __future__ import annotations

from typing import Any

from ..adapters.audit_repo import AuditRepository
from ..adapters.console_repo import ConsoleRepository


def record(
    repo: ConsoleRepository,
    *,
    actor: str,
    actor_role: str | None,
    action: str,
    park_id: int | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    via: str = "console",
) -> None:
    AuditRepository(repo.db).record(
        actor=actor,
        actor_role=actor_role,
        via=via,
        action=action,
        park_id=park_id,
        target=target,
        details=details or {},
    )
