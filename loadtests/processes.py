"""Run the mock and the bot as real processes on loopback, for load tests and the demo.

>>> with LoopbackStack.start(Path("/tmp/run")) as stack:   # doctest: +SKIP
...     stack.mock_url, stack.bot_url
...     stack.restart_bot()

Both listen on free 127.0.0.1 ports, share the demo credentials (docs/architecture.md), and
the bot keeps its SQLite inbox in the given directory. ``stop`` always ends both processes
(SIGTERM, then SIGKILL after a grace period); on Linux a child also dies with its parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

HOST = "127.0.0.1"
# The values the mock seeds itself with; the bot gets the same (docs/architecture.md).
DEMO_BOT_ENV: dict[str, str] = {
    "MESSENGER_VERIFY_TOKEN": "test_verify_token",
    "MESSENGER_APP_SECRET": "test_app_secret",
    "MESSENGER_PAGE_ACCESS_TOKEN": "test_page_token",
    "MESSENGER_PAGE_ID": "104501234567890",
}
READY_POLL_SECONDS = 0.1
START_ATTEMPTS = 3


class StartupError(RuntimeError):
    """A process exited or never became ready; the message ends with its log's last lines."""


def listening_socket() -> socket.socket:
    """A TCP socket listening on a free 127.0.0.1 port, to hand to a child with ``--fd``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    return sock


def free_port() -> int:
    """A port nobody listens on right now (a small race remains; ``start`` retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class StopOnExit:
    """``with`` support for whatever has a ``stop()``: leaving the block stops it, error or not.

    The processes and stacks that tests, benchmarks and the main job start all end this way.
    """

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class ServiceProcess:
    """One child process with a readiness URL and a log file."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    ready_url: str
    log_path: Path
    # A listening socket we own and hand to every incarnation (``--fd``): no port race, and
    # connections made while the process restarts wait in its backlog instead of failing.
    listen_socket: socket.socket | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, ready_timeout: float = 30.0) -> None:
        """Start the process and return once ``ready_url`` answers 200."""
        self.spawn()
        self.wait_ready(ready_timeout)

    def spawn(self) -> None:
        """Start the process without waiting (from the thread that will outlive it: a child
        gets SIGTERM when the spawning thread ends); ``wait_ready`` then waits for it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop it in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
            pass_fds=() if self.listen_socket is None else (self.listen_socket.fileno(),),
        )

    def wait_ready(self, ready_timeout: float = 30.0) -> None:
        """Return once ``ready_url`` answers 200; stop the process if it never does."""
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop(grace=2.0)
            raise

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Returns the exit status.

        The listening socket stays open (a restart reuses it); ``close`` releases it.
        """
        popen, self.popen = self.popen, None
        code: int | None = None
        if popen is not None:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
                try:
                    popen.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait(timeout=10)
            code = popen.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def close(self) -> None:
        """Stop the process and release the listening socket."""
        self.stop()
        if self.listen_socket is not None:
            self.listen_socket.close()
            self.listen_socket = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                assert self.popen is not None
                if self.popen.poll() is not None:
                    raise StartupError(
                        f"{self.name} exited with {self.popen.returncode} before it was ready:\n"
                        f"{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.ready_url).status_code == 200:
                        return
                if time.monotonic() >= deadline:
                    raise StartupError(
                        f"{self.name} not ready at {self.ready_url} after {timeout:g}s:\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(READY_POLL_SECONDS)


@dataclass
class LoopbackStack(StopOnExit):
    """The mock and the bot wired to each other; use ``LoopbackStack.start`` as a context."""

    mock: ServiceProcess
    bot: ServiceProcess
    mock_url: str
    bot_url: str
    bot_restarts: int = 0

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        bot_env: Mapping[str, str] | None = None,
        mock_env: Mapping[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> LoopbackStack:
        """Start mock then bot on fresh ports; retries with new ports if a port was taken."""
        last_error: StartupError | None = None
        for _ in range(START_ATTEMPTS):
            stack = cls._build(workdir, bot_env or {}, mock_env or {})
            try:
                stack.mock.start(ready_timeout)
                stack.bot.start(ready_timeout)
                return stack
            except StartupError as exc:
                last_error = exc
                stack.stop()
                if "address already in use" not in str(exc).lower():
                    raise
        assert last_error is not None
        raise last_error

    @classmethod
    def _build(
        cls, workdir: Path, bot_env: Mapping[str, str], mock_env: Mapping[str, str]
    ) -> LoopbackStack:
        # Both listen on sockets bound here and handed over, so no other process can take
        # the port between choosing and binding it (and a restart keeps it).
        bot_socket = listening_socket()
        bot_url = f"http://{HOST}:{bot_socket.getsockname()[1]}"
        mock = mock_meta_service(workdir, f"{bot_url}/webhook", mock_env)
        bot = bot_service(
            workdir, bot_socket, mock.url, {"INBOX_PATH": str(workdir / "inbox.db"), **bot_env}
        )
        return cls(mock=mock.process, bot=bot, mock_url=mock.url, bot_url=bot_url)

    def restart_bot(self, *, grace: float = 10.0, ready_timeout: float = 30.0) -> None:
        """Stop the bot gracefully and start it again on the same port and inbox."""
        self.bot.stop(grace=grace)
        self.bot.start(ready_timeout)
        self.bot_restarts += 1

    def stop(self) -> None:
        """Stop the bot first (it drains into the mock), then the mock. Never raises."""
        for process in (self.bot, self.mock):
            with contextlib.suppress(Exception):
                process.close()


@dataclass(frozen=True)
class MockService:
    process: ServiceProcess
    url: str


def mock_meta_service(
    workdir: Path, callback_url: str, env: Mapping[str, str] | None = None
) -> MockService:
    """``mock-meta serve`` on a socket bound here, delivering webhooks to ``callback_url``."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    url = f"http://{HOST}:{port}"
    process = ServiceProcess(
        name="mock_meta",
        argv=[
            *(sys.executable, "-m", "mock_meta.cli", "serve"),
            *("--port", str(port), "--fd", str(sock.fileno())),
        ],
        env={
            **_child_env(),
            "MOCK_META_HOST": HOST,
            "MOCK_META_PORT": str(port),
            "MOCK_META_CALLBACK_URL": callback_url,
            **(env or {}),
        },
        ready_url=f"{url}/_mock/health",
        log_path=workdir / "logs" / "mock_meta.log",
        listen_socket=sock,
    )
    return MockService(process, url)


def bot_service(
    workdir: Path,
    sock: socket.socket,
    mock_url: str,
    env: Mapping[str, str] | None = None,
    *,
    name: str = "bot",
) -> ServiceProcess:
    """``messenger-bot serve`` on ``sock`` with the demo credentials, sending to the mock."""
    port = int(sock.getsockname()[1])
    return ServiceProcess(
        name=name,
        argv=[sys.executable, "-m", "bot.cli", "serve", "--fd", str(sock.fileno())],
        env={
            **_child_env(),
            **DEMO_BOT_ENV,
            "GRAPH_API_BASE": mock_url,
            "HOST": HOST,
            "PORT": str(port),
            **(env or {}),
        },
        ready_url=f"http://{HOST}:{port}/readyz",
        log_path=workdir / "logs" / f"{name}.log",
        listen_socket=sock,
    )


def _child_env() -> dict[str, str]:
    """Our environment minus the settings we set ourselves, so a stray export cannot leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MESSENGER_", "MOCK_META_", "LOCUST_"))
    }
    # The children import bot/ and mock_meta/ from this checkout even without an install.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


def _die_with_parent() -> None:
    """Linux: deliver SIGTERM to the child if we die without stopping it (e.g. kill -9)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
