"""The benchmark: one command, one run, every ratio measured side by side.

    python -m bench.run --quick          # about 4 minutes
    python -m bench.run                  # the full run, about 10 minutes
    python -m bench.run --memory         # the full run, then the RSS check (about 8 minutes more)
    python -m bench.run --memory-only    # the RSS check alone

It starts the stack (``bench.stack``: a throw-away database, unique queues, the Odoo emulator,
the notification sink and the API, each in its own process), then runs, in order:

1. round trips: single operations one after another, counting what reached the emulator, the
   database and the broker (submit, selection, success and failure callbacks);
2. the HTTP floor (GET /healthz, one client);
3. submits at 1 and at 32 clients, three rounds in the full run: the bare pipeline
   (``bench.bare``), in the first round the use case without HTTP (``bench.direct``), then the
   service, at the same concurrency; the full run adds 8 and 64 clients;
4. submits in the open model (fixed arrival rates, fractions of the 32-client throughput);
5. callbacks (``samples_ready`` for jobs the submits created): closed 1 and 32 clients, the same
   with result events off (the API restarted with ``EVENTS_ENABLED=false``: what publishing each
   result to the events exchange costs a callback), and an open model at three times the submit
   throughput;
6. 30 ms of emulator latency: the bare pipeline at 1 and 32 clients, the service at 1 and 32
   (and 8 and 64 in the full run);
7. with ``--memory``: a fresh API process, submits and their callbacks, RSS sampled.

Before each phase it waits for the stack to be idle, runs ``VACUUM (ANALYZE)`` on its database
and waits (a little) for other processes on the machine to calm down. Results go to
``bench/results/`` (git-ignored): ``bench-<time>.json`` (figures, round trips, CPU per process,
ratios, targets), ``bench-<time>-latencies.json`` and ``bench-<time>.png`` (latency
distributions), with ``latest.*`` copies; ``bench/results/logs/<time>/`` holds each process's
log. See ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench import report
from bench.bare import BareConfig
from bench.load import Recording, analyse, run_closed, run_open
from bench.stack import (
    ACCOUNTS_PER_PREFIX,
    BARE_USER_PREFIX,
    ODOO_LOGIN,
    ODOO_PASSWORD,
    RABBITMQ_URL,
    REPO_ROOT,
    BenchStack,
    direct_user,
    machine_cpu,
    process_cpu_seconds,
)
from bench.workloads import (
    SUBMIT_BODY,
    JobRef,
    api_client,
    callback_operation,
    healthz_operation,
    published_jobs,
    select_sample,
    sign_callbacks,
    submit_operation,
)

RESULTS = REPO_ROOT / "bench" / "results"
T = TypeVar("T")

# Pool sizes the API runs with (the harness sets them; see docs/performance.md). Odoo is the
# slow call, so its pool must hold every client that may wait on it at once.
API_SETTINGS = {
    "ODOO_WORKERS": "32",
    "RABBITMQ_PUBLISH_WORKERS": "8",
    "DATABASE_POOL_SIZE": "10",
    "DATABASE_MAX_OVERFLOW": "5",
}


@dataclass(frozen=True)
class Plan:
    warmup: float
    duration: float
    key_rounds: int  # rounds of the 1- and 32-client pairs (bare, then service), alternating
    concurrencies: tuple[int, ...]  # further closed-model submit pairs, one round each
    open_fractions: tuple[float, ...]  # open-model submit rates, of the 32-client throughput
    latency_concurrencies: tuple[int, ...]  # service, with 30 ms of emulator latency
    round_trip_ops: int
    quiet_patience: float  # seconds a phase may wait for a busy machine to calm down


QUICK = Plan(
    warmup=1.5,
    duration=5.0,
    key_rounds=1,
    concurrencies=(),
    open_fractions=(0.7,),
    latency_concurrencies=(1, 32),
    round_trip_ops=10,
    quiet_patience=5.0,
)
FULL = Plan(
    warmup=2.5,
    duration=10.0,
    key_rounds=3,
    concurrencies=(8, 64),
    open_fractions=(0.5, 0.9),
    latency_concurrencies=(1, 8, 32, 64),
    round_trip_ops=20,
    quiet_patience=10.0,
)


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """The load generator runs on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


class Bench:
    def __init__(self, stack: BenchStack, plan: Plan, log: Callable[[str], None]) -> None:
        self.stack = stack
        self.plan = plan
        self.log = log
        self.phases: dict[str, dict[str, Any]] = {}
        self.latencies: dict[str, list[float]] = {}
        self.used_jobs: set[str] = set()
        self.last_quiet: float | None = None
        self._run_dir = RESULTS / "tmp"
        self._run_dir.mkdir(parents=True, exist_ok=True)

    # -- readings ------------------------------------------------------------------------------

    def cpu_snapshot(self, extra_pid: int | None = None) -> dict[str, float]:
        busy, total = machine_cpu()
        readings = self.stack.process_cpu()
        readings["loadgen"] = process_cpu_seconds(os.getpid())
        if extra_pid is not None:
            readings["bare"] = process_cpu_seconds(extra_pid)
        readings["machine_busy"] = busy
        readings["machine_total"] = total
        readings["wall"] = time.monotonic()
        return readings

    def counts(self) -> dict[str, Any]:
        assert self.stack.emulator is not None
        emulator = self.stack.emulator.stats()
        readings: dict[str, Any] = {
            "emulator_requests": emulator["requests"],
            "emulator_by_service_method": emulator["by_service_method"],
        }
        if self.stack.api is not None:
            readings["api"] = self.stack.api_counters()
        return readings

    def record(
        self,
        name: str,
        kind: str,
        recording: Recording,
        cpu: dict[str, dict[str, float]],
        before: dict[str, Any],
        after: dict[str, Any],
        **extra: Any,
    ) -> dict[str, Any]:
        stats = analyse(recording)
        ops_ok = sum(recording.oks)
        entry: dict[str, Any] = {
            "kind": kind,
            **extra,
            **stats.summary(),
            "cpu_ms_per_op": report.cpu_per_op(cpu, stats.throughput * stats.duration),
            "machine_busy": report.machine_busy(cpu),
            "foreign_share": report.foreign_share(cpu),
            "foreign_share_before": self.last_quiet,
            "round_trips_per_op": report.round_trips(before, after, ops_ok),
        }
        self.phases[name] = entry
        self.latencies[name] = [round(v, 3) for v in stats.latencies_ms]
        self.log(report.one_line(name, entry))
        return entry

    def prepare_phase(self) -> None:
        """Before a phase: let the previous one's leftovers finish, maintain the database as
        autovacuum would, and wait for the machine to be quiet."""
        self.wait_idle()
        self.stack.vacuum_analyze()
        self.wait_quiet()

    def wait_idle(self, limit: float = 0.05, patience: float = 90.0) -> None:
        """Wait until the API and the sink use less than ``limit`` of a core: an open-model phase
        past the API's capacity leaves queued callbacks and notifications behind it, and the
        next phase must not pay for them."""
        deadline = time.monotonic() + patience
        waited = False
        while time.monotonic() < deadline:
            before = self.stack.process_cpu()
            time.sleep(0.5)
            after = self.stack.process_cpu()
            busy = sum(after[p] - before[p] for p in ("api", "sink", "emulator")) / 0.5
            if busy < limit:
                break
            if not waited:
                self.log(f"the stack is still busy ({busy * 100:.0f}% of a core); waiting")
                waited = True

    def wait_quiet(self, limit: float = 0.25, patience: float | None = None) -> None:
        """Before a phase: wait (at most ``patience`` seconds) until the processes that are not
        this run's use less than ``limit`` of the machine, so that a neighbour's test run
        weighs less on the figures. The share seen last is recorded with the phase."""
        patience = self.plan.quiet_patience if patience is None else patience
        deadline = time.monotonic() + patience
        waited = False
        while True:
            before = self.cpu_snapshot()
            time.sleep(1.0)
            share = report.foreign_share({"start": before, "end": self.cpu_snapshot()}) or 0.0
            self.last_quiet = share
            if share < limit or time.monotonic() >= deadline:
                if waited:
                    self.log(f"other processes now use {share * 100:.0f}% of the machine")
                return
            if not waited:
                self.log(
                    f"other processes use {share * 100:.0f}% of the machine; waiting "
                    f"up to {patience:.0f}s for it to fall under {limit * 100:.0f}%"
                )
                waited = True

    # -- the service ---------------------------------------------------------------------------

    def service_closed(
        self, name: str, operation: Any, clients: int, kind: str = "submit", **extra: Any
    ) -> dict[str, Any]:
        self.prepare_phase()
        url = self.stack.api_url
        cpu: dict[str, dict[str, float]] = {}
        before = self.counts()
        recording = run_loop(
            run_closed(
                operation,
                clients,
                warmup=self.plan.warmup,
                duration=self.plan.duration,
                make_client=lambda _n: api_client(url),
                on_window=lambda edge: cpu.__setitem__(edge, self.cpu_snapshot()),
            )
        )
        after = self.counts()
        self.stack.purge_jobs()
        return self.record(
            name, kind, recording, cpu, before, after, model="closed", clients=clients, **extra
        )

    def service_open(
        self, name: str, operation: Any, rate: float, kind: str = "submit", **extra: Any
    ) -> dict[str, Any]:
        self.prepare_phase()
        url = self.stack.api_url
        cpu: dict[str, dict[str, float]] = {}
        before = self.counts()
        max_outstanding = 256

        async def go() -> Recording:
            clients = [api_client(url, connections=8) for _ in range(max_outstanding // 8)]
            try:
                return await run_open(
                    operation,
                    rate,
                    warmup=self.plan.warmup,
                    duration=self.plan.duration,
                    clients=clients,
                    max_outstanding=max_outstanding,
                    on_window=lambda edge: cpu.__setitem__(edge, self.cpu_snapshot()),
                )
            finally:
                for client in clients:
                    await client.aclose()

        recording = run_loop(go())
        after = self.counts()
        self.stack.purge_jobs()
        return self.record(
            name,
            kind,
            recording,
            cpu,
            before,
            after,
            model="open",
            offered_rps=round(rate, 1),
            **extra,
        )

    # -- the bare pipeline ---------------------------------------------------------------------

    def bare(self, name: str, concurrency: int, **extra: Any) -> dict[str, Any]:
        """The bare pipeline (``bench.bare``) at ``concurrency`` threads."""
        assert self.stack.emulator is not None
        rabbit = self.stack.names.rabbit
        config = BareConfig(
            database_url=self.stack.database_url,
            odoo_url=self.stack.emulator.url,
            odoo_database=self.stack.emulator.database,
            odoo_login=ODOO_LOGIN,
            odoo_password=ODOO_PASSWORD,
            rabbitmq_url=RABBITMQ_URL,
            exchange=rabbit.exchange,
            routing_key=rabbit.routing_key,
            callback_base_url=self.stack.api_url or "http://127.0.0.1:8000",
            user_prefix=BARE_USER_PREFIX,
            users=ACCOUNTS_PER_PREFIX,
            concurrency=concurrency,
        )
        document = {**config.__dict__, "body": SUBMIT_BODY}
        return self._subprocess_phase(
            name, "bare", "bench.bare", document, None, concurrency, extra
        )

    def direct(self, name: str, concurrency: int, **extra: Any) -> dict[str, Any]:
        """The use case without HTTP (``bench.direct``) at ``concurrency`` asyncio tasks, with
        the API's settings."""
        document = {
            "concurrency": concurrency,
            "users": [direct_user(i) for i in range(ACCOUNTS_PER_PREFIX)],
            "body": SUBMIT_BODY,
        }
        env = self.stack.api_environment(0, API_SETTINGS)
        return self._subprocess_phase(
            name, "direct", "bench.direct", document, env, concurrency, extra
        )

    def _subprocess_phase(
        self,
        name: str,
        kind: str,
        module: str,
        document: dict[str, Any],
        env: dict[str, str] | None,
        concurrency: int,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        """Run ``module`` as a subprocess: it warms up, says READY, runs the window it is given
        on the monotonic clock and writes its samples; CPU is read at the window's edges."""
        config_path = self._run_dir / f"{name}.config.json"
        out_path = self._run_dir / f"{name}.out.json"
        config_path.write_text(json.dumps(document))
        log_path = self.stack.log_dir / f"{kind}.log"
        self.prepare_phase()
        before = self.counts()
        with log_path.open("ab") as log:
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    module,
                    "--config",
                    str(config_path),
                    "--out",
                    str(out_path),
                ],
                cwd=REPO_ROOT,
                env={**os.environ, **(env or {})},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        try:
            assert child.stdout is not None and child.stdin is not None
            line = child.stdout.readline().strip()
            if line != "READY":
                raise RuntimeError(f"{module} did not start ({line!r}); see {log_path}")
            start = time.monotonic() + self.plan.warmup
            end = start + self.plan.duration
            child.stdin.write(f"GO {start} {end}\n")
            child.stdin.flush()
            cpu = {}
            time.sleep(max(0.0, start - time.monotonic()))
            cpu["start"] = self.cpu_snapshot(child.pid)
            time.sleep(max(0.0, end - time.monotonic()))
            cpu["end"] = self.cpu_snapshot(child.pid)
            line = child.stdout.readline().strip()
            if line != "DONE":
                raise RuntimeError(f"{module} failed ({line!r}); see {log_path}")
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(5)
        recording = Recording.from_json(json.loads(out_path.read_text()))
        after = self.counts()
        self.stack.purge_jobs()
        return self.record(
            name,
            kind,
            recording,
            cpu,
            before,
            after,
            model="closed",
            clients=concurrency,
            **extra,
        )

    # -- phases --------------------------------------------------------------------------------

    def round_trips(self) -> dict[str, Any]:
        """Single operations, one after another, after a warm-up; counts per operation."""
        n = self.plan.round_trip_ops
        stack = self.stack
        assert stack.emulator is not None
        url = stack.api_url
        stack.bind_tap()
        results: dict[str, Any] = {}

        async def sequential(operation: Any, count: int) -> int:
            ok = 0
            async with api_client(url) as client:
                for index in range(count):
                    outcome = await operation(client, index)
                    ok += bool(outcome and outcome[0])
            return ok

        def measure(label: str, run: Callable[[], int]) -> None:
            stack.drain_tap()
            emulator_before = stack.emulator.stats()  # type: ignore[union-attr]
            stack.reset_api_counters()
            ok = run()
            emulator_after = stack.emulator.stats()  # type: ignore[union-attr]
            api = stack.api_counters()
            published = len(stack.drain_tap())
            results[label] = report.per_operation(
                ok, emulator_before, emulator_after, api, published
            )
            self.log(f"round trips per {label}: {results[label]}")

        # warm-up: logins of the Odoo client, publisher and database connections
        run_loop(sequential(submit_operation(), 10))
        warm = published_jobs(stack, exclude=self.used_jobs)
        self.used_jobs.update(j.job_id for j in warm)
        run_loop(sequential(callback_operation(sign_callbacks(warm, "samples_ready")), len(warm)))

        measure("submit", lambda: run_loop(sequential(submit_operation(), n)))
        jobs = published_jobs(stack, exclude=self.used_jobs)[:n]
        self.used_jobs.update(j.job_id for j in jobs)
        success = sign_callbacks(jobs, "samples_ready")
        measure(
            "callback_samples_ready", lambda: run_loop(sequential(callback_operation(success), n))
        )

        async def select_all(chosen: list[JobRef]) -> int:
            async with api_client(url) as client:
                return sum([await select_sample(client, job) for job in chosen])

        measure("selection", lambda: run_loop(select_all(jobs)))
        finals = published_jobs(stack, stage="final", exclude=self.used_jobs)[:n]
        self.used_jobs.update(j.job_id for j in finals)
        final_ready = sign_callbacks(finals, "final_ready")
        measure(
            "callback_final_ready", lambda: run_loop(sequential(callback_operation(final_ready), n))
        )

        run_loop(sequential(submit_operation(), n))
        doomed = published_jobs(stack, exclude=self.used_jobs)[:n]
        self.used_jobs.update(j.job_id for j in doomed)
        failed = sign_callbacks(doomed, "failed")
        measure(
            "callback_platform_failure", lambda: run_loop(sequential(callback_operation(failed), n))
        )
        stack.unbind_tap()
        stack.purge_jobs()
        return results

    def prepare_jobs(self, wanted: int) -> list[JobRef]:
        """Jobs waiting for their callback; submits more (unmeasured) if there are too few."""
        jobs = published_jobs(self.stack, exclude=self.used_jobs)
        missing = wanted - len(jobs)
        if missing > 0:
            self.log(f"submitting {missing} more requests for the callback phases")
            operation = submit_operation()

            async def bounded(client: httpx.AsyncClient, index: int) -> tuple[bool, str] | None:
                return None if index >= missing else await operation(client, index)

            url = self.stack.api_url
            run_loop(
                run_closed(
                    bounded, 32, warmup=0, duration=600, make_client=lambda _n: api_client(url)
                )
            )
            self.stack.purge_jobs()
            jobs = published_jobs(self.stack, exclude=self.used_jobs)
        return jobs

    def take_jobs(self, jobs: list[JobRef], count: int) -> list[JobRef]:
        taken = [j for j in jobs if j.job_id not in self.used_jobs][:count]
        self.used_jobs.update(j.job_id for j in taken)
        return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, fewer concurrencies")
    parser.add_argument("--memory", action="store_true", help="add the RSS check (several minutes)")
    parser.add_argument(
        "--memory-requests", type=int, default=50_000, help="requests of the RSS check"
    )
    parser.add_argument("--memory-only", action="store_true", help="only the RSS check")
    parser.add_argument(
        "--profile",
        choices=["submit", "callback"],
        default=None,
        help="py-spy the API during a 32-client phase (writes a flame graph)",
    )
    options = parser.parse_args(argv)
    plan = QUICK if options.quick else FULL
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = RESULTS / "logs" / stamp
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", flush=True)

    from bench import memory

    results: dict[str, Any] = {
        "meta": {
            "started_at": stamp,
            "mode": "quick" if options.quick else "full",
            "plan": plan.__dict__,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "git_commit": _git_commit(),
            "api_settings": API_SETTINGS,
        }
    }
    with BenchStack.open(log_dir) as stack:
        log(
            f"stack up: database {stack.names.database}, "
            f"emulator {stack.emulator.url if stack.emulator else '-'}"
        )
        bench = Bench(stack, plan, log)
        if not options.memory_only:
            stack.start_api(API_SETTINGS)
            log(f"API up at {stack.api_url} with {stack.api_settings}")
            results["round_trips"] = bench.round_trips()
            _throughput_phases(bench, plan, options.profile, log_dir)
        if options.memory or options.memory_only:
            results["memory"] = memory.run(bench, API_SETTINGS, options.memory_requests)
        stack.stop_api()
    results["phases"] = bench.phases
    results["ratios"] = report.ratios(bench.phases)
    results["targets"] = report.targets(results)
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    paths = _write(results, bench.latencies, stamp)
    print()
    print(report.table(results))
    print()
    for path in paths:
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    shutil.rmtree(RESULTS / "tmp", ignore_errors=True)
    return 0


def _throughput_phases(bench: Bench, plan: Plan, profile: str | None, log_dir: Path) -> None:
    stack = bench.stack
    assert stack.emulator is not None
    submit = submit_operation()
    # the HTTP floor: the same client and server, a route that does nothing
    bench.service_closed("healthz_c1", healthz_operation(), 1, kind="floor")
    # 2. closed model: the bare pipeline, then the service, at the same concurrency; the key
    # pairs (1 and 32 clients) several times, alternating, so that a neighbour's load hits both
    for round_number in range(1, plan.key_rounds + 1):
        suffix = "" if round_number == 1 else f"_r{round_number}"
        for clients in (1, 32):
            bench.bare(f"bare_submit_c{clients}{suffix}", clients, round=round_number)
            if round_number == 1:  # the use case without HTTP, between the two
                bench.direct(f"direct_submit_c{clients}", clients)
            name = f"submit_c{clients}{suffix}"
            if profile == "submit" and clients == 32 and round_number == 1:
                with _py_spy(stack, log_dir / "profile-submit-c32.svg"):
                    bench.service_closed(name, submit, clients, round=round_number)
            else:
                bench.service_closed(name, submit, clients, round=round_number)
    for clients in plan.concurrencies:
        bench.bare(f"bare_submit_c{clients}", clients)
        bench.service_closed(f"submit_c{clients}", submit, clients)
    top = report.median_of_rounds(bench.phases, "submit_c32", "throughput_rps")
    # 3. open model
    for fraction in plan.open_fractions:
        bench.service_open(
            f"submit_open_{int(fraction * 100)}pct",
            submit,
            top * fraction,
            fraction_of_c32=fraction,
        )
    # 4. callbacks, for jobs the submits left waiting (and more if there are too few)
    window = plan.warmup + plan.duration
    callback_rate = 3 * top
    allotment = {
        "c1": int(window * 250),
        "c32": int(window * max(6 * top, 600)),
        "c1_off": int(window * 250),
        "c32_off": int(window * max(6 * top, 600)),
        "open": int(callback_rate * window * 1.05) + 50,
    }
    jobs = bench.prepare_jobs(sum(allotment.values()))
    bench.log(f"{len(jobs)} jobs waiting for their callback")
    one = sign_callbacks(bench.take_jobs(jobs, allotment["c1"]), "samples_ready")
    bench.service_closed("callback_c1", callback_operation(one), 1, kind="callback")
    signed = sign_callbacks(bench.take_jobs(jobs, allotment["c32"]), "samples_ready")
    if profile == "callback":
        with _py_spy(stack, log_dir / "profile-callback-c32.svg"):
            bench.service_closed("callback_c32", callback_operation(signed), 32, kind="callback")
    else:
        bench.service_closed("callback_c32", callback_operation(signed), 32, kind="callback")
    # the same callbacks with result events off, side by side (their events stay in the outbox;
    # no sweep runs in the benchmark)
    stack.start_api({**API_SETTINGS, "EVENTS_ENABLED": "false"})
    bench.log(f"API restarted at {stack.api_url} with result events off")
    off_one = sign_callbacks(bench.take_jobs(jobs, allotment["c1_off"]), "samples_ready")
    bench.service_closed("callback_c1_events_off", callback_operation(off_one), 1, kind="callback")
    off_32 = sign_callbacks(bench.take_jobs(jobs, allotment["c32_off"]), "samples_ready")
    bench.service_closed("callback_c32_events_off", callback_operation(off_32), 32, kind="callback")
    stack.start_api(API_SETTINGS)
    bench.log(f"API restarted at {stack.api_url} with {stack.api_settings}")
    paced = sign_callbacks(bench.take_jobs(jobs, allotment["open"]), "samples_ready")
    bench.service_open(
        "callback_open_3x",
        callback_operation(paced),
        callback_rate,
        kind="callback",
        multiple_of_submit_c32=3,
    )
    # 5. 30 ms of Odoo latency: the service, and the bare pipeline at 1 and 32 clients (what
    # the machine allows without any framework)
    stack.emulator.set_latency(0.03)
    try:
        for clients in (1, 32):
            bench.bare(f"bare_submit_odoo30ms_c{clients}", clients, odoo_latency_ms=30)
        for clients in plan.latency_concurrencies:
            bench.service_closed(f"submit_odoo30ms_c{clients}", submit, clients, odoo_latency_ms=30)
    finally:
        stack.emulator.set_latency(0.0)


class _py_spy:
    """Record the API with py-spy for the ``with`` block (if py-spy is installed and allowed)."""

    def __init__(self, stack: BenchStack, out: Path) -> None:
        self.stack = stack
        self.out = out
        self.child: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> None:
        spy = shutil.which("py-spy")
        if spy is None or self.stack.api is None:
            return
        self.child = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(self.stack.api.pid),
                "--output",
                str(self.out),
                "--rate",
                "200",
                "--nonblocking",
                "--threads",
                "--idle",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)

    def __exit__(self, *_exc: object) -> None:
        if self.child is not None:
            self.child.send_signal(2)  # SIGINT: py-spy writes its output and exits
            self.child.wait(30)


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _write(results: dict[str, Any], latencies: dict[str, list[float]], stamp: str) -> list[Path]:
    base = RESULTS / f"bench-{stamp}"
    paths = [base.with_suffix(".json"), base.with_name(base.name + "-latencies.json")]
    paths[0].write_text(json.dumps(results, indent=2, default=_json_default))
    paths[1].write_text(json.dumps(latencies))
    plot = report.plot(latencies, results, base.with_suffix(".png"))
    if plot is not None:
        paths.append(plot)
    for path in list(paths):
        latest = RESULTS / path.name.replace(f"bench-{stamp}", "latest")
        shutil.copyfile(path, latest)
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
