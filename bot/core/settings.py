"""Configuration read from the environment, once, on first use (never at import time).

Every environment variable the concierge reads is read here (nowhere else in bot/, actions/ or
connectors/), with its embedded default, so `make run` works on a fresh machine with no `.env` at
all. `.env.example` and README.md document the same names. Development-only defaults for secrets
are applied here too, and only outside production (`strict`); preflight refuses them anyway.
`bot.settings` re-exports this module for the many existing imports.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, overload

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
# The CONCIERGE_ENV values in which missing or default secrets are tolerated (with warnings).
RELAXED_ENVS = ("development", "dev", "test")
# The CONCIERGE_ENV values that never get a development default for a secret.
STRICT_ENVS = ("production", "prod", "staging")
# The case-link secret (PAGING_LINK_SECRET) used outside production when none is set. Public:
# preflight lists it as a published default, and production never gets it.
DEV_PAGING_LINK_SECRET = "concierge-INSECURE-development-case-link-secret"


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...


def _env(name: str, default: str | None = None) -> str | None:
    """The variable, or `default` when it is unset or empty."""
    value = os.environ.get(name)
    return value if value else default


def _env_name(raw: str | None) -> str:
    return (raw or "development").strip().lower()


def unset_variables(names: Iterable[str]) -> list[str]:
    """Which of these variables are unset or empty: for the files Rasa fills from the environment
    itself (endpoints.yml's `${NAME}`), checked by preflight; read here like every variable."""
    return [name for name in names if not _env(name)]


def current_env() -> str:
    """CONCIERGE_ENV as it is right now (lower-cased; `development` when unset), for the CRM's
    safety checks that must see a change without `get_settings.cache_clear()`."""
    return _env_name(_env("CONCIERGE_ENV"))


@dataclass(frozen=True)
class SandboxSettings:
    """The local WeCom stand-in (bot/sandbox; development and tests only). None: the sandbox's
    own default (bot.wecom.dev_defaults)."""

    host: str = "127.0.0.1"
    port: int | None = None
    log_level: str = "INFO"
    connector_url: str = "http://127.0.0.1:5005"  # where it delivers WeCom's callbacks
    token_ttl_s: int = 7200
    callback_retries: int = 3
    callback_timeout_s: float = 5.0
    aibot_name: str | None = None


def load_sandbox_settings() -> SandboxSettings:
    """Read at call time: each sandbox built in a test sees the environment of that moment."""
    port = _env("SANDBOX_PORT")
    return SandboxSettings(
        host=_env("SANDBOX_HOST", "127.0.0.1"),
        port=int(port) if port else None,
        log_level=(_env("SANDBOX_LOG_LEVEL", "INFO")).upper(),
        connector_url=(_env("SANDBOX_CONNECTOR_URL", "http://127.0.0.1:5005")).rstrip("/"),
        token_ttl_s=int(_env("SANDBOX_TOKEN_TTL", "7200")),
        callback_retries=int(_env("SANDBOX_CALLBACK_RETRIES", "3")),
        callback_timeout_s=float(_env("SANDBOX_CALLBACK_TIMEOUT_S", "5")),
        aibot_name=_env("SANDBOX_AIBOT_NAME"),
    )


@dataclass(frozen=True)
class EventBrokerSettings:
    """RabbitMQ, where Rasa's pika event broker publishes (endpoints.production.yml reads the
    same names) and `concierge events consume` reads (bot/events)."""

    host: str = "127.0.0.1"
    port: int = 5672
    username: str = "guest"
    password: str = "guest"
    queue: str = "concierge_events"
    exchange: str = "rasa-exchange"
    metrics_port: int = 9106  # the consumer's /metrics, /healthz, /readyz
    # bot.events.backfill: tracker rows older than this are settled from the tracker store when
    # the broker never delivered them; a pass every interval (0: off)
    backfill_grace_s: float = 60.0
    backfill_interval_s: float = 30.0


def load_event_broker_settings() -> EventBrokerSettings:
    """Read at call time (the consumer starts once; tests set the environment per test)."""
    return EventBrokerSettings(
        host=_env("EVENT_BROKER_HOST", "127.0.0.1"),
        port=int(_env("EVENT_BROKER_PORT", "5672")),
        username=_env("EVENT_BROKER_USERNAME", "guest"),
        password=_env("EVENT_BROKER_PASSWORD", "guest"),
        queue=_env("EVENT_BROKER_QUEUE", "concierge_events"),
        exchange=_env("EVENT_BROKER_EXCHANGE", "rasa-exchange"),
        metrics_port=int(_env("EVENTS_METRICS_PORT", "9106")),
        backfill_grace_s=float(_env("EVENTS_BACKFILL_GRACE_S", "60")),
        backfill_interval_s=float(_env("EVENTS_BACKFILL_INTERVAL_S", "30")),
    )


@dataclass(frozen=True)
class IntakeSettings:
    """The WeCom intake server (bot/wecom/intake_server.py): where it listens, whom it tells."""

    host: str = "127.0.0.1"
    port: int = 5006
    notify_url: str = "http://127.0.0.1:5005/webhooks/wecom/inbox"


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    knowledge_dir: Path
    weather_provider: str  # "demo" (deterministic, offline) or "qweather"
    qweather_api_host: str
    qweather_key: str | None
    weather_timeout_s: float
    crm_encryption_key: str | None
    sla_policy_file: Path
    rasa_auth_token: str | None
    wecom_api_base: str
    wecom_corp_id: str
    wecom: dict[str, str | None] = field(default_factory=dict)
    # Corp tag ids for mirroring preference tags to WeCom (bot.wecom.tag_mirror); unset = off.
    wecom_corp_tags_file: str | None = None
    # The 微信客服 link guests open to chat privately (shown in groups: bot.wecom.surfaces.group_privacy).
    wecom_kf_url: str | None = None
    # Weather extras (bot.knowledge.weather): GeoAPI base (empty: derived from the API host),
    # forecast length ("3d", "7d", "10d", "15d", "30d", as the QWeather plan allows), cache TTL.
    qweather_geo_base: str | None = None
    qweather_forecast_days: str = "7d"
    weather_cache_ttl_s: int = 3600
    # Security (bot.preflight, docs/SECURITY.md). CONCIERGE_ENV as set (None: not set; preflight
    # then treats the process as production: only an explicit development/test relaxes it).
    concierge_env_raw: str | None = None
    # The dedicated secret that signs case links (bot.paging.links), and how long a link works.
    paging_link_secret: str | None = None
    case_link_ttl_s: int = 7 * 24 * 3600
    # Shared secret the intake server sends Rasa's /webhooks/wecom/inbox (unset: loopback only).
    wecom_inbox_token: str | None = None
    # Rasa's tracker store as a SQLAlchemy URL, for export / erasure / retention (unset: the
    # SQLite file of endpoints.yml).
    tracker_database_url: str | None = None
    # Where guest writes wait while the CRM is down (bot.spool); None: var/spool/crm-writes.jsonl.
    spool_file: str | None = None
    # Photos and voice messages guests send (bot.guest_media), and the largest one kept.
    media_dir: Path = PROJECT_ROOT / "var" / "media"
    media_max_bytes: int = 10 * 1024 * 1024
    # Largest request body any of our HTTP servers accepts (Rasa's and the action server's Sanic,
    # the intake server); larger ones get 413.
    max_request_bytes: int = 1024 * 1024
    # HMAC key of the CRM's lookup digests (bot.crm.crypto.blind_index); never rotated with the
    # encryption key, so lookups survive `concierge keys rotate`.
    crm_index_key: str | None = None
    # Interface the action server listens on (only Rasa calls it).
    actions_host: str = "127.0.0.1"
    # Logs (bot/ops/logs.py): "text" or "json" lines with correlation ids; the root level.
    log_format: str = "text"
    log_level: str = "INFO"
    # Where the SLA worker serves /metrics, /healthz, /readyz (it has no HTTP server else; 0: off).
    worker_metrics_port: int = 9105
    # Retention (bot.retention, run by the worker): handled raw WeCom messages (inbox payloads,
    # outbox bodies) and Rasa's tracker events older than these many days are dropped.
    retention_messages_days: int = 30
    retention_tracker_days: int = 180
    # The admins' training loop (bot/training): see TrainingSettings.
    training: "TrainingSettings" = None  # type: ignore[assignment]
    # Marketing (bot.marketing): caps, quiet hours, bands, offers; touchpoint sequences.
    marketing_policy_file: Path = PROJECT_ROOT / "data" / "marketing" / "policy.yml"
    touchpoints_file: Path = PROJECT_ROOT / "data" / "marketing" / "touchpoints.yml"
    # The staff console (bot/console): port, the secret signing its sessions and login links
    # (unset: a development-only default, refused in production), how long a session and a
    # `concierge staff login-link` work, its public URL (for the links), who besides the SLA
    # roster may sign in (marketers, admins), canned replies per property, and where WeCom's
    # OAuth authorize page is (the sandbox under `make run`).
    console_port: int = 8000
    console_secret: str | None = None
    console_session_ttl_s: int = 8 * 3600
    console_login_link_ttl_s: int = 600
    console_base_url: str | None = None
    console_staff_file: Path = PROJECT_ROOT / "data" / "console_staff.yml"
    console_canned_replies_file: Path = PROJECT_ROOT / "data" / "canned_replies.yml"
    wecom_oauth_base: str = "https://open.weixin.qq.com"

    # Identity linking in conversation (bot.bookings.identity): wrong answers before the lock,
    # and how long linking stays locked for that WeCom identity.
    link_max_failures: int = 3
    link_lock_minutes: int = 30
    # The PMS push (bot.bookings.sync_server): "source:secret,..." and its port.
    pms_sync_secrets: str | None = None
    pms_sync_port: int = 5007
    # Rasa's HTTP API as the worker and paging call it (one replica; RASA_URLS lists them all).
    rasa_url: str = "http://localhost:5005"
    intake: IntakeSettings = field(default_factory=IntakeSettings)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def concierge_env(self) -> str:
        """`development` unless CONCIERGE_ENV says otherwise (lower-cased)."""
        return _env_name(self.concierge_env_raw)

    @property
    def strict(self) -> bool:
        """CONCIERGE_ENV explicitly names a production-like environment (code paths refuse
        development fallbacks; the start-up preflight is stricter still, see `relaxed`)."""
        return self.concierge_env in STRICT_ENVS

    @property
    def relaxed(self) -> bool:
        """An explicit CONCIERGE_ENV=development or test: preflight problems are warnings."""
        return (self.concierge_env_raw or "").strip().lower() in RELAXED_ENVS


def load_settings() -> Settings:
    """Build settings from the current environment (tests call this after monkeypatching env)."""
    var_dir = PROJECT_ROOT / "var"
    concierge_env_raw = _env("CONCIERGE_ENV")
    return Settings(
        database_url=_env("DATABASE_URL", f"sqlite:///{var_dir / 'concierge.db'}"),
        redis_url=_env("REDIS_URL"),
        knowledge_dir=Path(_env("KNOWLEDGE_DIR", str(PROJECT_ROOT / "data" / "knowledge"))),
        weather_provider=_env("WEATHER_PROVIDER", "demo"),
        qweather_api_host=_env("QWEATHER_API_HOST", "https://devapi.qweather.com"),
        qweather_key=_env("QWEATHER_KEY"),
        weather_timeout_s=float(_env("WEATHER_TIMEOUT_S", "3")),
        qweather_geo_base=_env("QWEATHER_GEO_BASE"),
        qweather_forecast_days=_env("QWEATHER_FORECAST_DAYS", "7d"),
        weather_cache_ttl_s=int(_env("WEATHER_CACHE_TTL_S", "3600")),
        marketing_policy_file=Path(
            _env("MARKETING_POLICY_FILE", str(PROJECT_ROOT / "data" / "marketing" / "policy.yml"))
        ),
        touchpoints_file=Path(
            _env("TOUCHPOINTS_FILE", str(PROJECT_ROOT / "data" / "marketing" / "touchpoints.yml"))
        ),
        crm_encryption_key=_env("CRM_ENCRYPTION_KEY"),
        link_max_failures=int(_env("LINK_MAX_FAILURES", "3")),
        link_lock_minutes=int(_env("LINK_LOCK_MINUTES", "30")),
        pms_sync_secrets=_env("PMS_SYNC_SECRETS"),
        pms_sync_port=int(_env("PMS_SYNC_PORT", "5007")),
        rasa_url=(_env("RASA_URL", "http://localhost:5005")).rstrip("/"),
        intake=IntakeSettings(
            host=_env("WECOM_INTAKE_HOST", "127.0.0.1"),
            port=int(_env("WECOM_INTAKE_PORT", "5006")),
            notify_url=_env(
                "WECOM_INTAKE_NOTIFY_URL", "http://127.0.0.1:5005/webhooks/wecom/inbox"
            ),
        ),
        sla_policy_file=Path(
            _env("SLA_POLICY_FILE", str(PROJECT_ROOT / "data" / "sla_policy.yml"))
        ),
        rasa_auth_token=_env("RASA_AUTH_TOKEN"),
        wecom_api_base=_env("WECOM_API_BASE", "https://qyapi.weixin.qq.com").rstrip("/"),
        wecom_corp_id=_env("WECOM_CORP_ID", "ww_sandbox_corp"),
        wecom_corp_tags_file=_env("WECOM_CORP_TAGS_FILE"),
        wecom_kf_url=_env("WECOM_KF_URL"),
        concierge_env_raw=concierge_env_raw,
        paging_link_secret=_env("PAGING_LINK_SECRET")
        or (None if _env_name(concierge_env_raw) in STRICT_ENVS else DEV_PAGING_LINK_SECRET),
        case_link_ttl_s=int(_env("CASE_LINK_TTL_S", str(7 * 24 * 3600))),
        wecom_inbox_token=_env("WECOM_INBOX_TOKEN"),
        tracker_database_url=_env("TRACKER_DATABASE_URL"),
        spool_file=_env("CONCIERGE_SPOOL_FILE"),
        media_dir=Path(_env("MEDIA_DIR", str(var_dir / "media"))),
        media_max_bytes=int(_env("MEDIA_MAX_BYTES", str(10 * 1024 * 1024))),
        max_request_bytes=int(_env("MAX_REQUEST_BYTES", str(1024 * 1024))),
        actions_host=_env("ACTIONS_HOST", "127.0.0.1"),
        log_format=(_env("LOG_FORMAT", "text")).lower(),
        log_level=(_env("LOG_LEVEL", "INFO")).upper(),
        worker_metrics_port=int(_env("WORKER_METRICS_PORT", "9105")),
        crm_index_key=_env("CRM_INDEX_KEY"),
        retention_messages_days=int(_env("RETENTION_MESSAGES_DAYS", "30")),
        retention_tracker_days=int(_env("RETENTION_TRACKER_DAYS", "180")),
        training=load_training_settings(),
        console_port=int(_env("CONSOLE_PORT", "8000")),
        console_secret=_env("CONSOLE_SECRET"),
        console_session_ttl_s=int(_env("CONSOLE_SESSION_TTL_S", str(8 * 3600))),
        console_login_link_ttl_s=int(_env("CONSOLE_LOGIN_LINK_TTL_S", "600")),
        console_base_url=_env("CONSOLE_BASE_URL"),
        console_staff_file=Path(
            _env("CONSOLE_STAFF_FILE", str(PROJECT_ROOT / "data" / "console_staff.yml"))
        ),
        console_canned_replies_file=Path(
            _env("CONSOLE_CANNED_REPLIES_FILE", str(PROJECT_ROOT / "data" / "canned_replies.yml"))
        ),
        wecom_oauth_base=_env("WECOM_OAUTH_BASE", "https://open.weixin.qq.com").rstrip("/"),
        wecom={
            name: _env(f"WECOM_{name}")
            for name in (
                "KF_TOKEN",
                "KF_AES_KEY",
                "KF_SECRET",
                "AIBOT_TOKEN",
                "AIBOT_AES_KEY",
                "APP_TOKEN",
                "APP_AES_KEY",
                "APP_SECRET",
                "APP_AGENT_ID",
            )
        },
    )


@dataclass(frozen=True)
class TrainingSettings:
    """The NLU inbox, the model registry, the regression gate and deployment (bot/training)."""

    tracker_db_url: str  # Rasa's SQL tracker store, read by the inbox collector without a broker
    inbox_source: str  # "events" (the event stream's table, bot.events) or "tracker"
    rasa_urls: tuple[str, ...]  # every Rasa replica a deploy must switch
    low_confidence: float  # a top intent below this goes to the inbox
    rephrase_window_s: float  # a similar message within this many seconds is a rephrase
    collect_interval_s: float
    registry_dir: Path  # model archives of every version
    deployed_model_path: Path  # the file replicas start with (Procfile -m): kept = deployed
    gate_margin: float  # macro-F1 / OOS recall / false-fallback may worsen by at most this
    gate_intent_margin: float  # any one intent's recall may drop by at most this
    hash_key: str  # keys the sender hash of inbox messages (erasure finds them by it)


def load_training_settings() -> TrainingSettings:
    var_dir = PROJECT_ROOT / "var"
    urls = _env("RASA_URLS") or _env("RASA_URL", "http://localhost:5005")
    return TrainingSettings(
        # the same TRACKER_DATABASE_URL that guest export/erasure read (unset: endpoints.yml's file)
        tracker_db_url=_env("TRACKER_DATABASE_URL", f"sqlite:///{var_dir / 'rasa_tracker.db'}"),
        # the event stream where Rasa publishes to RabbitMQ (the production set), else the
        # tracker store (`make run`: development, no broker in endpoints.yml, no consumer)
        inbox_source=_env("NLU_INBOX_SOURCE")
        or (
            "events"
            if _env("EVENT_BROKER_HOST")
            and (_env("CONCIERGE_ENV") or "").lower() not in ("development", "test")
            else "tracker"
        ),
        rasa_urls=tuple(u.strip().rstrip("/") for u in urls.split(",") if u.strip()),
        low_confidence=float(_env("NLU_INBOX_LOW_CONFIDENCE", "0.5")),
        rephrase_window_s=float(_env("NLU_INBOX_REPHRASE_WINDOW_S", "180")),
        collect_interval_s=float(_env("NLU_INBOX_INTERVAL_S", "10")),
        registry_dir=Path(_env("MODEL_REGISTRY_DIR", str(PROJECT_ROOT / "models" / "registry"))),
        deployed_model_path=Path(
            _env("MODEL_DEPLOYED_PATH", str(PROJECT_ROOT / "models" / "concierge.tar.gz"))
        ),
        gate_margin=float(_env("MODEL_GATE_MARGIN", "0.02")),
        gate_intent_margin=float(_env("MODEL_GATE_INTENT_MARGIN", "0.10")),
        hash_key=_env("NLU_INBOX_HASH_KEY") or _env("CRM_ENCRYPTION_KEY") or "dev-inbox-hash-key",
    )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; `get_settings.cache_clear()` re-reads the environment."""
    return load_settings()
