"""Concurrent lab requests answered together: a few milliseconds of collecting, then one batch.

Sessions run on threads of their own. Each submits its request and waits on a future; one worker thread takes
whatever arrived within `max_wait_s` (at most `max_batch` requests), answers them with one batched call, and
hands each future its own result. A batch that fails is answered again one request at a time, so a request that
fails fails only itself.
"""
from __future__ import annotations

import queue
from collections import deque
import threading
import time
from concurrent.futures import Future
from typing import Callable, Generic, Sequence, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

MAX_BATCH = 32
MAX_WAIT_S = 0.005


class LabScheduler(Generic[Request, Result]):
    def __init__(self, answer_batch: Callable[[Sequence[Request]], Sequence[Result]], max_batch: int = MAX_BATCH,
                 max_wait_s: float = MAX_WAIT_S, name: str = "lab-scheduler"):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_s >= 0")
        self._answer_batch = answer_batch
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._queue: queue.SimpleQueue[tuple[Request, Future] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._name = name
        # sizes of the latest batches (bounded: the server runs for weeks) and running totals, for tests and benches
        self.batches: deque[int] = deque(maxlen=1024)
        self.answered_batches = self.answered_requests = 0

    def submit(self, request: Request) -> Future:
        future: Future = Future()
        self._ensure_worker()
        self._queue.put((request, future))
        return future

    def __call__(self, request: Request, timeout: float | None = None) -> Result:
        return self.submit(request).result(timeout)

    def close(self) -> None:
        """Stop the worker after the requests already queued."""
        with self._lock:
            if self._worker is not None:
                self._queue.put(None)
                self._worker.join()
                self._worker = None

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._worker.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._answer(batch)
            if stop:
                return

    def _answer(self, batch: list[tuple[Request, Future]]) -> None:
        live = [(request, future) for request, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        self.batches.append(len(live))
        self.answered_batches += 1
        self.answered_requests += len(live)
        try:
            results = self._answered([request for request, _ in live])
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting callers, never lost)
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            for request, future in live:  # one bad request must fail only itself
                try:
                    future.set_result(self._answered([request])[0])
                except BaseException as alone:  # noqa: BLE001
                    future.set_exception(alone)
            return
        for (_, future), result in zip(live, results):
            future.set_result(result)

    def _answered(self, requests: list[Request]) -> list[Result]:
        results = list(self._answer_batch(requests))
        if len(results) != len(requests):
            raise RuntimeError(f"{len(results)} results for {len(requests)} requests")
        return results
