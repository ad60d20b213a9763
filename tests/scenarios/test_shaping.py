"""shaping-v0: the three base objectives, exactly: potential shaping keeps every optimal policy and is
invisible to EPIC once handed over as shaping; the proximity bonus changes the optimal policies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
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
    assert d["sparse~potential"] < 1e-4
    assert d["sparse~proximity"] > 0.05
    assert d["potential~proximity"] == pytest.approx(d["sparse~proximity"], abs=1e-3)


def test_transition_form_of_the_potential_reward_is_the_hand_decomposition():
    """Two implementations: the engine's generic split of features into (s, a) and s' parts, and the
    potential written by hand, `r_sa = [cheese] - Phi(s)`, `r_next = gamma Phi(s')` (Ng et al. 1999)."""
    from mesascope.levels.tabular import transition_reward
    from mesascope.measures.scores import tabularize_levels
    from mesascope.scenarios.shaping import potential

    sc = get_scenario("shaping-v0").with_params(shaping="potential")
    levels = sc.sample_levels(jax.random.key(2), 8, "train")
    tab = tabularize_levels(sc.spec, levels)
    form = transition_reward(tab, jnp.asarray(sc.base_objective.vector(sc.feature_names)))
    phi = np.asarray(jax.vmap(lambda lv: potential(sc, lv))(levels))
    live = ~np.asarray(tab.terminal)
    cheese = np.asarray(tab.features)[..., sc.feature_names.index("cheese")]
    np.testing.assert_allclose(np.asarray(form.next)[live], (sc.spec.gamma * phi)[live], atol=1e-5)
    expected_sa = cheese - phi[..., None]
    np.testing.assert_allclose(np.asarray(form.sa)[live], expected_sa[live], atol=1e-5)
    # On every realised transition the two parts add up to the reward table.
    realised = np.asarray(form.realised(tab.next_state))
    np.testing.assert_allclose(realised, np.asarray(tab.features) @ sc.base_objective.vector(sc.feature_names), atol=1e-5)


def test_vault_levels_and_what_is_optimal_with_the_treasure():
    """Path-dependence variant: the vault is walled off but for one gap, the mouse and cheese start
    outside it, and under every shaping an exact base maximiser takes the treasure on every level
    (potential shaping, either way, leaves that unchanged)."""
    sc = get_scenario("shaping-v0").with_params(vault=1)
    room = sc.params["room"]
    batch = sc.sample_levels(jax.random.key(0), 16, "train")
    walls = np.asarray(batch.walls)
    assert walls[:, 2:room + 1, room - 1].all() and not walls[:, 1, room - 1].any()
    assert (np.asarray(batch.start)[:, 1] < room - 1).all() and (np.asarray(batch.obj_pos)[:, 0, 1] < room - 1).all()
    assert "treasure" in sc.spec.terminal_regions and "treasure" in sc.spec.observed_regions
    key = jax.random.key(3)
    cheese_first = []
    for shaping in ("sparse", "potential", "vault_potential"):
        variant = sc.with_params(shaping=shaping)
        first = optimal_first_reached(variant, variant.base_objective, key, 32, "train")
        cheese_first.append(first["cheese"])
        # The cheese ends the episode, so a policy that eats it never takes the treasure.
        np.testing.assert_allclose(first["cheese"], 0.0, atol=1e-5, err_msg=shaping)
    np.testing.assert_allclose(cheese_first[0], cheese_first[1], atol=1e-5)
    np.testing.assert_allclose(cheese_first[0], cheese_first[2], atol=1e-5)
    with pytest.raises(MesascopeError, match="vault=1"):
        get_scenario("shaping-v0").with_params(shaping="vault_potential")
    with pytest.raises(MesascopeError, match="treasure"):
        sc.with_params(treasure=0.5)


def test_vault_occupancy_is_exact_on_a_uniform_policy():
    """The uniform policy enters the vault with a probability strictly between 0 and 1 within the episode;
    a policy that only ever goes left never does."""
    from mesascope.measures.scores import tabularize_levels
    from mesascope.scenarios.shaping import vault_occupancy
    from mesascope.solve.dp import uniform_policy

    sc = get_scenario("shaping-v0").with_params(vault=1)
    tab = tabularize_levels(sc.spec, sc.sample_levels(jax.random.key(1), 16, "train"))
    occ = vault_occupancy(sc, tab, jax.vmap(uniform_policy)(tab.next_state))
    assert 0.0 < occ.min() and occ.max() < 1.0
    left = np.zeros(tab.features.shape[:3], np.float32)
    left[..., 3] = 1.0
    np.testing.assert_allclose(vault_occupancy(sc, tab, left), 0.0)
    with pytest.raises(MesascopeError, match="vault=1"):
        vault_occupancy(get_scenario("shaping-v0"), tab, left)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_fast_runs_path_dependence_of_the_vault(reproduced):
    """Shaped towards the cheese, some PPO agents never enter the vault on train levels and never learn
    the treasure's reward; shaped towards the treasure, every agent takes it. Both shapings are
    potential-based, so the exact optimal policies are the same: the difference is the path."""
    occupancy = {}
    for shaping in ("potential", "vault_potential"):
        audit = reproduced("shaping-v0", vault=1, shaping=shaping)
        occupancy[shaping] = [s["scenario_measures"]["vault_occupancy"]["train"] for s in audit["systems"]]
    assert np.mean(occupancy["potential"]) < np.mean(occupancy["vault_potential"]) - 0.4
