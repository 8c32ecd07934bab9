"""Router features for bot authors: dependencies, filters, composition, error hook, state."""

from __future__ import annotations

from typing import Any

import pytest

from bot import filters
from bot.context import Context, MissingDependencyError, NoStateStoreError
from bot.events import EventKind
from bot.routing import Reply, Router
from bot.state import MemoryStateStore, StateUpdate
from bot.testing import PAGE_ID, PSID, RouterClient, messaging_item, texts


async def test_handlers_read_dependencies_registered_at_start_up() -> None:
    router = Router(deps={"greeting": "Hello"})
    router.provide(prices={"tea": 3})

    @router.on_text
    def price(ctx: Context) -> Reply:
        return Reply.text(f"{ctx.deps.greeting}, tea is {ctx.deps['prices']['tea']}")

    assert texts(await RouterClient(router).text("tea?")) == ["Hello, tea is 3"]


async def test_included_routers_see_their_parents_dependencies_and_may_add_their_own() -> None:
    root, child = Router(deps={"a": 1, "b": 1}), Router(deps={"b": 2})
    root.include_router(child)
    child.on_text(lambda ctx: Reply.text(f"{ctx.deps.a}{ctx.deps.b}"))
    assert texts(await RouterClient(root).text("x")) == ["12"]


async def test_a_missing_dependency_names_itself_and_the_registered_ones() -> None:
    router = Router(deps={"db": object()})
    router.on_text(lambda ctx: ctx.deps.cache)
    with pytest.raises(MissingDependencyError, match=r"'cache' \(registered: db\)"):
        await RouterClient(router).text("x")


async def test_regex_filter_matches_text_and_exposes_the_groups() -> None:
    router = Router()
    router.on_text(regex=r"^order (\d+)$")(lambda ctx: Reply.text(f"order #{ctx.group(1)}"))
    router.on_text(lambda ctx: Reply.text("fallback"))
    client = RouterClient(router)
    assert texts(await client.text("order 42")) == ["order #42"]
    assert texts(await client.text("order forty")) == ["fallback"]


async def test_regex_filter_on_postbacks_matches_the_payload() -> None:
    router = Router()
    router.on_postback(regex=r"^ITEM_(\w+)$")(lambda ctx: Reply.text(f"item {ctx.group(1)}"))
    client = RouterClient(router)
    assert texts(await client.postback("ITEM_tea")) == ["item tea"]
    assert await client.postback("OTHER") == ()


async def test_predicate_filters_compose() -> None:
    router = Router()
    image_only = filters.attachment_type("image") & ~filters.from_users("banned")
    router.on_attachments(when=image_only)(lambda ctx: Reply.text("nice picture"))
    router.on_attachments(lambda ctx: Reply.text("got a file"))
    client = RouterClient(router)

    def attached(kind: str, psid: str = PSID) -> dict[str, object]:
        message = {"mid": f"m_{kind}", "attachments": [{"type": kind}]}
        return messaging_item(psid=psid, message=message)

    assert texts(await client.item(attached("image"))) == ["nice picture"]
    assert texts(await client.item(attached("file"))) == ["got a file"]
    assert texts(await client.item(attached("image", psid="banned"))) == ["got a file"]


async def test_text_in_filter_ignores_case_and_blanks() -> None:
    router = Router()
    router.on_text(when=filters.text_in("help", "menu"))(lambda ctx: Reply.text("menu"))
    client = RouterClient(router)
    assert texts(await client.text("  HELP ")) == ["menu"]
    assert await client.text("helpful") == ()


async def test_a_specific_route_in_a_child_wins_over_a_catch_all_in_the_parent() -> None:
    root, faq = Router(), Router(name="faq")
    root.on_text(lambda ctx: Reply.text("catch-all"))
    root.include_router(faq)
    faq.on_text(regex="hours")(lambda ctx: Reply.text("9 to 5"))
    client = RouterClient(root)
    assert texts(await client.text("opening hours?")) == ["9 to 5"]
    assert texts(await client.text("hello")) == ["catch-all"]


def test_including_a_router_into_its_own_child_is_refused() -> None:
    root, child = Router(), Router()
    root.include_router(child)
    with pytest.raises(ValueError, match="cycle"):
        child.include_router(root)


def test_payload_filter_on_a_kind_without_payload_is_refused() -> None:
    with pytest.raises(TypeError, match="no payload"):
        Router().on_text("hello")


async def test_error_hook_answers_for_a_failing_handler() -> None:
    router = Router()
    seen: list[str] = []

    @router.on_text
    def broken(ctx: Context) -> Reply:
        raise LookupError("no such order")

    @router.on_error
    def apologise(ctx: Context, exc: Exception) -> Reply:
        seen.append(f"{ctx.text}: {exc}")
        return Reply.text("Sorry, something went wrong.")

    client = RouterClient(router)
    assert texts(await client.text("order 7")) == ["Sorry, something went wrong."]
    assert client.last is not None and client.last.handled
    assert seen == ["order 7: no such order"]


async def test_the_nearest_error_hook_runs_and_a_re_raise_reaches_the_worker() -> None:
    root, child = Router(), Router()
    root.include_router(child)
    child.on_text(lambda ctx: 1 / 0)

    @root.on_error
    async def reraise(ctx: Context, exc: Exception) -> None:
        raise exc

    with pytest.raises(ZeroDivisionError):
        await RouterClient(root).text("x")

    child.on_error(lambda ctx, exc: Reply.text(f"child handled {type(exc).__name__}"))
    assert texts(await RouterClient(root).text("x")) == ["child handled ZeroDivisionError"]


@pytest.mark.parametrize(
    ("decorator", "fields", "standby"),
    [
        ("on_message_edit", {"message_edit": {"mid": "m", "text": "new"}}, False),
        ("on_standby", {"message": {"mid": "m", "text": "for the agent"}}, True),
        ("on_postback", {"postback": {"mid": "m", "payload": "P"}}, False),
    ],
)
async def test_every_kind_in_the_table_has_a_decorator(
    decorator: str, fields: dict[str, Any], standby: bool
) -> None:
    router = Router()
    getattr(router, decorator)(lambda ctx: Reply.text(ctx.kind.value))
    replies = await RouterClient(router).item(messaging_item(**fields), standby=standby)
    assert texts(replies) == [EventKind[decorator.removeprefix("on_").upper()].value]


async def test_state_is_kept_per_conversation_between_events() -> None:
    store = MemoryStateStore()
    router = Router(state_store=store)

    @router.on_text
    def count(ctx: Context) -> Reply:
        ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        return Reply.text(str(ctx.state["seen"]))

    alice, bob = RouterClient(router, psid="1"), RouterClient(router, psid="2")
    assert texts(await alice.text("a") + await alice.text("a") + await bob.text("b")) == [
        "1",
        "2",
        "1",
    ]
    assert await store.load(PAGE_ID, "1") == {"seen": 2}


async def test_state_of_a_failed_handler_is_not_saved() -> None:
    store = MemoryStateStore()
    router = Router(state_store=store)

    @router.on_text
    def half_done(ctx: Context) -> None:
        ctx.state["step"] = "paid"
        raise RuntimeError("payment service down")

    router.on_error(lambda ctx, exc: Reply.text("try again"))
    await RouterClient(router).text("pay")
    assert await store.load(PAGE_ID, PSID) == {}


async def test_unsaved_state_is_reported_for_a_caller_that_commits_it() -> None:
    store = MemoryStateStore()
    router = Router(state_store=store, save_state=False)
    router.on_text(lambda ctx: ctx.state.update(step="email"))
    client = RouterClient(router)
    await client.text("x")
    assert client.last is not None
    assert client.last.state == StateUpdate(PAGE_ID, PSID, {"step": "email"})
    assert await store.load(PAGE_ID, PSID) == {}


async def test_state_without_a_store_says_how_to_add_one() -> None:
    router = Router()
    router.on_text(lambda ctx: ctx.state.get("x"))
    with pytest.raises(NoStateStoreError, match="state store"):
        await RouterClient(router).text("x")


async def test_shutdown_callbacks_of_every_router_run_once_newest_first() -> None:
    root, child = Router(), Router()
    root.include_router(child)
    closed: list[str] = []

    async def close(name: str) -> None:
        closed.append(name)

    root.on_shutdown(lambda: close("root client"))
    child.on_shutdown(lambda: close("child store"))
    await root.aclose()
    await root.aclose()
    assert closed == ["child store", "root client"]


async def test_routes_added_after_the_first_event_take_part() -> None:
    root, child = Router(), Router()
    root.include_router(child)
    client = RouterClient(root)
    assert await client.text("hi") == ()  # plans are worked out once, then cached
    child.on_text(lambda ctx: Reply.text("child"))
    assert texts(await client.text("hi")) == ["child"]
    root.on_text(regex="hi")(lambda ctx: Reply.text("root, specific"))
    child.provide(extra=1)
    root.state_store = MemoryStateStore()
    assert texts(await client.text("hi")) == ["root, specific"]
