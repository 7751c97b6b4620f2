"""Wiring for real processes: the worker (`concierge worker`) and the paging service the Rasa
process' composition root attaches to the WeCom channel (`build_service`). Everything is built on
call, nothing at import time.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Optional

from bot.paging.policy import Policy

log = logging.getLogger(__name__)


def get_policy() -> Policy:
    """The configured policy (SLA_POLICY_FILE), validated; an edit of the file takes effect
    without a restart and an edit that fails validation leaves the running policy (bot.live)."""
    from bot.datafiles import live_policy
    from bot.settings import get_settings

    return live_policy(str(get_settings().sla_policy_file))  # type: ignore[return-value]


def check_schema(database_url: Optional[str] = None) -> Optional[str]:
    """None when the database has the paging tables, else what to do about it."""
    from bot.crm.db import current_revision, head_revision

    try:
        current, head = current_revision(database_url), head_revision()
    except Exception as exc:
        return f"database unavailable: {exc}"
    if current != head:
        return f"database at revision {current or '(empty)'}, newest is {head}: run `concierge db upgrade`"
    return None


def build_service(
    *, database_url: Optional[str] = None, policy: Optional[Policy] = None, services=None
):
    """A PagingService on the real plumbing (WeCom client, Rasa API, CRM store). `services`: the
    process' WeComServices (the Rasa server passes the WeCom channel's)."""
    from bot.crm.store import CRMStore
    from bot.paging.channels import WeComMessenger
    from bot.paging.context import GuestContext
    from bot.paging.handoff import HandoffController, RasaAPI
    from bot.paging.service import PagingService
    from bot.paging.store import PagingStore
    from bot.settings import get_settings

    from bot.wecom.services import WeComServices

    url = database_url or get_settings().database_url
    store = PagingStore(url)
    crm = CRMStore(store.engine)
    rasa = RasaAPI()
    wecom = services if services is not None else WeComServices()  # the caller's, or its own
    messenger = WeComMessenger(rasa, services=wecom)
    handoff = HandoffController(rasa, wecom=wecom, crm=crm)
    return PagingService(
        store,
        policy or get_policy(),
        messenger,
        crm=crm,
        handoff=handoff,
        context=GuestContext(crm, rasa.last_user_messages),
        eraser=_eraser_on_this_loop(crm),
    )


def _eraser_on_this_loop(crm):
    """The erasure a resolved deletion request runs (bot.erasure); its WeCom calls run on the
    event loop this is built in (the one the WeCom client lives on). None outside a loop."""
    from bot.erasure import build_eraser

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return build_eraser(crm)
    return build_eraser(
        crm, run=lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)
    )


def worker_engine(url: str):
    """The worker's engine. On PostgreSQL without a ping per checkout (one round trip less for
    every short transaction; a connection lost to a server restart fails one tick, which is
    retried) and a pool as large as the worker's parallelism."""
    from sqlalchemy.engine import make_url

    from bot.crm.db import make_engine

    if make_url(url).get_backend_name() == "postgresql":
        return make_engine(url, pool_pre_ping=False, pool_size=10, max_overflow=10)
    return make_engine(url)


def build_worker(
    *,
    database_url: Optional[str] = None,
    policy: Optional[Policy] = None,
    poll_s: float = 0.5,
    worker_id: Optional[str] = None,
    services=None,
):
    """The worker process' composition root: one WeComServices (clients are bound to the event
    loop lazily, so building them here, before the loop, is fine) shared by the messenger, the
    hand-over and the outbox sweep."""
    from bot.crm.store import CRMStore
    from bot.paging.channels import WeComMessenger
    from bot.paging.context import GuestContext
    from bot.paging.handoff import HandoffController, RasaAPI
    from bot.paging.store import PagingStore
    from bot.paging.worker import PagingWorker
    from bot.settings import get_settings

    from bot.wecom.services import WeComServices

    url = database_url or get_settings().database_url
    store = PagingStore(worker_engine(url))
    crm = CRMStore(store.engine)
    rasa = RasaAPI()
    wecom = services if services is not None else WeComServices()
    handoff = HandoffController(rasa, wecom=wecom, crm=crm)

    async def queue_guest(clock) -> None:
        await handoff.queue(clock.sender_id)

    return PagingWorker(
        store,
        policy or get_policy(),
        WeComMessenger(rasa, services=wecom),
        context=GuestContext(crm, rasa.last_user_messages),
        on_nobody_free=queue_guest,
        poll_s=poll_s,
        worker_id=worker_id,
    )


OUTBOX_SWEEP_S = 30.0


async def _close_wecom(worker) -> None:
    try:
        await worker.messenger.services.close()
    except Exception:
        pass


async def tick_once(worker):
    try:
        return await worker.tick()
    finally:
        await _close_wecom(worker)


async def _sweep_outbox(stop: asyncio.Event, services) -> None:
    """Sends the WeCom outbox holds for a retry (the Rasa process sweeps too; claims make it safe)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), OUTBOX_SWEEP_S)
        except asyncio.TimeoutError:
            pass
        if stop.is_set():
            return
        try:
            await services.retry_due()
        except Exception as exc:
            log.warning("WeCom outbox sweep failed: %s", exc)


NOTICE_SWEEP_S = 15.0


async def _deliver_notices(stop: asyncio.Event, worker) -> None:
    """Guest notices (a cancelled booking: bot.bookings.notices), sent through the messenger."""
    from bot.bookings.notices import deliver_pending

    while not stop.is_set():
        try:
            await deliver_pending(worker.store.engine, worker.messenger.guest_text)
        except Exception as exc:
            log.warning("guest notices not delivered: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), NOTICE_SWEEP_S)
        except asyncio.TimeoutError:
            pass


def use_worker_threads(worker) -> None:
    """Database calls run in threads: give the loop enough of them for the worker's parallelism
    (asyncio's default is min(32, CPUs + 4), six on a two-CPU box)."""
    from concurrent.futures import ThreadPoolExecutor

    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=worker.concurrency + 4, thread_name_prefix="paging")
    )


PRIVACY_SWEEP_S = 300.0


async def _privacy_jobs(stop: asyncio.Event, crm) -> None:
    """Deletion requests past their 24 h deadline are carried out (bot.erasure), unless the guest
    is on legal hold; then the retention job drops what is past its keeping period."""
    from bot.erasure import auto_erase_due, build_eraser

    loop = asyncio.get_running_loop()

    def on_loop(coro):  # corp-tag removal uses this process's WeCom client, on its loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    eraser = build_eraser(crm, run=on_loop)
    while not stop.is_set():
        try:
            erased = await asyncio.to_thread(auto_erase_due, eraser)
            if erased:
                log.info(
                    "auto-erasure: %d guest(s) erased (deletion requests past 24 h)", len(erased)
                )
            from bot.retention import run_retention

            await asyncio.to_thread(run_retention, crm, eraser.tracker)
        except Exception as exc:
            log.warning("privacy jobs failed (retried in %ds): %s", PRIVACY_SWEEP_S, exc)
        try:
            await asyncio.wait_for(stop.wait(), PRIVACY_SWEEP_S)
        except asyncio.TimeoutError:
            pass


async def run_worker(worker) -> None:
    loop = asyncio.get_running_loop()
    use_worker_threads(worker)
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, worker.stop)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform
            pass
    from bot.wecom.services import set_services

    services = worker.messenger.services
    set_services(services)  # mark_tag() & co. (the erasure's corp-tag removal) share these clients
    stop = asyncio.Event()
    sweeper = asyncio.ensure_future(_sweep_outbox(stop, services))
    privacy = asyncio.ensure_future(_privacy_jobs(stop, worker.context.crm))
    notices = asyncio.ensure_future(_deliver_notices(stop, worker))
    try:
        await worker.run()
    finally:
        stop.set()
        await asyncio.gather(sweeper, privacy, notices, return_exceptions=True)
        await _close_wecom(worker)
