"""What the matcher answered recently, so an observation re-sent after a broken stream is not matched twice.

A camera node re-sends the batches that were in flight when its stream broke (losing an alert is worse
than sending twice). Matching such an observation again would raise a second alert for one face, so the
ingest servicer remembers each answer under (camera, node session, seq) for a while and answers a re-send
from here. The node session is a random id the node picks at start: sequence numbers restart with a new
process, so without it a restarted node's seq 1 would be mistaken for the old one's.

This memory is the fast path, and it is per process. A re-send that reaches another replica, or this
one after a restart, is matched again, but the store keeps one alert per (camera, node session, seq)
(`Alert.source_ref`), so IngestService answers it with the stored alert and tells nobody twice.

Only results are kept (outcome, alert id, reject code, reason); never an embedding or a crop. A message's
observations share one future of its answers (one future per observation cost more event-loop time than
the protobuf conversion): a re-send that arrives while the original is still being matched waits for it.
The memory is bounded in size and age, so a node that never reconnects costs nothing for long.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from lfr.domain.observation import ObservationResult

ResendKey = tuple[str, str, int]  # (camera id, node session, seq)
# One message's answers, by its remembered observations' places: an answer, or why none was decided (the
# matcher failed on its batch, so a re-send must be matched afresh).
Answers = list[ObservationResult | BaseException | None]


@dataclass(slots=True)  # not frozen: one is made per observation, and a frozen dataclass is slower to make
class Remembered:
    """One observation's remembered answer: its place in its message's answers, which may still be coming."""

    remembered_at: float
    answers: asyncio.Future[Answers]
    index: int

    def result(self) -> ObservationResult:
        """The answer; only once its message's answers are settled."""
        return _answer(self.answers.result()[self.index])

    async def wait(self) -> ObservationResult:
        # Shielded: a re-send's stream that goes away must not cancel the original message's answers.
        return _answer((await asyncio.shield(self.answers))[self.index])


def _answer(value: ObservationResult | BaseException | None) -> ObservationResult:
    if isinstance(value, BaseException):
        raise value
    if value is None:
        raise RuntimeError("a message's answers were settled without this observation's")
    return value


class RecentResults:
    """Use from the event loop only (the servicer's); not thread-safe."""

    def __init__(
        self, max_entries: int, max_age_seconds: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._entries: OrderedDict[ResendKey, Remembered] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ResendKey) -> Remembered | None:
        """What is remembered for `key`. Does not expire: call `expire()` first, once for a message."""
        return self._entries.get(key)

    def remember(self, key: ResendKey, answers: asyncio.Future[Answers], index: int) -> None:
        """Remembers that `key`'s answer will be `answers`' item `index`. Does not expire: call `expire()`
        once after a message's observations are remembered."""
        self._entries.pop(key, None)  # re-inserted at the young end
        self._entries[key] = Remembered(self._monotonic(), answers, index)

    def forget(self, key: ResendKey, answers: asyncio.Future[Answers]) -> None:
        """Forgets `key`, if its answer is still a place in `answers`."""
        entry = self._entries.get(key)
        if entry is not None and entry.answers is answers:
            del self._entries[key]

    def expire(self) -> None:
        oldest_kept = self._monotonic() - self._max_age
        entries = self._entries
        while entries:
            key, entry = next(iter(entries.items()))
            if len(entries) <= self._max_entries and entry.remembered_at > oldest_kept:
                break
            del entries[key]


class SeqRanges:
    """A set of seqs as sorted, disjoint [first, last] ranges: a node's seqs are nearly contiguous, so a
    long session costs a few ranges. Beyond `max_ranges` the lowest range is forgotten (those seqs then
    count as never seen: a replay of them is matched again, which the store's one-alert-per-source rule
    still keeps from raising a second alert)."""

    def __init__(self, max_ranges: int = 256) -> None:
        self._max = max_ranges
        self._firsts: list[int] = []
        self._lasts: list[int] = []

    def __contains__(self, seq: int) -> bool:
        if not self._lasts or seq > self._lasts[-1]:  # a node's next seq: the usual question
            return False
        i = bisect.bisect_right(self._firsts, seq) - 1
        return i >= 0 and seq <= self._lasts[i]

    def add(self, seq: int) -> None:
        if self._lasts and seq == self._lasts[-1] + 1:  # a node's next seq extends its last range
            self._lasts[-1] = seq
            return
        i = bisect.bisect_right(self._firsts, seq) - 1
        if i >= 0 and seq <= self._lasts[i]:
            return
        joins_left = i >= 0 and self._lasts[i] == seq - 1
        joins_right = i + 1 < len(self._firsts) and self._firsts[i + 1] == seq + 1
        if joins_left and joins_right:
            self._lasts[i] = self._lasts[i + 1]
            del self._firsts[i + 1], self._lasts[i + 1]
        elif joins_left:
            self._lasts[i] = seq
        elif joins_right:
            self._firsts[i + 1] = seq
        else:
            self._firsts.insert(i + 1, seq)
            self._lasts.insert(i + 1, seq)
            if len(self._firsts) > self._max:
                del self._firsts[0], self._lasts[0]


@dataclass(slots=True)
class NodeSession:
    camera: str
    seen: SeqRanges
    resendable: set[int]  # seen, but answered "store it later": the node re-sends these under their seq

    def use(self, seq: int) -> bool:
        """Marks `seq` used; False if it was used before (and is not waiting to be re-sent)."""
        if seq in self.seen and seq not in self.resendable:
            return False
        if self.resendable:
            self.resendable.discard(seq)
        self.seen.add(seq)
        return True


class SessionSeqs:
    """Which seqs each node session has used, so that a seq is not accepted twice: a replay of a recorded
    observation is refused once the memory of recent answers (RecentResults) no longer answers it. A node
    session also belongs to the one camera that used it first. Bounded: the least recently used sessions
    are forgotten beyond `max_sessions`. Use from the event loop only."""

    def __init__(self, max_sessions: int = 10_000, max_resendable: int = 1024) -> None:
        self._max_sessions = max_sessions
        self._max_resendable = max_resendable
        self._sessions: OrderedDict[str, NodeSession] = OrderedDict()

    def owner(self, session: str) -> str | None:
        known = self._sessions.get(session)
        return known.camera if known is not None else None

    def use(self, camera: str, session: str, seq: int) -> bool:
        """Marks `seq` used; False if it was used before (and is not waiting to be re-sent), or if another
        camera's session."""
        known = self.session(camera, session)
        return known is not None and known.use(seq)

    def session(self, camera: str, session: str) -> NodeSession | None:
        """The session's seqs, started for `camera` if new, for the seqs of one message; None if the session
        belongs to another camera."""
        known = self._sessions.get(session)
        if known is not None and known.camera != camera:
            return None
        if known is None:
            known = self._sessions[session] = NodeSession(camera, SeqRanges(), set())
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(session)
        return known

    def may_resend(self, session: str, seq: int) -> None:
        known = self._sessions.get(session)
        if known is not None and len(known.resendable) < self._max_resendable:
            known.resendable.add(seq)
