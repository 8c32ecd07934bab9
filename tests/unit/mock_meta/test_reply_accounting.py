"""The reply-accounting matrix: every case of issue 8 that the old FIFO pairing got wrong.

Each test drives the journal exactly as the control API and the delivery engine do (action,
POST attempts with the journal mark taken before them, settlement, Send API replies) and checks
the summary a load run or ``mock-meta check`` would report.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mock_meta.clock import ControllableClock
from mock_meta.journal import ActionState, Attribution, Journal
from mock_meta.metrics import MockMetrics
from tests.unit.mock_meta.journal_steps import (
    OTHER,
    PAGE,
    PSID,
    act,
    attempt,
    deliver,
    open_delivery,
    send,
)


def counts(journal: Journal) -> dict[str, Any]:
    summary = journal.summary()
    keys = ("owed", "answered", "unanswered", "extra_replies", "undelivered", "in_flight")
    return {key: summary[key] for key in keys}


def state(journal: Journal, mid: str) -> ActionState:
    action = journal.action(mid)
    assert action is not None
    return action.state


def test_a_reaction_then_a_duplicated_text_answered_twice_shows_one_extra_reply(
    journal: Journal,
) -> None:
    act(journal, "react_1", kind="reaction")
    journal.record_action(PSID, PAGE, "m_text", "text")
    record = open_delivery(journal, "m_text")
    attempt(journal, record)
    attempt(journal, record, duplicate=True)  # the same bytes again: a lost ack as the bot sees it
    journal.delivery_finished(record, "delivered")
    first, second = send(journal, message_id="m_r1"), send(journal, message_id="m_r2")
    assert (first.answers_mid, first.attribution) == ("m_text", Attribution.ANSWER)
    assert (second.attribution, second.extra_for) == (Attribution.EXTRA, "m_text")
    assert state(journal, "react_1") is ActionState.NO_REPLY_EXPECTED
    assert counts(journal) == {
        "owed": 1,
        "answered": 1,
        "unanswered": 0,
        "extra_replies": 1,
        "undelivered": 0,
        "in_flight": 0,
    }


def test_a_bot_that_answers_every_message_has_nothing_unanswered_despite_reads_and_reactions(
    journal: Journal,
) -> None:
    for n, kind in enumerate(["text", "read", "reaction", "postback", "quick_reply", "read"]):
        act(journal, f"a_{n}", kind=kind)
        if kind not in ("read", "reaction"):
            send(journal, message_id=f"m_r{n}")
    assert counts(journal) == {
        "owed": 3,
        "answered": 3,
        "unanswered": 0,
        "extra_replies": 0,
        "undelivered": 0,
        "in_flight": 0,
    }
    assert journal.summary()["no_reply_expected"] == 3


def test_a_reply_to_a_read_alone_is_an_extra_not_an_answer(journal: Journal) -> None:
    act(journal, "act_1", kind="read")
    reply = send(journal)
    assert reply.attribution is Attribution.EXTRA and reply.extra_for is None
    assert journal.summary()["unanswered"] == 0


def test_a_duplicated_delivery_answered_once_is_clean(journal: Journal) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    record = open_delivery(journal, "m_1")
    attempt(journal, record)
    attempt(journal, record, duplicate=True)
    journal.delivery_finished(record, "delivered")
    send(journal)
    assert counts(journal)["answered"] == 1 and counts(journal)["extra_replies"] == 0


def test_under_reordering_a_reply_answers_the_action_the_bot_had_seen(journal: Journal) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    journal.record_action(PSID, PAGE, "m_2", "text")
    second = open_delivery(journal, "m_2")
    first = open_delivery(journal, "m_1")
    attempt(journal, second)  # chaos delivered the later message first
    reply_to_second = send(journal, message_id="m_r2")
    attempt(journal, first)
    reply_to_first = send(journal, message_id="m_r1")
    assert reply_to_second.answers_mid == "m_2"  # m_1 had not reached the bot yet
    assert reply_to_first.answers_mid == "m_1"
    assert counts(journal)["answered"] == 2 and counts(journal)["extra_replies"] == 0


def test_after_an_outage_dropped_actions_are_undelivered_and_new_replies_answer_new_messages(
    journal: Journal,
) -> None:
    for n in range(5):
        journal.record_action(PSID, PAGE, f"m_lost{n}", "text")
        deliver(journal, f"m_lost{n}", outcomes=("connection_error",) * 3, finish="dropped")
    act(journal, "m_new")
    reply = send(journal)
    assert reply.answers_mid == "m_new"
    assert counts(journal) == {
        "owed": 1,
        "answered": 1,
        "unanswered": 0,
        "extra_replies": 0,
        "undelivered": 5,
        "in_flight": 0,
    }
    lost = journal.action("m_lost0")
    assert lost is not None and lost.reason == "dropped: expired"


def test_actions_while_unsubscribed_are_undelivered_and_answers_resume_after_resubscribing(
    journal: Journal,
) -> None:
    journal.record_action(PSID, PAGE, "m_skipped", "text")
    journal.delivery_finished(open_delivery(journal, "m_skipped"), "skipped", reason="no field")
    journal.record_action(PSID, PAGE, "m_nowhere", "text")
    journal.action_not_delivered("m_nowhere", "no app is subscribed to the page")
    act(journal, "m_back")  # re-subscribed
    assert send(journal).answers_mid == "m_back"
    assert state(journal, "m_skipped") is ActionState.UNDELIVERED
    assert state(journal, "m_nowhere") is ActionState.UNDELIVERED
    assert counts(journal)["unanswered"] == 0 and counts(journal)["undelivered"] == 2


def test_a_reply_that_overtakes_the_ack_is_held_then_answers_the_action(journal: Journal) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    record = open_delivery(journal, "m_1")
    mark = journal.posting([record])  # the bot answers before the mock reads its 200
    reply = send(journal)
    assert reply.attribution is Attribution.HELD
    assert journal.summary()["replies_held"] == 1
    attempt(journal, record, mark=mark)
    assert (reply.attribution, reply.answers_mid) == (Attribution.ANSWER, "m_1")
    assert journal.summary()["replies_held"] == 0


def test_a_reply_held_for_an_action_that_is_then_dropped_answers_the_next_owed_one(
    journal: Journal,
) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    stuck = open_delivery(journal, "m_1")
    attempt(journal, stuck, "timeout")  # the bot read it but never answered
    act(journal, "m_2")
    reply = send(journal)
    assert reply.attribution is Attribution.HELD  # m_1 is older and may still be acked
    journal.delivery_finished(stuck, "dropped", reason="expired")
    assert reply.answers_mid == "m_2"
    assert counts(journal)["undelivered"] == 1 and counts(journal)["unanswered"] == 0


def test_a_reply_recorded_before_the_action_was_sent_cannot_answer_it(journal: Journal) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    record = open_delivery(journal, "m_1")
    early = send(journal)
    attempt(journal, record)  # its POST started only now
    assert early.attribution is Attribution.EXTRA
    assert counts(journal)["unanswered"] == 1


def test_an_event_the_bot_refused_with_an_error_status_cannot_claim_a_later_reply(
    journal: Journal,
) -> None:
    journal.record_action(PSID, PAGE, "m_outage", "text")
    refused = open_delivery(journal, "m_outage")
    attempt(journal, refused, "http_error")  # 503 during an outage; Meta retries it later
    act(journal, "m_new")
    assert send(journal).answers_mid == "m_new"  # not held for the refused event
    attempt(journal, refused)  # the retry is acked after the outage
    assert send(journal).answers_mid == "m_outage"


def test_a_post_that_never_reached_the_bot_does_not_hold_replies(journal: Journal) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    refused = open_delivery(journal, "m_1")
    mark = journal.posting([refused])
    act(journal, "m_2")
    reply = send(journal)
    assert reply.attribution is Attribution.HELD  # m_1's POST is on its way
    attempt(journal, refused, "connection_error", mark=mark)
    assert reply.answers_mid == "m_2"
    assert state(journal, "m_1") is ActionState.IN_FLIGHT  # Meta retries it later


def test_a_reply_after_a_timed_out_post_answers_the_action_acked_on_retry(
    journal: Journal,
) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    record = open_delivery(journal, "m_1")
    attempt(journal, record, "timeout")  # the bot read it but acked too slowly
    reply = send(journal)
    attempt(journal, record)  # Meta's retry got the 200
    assert reply.answers_mid == "m_1"


def test_replies_go_to_the_oldest_owed_action_of_their_own_conversation(journal: Journal) -> None:
    act(journal, "m_a1")
    act(journal, "m_b1", psid=OTHER)
    act(journal, "m_a2")
    assert send(journal, psid=OTHER).answers_mid == "m_b1"
    assert send(journal).answers_mid == "m_a1"
    assert send(journal).answers_mid == "m_a2"


def test_which_kinds_are_owed_a_reply_is_configurable(clock: ControllableClock) -> None:
    journal = Journal(clock, MockMetrics(CollectorRegistry()), reply_expected={"text", "reaction"})
    act(journal, "act_1", kind="reaction")
    act(journal, "act_2", kind="postback")
    assert send(journal).answers_mid == "act_1"
    assert state(journal, "act_2") is ActionState.NO_REPLY_EXPECTED


def test_standby_copies_are_never_owed_even_for_a_text(journal: Journal) -> None:
    journal.record_action(PSID, PAGE, "m_1", "standby_text", expects_reply=False)
    journal.record_action(PSID, PAGE, "m_2", "text", expects_reply=False)
    assert state(journal, "m_2") is ActionState.NO_REPLY_EXPECTED


@pytest.mark.parametrize("finish", ["dropped", "skipped"])
def test_an_in_flight_action_is_reported_as_such_until_its_delivery_settles(
    journal: Journal, finish: str
) -> None:
    journal.record_action(PSID, PAGE, "m_1", "text")
    record = open_delivery(journal, "m_1")
    assert counts(journal)["in_flight"] == 1 and counts(journal)["unanswered"] == 0
    journal.delivery_finished(record, finish, reason="x")
    assert counts(journal)["in_flight"] == 0 and counts(journal)["undelivered"] == 1
