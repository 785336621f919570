"""CameraIngest.Stream: observations from every camera stream are micro-batched into one FAISS search.

    stream A ─┐                                   ┌─▶ future A1 ─▶ results to A, in order
    stream B ─┼─▶ queue ─▶ batcher ─▶ matcher thread (IngestService.process, FAISS single-threaded)
    stream C ─┘                                   └─▶ future C1 ─▶ results to C, in order

Each stream keeps at most `max_in_flight` messages between reading and answering; when that many are
waiting it stops reading, so HTTP/2 flow control pushes back on the camera instead of buffering without
bound (see PERF_NOTES.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from grpc import aio

from lfr.adapters.faiss_index import configure_faiss
from lfr.adapters.grpc import convert
from lfr.adapters.grpc.interceptors import current_principal
from lfr.adapters.grpc.resends import (
    Answers,
    NodeSession,
    RecentResults,
    Remembered,
    ResendKey,
    SessionSeqs,
)
from lfr.adapters.grpc.streams import CameraStreams
from lfr.domain.errors import StoreUnavailable, Throttled
from lfr.domain.observation import Observation, ObservationResult, RejectCode
from lfr.services.ingest import IngestService
from lfr.v1 import ingest_pb2 as ipb
from lfr.v1 import ingest_pb2_grpc

logger = logging.getLogger(__name__)

# Answers that ask the node to re-send later (a hit not yet durable): never answered from memory.
_RETRYABLE = frozenset({RejectCode.STORE_ERROR, RejectCode.STORE_UNAVAILABLE})

ProcessBatch = Callable[[Sequence[Observation]], list[ObservationResult]]


@dataclass(slots=True)
class _Job:
    observations: list[Observation]
    future: asyncio.Future[list[ObservationResult]]


class MicroBatcher:
    """Gathers observations from all streams for up to `wait_seconds` or `batch_max` observations and
    processes them in one dedicated thread, so FAISS runs one batched, single-threaded search at a time
    and the event loop never blocks. Waiting messages are taken in turns, one per owner (camera) at a
    time, so a camera that sends much cannot make the others wait behind all of it."""

    def __init__(self, process: ProcessBatch, batch_max: int, wait_seconds: float) -> None:
        self._process = process
        self._batch_max = batch_max
        self._wait = wait_seconds
        self._waiting: OrderedDict[str, deque[_Job]] = OrderedDict()  # owners in turn order
        self._ready = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="lfr-matcher", initializer=configure_faiss, initargs=(1,)
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="lfr-micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while (job := self._next_job()) is not None:
            if not job.future.done():
                job.future.set_exception(StoreUnavailable("the matcher is shutting down"))
        self._executor.shutdown(wait=True)

    def submit(
        self, observations: list[Observation], owner: str = ""
    ) -> asyncio.Future[list[ObservationResult]]:
        future: asyncio.Future[list[ObservationResult]] = asyncio.get_running_loop().create_future()
        if not observations:
            future.set_result([])
        else:
            self._waiting.setdefault(owner, deque()).append(_Job(observations, future))
            self._ready.set()
        return future

    def _next_job(self) -> _Job | None:
        """The oldest job of the owner whose turn it is; that owner then goes to the back of the line."""
        if not self._waiting:
            return None
        owner, jobs = next(iter(self._waiting.items()))
        job = jobs.popleft()
        del self._waiting[owner]
        if jobs:
            self._waiting[owner] = jobs
        return job

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather(loop)
            flat = [o for job in jobs for o in job.observations]
            try:
                results = await loop.run_in_executor(self._executor, self._process, flat)
            except Exception as exc:
                # The service answers each observation on its own, so this is a fault it did not foresee.
                # Each message is processed again on its own, so that the fault fails only the messages
                # that cause it, never the other cameras that shared the batch (a re-processed alert is
                # found again by its source reference, not raised twice).
                logger.exception(
                    "matcher batch failed (%s); processing its messages one by one", type(exc).__name__
                )
                await self._one_by_one(loop, jobs)
                continue
            start = 0
            for job in jobs:
                end = start + len(job.observations)
                if not job.future.done():  # the stream may have gone away meanwhile
                    job.future.set_result(results[start:end])
                start = end

    async def _one_by_one(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        for job in jobs:
            if job.future.done():
                continue
            try:
                results = await loop.run_in_executor(self._executor, self._process, job.observations)
            except Exception as exc:
                logger.exception("matcher message failed (%s)", type(exc).__name__)
                if not job.future.done():
                    job.future.set_exception(StoreUnavailable("the matcher could not process this message"))
                continue
            if not job.future.done():
                job.future.set_result(results)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[_Job]:
        while (first := self._next_job()) is None:
            self._ready.clear()
            await self._ready.wait()
        jobs = [first]
        size = len(first.observations)
        deadline = loop.time() + self._wait
        while size < self._batch_max:
            job = self._next_job()
            if job is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._ready.clear()
                try:
                    await asyncio.wait_for(self._ready.wait(), remaining)
                except TimeoutError:
                    break
                continue
            jobs.append(job)
            size += len(job.observations)
        return jobs


class CameraIngestServicer(ingest_pb2_grpc.CameraIngestServicer):
    def __init__(
        self,
        ingest: IngestService,
        batcher: MicroBatcher,
        max_in_flight: int = 16,
        recent: RecentResults | None = None,
        streams: CameraStreams | None = None,
        max_unread_answers: int = 15,
        max_streams_per_camera: int = 4,
    ) -> None:
        self._ingest = ingest
        self._batcher = batcher
        self._max_in_flight = max_in_flight
        # Not `recent or ...`: an empty memory has length 0, and would be replaced by the default.
        self._recent = (
            recent if recent is not None else RecentResults(max_entries=65_536, max_age_seconds=300)
        )
        self._streams = streams
        self._max_unread = max_unread_answers
        self._max_streams = max_streams_per_camera
        self._used = SessionSeqs()

    async def Stream(
        self, request_iterator: AsyncIterator[ipb.ObservationBatch], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ipb.ObservationResults]:
        camera = current_principal().name
        if self._streams is not None and not self._streams.try_open(camera, self._max_streams):
            raise Throttled(
                f"camera {camera} already holds {self._max_streams} ingest streams open to this matcher "
                "(grpc.max_streams_per_camera); close one first",
                retry_after_seconds=1.0,
            )
        answers: asyncio.Queue[_Answer | None] = asyncio.Queue(maxsize=self._max_in_flight)
        reader = asyncio.create_task(self._read(request_iterator, camera, answers))
        try:
            while (answer := await _next_answer(answers, reader)) is not None:
                yield await answer.results()
            await reader  # re-raises a read failure (e.g. the client cancelled)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            if self._streams is not None:
                self._streams.closed(camera)

    async def _read(
        self,
        request_iterator: AsyncIterator[ipb.ObservationBatch],
        camera: str,
        answers: asyncio.Queue[_Answer | None],
    ) -> None:
        """Reads messages while fewer than `max_in_flight` wait for their answers (HTTP/2 flow control then
        pushes back on the camera). Ends the stream, rather than reading on, when the camera says it has
        left more than `max_unread_answers` answers unread: those answers would otherwise pile up in this
        process for a caller that never takes them. On a failure nothing more is queued: the answering
        side sees this task fail and ends the stream with its error."""
        received = 0
        async for message in request_iterator:
            unread = received - message.answers_read  # answers to earlier messages it has not read
            received += 1
            if unread > self._max_unread:
                raise Throttled(
                    f"stream cut off: {unread} answers unread, the limit is {self._max_unread} "
                    "(grpc.stream_max_unread_answers); read answers and report them in answers_read",
                    retry_after_seconds=1.0,
                )
            if self._streams is not None:
                self._streams.seen(camera)
            await answers.put(self._admit(message, camera))  # blocks when max_in_flight are waiting
        await answers.put(None)

    def _admit(self, message: ipb.ObservationBatch, camera: str) -> _Answer:
        """Answers re-sends from memory; decodes what can be decoded; refuses the rest one by one; submits
        the good ones. Every answer is remembered under the node's session, if it named one."""
        session = message.node_session
        answer = _Answer(seqs=[o.seq for o in message.observations])
        wanted: list[int] = []  # positions to decode and match, in order
        memory: _MessageMemory | None = None
        seqs: NodeSession | None = None  # the session's used seqs, if this camera may use it
        if session:
            memory = _MessageMemory(asyncio.get_running_loop().create_future())
            self._recent.expire()  # once for the message: `get` below does not
            seqs = self._used.session(camera, session)
        for position, (item, seq) in enumerate(zip(message.observations, answer.seqs, strict=True)):
            if memory is not None:
                key = (camera, session, seq)
                if (earlier := self._recent.get(key)) is not None:
                    # Never matched, and its share of packed embeddings is wiped as the batch is decoded;
                    # the protobuf's own bytes go when the message does. Not counted again: the same face.
                    answer.remembered[position] = earlier
                    continue
                # Remembered now, so a second copy of this seq later in the message finds it.
                self._recent.remember(key, memory.answers, memory.add(position, key))
            refusal = self._refusal(item, camera) or _replay(session, seqs, seq)
            if refusal is not None:
                self._fix(answer, position, refusal, camera, memory)
                continue
            wanted.append(position)
        if memory is not None:
            self._recent.expire()  # and once more, for the bound on entries, now the message's are in
        accepted: list[Observation] = []
        decoded = convert.observations(message, wanted)
        for position, found in zip(wanted, decoded, strict=True):
            if isinstance(found, convert.MalformedObservation):
                refusal = ObservationResult.rejected(RejectCode.MALFORMED, str(found))
                self._fix(answer, position, refusal, camera, memory)
                continue
            accepted.append(found)
            answer.submitted.append(position)
        answer.future = self._batcher.submit(accepted, owner=camera)
        if message.ended_track_ids:
            # After this message's own faces are matched: they may be those tracks' last.
            ended = list(message.ended_track_ids[:1024])
            answer.future.add_done_callback(lambda _: self._ingest.tracks_ended(camera, session, ended))
        if memory is not None:
            submitted, remembered = answer.submitted, memory
            answer.future.add_done_callback(lambda batch: self._settle(batch, submitted, remembered))
        return answer

    def _fix(
        self,
        answer: _Answer,
        position: int,
        refusal: ObservationResult,
        camera: str,
        memory: _MessageMemory | None,
    ) -> None:
        """Answers a refused observation now (counted, and kept in the memory if it is remembered there)."""
        answer.fixed[position] = self._ingest.refuse(camera, refusal)
        if memory is not None:
            memory.values[memory.slots[position]] = answer.fixed[position]

    @staticmethod
    def _refusal(item: ipb.Observation, camera: str) -> ObservationResult | None:
        if item.camera_id != camera:
            return ObservationResult.rejected(
                RejectCode.CAMERA_MISMATCH,
                f"observation names camera {item.camera_id!r} but credentials are for {camera!r}",
            )
        return None

    def _settle(
        self, batch: asyncio.Future[list[ObservationResult]], submitted: list[int], memory: _MessageMemory
    ) -> None:
        """Copies a batch's answers into the memory, whether or not its stream is still there to read them."""
        failure = batch.exception() if not batch.cancelled() else StoreUnavailable("the batch was cancelled")
        results: list[ObservationResult | BaseException] = (
            [failure] * len(submitted) if failure is not None else list(batch.result())
        )
        for position, result in zip(submitted, results, strict=True):
            slot = memory.slots[position]
            memory.values[slot] = result
            if isinstance(result, BaseException) or result.reject_code in _RETRYABLE:
                # Nothing was decided, or the hit could not be kept: the node sends it again, to be matched
                # afresh then, not answered from memory nor refused as a replay of its own seq.
                key = memory.keys[slot]
                self._recent.forget(key, memory.answers)
                self._used.may_resend(key[1], key[2])
        memory.answers.set_result(memory.values)


def _replay(session: str, seqs: NodeSession | None, seq: int) -> ObservationResult | None:
    """Refuses a node session another camera used (`seqs` None), or a seq this session already used (a
    re-send the memory of recent answers did not cover). Without a node session nothing can be checked."""
    if not session:
        return None
    if seqs is None:
        return ObservationResult.rejected(
            RejectCode.CAMERA_MISMATCH, "this node session belongs to another camera"
        )
    if not seqs.use(seq):
        return ObservationResult.rejected(
            RejectCode.REPLAYED, f"seq {seq} was already used in this node session"
        )
    return None


async def _next_answer(answers: asyncio.Queue[_Answer | None], reader: asyncio.Task[None]) -> _Answer | None:
    """The next queued answer; raises at once if the reading side failed (a cut-off, a cancelled call),
    instead of waiting for answers that will never be queued."""
    if reader.done() and reader.exception() is None:
        return await answers.get()
    getter = asyncio.ensure_future(answers.get())
    try:
        await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        getter.cancel()
        raise
    if getter.done():
        return getter.result()
    getter.cancel()
    if reader.cancelled():
        raise asyncio.CancelledError
    failure = reader.exception()
    if failure is not None:
        raise failure
    return await answers.get()


@dataclass(slots=True)
class _Answer:
    seqs: list[int]
    fixed: dict[int, ObservationResult] = field(default_factory=dict)  # refused before matching
    submitted: list[int] = field(default_factory=list)  # positions sent to the matcher, in order
    remembered: dict[int, Remembered] = field(default_factory=dict)  # re-sends
    future: asyncio.Future[list[ObservationResult]] | None = None

    async def results(self) -> ipb.ObservationResults:
        # Shielded: a stream that goes away must not cancel the batch, whose answers the memory of
        # recent results still needs for the re-send that will follow.
        matched = await asyncio.shield(self.future) if self.future is not None else []
        merged = dict(self.fixed)
        merged.update(zip(self.submitted, matched, strict=True))
        for position, earlier in self.remembered.items():
            merged[position] = await earlier.wait()
        return ipb.ObservationResults(
            results=[convert.observation_result(seq, merged[i]) for i, seq in enumerate(self.seqs)]
        )


@dataclass(slots=True)
class _MessageMemory:
    """The answers of one message's remembered observations, settled together when its batch is."""

    answers: asyncio.Future[Answers]
    keys: list[ResendKey] = field(default_factory=list)
    slots: dict[int, int] = field(default_factory=dict)  # message position -> place in `answers`
    values: Answers = field(default_factory=list)

    def add(self, position: int, key: ResendKey) -> int:
        self.slots[position] = slot = len(self.keys)
        self.keys.append(key)
        self.values.append(None)
        return slot
