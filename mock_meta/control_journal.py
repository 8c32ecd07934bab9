"""``/_mock/journal/``: what the mock delivered, what the bot sent, alerts, subscriptions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from mock_meta.control_errors import SafeJSONResponse
from mock_meta.control_responses import JournalPage
from mock_meta.runtime import MockRuntime

MAX_JOURNAL_ITEMS = 10_000
JOURNAL_KINDS = ("deliveries", "sends", "alerts", "subscriptions", "actions")

Id = Annotated[str | None, Query(max_length=200)]


def build_journal_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(tags=["journal"])

    @router.get("/journal/summary", summary="Counts since the last reset")
    async def journal_summary() -> dict[str, Any]:
        return rt.journal.summary()

    @router.get(
        "/journal/{kind}",
        response_model=JournalPage,
        summary="Journal records, filtered",
        responses={404: {"description": "unknown journal"}},
    )
    async def journal(
        kind: str,
        page_id: Id = None,
        psid: Id = None,
        mid: Id = None,
        app_id: Id = None,
        limit: Annotated[int, Query(ge=1, le=MAX_JOURNAL_ITEMS)] = 1000,
    ) -> Any:
        """``kind`` is one of deliveries, sends, alerts, subscriptions, actions. A send
        records how it was called (``call``: path, version, token source, trace headers)."""
        if kind not in JOURNAL_KINDS:
            raise HTTPException(404, f"unknown journal {kind[:40]!r}; one of {list(JOURNAL_KINDS)}")
        filters = {"page_id": page_id, "psid": psid, "app_id": app_id}
        if kind in ("deliveries", "sends", "actions"):
            filters["mid"] = mid
        elif mid is not None:
            raise HTTPException(400, f"the {kind} journal has no mid")
        if kind in ("sends", "actions"):
            filters.pop("app_id")
        records = getattr(rt.journal, kind)(**filters)
        items = [r.to_dict() for r in records[-limit:]]
        # Rendered directly, not through the model: records hold whatever a bot sent, which
        # pydantic cannot serialise when a key is a lone surrogate.
        return SafeJSONResponse({"items": items, "count": len(items), "total": len(records)})

    return router
