"""Which Graph API version answers a call (reference §10).

A version stays usable until its end date; a call to an expired version is served by the
oldest available one, shown in the ``facebook-api-version`` header [D]. ``reject`` instead
answers Graph's deprecation error, for bots that want to fail loudly (a setting, since the
reference documents only the upgrade).

>>> from datetime import date
>>> serve_version("v20.0", today=date(2026, 10, 1), expired="upgrade")
'v21.0'
>>> serve_version("v25.0", today=date(2026, 10, 1), expired="reject")
'v25.0'
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from mock_meta.graph_errors import GraphError

ExpiredVersionPolicy = Literal["upgrade", "reject"]

# version -> last day it is available (None: no end date announced). Reference §10.
AVAILABLE_UNTIL: dict[str, date | None] = {
    "v20.0": date(2026, 9, 24),
    "v21.0": date(2027, 1, 21),
    "v22.0": date(2027, 5, 20),
    "v23.0": date(2027, 10, 8),
    "v24.0": date(2028, 2, 18),
    "v25.0": date(2028, 7, 29),
    "v26.0": None,
}
_OLDEST_LISTED = (20, 0)


def _number(version: str) -> tuple[int, int]:
    major, _, minor = version[1:].partition(".")
    return int(major), int(minor or 0)


def is_expired(version: str, today: date) -> bool:
    """Past its end date, or older than every version the reference lists (long gone)."""
    if version in AVAILABLE_UNTIL:
        until = AVAILABLE_UNTIL[version]
        return until is not None and today > until
    return _number(version) < _OLDEST_LISTED


def oldest_available(today: date) -> str:
    live = [v for v in AVAILABLE_UNTIL if not is_expired(v, today)]
    return min(live, key=_number)


def serve_version(version: str, *, today: date, expired: ExpiredVersionPolicy) -> str:
    """The version that answers a call made to ``version``, or Graph's error."""
    if not is_expired(version, today):
        return version
    oldest = oldest_available(today)
    if expired == "upgrade":
        return oldest
    # Graph's deprecation code 12 [O]; the reference documents only the upgrade.
    raise GraphError(
        12,
        None,
        f"(#12) Graph API {version} is no longer available. The oldest available version "
        f"is {oldest}.",
        type_="GraphMethodException",
    )
