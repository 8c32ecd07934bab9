"""Request bodies of the console's own routes (they document themselves at ``/docs``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_RAW_BODY = 1_000_000


class RawEventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(
        min_length=1,
        max_length=MAX_RAW_BODY,
        description="The webhook body, sent byte for byte (UTF-8) and signed with the app secret.",
    )
    app_id: str | None = Field(default=None, max_length=40, description="The first app by default.")
    signature: Literal["valid", "wrong", "missing"] = "valid"


class ResubscribeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: str | None = Field(default=None, max_length=40, description="The first app by default.")
    page_id: str | None = Field(
        default=None, max_length=40, description="The first page by default."
    )
