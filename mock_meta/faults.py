"""Send API faults armed by tests: an error, a delay, or both, for some or all calls.

>>> book = FaultBook(seed=1)
>>> rule = book.arm(FaultSpec(code=2, count=1))
>>> book.take("6543210987654321") is not None, book.take("6543210987654321")
(True, None)

Nothing fails unless armed. Rules are checked in arming order; the first one whose PSID
filter matches and whose (seeded) probability roll succeeds is used, and its ``count``
goes down by one. A rule with no ``code`` only adds latency.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from mock_meta.graph_errors import GraphError


@dataclass(frozen=True)
class FaultSpec:
    """What to inject. ``count=None`` means every matching call until cleared."""

    code: int | None = None
    subcode: int | None = None
    http_status: int | None = None
    message: str | None = None
    latency_ms: int = 0
    probability: float = 1.0
    count: int | None = None
    psid: str | None = None
    # The message is really sent (echo, journal) although the caller sees the error,
    # like Meta's 1/1357046 "Received invalid JSON reply".
    sent: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if not 0 <= self.latency_ms <= 120_000:
            raise ValueError("latency_ms must be between 0 and 120000")
        if self.http_status is not None and not 400 <= self.http_status <= 599:
            raise ValueError("http_status must be a 4xx or 5xx status")
        if self.code is None and (self.subcode is not None or self.sent):
            raise ValueError("subcode and sent need a code")


@dataclass
class ArmedFault:
    id: int
    spec: FaultSpec
    remaining: int | None
    hits: int = 0

    def error(self) -> GraphError | None:
        if self.spec.code is None:
            return None
        return GraphError(
            self.spec.code,
            self.spec.subcode,
            self.spec.message,
            http_status=self.spec.http_status,
        )

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self.spec), "remaining": self.remaining, "hits": self.hits}


@dataclass
class FaultBook:
    """The armed rules plus a seeded random source, so a seed replays the same faults."""

    seed: int | None = None
    _rules: list[ArmedFault] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def arm(self, spec: FaultSpec) -> ArmedFault:
        armed = ArmedFault(id=next(self._ids), spec=spec, remaining=spec.count)
        self._rules.append(armed)
        return armed

    def armed(self) -> list[ArmedFault]:
        return list(self._rules)

    def clear(self, fault_id: int | None = None) -> int:
        """Remove one rule (by id) or all; returns how many were removed."""
        if fault_id is None:
            removed = len(self._rules)
            self._rules.clear()
            return removed
        before = len(self._rules)
        self._rules = [rule for rule in self._rules if rule.id != fault_id]
        return before - len(self._rules)

    def reset(self, seed: int | None = None) -> None:
        self._rules.clear()
        self.seed = seed if seed is not None else self.seed
        self._random = random.Random(self.seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random source (keeps the armed rules): one seed, one replay."""
        self.seed = seed
        self._random = random.Random(seed)

    def take(self, psid: str | None) -> ArmedFault | None:
        """The rule that applies to this call, consuming one of its uses; None if none."""
        if not self._rules:  # the common case on a load test: no work at all
            return None
        for rule in self._rules:
            if rule.spec.psid is not None and rule.spec.psid != psid:
                continue
            if rule.spec.probability < 1.0 and self._random.random() >= rule.spec.probability:
                continue
            rule.hits += 1
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
            return rule
        return None
