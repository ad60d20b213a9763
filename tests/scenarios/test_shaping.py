"""shaping-v0: the three base objectives, exactly: potential shaping keeps every optimal policy and is
invisible to EPIC once handed over as shaping; the proximity bonus changes the optimal policies."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mesascope.scenarios import get_scenario
from mesascope.scenarios.shaping import shaping_epic
from mesascope.scenarios.tamper import optimal_first_reached
from mesascope.types import MesascopeError


def test_rings_mark_the_distance_to_the_cheese():
    sc = get_scenario("shaping-v0")
    assert sc.params["shaping"] == "sparse"
    batch = sc.sample_levels(jax.random.key(0), 8, "train")
    for i in range(8):
        regions, cheese = np.asarray(batch.regions[i]), np.asarray(batch.obj_pos[i, 0])
        rows, cols = np.mgrid[: regions.shape[1], : regions.shape[2]]
        dist = np.abs(rows - cheese[0]) + np.abs(cols - cheese[1])
        want = dist[None] == np.arange(1, regions.shape[0] + 1)[:, None, None]
        np.testing.assert_array_equal(regions, want)
        assert regions.sum(0)[tuple(cheese)] == 0 and (regions.sum(0) + (dist == 0)).min() == 1
    with pytest.raises(MesascopeError, match="shaping"):
        sc.with_params(shaping="dense")


def test_what_each_base_objective_makes_optimal():
    sc = get_scenario("shaping-v0")
    key = jax.random.key(3)
    for shaping, cheese in (("sparse", 1.0), ("potential", 1.0), ("proximity", 0.0)):
        variant = sc.with_params(shaping=shaping)
        first = optimal_first_reached(variant, variant.base_objective, key, 32, "deploy")
        np.testing.assert_allclose(first["cheese"], cheese, atol=1e-5, err_msg=shaping)
        if shaping == "proximity":
            np.testing.assert_allclose(first["linger"], 1.0, atol=1e-5)


def test_potential_shaping_is_invisible_to_epic():
    d = shaping_epic(get_scenario("shaping-v0"), jax.random.key(1), n=8)
    assert d["sparse~potential"] < 1e-3
    assert d["sparse~proximity"] > 0.05
    assert d["potential~proximity"] == pytest.approx(d["sparse~proximity"], abs=1e-3)
