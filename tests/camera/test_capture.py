"""Frame sources and the latest-frame-wins slot with real OpenCV on synthetic images."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.adapters.camera.capture import (
    Capture,
    CaptureError,
    Frame,
    LatestFrameSlot,
    open_source,
)
from lfr.domain.clock import SystemClock


def frame(index: int, value: int = 200) -> Frame:
    return Frame(np.full((8, 8, 3), value, np.uint8), index, SystemClock().now(), time.monotonic())


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((16, 16, 3), i, np.uint8))


def test_slot_keeps_only_the_newest_frame_and_wipes_dropped_ones() -> None:
    drops: list[int] = []
    slot = LatestFrameSlot(on_drop=lambda: drops.append(1))
    frames = [frame(i) for i in range(5)]
    for f in frames:
        slot.put(f)
    taken = slot.take(0)
    assert taken is frames[-1]
    assert slot.dropped == 4 == len(drops)
    assert all(not f.image.any() for f in frames[:-1])
    assert slot.take(0) is None


def test_closing_the_slot_wipes_the_untaken_frame() -> None:
    slot = LatestFrameSlot()
    f = frame(0)
    slot.put(f)
    slot.close()
    assert not f.image.any()
    assert slot.take(0) is None
    assert slot.ended


def test_paced_folder_drops_frames_when_inference_is_slow(tmp_path: Path) -> None:
    write_images(tmp_path / "frames", 30)
    slot = LatestFrameSlot()
    capture = Capture(open_source(str(tmp_path / "frames"), fps=200), slot, pace_fps=200)
    capture.start()
    taken = []
    while (f := slot.take(1.0)) is not None:
        taken.append(f.index)
        time.sleep(0.03)  # slow "inference"
    capture.stop()
    assert capture.frames == 30
    assert slot.dropped > 0
    assert len(taken) + slot.dropped == 30
    assert taken == sorted(taken)
    assert taken[-1] == 29


def test_unpaced_folder_delivers_every_frame_in_name_order(tmp_path: Path) -> None:
    write_images(tmp_path / "frames", 12)
    (tmp_path / "frames" / "notes.txt").write_text("not an image")
    slot = LatestFrameSlot()
    capture = Capture(open_source(str(tmp_path / "frames")), slot, pace_fps=None)
    capture.start()
    values = []
    while (f := slot.take(1.0)) is not None:
        values.append(int(f.image[0, 0, 0]))
    capture.stop()
    assert values == list(range(12))
    assert slot.dropped == 0


def test_corrupt_image_in_a_folder_is_skipped(tmp_path: Path) -> None:
    write_images(tmp_path / "frames", 3)
    (tmp_path / "frames" / "001.png").write_bytes(b"\x89PNG garbage")
    source = open_source(str(tmp_path / "frames"))
    read = [source.read() for _ in range(3)]
    assert [int(r[0, 0, 0]) for r in read if r is not None] == [0, 2]
    assert read[2] is None


def test_video_file_is_read_frame_by_frame(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    source = open_source(str(path))
    assert source.fps == pytest.approx(25)
    images = []
    while (image := source.read()) is not None:
        images.append(image)
    source.close()
    assert len(images) == 10
    assert abs(int(images[5].mean()) - 100) < 5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: str(p / "missing.mp4"), "is not a device index, URL, video file or image folder"),
        (lambda p: str(p), "holds no images"),
        (lambda p: (p / "bad.mp4").write_bytes(b"not a video") and str(p / "bad.mp4"), "cannot open video"),
    ],
)
def test_unreadable_source_gives_a_clear_error(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CaptureError, match=message):
        open_source(make(tmp_path))


def test_stop_unblocks_a_capture_waiting_for_a_slow_consumer(tmp_path: Path) -> None:
    write_images(tmp_path / "frames", 5)
    slot = LatestFrameSlot()
    capture = Capture(open_source(str(tmp_path / "frames")), slot, pace_fps=None)
    capture.start()
    time.sleep(0.1)  # the capture thread now waits for the first frame to be taken
    stopper = threading.Thread(target=capture.stop)
    stopper.start()
    stopper.join(2)
    assert not stopper.is_alive()


def test_a_recording_is_stamped_with_the_time_it_shows_however_slowly_it_is_read(tmp_path: Path) -> None:
    # The tracker's motion model and send intervals run on these stamps: read unpaced on a busy machine
    # (here: a consumer that takes 0.15 s per frame of a 10 fps folder), a recording must still look 10 fps.
    write_images(tmp_path / "frames", 4)
    slot = LatestFrameSlot()
    capture = Capture(open_source(str(tmp_path / "frames"), fps=10), slot, pace_fps=None)
    capture.start()
    stamps = []
    while (f := slot.take(1.0)) is not None:
        stamps.append(f.monotonic)
        time.sleep(0.15)
    capture.stop()
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-9)


def test_a_live_camera_is_stamped_when_its_frames_arrive() -> None:
    class SlowCamera:
        live, fps = True, 10.0

        def __init__(self) -> None:
            self.left = 3

        def read(self) -> np.ndarray | None:
            if not self.left:
                return None
            self.left -= 1
            time.sleep(0.2)
            return np.zeros((8, 8, 3), np.uint8)

        def close(self) -> None:
            pass

    slot = LatestFrameSlot()
    capture = Capture(SlowCamera(), slot, pace_fps=None)
    capture.start()
    stamps = []
    while (f := slot.take(2.0)) is not None:
        stamps.append(f.monotonic)
    capture.stop()
    assert len(stamps) >= 2
    assert np.diff(stamps).min() >= 0.19
