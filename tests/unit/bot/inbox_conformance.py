"""What every ``Inbox`` (and ``WindowStore``) backend must do: one suite, every backend.

Every inbox is also the handlers' ``StateStore``, so the suite includes the state suite
(``tests/unit/bot/state_conformance.py``) with the inbox as the store.

A backend's test module subclasses ``InboxConformance`` and provides two fixtures:
``clock`` (a ``FakeClock`` the backend reads its wall time from) and ``inbox`` (an open
backend built with that clock), usually parametrised over backends::

    class TestRedisInbox(InboxConformance):
        @pytest.fixture
        async def inbox(self, clock): ...

``tests/unit/bot/test_inbox_conformance.py`` runs it for the memory and SQLite backends.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.inbox import (
    DeadLetterKind,
    InboxError,
    InboxRecord,
    NewReply,
    ReplyState,
    ReplyUpdate,
    StoredEvent,
)
from bot.state import StateError, StateUpdate
from tests.unit.bot.state_conformance import StateStoreConformance

PAGE, USER = "104501234567890", "6543210987654321"


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(key: str, *, received_at: float = 1000.0, sender: str = USER) -> InboxRecord:
    return InboxRecord(
        page_id=PAGE,
        sender_key=sender,
        kind="text",
        timestamp_ms=1_700_000_000_000,
        dedup_key=key,
        payload=json.dumps({"message": {"mid": key, "text": "hi"}}),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        received_at=received_at,
    )


def reply(n: int, text: str = "hi") -> NewReply:
    return NewReply(n=n, page_id=PAGE, psid=USER, body=json.dumps({"message": {"text": text}}))


class InboxConformance(StateStoreConformance):
    """Subclasses provide the ``inbox`` and ``clock`` fixtures (see the module docstring)."""

    @pytest.fixture
    def store(self, inbox: Any) -> Any:
        return inbox

    async def _one(self, inbox: Any, key: str = "mid:a") -> StoredEvent:
        (event,) = await inbox.enqueue([record(key)])
        assert event is not None
        return event  # type: ignore[no-any-return]

    async def test_enqueue_returns_stored_events_with_fresh_ids(self, inbox: Any) -> None:
        first, second = await inbox.enqueue([record("mid:a"), record("mid:b", received_at=5.0)])
        assert first is not None and second is not None
        assert first.id != second.id
        assert (second.dedup_key, second.received_at, second.attempts) == ("mid:b", 5.0, 0)
        assert second.traceparent == record("mid:b").traceparent

    async def test_same_dedup_key_is_stored_once_even_after_it_is_done(self, inbox: Any) -> None:
        first, again, other = await inbox.enqueue([record("a"), record("a"), record("b")])
        assert first is not None and again is None and other is not None
        assert [e.dedup_key for e in await inbox.pending()] == ["a", "b"]
        await inbox.commit_handled(first.id, [])
        assert await inbox.enqueue([record("a")]) == [None]

    async def test_handled_event_leaves_pending_and_its_replies_are_unsettled_in_order(
        self, inbox: Any, clock: FakeClock
    ) -> None:
        first, second = await self._one(inbox, "a"), await self._one(inbox, "b")
        stored = await inbox.commit_handled(second.id, [reply(0, "x"), reply(1, "y")])
        stored += await inbox.commit_handled(first.id, [reply(0, "z")])
        assert [(r.event_id, r.n, r.state) for r in stored] == [
            (second.id, 0, ReplyState.PENDING),
            (second.id, 1, ReplyState.PENDING),
            (first.id, 0, ReplyState.PENDING),
        ]
        assert stored[0].id < stored[1].id < stored[2].id  # commit order
        assert stored[0].created_at == clock.now
        assert await inbox.pending() == []
        assert await inbox.unsettled_replies() == stored

    async def test_a_reply_may_be_committed_already_claimed_for_sending(self, inbox: Any) -> None:
        event = await self._one(inbox)
        claimed = NewReply(0, PAGE, USER, reply(0).body, state=ReplyState.SENDING)
        (stored,) = await inbox.commit_handled(event.id, [claimed])
        assert stored.state is ReplyState.SENDING
        assert [r.state for r in await inbox.unsettled_replies()] == [ReplyState.SENDING]

    async def test_reply_updates_settle_replies(self, inbox: Any) -> None:
        event = await self._one(inbox)
        a, b, c, d = await inbox.commit_handled(event.id, [reply(n) for n in range(4)])
        await inbox.update_replies(
            [
                ReplyUpdate(a.id, ReplyState.SENT, 1),
                ReplyUpdate(b.id, ReplyState.DROPPED, 0, "outside_window"),
                ReplyUpdate(c.id, ReplyState.UNCERTAIN, 1, "reset"),
                ReplyUpdate(d.id, ReplyState.SENDING, 2),
            ]
        )
        unsettled = await inbox.unsettled_replies()
        assert [(r.id, r.state, r.attempts, r.last_error) for r in unsettled] == [
            (c.id, ReplyState.UNCERTAIN, 1, "reset"),
            (d.id, ReplyState.SENDING, 2, None),
        ]
        assert (await inbox.stats()).unsettled_replies == 2

    async def test_failures_are_visible_in_pending(self, inbox: Any) -> None:
        event = await self._one(inbox)
        await inbox.record_failure(event.id, 2, "boom")
        (again,) = await inbox.pending()
        assert (again.id, again.attempts, again.last_error) == (event.id, 2, "boom")

    async def test_both_dead_letter_kinds_are_listed_counted_and_replayed(
        self, inbox: Any, clock: FakeClock
    ) -> None:
        failed, answered = await self._one(inbox, "a"), await self._one(inbox, "b")
        await inbox.dead_letter(failed.id, "RuntimeError: bug")
        (undeliverable,) = await inbox.commit_handled(answered.id, [reply(0)])
        await inbox.update_replies(
            [ReplyUpdate(undeliverable.id, ReplyState.DEAD, 7, "deadline passed")]
        )
        dead = await inbox.dead_letters()
        assert [(d.kind, d.id, d.event.id, d.error) for d in dead] == [
            (DeadLetterKind.HANDLER_FAILED, failed.id, failed.id, "RuntimeError: bug"),
            (DeadLetterKind.REPLY_UNDELIVERABLE, undeliverable.id, answered.id, "deadline passed"),
        ]
        assert dead[1].reply is not None and dead[1].reply.body == undeliverable.body
        assert (await inbox.stats()).dead_letters == 2
        assert await inbox.pending() == [] and await inbox.unsettled_replies() == []

        clock.now += 60
        assert await inbox.replay() == 2
        replayed = await inbox.take_replayed()
        assert [(e.id, e.attempts) for e in replayed.events] == [(failed.id, 0)]
        assert [(r.id, r.state, r.attempts, r.created_at) for r in replayed.replies] == [
            (undeliverable.id, ReplyState.PENDING, 0, clock.now)  # a fresh deadline
        ]
        assert await inbox.take_replayed() == type(replayed)()  # taken once
        assert await inbox.replay() == 0
        assert (await inbox.stats()).dead_letters == 0

    async def test_replay_by_id_takes_only_the_named_dead_letters(self, inbox: Any) -> None:
        a, b = await self._one(inbox, "a"), await self._one(inbox, "b")
        await inbox.dead_letter(a.id, "x")
        await inbox.dead_letter(b.id, "x")
        (r,) = await inbox.commit_handled((await self._one(inbox, "c")).id, [reply(0)])
        await inbox.update_replies([ReplyUpdate(r.id, ReplyState.DEAD, 1, "x")])
        assert await inbox.replay(event_ids=[b.id]) == 1
        assert await inbox.replay(reply_ids=[r.id]) == 1
        assert await inbox.replay(event_ids=[b.id], reply_ids=[r.id]) == 0  # not dead any more
        assert [d.id for d in await inbox.dead_letters()] == [a.id]
        assert [e.id for e in await inbox.pending()] == [b.id]

    async def test_pending_at_start_up_clears_replay_marks(self, inbox: Any) -> None:
        event = await self._one(inbox)
        await inbox.dead_letter(event.id, "x")
        await inbox.replay()
        assert [e.id for e in await inbox.pending()] == [event.id]
        await inbox.unsettled_replies()
        assert (await inbox.take_replayed()).events == []

    async def test_stats_report_pending_and_the_oldest(self, inbox: Any) -> None:
        await inbox.enqueue([record("a", received_at=7.0), record("b", received_at=9.0)])
        stats = await inbox.stats()
        assert (stats.pending, stats.oldest_pending_received_at, stats.dead_letters) == (2, 7.0, 0)

    async def test_purge_forgets_old_done_events_unless_a_reply_is_still_in_play(
        self, inbox: Any, clock: FakeClock
    ) -> None:
        old, unsettled, dead, fresh = [await self._one(inbox, k) for k in "abcd"]
        (sent,) = await inbox.commit_handled(old.id, [reply(0)])
        await inbox.update_replies([ReplyUpdate(sent.id, ReplyState.SENT, 1)])
        await inbox.commit_handled(unsettled.id, [reply(0)])
        (gone,) = await inbox.commit_handled(dead.id, [reply(0)])
        await inbox.update_replies([ReplyUpdate(gone.id, ReplyState.DEAD, 1, "x")])
        clock.now += 100
        await inbox.commit_handled(fresh.id, [])
        assert await inbox.purge(done_before=clock.now - 50) == 1
        assert await inbox.enqueue([record("a")]) != [None]  # its dedup retention ended
        assert await inbox.enqueue([record("b"), record("c"), record("d")]) == [None] * 3
        assert len(await inbox.unsettled_replies()) == 1
        assert len(await inbox.dead_letters()) == 1

    async def test_window_keeps_the_latest_user_action(self, inbox: Any) -> None:
        assert await inbox.window_opened_at(PAGE, USER) is None
        await inbox.touch_window(PAGE, USER, 2_000)
        await inbox.touch_window(PAGE, USER, 1_000)
        assert await inbox.window_opened_at(PAGE, USER) == 2_000
        assert await inbox.window_opened_at("other", USER) is None

    async def test_forgetting_old_windows_keeps_the_newer_ones(self, inbox: Any) -> None:
        # More old ones than one purge chunk (5,000 in SQLite): the loop must go on.
        old = [f"u{n}" for n in range(5_100)]
        for at in range(0, len(old), 100):  # within a Redis client's connection pool
            await asyncio.gather(*(inbox.touch_window(PAGE, u, 1_000) for u in old[at : at + 100]))
        await inbox.touch_window(PAGE, USER, 1_000)
        await inbox.touch_window(PAGE, USER, 3_000)  # this user came back: kept
        await inbox.touch_window("other", USER, 2_000)  # exactly the cut-off: kept
        assert await inbox.forget_windows(opened_before_ms=2_000) == len(old)
        assert await inbox.window_opened_at(PAGE, old[0]) is None
        assert await inbox.window_opened_at(PAGE, old[-1]) is None
        assert await inbox.window_opened_at(PAGE, USER) == 3_000
        assert await inbox.window_opened_at("other", USER) == 2_000
        assert await inbox.forget_windows(opened_before_ms=2_000) == 0
        await inbox.touch_window(PAGE, old[0], 4_000)  # a forgotten user writes again
        assert await inbox.window_opened_at(PAGE, old[0]) == 4_000

    async def test_a_closed_inbox_refuses_work(self, inbox: Any) -> None:
        await inbox.close()
        with pytest.raises(InboxError):
            await inbox.enqueue([record("a")])
        with pytest.raises(InboxError):
            await inbox.stats()
        await inbox.open()  # the fixture closes it again

    # --- conversation state, committed with the replies ---

    async def test_state_is_committed_with_the_replies_and_the_done_mark(self, inbox: Any) -> None:
        event = await self._one(inbox)
        update = StateUpdate(PAGE, USER, {"step": "email", "name": "Zoë"})
        (stored,) = await inbox.commit_handled(event.id, [reply(0)], update)
        # Visible together: the event is done, its reply is in the outbox, the state is new.
        assert await inbox.pending() == []
        assert await inbox.unsettled_replies() == [stored]
        assert await inbox.load(PAGE, USER) == {"step": "email", "name": "Zoë"}

    async def test_a_commit_with_empty_state_deletes_it(self, inbox: Any) -> None:
        await inbox.save(PAGE, USER, {"step": "phone"})
        await inbox.commit_handled((await self._one(inbox)).id, [], StateUpdate(PAGE, USER, {}))
        assert await inbox.load(PAGE, USER) == {}

    async def test_a_commit_without_state_leaves_it_alone(self, inbox: Any) -> None:
        await inbox.save(PAGE, USER, {"step": "phone"})
        await inbox.commit_handled((await self._one(inbox)).id, [reply(0)])
        assert await inbox.load(PAGE, USER) == {"step": "phone"}

    async def test_a_retried_commit_returns_the_first_replies_and_changes_nothing(
        self, inbox: Any
    ) -> None:
        event = await self._one(inbox)
        first = await inbox.commit_handled(
            event.id, [reply(0), reply(1)], StateUpdate(PAGE, USER, {"step": 1})
        )
        await inbox.save(PAGE, USER, {"step": 2})  # the conversation moved on meanwhile
        again = await inbox.commit_handled(  # the first answer was lost, say
            event.id, [reply(0), reply(1)], StateUpdate(PAGE, USER, {"step": 1})
        )
        assert again == first
        assert await inbox.unsettled_replies() == first
        assert await inbox.load(PAGE, USER) == {"step": 2}

    async def test_state_that_is_not_json_fails_the_commit_and_stores_nothing(
        self, inbox: Any
    ) -> None:
        event = await self._one(inbox)
        with pytest.raises(StateError):
            await inbox.commit_handled(event.id, [reply(0)], StateUpdate(PAGE, USER, {"x": {1j}}))
        assert [e.id for e in await inbox.pending()] == [event.id]
        assert await inbox.unsettled_replies() == []
        assert await inbox.load(PAGE, USER) == {}

    async def test_a_failed_handler_leaves_the_state_as_it_was(self, inbox: Any) -> None:
        await inbox.save(PAGE, USER, {"step": "name"})
        event = await self._one(inbox)
        await inbox.record_failure(event.id, 1, "RuntimeError: boom")
        await inbox.dead_letter(event.id, "RuntimeError: boom")
        assert await inbox.load(PAGE, USER) == {"step": "name"}
        await inbox.replay(event_ids=[event.id])  # replayed, then handled: now it advances
        await inbox.commit_handled(event.id, [], StateUpdate(PAGE, USER, {"step": "email"}))
        assert await inbox.load(PAGE, USER) == {"step": "email"}
