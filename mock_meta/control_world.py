"""``/_mock/`` world routes: health, reset, config, and creating apps, pages and users."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, HTTPException

from mock_meta.control_models import AppCreate, HandshakeRequest, PageCreate, UserCreate
from mock_meta.control_responses import (
    AppView,
    ConfigView,
    HandshakeOutcome,
    Health,
    Ok,
    PageView,
    UserView,
)
from mock_meta.runtime import MockRuntime
from mock_meta.state import MESSAGING_FIELDS, StateError


def build_world_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(tags=["world"])

    @router.get("/health", response_model=Health, summary="Liveness of the mock")
    async def health() -> dict[str, Any]:
        return {"ok": True, "graph_version": rt.settings.graph_version}

    @router.post(
        "/reset",
        response_model=Ok,
        summary="Back to the seed: journal, faults, chaos, clock, users",
    )
    async def reset() -> dict[str, bool]:
        """Everything a test changed goes; the apps, pages and users of the seed come back."""
        rt.reset()
        return {"ok": True}

    @router.get(
        "/config",
        response_model=ConfigView,
        summary="Apps, pages and users (secrets and tokens omitted)",
    )
    async def config() -> dict[str, Any]:
        return {"graph_version": rt.settings.graph_version, **rt.state.config()}

    @router.post("/apps", status_code=201, response_model=AppView, summary="Create an app")
    async def create_app(body: AppCreate) -> dict[str, Any]:
        """409 if the app id exists. Its callback is not verified until a handshake runs."""
        kwargs = body.model_dump(exclude_none=True)
        with _state_errors():
            app = rt.state.create_app(**kwargs)
        return app.public()

    @router.post(
        "/pages",
        status_code=201,
        response_model=PageView,
        summary="Create a page (its token is returned once)",
    )
    async def create_page(body: PageCreate) -> dict[str, Any]:
        """The page is subscribed to every Messenger field unless ``subscribed_fields`` says
        otherwise; the token is issued for ``app_id`` (the first app by default)."""
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
        response_model=UserView,
        summary="Create a user (PSID generated when absent)",
    )
    async def create_user(body: UserCreate) -> dict[str, Any]:
        """``open_window`` pretends the user just wrote, so the Page may message them."""
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
        "/handshake",
        response_model=HandshakeOutcome,
        summary="Run the verification GET against an app's callback",
    )
    async def handshake(body: HandshakeRequest | None = None) -> dict[str, Any]:
        """The GET Meta sends when a callback URL is saved (reference §1); 200 either way,
        ``ok`` says whether the callback echoed the challenge."""
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

    return router


@contextmanager
def _state_errors() -> Iterator[None]:
    """Turn a StateError into a 409 (clash) or 404 (unknown id) JSON reason."""
    try:
        yield
    except StateError as exc:
        status = 409 if "already" in str(exc) else 404
        raise HTTPException(status, str(exc)) from None
