"""Ten thousand concurrent long-polls against ``mock-meta serve`` on loopback (issue 9).

Before the fix, 10^4 waiters with a 5 s timeout were answered 16 to 37 s after they started.
The client here is raw asyncio streams (one connection per waiter, opened in waves below the
listen backlog), so what is measured is the mock, not an HTTP client's pool.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench.procs import free_port
from tests.polling import wait_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

WAITERS = 10_000
TIMEOUT = 5.0
CONNECT_WAVE = 500


@pytest.fixture
def mock_port() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < WAITERS + 500:
        pytest.skip(f"needs {WAITERS + 500} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, WAITERS + 500), hard))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_meta.cli", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _listening(port), timeout=30, what="mock-meta serve")
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _long_poll(port: int, n: int, wave: asyncio.Semaphore) -> tuple[bytes, float]:
    async with wave:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        query = f"psid=9{n:015d}&within={TIMEOUT}"
        writer.write(
            f"GET /_mock/wait/no-reply?{query} HTTP/1.1\r\nHost: mock\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.split(b" ", 2)[1], time.perf_counter() - started


async def test_ten_thousand_long_polls_end_within_their_timeout_plus_a_margin(
    mock_port: int,
) -> None:
    wave = asyncio.Semaphore(CONNECT_WAVE)
    results = await asyncio.gather(*(_long_poll(mock_port, n, wave) for n in range(WAITERS)))
    assert {status for status, _ in results} == {b"200"}
    took = sorted(seconds for _, seconds in results)
    median, slowest = took[len(took) // 2], took[-1]
    # Measured on a loaded 2-core machine shared with the client: median 6.1-6.7 s, slowest
    # 7.3 s (it was 37 s). The margins leave room for a busier CI machine.
    assert median < TIMEOUT + 3.0, f"median {median:.1f} s"
    assert slowest < TIMEOUT + 5.0, f"slowest {slowest:.1f} s"
