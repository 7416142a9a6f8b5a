"""``python -m creativeflow_devstack.n8n_simulator``: run the simulator in the foreground, taking
jobs from RabbitMQ (``--mode rabbitmq``, the default) or on a webhook (``--mode webhook``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from urllib.parse import urlsplit

from creativeflow_devstack.n8n_simulator.answering import AnswerConfig
from creativeflow_devstack.n8n_simulator.sender import ResultsRoute
from creativeflow_devstack.n8n_simulator.simulator import N8nSimulator, SimulatorConfig
from creativeflow_devstack.n8n_simulator.webhook import N8nWebhookSimulator, WebhookSimulatorConfig

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:5678/webhook/creativeflow-jobs"


def _secret_from_environment() -> str | None:
    if os.environ.get("N8N_CALLBACK_SECRET"):
        return os.environ["N8N_CALLBACK_SECRET"]
    secrets = [s.strip() for s in os.environ.get("N8N_CALLBACK_SECRETS", "").split(",")]
    return next((secret for secret in secrets if secret), None)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m creativeflow_devstack.n8n_simulator",
        description="Take CreativeFlow generation jobs and answer with signed n8n callbacks.",
    )
    parser.add_argument(
        "--mode",
        choices=("rabbitmq", "webhook"),
        default=os.environ.get("DISPATCH_MODE", "rabbitmq"),
        help="consume the job queue, or receive jobs on a webhook (env DISPATCH_MODE)",
    )
    parser.add_argument(
        "--webhook-url",
        default=os.environ.get("N8N_WEBHOOK_URL", DEFAULT_WEBHOOK_URL),
        help="webhook mode: where to listen, host, port and path (env N8N_WEBHOOK_URL)",
    )
    parser.add_argument(
        "--job-secret",
        default=os.environ.get("N8N_WEBHOOK_SECRET"),
        help="webhook mode: verifies the jobs' signatures (env N8N_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--rabbitmq-url",
        default=os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        help="AMQP URL (env RABBITMQ_URL)",
    )
    parser.add_argument(
        "--queue", default=os.environ.get("RABBITMQ_N8N_JOB_QUEUE", "creativeflow.n8n.jobs")
    )
    parser.add_argument(
        "--cancel-queue",
        default=os.environ.get("RABBITMQ_N8N_CANCEL_QUEUE", "creativeflow.n8n.cancellations"),
        help="the orchestrator's cancellation queue; '' to not consume it "
        "(env RABBITMQ_N8N_CANCEL_QUEUE)",
    )
    parser.add_argument(
        "--secret",
        default=_secret_from_environment(),
        help="callback signing secret (env N8N_CALLBACK_SECRET, else the first of "
        "the orchestrator's comma-separated N8N_CALLBACK_SECRETS)",
    )
    parser.add_argument("--delay", type=float, default=0.5, help="seconds before each callback")
    parser.add_argument("--platform-failure-rate", type=float, default=0.0)
    parser.add_argument("--content-rejection-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None, help="seed the failure draws")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs answered at once")
    parser.add_argument(
        "--per-stage-routes",
        action="store_true",
        help="post to callback.samples_url/final_url/error_url, not callback.url",
    )
    parser.add_argument(
        "--results-by-queue",
        action="store_true",
        default=os.environ.get("ENABLE_N8N_RESULTS_QUEUE", "").lower() in ("1", "true", "yes"),
        help="publish results to the orchestrator's results queue instead of posting them "
        "(env ENABLE_N8N_RESULTS_QUEUE)",
    )
    parser.add_argument(
        "--results-exchange",
        default=os.environ.get("RABBITMQ_GENERATION_EXCHANGE", "creativeflow.generation"),
        help="results by queue: the exchange (env RABBITMQ_GENERATION_EXCHANGE)",
    )
    parser.add_argument(
        "--results-routing-key",
        default=os.environ.get("RABBITMQ_N8N_RESULTS_ROUTING_KEY", "generation.result"),
        help="results by queue: the routing key (env RABBITMQ_N8N_RESULTS_ROUTING_KEY)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or N8N_CALLBACK_SECRET) is required")
    if args.mode == "webhook" and not args.job_secret:
        parser.error("--job-secret (or N8N_WEBHOOK_SECRET) is required in webhook mode")
    return args


def _results_route(args: argparse.Namespace) -> ResultsRoute | None:
    if not args.results_by_queue:
        return None
    return ResultsRoute(
        rabbitmq_url=args.rabbitmq_url,
        exchange=args.results_exchange,
        routing_key=args.results_routing_key,
    )


def _rabbitmq_simulator(args: argparse.Namespace) -> N8nSimulator:
    return N8nSimulator(
        SimulatorConfig(
            rabbitmq_url=args.rabbitmq_url,
            secret=args.secret,
            queue=args.queue,
            cancel_queue=args.cancel_queue or None,
            delay=args.delay,
            platform_failure_rate=args.platform_failure_rate,
            content_rejection_rate=args.content_rejection_rate,
            seed=args.seed,
            concurrency=args.concurrency,
            per_stage_routes=args.per_stage_routes,
            results_route=_results_route(args),
        )
    )


def _webhook_simulator(args: argparse.Namespace) -> N8nWebhookSimulator:
    listen = urlsplit(args.webhook_url)
    answering = AnswerConfig(
        secret=args.secret,
        delay=args.delay,
        platform_failure_rate=args.platform_failure_rate,
        content_rejection_rate=args.content_rejection_rate,
        seed=args.seed,
        concurrency=args.concurrency,
        per_stage_routes=args.per_stage_routes,
        results_route=_results_route(args),
    )
    return N8nWebhookSimulator(
        WebhookSimulatorConfig(
            job_secret=args.job_secret,
            answering=answering,
            host=listen.hostname or "127.0.0.1",
            port=listen.port or 80,
            path=listen.path or "/",
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING)  # pika narrates every connection at INFO
    simulator: N8nSimulator | N8nWebhookSimulator = (
        _webhook_simulator(args) if args.mode == "webhook" else _rabbitmq_simulator(args)
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        simulator.request_stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    simulator.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
