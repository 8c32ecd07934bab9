"""The ``/_mock/`` control API: world setup, simulated users, faults, chaos, clock, journal.

Documented at ``/docs``. Errors are short JSON reasons (``{"detail": ...}``) with 400/404/422.
The long-polls are ``mock_meta.control_waits``.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query

from mock_meta.actions import WINDOW_OPENING, build_action
from mock_meta.builders import EventType
from mock_meta.chaos import ChaosConfig, ChaosConfigError
from mock_meta.control_models import (
    ActionRequest,
    AppCreate,
    ClockAdvance,
    ClockResume,
    FaultRequest,
    HandshakeRequest,
    PageCreate,
    SettingsUpdate,
    UserCreate,
)
from mock_meta.faults import FaultSpec
from mock_meta.retry_profile import PROFILES, ProfileError, RetryProfile
from mock_meta.runtime import MockRuntime
from mock_meta.state import MESSAGING_FIELDS, StateError

MAX_JOURNAL_ITEMS = 10_000
JOURNAL_KINDS = ("deliveries", "sends", "alerts", "subscriptions", "actions")

Id = Annotated[str | None, Query(max_length=200)]


def build_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(prefix="/_mock")
    action_ids = itertools.count(1)

    # --- world ------------------------------------------------------------------------------

    @router.get("/health", summary="Liveness of the mock", tags=["world"])
    async def health() -> dict[str, Any]:
        return {"ok": True, "graph_version": rt.settings.graph_version}

    @router.post(
        "/reset", summary="Back to the seed: journal, faults, chaos, clock, users", tags=["world"]
    )
    async def reset() -> dict[str, bool]:
        rt.reset()
        return {"ok": True}

    @router.get(
        "/config", summary="Apps, pages and users (secrets and tokens omitted)", tags=["world"]
    )
    async def config() -> dict[str, Any]:
        return {"graph_version": rt.settings.graph_version, **rt.state.config()}

    @router.post("/apps", status_code=201, summary="Create an app", tags=["world"])
    async def create_app(body: AppCreate) -> dict[str, Any]:
        kwargs = body.model_dump(exclude_none=True)
        with _state_errors():
            app = rt.state.create_app(**kwargs)
        return app.public()

    @router.post(
        "/pages",
        status_code=201,
        summary="Create a page (its token is returned once)",
        tags=["world"],
    )
    async def create_page(body: PageCreate) -> dict[str, Any]:
        token = body.token or f"EAAB{secrets.token_urlsafe(24)}"
        with _state_errors():
            page = rt.state.create_page(
                page_id=body.page_id,
                name=body.name,
                tokens=[token],
                app_id=body.app_id,
                subscribed_fields=(
                    MESSAGING_FIELDS if body.subscribed_fields is None else body.subscribed_fields
                ),
            )
        return {**page.public(), "token": token}

    @router.post(
        "/users",
        status_code=201,
        summary="Create a user (PSID generated when absent)",
        tags=["world"],
    )
    async def create_user(body: UserCreate) -> dict[str, Any]:
        with _state_errors():
            user = rt.state.create_user(
                page_id=body.page_id,
                psid=body.psid,
                first_name=body.first_name,
                last_name=body.last_name,
                locale=body.locale,
            )
        if body.open_window:
            rt.state.record_inbound(user.page_id, user.psid, rt.clock.now())
        return {"psid": user.psid, "page_id": user.page_id, **user.profile()}

    @router.post(
        "/handshake", summary="Run the verification GET against an app's callback", tags=["world"]
    )
    async def handshake(body: HandshakeRequest | None = None) -> dict[str, Any]:
        body = body or HandshakeRequest()
        app_id = body.app_id or next(iter(rt.state.apps), None)
        app = rt.state.apps.get(app_id or "")
        if app is None:
            raise HTTPException(404, f"unknown app {app_id}")
        url = body.callback_url or app.callback_url
        if not url.startswith(("http://", "https://")):
            raise HTTPException(400, "callback_url must be an http(s) URL")
        result = await rt.run_handshake(
            url, body.verify_token if body.verify_token is not None else app.verify_token
        )
        return {
            "ok": result.ok,
            "status": result.status,
            "body": result.body,
            "reason": result.reason,
            "failure": result.failure,
        }

    # --- simulated users ----------------------------------------------------------------------

    @router.post(
        "/users/{psid}/actions",
        summary="A user action, delivered to the bot as a signed webhook",
        tags=["users"],
    )
    async def user_action(psid: str, body: ActionRequest) -> dict[str, Any]:
        pages = rt.state.pages_of(psid)
        if not pages:
            raise HTTPException(404, f"unknown user {psid[:40]} (create it with POST /_mock/users)")
        page_id = body.page_id or pages[0]
        if page_id not in pages:
            raise HTTPException(404, f"user {psid[:40]} does not exist on page {page_id[:40]}")
        try:
            built = build_action(
                rt.builder,
                page_id,
                psid,
                body,
                app_id=next(iter(rt.state.pages[page_id].subscriptions), None),
                last_bot_message=lambda: _last_bot_message(rt, psid),
            )
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        # The action id: a message's own mid; a reaction's or edit's mid is its target's.
        own_mid = built.event_type not in (EventType.REACTION, EventType.MESSAGE_EDIT)
        key = built.mid if built.mid and own_mid else f"act_{next(action_ids)}"
        rt.journal.record_action(psid, page_id, key, body.type, expects_reply=built.expects_reply)
        if body.type in WINDOW_OPENING:
            rt.state.record_inbound(page_id, psid, rt.clock.now())
        delivery_ids = rt.deliver_action(built, mid=key)
        return {
            "mid": built.mid,
            "action_id": key,
            "timestamp": built.timestamp_ms,
            "delivery_id": delivery_ids[0] if delivery_ids else None,
            "delivery_ids": delivery_ids,
            "event": built.event,
        }

    # --- chaos, faults, settings -------------------------------------------------------------

    @router.get(
        "/chaos",
        summary="Delivery chaos (duplicates, reorder, batching, signatures)",
        tags=["faults"],
    )
    async def get_chaos() -> dict[str, Any]:
        return rt.chaos.config.to_dict()

    @router.put(
        "/chaos",
        summary="Change delivery chaos (partial update); the seed also seeds Send API faults",
        tags=["faults"],
    )
    async def put_chaos(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        try:
            rt.chaos.configure(ChaosConfig.from_dict(body, base=rt.chaos.config))
        except (ChaosConfigError, TypeError) as exc:
            raise HTTPException(422, str(exc)) from None
        # The chaos seed also drives probabilistic Send API faults: one seed replays a run.
        rt.faults.reseed(rt.chaos.config.seed)
        return rt.chaos.config.to_dict()

    @router.get("/faults", summary="Armed Send API faults", tags=["faults"])
    async def list_faults() -> dict[str, Any]:
        return {"faults": [f.as_dict() for f in rt.faults.armed()]}

    @router.post("/faults", status_code=201, summary="Arm a Send API fault", tags=["faults"])
    async def arm_fault(body: FaultRequest) -> dict[str, Any]:
        try:
            armed = rt.faults.arm(FaultSpec(**body.model_dump()))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return armed.as_dict()

    @router.delete("/faults", summary="Clear one fault (?id=) or all", tags=["faults"])
    async def clear_faults(id: Annotated[int | None, Query(ge=1)] = None) -> dict[str, int]:
        return {"removed": rt.faults.clear(id)}

    @router.get(
        "/settings", summary="Delivery profile, rate limit and Send API policy", tags=["settings"]
    )
    async def get_settings() -> dict[str, Any]:
        return _settings_view(rt)

    @router.put(
        "/settings", summary="Change delivery profile, rate limit or policy", tags=["settings"]
    )
    async def put_settings(body: SettingsUpdate) -> dict[str, Any]:
        update = body.model_dump(exclude_none=True)
        try:
            profile = _profile_update(rt.profile, update)
        except ProfileError as exc:
            raise HTTPException(422, str(exc)) from None
        rt.set_profile(profile)
        if "rate_limit_per_page_per_second" in update:
            rt.limiter.configure(update["rate_limit_per_page_per_second"])
        for name in rt.policy.as_dict():
            if name in update:
                setattr(rt.policy, name, update[name])
        rt.policy.refresh()
        return _settings_view(rt)

    # --- clock ------------------------------------------------------------------------------

    @router.get("/clock", summary="Platform time", tags=["clock"])
    async def get_clock() -> dict[str, Any]:
        return rt.clock.snapshot()

    @router.post("/clock/freeze", summary="Stop platform time", tags=["clock"])
    async def freeze() -> dict[str, Any]:
        rt.clock.freeze()
        return rt.clock.snapshot()

    @router.post(
        "/clock/resume", summary="Restart platform time, optionally faster", tags=["clock"]
    )
    async def resume(body: ClockResume | None = None) -> dict[str, Any]:
        rt.clock.resume((body or ClockResume()).rate)
        return rt.clock.snapshot()

    @router.post("/clock/advance", summary="Jump platform time forward", tags=["clock"])
    async def advance(body: ClockAdvance) -> dict[str, Any]:
        rt.clock.advance(body.seconds)
        return rt.clock.snapshot()

    # --- journal (the waits are mock_meta.control_waits) -------------------------------------

    @router.get("/journal/summary", summary="Counts since the last reset", tags=["journal"])
    async def journal_summary() -> dict[str, Any]:
        return rt.journal.summary()

    @router.get("/journal/{kind}", summary="Journal records, filtered", tags=["journal"])
    async def journal(
        kind: str,
        page_id: Id = None,
        psid: Id = None,
        mid: Id = None,
        app_id: Id = None,
        limit: Annotated[int, Query(ge=1, le=MAX_JOURNAL_ITEMS)] = 1000,
    ) -> dict[str, Any]:
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
        return {"items": items, "count": len(items), "total": len(records)}

    return router


def _last_bot_message(rt: MockRuntime, psid: str) -> str | None:
    for send in reversed(rt.journal.sends(psid=psid)):
        if send.is_reply and send.message_id:
            return send.message_id
    return None


@contextmanager
def _state_errors() -> Iterator[None]:
    """Turn a StateError into a 409 (clash) or 404 (unknown id) JSON reason."""
    try:
        yield
    except StateError as exc:
        status = 409 if "already" in str(exc) else 404
        raise HTTPException(status, str(exc)) from None


def _profile_update(current: RetryProfile, update: dict[str, Any]) -> RetryProfile:
    profile = current
    named = update.get("retry_profile")
    if isinstance(named, str):
        if named not in PROFILES:
            raise ProfileError(f"unknown retry profile {named!r}; known: {sorted(PROFILES)}")
        profile = PROFILES[named]
    elif isinstance(named, dict):
        profile = RetryProfile.from_dict(named, base=current)
    overrides: dict[str, Any] = {}
    if "delivery_timeout_seconds" in update:
        overrides["timeout_seconds"] = update["delivery_timeout_seconds"]
    if "success_rule" in update:
        overrides["success"] = update["success_rule"]
    return profile.with_overrides(**overrides) if overrides else profile


def _settings_view(rt: MockRuntime) -> dict[str, Any]:
    return {
        "retry_profile": rt.profile.to_dict(),
        "delivery_timeout_seconds": rt.profile.timeout_seconds,
        "success_rule": rt.profile.success,
        "rate_limit_per_page_per_second": rt.limiter.limit_per_second,
        **rt.policy.as_dict(),
    }
