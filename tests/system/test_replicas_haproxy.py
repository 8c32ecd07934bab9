"""The replicas' HAProxy settings (``deploy/haproxy.cfg``) against replicas that refuse or die."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from loadtests.haproxy import haproxy_config
from loadtests.processes import HOST, free_port
from tests.conftest import require_binary
from tests.system.conftest import running_haproxy

pytestmark = pytest.mark.system


class RefusingReplica(ThreadingHTTPServer):
    """Ready, but answers every webhook POST with the bot's overload refusal; counts them."""

    def __init__(self) -> None:
        super().__init__((HOST, 0), _Refusing)
        self.posts = 0
        self.lock = threading.Lock()


class _Refusing(BaseHTTPRequestHandler):
    server: RefusingReplica

    def do_GET(self) -> None:  # /readyz: the health check keeps the replica in rotation
        self._answer(200, b'{"status":"ready"}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with self.server.lock:
            self.server.posts += 1
        self._answer(503, b'{"error":"overloaded, retry later"}', retry_after="2")

    def _answer(self, status: int, body: bytes, retry_after: str | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if retry_after is not None:
            self.send_header("retry-after", retry_after)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_replicas(tmp_path: Path) -> Iterator[tuple[list[RefusingReplica], str]]:
    haproxy = require_binary("haproxy")
    replicas = [RefusingReplica(), RefusingReplica()]
    for replica in replicas:
        threading.Thread(target=replica.serve_forever, daemon=True).start()
    front = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(front, [r.server_address[1] for r in replicas]))
    url = f"http://{HOST}:{front}"
    try:
        with running_haproxy(haproxy, config, url):
            yield replicas, url
    finally:
        for replica in replicas:
            replica.shutdown()
            replica.server_close()


def test_a_refusal_goes_back_to_meta_once_instead_of_around_the_replicas(
    refusing_replicas: tuple[list[RefusingReplica], str],
) -> None:
    # Under a flood every replica refuses; a proxy that re-sent each 503 made one POST cost
    # four refusals and wait seconds (bench replicas: thousands of POSTs unanswered).
    replicas, url = refusing_replicas
    answers = [
        httpx.post(f"{url}/webhook", content=b'{"object":"page","entry":[]}', timeout=10)
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [503] * 5
    assert all(a.headers.get("retry-after") == "2" for a in answers)
    assert sum(r.posts for r in replicas) == 5
