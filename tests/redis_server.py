"""A throwaway ``redis-server`` on a free loopback port, for the tests that need a real Redis.

>>> with RedisServer.start(tmp_path) as server:   # doctest: +SKIP
...     server.url            # redis://127.0.0.1:<port>/0
...     server.kill()         # kill -9, as a crash would
...     server.restart()      # same port and data: the AOF is replayed

AOF on (``appendonly yes``, ``appendfsync`` as given), no RDB snapshots, data in ``workdir``.
The fixtures in ``tests/conftest.py`` (``redis_server``, ``start_redis``) wrap this class.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from loadtests.processes import StartupError, StopOnExit, free_port

READY_TIMEOUT_SECONDS = 20.0
START_ATTEMPTS = 3


@dataclass
class RedisServer(StopOnExit):
    binary: str
    workdir: Path
    port: int
    appendfsync: str
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(
        cls, workdir: Path, *, binary: str = "redis-server", appendfsync: str = "everysec"
    ) -> RedisServer:
        """Start on a free port (a new one if it was taken meanwhile) and wait for PING."""
        workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(START_ATTEMPTS):
            server = cls(binary, workdir, free_port(), appendfsync)
            if server.restart():
                return server
        tail = (workdir / "redis.log").read_text(errors="replace")[-2000:]
        raise StartupError(f"redis-server did not start:\n{tail}")

    def restart(self) -> bool:
        """(Re)start on the same port and data folder (the AOF is replayed); True once ready."""
        self.stop()
        with (self.workdir / "redis.log").open("ab") as log:
            self.popen = subprocess.Popen(
                [
                    *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync),
                    *("--dir", str(self.workdir), "--daemonize", "no"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if self._wait_ready():
            return True
        self.stop()
        return False

    def kill(self) -> None:
        """kill -9: whatever was acknowledged is only as safe as ``appendfsync`` made it."""
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        with contextlib.closing(client):
            while self.popen is not None and self.popen.poll() is None:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        return False
