"""``mock-meta check`` grades a bot that is not ours: the Express peer (Node) in bench/peers.

It is the way most Messenger bots are written (Meta's samples): it verifies the handshake and
signatures, acks at once, and sends one fetch per text. It has no deduplication, no Send API
retries, no ordering and no window check, and the report card must say so.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.procs import BenchError, free_port
from bench.targets import start_express
from mock_meta.check import CheckOptions, Status, run_checks
from mock_meta.check.report import format_table
from mock_meta.settings import MockSettings
from mock_meta.testing import MockMetaServer
from tests.conftest import require_binary, services_required

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

EXPECTED_FAILURES = {
    "duplicates",  # answers every redelivery again
    "order",  # answers in arrival order
    "send_retry_5xx",  # one fetch, never retried
    "send_retry_613",
    "window",  # answers a day-old message with RESPONSE
}


async def test_the_express_peer_passes_the_protocol_checks_and_fails_the_ones_it_should(
    tmp_path: Path,
) -> None:
    require_binary("node")
    require_binary("npm")
    mock_port = free_port()
    try:
        express = await asyncio.to_thread(start_express, tmp_path, f"http://127.0.0.1:{mock_port}")
    except BenchError as exc:  # npm install needs the registry once
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but the Express peer cannot start: {exc}")
        pytest.skip(f"the Express peer cannot start: {exc}")
    try:
        callback = f"{express.url}/webhook"
        async with MockMetaServer(MockSettings(callback_url=callback), port=mock_port) as server:
            card = await run_checks(server, CheckOptions(callback_url=callback))
    finally:
        await asyncio.to_thread(express.stop)
    print(format_table(card))
    failed = {r.id for r in card.results if r.status is Status.FAILED}
    assert failed == EXPECTED_FAILURES
    for protocol_check in ("handshake", "unsigned_post", "wrong_signature", "sha1_only"):
        assert card.result(protocol_check).status is Status.PASSED
    assert "deduplicate" in card.result("duplicates").fix
