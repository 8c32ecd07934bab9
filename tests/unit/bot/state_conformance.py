"""What every ``StateStore`` must do: one suite for the memory store and every inbox backend.

A test class subclasses ``StateStoreConformance`` and provides a ``store`` fixture (the
inbox conformance suite hands in the inbox itself).
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.routing import Context, Reply, Router
from bot.state import StateError
from bot.testing import PAGE_ID, RouterClient, texts


class StateStoreConformance:
    """Subclasses provide the ``store`` fixture."""

    async def test_an_unknown_conversation_has_empty_state(self, store: Any) -> None:
        assert await store.load(PAGE_ID, "nobody") == {}

    async def test_saved_state_comes_back_with_nested_and_unicode_values(self, store: Any) -> None:
        data = {"step": "email", "answers": {"name": "Zoë 🎉", "items": [1, 2.5, None, True]}}
        await store.save(PAGE_ID, "1", data)
        assert await store.load(PAGE_ID, "1") == data

    async def test_conversations_are_kept_apart_by_page_and_user(self, store: Any) -> None:
        await store.save(PAGE_ID, "1", {"who": "one"})
        await store.save(PAGE_ID, "2", {"who": "two"})
        await store.save("other_page", "1", {"who": "other page"})
        assert [await store.load(PAGE_ID, "1"), await store.load("other_page", "1")] == [
            {"who": "one"},
            {"who": "other page"},
        ]

    async def test_saving_replaces_and_saving_empty_deletes(self, store: Any) -> None:
        await store.save(PAGE_ID, "1", {"a": 1, "b": 2})
        await store.save(PAGE_ID, "1", {"a": 3})
        assert await store.load(PAGE_ID, "1") == {"a": 3}
        await store.save(PAGE_ID, "1", {})
        assert await store.load(PAGE_ID, "1") == {}

    async def test_values_that_are_not_json_are_refused_and_nothing_is_stored(
        self, store: Any
    ) -> None:
        with pytest.raises(StateError, match="must be JSON"):
            await store.save(PAGE_ID, "1", {"when": object()})
        with pytest.raises(StateError):
            await store.save(PAGE_ID, "1", {"x": float("nan")})
        assert await store.load(PAGE_ID, "1") == {}

    async def test_a_router_keeps_a_conversation_going_on_the_store(self, store: Any) -> None:
        router = Router(state_store=store)

        @router.on_text
        def remember(ctx: Context) -> Reply:
            said = [*ctx.state.get("said", []), ctx.text]
            ctx.state["said"] = said
            return Reply.text(" ".join(said))

        client = RouterClient(router)
        assert texts(await client.text("a") + await client.text("b")) == ["a", "a b"]
