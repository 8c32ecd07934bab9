"""Deliver one handler reply: the window rule first, then the Send API, counting every drop.

>>> sender = ReplySender(settings=s, windows=cache, send_api=api, metrics=metrics)  # doctest: +SKIP
>>> outcome = await sender.deliver(page_id, psid, Reply.text("hi"))                 # doctest: +SKIP
>>> outcome.sent, outcome.called                                                    # doctest: +SKIP
(True, True)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.metrics import DROP_REASONS, BotMetrics
from bot.retry import ErrorClass
from bot.routing import Reply
from bot.send_api import SendApi
from bot.settings import BotSettings
from bot.window import decide_window
from bot.window_cache import WindowCache

logger = logging.getLogger("bot.replies")


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """``called``: the Send API was asked (so a retry must not ask again); ``sent``: it said ok."""

    called: bool
    sent: bool


_NOT_CALLED = ReplyOutcome(called=False, sent=False)
_SENT = ReplyOutcome(called=True, sent=True)
_NOT_SENT = ReplyOutcome(called=True, sent=False)


class ReplySender:
    """Applies the 24-hour window to each reply and sends the allowed ones.

    Drops go to ``bot_replies_dropped_total{reason}``: ``outside_window`` (and retired tags as
    ``permanent_error``, which is what Graph would answer) without a call; ``permanent_error``,
    ``retries_exhausted`` and ``no_token`` after one.
    """

    def __init__(
        self,
        *,
        settings: BotSettings,
        windows: WindowCache,
        send_api: SendApi,
        metrics: BotMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._windows = windows
        self._send_api = send_api
        self._metrics = metrics
        self._clock = clock

    async def deliver(self, page_id: str, psid: str | None, reply: Reply) -> ReplyOutcome:
        if not psid:
            self._drop("no_recipient")
            return _NOT_CALLED
        now_ms = int(self._clock() * 1000)
        decision = await self._windows.decide(
            page_id,
            psid,
            lambda last: decide_window(
                last,
                now_ms,
                reply.tag,
                window_seconds=self._settings.window_seconds,
                human_agent_window_seconds=self._settings.human_agent_window_seconds,
            ),
        )
        if not decision.allowed:
            self._drop(decision.reason if decision.reason in DROP_REASONS else "permanent_error")
            return _NOT_CALLED
        result = await self._send_api.send(
            page_id,
            psid,
            reply.message,
            messaging_type=decision.messaging_type if reply.tag else reply.messaging_type,
            tag=reply.tag,
        )
        if result.ok:
            return _SENT
        if result.error_label == "no_token":
            self._drop("no_token")
        elif result.error_class is ErrorClass.RISKY:
            # Graph may have delivered it: not retried, and not counted as dropped either.
            logger.warning(
                "reply may or may not have been delivered (Graph %s/%s)",
                result.error_code,
                result.error_subcode,
                extra={"log_type": "send_api", "page_id": page_id},
            )
        elif result.transient:
            self._drop("retries_exhausted")
        else:
            self._drop("permanent_error")
        return _NOT_SENT

    def _drop(self, reason: str) -> None:
        self._metrics.replies_dropped.labels(reason=reason).inc()
