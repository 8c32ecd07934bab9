"""The few mock control-API calls the load-test machinery makes outside locust's stats.

Users talk to the mock through locust's client (so their requests are measured); arming a
scenario, reading the journal and scraping /metrics go through this small synchronous client.

>>> with MockControl("http://127.0.0.1:8081") as mock:   # doctest: +SKIP
...     mock.handshake()["ok"]
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from loadtests.processes import StopOnExit


class ControlError(RuntimeError):
    """A control-API call failed; ``route`` and ``status`` say which and how."""

    def __init__(self, route: str, status: int | None, reason: str) -> None:
        super().__init__(
            f"{route}: {reason}" if status is None else f"{route}: HTTP {status} {reason}"
        )
        self.route = route
        self.status = status


class MockControl(StopOnExit):
    """Synchronous client for the mock's ``/_mock/`` routes (httpx; gevent-friendly)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def stop(self) -> None:
        """Close the connection pool (also what leaving a ``with`` block does)."""
        self._client.close()

    def handshake(self, app_id: str | None = None) -> dict[str, Any]:
        """Run the GET challenge against the bot; returns ``{ok, status, body, reason}``."""
        body = {} if app_id is None else {"app_id": app_id}
        return self._json("POST", "/_mock/handshake", json=body)

    def arm_fault(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/_mock/faults", json=dict(spec))

    def faults(self) -> list[dict[str, Any]]:
        """The Send API faults armed right now."""
        return list(self._json("GET", "/_mock/faults").get("faults", []))

    def clear_faults(self) -> None:
        self._json("DELETE", "/_mock/faults")

    def chaos(self) -> dict[str, Any]:
        return self._json("GET", "/_mock/chaos")

    def set_chaos(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("PUT", "/_mock/chaos", json=dict(config))

    def journal_summary(self) -> dict[str, Any]:
        return self._json("GET", "/_mock/journal/summary")

    def _json(self, method: str, route: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, route, **kwargs)
        if not response.content:
            return {}
        data = response.json()
        return data if isinstance(data, dict) else {"items": data}

    def _request(self, method: str, route: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, route, **kwargs)
        except httpx.HTTPError as exc:
            raise ControlError(route, None, type(exc).__name__) from exc
        if response.status_code >= 400:
            raise ControlError(route, response.status_code, response.text[:200])
        return response


def scrape(url: str, *, timeout: float = 5.0) -> str | None:
    """The text of a /metrics page, or None when it cannot be read (e.g. a restarting bot)."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None
