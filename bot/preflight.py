"""One preflight, run by every long-running process at start and by `concierge preflight`.

Outside an explicit `CONCIERGE_ENV=development` (or `test`) a process refuses to start, naming
each problem, when:
- a secret is missing, shorter than it must be, malformed, or a value published in this
  repository (the development CRM key, `dev-only-token`, the sandbox's WeCom secrets, ...);
- the WeCom sandbox, or the development WeCom secrets, would be used (`WECOM_API_BASE` on this
  machine), or the sandbox itself is the process starting;
- a store is an embedded default that cannot serve several processes (SQLite CRM or tracker
  store, no Redis), or a fake stands in for a real service (the demo weather);
- the SLA policy sends links or group posts to this machine.
Under development/test the same problems are logged as warnings and nothing is refused: `make
run` works on a fresh clone with no configuration.

Other features register what they need checked without editing this file's logic: add the
module's dotted path to `PREFLIGHT_MODULES`; the module may define

    PREFLIGHT_SECRETS = [Secret("CONSOLE_SECRET", "the console's session secret",
                                lambda s: s.console_session_secret)]
    def preflight_checks(settings) -> Iterable[str]: ...   # extra problems, as sentences

The value getter reads the field from `bot.settings.Settings` (every environment variable is read
there). Modules are imported only when a preflight runs, never at import time of this one.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence
from urllib.parse import urlparse

from bot.core.settings import DEV_PAGING_LINK_SECRET, STRICT_ENVS, Settings, get_settings

log = logging.getLogger(__name__)

# Modules with PREFLIGHT_SECRETS and/or preflight_checks(settings); see the docstring.
PREFLIGHT_MODULES: list[str] = ["bot.console.auth"]

# Values that anyone can read in this repository, its docs or its tests.
PUBLIC_VALUES = frozenset(
    {
        "dev-only-token",
        "dev-only",
        "change-me",
        "changeme",
        "e2e-token",
        "secret",
        "password",
        "test",
        "development",
    }
)
KNOWN_ENVS = STRICT_ENVS + ("development", "dev", "test")
GENERATE_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
FERNET_HINT = (
    'generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


@dataclass(frozen=True)
class Problem:
    """One reason not to start: `name` is the variable or thing at fault."""

    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


@dataclass(frozen=True)
class Secret:
    """A secret a production process needs (see the module docstring)."""

    env: str
    what: str
    get: Callable[[Settings], Optional[str]]
    min_length: int = 32
    known: frozenset = frozenset()
    validate: Optional[Callable[[str], Optional[str]]] = None  # format problem, or None
    hint: str = GENERATE_HINT

    def problems(self, settings: Settings) -> list[Problem]:
        value = self.get(settings)
        if value in (None, ""):
            return [Problem(self.env, f"missing ({self.what}); {self.hint}")]
        value = str(value)
        if value in PUBLIC_VALUES or value in self.known:
            return [
                Problem(
                    self.env,
                    f"is a published default ({self.what}): anyone can read it "
                    f"in this repository; {self.hint}",
                )
            ]
        if len(value) < self.min_length:
            return [
                Problem(
                    self.env,
                    f"too short ({len(value)} characters, at least "
                    f"{self.min_length}) for {self.what}; {self.hint}",
                )
            ]
        if self.validate is not None:
            problem = self.validate(value)
            if problem:
                return [Problem(self.env, problem)]
        return []


class PreflightFailed(SystemExit):
    """Raised by `enforce`: the process must not start. The message names every problem."""

    def __init__(self, process: str, problems: Sequence[Problem]):
        self.problems = list(problems)
        lines = [
            f"{process}: refusing to start ({len(self.problems)} problem(s); "
            f"see docs/DEPLOY.md, or set CONCIERGE_ENV=development on a developer machine):"
        ]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


# ---- the built-in checks --------------------------------------------------------------------


def _fernet_keys(value: str) -> Optional[str]:
    from bot.crm.crypto import DEVELOPMENT_KEY

    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        return f"no key in the list; {FERNET_HINT}"
    for key in keys:
        if key == DEVELOPMENT_KEY:
            return f"contains the published development key; {FERNET_HINT}"
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            return f"{key[:4]}… is not a Fernet key (32 url-safe base64 bytes); {FERNET_HINT}"
    return None


def _aes_key(value: str) -> Optional[str]:
    try:
        raw = base64.b64decode(value + "=", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(value) != 43 or len(raw) != 32:
        return "not an EncodingAESKey (43 characters, as WeCom's callback settings show it)"
    return None


def _wecom_secrets() -> list[Secret]:
    from bot.wecom import dev_defaults

    sandbox = frozenset(dev_defaults.ENV_DEFAULTS.values()) - {dev_defaults.APP_AGENT_ID}

    def wecom(name: str, what: str, min_length: int, validate=None) -> Secret:
        return Secret(
            f"WECOM_{name}",
            what,
            lambda s, n=name: s.wecom.get(n),
            min_length=min_length,
            known=sandbox,
            validate=validate,
            hint="copy it from the WeCom admin console (docs/DEPLOY.md)",
        )

    return [
        Secret(
            "WECOM_CORP_ID",
            "the corp id (我的企业 → 企业ID)",
            lambda s: s.wecom_corp_id,
            min_length=8,
            known=sandbox,
            hint="copy it from the WeCom admin console",
        ),
        wecom("KF_TOKEN", "微信客服 callback token", 16),
        wecom("KF_AES_KEY", "微信客服 callback EncodingAESKey", 43, _aes_key),
        wecom("KF_SECRET", "微信客服 secret", 16),
        wecom("AIBOT_TOKEN", "智能机器人 callback token", 16),
        wecom("AIBOT_AES_KEY", "智能机器人 callback EncodingAESKey", 43, _aes_key),
        wecom("APP_TOKEN", "self-built app callback token", 16),
        wecom("APP_AES_KEY", "self-built app callback EncodingAESKey", 43, _aes_key),
        wecom("APP_SECRET", "self-built app secret", 16),
        wecom(
            "APP_AGENT_ID",
            "self-built app AgentId",
            1,
            lambda v: None if v.isdigit() else "an AgentId is a number",
        ),
    ]


def core_secrets() -> list[Secret]:
    return [
        Secret(
            "CRM_ENCRYPTION_KEY",
            "the Fernet key encrypting guests' data at rest",
            lambda s: s.crm_encryption_key,
            min_length=44,
            validate=_fernet_keys,
            hint=FERNET_HINT,
        ),
        Secret(
            "CRM_INDEX_KEY",
            "the key of the CRM's lookup digests (kept across rotations)",
            lambda s: s.crm_index_key,
        ),
        Secret("RASA_AUTH_TOKEN", "the token of Rasa's HTTP API", lambda s: s.rasa_auth_token),
        Secret(
            "PAGING_LINK_SECRET",
            "the dedicated secret signing advisors' case links",
            lambda s: s.paging_link_secret,
            known=frozenset({DEV_PAGING_LINK_SECRET}),
        ),
        Secret(
            "WECOM_INBOX_TOKEN",
            "the token the intake server sends Rasa's inbox route",
            lambda s: s.wecom_inbox_token,
        ),
        *_wecom_secrets(),
    ]


def _is_loopback_url(url: Optional[str]) -> bool:
    host = (urlparse(url or "").hostname or "").lower()
    return host in LOOPBACK or host.startswith("127.")


def environment_problems(settings: Settings) -> list[Problem]:
    raw = (settings.concierge_env_raw or "").strip().lower()
    if not raw:
        return [
            Problem(
                "CONCIERGE_ENV",
                "not set: say `production` (or `development`/`test` on "
                "a developer machine); unset is treated as production",
            )
        ]
    if raw not in KNOWN_ENVS:
        return [Problem("CONCIERGE_ENV", f"unknown value {raw!r} (production, development, test)")]
    return []


def store_problems(settings: Settings) -> list[Problem]:
    found = []
    if settings.is_sqlite:
        found.append(
            Problem(
                "DATABASE_URL",
                "the embedded SQLite CRM cannot serve several "
                "processes: use postgresql+psycopg2://...",
            )
        )
    tracker = settings.tracker_database_url or ""
    if not tracker or tracker.startswith("sqlite"):
        found.append(
            Problem(
                "TRACKER_DATABASE_URL",
                "Rasa's tracker store must be the "
                "PostgreSQL of endpoints.production.yml "
                "(erasure and retention reach it here)",
            )
        )
    if not settings.redis_url:
        found.append(
            Problem(
                "REDIS_URL",
                "unset: dedupe, tokens and rate limits would live in " "one process's memory",
            )
        )
    return found


def wecom_problems(settings: Settings) -> list[Problem]:
    base = settings.wecom_api_base
    if _is_loopback_url(base):
        return [
            Problem(
                "WECOM_API_BASE",
                f"{base} is this machine: the sandbox and its public "
                "development secrets would be used",
            )
        ]
    if urlparse(base).scheme != "https":
        return [Problem("WECOM_API_BASE", f"{base} is not https")]
    return []


def service_problems(settings: Settings) -> list[Problem]:
    found = []
    if settings.weather_provider == "demo":
        found.append(Problem("WEATHER_PROVIDER", "`demo` invents forecasts: use qweather"))
    elif settings.weather_provider == "qweather" and not settings.qweather_key:
        found.append(Problem("QWEATHER_KEY", "missing (WEATHER_PROVIDER=qweather)"))
    return found


def http_parser_problems(settings: Settings) -> list[Problem]:
    """aiohttp (the intake server, the console) must use its C HTTP parser: the pure-Python one
    in the version Rasa allows has request-smuggling advisories (docs/SECURITY.md)."""
    import aiohttp.helpers
    import aiohttp.http_parser

    if (
        aiohttp.helpers.NO_EXTENSIONS
        or aiohttp.http_parser.HttpRequestParser is aiohttp.http_parser.HttpRequestParserPy
    ):
        return [
            Problem(
                "AIOHTTP_NO_EXTENSIONS",
                "aiohttp runs its pure-Python HTTP parser "
                "(request smuggling advisories): unset AIOHTTP_NO_EXTENSIONS and install "
                "the binary wheel",
            )
        ]
    return []


def policy_problems(settings: Settings) -> list[Problem]:
    from bot.paging.policy import PolicyError, load_policy

    try:
        policy = load_policy(settings.sla_policy_file)
    except PolicyError as exc:
        return [Problem("SLA_POLICY_FILE", str(exc))]
    found = []
    link = urlparse(policy.link)
    if link.scheme != "https" or _is_loopback_url(policy.link):
        found.append(
            Problem(
                "SLA_POLICY_FILE",
                f"link {policy.link!r} must be an https URL "
                "advisors' phones can open (the public host)",
            )
        )
    for prop in policy.properties.values():
        group = prop.emergency_group
        if group and _is_loopback_url(group.webhook):
            found.append(
                Problem(
                    "SLA_POLICY_FILE",
                    f"{prop.id}: the emergency group webhook "
                    "points at this machine (the sandbox)",
                )
            )
    return found


BUILTIN_CHECKS: tuple = (
    store_problems,
    wecom_problems,
    service_problems,
    policy_problems,
    http_parser_problems,
)


# ---- running them ---------------------------------------------------------------------------


def _registered(modules: Iterable[str]) -> tuple[list[Secret], list[Callable]]:
    secrets, checks = [], []
    for name in modules:
        module = importlib.import_module(name)
        secrets.extend(getattr(module, "PREFLIGHT_SECRETS", ()))
        if hasattr(module, "preflight_checks"):
            checks.append(module.preflight_checks)
    return secrets, checks


def _as_problem(item, source: str) -> Problem:
    return item if isinstance(item, Problem) else Problem(source, str(item))


def run_checks(
    settings: Optional[Settings] = None,
    *,
    extra: Iterable[Callable[[Settings], Iterable]] = (),
    modules: Optional[Iterable[str]] = None,
) -> list[Problem]:
    """Every problem, as if the process were production (the caller decides what to do)."""
    settings = settings or get_settings()
    secrets, checks = _registered(PREFLIGHT_MODULES if modules is None else modules)
    found: list[Problem] = list(environment_problems(settings))
    for secret in (*core_secrets(), *secrets):
        found.extend(secret.problems(settings))
    # The case-link secret must be dedicated (Secret.validate cannot see other settings).
    if settings.paging_link_secret and settings.paging_link_secret == settings.rasa_auth_token:
        found.append(Problem("PAGING_LINK_SECRET", "must differ from RASA_AUTH_TOKEN"))
    for check in (*BUILTIN_CHECKS, *checks, *extra):
        try:
            items = list(check(settings) or ())
        except Exception as exc:  # a broken check is itself a reason not to start
            items = [Problem(getattr(check, "__name__", "check"), f"could not run: {exc}")]
        found.extend(_as_problem(item, getattr(check, "__module__", "check")) for item in items)
    return found


def enforce(
    process: str,
    settings: Optional[Settings] = None,
    *,
    extra: Iterable[Callable[[Settings], Iterable]] = (),
) -> list[Problem]:
    """Run at a process's start. Strict (anything but an explicit development/test): raise
    PreflightFailed naming every problem. Relaxed: log them as warnings and return them.
    Entry points call `start_process`, which also installs the log redaction."""
    settings = settings or get_settings()
    problems = run_checks(settings, extra=extra)
    if not settings.relaxed:
        if problems:
            raise PreflightFailed(process, problems)
        log.info("%s: preflight passed (CONCIERGE_ENV=%s)", process, settings.concierge_env)
        return []
    if problems:
        log.warning(
            "%s: CONCIERGE_ENV=%s, so %d preflight problem(s) are tolerated; production "
            "would refuse to start (run `concierge preflight` for the list)",
            process,
            settings.concierge_env,
            len(problems),
        )
    return problems


def start_process(
    process: str,
    settings: Optional[Settings] = None,
    *,
    extra: Iterable[Callable[[Settings], Iterable]] = (),
) -> list[Problem]:
    """What every long-running process does first: hash WeCom ids in every log line from now on
    (bot.log_redaction), then `enforce` the preflight."""
    from bot import log_redaction

    log_redaction.install()
    return enforce(process, settings, extra=extra)


# ---- per-process checks (the entry points pass them as `extra`) -----------------------------


def _arg(argv: Sequence[str], *names: str) -> Optional[str]:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def rasa_server_checks(argv: Sequence[str]) -> Callable[[Settings], list[Problem]]:
    """`rasa run` in production: loopback only, no `rest` channel, the production endpoints."""

    def check(settings: Settings) -> list[Problem]:
        import yaml

        found = []
        interface = _arg(argv, "-i", "--interface") or "0.0.0.0"
        if interface not in ("127.0.0.1", "::1", "localhost"):
            found.append(
                Problem(
                    "rasa --interface",
                    f"{interface}: Rasa's API and channels must "
                    "listen on loopback only (-i 127.0.0.1; the proxy and the "
                    "intake server reach it there)",
                )
            )
        credentials = _arg(argv, "--credentials") or "credentials.yml"
        try:
            with open(credentials, encoding="utf-8") as handle:
                channels = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            return found + [Problem("rasa --credentials", f"{credentials}: {exc}")]
        for name in ("rest", "socketio", "callback", "rasa.core.channels.rest.RestInput"):
            if name in channels:
                found.append(
                    Problem(
                        "rasa --credentials",
                        f"{credentials} enables the `{name}` "
                        "channel: anyone reaching it can speak as any guest (use "
                        "credentials.production.yml)",
                    )
                )
        endpoints = _arg(argv, "--endpoints") or "endpoints.yml"
        if "production" not in endpoints:
            found.append(
                Problem(
                    "rasa --endpoints",
                    f"{endpoints}: use endpoints.production.yml "
                    "(PostgreSQL tracker store, Redis lock store)",
                )
            )
        found += _unset_endpoint_variables(endpoints)
        return found

    return check


def _unset_endpoint_variables(path: str) -> list[Problem]:
    """Every ${NAME} the endpoints file uses must be set (Rasa's own error names no variable;
    EVENT_BROKER_* came with the event stream)."""
    import re

    from bot.core.settings import unset_variables

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return []  # a missing file is Rasa's to report
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    names = sorted(set(re.findall(r"\$\{([A-Z0-9_]+)\}", text)))
    return [Problem(name, f"unset, but {path} needs it") for name in unset_variables(names)]


def apply_http_limits(settings: Settings) -> None:
    """Sanic (Rasa, the action server) reads SANIC_* at app creation: cap request bodies."""
    import os

    os.environ["SANIC_REQUEST_MAX_SIZE"] = str(settings.max_request_bytes)
