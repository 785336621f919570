"""bench.matcher's CPU-per-observation-by-thread table reads each thread's own CPU time, by its name."""

from __future__ import annotations

import threading
import time

from bench.matcher import cpu_per_answer, thread_cpu


def _burn_then_wait(seconds: float, burnt: threading.Event, stop: threading.Event) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    burnt.set()
    stop.wait()  # alive until read: a thread that ended is gone from /proc


def test_a_busy_thread_is_charged_its_cpu_and_an_idle_one_nothing():
    before = thread_cpu()
    burnt, stop = threading.Event(), threading.Event()
    busy = threading.Thread(target=_burn_then_wait, args=(0.3, burnt, stop), name="bench-busy")
    idle = threading.Thread(target=stop.wait, name="bench-idle")
    busy.start()
    idle.start()
    assert burnt.wait(10)
    during = thread_cpu()
    stop.set()
    busy.join()
    idle.join()
    per_answer = cpu_per_answer(before, during, answered=1000)  # us per observation
    assert per_answer["bench-busy"] >= 250  # 0.3 s over 1000, less the clock's tick
    assert per_answer["bench-idle"] < 50


def test_per_answer_is_microseconds_of_cpu_per_observation():
    assert cpu_per_answer({"a": 1.0}, {"a": 1.5, "b": 0.25}, answered=1000) == {"a": 500.0, "b": 250.0}
