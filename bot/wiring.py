"""Composition roots: which features attach to which process, built explicitly and passed in.

- Rasa server: `connectors.wecom.WeComInput.from_credentials` (credentials.yml) builds the WeCom
  channel with `rasa_channel_extensions()`: the survey answers (bot.marketing) and paging
  (bot.paging: the advisors' commands on the channel's app command router, the rating /
  takeover hook). `connectors.paging.PagingChannel` serves the signed case pages.
- Intake server: `bot.wecom.intake_server.main`.
- Paging worker: `bot.paging.runtime.build_worker` / `run_worker`.
- Action server: `bot.actions_main`.

A feature that cannot be built (an invalid SLA policy, a broken marketing policy) is logged and
left off; the conversation still runs.
"""

from __future__ import annotations

import logging
from typing import Any, List

log = logging.getLogger(__name__)


async def attach_nps(services: Any, router: Any) -> List[Any]:
    from bot.marketing.hooks import build_nps, nps_guest_hook

    try:
        nps = build_nps()
    except Exception as exc:
        log.error("NPS answers are not understood in conversation: %s", exc)
        return []
    return [nps_guest_hook(nps)]


async def attach_paging(services: Any, router: Any) -> List[Any]:
    from bot.paging.hooks import paging_guest_hook
    from bot.paging.runtime import build_service

    try:
        service = build_service(services=services)
    except Exception as exc:
        log.error("advisors' paging commands are OFF: %s", exc)
        return []
    router.add(service.on_app_message)
    log.info("paging attached to the WeCom channel (policy %s)", service.policy.source)
    return [paging_guest_hook(service)]


def rasa_channel_extensions() -> List[Any]:
    """In this order: a survey score is taken before paging's rating check sees it."""
    return [attach_nps, attach_paging]
