"""``/_mock/`` fault routes: delivery chaos and armed Send API faults."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from mock_meta.chaos import ChaosConfig, ChaosConfigError
from mock_meta.control_models import ChaosUpdate, FaultRequest
from mock_meta.control_responses import ChaosView, FaultList, FaultView, Removed
from mock_meta.faults import FaultSpec
from mock_meta.runtime import MockRuntime


def build_faults_router(rt: MockRuntime) -> APIRouter:
    router = APIRouter(tags=["faults"])

    @router.get(
        "/chaos",
        response_model=ChaosView,
        summary="Delivery chaos (duplicates, reorder, batching, signatures)",
    )
    async def get_chaos() -> dict[str, Any]:
        return rt.chaos.config.to_dict()

    @router.put(
        "/chaos",
        response_model=ChaosView,
        summary="Change delivery chaos (partial update); the seed also seeds Send API faults",
    )
    async def put_chaos(body: ChaosUpdate) -> dict[str, Any]:
        """Absent keys keep their value; ``seed: null`` picks a random seed, shown after."""
        try:
            update = body.model_dump(exclude_unset=True)
            rt.chaos.configure(ChaosConfig.from_dict(update, base=rt.chaos.config))
        except (ChaosConfigError, TypeError) as exc:
            raise HTTPException(422, str(exc)) from None
        # The chaos seed also drives probabilistic Send API faults: one seed replays a run.
        rt.faults.reseed(rt.chaos.config.seed)
        return rt.chaos.config.to_dict()

    @router.get("/faults", response_model=FaultList, summary="Armed Send API faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": [f.as_dict() for f in rt.faults.armed()]}

    @router.post(
        "/faults", status_code=201, response_model=FaultView, summary="Arm a Send API fault"
    )
    async def arm_fault(body: FaultRequest) -> dict[str, Any]:
        """The next matching Send API calls fail with Graph's envelope for ``code``/``subcode``
        (and/or wait ``latency_ms``), ``count`` times or until cleared."""
        try:
            armed = rt.faults.arm(FaultSpec(**body.model_dump()))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return armed.as_dict()

    @router.delete("/faults", response_model=Removed, summary="Clear one fault (?id=) or all")
    async def clear_faults(id: Annotated[int | None, Query(ge=1)] = None) -> dict[str, int]:
        return {"removed": rt.faults.clear(id)}

    return router
