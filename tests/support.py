"""Small hand-written fakes and fixtures shared by tests."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime

from PIL import Image

from lfr.domain.alert import Alert


class NullMetrics:
    def observed(self, camera_id: str, outcome: str, count: int = 1) -> None: ...
    def rejected(self, code: str, count: int = 1) -> None: ...
    def match_latency(self, seconds: float) -> None: ...
    def windows(self, armed: Mapping[str, bool], open_by_schedule: int, read_at: datetime | None) -> None: ...
    def windows_read_failed(self) -> None: ...
    def alert_raised(self, since_capture_seconds: float | None = None) -> None: ...
    def alert_adjudicated(self, outcome: str) -> None: ...


class RecordingPublisher:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> None:
        self.alerts.append(alert)


def tiny_jpeg(marker: bytes = b"", size: int = 24) -> bytes:
    """A real JPEG; `marker` goes into a COM segment so tests can search for these exact bytes later."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (120, 90, 60)).save(buffer, "JPEG", comment=marker or None)
    return buffer.getvalue()
