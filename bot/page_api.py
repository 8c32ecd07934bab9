"""Page-level Graph calls other than the Send API: Messenger Profile, thread control, personas.

>>> async with PageApi(settings) as api:                                   # doctest: +SKIP
...     await api.call("POST", "messenger_profile", {"greeting": [...]})

The page token travels in an ``Authorization`` header, never in the URL, and never appears
in an error message. Graph errors become :class:`PageApiError` with Meta's code and subcode.
"""

from __future__ import annotations

import hashlib
import hmac
from types import TracebackType
from typing import Any, Self

import httpx

from bot.settings import BotSettings


class PageApiError(RuntimeError):
    """Graph refused a call (or could not be reached: ``code`` is then ``None``)."""

    def __init__(
        self,
        what: str,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        status: int | None = None,
    ) -> None:
        detail = f" (#{code}{f'/{subcode}' if subcode else ''})" if code is not None else ""
        super().__init__(f"{what} failed{detail}: {message}")
        self.code, self.subcode, self.status = code, subcode, status


class PageApi:
    """An httpx client for ``{GRAPH_API_BASE}/{version}/{page_id}/...`` with the page's token.

    ``transport`` replaces the network in tests (``httpx.ASGITransport`` onto the mock).
    """

    def __init__(
        self,
        settings: BotSettings,
        *,
        page_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.page_id = page_id or settings.page_id or "me"
        tokens = settings.page_token_map()
        token = tokens.get(self.page_id) or settings.page_access_token.get_secret_value()
        base = f"{settings.graph_api_base.rstrip('/')}/{settings.graph_api_version}/"
        self._token = token
        # With "Require App Secret" on, every call carries HMAC-SHA256(app secret, token).
        self._proof: dict[str, str] = {}
        if settings.appsecret_proof:
            secret = settings.app_secret.get_secret_value().encode()
            proof = hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()
            self._proof = {"appsecret_proof": proof}
        self._client = httpx.AsyncClient(
            base_url=base,
            transport=transport,
            timeout=settings.send_timeout_seconds,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def call(
        self,
        method: str,
        edge: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        node: str | None = None,
    ) -> Any:
        """``method /{node or page_id}/{edge}`` and the decoded answer, or a PageApiError."""
        path = f"{node or self.page_id}/{edge}" if edge else str(node or self.page_id)
        what = f"{method} /{path}"
        try:
            response = await self._client.request(
                method, path, json=body, params={**(params or {}), **self._proof}
            )
        except httpx.HTTPError as exc:
            raise PageApiError(what, type(exc).__name__) from None  # the text may hold the URL
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success and answer is not None:
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, dict):
            raise PageApiError(what, f"HTTP {response.status_code}", status=response.status_code)
        message = str(error.get("message", "")).replace(self._token, "[REDACTED]")
        raise PageApiError(
            what,
            message,
            code=error.get("code"),
            subcode=error.get("error_subcode"),
            status=response.status_code,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
