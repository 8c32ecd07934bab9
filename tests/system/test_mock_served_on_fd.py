"""``mock-meta serve --fd N`` (how LoopbackStack and supervisors start it) answers promptly.

uvicorn's own ``fd=`` wraps the descriptor as a Unix socket, so its TCP connections never got
TCP_NODELAY and Nagle's algorithm with delayed ACKs held every small answer ~40 ms: a paced
load test through the control API could not go beyond ~22 actions/s per connection.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest

from loadtests.processes import mock_meta_service

pytestmark = [pytest.mark.system]


def test_a_mock_served_on_an_inherited_socket_answers_without_nagle_delays(
    tmp_path: Path,
) -> None:
    mock = mock_meta_service(tmp_path, "http://127.0.0.1:9/webhook")
    mock.process.start()
    try:
        with httpx.Client(base_url=mock.url, timeout=10.0, trust_env=False) as client:
            client.get("/_mock/health").raise_for_status()  # connect; later calls keep it
            took = []
            for _ in range(20):
                started = time.perf_counter()
                client.get("/_mock/journal/summary").raise_for_status()
                took.append(time.perf_counter() - started)
    finally:
        mock.process.close()

    # ~2 ms on an idle machine; 40+ ms every time when Nagle holds the answer. The median
    # ignores the odd slow call of a busy machine.
    assert statistics.median(took) < 0.02
