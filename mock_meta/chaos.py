"""Seeded delivery chaos: duplicates, reordering, batching and bad signatures.

Every decision is a pure function of ``(seed, decision kind, key)`` — the key is a delivery
id — so a run replays identically for a given seed no matter how deliveries interleave.
Nothing misbehaves unless configured: the default config is calm.

>>> chaos = Chaos(ChaosConfig(seed=7, duplicate_probability=0.5))
>>> [chaos.should_duplicate(f"dlv_{n}") for n in range(6)] == [
...     Chaos(ChaosConfig(seed=7, duplicate_probability=0.5)).should_duplicate(f"dlv_{n}")
...     for n in range(6)]
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from mock_meta.wire import SIGNATURE_MODES, SignatureMode


class ChaosConfigError(ValueError):
    """A chaos dict with a bad value; the message names the key."""


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """What ``PUT /_mock/chaos`` sets. ``seed=None`` picks a random seed (shown afterwards)."""

    seed: int | None = None
    duplicate_probability: float = 0.0
    reorder_probability: float = 0.0
    # 1 = one entry per POST (Meta's usual); N > 1 coalesces up to N ready entries of one app.
    batch_max_entries: int = 1
    signature: SignatureMode = "valid"

    def __post_init__(self) -> None:
        for key in ("duplicate_probability", "reorder_probability"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ChaosConfigError(f"{key} must be a number between 0 and 1")
        if isinstance(self.batch_max_entries, bool) or not isinstance(self.batch_max_entries, int):
            raise ChaosConfigError("batch_max_entries must be an integer")
        if not 1 <= self.batch_max_entries <= 1000:
            raise ChaosConfigError("batch_max_entries must be between 1 and 1000")
        if self.signature not in SIGNATURE_MODES:
            raise ChaosConfigError(f"signature must be one of {list(SIGNATURE_MODES)}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ChaosConfigError("seed must be an integer or null")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: ChaosConfig | None = None) -> ChaosConfig:
        """Partial update over ``base``; unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ChaosConfigError(f"unknown chaos keys: {unknown}")
        return dataclasses.replace(base or cls(), **data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Chaos:
    """Decisions for the delivery engine; ``configure`` swaps the config atomically."""

    def __init__(self, config: ChaosConfig | None = None) -> None:
        self._config = ChaosConfig()
        self._seed = 0
        self.configure(config or ChaosConfig())

    @property
    def config(self) -> ChaosConfig:
        """The active config, with the seed actually in use filled in."""
        return self._config

    @property
    def calm(self) -> bool:
        """True when no chaos is configured (lets the engine skip the work)."""
        c = self._config
        return (
            c.duplicate_probability == 0
            and c.reorder_probability == 0
            and c.batch_max_entries == 1
            and c.signature == "valid"
        )

    def configure(self, config: ChaosConfig) -> None:
        seed = config.seed if config.seed is not None else secrets.randbits(32)
        self._config = dataclasses.replace(config, seed=seed)
        self._seed = seed

    def should_duplicate(self, key: str) -> bool:
        """Deliver the same bytes (same signature) a second time after this delivery."""
        return self._chance("duplicate", key) < self._config.duplicate_probability

    def should_reorder(self, key: str) -> bool:
        """Swap this delivery with the next one of the same PSID."""
        return self._chance("reorder", key) < self._config.reorder_probability

    def batch_size(self, key: str) -> int:
        """How many entries (1..batch_max_entries) the POST starting with ``key`` may carry."""
        limit = self._config.batch_max_entries
        if limit == 1:
            return 1
        return 1 + int(self._chance("batch", key) * limit) % limit

    @property
    def signature_mode(self) -> SignatureMode:
        return self._config.signature

    def _chance(self, kind: str, key: str) -> float:
        """A uniform number in [0, 1) fixed by (seed, kind, key)."""
        digest = hashlib.blake2b(f"{self._seed}|{kind}|{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64
