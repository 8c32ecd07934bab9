"""One outbound-path variant, run as a pinned process: Send API calls/s on one core.

    python -m bench.send_client --variant httpx --port 8081 --seconds 3 --in-flight 50

Variants: ``httpx`` (one pooled AsyncClient, ``--pool`` connections), ``bot`` (the bot's
own ``HttpSendApi``, metrics and instrumentation included), ``raw`` (hand-written asyncio
HTTP/1.1 keep-alive connections: the floor of Python's per-call cost), ``batch`` (httpx,
Graph batch requests of ``--batch`` calls each). ``--transport aiohttp`` puts httpx-aiohttp's
transport under httpx (``SEND_API_TRANSPORT`` for ``bot``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.events import PAGE_ID, PAGE_TOKEN
from bench.openloop import response_length

_PSID = "6543210987654321"


def _message(i: int) -> dict[str, Any]:
    return {"recipient": {"id": _PSID}, "messaging_type": "RESPONSE", "message": {"text": f"r{i}"}}


async def _drive(call: Callable[[int], Awaitable[int]], seconds: float, in_flight: int) -> int:
    """``in_flight`` loops each awaiting ``call`` back to back until time is up; calls made."""
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))
    done = 0

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            # Await first: `done += await ...` reads `done` before suspending and loses
            # the counts of calls that finished concurrently.
            finished = await call(next(counter))
            done += finished

    await asyncio.gather(*(loop() for _ in range(in_flight)))
    return done


def _client(args: argparse.Namespace) -> Any:
    """An ``httpx.AsyncClient`` with ``--pool`` connections over ``--transport``."""
    import httpx

    limits = httpx.Limits(max_connections=args.pool, max_keepalive_connections=args.pool)
    transport = None
    if args.transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(limits=limits, timeout=10.0, trust_env=False, transport=transport)


async def _httpx(port: int, args: argparse.Namespace) -> int:
    url = f"http://127.0.0.1:{port}/v25.0/{PAGE_ID}/messages"
    async with _client(args) as client:

        async def call(i: int) -> int:
            body = {**_message(i), "access_token": PAGE_TOKEN}
            response = await client.post(url, json=body)
            return 1 if response.status_code == 200 else 0

        return await _drive(call, args.seconds, args.in_flight)


async def _batch(port: int, args: argparse.Namespace) -> int:
    url = f"http://127.0.0.1:{port}/v25.0/"
    async with _client(args) as client:

        async def call(i: int) -> int:
            items = [
                {
                    "method": "POST",
                    "relative_url": f"v25.0/{PAGE_ID}/messages",
                    "body": _message(i * args.batch + k),
                }
                for k in range(args.batch)
            ]
            response = await client.post(url, json={"access_token": PAGE_TOKEN, "batch": items})
            return sum(1 for part in response.json() if part.get("code") == 200)

        return await _drive(call, args.seconds, args.in_flight)


async def _bot(port: int, args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry
    from pydantic import SecretStr

    from bot.metrics import BotMetrics
    from bot.send_api import HttpSendApi
    from bot.settings import BotSettings

    settings = BotSettings(
        MESSENGER_VERIFY_TOKEN=SecretStr("v"),
        MESSENGER_APP_SECRET=SecretStr("s"),
        MESSENGER_PAGE_ACCESS_TOKEN=SecretStr(PAGE_TOKEN),
        MESSENGER_PAGE_ID=PAGE_ID,
        GRAPH_API_BASE=f"http://127.0.0.1:{port}",
        SEND_API_MAX_CONNECTIONS=args.pool,
        SEND_API_TRANSPORT=args.transport,
    )
    api = HttpSendApi(settings, BotMetrics(CollectorRegistry()))
    try:

        async def call(i: int) -> int:
            result = await api.send(PAGE_ID, _PSID, {"text": f"r{i}"})
            return 1 if result.ok else 0

        return await _drive(call, args.seconds, args.in_flight)
    finally:
        await api.aclose()


class _RawConn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        found = response_length(self.buf)
        if found is not None and self.waiter is not None:
            del self.buf[: found[1]]
            self.waiter.set_result(found[0])

    async def request(self, raw: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


async def _raw(port: int, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(_RawConn, "127.0.0.1", port))[1]
        for _ in range(args.in_flight)
    ]
    free: asyncio.Queue[_RawConn] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)

    async def call(i: int) -> int:
        body = json.dumps({**_message(i), "access_token": PAGE_TOKEN}).encode()
        head = (
            f"POST /v25.0/{PAGE_ID}/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        conn = await free.get()
        try:
            status = await conn.request(head.encode() + body)
        finally:
            free.put_nowait(conn)
        return 1 if status == 200 else 0

    return await _drive(call, args.seconds, args.in_flight)


VARIANTS = {"httpx": _httpx, "batch": _batch, "bot": _bot, "raw": _raw}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--pool", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--transport", choices=("httpx", "aiohttp"), default="httpx")
    args = parser.parse_args(argv)
    import uvloop

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    calls = uvloop.run(VARIANTS[args.variant](args.port, args))
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    # Rates over the driving window; set-up (imports, connections) is outside it but in cpu.
    result = {"calls": calls, "per_s": calls / args.seconds, "cpu": cpu / args.seconds}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
