"""Open-loop, fixed-rate load: request ``i`` is due at ``t0 + i / rate`` whatever happened before.

wrk is closed-loop (a slow answer delays the next request, which hides queueing); this
generator measures each ack from the moment its request was *due*, so a receiver that
stalls shows it in the percentiles. Raw keep-alive HTTP/1.1 over asyncio protocols, one
request in flight per connection; requests that find no idle connection wait in a FIFO
(that wait counts in their latency, as it would for Meta).

Run as a process (pinned beside the stub, away from the receiver)::

    python -m bench.openloop --port 8000 --rate 3000 --duration 8 --bodies FILE

It prints one JSON object; ``dispatch_lag_p99_ms`` and ``cpu_util`` show whether the
generator itself kept up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, cast

from bench.events import read_bodies
from bench.stats import percentile

_TICK = 0.001


def build_request(host: str, port: int, path: str, signature: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"User-Agent: facebookexternalua\r\nX-Hub-Signature-256: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response_length(buf: bytes | bytearray) -> tuple[int, int] | None:
    """``(status, total bytes)`` of the first complete response in ``buf``, else None.

    >>> response_length(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")
    (200, 40)
    >>> response_length(b"HTTP/1.1 200 OK\\r\\ntransfer-encoding: chunked\\r\\n\\r\\n2\\r\\n")
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    marker = head.find(b"content-length:")
    if marker >= 0:
        stop = head.find(b"\r\n", marker)
        length = int(head[marker + 15 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        return (status, total) if len(buf) >= total else None
    if b"transfer-encoding: chunked" in head:
        last = buf.find(b"0\r\n\r\n", end + 4)
        return (status, last + 5) if last >= 0 else None
    return status, end + 4


class _Conn(asyncio.Protocol):
    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.due = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only duck-typed alike.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, due: float) -> None:
        self.due = due
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        found = response_length(self.buf)
        if found is not None:
            status, total = found
            del self.buf[:total]
            self.gen.completed(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)


class _Generator:
    def __init__(self, requests: list[bytes], rate: float, total: int) -> None:
        self.requests = requests
        self.rate = rate
        self.total = total
        self.idle: deque[_Conn] = deque()
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.busy: set[_Conn] = set()
        self.latencies: list[float] = []
        self.ok_latencies: list[float] = []  # 2xx answers only (a refusal is fast by design)
        self.lags: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.finished = 0
        self.all_done = asyncio.Event()

    def dispatch(self, request: bytes, due: float) -> None:
        if self.idle:
            conn = self.idle.popleft()
            self.busy.add(conn)
            conn.send(request, due)
        else:
            self.waiting.append((request, due))

    def completed(self, conn: _Conn, status: int) -> None:
        latency = time.perf_counter() - conn.due
        self.latencies.append(latency)
        if 200 <= status < 300:
            self.ok_latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self._finish_one()
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            self.busy.discard(conn)
            self.idle.append(conn)

    def lost(self, conn: _Conn) -> None:
        if conn in self.busy:
            self.busy.discard(conn)
            self.errors += 1
            self._finish_one()
        if conn in self.idle:
            self.idle.remove(conn)

    def _finish_one(self) -> None:
        self.finished += 1
        if self.finished >= self.total:
            self.all_done.set()

    async def run(self, t0: float) -> float:
        """Issue every request on schedule; returns when the last one was dispatched."""
        i = 0
        count = len(self.requests)
        while i < self.total:
            now = time.perf_counter()
            due_count = min(self.total, int((now - t0) * self.rate) + 1)
            while i < due_count:
                due = t0 + i / self.rate
                self.lags.append(now - due)
                self.dispatch(self.requests[i % count], due)
                i += 1
            # Timers tick in whole milliseconds (uvloop): shorter sleeps would spin the CPU.
            # Requests due within the tick go out together; their latency still counts
            # from their due time.
            await asyncio.sleep(max(_TICK, t0 + i / self.rate - time.perf_counter()))
        return time.perf_counter()


async def generate(
    port: int,
    bodies: list[tuple[str, bytes]],
    *,
    rate: float,
    duration: float,
    connections: int = 64,
    path: str = "/webhook",
    drain_timeout: float = 15.0,
) -> dict[str, Any]:
    """Send ``rate * duration`` signed POSTs at a fixed rate; report latencies from due time."""
    loop = asyncio.get_running_loop()
    requests = [build_request("127.0.0.1", port, path, sig, body) for sig, body in bodies]
    total = int(rate * duration)
    gen = _Generator(requests, rate, total)
    for _ in range(connections):
        _, conn = await loop.create_connection(lambda: _Conn(gen), "127.0.0.1", port)
        gen.idle.append(conn)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter() + 0.01
    # CLOCK_MONOTONIC is system-wide: the orchestrator lines its samples up with this.
    t0_monotonic = time.monotonic() + (t0 - time.perf_counter())
    last_due = await gen.run(t0)
    try:
        await asyncio.wait_for(gen.all_done.wait(), drain_timeout)
    except TimeoutError:
        pass
    elapsed = time.perf_counter() - t0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    ok = sum(n for status, n in gen.statuses.items() if 200 <= status < 300)
    ms = [x * 1000 for x in gen.latencies]
    ok_ms = [x * 1000 for x in gen.ok_latencies]
    return {
        "target_rate": rate,
        "duration": duration,
        "t0_monotonic": t0_monotonic,
        "sent": total,
        "ok": ok,
        "non_2xx": sum(gen.statuses.values()) - ok,
        "errors": gen.errors,
        "unanswered": total - gen.finished,
        "ok_per_s": ok / max(last_due - t0, elapsed) if total else 0.0,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms, default=0.0),
        "ok_p50_ms": percentile(ok_ms, 50),
        "ok_p99_ms": percentile(ok_ms, 99),
        "statuses": {str(status): n for status, n in sorted(gen.statuses.items())},
        "dispatch_lag_p99_ms": percentile([x * 1000 for x in gen.lags], 99),
        "cpu_util": cpu / elapsed if elapsed else 0.0,
        "wrapped": total > len(bodies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--path", default="/webhook")
    parser.add_argument("--drain-timeout", type=float, default=15.0)
    args = parser.parse_args(argv)
    bodies = read_bodies(args.bodies)
    coro = generate(
        args.port,
        bodies,
        rate=args.rate,
        duration=args.duration,
        connections=args.connections,
        path=args.path,
        drain_timeout=args.drain_timeout,
    )
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:  # plain asyncio still works, just slower
        result = asyncio.run(coro)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
