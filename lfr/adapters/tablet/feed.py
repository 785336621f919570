"""The live alert feed as server-sent events.

The broadcaster only says "something new"; what is sent always comes from the store, read after the
last sequence this client has. So a lagging subscriber, a reconnecting tablet (Last-Event-ID) and an
alert raised on another replica (found by the periodic re-read) all take the same catch-up path, and
an officer only ever receives alerts of windows they may see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi.concurrency import run_in_threadpool

from lfr.adapters.alert_bus import Subscription
from lfr.adapters.tablet.context import TabletContext
from lfr.adapters.tablet.schemas import AlertOut
from lfr.domain.alert import Alert
from lfr.domain.errors import NotFound
from lfr.domain.principal import Principal
from lfr.services.alert_views import AlertCard

RETRY_MS = 1000  # how soon EventSource reconnects after a dropped connection
KEEPALIVE_SECONDS = 15.0  # a comment line now and then stops proxies from closing an idle stream
CATCH_UP_BATCH = 200


def _event(kind: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n"


async def alert_events(
    ctx: TabletContext, actor: Principal, after: int, deadline: datetime
) -> AsyncIterator[str]:
    async with ctx.new_alerts.subscribe() as new, ctx.changed_alerts.subscribe() as changed:
        last = after
        hello = {"server_now": ctx.clock.now().isoformat(), "resumed_after": after}
        yield f"retry: {RETRY_MS}\n" + _event("hello", json.dumps(hello))
        waiting_new = asyncio.ensure_future(new.queue.get())
        waiting_changed = asyncio.ensure_future(changed.queue.get())
        quiet = 0.0
        generation = ctx.feeds.generation
        try:
            while True:
                async for chunk, sequence in _catch_up(ctx, actor, last):
                    last = sequence
                    yield chunk
                if ctx.feeds.generation != generation:
                    return  # the server is stopping or asked feeds to reconnect
                if ctx.clock.now() >= deadline:
                    yield _event("expired", json.dumps({"detail": "your session expired"}))
                    return
                done, _ = await asyncio.wait(
                    {waiting_new, waiting_changed},
                    timeout=ctx.poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if waiting_changed in done:
                    for alert in _drain(changed, waiting_changed.result()):
                        if (card := await _visible_card(ctx, alert, actor)) is not None:
                            yield _event("update", AlertOut.of(card).model_dump_json())
                    waiting_changed = asyncio.ensure_future(changed.queue.get())
                if waiting_new in done:
                    _drain(new, waiting_new.result())  # the store read below covers all of them
                    waiting_new = asyncio.ensure_future(new.queue.get())
                quiet = 0.0 if done else quiet + ctx.poll_seconds
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
        finally:
            for task in (waiting_new, waiting_changed):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _catch_up(ctx: TabletContext, actor: Principal, last: int) -> AsyncIterator[tuple[str, int]]:
    while True:
        cards: list[AlertCard] = await run_in_threadpool(
            ctx.services.views.cards, actor, None, last, CATCH_UP_BATCH
        )
        for card in cards:
            last = card.alert.sequence
            yield _event("alert", AlertOut.of(card).model_dump_json(), last), last
        if len(cards) < CATCH_UP_BATCH:
            return


def _drain(subscription: Subscription, first: Alert) -> list[Alert]:
    alerts = [first]
    while not subscription.queue.empty():
        alerts.append(subscription.queue.get_nowait())
    subscription.lagging = False
    return alerts


async def _visible_card(ctx: TabletContext, alert: Alert, actor: Principal) -> AlertCard | None:
    try:
        card: AlertCard = await run_in_threadpool(ctx.services.views.card, alert.id, actor)
    except NotFound:
        return None
    return card
