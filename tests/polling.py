"""Waiting for a condition with a deadline: the one way tests wait for async work.

``wait_until`` (threads, subprocesses) and ``eventually`` (inside an event loop) re-check a
condition until it is truthy, return that value, and fail the test at the deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import pytest


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll ``condition`` from a plain thread until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout:g} s (last value: {result!r})")
        time.sleep(interval)


T = TypeVar("T")


@overload
async def eventually(
    condition: Callable[[], Awaitable[T | None]],
    *,
    within: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...
@overload
async def eventually(
    condition: Callable[[], T | None],
    *,
    within: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...
async def eventually(
    condition: Callable[[], Any],
    *,
    within: float = 10.0,
    interval: float = 0.01,
    what: str = "condition",
) -> Any:
    """Poll ``condition`` (sync or async) on the running loop until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {within:g} s (last value: {result!r})")
        await asyncio.sleep(interval)
