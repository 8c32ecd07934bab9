"""Locust entry point: ``locust -f loadtests/locustfile.py --scenario steady``.

Thin on purpose: the user lives in ``users.py``, the load shape in ``shape.py``, the
scenarios in ``scenarios.py`` and the master's start/stop/summary work in ``lifecycle.py``.
"""

from loadtests.lifecycle import install
from loadtests.shape import ScenarioShape
from loadtests.users import ConversationUser

install()

__all__ = ["ConversationUser", "ScenarioShape"]
