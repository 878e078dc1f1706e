"""ignite's suites in the background, while the rest of the test run goes on.

Each conformance suite (tests/test_conformance.py) is a subprocess that keeps
one core busy for minutes; the rest of the run mostly keeps one core busy.  So
tests/conftest.py starts the suites when collection ends, on one worker thread,
and moves the conformance tests to the end of the run; when they are reached,
a second worker joins, and each test waits for its own suite.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

_jobs: queue.Queue = queue.Queue()
_futures: dict[Any, Future] = {}
_second_worker = threading.Event()
_cancelled = threading.Event()


def _work(wait_for: threading.Event | None) -> None:
    if wait_for is not None:
        wait_for.wait()
    while not _cancelled.is_set():
        try:
            key, fn = _jobs.get_nowait()
        except queue.Empty:
            return
        future = _futures[key]
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn())
        except BaseException as e:  # the test that waits for it reports it
            future.set_exception(e)


def start(jobs: dict[Any, Callable[[], Any]]) -> None:
    """Queue ``jobs`` (key -> callable, longest first) and start the first worker."""
    for key, fn in jobs.items():
        _futures[key] = Future()
        _jobs.put((key, fn))
    threading.Thread(target=_work, args=(None,), daemon=True, name="conformance-1").start()
    threading.Thread(target=_work, args=(_second_worker,), daemon=True, name="conformance-2").start()


def started() -> bool:
    return bool(_futures)


def futures() -> dict[Any, Future]:
    """The suites' futures; the caller is about to wait, so the second worker joins."""
    _second_worker.set()
    return _futures


def cancel() -> None:
    """The run is over: suites not started yet never start."""
    _cancelled.set()
    _second_worker.set()
    for future in _futures.values():
        future.cancel()
