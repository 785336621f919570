from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from lfr.domain.audit import AuditAction, AuditRecord, ChainVerification, link_fault, verify_chain
from lfr.domain.checkpoint import Checkpoint, sign_checkpoint, verify_anchored
from lfr.domain.clock import Clock, SystemClock
from lfr.domain.errors import InvalidInput, StoreUnavailable
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

    def checkpoint(self, force: bool = False) -> Checkpoint | None:
        """Signs the chain head, anchors the signature outside the database first, then keeps a copy in
        the store. Skipped when the head has not moved since this process's last checkpoint (unless
        `force`), or when there is no key or no record.

        Refuses (StoreUnavailable) to sign a chain that no longer leads from its last checkpoint: a
        history rewritten in the database must not be vouched for afresh."""
        if self._signer is None:
            return None
        with self._lock:
            last = self._last_checkpoint()
            with self._uow() as uow:
                head = uow.audit.head()
                if head is None:
                    return None
                if not force and last is not None and (last.seq, last.chain_hash) == (head.seq, head.hash):
                    return last
                if last is not None:
                    self._require_continuation(last, uow.audit.records(last.seq), head.seq)
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
        try:
            self.checkpoint(force=True)
        except StoreUnavailable as exc:
            # A changed chain is not sealed; the export still goes out, with the checkpoints that show it.
            logger.error("exporting without a fresh seal: %s", exc)
        with self._uow() as uow:
            stored = uow.audit.checkpoints(from_seq)
        anchored = [c for c in self._anchored() if c.seq >= from_seq]
        return sorted(set(stored) | set(anchored), key=lambda c: (c.seq, c.at, c.key_id))

    def verify(self, actor: Principal) -> ChainVerification:
        actor.require(Role.AUDITOR, Role.ADMIN, Role.SUPERVISOR)
        return self.verify_unattended()

    def verify_unattended(self) -> ChainVerification:
        """The same check, by the matcher itself on a timer (its result is a metric, not a disclosure)."""
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

    def _last_checkpoint(self) -> Checkpoint | None:
        if self._last is None and self._anchor is not None and self._signer is not None:
            # After a restart: the newest this replica anchored, so the first new checkpoint is checked
            # against it too.
            own = [c for c in self._anchored() if c.key_id == self._signer.key_id]
            self._last = max(own, key=lambda c: (c.seq, c.at), default=None)
        return self._last

    @staticmethod
    def _require_continuation(last: Checkpoint, records: Iterator[AuditRecord], head_seq: int) -> None:
        expected, prev_hash = last.seq, ""
        for record in records:
            if record.seq > head_seq:
                break  # appended since the head was read
            if record.seq == last.seq:
                if record.hash != last.chain_hash:
                    break
                expected, prev_hash = record.seq + 1, record.hash
                continue
            if prev_hash == "" or link_fault(record, expected, prev_hash, 0) is not None:
                break
            expected, prev_hash = record.seq + 1, record.hash
        if expected - 1 != head_seq or prev_hash == "":
            raise StoreUnavailable(
                f"the audit chain no longer leads from the last checkpoint (record {last.seq}, "
                f"{last.describe()}): it was changed in the database; not signing it. Run `lfr audit verify`"
            )

    def _anchored(self) -> list[Checkpoint]:
        return self._anchor.checkpoints() if self._anchor is not None else []
