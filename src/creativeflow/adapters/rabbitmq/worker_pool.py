"""A fixed pool of threads for blocking pika calls, usable with ``loop.run_in_executor``.

Like ``ThreadPoolExecutor``, bounded and with the same ``submit``/``shutdown``, with two hooks the
standard pool lacks: ``on_idle`` runs in a worker after ``idle_interval`` without work (the
publisher answers heartbeats there, so an idle connection stays alive), and ``on_exit`` runs in
each worker as it stops (the publisher closes that thread's own connection there, so no
connection is ever touched by a thread other than its owner).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _WorkItem:
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


def _call_hook(hook: Callable[[], None], name: str) -> None:
    try:
        hook()
    except Exception:  # a failing hook must not kill the worker
        log.exception("worker %s hook failed", name)


class WorkerPool(Executor):
    def __init__(
        self,
        workers: int,
        name: str,
        *,
        idle_interval: float | None = None,
        on_idle: Callable[[], None] = lambda: None,
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self._workers = workers
        self._name = name
        self._idle_interval = idle_interval
        self._on_idle = on_idle
        self._on_exit = on_exit
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if not self._threads:  # started on first use, not when the pool is built
                self._start_threads()
            future: Future[_T] = Future()
            self._queue.put(_WorkItem(future, fn, args, kwargs))
            return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if not self._shut_down:
                self._shut_down = True
                if cancel_futures:
                    self._cancel_queued()
                for _ in self._threads:
                    self._queue.put(None)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _start_threads(self) -> None:
        for number in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"{self._name}_{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.future.cancel()

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._idle_interval)
            except queue.Empty:
                _call_hook(self._on_idle, "idle")
                continue
            if item is None:
                break
            item.run()
            del item  # drop the reference to the result before waiting again
        _call_hook(self._on_exit, "exit")
