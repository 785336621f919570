from __future__ import annotations

from collections.abc import Iterator

from lfr.domain.audit import AuditAction, AuditRecord, ChainVerification, verify_chain
from lfr.domain.ports import UnitOfWorkFactory
from lfr.domain.principal import Principal, Role


class AuditService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def export(self, actor: Principal, from_seq: int = 1) -> Iterator[AuditRecord]:
        actor.require(Role.AUDITOR, Role.ADMIN, Role.SUPERVISOR)
        with self._uow() as uow:
            yield from uow.audit.records(from_seq)

    def latest_about(
        self, actor: Principal, subject_id: str, action: AuditAction, look_back: int = 200
    ) -> AuditRecord | None:
        """The newest record of `action` about `subject_id` among the last `look_back` records (e.g. what
        the authorisation policy said when a window was authorised a moment ago)."""
        actor.require(Role.AUDITOR, Role.ADMIN, Role.SUPERVISOR)
        with self._uow() as uow:
            head = uow.audit.head()
            if head is None:
                return None
            found = None
            for record in uow.audit.records(max(1, head.seq - look_back + 1)):
                if record.action == action and record.subject_id == subject_id:
                    found = record
            return found

    def verify(self, actor: Principal) -> ChainVerification:
        actor.require(Role.AUDITOR, Role.ADMIN, Role.SUPERVISOR)
        return self.verify_unattended()

    def verify_unattended(self) -> ChainVerification:
        """The same check, by the matcher itself on a timer (its result is a metric, not a disclosure)."""
        with self._uow() as uow:
            head = uow.audit.head()
            return verify_chain(uow.audit.records(1), head)
