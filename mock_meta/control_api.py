"""The ``/_mock/`` control API: one router per concern, composed here (the long-polls are
``mock_meta.control_waits``).

Documented at ``/docs``. Errors are short JSON reasons (``{"detail": ...}``) with 400/404/422.
"""

from __future__ import annotations

from fastapi import APIRouter

from mock_meta.control_faults import build_faults_router
from mock_meta.control_journal import build_journal_router
from mock_meta.control_settings import build_clock_router, build_settings_router
from mock_meta.control_users import build_users_router
from mock_meta.control_world import build_world_router
from mock_meta.runtime import MockRuntime


def build_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(prefix="/_mock")
    for part in (
        build_world_router,
        build_users_router,
        build_faults_router,
        build_settings_router,
        build_clock_router,
        build_journal_router,
    ):
        router.include_router(part(rt))

    return router
