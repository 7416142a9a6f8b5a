"""Errors of the RabbitMQ adapter. Every one is a :class:`DispatchUnavailable` (503 at the API).

    DispatchUnavailable                 (creativeflow.domain.errors)
    ├── PublishFailed                   the broker did not confirm the job
    │   ├── JobUnroutable               confirmed but returned: no queue bound for the routing key
    │   ├── JobNacked                   the broker refused it (Basic.Nack)
    │   ├── BrokerUnreachable           no connection, or it was lost again after one reconnect
    │   └── PublishTimedOut             no confirmation within ``confirm_timeout``
    └── TopologyError                   exchanges or queues could not be declared at start

``PublishFailed.outcome_unknown`` is true when the message may still have reached the queue (the
connection died or time ran out after it was sent): consumers must tolerate such a job arriving
after the caller was told it failed. The ``detail`` of each error is safe to show a client; the
broker's own words are in ``reason`` for logs.
"""

from __future__ import annotations

from creativeflow.domain.errors import DispatchUnavailable

_CLIENT_DETAIL = "The generation job could not be queued; please try again later."


class PublishFailed(DispatchUnavailable):
    outcome_unknown = False

    def __init__(self, reason: str, *, job_id: str | None = None) -> None:
        super().__init__(_CLIENT_DETAIL)
        self.reason = reason
        self.job_id = job_id

    def __str__(self) -> str:
        return f"{type(self).__name__}: {self.reason} (job {self.job_id})"


class JobUnroutable(PublishFailed):
    pass


class JobNacked(PublishFailed):
    pass


class BrokerUnreachable(PublishFailed):
    def __init__(self, reason: str, *, job_id: str | None = None, sent: bool = False) -> None:
        super().__init__(reason, job_id=job_id)
        self.outcome_unknown = sent


class PublishTimedOut(PublishFailed):
    outcome_unknown = True


class TopologyError(DispatchUnavailable):
    def __init__(self, reason: str) -> None:
        super().__init__("The job queue is not available.")
        self.reason = reason

    def __str__(self) -> str:
        return f"TopologyError: {self.reason}"
