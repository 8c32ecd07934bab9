"""The README's "Your own handlers" example runs as shown and its test passes."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.testing import RouterClient, texts

README = Path(__file__).parents[3] / "README.md"


def _blocks() -> list[str]:
    section = README.read_text().split("### Your own handlers", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture
def myhandlers() -> Iterator[types.ModuleType]:
    module = types.ModuleType("myhandlers")
    exec(compile(_blocks()[0], "README.md", "exec"), module.__dict__)
    sys.modules["myhandlers"] = module
    yield module
    del sys.modules["myhandlers"]


async def test_the_readme_bot_answers_as_described(myhandlers: types.ModuleType) -> None:
    client = RouterClient(myhandlers.router)
    welcome = await client.postback("GET_STARTED")
    assert [q["payload"] for q in welcome[0].message["quick_replies"]] == [
        "PRICE_tea",
        "PRICE_coffee",
    ]
    assert texts(await client.quick_reply("Coffee", "PRICE_coffee")) == ["coffee: 4 EUR"]
    assert texts(await client.text("how much is cake")) == ["cake: sold out"]
    assert texts(await client.text("Thanks")) == ["You're welcome!"]


async def test_the_readme_test_passes(myhandlers: types.ModuleType) -> None:
    namespace: dict[str, object] = {}
    exec(compile(_blocks()[1], "README.md", "exec"), namespace)
    await namespace["test_price"]()  # type: ignore[operator]
