"""A stand-in for n8n: consumes generation jobs from RabbitMQ and posts signed callbacks."""

from creativeflow.devstack.n8n_simulator.outcomes import Outcome, OutcomeKind, decide_outcome
from creativeflow.devstack.n8n_simulator.simulator import (
    N8nSimulator,
    SimulatorConfig,
    SimulatorStats,
    load_job_validator,
)

__all__ = [
    "N8nSimulator",
    "Outcome",
    "OutcomeKind",
    "SimulatorConfig",
    "SimulatorStats",
    "decide_outcome",
    "load_job_validator",
]
