"""Personas: a name and picture a page's messages appear under (reference §9.6).

>>> personas = Personas(PageApi(settings))                                   # doctest: +SKIP
>>> adam = await personas.create("Adam", "https://example.com/adam.png")     # doctest: +SKIP
>>> Reply.text("Hi, Adam here").as_persona(adam)                             # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import limits
from bot.page_api import PageApi, PageApiError


@dataclass(frozen=True, slots=True)
class Persona:
    id: str
    name: str
    profile_picture_url: str


class Personas:
    """Create, list and delete the page's personas."""

    def __init__(self, api: PageApi) -> None:
        self.api = api

    async def create(self, name: str, profile_picture_url: str) -> str:
        """The new persona's id (use it with ``Reply.as_persona``)."""
        limits.check_length("persona name", name, limits.PERSONA_NAME)
        answer = await self.api.call(
            "POST", "personas", {"name": name, "profile_picture_url": profile_picture_url}
        )
        persona_id = answer.get("id") if isinstance(answer, dict) else None
        if not persona_id:
            raise PageApiError("POST /personas", "answer without an id")
        return str(persona_id)

    async def list(self) -> list[Persona]:
        answer = await self.api.call("GET", "personas")
        rows = answer.get("data", []) if isinstance(answer, dict) else []
        return [
            Persona(str(r["id"]), str(r.get("name", "")), str(r.get("profile_picture_url", "")))
            for r in rows
            if isinstance(r, dict) and "id" in r
        ]

    async def delete(self, persona_id: str) -> None:
        await self.api.call("DELETE", "", node=persona_id)
