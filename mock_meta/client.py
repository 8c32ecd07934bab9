"""A small typed async client for the mock's control API, for test and load-test authors.

>>> async def scenario(base_url: str) -> None:  # doctest: +SKIP
...     async with MockMetaClient(base_url) as mock:
...         user = await mock.create_user()
...         action = await user.send_text("hi")
...         reply = await mock.wait_for_reply(user.psid, action.action_id, timeout=5)
...         assert reply.message["text"]
...         await mock.arm_fault(code=2, count=1)        # next Send API call fails transiently
...         await mock.advance_clock(25 * 3600)          # the 24 h window closes

Errors from the control API raise :class:`MockMetaError` with the HTTP status and reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8081"


class MockMetaError(Exception):
    """A control API call answered with an unexpected status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"mock_meta answered {status}: {body}")
        self.status = status
        self.body = body


class ReplyTimeout(MockMetaError):
    """``wait_for_reply`` ran out of time (HTTP 408)."""


class UnexpectedReply(MockMetaError):
    """``wait_for_no_reply`` saw a message after all (HTTP 409)."""


@dataclass(frozen=True)
class Action:
    """What a simulated user did. ``action_id`` (the ``mid`` when the event has one) is the
    key for ``wait_for_reply`` / ``wait_for_delivery``."""

    mid: str | None
    action_id: str
    timestamp: int
    delivery_id: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """The bot's first message to a user after an action (``message`` as the bot sent it)."""

    message: dict[str, Any]
    message_id: str | None
    time_to_reply_seconds: float | None
    ack_latency_seconds: float | None
    raw: dict[str, Any]


class SimulatedUser:
    """One PSID on one page; every method is a user action delivered to the bot."""

    def __init__(self, client: MockMetaClient, psid: str, page_id: str | None = None) -> None:
        self._client = client
        self.psid = psid
        self.page_id = page_id

    async def act(self, type_: str, **fields: Any) -> Action:
        body = {"type": type_, **{k: v for k, v in fields.items() if v is not None}}
        if self.page_id is not None:
            body.setdefault("page_id", self.page_id)
        data = await self._client.request("POST", f"/_mock/users/{self.psid}/actions", json=body)
        return Action(
            data.get("mid"),
            data["action_id"],
            int(data.get("timestamp", 0)),
            data.get("delivery_id"),
            data,
        )

    async def send_text(self, text: str) -> Action:
        return await self.act("text", text=text)

    async def tap_quick_reply(self, title: str, payload: str) -> Action:
        return await self.act("quick_reply", text=title, payload=payload)

    async def tap_postback(self, payload: str, title: str | None = None) -> Action:
        return await self.act("postback", payload=payload, title=title)

    async def react(self, mid: str, reaction: str = "love") -> Action:
        return await self.act("reaction", target_mid=mid, reaction=reaction)

    async def read(self) -> Action:
        return await self.act("read")


class MockMetaClient:
    """Async client for ``/_mock/``; pass ``transport=httpx.ASGITransport(app)`` in-process."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 70.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> MockMetaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> Any:
        if kwargs.get("json") is not None:
            # ASCII escapes: a user's text may hold a lone surrogate (the input that breaks
            # bots), which httpx's UTF-8 JSON encoding refuses.
            kwargs["content"] = json.dumps(kwargs.pop("json"), allow_nan=False).encode("ascii")
            kwargs["headers"] = {**kwargs.get("headers", {}), "content-type": "application/json"}
        response = await self._http.request(method, path, **kwargs)
        body = response.json() if response.content else None
        if response.status_code not in expect:
            error = {408: ReplyTimeout, 409: UnexpectedReply}.get(
                response.status_code, MockMetaError
            )
            raise error(response.status_code, body)
        return body

    # --- world -------------------------------------------------------------------------
    def user(self, psid: str, page_id: str | None = None) -> SimulatedUser:
        return SimulatedUser(self, psid, page_id)

    async def create_user(self, **fields: Any) -> SimulatedUser:
        data = await self.request("POST", "/_mock/users", json=fields)
        return SimulatedUser(self, data["psid"], data["page_id"])

    async def create_page(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/_mock/pages", json=fields)
        return result

    async def create_app(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/_mock/apps", json=fields)
        return result

    async def config(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/_mock/config")
        return result

    async def reset(self) -> None:
        await self.request("POST", "/_mock/reset")

    async def handshake(self, app_id: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"app_id": app_id, **fields}
        result: dict[str, Any] = await self.request("POST", "/_mock/handshake", json=body)
        return result

    # --- waiting -----------------------------------------------------------------------
    async def wait_for_reply(
        self,
        psid: str | None,
        action_id: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - the server-side long-poll deadline
    ) -> Reply:
        """The bot's first message to the user after ``action_id`` (``psid`` may be None)."""
        params: dict[str, Any] = {"action_id": action_id, "timeout": timeout}
        if psid is not None:
            params["psid"] = psid
        data = await self.request("GET", "/_mock/wait/reply", params=params)
        record = data["reply"]
        return Reply(
            record.get("request", {}).get("message") or {},
            record.get("message_id"),
            data.get("time_to_reply_seconds"),
            data.get("ack_latency_seconds"),
            data,
        )

    async def wait_for_no_reply(self, psid: str, within: float = 1.0) -> None:
        await self.request("GET", "/_mock/wait/no-reply", params={"psid": psid, "within": within})

    async def wait_for_delivery(
        self,
        action_id: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - the server-side long-poll deadline
    ) -> dict[str, Any]:
        """The delivery of ``action_id`` once settled (delivered, dropped or skipped)."""
        params = {"action_id": action_id, "timeout": timeout}
        result: dict[str, Any] = await self.request("GET", "/_mock/wait/delivery", params=params)
        return result

    # --- faults, chaos, settings, clock ------------------------------------------------
    async def arm_fault(self, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/_mock/faults", json=spec)
        return result

    async def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.request("GET", "/_mock/faults"))["faults"]
        return result

    async def clear_faults(self, fault_id: int | None = None) -> int:
        params = {"id": fault_id} if fault_id is not None else None
        return int((await self.request("DELETE", "/_mock/faults", params=params))["removed"])

    async def set_chaos(self, **config: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PUT", "/_mock/chaos", json=config)
        return result

    async def update_settings(self, **values: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PUT", "/_mock/settings", json=values)
        return result

    async def clock(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/_mock/clock")
        return result

    async def freeze_clock(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/_mock/clock/freeze")
        return result

    async def resume_clock(self, rate: float | None = None) -> dict[str, Any]:
        body = {"rate": rate} if rate is not None else {}
        result: dict[str, Any] = await self.request("POST", "/_mock/clock/resume", json=body)
        return result

    async def advance_clock(self, seconds: float) -> dict[str, Any]:
        body = {"seconds": seconds}
        result: dict[str, Any] = await self.request("POST", "/_mock/clock/advance", json=body)
        return result

    # --- journal -----------------------------------------------------------------------
    async def journal(self, kind: str, **filters: Any) -> list[dict[str, Any]]:
        """``kind`` is deliveries, sends, alerts or subscriptions; filters: page_id, psid, mid."""
        params = {k: v for k, v in filters.items() if v is not None}
        data = await self.request("GET", f"/_mock/journal/{kind}", params=params)
        result: list[dict[str, Any]] = data["items"]
        return result

    async def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/_mock/journal/summary")
        return result
