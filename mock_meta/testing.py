"""Run a real mock_meta server in-process on a loopback port (uvicorn on a pre-bound socket).

>>> async with MockMetaServer(MockSettings(callback_url=bot_url)) as server:  # doctest: +SKIP
...     async with MockMetaClient(server.base_url) as mock:
...         await mock.user("6543210987654321").send_text("hi")

Each server has its own app, state, journal, clock and metrics registry, so parallel tests
(and xdist workers) never share anything.
"""

from __future__ import annotations

import asyncio
import socket
from types import TracebackType
from typing import Any, Self

import uvicorn
from prometheus_client import CollectorRegistry

from mock_meta.app import create_app
from mock_meta.clock import ControllableClock
from mock_meta.runtime import MockRuntime
from mock_meta.settings import MockSettings

STARTUP_TIMEOUT_SECONDS = 10.0


class LoopbackServer:
    """Any ASGI app served by uvicorn on a pre-bound 127.0.0.1 socket (port chosen by the OS).

    Handy for a bot-like receiver in tests: ``async with LoopbackServer(app) as srv: srv.url``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says
        # TCP, and without it Nagle + delayed ACK add ~40 ms to every small response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="on", log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raise the startup failure
                raise RuntimeError("server exited during startup")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("server did not start in time")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = self._socket = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class MockMetaServer(LoopbackServer):
    """A whole mock platform on a loopback port; ``runtime`` exposes its internals."""

    def __init__(
        self,
        settings: MockSettings | None = None,
        *,
        clock: ControllableClock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings or MockSettings()
        self.registry = registry if registry is not None else CollectorRegistry()
        super().__init__(create_app(self.settings, clock=clock, registry=self.registry))

    @property
    def runtime(self) -> MockRuntime:
        """The live collaborators (state, journal, clock…) for white-box assertions."""
        runtime: MockRuntime = self.app.state.runtime
        return runtime
