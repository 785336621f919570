from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from lfr.domain.audit import AuditRecord, ChainVerification, verify_chain
from lfr.domain.checkpoint import Checkpoint, sign_checkpoint, verify_anchored
from lfr.domain.clock import Clock, SystemClock
from lfr.domain.errors import InvalidInput
from lfr.domain.ports import CheckpointAnchor, CheckpointKeyring, CheckpointSigner, UnitOfWorkFactory
from lfr.domain.principal import Principal, Role

logger = logging.getLogger(__name__)


class AuditService:
    """Export and verification of the audit chain, and the signed checkpoints that anchor it.

    Without a keyring the chain is checked by its hashes alone (which a database administrator can
    recompute); with one, against every checkpoint in the store and the anchor as well.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        signer: CheckpointSigner | None = None,
        keyring: CheckpointKeyring | None = None,
        anchor: CheckpointAnchor | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._uow = uow
        self._signer = signer
        self._keyring = keyring
        self._anchor = anchor
        self._clock = clock or SystemClock()
        self._last: Checkpoint | None = None
        self._lock = threading.Lock()  # one checkpoint at a time per process

    @property
    def signs(self) -> bool:
        return self._signer is not None

    def export(self, actor: Principal, from_seq: int = 1) -> Iterator[AuditRecord]:
        actor.require(Role.AUDITOR, Role.ADMIN, Role.SUPERVISOR)
        with self._uow() as uow:
            yield from uow.audit.records(from_seq)

    def checkpoint(self, force: bool = False) -> Checkpoint | None:
        """Signs the chain head, anchors the signature outside the database first, then keeps a copy in
        the store. Skipped when the head has not moved since this process's last checkpoint (unless
        `force`), or when there is no key or no record."""
        if self._signer is None:
            return None
        with self._lock:
            with self._uow() as uow:
                head = uow.audit.head()
            if head is None:
                return None
            last = self._last
            if not force and last is not None and (last.seq, last.chain_hash) == (head.seq, head.hash):
                return last
            checkpoint = sign_checkpoint(self._signer, head, self._clock.now())
            if self._anchor is not None:
                self._anchor.append(checkpoint)
            with self._uow() as uow:
                uow.audit.add_checkpoint(checkpoint)
                uow.commit()
            self._last = checkpoint
            return checkpoint

    def export_checkpoints(self, actor: Principal, from_seq: int = 1) -> list[Checkpoint]:
        """A fresh checkpoint of the head (the export's seal), then every signed checkpoint for records
        at or after `from_seq`, from the store and the anchor, oldest first."""
        actor.require(Role.AUDITOR, Role.ADMIN, Role.SUPERVISOR)
        self.checkpoint(force=True)
        with self._uow() as uow:
            stored = uow.audit.checkpoints(from_seq)
        anchored = [c for c in self._anchored() if c.seq >= from_seq]
        return sorted(set(stored) | set(anchored), key=lambda c: (c.seq, c.at, c.key_id))

    def verify(self, actor: Principal) -> ChainVerification:
        actor.require(Role.AUDITOR, Role.ADMIN, Role.SUPERVISOR)
        try:
            anchored = self._anchored()
        except InvalidInput as exc:
            return ChainVerification(False, 0, None, str(exc))
        with self._uow() as uow:
            head = uow.audit.head()
            if self._keyring is None:
                return verify_chain(uow.audit.records(1), head)
            checkpoints = [*uow.audit.checkpoints(1), *anchored]
            return verify_anchored(uow.audit.records(1), checkpoints, self._keyring, head)

    def _anchored(self) -> list[Checkpoint]:
        return self._anchor.checkpoints() if self._anchor is not None else []
