from bot.reply_backlog import ReplyBacklog


def _backlog(*conversations: str) -> ReplyBacklog:
    backlog = ReplyBacklog()
    for conversation in conversations:
        backlog.add(conversation)
    return backlog


def test_a_waiting_reply_holds_up_its_whole_conversation_and_nothing_else() -> None:
    backlog = _backlog("ann", "ann", "bob", "cid")
    backlog.wait("ann")
    assert (backlog.total, backlog.ready) == (4, 2)


def test_replies_added_or_settled_while_their_conversation_waits_stay_out_of_ready() -> None:
    backlog = _backlog("ann", "bob")
    backlog.wait("ann")
    backlog.add("ann")
    assert (backlog.total, backlog.ready) == (3, 1)
    backlog.settle("ann")  # e.g. the waiting reply settled by its echo
    assert (backlog.total, backlog.ready) == (2, 1)
    backlog.resume("ann")
    assert (backlog.total, backlog.ready) == (2, 2)


def test_a_conversation_is_held_up_until_its_last_wait_ends() -> None:
    backlog = _backlog("ann", "ann")
    backlog.wait("ann")
    backlog.wait("ann")
    backlog.resume("ann")
    assert backlog.ready == 0
    backlog.resume("ann")
    assert backlog.ready == 2
    backlog.resume("ann")  # a stray resume changes nothing
    assert backlog.ready == 2


def test_a_conversation_that_waits_with_nothing_unsettled_blocks_nothing_later_settled() -> None:
    backlog = ReplyBacklog()
    backlog.wait("ann")
    backlog.add("ann")
    backlog.settle("ann")
    backlog.resume("ann")
    backlog.add("bob")
    assert (backlog.total, backlog.ready) == (1, 1)


def test_clear_forgets_every_reply_and_wait() -> None:
    backlog = _backlog("ann", "bob")
    backlog.wait("ann")
    backlog.clear()
    backlog.add("ann")
    assert (backlog.total, backlog.ready) == (1, 1)
