"""Redis, the mock, N ``messenger-bot serve`` replicas and HAProxy in front, all on loopback.

>>> with ReplicaStack.start(tmp_path, redis_url, replicas=3) as stack:   # doctest: +SKIP
...     stack.front_url                  # what the mock delivers to (one port, like Meta sees)
...     stack.kill(0)                    # kill -9 replica 0 and close its port
...     stack.shards_owned()             # per live replica, from its /metrics

HAProxy runs with ``loadtests.haproxy.haproxy_config`` (the settings of
``deploy/haproxy.cfg``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.haproxy import haproxy_config
from loadtests.processes import (
    HOST,
    ServiceProcess,
    StopOnExit,
    bot_service,
    free_port,
    listening_socket,
    mock_meta_service,
)


@dataclass
class ReplicaStack(StopOnExit):
    mock: ServiceProcess
    bots: list[ServiceProcess]
    haproxy: ServiceProcess
    mock_url: str
    front_url: str

    @classmethod
    def start(
        cls,
        workdir: Path,
        redis_url: str,
        *,
        haproxy_binary: str,
        replicas: int = 3,
        bot_env: dict[str, str] | None = None,
    ) -> ReplicaStack:
        """Start mock, replicas (together, so they split the shards) and HAProxy; wait ready."""
        front_port = free_port()
        front_url = f"http://{HOST}:{front_port}"
        mock = mock_meta_service(workdir, f"{front_url}/webhook")
        redis_env = {"INBOX_BACKEND": "redis", "REDIS_URL": redis_url, **(bot_env or {})}
        bots = [
            bot_service(workdir, listening_socket(), mock.url, redis_env, name=f"bot{n}")
            for n in range(replicas)
        ]
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "haproxy.cfg"
        ports = [int(bot.listen_socket.getsockname()[1]) for bot in bots if bot.listen_socket]
        config.write_text(haproxy_config(front_port, ports))
        haproxy = ServiceProcess(
            name="haproxy",
            argv=[haproxy_binary, "-f", str(config), "-db"],
            env={"PATH": os.environ.get("PATH", "")},
            ready_url=f"{front_url}/readyz",
            log_path=workdir / "logs" / "haproxy.log",
        )
        stack = cls(mock.process, bots, haproxy, mock.url, front_url)
        try:
            mock.process.start()
            _start_together(bots)
            haproxy.start()
        except BaseException:
            stack.stop()
            raise
        return stack

    def kill(self, n: int) -> None:
        """kill -9 replica ``n`` and close its port, as when its machine is gone."""
        bot = self.bots[n]
        assert bot.popen is not None
        bot.popen.send_signal(signal.SIGKILL)
        bot.popen.wait(10)
        bot.close()

    def metric(self, n: int, name: str) -> float | None:
        """A label-free sample from replica ``n``'s /metrics (None when it does not answer)."""
        bot = self.bots[n]
        if not bot.running:
            return None
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(bot.ready_url.replace("/readyz", "/metrics"), timeout=2).text
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def shards_owned(self) -> list[float]:
        """``bot_shards_owned`` of each replica that is alive and answers."""
        values = (self.metric(n, "bot_shards_owned") for n in range(len(self.bots)))
        return [v for v in values if v is not None]

    def stop(self) -> None:
        for process in (self.haproxy, *self.bots, self.mock):
            with contextlib.suppress(Exception):
                process.close()


def _start_together(bots: list[ServiceProcess]) -> None:
    """Spawn every replica before waiting for any: they join within one claim interval and
    split the shards, instead of the first one ready taking them all."""
    for bot in bots:
        bot.spawn()
    for bot in bots:
        bot.wait_ready()
