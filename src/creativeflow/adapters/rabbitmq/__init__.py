"""RabbitMQ adapter: the job publisher (pika, publisher confirms), its topology."""

from creativeflow.adapters.rabbitmq.config import RabbitConfig, redact_url
from creativeflow.adapters.rabbitmq.errors import (
    BrokerUnreachable,
    JobNacked,
    JobUnroutable,
    PublishFailed,
    PublishTimedOut,
    TopologyError,
)
from creativeflow.adapters.rabbitmq.publisher import JobPublisher, PikaJobPublisher
from creativeflow.adapters.rabbitmq.topology import DeclaredTopology

__all__ = [
    "BrokerUnreachable",
    "DeclaredTopology",
    "JobNacked",
    "JobPublisher",
    "JobUnroutable",
    "PikaJobPublisher",
    "PublishFailed",
    "PublishTimedOut",
    "RabbitConfig",
    "TopologyError",
    "redact_url",
]
