"""Run the conformance checks against a bot through a running mock, one check at a time.

The mock is reset to its seed before every check (fresh users, no chaos, no faults, the
platform clock back at its start), so each check sees only its own traffic.

>>> url = "http://127.0.0.1:8000/webhook"
>>> settings = MockSettings(callback_url=url)
>>> async with MockMetaServer(settings, port=8081) as server:         # doctest: +SKIP
...     card = await run_checks(server, CheckOptions(callback_url=url))
>>> card.ok                                                           # doctest: +SKIP
True

``only`` picks checks by id (``mock-meta check --only``); an unknown id is refused up front:

>>> check_ids()[:3]
['conversation', 'handshake', 'unsigned_post']
>>> [c.id for c in CheckOptions(url, only={"handshake"}).selected()]
['handshake']
>>> CheckOptions(url, only={"handshak"}).selected()
Traceback (most recent call last):
ValueError: unknown checks ['handshak']; known: [...]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from mock_meta.check.catalog import CHECKS, Check
from mock_meta.check.context import CheckContext, Verdict
from mock_meta.check.conversation import DEFAULT_CONVERSATION, Conversation
from mock_meta.check.report import CheckResult, ReportCard, Status
from mock_meta.client import MockMetaClient
from mock_meta.runtime import MockRuntime
from mock_meta.settings import MockSettings

CHECK_TIMEOUT_SECONDS = 60.0


class RunningMock(Protocol):
    """A mock served on loopback in this process (``mock_meta.testing.MockMetaServer``)."""

    @property
    def runtime(self) -> MockRuntime: ...

    @property
    def settings(self) -> MockSettings: ...

    @property
    def base_url(self) -> str: ...


@dataclass(frozen=True)
class CheckOptions:
    callback_url: str
    conversation: Conversation = DEFAULT_CONVERSATION
    reply_timeout: float = 10.0
    only: Collection[str] | None = None  # check ids; None runs them all
    checks: tuple[Check, ...] = field(default=CHECKS, repr=False)

    def selected(self) -> list[Check]:
        if self.only is None:
            return list(self.checks)
        unknown = set(self.only) - {c.id for c in self.checks}
        if unknown:
            raise ValueError(f"unknown checks {sorted(unknown)}; known: {check_ids()}")
        return [c for c in self.checks if c.id in self.only]


def check_ids() -> list[str]:
    return [c.id for c in CHECKS]


async def run_checks(
    server: RunningMock,
    options: CheckOptions,
    *,
    progress: Callable[[CheckResult], None] | None = None,
) -> ReportCard:
    """Every selected check in order; ``progress`` sees each result as it is made."""
    rt = server.runtime
    card = ReportCard(options.callback_url)
    async with (
        MockMetaClient(server.base_url) as mock,
        httpx.AsyncClient(trust_env=False, timeout=rt.profile.timeout_seconds) as http,
    ):
        ctx = CheckContext(
            rt=rt,
            mock=mock,
            http=http,
            callback_url=options.callback_url,
            app_secret=server.settings.app_secret.get_secret_value(),
            verify_token=server.settings.verify_token.get_secret_value(),
            conversation=options.conversation,
            reply_timeout=options.reply_timeout,
        )
        unreachable = await _unreachable(ctx)
        if unreachable is not None:
            card.results.append(unreachable)
            return card
        for check in options.selected():
            rt.reset()
            result = await _run_one(check, ctx)
            card.results.append(result)
            if progress is not None:
                progress(result)
        rt.reset()
    return card


async def _unreachable(ctx: CheckContext) -> CheckResult | None:
    """A failed result when nothing answers at the callback URL (every check would time out)."""
    probe = await ctx.rt.run_handshake(ctx.callback_url, ctx.verify_token)
    if probe.failure not in ("connection_refused", "connection_error", "timeout"):
        return None
    return CheckResult(
        "reachable",
        "Bot reachable",
        Status.FAILED,
        f"nothing usable answers at {ctx.callback_url}: {probe.reason}",
        fix="start the bot, check the URL and that it listens on that address and port",
        fact="Messenger reference §1-2: Meta GETs and POSTs the callback URL; it must answer",
    )


async def _run_one(check: Check, ctx: CheckContext) -> CheckResult:
    started = time.monotonic()
    try:
        verdict = await asyncio.wait_for(check.run(ctx), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        verdict = Verdict(False, f"did not finish within {CHECK_TIMEOUT_SECONDS:g} s")
    except Exception as exc:  # a check's own failure must not hide the others' results
        verdict = Verdict(False, f"the check could not run: {type(exc).__name__}: {exc}")
    status = {True: Status.PASSED, False: Status.FAILED, None: Status.SKIPPED}[verdict.passed]
    failed = status is Status.FAILED
    return CheckResult(
        check.id,
        check.title,
        status,
        verdict.detail,
        fix=check.fix if failed else "",
        fact=check.fact if failed else "",
        seconds=time.monotonic() - started,
    )
