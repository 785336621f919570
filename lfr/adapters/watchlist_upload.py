"""Sends an enrolment report to the matcher: Watchlists.CreateWatchlist (or an existing draft), AddSubject
per subject with its embeddings and reference photo, then optionally SealWatchlist."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import numpy as np

from lfr.adapters.enrolment import EnrolmentReport
from lfr.domain.errors import LfrError
from lfr.v1 import control_pb2, control_pb2_grpc

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class UploadError(LfrError):
    """The matcher refused or could not be reached for a watchlist-level call."""


@dataclass(slots=True)
class UploadResult:
    watchlist_id: str
    added: dict[str, str] = field(default_factory=dict)  # reference -> subject id
    failed: dict[str, str] = field(default_factory=dict)  # reference -> matcher's reason
    sealed_hash: str | None = None


def upload_report(
    channel: grpc.Channel,
    token: str,
    report: EnrolmentReport,
    *,
    watchlist_name: str | None = None,
    watchlist_id: str | None = None,
    seal: bool = False,
    progress: Callable[[int], None] = lambda _: None,
    timeout_s: float = 30.0,
) -> UploadResult:
    stub = control_pb2_grpc.WatchlistsStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    if watchlist_id is None:
        if not watchlist_name:
            raise UploadError("give a watchlist name to create or the id of an existing draft")
        created = _call(
            "create the watchlist",
            lambda: stub.CreateWatchlist(
                control_pb2.CreateWatchlistRequest(
                    name=watchlist_name, model_id=report.model_id, dimension=report.dimension
                ),
                metadata=metadata,
                timeout=timeout_s,
            ),
        )
        watchlist_id = created.id
    result = UploadResult(watchlist_id)
    for subject in report.subjects:
        request = control_pb2.AddSubjectRequest(
            watchlist_id=watchlist_id,
            reference=subject.reference,
            display_name=subject.display_name,
            category=subject.category,
            reason=subject.reason,
            image_source=subject.image_source,
            reference_image_jpeg=bytes(subject.reference_jpeg),
            model_id=report.model_id,
            dimension=report.dimension,
            embeddings_f32le=[row.astype("<f4").tobytes() for row in np.atleast_2d(subject.embeddings)],
            template_provenance=[f"{t.source} ({t.image})" for t in subject.templates],
            template_images_jpeg=[bytes(t.jpeg) for t in subject.templates],
        )
        try:
            added = stub.AddSubject(request, metadata=metadata, timeout=timeout_s)
            result.added[subject.reference] = added.id
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED):
                raise UploadError(f"matcher refused AddSubject: {exc.code().name}: {exc.details()}") from exc
            result.failed[subject.reference] = f"{exc.code().name}: {exc.details()}"
        progress(1)
    if seal:
        if result.failed:
            raise UploadError(f"not sealing: {len(result.failed)} subject(s) were not added")
        sealed = _call(
            "seal the watchlist",
            lambda: stub.SealWatchlist(
                control_pb2.WatchlistRef(watchlist_id=watchlist_id), metadata=metadata, timeout=timeout_s
            ),
        )
        result.sealed_hash = sealed.content_hash
    return result


def _call(what: str, call: Callable[[], _T]) -> _T:
    try:
        return call()
    except grpc.RpcError as exc:
        raise UploadError(f"cannot {what}: {exc.code().name}: {exc.details()}") from exc
