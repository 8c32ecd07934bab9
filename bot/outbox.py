"""The reply outbox sender: committed replies leave per conversation, in commit order.

>>> outbox = ReplyOutbox(settings=s, inbox=inbox, windows=cache, send_api=api,
...                      metrics=m)                                  # doctest: +SKIP
>>> outbox.restore(await inbox.unsettled_replies()); outbox.start()  # doctest: +SKIP
>>> outbox.add(stored_replies, first_reply_from_ms=event.timestamp_ms)  # doctest: +SKIP

Each reply moves ``PENDING -> SENDING -> SENT``, or to ``DROPPED(reason)``, ``UNCERTAIN`` or
``DEAD`` ("reply undeliverable", replayable). The window rule is applied here, in one place,
right before the send; every drop is logged at INFO with its reason (ids only, no text).

``SENDING`` is stored before the Send API is called, so after a crash a reply is never
taken for "not sent". A reply whose fate is unknown (left ``SENDING`` by a crash, or
``UNCERTAIN`` because its answer was lost) counts as sent when its echo arrives within
``REPLY_ECHO_WAIT_SECONDS`` (``on_echo``: the key travels in ``message.metadata``, see
``bot.outbox_codec``); otherwise it is sent again (``REPLY_GUARANTEE=at_least_once``) or
dropped (``at_most_once``). A transient failure keeps the reply pending with capped back-off
until its deadline, then dead-letters it. A state write that fails is retried, never skipped.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context as OtelContext

from bot.durable_write import WriteAbandoned, until_stored
from bot.inbox import Inbox, ReplyState, ReplyUpdate, StoredReply
from bot.lane import Lane
from bot.metrics import DROP_REASONS, BotMetrics
from bot.outbox_codec import ReplyEncodingError, decode_reply, stamp_key
from bot.reply_backlog import ReplyBacklog
from bot.reply_slo import ReplySlo
from bot.retry import ErrorClass, backoff_delay
from bot.routing import Reply
from bot.send_api import SendApi, SendResult
from bot.settings import BotSettings
from bot.window import decide_window
from bot.window_cache import WindowCache

logger = logging.getLogger("bot.outbox")

_RECENT_LIMIT = 50_000
_SEND_OPTIONS = ("sender_action", "persona_id")
_MAYBE_ON_THE_WIRE = (ReplyState.SENDING, ReplyState.UNCERTAIN)


@dataclass(slots=True, eq=False)
class _Outgoing:
    reply: StoredReply
    state: ReplyState
    attempts: int
    context: OtelContext | None = None  # the consumer span's, so the send is in its trace
    first_reply_from_ms: int = 0  # the user's event time, for the first reply of an event
    echo_wait_until: float | None = None  # fate unknown: settled by an echo until then
    # Told to wait (a back-off, an echo): it and the replies queued behind it are not work
    # the core can do now, and the admission gate must not count them (ReplyBacklog).
    waiting: bool = False
    failed_steps: int = 0  # steps that raised unexpectedly (see _after_failed_step)


class ReplyOutbox:
    """Sends committed replies; see the module docstring and docs/architecture.md."""

    def __init__(
        self,
        *,
        settings: BotSettings,
        inbox: Inbox,
        windows: WindowCache,
        send_api: SendApi,
        metrics: BotMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._inbox = inbox
        self._windows = windows
        self._send_api = send_api
        self._metrics = metrics
        # One labels() lookup per state, not per reply (it takes a lock and builds a key).
        self._settled = {
            state: metrics.replies_settled.labels(state=state.value)
            for state in ReplyState
            if state.settled
        }
        self._clock = clock
        self._echo_wait = settings.reply_echo_wait_seconds if settings.echoes_subscribed else 0.0
        # Events owing a first reply: met or missed by REPLY_SLO_SECONDS, even while Graph is down.
        self._reply_slo = ReplySlo(
            metrics.reply_slo_events, slo_seconds=settings.reply_slo_seconds, clock=clock
        )
        self._live: dict[int, _Outgoing] = {}
        # Replies whose SENT state is on disk: a late echo of one needs no write.
        self._stored_sent: OrderedDict[int, None] = OrderedDict()
        self._echoed: OrderedDict[int, None] = OrderedDict()
        # Conversations backing off after Graph failed (transient): the first success says
        # Graph is back, and they try again at once instead of sleeping out their back-off.
        self._waiting_for_graph: set[tuple[str, str]] = set()
        self._backlog = ReplyBacklog()
        self._settled_count = 0
        self._lane: Lane[_Outgoing] = Lane(
            run=self._run,
            order=lambda o: o.reply.id,
            limit=lambda: settings.outbox_concurrency,
            clock=clock,
            name="outbox",
        )

    @property
    def running(self) -> bool:
        return self._lane.running

    def start(self) -> None:
        self._lane.start()

    async def join(self) -> None:
        await self._lane.join()

    async def stop(self, grace: float) -> None:
        await self._lane.stop(grace)
        self._live.clear()
        self._backlog.clear()

    @property
    def backlog(self) -> int:
        """Replies committed and not settled."""
        return self._backlog.total

    @property
    def ready(self) -> int:
        """Unsettled replies the core could send now: not waiting (a back-off after a failed
        call, an echo) and not queued behind a waiting reply of their conversation."""
        return self._backlog.ready

    @property
    def settled(self) -> int:
        """Replies settled (sent, dropped or dead-lettered) since start: a running total."""
        return self._settled_count

    def restore(self, replies: Iterable[StoredReply]) -> None:
        """Schedule unsettled replies found at start-up; those of unknown fate wait for echoes."""
        until = self._clock() + self._echo_wait
        for reply in replies:
            unknown = reply.state in _MAYBE_ON_THE_WIRE
            self._schedule(
                _Outgoing(
                    reply,
                    reply.state,
                    reply.attempts,
                    echo_wait_until=until if unknown else None,
                )
            )

    def add(
        self,
        replies: Iterable[StoredReply],
        *,
        first_reply_from_ms: int = 0,
        context: OtelContext | None = None,
    ) -> None:
        """Schedule freshly committed replies (``first_reply_from_ms``: the user's event time)."""
        for reply in replies:
            first = first_reply_from_ms if reply.n == 0 else 0
            if first:
                self._reply_slo.expect(reply.event_id, since=first / 1000)
            self._schedule(
                _Outgoing(
                    reply, reply.state, reply.attempts, context=context, first_reply_from_ms=first
                )
            )

    async def on_echo(self, reply_id: int) -> None:
        """An echo carried ``reply_id``'s key: the reply reached the platform.

        Stored as SENT before it returns (unless already stored), so the echo event may be
        marked done afterwards without a crash in between re-sending the reply.
        """
        if reply_id in self._stored_sent:
            return
        _remember(self._echoed, reply_id)
        outgoing = self._live.get(reply_id)
        attempts = outgoing.attempts if outgoing is not None else 1
        update = ReplyUpdate(reply_id, ReplyState.SENT, attempts)
        await until_stored(
            lambda: self._inbox.update_replies([update]), what="reply_state", metrics=self._metrics
        )
        _remember(self._stored_sent, reply_id)
        if outgoing is not None:  # waiting for this echo, or in back-off: settle it now
            self._lane.expedite(_conversation(outgoing.reply))

    def _schedule(self, outgoing: _Outgoing) -> None:
        conversation = _conversation(outgoing.reply)
        if outgoing.reply.id not in self._live:
            self._backlog.add(conversation)
        self._live[outgoing.reply.id] = outgoing
        self._lane.add(conversation, outgoing.reply.id, outgoing)

    # --- one reply ---

    async def _run(self, o: _Outgoing) -> float | None:
        """One step of one reply; returns when to look at it again, or None when settled."""
        reply_id = o.reply.id
        conversation = _conversation(o.reply)
        if o.waiting:
            o.waiting = False
            self._backlog.resume(conversation)
        try:
            again = await self._step(o)
        except WriteAbandoned:  # stopping: the stored state stands
            self._forget(reply_id, conversation)
            return None
        except Exception:
            again = self._after_failed_step(o)
        if again is None:
            self._forget(reply_id, conversation)
            self._settled_count += 1
        else:
            o.waiting = True
            self._backlog.wait(conversation)
        return again

    def _after_failed_step(self, o: _Outgoing) -> float:
        """A step raised (a window store that is down, a bug): the reply stays live and tries
        again after a back-off rather than waiting, uncounted, for the next restart. One that
        may be on the wire already goes through the echo rule first, as after a crash."""
        o.failed_steps += 1
        logger.exception(
            "reply step failed, trying again (%d)",
            o.failed_steps,
            extra=_ids(o.reply, log_type="outbox"),
        )
        self._metrics.step_failures.labels(lane="outbox").inc()
        now = self._clock()
        if o.state in _MAYBE_ON_THE_WIRE and o.echo_wait_until is None:
            o.echo_wait_until = now + self._echo_wait
        return now + backoff_delay(
            o.failed_steps,
            base=self._settings.reply_backoff_base_seconds,
            cap=self._settings.reply_backoff_max_seconds,
        )

    def _forget(self, reply_id: int, conversation: tuple[str, str]) -> None:
        if self._live.pop(reply_id, None) is not None:
            self._backlog.settle(conversation)

    async def _step(self, o: _Outgoing) -> float | None:
        now = self._clock()
        if o.reply.id in self._echoed:  # whatever we thought, the platform has it
            await self._settle_unknown(o, "echo")
            return None
        if o.echo_wait_until is not None:
            if now < o.echo_wait_until:
                return o.echo_wait_until  # on_echo cuts this short
            o.echo_wait_until = None
            if self._settings.reply_guarantee == "at_most_once":
                await self._settle_unknown(o, "dropped")
                return None
            self._metrics.reply_settlements.labels(outcome="resent").inc()
        return await self._send(o, now)

    async def _send(self, o: _Outgoing, now: float) -> float | None:
        reply = o.reply
        try:
            handler_reply = decode_reply(reply.body)
            # A sender action has no message to carry the key (and Meta echoes none).
            message = stamp_key(handler_reply.message, reply.id) if handler_reply.message else {}
        except (ReplyEncodingError, ValueError, TypeError) as exc:
            await self._dead(o, f"cannot encode: {exc}")
            return None
        decision = await self._windows.decide(
            reply.page_id,
            reply.psid,
            lambda last: decide_window(
                last,
                int(now * 1000),
                handler_reply.tag,
                window_seconds=self._settings.window_seconds,
                human_agent_window_seconds=self._settings.human_agent_window_seconds,
            ),
        )
        if not decision.allowed:
            if o.attempts and decision.reason == "outside_window":
                await self._dead(o, "deadline passed: the window closed while Graph was failing")
            else:
                await self._drop(o, decision.reason)
            return None
        if self._past_deadline(reply, now):
            await self._dead(o, "deadline passed while Graph was failing")
            return None
        o.attempts += 1
        if o.state is not ReplyState.SENDING:  # restored as sending: stored already
            await self._set(o, ReplyState.SENDING)
        messaging_type = (
            decision.messaging_type if handler_reply.tag else handler_reply.messaging_type
        )
        result = await self._call(o, handler_reply, message, messaging_type)
        return await self._settle_call(o, result, echoable=bool(message))

    async def _call(
        self, o: _Outgoing, handler_reply: Reply, message: dict[str, Any], messaging_type: str
    ) -> SendResult:
        reply = o.reply
        # Optional Send API fields a Reply may carry (contracts §2), passed only when set.
        options = {
            name: value
            for name in _SEND_OPTIONS
            if (value := getattr(handler_reply, name, None)) is not None
        }
        token = otel_context.attach(o.context) if o.context is not None else None
        try:
            return await self._send_api.send(
                reply.page_id,
                reply.psid,
                message,
                messaging_type=messaging_type,
                tag=handler_reply.tag,
                **options,
            )
        except Exception as exc:  # a client bug after the call began: the fate is unknown
            logger.exception("Send API client failed", extra=_ids(reply, log_type="outbox"))
            return SendResult(
                ok=False, error_class=ErrorClass.RISKY, error_label=type(exc).__name__
            )
        finally:
            if token is not None:
                otel_context.detach(token)

    async def _settle_call(
        self, o: _Outgoing, result: SendResult, *, echoable: bool
    ) -> float | None:
        """Map a send outcome to the reply's next state (contracts §1)."""
        if result.ok or o.reply.id in self._echoed:
            await self._set(o, ReplyState.SENT)
            _remember(self._stored_sent, o.reply.id)
            self._observe_first_reply(o)
            if result.ok and self._waiting_for_graph:
                self._graph_is_back()
            return None
        error_class = result.error_class
        if error_class is ErrorClass.RISKY:
            await self._set(o, ReplyState.UNCERTAIN, result.error_label)
            o.echo_wait_until = self._clock() + (self._echo_wait if echoable else 0.0)
            return o.echo_wait_until
        if error_class is not None and error_class.retryable:
            if error_class is ErrorClass.TRANSIENT:  # throttled ones keep their pace
                self._waiting_for_graph.add(_conversation(o.reply))
            await self._set(o, ReplyState.PENDING, result.error_label)
            at = self._clock() + backoff_delay(
                o.attempts,
                base=self._settings.reply_backoff_base_seconds,
                cap=self._settings.reply_backoff_max_seconds,
            )
            return at  # the deadline is checked before the next attempt
        await self._dead(o, f"Send API refused the reply: {result.error_label}")
        return None

    def _graph_is_back(self) -> None:
        waiting, self._waiting_for_graph = self._waiting_for_graph, set()
        for conversation in waiting:
            self._lane.expedite(conversation)

    def _past_deadline(self, reply: StoredReply, now: float) -> bool:
        deadline = self._settings.reply_deadline_seconds
        return deadline is not None and now > reply.created_at + deadline

    async def _settle_unknown(self, o: _Outgoing, outcome: str) -> None:
        self._metrics.reply_settlements.labels(outcome=outcome).inc()
        if outcome == "echo":
            if o.reply.id in self._stored_sent:  # on_echo stored it already
                o.state = ReplyState.SENT
                self._settled[o.state].inc()
            else:
                await self._set(o, ReplyState.SENT)
                _remember(self._stored_sent, o.reply.id)
            self._observe_first_reply(o)
        else:
            await self._drop(o, "uncertain")

    async def _drop(self, o: _Outgoing, reason: str) -> None:
        label = reason if reason in DROP_REASONS else "permanent_error"
        self._metrics.replies_dropped.labels(reason=label).inc()
        logger.info("reply dropped: %s", reason, extra=_ids(o.reply, log_type="outbox"))
        await self._set(o, ReplyState.DROPPED, reason)

    async def _dead(self, o: _Outgoing, reason: str) -> None:
        self._metrics.replies_undeliverable.inc()
        logger.warning("reply undeliverable: %s", reason, extra=_ids(o.reply, log_type="outbox"))
        await self._set(o, ReplyState.DEAD, reason[:500])

    async def _set(self, o: _Outgoing, state: ReplyState, error: str | None = None) -> None:
        update = ReplyUpdate(o.reply.id, state, o.attempts, error)
        await until_stored(
            lambda: self._inbox.update_replies([update]),
            what="reply_state",
            metrics=self._metrics,
            stopping=lambda: not self.running,
        )
        o.state = state
        if state.settled:
            self._settled[state].inc()

    def _observe_first_reply(self, o: _Outgoing) -> None:
        if not o.first_reply_from_ms:
            return  # not an event's first reply, or measured by an earlier run
        self._reply_slo.replied(o.reply.event_id)
        elapsed = max(0.0, self._clock() - o.first_reply_from_ms / 1000)
        span = trace.get_current_span(o.context)
        context = span.get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            exemplar = {"trace_id": format(context.trace_id, "032x")}
            self._metrics.time_to_first_reply.observe(elapsed, exemplar=exemplar)
        else:
            self._metrics.time_to_first_reply.observe(elapsed)


def _conversation(reply: StoredReply) -> tuple[str, str]:
    return (reply.page_id, reply.psid)


def _remember(recent: OrderedDict[int, None], reply_id: int) -> None:
    recent[reply_id] = None
    if len(recent) > _RECENT_LIMIT:
        recent.popitem(last=False)


def _ids(reply: StoredReply, *, log_type: str) -> dict[str, object]:
    return {
        "log_type": log_type,
        "event_id": reply.event_id,
        "reply_n": reply.n,
        "reply_id": reply.id,
        "page_id": reply.page_id,
        "psid": reply.psid,
    }
