"""Real ``messenger-bot`` processes on loopback, and a loopback Send API recorder.

Fixtures (all function-scoped; import nothing from this file, use the fixtures):

* ``send_api_recorder`` — a threaded HTTP server on ``127.0.0.1:<free port>`` that records
  every request and answers like the Send API (``{"recipient_id", "message_id"}``). Tests can
  ``hold()`` answers (requests wait at a gate until ``release()``), swap ``respond`` for
  faults, and ``wait_for(predicate)`` with a deadline.
* ``bot_env`` — the environment a bot process starts with (secrets, a temp ``INBOX_PATH``,
  ``GRAPH_API_BASE`` pointing at the recorder); edit it or pass overrides to ``start_bot``.
* ``start_bot`` — ``start_bot(**env) -> BotProcess``: spawns ``messenger-bot serve`` on a
  listening socket this fixture owns (passed as ``--fd``), so a restarted bot reuses the same
  port without races, and returns once ``/readyz`` answers 200. Leftovers are killed at teardown.
  ``bot.burst_until_signal(psids, sig=..., after_acks=N)`` stops or crashes it mid-burst.
* ``run_bot_cli`` — ``run_bot_cli("dead-letters", "list", env=...)`` runs the console script.
* ``webhook_events`` — builds text events stamped now and Meta-style signed envelopes.
* ``poll`` — ``poll(condition, timeout=...)``: wait for a condition with a deadline (no sleeps).

>>> def test_replies(start_bot, send_api_recorder, webhook_events):  # doctest: +SKIP
...     bot = start_bot()
...     bot.post_events([webhook_events.text("m_1", psid="1")])
...     assert send_api_recorder.wait_for(lambda r: r.replies_to("1"))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.signature import signature_for
from tests.polling import wait_until

APP_SECRET = "test_app_secret"
VERIFY_TOKEN = "test_verify_token"
PAGE_TOKEN = "test_page_token"
PAGE_ID = "104501234567890"
BOT_BINARY = str(Path(sys.executable).with_name("messenger-bot"))
# Only these variables pass from the test run into a bot: no stray MESSENGER_* or OTEL_*.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def text_event(mid: str, *, psid: str, text: str = "hi", page_id: str = PAGE_ID) -> dict[str, Any]:
    """A ``messaging[]`` text object stamped now (so the 24-hour window is open)."""
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": mid, "text": text},
    }


def signed_envelope(
    events: list[dict[str, Any]], *, secret: str = APP_SECRET
) -> tuple[bytes, dict[str, str]]:
    """Body (Meta-style ASCII JSON) and headers for a webhook POST carrying ``events``."""
    entries = [{"id": PAGE_ID, "time": int(time.time() * 1000), "messaging": [e]} for e in events]
    body = json.dumps({"object": "page", "entry": entries}).replace("/", "\\/").encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature_for(body, secret),
    }
    return body, headers


# --- the Send API recorder ------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # what the recorder answered (None while held)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def recipient(self) -> str | None:
        payload = self.json
        recipient = payload.get("recipient") if isinstance(payload, dict) else None
        return recipient.get("id") if isinstance(recipient, dict) else None


Responder = Callable[[RecordedRequest], tuple[int, dict[str, Any]]]


def send_api_success(request: RecordedRequest) -> tuple[int, dict[str, Any]]:
    return 200, {"recipient_id": request.recipient, "message_id": f"m_{id(request):x}"}


@dataclass
class SendApiRecorder:
    """A loopback stand-in for the Graph Send API that records what the bot sends."""

    respond: Responder = send_api_success
    hold_timeout: float = 30.0
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._gate = threading.Event()
        self._gate.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def hold(self) -> None:
        """Make new and waiting requests block before they are answered."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def answered(self) -> list[RecordedRequest]:
        with self._changed:
            return [r for r in self.requests if r.status is not None]

    def replies_to(self, psid: str) -> list[RecordedRequest]:
        """Messages to ``psid`` that the recorder accepted with a 2xx."""
        return [r for r in self.answered() if r.recipient == psid and r.status and r.status < 300]

    def wait_for(self, predicate: Callable[[SendApiRecorder], Any], timeout: float = 20.0) -> bool:
        """Block until ``predicate(self)`` is truthy (re-checked at every request change);
        False at the timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _record(self, request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
        self._gate.wait(self.hold_timeout)
        status, payload = self.respond(request)
        with self._changed:
            request.status = status
            self._changed.notify_all()
        return status, payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                url = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=url.path,
                    query=parse_qs(url.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                batch = request.json.get("batch") if isinstance(request.json, dict) else None
                if isinstance(batch, list):
                    status, payload = 200, [recorder._record(call) for call in _calls(batch)]
                    payload = [{"code": code, "body": json.dumps(body)} for code, body in payload]
                else:
                    status, payload = recorder._record(request)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _calls(batch: list[Any]) -> Iterator[RecordedRequest]:
    """The calls of a Graph batch request, each as if it had been sent alone.

    Each call's body is form-encoded with JSON-encoded values, as Graph documents it.
    """
    for item in batch:
        form = {k: v[-1] for k, v in parse_qs(str(item.get("body", ""))).items()}
        decoded = {}
        for key, value in form.items():
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                decoded[key] = value
        yield RecordedRequest(
            method=str(item.get("method", "POST")),
            path="/" + str(item.get("relative_url", "")),
            query={},
            headers={},
            body=json.dumps(decoded).encode(),
        )


@pytest.fixture
def send_api_recorder() -> Iterator[SendApiRecorder]:
    recorder = SendApiRecorder()
    yield recorder
    recorder.close()


# --- bot processes --------------------------------------------------------------------------


class BotProcess:
    """One ``messenger-bot serve`` child process serving on an inherited listening socket."""

    def __init__(self, sock: socket.socket, env: dict[str, str], log_dir: Path, index: int) -> None:
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.env = env
        self.stdout_path = log_dir / f"bot-{index}.stdout"
        self.stderr_path = log_dir / f"bot-{index}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [BOT_BINARY, "serve", "--fd", str(sock.fileno())],
                env=env,
                pass_fds=(sock.fileno(),),
                stdout=out,
                stderr=err,
            )

    @property
    def inbox_path(self) -> Path:
        return Path(self.env["INBOX_PATH"])

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"bot exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, interval=0.05)

    def post_events(self, events: list[dict[str, Any]], *, timeout: float = 10.0) -> httpx.Response:
        body, headers = signed_envelope(events)
        return httpx.post(f"{self.url}/webhook", content=body, headers=headers, timeout=timeout)

    def burst_until_signal(
        self, psids: list[str], *, sig: int, after_acks: int, clients: int = 8
    ) -> list[str]:
        """POST one text event per PSID from ``clients`` concurrent clients and send ``sig``
        once ``after_acks`` were acked (other requests are in flight then); no new request
        starts after it. Returns the PSIDs whose event was acked with 200."""
        acked: list[str] = []

        async def burst() -> None:
            queue = list(psids)
            signalled = asyncio.Event()

            async def sender(client: httpx.AsyncClient) -> None:
                while queue and not signalled.is_set():
                    psid = queue.pop(0)
                    body, headers = signed_envelope([text_event(f"m_{psid}", psid=psid)])
                    try:
                        response = await client.post(
                            f"{self.url}/webhook", content=body, headers=headers
                        )
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        acked.append(psid)
                    if len(acked) >= after_acks and not signalled.is_set():
                        signalled.set()
                        self.signal(sig)

            async with httpx.AsyncClient(timeout=3.0) as client:
                await asyncio.gather(*(sender(client) for _ in range(clients)))

        asyncio.run(burst())
        return acked

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def free_listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def running_haproxy(
    haproxy: str, config: Path, url: str, *, pass_fds: tuple[int, ...] = ()
) -> Iterator[None]:
    """HAProxy on ``config`` for the block, entered once ``url/readyz`` answers 200 through it;
    its stderr goes beside the config."""
    proxy = subprocess.Popen(
        [haproxy, "-db", "-f", str(config)],
        pass_fds=pass_fds,
        stdout=subprocess.DEVNULL,
        stderr=config.with_name("haproxy.stderr").open("wb"),
    )

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=20, what="HAProxy ready in front of its servers")
        yield
    finally:
        proxy.kill()
        proxy.wait(10)


def base_env() -> dict[str, str]:
    return {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}


@pytest.fixture
def bot_env(tmp_path: Path, send_api_recorder: SendApiRecorder) -> dict[str, str]:
    return {
        **base_env(),
        "MESSENGER_APP_SECRET": APP_SECRET,
        "MESSENGER_VERIFY_TOKEN": VERIFY_TOKEN,
        "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
        "MESSENGER_PAGE_ID": PAGE_ID,
        "GRAPH_API_BASE": send_api_recorder.base_url,
        "INBOX_PATH": str(tmp_path / "bot" / "inbox.db"),
        "ORDERING_WINDOW_MS": "0",
        "SEND_API_BACKOFF_BASE_SECONDS": "0.05",
        "SEND_API_BACKOFF_MAX_SECONDS": "0.2",
        "HANDLER_BACKOFF_BASE_SECONDS": "0.05",
        "SHUTDOWN_GRACE_SECONDS": "10",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def start_bot(tmp_path: Path, bot_env: dict[str, str]) -> Iterator[Callable[..., BotProcess]]:
    sock = free_listening_socket()
    started: list[BotProcess] = []

    def start(*, wait_ready: bool = True, **overrides: str) -> BotProcess:
        bot = BotProcess(sock, {**bot_env, **overrides}, tmp_path, len(started))
        started.append(bot)
        if wait_ready:
            bot.wait_ready()
        return bot

    yield start
    for bot in started:
        bot.stop()
    sock.close()


class WebhookEvents:
    """Event and envelope builders for tests (``webhook_events`` fixture)."""

    page_id = PAGE_ID
    app_secret = APP_SECRET

    @staticmethod
    def text(mid: str, *, psid: str, text: str = "hi") -> dict[str, Any]:
        return text_event(mid, psid=psid, text=text)

    @staticmethod
    def signed(
        events: list[dict[str, Any]], *, secret: str = APP_SECRET
    ) -> tuple[bytes, dict[str, str]]:
        return signed_envelope(events, secret=secret)


@pytest.fixture
def webhook_events() -> WebhookEvents:
    return WebhookEvents()


@pytest.fixture
def poll() -> Callable[..., Any]:
    return wait_until


@pytest.fixture
def run_bot_cli(bot_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BOT_BINARY, *args],
            env=bot_env if env is None else env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run
