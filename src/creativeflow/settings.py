"""One typed settings object, read from the environment and an optional ``.env`` file.

The seeds name settings two ways (a whole URL, or its parts); both are accepted and the whole URL
wins. Secrets are ``SecretStr`` so they never show in a repr or a log line. Outside development the
service refuses to start with an empty or placeholder secret.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from creativeflow.domain.ai_models import is_model_code

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "placeholder"})
JWT_HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
JWT_PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    environment: Literal["development", "test", "staging", "production"] = Field(
        "development", validation_alias=AliasChoices("ENVIRONMENT", "APP_ENV")
    )
    api_host: str = Field("0.0.0.0", validation_alias="API_HOST")
    api_port: int = Field(8000, validation_alias="API_PORT")
    # browser origins allowed to call the API directly (CORS); empty: none, CORS off
    cors_allowed_origins_value: str = Field("", validation_alias="CORS_ALLOWED_ORIGINS")

    # --- tracking database -------------------------------------------------------------------
    database_url_value: str | None = Field(None, validation_alias="DATABASE_URL")
    db_host: str = Field("127.0.0.1", validation_alias="AIGEN_DB_HOST")
    db_port: int = Field(5432, validation_alias="AIGEN_DB_PORT")
    db_user: str = Field("postgres", validation_alias="AIGEN_DB_USER")
    db_password: SecretStr = Field(SecretStr(""), validation_alias="AIGEN_DB_PASSWORD")
    db_name: str = Field("creativeflow", validation_alias="AIGEN_DB_NAME")
    database_pool_size: int = Field(10, ge=1, validation_alias="DATABASE_POOL_SIZE")
    database_max_overflow: int = Field(5, ge=0, validation_alias="DATABASE_MAX_OVERFLOW")
    database_statement_timeout_ms: int = Field(
        5000, ge=100, validation_alias="DATABASE_STATEMENT_TIMEOUT_MS"
    )

    # --- RabbitMQ ------------------------------------------------------------------------------
    rabbitmq_url_value: str | None = Field(None, validation_alias="RABBITMQ_URL")
    rabbitmq_host: str = Field("127.0.0.1", validation_alias="RABBITMQ_HOST")
    rabbitmq_port: int = Field(5672, validation_alias="RABBITMQ_PORT")
    rabbitmq_user: str = Field("guest", validation_alias="RABBITMQ_USER")
    rabbitmq_password: SecretStr = Field(SecretStr("guest"), validation_alias="RABBITMQ_PASSWORD")
    rabbitmq_vhost: str = Field("/", validation_alias="RABBITMQ_VHOST")
    rabbitmq_exchange: str = Field(
        "creativeflow.generation", validation_alias="RABBITMQ_GENERATION_EXCHANGE"
    )
    rabbitmq_queue: str = Field("creativeflow.n8n.jobs", validation_alias="RABBITMQ_N8N_JOB_QUEUE")
    rabbitmq_routing_key: str = Field(
        "generation.job", validation_alias="RABBITMQ_N8N_JOB_ROUTING_KEY"
    )
    rabbitmq_cancel_queue: str = Field(
        "creativeflow.n8n.cancellations", validation_alias="RABBITMQ_N8N_CANCEL_QUEUE"
    )
    rabbitmq_cancel_routing_key: str = Field(
        "generation.cancel", validation_alias="RABBITMQ_N8N_CANCEL_ROUTING_KEY"
    )
    rabbitmq_dead_letter_exchange: str = Field(
        "creativeflow.generation.dlx", validation_alias="RABBITMQ_DEAD_LETTER_EXCHANGE"
    )
    rabbitmq_dead_letter_queue: str = Field(
        "creativeflow.n8n.jobs.dead", validation_alias="RABBITMQ_DEAD_LETTER_QUEUE"
    )
    rabbitmq_quorum_queue: bool = Field(True, validation_alias="RABBITMQ_QUORUM_QUEUE")
    # a job n8n rejects this many times (failed executions) goes to the dead-letter queue
    rabbitmq_job_delivery_limit: int = Field(
        5, ge=1, validation_alias="RABBITMQ_JOB_DELIVERY_LIMIT"
    )
    rabbitmq_publish_workers: int = Field(8, ge=1, validation_alias="RABBITMQ_PUBLISH_WORKERS")
    # n8n's results on a queue instead of (or beside) its HTTP callbacks; the queue's dead letters
    # and its delayed retries are "<queue>.dead" and "<queue>.retry"
    enable_n8n_results_queue: bool = Field(False, validation_alias="ENABLE_N8N_RESULTS_QUEUE")
    rabbitmq_results_queue: str = Field(
        "creativeflow.n8n.results", validation_alias="RABBITMQ_N8N_RESULTS_QUEUE"
    )
    rabbitmq_results_routing_key: str = Field(
        "generation.result", validation_alias="RABBITMQ_N8N_RESULTS_ROUTING_KEY"
    )
    results_prefetch: int = Field(8, ge=1, le=256, validation_alias="N8N_RESULTS_PREFETCH")
    results_retry_delay_seconds: float = Field(
        10.0, ge=0.1, le=3600, validation_alias="N8N_RESULTS_RETRY_DELAY_SECONDS"
    )
    results_max_attempts: int = Field(
        30, ge=1, le=1000, validation_alias="N8N_RESULTS_MAX_ATTEMPTS"
    )
    rabbitmq_connect_timeout: float = Field(5.0, gt=0, validation_alias="RABBITMQ_CONNECT_TIMEOUT")
    rabbitmq_confirm_timeout: float = Field(10.0, gt=0, validation_alias="RABBITMQ_CONFIRM_TIMEOUT")

    # --- result events (the events exchange, fed from the outbox) --------------------------------
    # unset: on with DISPATCH_MODE=rabbitmq, off with webhook (which may have no broker at all)
    events_enabled_value: bool | None = Field(None, validation_alias="EVENTS_ENABLED")
    rabbitmq_events_exchange: str = Field(
        "creativeflow.events", validation_alias="RABBITMQ_EVENTS_EXCHANGE"
    )
    # where an event no consumer's binding wants waits (the events exchange's alternate exchange)
    rabbitmq_events_unrouted_exchange: str = Field(
        "creativeflow.events.unrouted", validation_alias="RABBITMQ_EVENTS_UNROUTED_EXCHANGE"
    )
    rabbitmq_events_unrouted_queue: str = Field(
        "creativeflow.events.unrouted", validation_alias="RABBITMQ_EVENTS_UNROUTED_QUEUE"
    )
    rabbitmq_events_confirm_timeout: float = Field(
        5.0, gt=0, validation_alias="RABBITMQ_EVENTS_CONFIRM_TIMEOUT"
    )
    events_relay_batch: int = Field(100, ge=1, le=10000, validation_alias="EVENTS_RELAY_BATCH")
    # after a failed publish, the relays right after commits wait this long (the sweep does not)
    events_retry_after_seconds: float = Field(
        30.0, ge=0, validation_alias="EVENTS_RETRY_AFTER_SECONDS"
    )

    # --- Odoo ----------------------------------------------------------------------------------
    odoo_url: str = Field("http://127.0.0.1:8069", validation_alias="ODOO_URL")
    odoo_db: str = Field("creativeflow", validation_alias=AliasChoices("ODOO_DB", "ODOO_DATABASE"))
    odoo_login: str = Field(
        "orchestrator", validation_alias=AliasChoices("ODOO_LOGIN", "ODOO_USER")
    )
    odoo_password: SecretStr = Field(SecretStr(""), validation_alias="ODOO_PASSWORD")
    odoo_api_key: SecretStr = Field(SecretStr(""), validation_alias="ODOO_API_KEY")
    odoo_protocol: Literal["xmlrpc", "jsonrpc", "json2"] = Field(
        "xmlrpc", validation_alias="ODOO_PROTOCOL"
    )
    odoo_connect_timeout: float = Field(3.0, gt=0, validation_alias="ODOO_CONNECT_TIMEOUT")
    odoo_read_timeout: float = Field(10.0, gt=0, validation_alias="ODOO_READ_TIMEOUT")
    odoo_max_attempts: int = Field(3, ge=1, validation_alias="ODOO_MAX_ATTEMPTS")
    odoo_workers: int = Field(16, ge=1, validation_alias="ODOO_WORKERS")

    # --- Notification Service and n8n ----------------------------------------------------------
    notification_service_url: str = Field(
        "http://127.0.0.1:8025",
        validation_alias=AliasChoices("NOTIFICATION_SERVICE_URL", "NOTIFICATION_SERVICE_API_URL"),
    )
    notification_timeout: float = Field(3.0, gt=0, validation_alias="NOTIFICATION_TIMEOUT")
    notification_max_attempts: int = Field(3, ge=1, validation_alias="NOTIFICATION_MAX_ATTEMPTS")
    n8n_callback_base_url: str = Field(
        "http://127.0.0.1:8000",
        validation_alias=AliasChoices("N8N_CALLBACK_BASE_URL", "N8N_CALLBACK_URL"),
    )
    n8n_callback_secrets: SecretStr = Field(
        SecretStr("dev-callback-secret"), validation_alias="N8N_CALLBACK_SECRETS"
    )
    callback_tolerance_seconds: int = Field(
        300, ge=1, validation_alias="CALLBACK_TOLERANCE_SECONDS"
    )

    # --- job dispatch: RabbitMQ (default) or a signed POST to n8n's webhook ----------------------
    dispatch_mode: Literal["rabbitmq", "webhook"] = Field(
        "rabbitmq", validation_alias="DISPATCH_MODE"
    )
    n8n_webhook_url: str = Field(
        "http://127.0.0.1:5678/webhook/creativeflow-jobs", validation_alias="N8N_WEBHOOK_URL"
    )
    # signs outgoing jobs (Standard Webhooks); n8n's workflow verifies it
    n8n_webhook_secret: SecretStr = Field(
        SecretStr("dev-webhook-secret"), validation_alias="N8N_WEBHOOK_SECRET"
    )
    n8n_webhook_timeout: float = Field(5.0, gt=0, validation_alias="N8N_WEBHOOK_TIMEOUT")
    n8n_webhook_max_attempts: int = Field(3, ge=1, validation_alias="N8N_WEBHOOK_MAX_ATTEMPTS")

    # --- identity ------------------------------------------------------------------------------
    gateway_shared_secret: SecretStr = Field(
        SecretStr("dev-gateway-secret"), validation_alias="GATEWAY_SHARED_SECRET"
    )
    admin_token: SecretStr = Field(SecretStr("dev-admin-token"), validation_alias="ADMIN_TOKEN")
    # trusted_gateway: X-User-Id with X-Gateway-Secret; jwt: Authorization: Bearer <jwt>, user = sub
    identity_mode: Literal["trusted_gateway", "jwt"] = Field(
        "trusted_gateway", validation_alias="IDENTITY_MODE"
    )
    jwt_algorithms_value: str = Field("HS256", validation_alias="JWT_ALGORITHMS")
    jwt_secret: SecretStr = Field(SecretStr(""), validation_alias="JWT_SECRET")
    jwt_public_key: str = Field("", validation_alias="JWT_PUBLIC_KEY")
    jwt_issuer: str = Field("", validation_alias="JWT_ISSUER")
    jwt_audience: str = Field("", validation_alias="JWT_AUDIENCE")
    jwt_leeway_seconds: int = Field(30, ge=0, le=300, validation_alias="JWT_LEEWAY_SECONDS")
    # storage hosts callback asset URLs may point at (comma-separated); empty: any http(s) host
    asset_url_hosts_value: str = Field("", validation_alias="ASSET_URL_HOSTS")

    # --- object storage of the assets (S3-compatible: MinIO, AWS S3, ...) -----------------------
    # empty: assets are not copied and users get the provider's URLs (development and tests
    # only: outside them the service refuses to start without storage)
    s3_endpoint_url: str = Field("", validation_alias="S3_ENDPOINT_URL")
    # the host signed links name, when users reach the storage by another address than the
    # service does; empty: S3_ENDPOINT_URL
    s3_public_endpoint_url: str = Field("", validation_alias="S3_PUBLIC_ENDPOINT_URL")
    s3_bucket: str = Field("creativeflow-assets", min_length=3, validation_alias="S3_BUCKET")
    s3_access_key_id: str = Field("creativeflow", validation_alias="S3_ACCESS_KEY_ID")
    s3_secret_access_key: SecretStr = Field(
        SecretStr("dev-storage-secret"), validation_alias="S3_SECRET_ACCESS_KEY"
    )
    s3_region: str = Field("us-east-1", min_length=1, validation_alias="S3_REGION")
    s3_connect_timeout: float = Field(3.0, gt=0, validation_alias="S3_CONNECT_TIMEOUT")
    s3_read_timeout: float = Field(30.0, gt=0, validation_alias="S3_READ_TIMEOUT")
    s3_max_attempts: int = Field(3, ge=1, validation_alias="S3_MAX_ATTEMPTS")
    # how long a signed link to a stored asset works (S3 allows 7 days at most)
    asset_url_ttl_seconds: int = Field(
        900, ge=1, le=604800, validation_alias="ASSET_URL_TTL_SECONDS"
    )
    asset_max_bytes: int = Field(50 * 1024 * 1024, ge=1, validation_alias="ASSET_MAX_BYTES")
    asset_fetch_timeout: float = Field(10.0, gt=0, validation_alias="ASSET_FETCH_TIMEOUT")
    asset_copy_max_attempts: int = Field(8, ge=1, validation_alias="ASSET_COPY_MAX_ATTEMPTS")
    asset_copy_retry_seconds: float = Field(15.0, ge=0, validation_alias="ASSET_COPY_RETRY_SECONDS")
    asset_copy_lease_seconds: float = Field(
        300.0, gt=0, validation_alias="ASSET_COPY_LEASE_SECONDS"
    )

    # --- request rules -------------------------------------------------------------------------
    samples_deadline_seconds: int = Field(900, ge=1, validation_alias="SAMPLES_DEADLINE_SECONDS")
    final_deadline_seconds: int = Field(1800, ge=1, validation_alias="FINAL_DEADLINE_SECONDS")
    # Odoo grants each request's model (the tier's allowed models and default); these two are
    # the job's model when an Odoo older than the model catalogue grants none, and the model
    # the older request field ``advanced_model: true`` asks for
    standard_model: str = Field("creativeflow-standard-v1", validation_alias="STANDARD_MODEL")
    advanced_model: str = Field("creativeflow-advanced-v1", validation_alias="ADVANCED_MODEL")

    idempotency_key_ttl_hours: float = Field(
        24.0, gt=0, validation_alias="IDEMPOTENCY_KEY_TTL_HOURS"
    )
    # a webhook-id older than the signature tolerance can no longer be replayed; the record is
    # kept this long for operators, then the recovery sweep deletes it
    received_callback_retention_hours: float = Field(
        168.0, gt=0, validation_alias="RECEIVED_CALLBACK_RETENTION_HOURS"
    )

    # --- recovery ------------------------------------------------------------------------------
    recovery_interval_seconds: float = Field(
        30.0, ge=0, validation_alias="RECOVERY_INTERVAL_SECONDS"
    )
    recovery_grace_seconds: int = Field(60, ge=0, validation_alias="RECOVERY_GRACE_SECONDS")
    dispatch_deadline_seconds: int = Field(120, ge=1, validation_alias="DISPATCH_DEADLINE_SECONDS")

    # --- live event streams (GET /api/v1/generations/{id}/events) ------------------------------
    event_streams_max: int = Field(1000, ge=1, validation_alias="EVENT_STREAMS_MAX")
    event_streams_max_per_user: int = Field(5, ge=1, validation_alias="EVENT_STREAMS_MAX_PER_USER")
    event_stream_keepalive_seconds: float = Field(
        15.0, gt=0, le=300, validation_alias="EVENT_STREAM_KEEPALIVE_SECONDS"
    )
    event_stream_max_lifetime_seconds: float = Field(
        3600.0, gt=0, validation_alias="EVENT_STREAM_MAX_LIFETIME_SECONDS"
    )
    event_stream_retry_ms: int = Field(
        3000, ge=0, le=600_000, validation_alias="EVENT_STREAM_RETRY_MS"
    )

    # --- clients' webhooks (a webhook_url on a submit) -----------------------------------------
    # empty: no webhooks (a submit giving a webhook_url is refused)
    client_webhook_secret: SecretStr = Field(
        SecretStr(""), validation_alias="CLIENT_WEBHOOK_SECRET"
    )
    client_webhook_timeout: float = Field(
        5.0, gt=0, le=30, validation_alias="CLIENT_WEBHOOK_TIMEOUT"
    )
    client_webhook_max_attempts: int = Field(
        10, ge=1, le=100, validation_alias="CLIENT_WEBHOOK_MAX_ATTEMPTS"
    )
    client_webhook_retry_seconds: float = Field(
        5.0, gt=0, validation_alias="CLIENT_WEBHOOK_RETRY_SECONDS"
    )
    client_webhook_sweep_seconds: float = Field(
        10.0, ge=0, validation_alias="CLIENT_WEBHOOK_SWEEP_SECONDS"
    )
    # http and loopback or private hosts as webhooks: development and tests only
    client_webhook_allow_private_hosts: bool = Field(
        False, validation_alias="CLIENT_WEBHOOK_ALLOW_PRIVATE_HOSTS"
    )

    # --- feature toggles (seed names) ----------------------------------------------------------
    enable_advanced_model_selector: bool = Field(
        True, validation_alias="ENABLE_ADVANCED_MODEL_SELECTOR"
    )
    enable_detailed_n8n_error_logging: bool = Field(
        False, validation_alias="ENABLE_DETAILED_N8N_ERROR_LOGGING"
    )
    enable_credit_refund_on_system_failure: bool = Field(
        True, validation_alias="ENABLE_CREDIT_REFUND_ON_SYSTEM_FAILURE"
    )
    enable_detailed_logging: bool = Field(
        False, validation_alias=AliasChoices("ENABLE_DETAILED_LOGGING", "enableDetailedLogging")
    )
    enable_n8n_callback_security: bool = Field(
        True,
        validation_alias=AliasChoices("ENABLE_N8N_CALLBACK_SECURITY", "enableN8NCallbackSecurity"),
    )
    use_sync_credit_check: bool = Field(
        True, validation_alias=AliasChoices("USE_SYNC_CREDIT_CHECK", "useSyncCreditCheck")
    )

    # --- logging -------------------------------------------------------------------------------
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["json", "text"] = Field("json", validation_alias="LOG_FORMAT")

    @cached_property
    def database_url(self) -> str:
        if self.database_url_value:
            return self.database_url_value
        password = quote(self.db_password.get_secret_value(), safe="")
        auth = f"{quote(self.db_user, safe='')}:{password}@" if password else f"{self.db_user}@"
        return f"postgresql+psycopg2://{auth}{self.db_host}:{self.db_port}/{self.db_name}"

    @cached_property
    def rabbitmq_url(self) -> str:
        if self.rabbitmq_url_value:
            return self.rabbitmq_url_value
        password = quote(self.rabbitmq_password.get_secret_value(), safe="")
        vhost = quote(self.rabbitmq_vhost, safe="")
        return (
            f"amqp://{quote(self.rabbitmq_user, safe='')}:{password}"
            f"@{self.rabbitmq_host}:{self.rabbitmq_port}/{vhost}"
        )

    @property
    def events_enabled(self) -> bool:
        """Whether result events are published to the events exchange."""
        if self.events_enabled_value is not None:
            return self.events_enabled_value
        return self.dispatch_mode == "rabbitmq"

    @property
    def odoo_secret(self) -> SecretStr:
        """An API key is preferred over a password when both are set."""
        return self.odoo_api_key if self.odoo_api_key.get_secret_value() else self.odoo_password

    @property
    def callback_secrets(self) -> tuple[str, ...]:
        """Several comma-separated secrets at once, so a secret can be rotated without downtime."""
        raw = self.n8n_callback_secrets.get_secret_value()
        return tuple(s.strip() for s in raw.split(",") if s.strip())

    @property
    def jwt_algorithms(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.jwt_algorithms_value.split(",") if a.strip())

    @property
    def jwt_uses_hmac(self) -> bool:
        return all(a in JWT_HMAC_ALGORITHMS for a in self.jwt_algorithms)

    @property
    def jwt_public_key_pem(self) -> str:
        """The PEM with real line breaks (an env var may carry them as literal ``\\n``)."""
        return self.jwt_public_key.replace("\\n", "\n").strip()

    @property
    def cors_allowed_origins(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.cors_allowed_origins_value.split(",") if o.strip())

    @field_validator("events_enabled_value", mode="before")
    @classmethod
    def _unset_when_empty(cls, raw: object) -> object:
        """``EVENTS_ENABLED=`` (as a compose file's ``${EVENTS_ENABLED:-}`` gives) is unset."""
        return None if isinstance(raw, str) and not raw.strip() else raw

    @field_validator("standard_model", "advanced_model")
    @classmethod
    def _model_codes_only(cls, code: str) -> str:
        if not is_model_code(code):
            raise ValueError(
                "must be a model code of Odoo's catalogue: lower case letters, digits, '.', '_' "
                "and '-', at most 64 characters"
            )
        return code

    @field_validator("cors_allowed_origins_value")
    @classmethod
    def _origins_only(cls, raw: str) -> str:
        """An origin is a scheme, a host and maybe a port: a path or a trailing slash would
        never match what a browser sends, and the origin would silently not be allowed."""
        for origin in (o.strip() for o in raw.split(",") if o.strip()):
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or (parts.path or parts.query or parts.fragment or "@" in parts.netloc)
            ):
                raise ValueError(
                    f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin such as "
                    "https://app.example.com (scheme, host, optional port; no path)"
                )
        return raw

    @property
    def storage_enabled(self) -> bool:
        return bool(self.s3_endpoint_url.strip())

    @field_validator("s3_endpoint_url", "s3_public_endpoint_url")
    @classmethod
    def _endpoint_url(cls, raw: str) -> str:
        raw = raw.strip()
        parts = urlsplit(raw)
        if raw and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("S3 endpoints must be http(s) URLs such as http://127.0.0.1:9000")
        return raw.rstrip("/")

    @property
    def asset_url_hosts(self) -> frozenset[str]:
        raw = self.asset_url_hosts_value.split(",")
        return frozenset(h.strip().lower() for h in raw if h.strip())

    @model_validator(mode="after")
    def _check_jwt_identity(self) -> Settings:
        """JWT mode cannot work half-configured, in any environment: refuse to start."""
        if self.identity_mode != "jwt":
            return self
        from jwt import get_algorithm_by_name
        from jwt.exceptions import InvalidKeyError

        algorithms = self.jwt_algorithms
        known = JWT_HMAC_ALGORITHMS | JWT_PUBLIC_KEY_ALGORITHMS
        unknown = [a for a in algorithms if a not in known]
        if not algorithms or unknown:
            raise ValueError(f"JWT_ALGORITHMS: unsupported {unknown or 'empty list'}")
        if not self.jwt_uses_hmac and any(a in JWT_HMAC_ALGORITHMS for a in algorithms):
            # one key family only: a public key must never be usable as an HMAC secret
            raise ValueError("JWT_ALGORITHMS must not mix HMAC and public-key algorithms")
        if not self.jwt_issuer.strip() or not self.jwt_audience.strip():
            raise ValueError("IDENTITY_MODE=jwt needs JWT_ISSUER and JWT_AUDIENCE")
        if self.jwt_uses_hmac and len(self.jwt_secret.get_secret_value().encode()) < 32:
            raise ValueError("IDENTITY_MODE=jwt with HMAC needs a JWT_SECRET of 32 bytes or more")
        name, key = (
            ("JWT_SECRET", self.jwt_secret.get_secret_value())
            if self.jwt_uses_hmac
            else ("JWT_PUBLIC_KEY", self.jwt_public_key_pem)
        )
        try:
            prepared = get_algorithm_by_name(algorithms[0]).prepare_key(key)
        except (InvalidKeyError, ValueError, TypeError):
            raise ValueError(f"{name} is not a usable key for {algorithms[0]}") from None
        if hasattr(prepared, "private_bytes"):
            raise ValueError("JWT_PUBLIC_KEY holds a private key; give the public key only")
        return self

    @property
    def client_webhooks_enabled(self) -> bool:
        return bool(self.client_webhook_secret.get_secret_value())

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment in ("development", "test"):
            return self
        named = {
            "ADMIN_TOKEN": self.admin_token,
            "N8N_CALLBACK_SECRETS": self.n8n_callback_secrets,
            "ODOO_API_KEY or ODOO_PASSWORD": self.odoo_secret,
        }
        if self.identity_mode == "trusted_gateway":
            named["GATEWAY_SHARED_SECRET"] = self.gateway_shared_secret
        elif self.jwt_uses_hmac:
            named["JWT_SECRET"] = self.jwt_secret
        else:
            named["JWT_PUBLIC_KEY"] = SecretStr(self.jwt_public_key_pem)
        if self.dispatch_mode == "webhook":
            named["N8N_WEBHOOK_SECRET"] = self.n8n_webhook_secret
        if self.storage_enabled:
            named["S3_SECRET_ACCESS_KEY"] = self.s3_secret_access_key
        if self.client_webhooks_enabled:
            named["CLIENT_WEBHOOK_SECRET"] = self.client_webhook_secret
        weak = [
            name
            for name, value in named.items()
            if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
            or value.get_secret_value().startswith("dev-")
        ]
        if not self.enable_n8n_callback_security:
            weak.append("ENABLE_N8N_CALLBACK_SECURITY (must stay on)")
        if self.client_webhook_allow_private_hosts:
            weak.append("CLIENT_WEBHOOK_ALLOW_PRIVATE_HOSTS (must stay off)")
        if not self.storage_enabled:
            # provider URLs expire within the hour: paid output needs our own copy
            weak.append("S3_ENDPOINT_URL (the assets' storage must be set)")
        if weak:
            raise ValueError(
                f"refusing to start in {self.environment} with empty or placeholder secrets: "
                + ", ".join(weak)
            )
        return self
