"""Personas of a Page (reference §9.6): create, list, read, soft-delete; pure state.

>>> book = PersonaBook(ids=iter(["555"]))
>>> book.create("p1", "Adam", "https://x.io/a.png").public()
{'name': 'Adam', 'profile_picture_url': 'https://x.io/a.png', 'id': '555'}
>>> book.usable("p1", "555"), book.usable("p2", "555")
(True, False)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_NAME_CHARS = 50


@dataclass
class Persona:
    persona_id: str
    page_id: str
    name: str
    profile_picture_url: str
    deleted: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "profile_picture_url": self.profile_picture_url,
            "id": self.persona_id,
        }


class PersonaBook:
    def __init__(self, ids: Iterator[str] | None = None) -> None:
        self._ids = ids or (str(n) for n in itertools.count(2_000_000_000_000_001))
        self._personas: dict[str, Persona] = {}

    def create(self, page_id: str, name: str, profile_picture_url: str) -> Persona:
        persona = Persona(next(self._ids), page_id, name, profile_picture_url)
        self._personas[persona.persona_id] = persona
        return persona

    def get(self, persona_id: str) -> Persona | None:
        persona = self._personas.get(persona_id)
        return persona if persona is not None and not persona.deleted else None

    def of_page(self, page_id: str) -> list[Persona]:
        return [p for p in self._personas.values() if p.page_id == page_id and not p.deleted]

    def usable(self, page_id: str, persona_id: str) -> bool:
        """Whether ``persona_id`` may speak for ``page_id`` in a Send API call."""
        persona = self.get(str(persona_id))
        return persona is not None and persona.page_id == page_id

    def delete(self, persona_id: str) -> bool:
        persona = self.get(persona_id)
        if persona is None:
            return False
        persona.deleted = True  # Meta soft-deletes
        return True

    def clear(self) -> None:
        self._personas.clear()
