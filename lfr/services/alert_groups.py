"""Repeat sightings on the tablet: alerts of one subject in one window that follow each other within an
interval are shown as one card (issue 10). A view only: every alert is still stored, decided, audited
and purged on its own, and a group never decides anything.

Alerts are taken in the order they were raised (sequence). An alert joins the latest group of its window
and subject when the gap between its sighting (first to last seen face) and the group's span is at most
the interval; otherwise it starts a new group. So a new alert never moves an earlier one to another
group, and a group is named after its first alert: a tablet told "this alert is in group X" adds it to
X's card. (An earlier alert's track may still grow afterwards; a later page load then shows the grouping
those new times give.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lfr.domain.alert import Alert


def seen_from(alert: Alert) -> datetime:
    return alert.first_seen_at or alert.captured_at


def seen_until(alert: Alert) -> datetime:
    return alert.last_seen_at or alert.captured_at


@dataclass(frozen=True, slots=True)
class AlertGroup:
    alerts: tuple[Alert, ...]  # in sequence order, never empty

    @property
    def id(self) -> str:
        return self.alerts[0].id

    @property
    def first_seen_at(self) -> datetime:
        return min(seen_from(a) for a in self.alerts)

    @property
    def last_seen_at(self) -> datetime:
        return max(seen_until(a) for a in self.alerts)

    @property
    def best(self) -> Alert:
        """The alert with the highest score (the earliest of equals): its crop is the card's probe."""
        return max(self.alerts, key=lambda a: a.score)  # max keeps the first of equals


def group_alerts(alerts: Iterable[Alert], interval: timedelta) -> list[AlertGroup]:
    """The groups of these alerts, in the order of their first alerts. An interval of zero (or less)
    groups nothing: one group per alert."""
    groups: list[list[Alert]] = []
    latest: dict[tuple[str, str], tuple[int, datetime, datetime]] = {}  # group index and its span
    for alert in sorted(alerts, key=lambda a: a.sequence):
        key = (alert.window_id, alert.subject_id)
        start, end = seen_from(alert), seen_until(alert)
        found = latest.get(key)
        if interval > timedelta(0) and found is not None:
            index, group_start, group_end = found
            if max(start - group_end, group_start - end) <= interval:
                groups[index].append(alert)
                latest[key] = (index, min(start, group_start), max(end, group_end))
                continue
        latest[key] = (len(groups), start, end)
        groups.append([alert])
    return [AlertGroup(tuple(members)) for members in groups]


def group_of(alert: Alert, earlier: Iterable[Alert], interval: timedelta) -> AlertGroup:
    """The group `alert` belongs to, given the alerts of its window and subject raised before it (any
    others, and later ones, are ignored)."""
    same = [
        a
        for a in earlier
        if a.window_id == alert.window_id
        and a.subject_id == alert.subject_id
        and a.sequence < alert.sequence
        and a.id != alert.id
    ]
    return next(g for g in group_alerts([*same, alert], interval) if g.alerts[-1].id == alert.id)
