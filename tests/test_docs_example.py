"""The worked example of docs/adding-a-scenario.md runs as printed.

The page's one ```python block that calls `register(` is executed as a module: it must register
`docs-example-v0`, whose levels of both splits sample as the page describes, whose scenario measure is
what the page says, whose parameters are range-checked, and which `plan_run` accepts. No training;
the registration is removed afterwards so that no other test sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

import mesascope.scenarios  # noqa: F401  (registers the built-in scenarios first)
from mesascope.experiments.run import plan_run
from mesascope.measures.scores import tabularize_levels
from mesascope.scenarios import get_scenario
from mesascope.scenarios.base import _REGISTRY, SPLITS, Scenario
from mesascope.types import MesascopeError

PAGE = Path(__file__).resolve().parent.parent / "docs" / "adding-a-scenario.md"
EXAMPLE_ID = "docs-example-v0"


def example_code() -> str:
    """The page's example: the one fenced python block that registers a scenario."""
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.S | re.M)
    registering = [b for b in blocks if "register(" in b]
    assert len(registering) == 1, f"expected one ```python block calling register( in {PAGE}, found {len(registering)}"
    return registering[0]


@pytest.fixture(scope="module")
def example() -> Iterator[dict[str, Any]]:
    assert EXAMPLE_ID not in _REGISTRY
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    try:
        exec(compile(example_code(), str(PAGE), "exec"), namespace)
        yield namespace
    finally:
        _REGISTRY.pop(EXAMPLE_ID, None)


def test_example_registers_a_gridworld_scenario(example: dict[str, Any]) -> None:
    assert example["SCENARIO_ID"] == EXAMPLE_ID
    sc = get_scenario(EXAMPLE_ID)
    assert isinstance(sc, Scenario) and sc.kind == "gridworld"
    assert sc.id == EXAMPLE_ID and sc.summary
    assert sc.params == {"room": 5, "train_anywhere": 0.0}
    assert sc.feature_names == ("cheese", "step", "wall")
    assert [g.name for g in sc.candidate_goals] == ["cheese", "wall"]
    assert sc.finding is not None and sc.finding.fast is not None
    assert [m.name for m in sc.measures] == ["base_optimal_wall_entries"]


def test_levels_of_each_split_are_as_described(example: dict[str, Any]) -> None:
    room = 4
    sc = get_scenario(EXAMPLE_ID, room=room)
    for split in SPLITS:
        levels = sc.sample_levels(jax.random.key(0), 6, split)
        assert levels.walls.shape == (6, room + 2, room + 2)
        cheese_col = np.asarray(levels.obj_pos[:, 0, 1])
        assert np.all(np.asarray(levels.start[:, 1]) == 1)  # the mouse starts in the left column
        if split == "train":
            assert np.all(cheese_col == room)  # always against the right-hand wall
        else:
            assert np.all((cheese_col > 1) & (cheese_col < room))
        again = sc.sample_levels(jax.random.key(0), 6, split)
        assert np.array_equal(np.asarray(again.obj_pos), np.asarray(levels.obj_pos))  # seeded


def test_scenario_measure_matches_the_page(example: dict[str, Any]) -> None:
    sc = get_scenario(EXAMPLE_ID, room=3)
    (measure,) = sc.measures
    values = {}
    for split in SPLITS:
        levels = sc.sample_levels(jax.random.key(1), 4, split)
        values[split] = np.asarray(measure.of_levels(sc, levels, tabularize_levels(sc.spec, levels)))
        assert values[split].shape == (4,)
    assert np.all(values["train"] > 0)  # reaching the training cheese is reaching the wall
    assert np.all(values["deploy"] == 0)  # no base-optimal policy goes near the wall on deploy


def test_parameters_are_checked_and_plan_run_accepts_it(example: dict[str, Any]) -> None:
    with pytest.raises(MesascopeError, match="room"):
        get_scenario(EXAMPLE_ID, room=2)
    plan = plan_run(EXAMPLE_ID, seeds=2, scenario_params={"room": 4})
    assert plan.scenario.params["room"] == 4
    assert plan.seeds == (0, 1)
    assert plan.preset == "fast"
