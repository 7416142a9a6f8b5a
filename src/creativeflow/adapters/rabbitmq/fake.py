"""An in-memory twin of :class:`PikaJobPublisher` for the use cases' unit tests."""

from __future__ import annotations

from creativeflow.adapters.rabbitmq.errors import BrokerUnreachable, PublishFailed
from creativeflow.domain.jobs import JobMessage


class RecordingPublisher:
    """Records every job it accepts; can be told to fail the next publishes or its health check."""

    def __init__(self) -> None:
        self.published: list[JobMessage] = []
        self.attempts = 0
        self.healthy = True
        self._failures: list[PublishFailed] = []

    def fail_next(self, count: int = 1, error: PublishFailed | None = None) -> None:
        """Make the next ``count`` publishes raise ``error``, by default `BrokerUnreachable`."""
        for _ in range(count):
            self._failures.append(error or BrokerUnreachable("simulated broker outage"))

    async def publish(self, job: JobMessage) -> None:
        self.attempts += 1
        if self._failures:
            failure = self._failures.pop(0)
            failure.job_id = failure.job_id or job.job_id
            raise failure
        self.published.append(job)

    async def check(self) -> bool:
        return self.healthy

    async def aclose(self) -> None:
        """Nothing to release."""

    def jobs_for(self, request_id: str) -> list[JobMessage]:
        return [job for job in self.published if job.request_id == request_id]

    @property
    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.published]
