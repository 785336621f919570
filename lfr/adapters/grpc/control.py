"""Control-plane servicers: Deployments, Watchlists, Alerts, Audit. Thin: protobuf -> service -> protobuf.

Services are synchronous and talk to the store, so each call runs in a worker thread and the event loop
(which also carries the camera streams) never waits on the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from itertools import islice
from typing import Any, TypeAlias

from grpc import aio

from lfr.adapters.grpc import convert
from lfr.adapters.grpc.interceptors import current_principal
from lfr.domain.audit import AuditRecord
from lfr.domain.clock import Clock
from lfr.domain.errors import InvalidInput
from lfr.domain.principal import Principal
from lfr.domain.watchlist import Watchlist
from lfr.services.alert_feed import AlertFeed
from lfr.services.alerts import AlertService
from lfr.services.audit import AuditService
from lfr.services.deployments import DeploymentService
from lfr.services.equity import EvaluationService
from lfr.services.watchlists import WatchlistService
from lfr.v1 import control_pb2 as pb
from lfr.v1 import control_pb2_grpc

Context: TypeAlias = aio.ServicerContext[Any, Any]
PAGE = 100
MAX_PAGE = 1000


class DeploymentsServicer(control_pb2_grpc.DeploymentsServicer):
    def __init__(
        self,
        deployments: DeploymentService,
        clock: Clock,
        evaluations: EvaluationService | None = None,
        equity_gate: str = "",
    ) -> None:
        self._deployments = deployments
        self._clock = clock
        self._evaluations = evaluations
        self._equity_gate = equity_gate

    async def CreateWindow(self, request: pb.CreateWindowRequest, context: Context) -> pb.Window:
        spec = convert.window_spec(request)
        created = await asyncio.to_thread(self._deployments.create, spec, current_principal())
        return convert.window(created, self._clock.now())

    async def AuthoriseWindow(self, request: pb.WindowRef, context: Context) -> pb.Window:
        actor = current_principal()
        authorised = await asyncio.to_thread(self._deployments.authorise, request.window_id, actor)
        reply = convert.window(authorised, self._clock.now())
        if self._evaluations is not None:
            # The supervisor sees what the equity gate found, also when it only warned.
            verdict = await asyncio.to_thread(self._evaluations.verdict, authorised.id, actor)
            reply.equity_verdict.CopyFrom(convert.equity_verdict(verdict, self._equity_gate))
        return reply

    async def CloseWindow(self, request: pb.CloseWindowRequest, context: Context) -> pb.Window:
        if not request.reason.strip():
            raise InvalidInput("closing a window needs a reason")
        closed = await asyncio.to_thread(
            self._deployments.close, request.window_id, current_principal(), request.reason.strip()
        )
        return convert.window(closed, self._clock.now())

    async def GetWindow(self, request: pb.WindowRef, context: Context) -> pb.Window:
        found = await asyncio.to_thread(self._deployments.get, request.window_id, current_principal())
        return convert.window(found, self._clock.now())

    async def ListWindows(self, request: pb.ListWindowsRequest, context: Context) -> pb.ListWindowsResponse:
        windows = await asyncio.to_thread(self._deployments.list_windows, current_principal())
        now = self._clock.now()
        return pb.ListWindowsResponse(windows=[convert.window(w, now) for w in windows])


class WatchlistsServicer(control_pb2_grpc.WatchlistsServicer):
    def __init__(self, watchlists: WatchlistService, on_destroyed: Callable[[str], None]) -> None:
        self._watchlists = watchlists
        self._on_destroyed = on_destroyed

    async def CreateWatchlist(self, request: pb.CreateWatchlistRequest, context: Context) -> pb.Watchlist:
        created = await asyncio.to_thread(
            self._watchlists.create, request.name, request.model_id, request.dimension, current_principal()
        )
        return convert.watchlist(created, 0)

    async def AddSubject(self, request: pb.AddSubjectRequest, context: Context) -> pb.Subject:
        embeddings = convert.subject_embeddings(request)
        added = await asyncio.to_thread(
            self._watchlists.add_subject,
            request.watchlist_id,
            convert.subject_spec(request),
            embeddings,
            request.model_id,
            current_principal(),
        )
        return convert.subject(added)

    async def RemoveSubject(self, request: pb.SubjectRef, context: Context) -> pb.Empty:
        await asyncio.to_thread(
            self._watchlists.remove_subject, request.watchlist_id, request.subject_id, current_principal()
        )
        return pb.Empty()

    async def SealWatchlist(self, request: pb.WatchlistRef, context: Context) -> pb.Watchlist:
        sealed = await asyncio.to_thread(self._watchlists.seal, request.watchlist_id, current_principal())
        return await self._described(sealed)

    async def DestroyWatchlist(self, request: pb.DestroyWatchlistRequest, context: Context) -> pb.Watchlist:
        destroyed = await asyncio.to_thread(
            self._watchlists.destroy, request.watchlist_id, current_principal(), request.reason
        )
        await asyncio.to_thread(self._on_destroyed, destroyed.id)  # scrubs the WAL: off the event loop
        return convert.watchlist(destroyed, 0)

    async def GetWatchlist(self, request: pb.WatchlistRef, context: Context) -> pb.Watchlist:
        current_principal()
        found = await asyncio.to_thread(self._watchlists.get, request.watchlist_id)
        return await self._described(found)

    async def ListWatchlists(self, request: pb.Empty, context: Context) -> pb.ListWatchlistsResponse:
        current_principal()
        found = await asyncio.to_thread(self._watchlists.list_watchlists)
        return pb.ListWatchlistsResponse(watchlists=[await self._described(w) for w in found])

    async def _described(self, watchlist: Watchlist) -> pb.Watchlist:
        subjects = await asyncio.to_thread(self._watchlists.subjects, watchlist.id)
        return convert.watchlist(watchlist, len(subjects))


class AlertsServicer(control_pb2_grpc.AlertsServicer):
    def __init__(self, alerts: AlertService, deployments: DeploymentService, feed: AlertFeed) -> None:
        self._alerts = alerts
        self._deployments = deployments
        self._feed = feed

    async def Subscribe(self, request: pb.SubscribeRequest, context: Context) -> AsyncIterator[pb.Alert]:
        """The alert feed as a stream: what the caller may see after `after_sequence`, then every new
        alert and every change (decisions made anywhere, on any replica) as it happens. A client that
        resumes with `after_revision` (the last `feed_revision` it received) misses nothing."""
        actor = current_principal()
        window_id = request.window_id or None
        if window_id is not None:
            await asyncio.to_thread(self._deployments.get, window_id, actor)  # NotFound / PermissionDenied
        events = self._feed.follow(
            actor,
            window_id=window_id,
            after_sequence=request.after_sequence,
            after_revision=request.after_revision or None,
            channel="grpc",
        )
        try:
            async for event in events:
                if event.alert is not None:
                    yield convert.alert(event.alert, feed_revision=event.cursor)
        finally:
            await events.aclose()

    async def ListAlerts(self, request: pb.ListAlertsRequest, context: Context) -> pb.ListAlertsResponse:
        limit = min(request.limit or PAGE, MAX_PAGE)
        found = await asyncio.to_thread(
            self._alerts.list_alerts,
            current_principal(),
            request.window_id or None,
            request.after_sequence,
            limit,
        )
        return pb.ListAlertsResponse(alerts=[convert.alert(a) for a in found])

    async def GetAlert(self, request: pb.AlertRef, context: Context) -> pb.Alert:
        found = await asyncio.to_thread(self._alerts.consult, request.alert_id, current_principal(), "grpc")
        return convert.alert(found, with_crop=True)

    async def Adjudicate(self, request: pb.AdjudicateRequest, context: Context) -> pb.Alert:
        decided = await asyncio.to_thread(
            self._alerts.adjudicate,
            request.alert_id,
            convert.adjudication(request.outcome),
            current_principal(),
            request.notes,
            request.expected_version or None,
        )
        return convert.alert(decided)

    async def Verify(self, request: pb.VerifyRequest, context: Context) -> pb.Alert:
        verified = await asyncio.to_thread(
            self._alerts.verify,
            request.alert_id,
            request.agree,
            current_principal(),
            request.expected_version or None,
        )
        return convert.alert(verified)


class EvaluationsServicer(control_pb2_grpc.EvaluationsServicer):
    def __init__(self, evaluations: EvaluationService, equity_gate: str) -> None:
        self._evaluations = evaluations
        self._equity_gate = equity_gate

    async def RecordEvaluation(
        self, request: pb.RecordEvaluationRequest, context: Context
    ) -> pb.EvaluationRecord:
        recorded = await asyncio.to_thread(
            self._evaluations.record, request.report_json, request.report_sha256, current_principal()
        )
        return convert.evaluation_record(recorded, self._evaluations.watchlist_sizes(recorded))

    async def GetEquityVerdict(self, request: pb.WindowRef, context: Context) -> pb.EquityVerdict:
        verdict = await asyncio.to_thread(self._evaluations.verdict, request.window_id, current_principal())
        return convert.equity_verdict(verdict, self._equity_gate)


class AuditServicer(control_pb2_grpc.AuditServicer):
    def __init__(self, audit: AuditService) -> None:
        self._audit = audit

    async def Export(self, request: pb.ExportRequest, context: Context) -> AsyncIterator[pb.AuditRecord]:
        actor = current_principal()
        next_seq = max(1, request.from_seq)
        while True:
            page = await asyncio.to_thread(self._page, actor, next_seq)
            for record in page:
                yield convert.audit_record(record)
                next_seq = record.seq + 1
            if len(page) < MAX_PAGE:
                return

    def _page(self, actor: Principal, from_seq: int) -> list[AuditRecord]:
        # Opened and closed in one thread: a unit of work may hold a thread-bound lock or connection.
        records: Generator[AuditRecord, None, None] = self._audit.export(actor, from_seq)  # type: ignore[assignment]
        try:
            return list(islice(records, MAX_PAGE))
        finally:
            records.close()

    async def Verify(self, request: pb.Empty, context: Context) -> pb.VerifyResponse:
        result = await asyncio.to_thread(self._audit.verify, current_principal())
        return convert.verification(result)

    async def ExportCheckpoints(
        self, request: pb.ExportRequest, context: Context
    ) -> AsyncIterator[pb.AuditCheckpoint]:
        checkpoints = await asyncio.to_thread(
            self._audit.export_checkpoints, current_principal(), max(1, request.from_seq)
        )
        for checkpoint in checkpoints:
            yield convert.audit_checkpoint(checkpoint)
