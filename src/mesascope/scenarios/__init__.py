"""Scenario registry: every scenario module registers its versioned ids on import."""

from mesascope.scenarios import cheese_corner as _cheese_corner  # noqa: F401  (registers ids)
from mesascope.scenarios import tamper as _tamper  # noqa: F401  (registers ids)
from mesascope.scenarios import gold_coin as _gold_coin  # noqa: F401  (registers ids)
from mesascope.scenarios.base import SPLITS, Scenario, get_scenario, register, registered_ids

__all__ = ["SPLITS", "Scenario", "get_scenario", "register", "registered_ids"]
