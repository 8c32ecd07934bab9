"""The public Router API: registration by kind and payload, sync/async handlers, loading."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from bot.events import EventKind, InboundEvent, parse_event
from bot.routing import Context, Reply, Router, RouterLoadError, load_router
from bot.settings import BotSettings
from bot.testing import PAGE_ID as PAGE
from bot.testing import PSID as USER
from bot.testing import event_of, make_settings, messaging_item, postback_item, text_item


def event(**fields: Any) -> InboundEvent:
    return event_of(messaging_item(timestamp_ms=1, **fields))


def text(value: str) -> InboundEvent:
    return event_of(text_item(value))


def postback(payload: str) -> InboundEvent:
    return event_of(postback_item(payload))


async def test_text_handler_reply_is_returned() -> None:
    router = Router()

    @router.on_text
    def hello(ctx: Context) -> Reply:
        return Reply.text(f"hi {ctx.text} from {ctx.psid} on {ctx.page_id}")

    result = await router.dispatch(text("bob"))
    assert result.handled
    assert result.replies == (Reply({"text": f"hi bob from {USER} on {PAGE}"}),)


async def test_async_handlers_and_lists_of_replies_are_supported() -> None:
    router = Router()

    @router.on_text
    async def two(ctx: Context) -> list[Reply]:
        return [Reply.text("a"), Reply.text("b")]

    result = await router.dispatch(text("x"))
    assert [r.message["text"] for r in result.replies] == ["a", "b"]


async def test_event_without_handler_is_unhandled() -> None:
    result = await Router().dispatch(text("x"))
    assert not result.handled and result.replies == ()


async def test_postback_exact_payload_wins_over_catch_all_registered_first() -> None:
    router = Router()
    router.on_postback(lambda ctx: Reply.text(f"any {ctx.payload}"))
    router.on_postback("GET_STARTED")(lambda ctx: Reply.text("welcome"))

    assert (await router.dispatch(postback("GET_STARTED"))).replies[0].message["text"] == "welcome"
    assert (await router.dispatch(postback("OTHER"))).replies[0].message["text"] == "any OTHER"


async def test_payload_only_routes_leave_other_payloads_unhandled() -> None:
    router = Router()

    @router.on_quick_reply("RED")
    def red(ctx: Context) -> Reply:
        return Reply.text("red")

    tap = event(message={"mid": "m_q", "text": "Blue", "quick_reply": {"payload": "BLUE"}})
    assert not (await router.dispatch(tap)).handled


async def test_quick_reply_falls_back_to_text_handler() -> None:
    router = Router()
    router.on_text(lambda ctx: Reply.text(f"text {ctx.text}"))
    tap = event(message={"mid": "m_q", "text": "Red", "quick_reply": {"payload": "RED"}})
    assert tap.kind is EventKind.QUICK_REPLY
    assert (await router.dispatch(tap)).replies[0].message["text"] == "text Red"


async def test_echo_handler_runs_but_its_replies_are_discarded() -> None:
    router = Router()
    seen: list[str | None] = []

    @router.on_echo
    def echo(ctx: Context) -> Reply:
        seen.append(ctx.psid)
        return Reply.text("loop!")

    item = {
        "sender": {"id": PAGE},
        "recipient": {"id": USER},
        "timestamp": 1,
        "message": {"mid": "m_e", "is_echo": True, "text": "hello"},
    }
    result = await router.dispatch(parse_event(item, page_id=PAGE))
    assert result.handled and result.replies == ()
    assert seen == [USER]  # psid of an echo is the user, not the page


@pytest.mark.parametrize(
    ("register", "fields"),
    [
        ("on_attachments", {"message": {"mid": "m", "attachments": [{"type": "image"}]}}),
        ("on_reaction", {"reaction": {"mid": "m", "action": "react", "reaction": "love"}}),
        ("on_delivery", {"delivery": {"watermark": 5}}),
        ("on_read", {"read": {"watermark": 5}}),
        ("on_referral", {"referral": {"ref": "x", "source": "SHORTLINK"}}),
        ("on_optin", {"optin": {"ref": "x"}}),
        ("on_handover", {"pass_thread_control": {"new_owner_app_id": "1"}}),
    ],
)
async def test_each_kind_decorator_routes_its_kind(register: str, fields: dict[str, Any]) -> None:
    router = Router()
    getattr(router, register)(lambda ctx: Reply.text(ctx.kind.value))
    result = await router.dispatch(event(**fields))
    assert result.handled and result.replies[0].message["text"] == event(**fields).kind.value


async def test_generic_on_registers_any_kind() -> None:
    router = Router()
    router.on(EventKind.MESSAGE_EDIT)(lambda ctx: None)
    result = await router.dispatch(event(message_edit={"mid": "m", "text": "new"}))
    assert result.handled and result.replies == ()


async def test_handler_returning_wrong_type_raises_naming_the_handler() -> None:
    router = Router()

    @router.on_text
    def bad(ctx: Context) -> Any:
        return "a bare string"

    with pytest.raises(TypeError, match="bad"):
        await router.dispatch(text("x"))


def test_reply_text_with_tag_is_a_message_tag() -> None:
    assert Reply.text("hi") == Reply({"text": "hi"}, "RESPONSE", None)
    assert Reply.text("hi", tag="HUMAN_AGENT").messaging_type == "MESSAGE_TAG"


@pytest.fixture
def fake_module() -> Iterator[types.ModuleType]:
    module = types.ModuleType("user_handlers_for_test")
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_load_router_returns_the_modules_router(fake_module: types.ModuleType) -> None:
    fake_module.router = Router()  # type: ignore[attr-defined]
    assert load_router(fake_module.__name__) is fake_module.router  # type: ignore[attr-defined]


async def test_load_router_calls_register(fake_module: types.ModuleType) -> None:
    def register(router: Router) -> None:
        router.on_text(lambda ctx: Reply.text("registered"))

    fake_module.register = register  # type: ignore[attr-defined]
    router = load_router(fake_module.__name__)
    assert (await router.dispatch(text("x"))).replies[0].message["text"] == "registered"


def test_load_router_names_the_module_when_it_has_neither(fake_module: types.ModuleType) -> None:
    with pytest.raises(RouterLoadError, match=r"user_handlers_for_test.*neither"):
        load_router(fake_module.__name__)


def test_load_router_names_a_module_that_cannot_be_imported() -> None:
    with pytest.raises(RouterLoadError, match="no_such_module_xyz"):
        load_router("no_such_module_xyz")


async def test_load_router_passes_settings_to_a_two_argument_register(
    fake_module: types.ModuleType,
) -> None:
    def register(router: Router, settings: BotSettings) -> None:
        router.provide(page=settings.page_id)
        router.on_text(lambda ctx: Reply.text(f"page {ctx.deps.page}"))

    fake_module.register = register  # type: ignore[attr-defined]
    router = load_router(fake_module.__name__, settings=make_settings())
    assert (await router.dispatch(text("x"))).replies[0].message["text"] == f"page {PAGE}"
    with pytest.raises(RouterLoadError, match="needs settings"):
        load_router(fake_module.__name__)
