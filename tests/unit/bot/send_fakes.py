"""Pieces of fake Graph servers shared by the Send API client's tests."""

from __future__ import annotations

from collections.abc import Callable

import httpx


def raising(exc_type: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    """A ``MockTransport`` handler that fails the way httpx reports ``exc_type``."""

    def respond(request: httpx.Request) -> httpx.Response:
        raise exc_type("boom", request=request)

    return respond
