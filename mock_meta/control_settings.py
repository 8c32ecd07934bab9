"""``/_mock/`` settings and clock routes: delivery profile, rate limit, policy, platform time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from mock_meta.control_models import ClockAdvance, ClockResume, SettingsUpdate
from mock_meta.control_responses import ClockView, SettingsView
from mock_meta.retry_profile import PROFILES, ProfileError, RetryProfile
from mock_meta.runtime import MockRuntime


def build_settings_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(tags=["settings"])

    @router.get(
        "/settings",
        response_model=SettingsView,
        summary="Delivery profile, rate limit and Send API policy",
    )
    async def get_settings() -> dict[str, Any]:
        return _settings_view(rt)

    @router.put(
        "/settings",
        response_model=SettingsView,
        summary="Change delivery profile, rate limit or policy",
    )
    async def put_settings(body: SettingsUpdate) -> dict[str, Any]:
        """Absent keys keep their value; every number must be finite."""
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

    return router


def build_clock_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(tags=["clock"])

    @router.get("/clock", response_model=ClockView, summary="Platform time")
    async def get_clock() -> dict[str, Any]:
        return rt.clock.snapshot()

    @router.post("/clock/freeze", response_model=ClockView, summary="Stop platform time")
    async def freeze() -> dict[str, Any]:
        rt.clock.freeze()
        return rt.clock.snapshot()

    @router.post(
        "/clock/resume",
        response_model=ClockView,
        summary="Restart platform time, optionally faster",
    )
    async def resume(body: ClockResume | None = None) -> dict[str, Any]:
        rt.clock.resume((body or ClockResume()).rate)
        return rt.clock.snapshot()

    @router.post("/clock/advance", response_model=ClockView, summary="Jump platform time forward")
    async def advance(body: ClockAdvance) -> dict[str, Any]:
        """Due retries, the 15-minute alert, the 1-hour disable and window expiry all follow."""
        rt.clock.advance(body.seconds)
        return rt.clock.snapshot()

    return router


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
