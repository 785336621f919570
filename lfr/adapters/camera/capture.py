"""Frame capture in its own thread with a latest-frame-wins slot.

When inference is slower than the camera, the older frame is dropped (and counted) rather than queued:
memory stays bounded, latency stays at one frame, and no frame is ever written to disk. Dropped frames are
zeroed because they are pictures of passers-by.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from lfr.domain.clock import Clock, SystemClock
from lfr.domain.embedding import wipe
from lfr.domain.errors import LfrError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
DEFAULT_DIRECTORY_FPS = 10.0


class CaptureError(LfrError):
    """The frame source cannot be opened or read."""


@dataclass(slots=True)
class Frame:
    image: np.ndarray  # BGR
    index: int
    captured_at: datetime
    monotonic: float  # steady seconds: when a camera delivered it, or the time a recording shows

    def wipe(self) -> None:
        wipe(self.image)


class FrameSource(Protocol):
    live: bool  # a camera paces itself; files are paced by the reader
    fps: float | None  # native rate where known

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end of the source."""

    def close(self) -> None: ...


class OpenCvSource:
    """A video file, an RTSP/HTTP URL or a local device index, through OpenCV's VideoCapture."""

    def __init__(self, target: str | int, live: bool) -> None:
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            self._capture.release()
            kind = "camera device" if isinstance(target, int) else "stream" if live else "video file"
            raise CaptureError(f"cannot open {kind} {target!r}: OpenCV could not read it")
        self.live = live
        native = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = native if 0 < native < 1000 else None

    def read(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        return image if ok else None

    def close(self) -> None:
        self._capture.release()


class ImageDirectorySource:
    """The images of a folder in name order, as if they were a camera's frames."""

    def __init__(self, folder: Path, fps: float | None = None) -> None:
        self._paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise CaptureError(f"image folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._position = 0
        self.live = False
        self.fps: float | None = fps or DEFAULT_DIRECTORY_FPS
        self.unreadable = 0

    def read(self) -> np.ndarray | None:
        while self._position < len(self._paths):
            path = self._paths[self._position]
            self._position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            self.unreadable += 1
            logger.warning("skipping unreadable image %s", path.name)
        return None

    def close(self) -> None:
        self._position = len(self._paths)


def open_source(uri: str, fps: float | None = None) -> FrameSource:
    """`uri`: a device index ("0"), an rtsp:// or http(s):// URL, a video file, or a folder of images."""
    if uri.isdigit():
        return OpenCvSource(int(uri), live=True)
    if "://" in uri:
        return OpenCvSource(uri, live=True)
    path = Path(uri).expanduser()
    if path.is_dir():
        return ImageDirectorySource(path, fps)
    if not path.is_file():
        raise CaptureError(f"frame source {uri!r} is not a device index, URL, video file or image folder")
    return OpenCvSource(str(path), live=False)


class LatestFrameSlot:
    """Holds at most one frame. `put` replaces (and wipes) an untaken frame; `put_waiting` blocks instead,
    for offline replay where every frame must be processed."""

    def __init__(self, on_drop: Callable[[], None] = lambda: None) -> None:
        self._frame: Frame | None = None
        self._condition = threading.Condition()
        self._closed = False
        self._finished = False
        self._on_drop = on_drop
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._condition:
            if self._closed:
                frame.wipe()
                return
            if self._frame is not None:
                self._frame.wipe()
                self.dropped += 1
                self._on_drop()
            self._frame = frame
            self._condition.notify_all()

    def put_waiting(self, frame: Frame) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._frame is None or self._closed)
        self.put(frame)

    def finish(self) -> None:
        """The source has ended: `take` returns None once the last frame is taken."""
        with self._condition:
            self._finished = True
            self._condition.notify_all()

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, waiting up to `timeout`; None on timeout or when the source has ended."""
        with self._condition:
            self._condition.wait_for(
                lambda: self._frame is not None or self._finished or self._closed, timeout
            )
            frame, self._frame = self._frame, None
            self._condition.notify_all()
            return frame

    @property
    def ended(self) -> bool:
        with self._condition:
            return (self._finished or self._closed) and self._frame is None

    def close(self) -> None:
        with self._condition:
            self._closed = True
            if self._frame is not None:
                self._frame.wipe()
                self._frame = None
            self._condition.notify_all()


class Capture:
    """Reads `source` on a daemon thread into `slot`.

    `pace_fps`: for files, deliver frames at this rate as a camera would (frames are dropped when inference
    is slower); None for files means as fast as inference takes them, dropping none. Live sources are
    paced by the camera itself and always drop.
    """

    def __init__(
        self,
        source: FrameSource,
        slot: LatestFrameSlot,
        pace_fps: float | None,
        clock: Clock | None = None,
        on_frame: Callable[[], None] = lambda: None,
    ) -> None:
        self._source = source
        self._slot = slot
        self._interval = 1.0 / pace_fps if pace_fps and not source.live else None
        self._drop = source.live or self._interval is not None
        self._clock = clock or SystemClock()
        self._on_frame = on_frame
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lfr-capture", daemon=True)
        self.frames = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._slot.close()
        self._thread.join(timeout)

    def _run(self) -> None:
        next_due = started = time.monotonic()
        # A recording's frames are stamped with the time they show, not when this machine got round to
        # reading them: the tracker's motion and intervals then do not depend on how fast the CPU is.
        media_fps = self._source.fps if not self._source.live else None
        try:
            while not self._stop.is_set():
                image = self._source.read()
                if image is None:
                    break
                now = time.monotonic()
                shown = started + self.frames / media_fps if media_fps else now
                frame = Frame(image, self.frames, self._clock.now(), shown)
                self.frames += 1
                self._on_frame()
                if self._drop:
                    self._slot.put(frame)
                else:
                    self._slot.put_waiting(frame)
                if self._interval is not None:
                    next_due = max(next_due + self._interval, now - self._interval)
                    self._stop.wait(max(0.0, next_due - time.monotonic()))
        except Exception as exc:  # the node reports it; a dead capture thread must not be silent
            logger.exception("capture failed")
            self.error = exc
        finally:
            self._source.close()
            self._slot.finish()
