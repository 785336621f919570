"""The live alert feed as server-sent events: a thin translation of the alert feed service.

Event ids are feed cursors (change revisions): a reconnecting EventSource sends the last one as
Last-Event-ID and receives every change since, decisions made on other tablets, over gRPC or on other
replicas included. The first connection replays by sequence (`after`) and carries no ids until it is
live. An officer only ever receives alerts of windows they may see (the feed checks).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi.concurrency import run_in_threadpool

from lfr.adapters.tablet.context import TabletContext
from lfr.adapters.tablet.sessions import Session
from lfr.domain.errors import NotFound, Throttled, Unauthenticated
from lfr.domain.principal import Principal
from lfr.services.alert_feed import FeedClosed, FeedEventKind

RETRY_MS = 1000  # how soon EventSource reconnects after a dropped connection
KEEPALIVE_SECONDS = 15.0  # a comment line now and then stops proxies from closing an idle stream
TABLET_CHANNEL = "tablet"


def _event(kind: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n"


async def alert_events(
    ctx: TabletContext,
    actor: Principal,
    session: Session,
    after_sequence: int,
    after_revision: int | None,
    deadline: datetime,
) -> AsyncIterator[str]:
    hello = {
        "server_now": ctx.clock.now().isoformat(),
        "resumed_after": after_sequence,
        "resumed_after_revision": after_revision,
    }
    yield f"retry: {RETRY_MS}\n" + _event("hello", json.dumps(hello))
    events = ctx.feed.follow(
        actor,
        after_sequence=after_sequence,
        after_revision=after_revision,
        session_generation=session.generation,
        deadline=deadline,
        idle_seconds=KEEPALIVE_SECONDS,
        channel=TABLET_CHANNEL,
    )
    try:
        async for event in events:
            if event.kind is FeedEventKind.IDLE:
                yield ": keep-alive\n\n"
            elif event.kind is FeedEventKind.CLOSED:
                yield _event("window", json.dumps({"window_id": event.window_id, "state": "closed"}))
            elif event.alert is not None:
                card = ctx.cards.cached(event.alert)
                if card is None:
                    try:
                        card = await run_in_threadpool(ctx.cards.card, event.alert)
                    except NotFound:
                        continue  # purged or its window removed since
                kind = "alert" if event.kind is FeedEventKind.RAISED else "update"
                yield _event(kind, card, event.cursor)
    except Unauthenticated as exc:
        yield _event("expired", json.dumps({"detail": str(exc)}))
    except (FeedClosed, Throttled):
        return  # the server is stopping, or this tablet stopped reading: it reconnects and catches up
    finally:
        await events.aclose()
