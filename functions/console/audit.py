"""The console's one call site for audit records: h11's ``AuditRepository(db).record(...)``
(functions/adapters/audit_repo.py, table audit_log of migration 0013). Details never carry secrets (tokens
are never passed here; the repository scrubs secret-looking keys too). Feedback, suppression reviews and
uploads are audited by the services that do them, in their own transactions."""

from __future__ import annotations

from typing import Any

from ..adapters.audit_repo import AuditRepository
from ..adapters.console_repo import ConsoleRepository


def record(repo: ConsoleRepository, *, via: str = "console", **fields: Any) -> None:
    """One audit row (the keywords of AuditRepository.record_in: actor, actor_role, action, park_id, target,
    details), through the console unless ``via`` says otherwise."""
    AuditRepository(repo.db).record(via=via, **fields)
