"""One conformance suite that every ``StateStore`` runs (memory and SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.routing import Context, Reply, Router
from bot.state import MemoryStateStore, StateError, StateStore
from bot.state_sqlite import SqliteStateStore
from bot.testing import PAGE_ID, RouterClient, texts

Factory = Callable[[Path], StateStore]
FACTORIES: dict[str, Factory] = {
    "memory": lambda tmp: MemoryStateStore(),
    "sqlite": lambda tmp: SqliteStateStore(tmp / "state.db"),
}


@pytest.fixture(params=sorted(FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    made = FACTORIES[request.param](tmp_path)
    yield made
    await made.aclose()


async def test_an_unknown_conversation_has_empty_state(store: StateStore) -> None:
    assert await store.load(PAGE_ID, "nobody") == {}


async def test_saved_state_comes_back_with_nested_and_unicode_values(store: StateStore) -> None:
    data = {"step": "email", "answers": {"name": "Zoë 🎉", "items": [1, 2.5, None, True]}}
    await store.save(PAGE_ID, "1", data)
    assert await store.load(PAGE_ID, "1") == data


async def test_conversations_are_kept_apart_by_page_and_user(store: StateStore) -> None:
    await store.save(PAGE_ID, "1", {"who": "one"})
    await store.save(PAGE_ID, "2", {"who": "two"})
    await store.save("other_page", "1", {"who": "other page"})
    assert [await store.load(PAGE_ID, "1"), await store.load("other_page", "1")] == [
        {"who": "one"},
        {"who": "other page"},
    ]


async def test_saving_replaces_and_saving_empty_deletes(store: StateStore) -> None:
    await store.save(PAGE_ID, "1", {"a": 1, "b": 2})
    await store.save(PAGE_ID, "1", {"a": 3})
    assert await store.load(PAGE_ID, "1") == {"a": 3}
    await store.save(PAGE_ID, "1", {})
    assert await store.load(PAGE_ID, "1") == {}


async def test_values_that_are_not_json_are_refused_and_nothing_is_stored(
    store: StateStore,
) -> None:
    with pytest.raises(StateError, match="must be JSON"):
        await store.save(PAGE_ID, "1", {"when": object()})
    with pytest.raises(StateError):
        await store.save(PAGE_ID, "1", {"x": float("nan")})
    assert await store.load(PAGE_ID, "1") == {}


async def test_a_router_keeps_a_conversation_going_on_each_store(store: StateStore) -> None:
    router = Router(state_store=store)

    @router.on_text
    def remember(ctx: Context) -> Reply:
        said = [*ctx.state.get("said", []), ctx.text]
        ctx.state["said"] = said
        return Reply.text(" ".join(said))

    client = RouterClient(router)
    assert texts(await client.text("a") + await client.text("b")) == ["a", "a b"]


async def test_sqlite_state_survives_a_reopen(tmp_path: Path) -> None:
    first = SqliteStateStore(tmp_path / "state.db")
    await first.save(PAGE_ID, "1", {"step": "phone"})
    await first.aclose()
    second = SqliteStateStore(tmp_path / "state.db")
    assert await second.load(PAGE_ID, "1") == {"step": "phone"}
    await second.aclose()
