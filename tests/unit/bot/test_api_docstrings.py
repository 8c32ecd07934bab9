"""The docstring examples of the bot author's API run, so they cannot rot."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "bot.context",
    "bot.filters",
    "bot.limits",
    "bot.profile",
    "bot.messages",
    "bot.reply",
    "bot.routing",
    "bot.state",
    "bot.templates",
    "bot.testing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
