"""Settings: both naming styles of the seeds, and no placeholder secrets outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from creativeflow.settings import Settings


def test_database_url_is_built_from_its_parts_and_a_whole_url_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIGEN_DB_HOST", "db.internal")
    monkeypatch.setenv("AIGEN_DB_USER", "svc")
    monkeypatch.setenv("AIGEN_DB_PASSWORD", "p@ss/word")
    monkeypatch.setenv("AIGEN_DB_NAME", "tracking")
    built = Settings(_env_file=None)  # type: ignore[call-arg]
    assert built.database_url == "postgresql+psycopg2://svc:p%40ss%2Fword@db.internal:5432/tracking"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://other@h/d")
    assert Settings(_env_file=None).database_url == "postgresql+psycopg2://other@h/d"  # type: ignore[call-arg]


def test_rabbitmq_url_is_built_from_the_seed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_HOST", "mq")
    monkeypatch.setenv("RABBITMQ_VHOST", "/creative")
    monkeypatch.setenv("RABBITMQ_N8N_JOB_QUEUE", "jobs")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.rabbitmq_url == "amqp://guest:guest@mq:5672/%2Fcreative"
    assert settings.rabbitmq_queue == "jobs"


def test_secrets_do_not_show_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODOO_API_KEY", "very-secret-key-123")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "very-secret-key-123" not in repr(settings)
    assert settings.odoo_secret.get_secret_value() == "very-secret-key-123"


def test_production_refuses_placeholder_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="GATEWAY_SHARED_SECRET"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_production_starts_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name in ("GATEWAY_SHARED_SECRET", "ADMIN_TOKEN", "N8N_CALLBACK_SECRETS", "ODOO_API_KEY"):
        monkeypatch.setenv(name, f"{name.lower()}-Zx81kq0aP")
    monkeypatch.setenv("S3_ENDPOINT_URL", "https://storage.example.com")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "s3-secret-Zx81kq0aP")
    assert Settings(_env_file=None).environment == "production"  # type: ignore[call-arg]


def test_production_refuses_to_start_without_asset_storage_or_with_its_dev_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name in ("GATEWAY_SHARED_SECRET", "ADMIN_TOKEN", "N8N_CALLBACK_SECRETS", "ODOO_API_KEY"):
        monkeypatch.setenv(name, f"{name.lower()}-Zx81kq0aP")
    with pytest.raises(ValidationError, match="S3_ENDPOINT_URL"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("S3_ENDPOINT_URL", "https://storage.example.com")
    with pytest.raises(ValidationError, match="S3_SECRET_ACCESS_KEY") as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "dev-storage-secret" not in str(refused.value)


def test_storage_endpoints_must_be_http_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT_URL", "minio:9000")
    with pytest.raises(ValidationError, match="S3 endpoints must be http"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9000/")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000" and settings.storage_enabled
    assert "dev-storage-secret" not in repr(settings)


def test_callback_secrets_accept_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("N8N_CALLBACK_SECRETS", "old, new")
    assert Settings(_env_file=None).callback_secrets == ("old", "new")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("value", "rabbitmq", "webhook"),
    [(None, True, False), ("", True, False), ("true", True, True), ("false", False, False)],
    ids=["unset", "empty", "on", "off"],
)
def test_result_events_follow_the_dispatch_unless_set(
    monkeypatch: pytest.MonkeyPatch, value: str | None, rabbitmq: bool, webhook: bool
) -> None:
    """The webhook dispatch may run with no broker at all: its events wait in the outbox
    unless EVENTS_ENABLED says otherwise."""
    if value is None:
        monkeypatch.delenv("EVENTS_ENABLED", raising=False)
    else:
        monkeypatch.setenv("EVENTS_ENABLED", value)
    assert Settings(_env_file=None).events_enabled is rabbitmq  # type: ignore[call-arg]
    webhook_mode = Settings(_env_file=None, dispatch_mode="webhook")  # type: ignore[call-arg]
    assert webhook_mode.events_enabled is webhook


@pytest.mark.parametrize("name", ["STANDARD_MODEL", "ADVANCED_MODEL"])
@pytest.mark.parametrize("bad", ["Advanced", "creativeflow advanced", "x" * 65, "-v1", ""])
def test_the_model_settings_are_model_codes(
    monkeypatch: pytest.MonkeyPatch, name: str, bad: str
) -> None:
    monkeypatch.setenv(name, bad)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "model code" in str(refused.value)


def test_production_refuses_private_webhook_hosts_and_a_placeholder_webhook_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name in ("GATEWAY_SHARED_SECRET", "ADMIN_TOKEN", "N8N_CALLBACK_SECRETS", "ODOO_API_KEY"):
        monkeypatch.setenv(name, f"{name.lower()}-Zx81kq0aP")
    monkeypatch.setenv("S3_ENDPOINT_URL", "https://storage.example.com")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "s3-secret-Zx81kq0aP")
    assert not Settings(_env_file=None).client_webhooks_enabled  # type: ignore[call-arg]
    monkeypatch.setenv("CLIENT_WEBHOOK_SECRET", "changeme")
    with pytest.raises(ValidationError, match="CLIENT_WEBHOOK_SECRET"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("CLIENT_WEBHOOK_SECRET", "webhook-secret-Zx81kq0aP")
    assert Settings(_env_file=None).client_webhooks_enabled  # type: ignore[call-arg]
    monkeypatch.setenv("CLIENT_WEBHOOK_ALLOW_PRIVATE_HOSTS", "true")
    with pytest.raises(ValidationError, match="CLIENT_WEBHOOK_ALLOW_PRIVATE_HOSTS"):
        Settings(_env_file=None)  # type: ignore[call-arg]
