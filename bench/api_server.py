"""The API as the benchmark runs it: ``creativeflow serve`` plus a read-only counters route.

    python -m bench.api_server --port 8123      (settings from the environment, no .env file)

It is the production app (``create_app`` with the real composition root, one uvicorn worker,
uvloop and httptools when installed, no access log), with two additions that only observe:

- the container's publisher and credit ledger are wrapped, on the instance, to count publishes
  and Odoo calls;
- ``GET /__bench__/counters`` answers those counts and the tracking database's
  ``TransactionCounter`` (committed transactions and statements), and ``POST
  /__bench__/counters/reset`` zeroes them.

The harness reads the counters before and after a phase; the RSS of this process is what the
memory check samples.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from creativeflow.api.app import create_app
from creativeflow.bootstrap import Container, build_container
from creativeflow.logging_setup import configure_logging
from creativeflow.settings import Settings

COUNTERS_PATH = "/__bench__/counters"


class CallCounts:
    """Counts kept by the wrappers below; a lock because the wrappers run on the event loop and
    the counters route may be read at any time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, name: str) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


def _count_async_method(target: Any, method: str, counts: CallCounts, name: str) -> None:
    """Shadow ``target.method`` with a wrapper that counts completed and failed calls."""
    original = getattr(target, method)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            result = await original(*args, **kwargs)
        except Exception:
            counts.add(f"{name}_failed")
            raise
        counts.add(name)
        return result

    setattr(target, method, counted)


def counting_container(counts: CallCounts, app_holder: dict[str, Any]) -> Any:
    """The production container (with the app's metrics, as ``create_app`` wires it), its
    publisher and credit ledger wrapped once more to count."""

    def factory(settings: Settings) -> Container:
        container = build_container(settings, metrics=app_holder["app"].state.metrics)
        _count_async_method(container.publisher, "publish", counts, "publishes")
        for method in ("debit", "refund", "ledger_by_requests", "get_entitlements"):
            _count_async_method(container.credits, method, counts, f"odoo_{method}")
        return container

    return factory


def build_app(settings: Settings) -> Any:
    counts = CallCounts()
    holder: dict[str, Any] = {}
    app = create_app(settings, container_factory=counting_container(counts, holder))
    holder["app"] = app  # the factory runs in the lifespan, once the app exists

    async def read_counters() -> dict[str, Any]:
        container: Container = app.state.container
        counter = container.db.counter
        return {
            "transactions": counter.transactions,
            "statements": counter.statements,
            # this handler runs on the event loop's thread: its CPU so far, against the
            # process's, splits the cost between the loop (HTTP, FastAPI, the use cases'
            # coroutines) and the worker threads (database, Odoo, RabbitMQ)
            "loop_thread_cpu_s": time.thread_time(),
            "process_cpu_s": time.process_time(),
            **counts.snapshot(),
        }

    async def reset_counters() -> dict[str, bool]:
        app.state.container.db.counter.reset()
        counts.reset()
        return {"ok": True}

    app.add_api_route(COUNTERS_PATH, read_counters, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        COUNTERS_PATH + "/reset", reset_counters, methods=["POST"], include_in_schema=False
    )
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.api_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    configure_logging(settings.log_level, settings.log_format, settings.enable_detailed_logging)
    uvicorn.run(
        build_app(settings),
        host=options.host,
        port=options.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
