"""How the platform retries a webhook: a versioned, overridable delivery profile.

Meta documents a 5 s deadline (20 s in the older FAQ), "a few" immediate retries, a developer
alert after 15 minutes of failure and the Page unsubscribed after an hour (reference §4). The
spacing of retries inside that hour is undocumented, so it is data here.

>>> profile = RetryProfile.from_dict({"timeout_seconds": 20, "success": "any_2xx"})
>>> profile.is_success(204), profile.is_success(302)
(True, False)
>>> [profile.delay_after(n) for n in range(1, 7)]
[0.0, 0.0, 0.0, 1.0, 5.0, 30.0]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

SuccessRule = Literal["exact_200", "any_2xx"]


class ProfileError(ValueError):
    """A profile dict that cannot be turned into a ``RetryProfile``; the message says why."""


@dataclass(frozen=True, slots=True)
class RetryProfile:
    """Delivery rules. Times are platform-clock seconds, except ``timeout_seconds`` (real)."""

    name: str = "meta-2026-05"
    timeout_seconds: float = 5.0
    success: SuccessRule = "exact_200"
    # Attempts right after the first failure, before any spacing (Meta: "a few more times").
    immediate_retries: int = 3
    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 300.0, 600.0)
    # After ``retry_delays`` run out, keep retrying this often until disabled or given up.
    repeat_delay: float = 600.0
    alert_after: float = 15 * 60.0
    disable_after: float = 60 * 60.0
    # One event is not retried later than this after its first attempt, even while the Page
    # keeps working for other events [U]; the generic Graph webhook window (36 h) by default.
    give_up_after: float = 36 * 3600.0

    def __post_init__(self) -> None:
        if self.success not in ("exact_200", "any_2xx"):
            raise ProfileError("success must be 'exact_200' or 'any_2xx'")
        if self.timeout_seconds <= 0:
            raise ProfileError("timeout_seconds must be positive")
        if self.immediate_retries < 0:
            raise ProfileError("immediate_retries must be >= 0")
        if any(d < 0 for d in self.retry_delays) or self.repeat_delay <= 0:
            raise ProfileError("retry delays must be >= 0 and repeat_delay > 0")
        if not 0 < self.alert_after <= self.disable_after:
            raise ProfileError("need 0 < alert_after <= disable_after")
        if self.give_up_after <= 0:
            raise ProfileError("give_up_after must be positive")

    def is_success(self, status: int) -> bool:
        """Whether an HTTP status acknowledges the webhook (3xx never does)."""
        return status == 200 if self.success == "exact_200" else 200 <= status < 300

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        if attempt <= self.immediate_retries:
            return 0.0
        index = attempt - self.immediate_retries - 1
        return self.retry_delays[index] if index < len(self.retry_delays) else self.repeat_delay

    def is_immediate(self, attempt: int) -> bool:
        """True when the attempt after ``attempt`` is one of the immediate retries."""
        return attempt <= self.immediate_retries

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["retry_delays"] = list(self.retry_delays)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: RetryProfile | None = None) -> RetryProfile:
        """Build from a (partial) dict over ``base`` or over the named profile ``data["base"]``.

        Unknown keys are refused, so a typo in a seed file or a control API call is loud.
        """
        values = dict(data)
        base_name = values.pop("base", None)
        if base_name is not None:
            if base_name not in PROFILES:
                raise ProfileError(f"unknown base profile {base_name!r}; known: {sorted(PROFILES)}")
            base = PROFILES[base_name]
        return (base or cls()).with_overrides(**values)

    def with_overrides(self, **overrides: Any) -> RetryProfile:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ProfileError(f"unknown retry profile keys: {unknown}")
        if "retry_delays" in overrides:
            delays = overrides["retry_delays"]
            if not isinstance(delays, list | tuple):
                raise ProfileError("retry_delays must be a list of seconds")
            overrides["retry_delays"] = tuple(_number("retry_delays", d) for d in delays)
        for key in ("timeout_seconds", "repeat_delay", "alert_after", "disable_after"):
            if key in overrides:
                overrides[key] = _number(key, overrides[key])
        if "give_up_after" in overrides:
            overrides["give_up_after"] = _number("give_up_after", overrides["give_up_after"])
        if "immediate_retries" in overrides:
            value = overrides["immediate_retries"]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ProfileError("immediate_retries must be an integer")
        if "name" in overrides and not isinstance(overrides["name"], str):
            raise ProfileError("name must be a string")
        try:
            return dataclasses.replace(self, **overrides)
        except TypeError as exc:  # a wrong type slipping through to __post_init__ comparisons
            raise ProfileError(str(exc)) from None


def _number(key: str, value: Any) -> float:
    # Finite only: a NaN timeout compares false with everything and left deliveries pending.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfileError(f"{key} must be a finite number")
    return float(value)


META_2026_05 = RetryProfile()
# The older FAQ's 20 s timeout, otherwise identical.
META_LEGACY_20S = RetryProfile(name="meta-legacy-20s", timeout_seconds=20.0)
# Lenient receivers: any 2xx acknowledges.
META_ANY_2XX = RetryProfile(name="meta-any-2xx", success="any_2xx")

PROFILES: dict[str, RetryProfile] = {
    p.name: p for p in (META_2026_05, META_LEGACY_20S, META_ANY_2XX)
}
