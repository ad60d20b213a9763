"""Scenario registry: every scenario module registers its versioned ids on import."""

from mesascope.scenarios import cheese_corner as _cheese_corner  # noqa: F401  (registers ids)
from mesascope.scenarios import cheese_corner_pointer as _cheese_corner_pointer  # noqa: F401  (registers ids)
from mesascope.scenarios import red_door as _red_door  # noqa: F401  (registers ids)
from mesascope.scenarios import coin_at_end as _coin_at_end  # noqa: F401  (registers ids)
from mesascope.scenarios import lava as _lava  # noqa: F401  (registers ids)
from mesascope.scenarios import keys_chests as _keys_chests  # noqa: F401  (registers ids)
from mesascope.scenarios import greedy_genes as _greedy_genes  # noqa: F401  (registers a study)
from mesascope.scenarios import evolution_fertility as _evolution_fertility  # noqa: F401  (registers a study)
from mesascope.scenarios import hills as _hills  # noqa: F401  (registers a study)
from mesascope.scenarios import grader as _grader  # noqa: F401  (registers a study)
from mesascope.scenarios import cancer as _cancer  # noqa: F401  (registers a study)
from mesascope.scenarios import nested as _nested  # noqa: F401  (registers a study)
from mesascope.scenarios import tamper as _tamper  # noqa: F401  (registers ids)
from mesascope.scenarios import gold_coin as _gold_coin  # noqa: F401  (registers ids)
from mesascope.scenarios import deceptive as _deceptive  # noqa: F401  (registers ids)
from mesascope.scenarios import shaping as _shaping  # noqa: F401  (registers ids)
from mesascope.scenarios import monster_shields as _monster_shields  # noqa: F401  (registers ids)
from mesascope.scenarios.base import (
    SPLITS,
    Check,
    Finding,
    RunSpec,
    Scenario,
    ScenarioMeasure,
    get_scenario,
    register,
    registered_ids,
    scenario_ids,
)

__all__ = [
    "SPLITS",
    "Check",
    "Finding",
    "RunSpec",
    "Scenario",
    "ScenarioMeasure",
    "get_scenario",
    "register",
    "registered_ids",
    "scenario_ids",
]
