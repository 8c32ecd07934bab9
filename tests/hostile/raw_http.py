"""Byte-exact HTTP for the red-team suite, and the check every hostile class ends with.

* ``RawConnection`` — a loopback socket for byte-exact requests: ``send``, ``read_answer``,
  ``read_all``, ``closed_within``;
* ``assert_still_answers(bot, recorder)`` — the after-check every class ends with.

>>> def test_x(start_bot, send_api_recorder):  # doctest: +SKIP
...     bot = start_bot()
...     with RawConnection(bot.url) as conn:
...         conn.send(b"GARBAGE\\r\\n\\r\\n")
...         assert conn.read_answer().status == 400
...     assert_still_answers(bot, send_api_recorder)
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from tests.system.conftest import BotProcess, SendApiRecorder, text_event

_psids = itertools.count(1)


@dataclass(frozen=True)
class Answer:
    """A raw HTTP answer: status (0 when the server closed without one) and the bytes read."""

    status: int
    raw: bytes


class RawConnection:
    """One TCP connection to a server on loopback, for requests no HTTP client would send."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """Send all of ``data``; False when the server closed or reset the connection first."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def read_answer(self, timeout: float = 10.0) -> Answer:
        """Read one answer (or until the server closes, or ``timeout``); status 0 if no
        status line came."""
        raw = self.read_all(timeout, until=_complete)
        status = int(raw[9:12]) if raw.startswith(b"HTTP/1.1 ") and len(raw) >= 12 else 0
        return Answer(status, raw)

    def read_all(
        self, timeout: float = 10.0, *, until: Callable[[bytes], bool] | None = None
    ) -> bytes:
        """What the server sends until it closes, ``until(bytes so far)`` holds, or ``timeout``."""
        self.sock.settimeout(timeout)
        raw = b""
        try:
            while chunk := self.sock.recv(65536):
                raw += chunk
                if until is not None and until(raw):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return raw

    def closed_within(self, timeout: float) -> bool:
        """True when the server closes the connection (EOF or reset) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
        return False


def _complete(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def assert_still_answers(bot: BotProcess, recorder: SendApiRecorder, *, within: float = 20) -> str:
    """A good signed event is acked with 200 and its reply reaches the Send API."""
    psid = f"9{next(_psids):015d}"
    response = bot.post_events([text_event(f"m_after_{psid}", psid=psid)])
    assert response.status_code == 200, response.text
    assert recorder.wait_for(lambda r: r.replies_to(psid), timeout=within), "no reply"
    return psid


def metric_value(bot: BotProcess, name: str, **labels: str) -> float:
    """One sample from the bot's ``/metrics`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in httpx.get(f"{bot.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def signed_post(body: bytes, headers: dict[str, str], path: str = "/webhook") -> bytes:
    """A raw ``POST`` request carrying ``body`` with its headers; a header value's lone
    surrogates (``"\\udcff"``) become those raw bytes, as a hostile client would send them."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


__all__ = ["Answer", "RawConnection", "assert_still_answers", "metric_value", "signed_post"]
