"""Reply accounting for one conversation: which user action each reply of the bot answers.

The rule, applied in the order replies were recorded:

* only actions whose kind expects an answer (``REPLY_EXPECTED_KINDS``, configurable) and that
  the bot acknowledged with a 200 are owed a reply;
* a reply answers the *oldest* owed, unanswered action whose POST reached the bot before the
  reply was recorded (acked, or silent after reading it; an error status is the bot refusing
  it); with none left it is an *extra* (a duplicate or unsolicited message);
* actions never acknowledged (dropped after retries, skipped because nothing was subscribed)
  are ``undelivered``: never owed, never counted as unanswered.

The bot may answer before the mock has read its 200 (it acks, then replies), so a reply that an
earlier, still in-flight action could claim is *held* until that action settles. Pure logic: the
journal calls it under its lock and owns the records.

>>> from mock_meta.journal_records import ActionRecord, SendRecord
>>> conv = Conversation()
>>> text = ActionRecord(1, 0.0, "psid", "page", "m_1", "text")
>>> conv.add_action(text, owed_kind=True)
>>> conv.sent(text, mark=1); conv.acknowledged(text)
[]
>>> reply = SendRecord(2, 1.0, "page", "psid", "message", {}, {}, 200, message_id="m_r")
>>> [a.mid for a, _ in conv.add_reply(reply)], reply.attribution.value
(['m_1'], 'answer')
"""

from __future__ import annotations

from collections import Counter, deque

from mock_meta.journal_records import ActionRecord, ActionState, Attribution, SendRecord

# Kinds a conversational bot answers by default (control-API action types; the mock's setting
# ``reply_expected_kinds``). Reactions, reads, referrals, opt-ins, edits and platform notices
# are not owed a reply unless configured.
REPLY_EXPECTED_KINDS = frozenset({"text", "quick_reply", "attachment", "postback"})

Answered = list[tuple[ActionRecord, SendRecord]]
Tally = Counter[ActionState | Attribution]


class Conversation:
    """One PSID's owed actions and held replies; every change returns the replies it settled."""

    __slots__ = ("candidates", "held", "last_answered", "tally")

    def __init__(self, tally: Tally | None = None) -> None:
        # Owed-kind actions still able to take a reply (in flight or unanswered), by seq.
        self.candidates: deque[ActionRecord] = deque()
        self.held: deque[SendRecord] = deque()
        self.last_answered: ActionRecord | None = None
        # Actions by state and replies by attribution; the journal shares one across
        # conversations so its summary is O(1).
        self.tally: Tally = tally if tally is not None else Counter()

    def add_action(self, action: ActionRecord, *, owed_kind: bool) -> None:
        action.state = ActionState.IN_FLIGHT if owed_kind else ActionState.NO_REPLY_EXPECTED
        self.tally[action.state] += 1
        if owed_kind:
            self.candidates.append(action)

    def sent(self, action: ActionRecord, *, mark: int) -> None:
        """A POST carrying ``action`` may have reached the bot; replies after ``mark`` count."""
        if action.sent_mark is None or mark < action.sent_mark:
            action.sent_mark = mark

    def unsent(self, action: ActionRecord, *, mark: int) -> Answered:
        """The POST that set ``mark`` never reached the bot (connection refused)."""
        if action.sent_mark == mark:
            action.sent_mark = None
        return self._settle()

    def acknowledged(self, action: ActionRecord) -> Answered:
        action.acknowledged = True
        if action.state is ActionState.IN_FLIGHT:
            self._move(action, ActionState.UNANSWERED)
        return self._settle()

    def undelivered(self, action: ActionRecord, reason: str) -> Answered:
        """Every delivery of ``action`` finished without a 200 (or there was none)."""
        if action.acknowledged or action.state is not ActionState.IN_FLIGHT:
            return []
        action.reason = reason
        self._move(action, ActionState.UNDELIVERED)
        self._discard(action)
        return self._settle()

    def add_reply(self, reply: SendRecord) -> Answered:
        reply.attribution = Attribution.HELD
        self.tally[Attribution.HELD] += 1
        self.held.append(reply)
        return self._settle()

    def forget_action(self, action: ActionRecord) -> Answered:
        """The journal dropped ``action`` (retention): it can no longer take a reply."""
        self._discard(action)
        return self._settle()

    def forget_reply(self, reply: SendRecord) -> None:
        if reply in self.held:
            self.held.remove(reply)
            self.tally[Attribution.HELD] -= 1

    @property
    def idle(self) -> bool:
        return not self.candidates and not self.held

    # ---- internals ---------------------------------------------------------------------
    def _settle(self) -> Answered:
        answered: Answered = []
        while self.held:
            reply = self.held[0]
            oldest = self._oldest_seen_by(reply)
            if oldest is not None and not oldest.acknowledged:
                break  # the bot saw it before replying; wait until it is acked or given up
            self.held.popleft()
            self.tally[Attribution.HELD] -= 1
            if oldest is None:
                self._extra(reply)
                continue
            self._discard(oldest)
            self._answer(oldest, reply)
            answered.append((oldest, reply))
        return answered

    def _oldest_seen_by(self, reply: SendRecord) -> ActionRecord | None:
        for action in self.candidates:
            if action.sent_mark is not None and action.sent_mark < reply.seq:
                return action
        return None

    def _answer(self, action: ActionRecord, reply: SendRecord) -> None:
        action.answered_by = reply.message_id
        action.answered_at = reply.at
        self._move(action, ActionState.ANSWERED)
        reply.attribution = Attribution.ANSWER
        self.tally[Attribution.ANSWER] += 1
        reply.answers_mid = action.mid
        reply.time_to_reply_seconds = max(0.0, reply.at - action.at)
        self.last_answered = action

    def _extra(self, reply: SendRecord) -> None:
        reply.attribution = Attribution.EXTRA
        self.tally[Attribution.EXTRA] += 1
        reply.extra = True
        previous = self.last_answered
        if previous is not None:
            previous.extra_replies += 1
            reply.extra_for = previous.mid

    def _discard(self, action: ActionRecord) -> None:
        # Candidates leave from the head almost always (answers go oldest first).
        if self.candidates and self.candidates[0] is action:
            self.candidates.popleft()
        elif action in self.candidates:
            self.candidates.remove(action)

    def _move(self, action: ActionRecord, state: ActionState) -> None:
        self.tally[action.state] -= 1
        action.state = state
        self.tally[state] += 1
