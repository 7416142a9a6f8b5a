"""The memory check: a fresh API process, submits and their ``samples_ready`` callbacks in
batches (32 clients each), the process's resident set size (VmRSS) read after every batch.

The figure is the growth between the sample at 10,000 requests (pools, caches and connections
are warm by then) and the one at the end (50,000 by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from bench.load import run_closed
from bench.workloads import (
    api_client,
    callback_operation,
    published_jobs,
    sign_callbacks,
    submit_operation,
)

if TYPE_CHECKING:
    from bench.run import Bench

BATCH = 1000  # submits per batch, each followed by its callback: 2,000 requests a batch
CLIENTS = 32


def _bounded(operation: Any, count: int) -> Any:
    async def bounded(client: httpx.AsyncClient, index: int) -> tuple[bool, str] | None:
        return None if index >= count else await operation(client, index)

    return bounded


def run(bench: Bench, settings: dict[str, str], total_requests: int) -> dict[str, Any]:
    from bench.run import run_loop

    stack = bench.stack
    api = stack.start_api(settings)
    bench.log(f"memory check: fresh API (pid {api.pid}), {total_requests} requests")
    url = stack.api_url
    submit = submit_operation()
    samples: list[tuple[int, int]] = [(0, api.rss_bytes())]
    done = errors = 0
    while done < total_requests:
        count = min(BATCH, (total_requests - done) // 2) or 1
        recording = run_loop(
            run_closed(
                _bounded(submit, count),
                CLIENTS,
                warmup=0,
                duration=3600,
                make_client=lambda _n: api_client(url),
            )
        )
        errors += len(recording.oks) - sum(recording.oks)
        jobs = published_jobs(stack, exclude=bench.used_jobs)[:count]
        bench.used_jobs.update(j.job_id for j in jobs)
        signed = sign_callbacks(jobs, "samples_ready")
        recording = run_loop(
            run_closed(
                _bounded(callback_operation(signed), len(signed)),
                CLIENTS,
                warmup=0,
                duration=3600,
                make_client=lambda _n: api_client(url),
            )
        )
        errors += len(recording.oks) - sum(recording.oks)
        done += count + len(signed)
        stack.purge_jobs()
        samples.append((done, api.rss_bytes()))
        if len(samples) % 5 == 0:
            bench.log(f"memory check: {done} requests, RSS {samples[-1][1] / 2**20:.1f} MiB")
    at_10k = next((rss for count, rss in samples if count >= 10_000), None)
    final = samples[-1][1]
    growth = (final - at_10k) / at_10k if at_10k else None
    result = {
        "requests": done,
        "errors": errors,
        "rss_mib_at_start": round(samples[0][1] / 2**20, 1),
        "rss_mib_at_10k": round(at_10k / 2**20, 1) if at_10k else None,
        "rss_mib_at_end": round(final / 2**20, 1),
        "growth": round(growth, 4) if growth is not None else None,
        "samples": [
            {"requests": count, "rss_mib": round(rss / 2**20, 2)} for count, rss in samples
        ],
        "api_settings": stack.api_settings,
    }
    bench.log(
        f"memory check: RSS {result['rss_mib_at_10k']} MiB at 10k -> {result['rss_mib_at_end']} "
        f"MiB at {done} ({(growth or 0) * 100:.1f}%)"
    )
    return result
