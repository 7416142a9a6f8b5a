"""Load models and their statistics.

- closed model: ``clients`` virtual clients, each with its own keep-alive HTTP connection
  (an ``httpx.AsyncClient``), each sending its next request as soon as the previous one answered;
- open model: requests arrive at a fixed ``rate`` whatever the answers do (one every
  ``1/rate`` seconds); a request's latency is counted from the moment it was *due*, so a
  generator or a server falling behind shows up in the latency (no coordinated omission).
  At most ``max_outstanding`` requests are in flight; an arrival beyond that is counted as an
  error (``dropped``).

Every phase has a warm-up (not recorded), then a measured window of ``duration`` seconds.
Throughput is the number of successful answers that *completed* inside the window divided by
its length; latency percentiles are over the requests that *started* (or were due) inside it.
Times come from ``time.monotonic`` (CLOCK_MONOTONIC, shared by every process of the machine),
so the bare pipeline's subprocess records on the same clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# an operation sends one request and says whether it succeeded (and, if not, a label for why);
# it returns None when it has nothing left to send (a finite set of callbacks, say)
Operation = Callable[[httpx.AsyncClient, int], Awaitable[tuple[bool, str] | None]]


@dataclass
class Recording:
    """Raw samples of one phase, on the monotonic clock."""

    window_start: float
    window_end: float
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    oks: list[bool] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, start: float, end: float, ok: bool, label: str) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.oks.append(ok)
        if not ok:
            self.errors[label] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start,
            "window_end": self.window_end,
            "starts": self.starts,
            "ends": self.ends,
            "oks": self.oks,
            "errors": dict(self.errors),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recording:
        return cls(
            window_start=data["window_start"],
            window_end=data["window_end"],
            starts=list(data["starts"]),
            ends=list(data["ends"]),
            oks=list(data["oks"]),
            errors=Counter(data["errors"]),
        )


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass
class PhaseStats:
    requests: int  # started (or due) in the window
    ok: int
    errors: dict[str, int]
    duration: float
    throughput: float  # successful answers completed in the window, per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    latencies_ms: list[float]  # successful requests started in the window, for the plot

    def summary(self) -> dict[str, Any]:
        def figure(value: float) -> float | None:  # JSON has no NaN
            return None if math.isnan(value) else round(value, 2)

        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "error_count": sum(self.errors.values()),
            "duration_s": round(self.duration, 3),
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": figure(self.p50_ms),
            "p95_ms": figure(self.p95_ms),
            "p99_ms": figure(self.p99_ms),
            "mean_ms": figure(self.mean_ms),
            "max_ms": figure(self.max_ms),
        }


def analyse(recording: Recording) -> PhaseStats:
    start, end = recording.window_start, recording.window_end
    # a finite phase may run out of work before the window ends
    if recording.ends:
        end = min(end, max(recording.ends)) if max(recording.ends) > start else end
    duration = max(end - start, 1e-9)
    in_window = [
        i
        for i, s in enumerate(recording.starts)
        if recording.window_start <= s < recording.window_end
    ]
    latencies = sorted(
        (recording.ends[i] - recording.starts[i]) * 1000 for i in in_window if recording.oks[i]
    )
    completed = sum(
        1 for e, ok in zip(recording.ends, recording.oks, strict=True) if ok and start <= e <= end
    )
    errors: Counter[str] = Counter()
    # errors are counted over the whole phase (warm-up included): none is acceptable
    errors.update(recording.errors)
    return PhaseStats(
        requests=len(in_window),
        ok=sum(1 for i in in_window if recording.oks[i]),
        errors=dict(errors),
        duration=duration,
        throughput=completed / duration,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        mean_ms=sum(latencies) / len(latencies) if latencies else math.nan,
        max_ms=latencies[-1] if latencies else math.nan,
        latencies_ms=latencies,
    )


# -- the generators ------------------------------------------------------------------------------

ClientFactory = Callable[[int], httpx.AsyncClient]


async def run_closed(
    operation: Operation,
    clients: int,
    *,
    warmup: float,
    duration: float,
    make_client: ClientFactory,
    on_window: Callable[[str], None] | None = None,
) -> Recording:
    """``clients`` loops, each on its own connection, for ``warmup + duration`` seconds."""
    began = time.monotonic()
    recording = Recording(window_start=began + warmup, window_end=began + warmup + duration)
    counter = iter(range(10**12))

    async def one_client(number: int) -> None:
        async with make_client(number) as client:
            while True:
                start = time.monotonic()
                if start >= recording.window_end:
                    return
                try:
                    outcome = await operation(client, next(counter))
                except Exception as exc:  # a failed request is a sample, not a crash
                    outcome = (False, type(exc).__name__)
                if outcome is None:
                    return
                recording.add(start, time.monotonic(), *outcome)

    edges: list[str] = []
    watcher = asyncio.create_task(_mark_window(recording, on_window, edges))
    await asyncio.gather(*(one_client(n) for n in range(clients)))
    _close_window(recording, watcher, on_window, edges)
    return recording


async def run_open(
    operation: Operation,
    rate: float,
    *,
    warmup: float,
    duration: float,
    clients: list[httpx.AsyncClient],
    max_outstanding: int,
    on_window: Callable[[str], None] | None = None,
) -> Recording:
    """One arrival every ``1/rate`` seconds for ``warmup + duration`` seconds; arrival ``i``
    goes through ``clients[i % len(clients)]`` (several small connection pools: httpx's pool
    costs CPU in proportion to its size on every request)."""
    began = time.monotonic()
    recording = Recording(window_start=began + warmup, window_end=began + warmup + duration)
    tasks: set[asyncio.Task[None]] = set()
    exhausted = False

    async def one_request(index: int, due: float) -> None:
        nonlocal exhausted
        try:
            outcome = await operation(clients[index % len(clients)], index)
        except Exception as exc:
            outcome = (False, type(exc).__name__)
        if outcome is None:
            exhausted = True
            return
        recording.add(due, time.monotonic(), *outcome)

    edges: list[str] = []
    watcher = asyncio.create_task(_mark_window(recording, on_window, edges))
    total = int((warmup + duration) * rate)
    for index in range(total):
        if exhausted:
            break
        due = began + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= max_outstanding:
            recording.add(due, due, False, "dropped (too many outstanding)")
            continue
        task = asyncio.create_task(one_request(index, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*list(tasks))
    _close_window(recording, watcher, on_window, edges)
    return recording


async def _mark_window(
    recording: Recording, on_window: Callable[[str], None] | None, edges: list[str]
) -> None:
    """Call ``on_window("start")`` and ``on_window("end")`` at the window's edges (CPU readings)."""
    await asyncio.sleep(max(0.0, recording.window_start - time.monotonic()))
    edges.append("start")
    if on_window is not None:
        on_window("start")
    await asyncio.sleep(max(0.0, recording.window_end - time.monotonic()))
    edges.append("end")
    if on_window is not None:
        on_window("end")


def _close_window(
    recording: Recording,
    watcher: asyncio.Task[None],
    on_window: Callable[[str], None] | None,
    edges: list[str],
) -> None:
    """A phase that ran out of work early ends its window now (and takes its last reading)."""
    if not watcher.done():
        watcher.cancel()
    if "start" in edges and "end" not in edges:
        recording.window_end = time.monotonic()
        if on_window is not None:
            on_window("end")
