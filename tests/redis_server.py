"""A throwaway ``redis-server`` on a free loopback port, for the tests that need a real Redis.

>>> with RedisServer.start(tmp_path) as server:   # doctest: +SKIP
...     server.url            # redis://127.0.0.1:<port>/0
...     server.kill()         # kill -9, as a crash would

AOF on (``appendonly yes``, ``appendfsync`` as given), no RDB snapshots, data in ``workdir``.
The fixtures in ``tests/conftest.py`` (``redis_server``, ``start_redis``) wrap this class.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

from loadtests.processes import StartupError, free_port

READY_TIMEOUT_SECONDS = 20.0
START_ATTEMPTS = 3


@dataclass
class RedisServer:
    binary: str
    workdir: Path
    port: int
    popen: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(
        cls, workdir: Path, *, binary: str = "redis-server", appendfsync: str = "everysec"
    ) -> RedisServer:
        """Start on a free port (a new one if it was taken meanwhile) and wait for PING."""
        workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(START_ATTEMPTS):
            port = free_port()
            log = (workdir / "redis.log").open("ab")
            popen = subprocess.Popen(
                [
                    *(binary, "--port", str(port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "yes", "--appendfsync", appendfsync),
                    *("--dir", str(workdir), "--daemonize", "no"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            server = cls(binary, workdir, port, popen)
            if server._wait_ready():
                return server
            server.stop()
            if attempt == START_ATTEMPTS - 1:
                tail = (workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise StartupError(f"redis-server did not start:\n{tail}")
        raise AssertionError("unreachable")

    def kill(self) -> None:
        """kill -9: whatever was acknowledged is only as safe as ``appendfsync`` made it."""
        self.popen.kill()
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        with contextlib.closing(client):
            while self.popen.poll() is None:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        return False

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
