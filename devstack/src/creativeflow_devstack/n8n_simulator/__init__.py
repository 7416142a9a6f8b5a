"""A stand-in for n8n: takes generation jobs from RabbitMQ (:class:`N8nSimulator`) or on a webhook
(:class:`N8nWebhookSimulator`) and answers both the same way, with signed callbacks or signed
messages on the results queue."""

from creativeflow_devstack.n8n_simulator.answering import AnswerConfig, JobAnswerer
from creativeflow_devstack.n8n_simulator.outcomes import Outcome, OutcomeKind, decide_outcome
from creativeflow_devstack.n8n_simulator.sender import ResultsRoute
from creativeflow_devstack.n8n_simulator.simulator import (
    N8nSimulator,
    SimulatorConfig,
    SimulatorStats,
    load_job_validator,
)
from creativeflow_devstack.n8n_simulator.webhook import (
    DEFAULT_WEBHOOK_PATH,
    N8nWebhookSimulator,
    WebhookSimulatorConfig,
)

__all__ = [
    "DEFAULT_WEBHOOK_PATH",
    "AnswerConfig",
    "JobAnswerer",
    "N8nSimulator",
    "N8nWebhookSimulator",
    "Outcome",
    "OutcomeKind",
    "ResultsRoute",
    "SimulatorConfig",
    "SimulatorStats",
    "WebhookSimulatorConfig",
    "decide_outcome",
    "load_job_validator",
]
