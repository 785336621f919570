"""Opening, authorising and closing deployment windows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lfr.domain.audit import AuditAction, AuditEvent
from lfr.domain.clock import Clock
from lfr.domain.errors import Conflict, PermissionDenied
from lfr.domain.limits import MAX_TEXT, require_length
from lfr.domain.ports import UnitOfWork, UnitOfWorkFactory
from lfr.domain.principal import Principal, Role
from lfr.domain.window import DeploymentWindow, WindowSpec, WindowState
from lfr.services.ids import new_id

# Returns warnings to record, or raises to refuse; lets the evaluation gate veto an authorisation.
AuthorisationPolicy = Callable[[DeploymentWindow, UnitOfWork], list[str]]


def no_policy(window: DeploymentWindow, uow: UnitOfWork) -> list[str]:
    return []


class DeploymentService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
        policy: AuthorisationPolicy = no_policy,
        separation_of_duties: bool = False,
    ) -> None:
        """`separation_of_duties`: the supervisor who created a window may not authorise it (the matcher
        turns it on from `policy.separation_of_duties`, on by default)."""
        self._uow = uow
        self._clock = clock
        self._on_change = on_change
        self._policy = policy
        self._separation_of_duties = separation_of_duties

    def create(self, spec: WindowSpec, actor: Principal) -> DeploymentWindow:
        actor.require(Role.SUPERVISOR, Role.ADMIN)
        spec.validate()
        now = self._clock.now()
        with self._uow() as uow:
            watchlist = uow.watchlists.get(spec.watchlist_id)
            watchlist.require_sealed()
            window = DeploymentWindow(
                id=new_id("win"),
                purpose=spec.purpose.strip(),
                legal_basis=spec.legal_basis.strip(),
                location=spec.location.strip(),
                camera_ids=frozenset(c.strip() for c in spec.camera_ids),
                watchlist_id=watchlist.id,
                watchlist_hash=watchlist.content_hash,
                model_id=watchlist.model_id,
                threshold=spec.threshold,
                starts_at=spec.starts_at,
                ends_at=spec.ends_at,
                created_by=actor.name,
                created_at=now,
                assigned_users=spec.assigned_users,
            )
            uow.windows.add(window)
            uow.audit.append(
                AuditEvent(
                    AuditAction.WINDOW_CREATED,
                    actor.name,
                    "window",
                    window.id,
                    now,
                    describe(window),
                )
            )
            uow.commit()
        return window

    def authorise(self, window_id: str, actor: Principal) -> DeploymentWindow:
        actor.require(Role.SUPERVISOR)
        now = self._clock.now()
        with self._uow() as uow:
            window = uow.windows.get(window_id)
            if self._separation_of_duties and window.created_by == actor.name:
                raise PermissionDenied(
                    f"{actor.name} created window {window.id}; another supervisor must authorise it "
                    "(separation of duties)"
                )
            watchlist = uow.watchlists.get(window.watchlist_id)
            watchlist.require_sealed()
            if watchlist.content_hash != window.watchlist_hash:
                raise Conflict(
                    f"watchlist {watchlist.id} no longer has the content this window was created with"
                )
            clashes = [
                other.id
                for other in uow.windows.find([WindowState.AUTHORISED])
                if other.id != window.id and other.overlaps(window) and not other.has_expired(now)
            ]
            if clashes:
                raise Conflict(
                    f"window {window.id} overlaps authorised window(s) {', '.join(clashes)} "
                    "on the same cameras"
                )
            authorised = window.authorise(actor.name, now)
            try:
                warnings = self._policy(authorised, uow)
            except PermissionDenied as refusal:
                _audit_refusal(uow, window, actor, now, str(refusal))
                raise
            uow.windows.update(authorised)
            uow.audit.append(
                AuditEvent(
                    AuditAction.WINDOW_AUTHORISED,
                    actor.name,
                    "window",
                    window.id,
                    now,
                    {
                        "watchlist_hash": window.watchlist_hash,
                        "threshold": window.threshold,
                        "model_id": window.model_id,
                        "policy_warnings": list(warnings),
                    },
                )
            )
            uow.commit()
        self._on_change()
        return authorised

    def close(self, window_id: str, actor: Principal, reason: str) -> DeploymentWindow:
        actor.require(Role.SUPERVISOR, Role.ADMIN)
        require_length("reason", reason, MAX_TEXT)
        now = self._clock.now()
        with self._uow() as uow:
            closed = uow.windows.get(window_id).close(actor.name, now, reason)
            uow.windows.update(closed)
            uow.audit.append(
                AuditEvent(
                    AuditAction.WINDOW_CLOSED,
                    actor.name,
                    "window",
                    window_id,
                    now,
                    {"reason": reason},
                )
            )
            uow.commit()
        self._on_change()
        return closed

    def get(self, window_id: str, actor: Principal) -> DeploymentWindow:
        with self._uow() as uow:
            window = uow.windows.get(window_id)
        require_visible(window, actor)
        return window

    def list_windows(self, actor: Principal) -> list[DeploymentWindow]:
        with self._uow() as uow:
            windows = uow.windows.find()
        return [w for w in windows if can_see(w, actor)]


def _audit_refusal(
    uow: UnitOfWork, window: DeploymentWindow, actor: Principal, now: datetime, reason: str
) -> None:
    """A refused authorisation is an act too: recorded (and committed) before the refusal is raised."""
    uow.rollback()  # nothing the policy staged survives, only the record of the refusal
    uow.audit.append(
        AuditEvent(
            AuditAction.WINDOW_AUTHORISATION_REFUSED,
            actor.name,
            "window",
            window.id,
            now,
            {"reason": reason, "threshold": window.threshold, "model_id": window.model_id},
        )
    )
    uow.commit()


def can_see(window: DeploymentWindow, actor: Principal) -> bool:
    """Officers see only the windows they are assigned to; supervisors, auditors and admins see all."""
    if actor.has_any(Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN):
        return True
    return actor.has_any(Role.OFFICER) and actor.name in window.assigned_users


def require_visible(window: DeploymentWindow, actor: Principal) -> None:
    if not can_see(window, actor):
        raise PermissionDenied(f"{actor.name} is not assigned to window {window.id}")


def describe(window: DeploymentWindow) -> dict[str, object]:
    return {
        "purpose": window.purpose,
        "legal_basis": window.legal_basis,
        "location": window.location,
        "camera_ids": sorted(window.camera_ids),
        "watchlist_id": window.watchlist_id,
        "watchlist_hash": window.watchlist_hash,
        "model_id": window.model_id,
        "threshold": window.threshold,
        "starts_at": window.starts_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "assigned_users": sorted(window.assigned_users),
    }
