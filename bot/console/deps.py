"""What the console's pages work with, built once by the process's entry point (`build_deps`) or
by a test with its own collaborators. No I/O at import time."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.console.auth import Auth
from bot.console.canned import CannedRepliesError, load_canned_replies  # noqa: F401 - re-exported
from bot.console.staff import StaffDirectory
from bot.settings import PROJECT_ROOT, Settings

TEMPLATE_DIR = PROJECT_ROOT / "bot" / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"


def template_env() -> Environment:
    """The project's template folder (bot/templates), HTML-escaped for the console's pages."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


@dataclass
class ConsoleDeps:
    settings: Settings
    auth: Auth
    staff: StaffDirectory
    paging: Any  # bot.paging.service.PagingService
    crm: Any  # bot.crm.store.CRMStore
    rasa: Any  # bot.paging.handoff.RasaAPI (the conversation from the tracker)
    wecom_app_client: Callable[[], Any]  # the WeCom app client (OAuth code exchange)
    canned: dict = field(default_factory=dict)
    templates: Environment = field(default_factory=template_env)
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    epoch: Callable[[], float] = time.time
    extras: dict = field(default_factory=dict)  # services of other areas (marketing, training)

    @property
    def policy(self):
        return self.staff.policy

    def canned_for(self, property_id: Optional[str]) -> list[dict]:
        own = self.canned.get(property_id, []) if property_id and property_id != "default" else []
        return own + self.canned.get("default", [])

    @property
    def base_url(self) -> str:
        return (
            self.settings.console_base_url or f"http://localhost:{self.settings.console_port}"
        ).rstrip("/")


def build_deps(settings: Settings) -> ConsoleDeps:
    """The console on the real plumbing: CRM, paging service (WeCom client, Rasa API)."""
    from bot.paging.runtime import build_service, get_policy
    from bot.wecom.services import WeComServices

    policy = get_policy()
    wecom = WeComServices()  # one set of WeCom clients for the console process
    paging = build_service(policy=policy, services=wecom)
    return ConsoleDeps(
        extras=_area_services(settings),
        settings=settings,
        auth=Auth.from_settings(settings),
        staff=StaffDirectory.load(policy, settings.console_staff_file),
        paging=paging,
        crm=paging.crm,
        rasa=paging.handoff.rasa,
        wecom_app_client=lambda: wecom.app_client,
        canned=load_canned_replies(settings.console_canned_replies_file),
    )


def _area_services(settings: Settings) -> dict:
    """The marketing and training services the /marketing and /admin pages call; a service that
    cannot be built leaves its page saying so (the advisors' console still runs)."""
    import logging

    log = logging.getLogger(__name__)
    extras: dict = {}
    try:
        from bot.marketing.runtime import build_marketing

        extras["marketing"] = build_marketing(settings.database_url)
    except Exception as exc:
        log.error("console: marketing pages off: %s", exc)
    from bot.crm.db import make_engine
    from bot.events.store import EventStore

    # What the reports count (bot.events: Rasa's events from RabbitMQ); connects on first use.
    extras["events"] = EventStore(make_engine(settings.database_url))
    try:
        from bot.training.service import build_training_loop

        extras["training"] = build_training_loop(settings)
    except Exception as exc:
        log.error("console: admin pages off: %s", exc)
    return extras
