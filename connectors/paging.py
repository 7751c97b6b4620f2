"""Rasa input channel `paging` (credentials.yml: `connectors.paging.PagingChannel:`): serves the
signed case pages the advisors' textcards link to (bot.paging.case_pages) on the Rasa server,
`GET /webhooks/paging/cases/<N>?sig=…` and `.../cases/<N>/media/<M>?sig=…`. It takes no messages:
paging's commands and guest hook attach to the WeCom channel through its composition root
(bot.wiring)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.response import HTTPResponse

from bot.paging.case_pages import CasePages, Page


def _http(page: Page) -> HTTPResponse:
    return response.raw(
        page.body, status=page.status, content_type=page.content_type, headers=page.headers
    )


class PagingChannel(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return "paging"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls()

    def __init__(self, pages: Optional[CasePages] = None) -> None:
        self.pages = pages or CasePages()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("paging_hooks", __name__)

        @bp.route("/cases/<case_id:int>", methods=["GET"])
        async def case_page(request, case_id: int):
            return _http(await self.pages.case_page(case_id, request.args.get("sig") or ""))

        @bp.route("/cases/<case_id:int>/media/<media_id:int>", methods=["GET"])
        async def case_media(request, case_id: int, media_id: int):
            return _http(
                await self.pages.case_media(case_id, media_id, request.args.get("sig") or "")
            )

        @bp.route("/", methods=["GET"])
        async def health(_request):
            return response.json({"status": "ok"})

        return bp
