"""`alpha` (a share of training levels drawn from the deployment distribution) and cheese-corner's `view`.

The draw is folded into each level's key apart from its other draws, so at alpha 0 the scenario is
exactly the one without the parameter, and at any alpha a level that stays a training level is the very
level alpha 0 gives for its key.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mesascope.scenarios import get_scenario
from mesascope.scenarios.conformance import check_scenario

N = 400


def _share_within(share: float, alpha: float, n: int) -> bool:
    sd = (alpha * (1 - alpha) / n) ** 0.5
    return abs(share - alpha) <= 4 * sd


def _equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


@pytest.mark.parametrize("sid", ["cheese-corner-v0", "keys-chests-v0"])
def test_alpha_zero_is_the_scenario_without_it(sid):
    plain, zero = get_scenario(sid), get_scenario(sid, alpha=0.0)
    assert plain.params["alpha"] == 0.0 and plain.description == zero.description
    for split in ("train", "deploy"):
        assert _equal(plain.sample_levels(jax.random.key(7), 64, split), zero.sample_levels(jax.random.key(7), 64, split))


def test_cheese_corner_alpha_moves_only_the_cheese_of_a_share_of_training_levels():
    plain = get_scenario("cheese-corner-v0").sample_levels(jax.random.key(5), N, "train")
    mixed = get_scenario("cheese-corner-v0", alpha=0.25).sample_levels(jax.random.key(5), N, "train")
    np.testing.assert_array_equal(mixed.walls, plain.walls)
    np.testing.assert_array_equal(mixed.start, plain.start)
    np.testing.assert_array_equal(mixed.regions, plain.regions)
    cheese = np.asarray(mixed.obj_pos[:, 0])
    rows = np.arange(N)
    on_corner = np.asarray(mixed.regions[rows, 0, cheese[:, 0], cheese[:, 1]])
    # Region 1 puts every training cheese on the corner; a deploy-like level never does.
    np.testing.assert_array_equal(cheese[on_corner], np.asarray(plain.obj_pos[:, 0])[on_corner])
    assert _share_within(1 - on_corner.mean(), 0.25, N), 1 - on_corner.mean()
    assert not np.asarray(mixed.walls[rows, cheese[:, 0], cheese[:, 1]]).any()
    assert not (cheese == np.asarray(mixed.start)).all(axis=1).any()
    # Deploy levels do not depend on alpha.
    assert _equal(get_scenario("cheese-corner-v0", alpha=0.25).sample_levels(jax.random.key(1), 32, "deploy"),
                  get_scenario("cheese-corner-v0").sample_levels(jax.random.key(1), 32, "deploy"))


def test_cheese_corner_alpha_one_trains_on_deploy_like_levels():
    levels = get_scenario("cheese-corner-v0", alpha=1.0).sample_levels(jax.random.key(2), 64, "train")
    cheese = np.asarray(levels.obj_pos[:, 0])
    assert not np.asarray(levels.regions[np.arange(64), 0, cheese[:, 0], cheese[:, 1]]).any()


def test_keys_chests_alpha_lays_out_a_share_of_training_levels_as_deploy():
    plain = get_scenario("keys-chests-v0").sample_levels(jax.random.key(3), N, "train")
    mixed = get_scenario("keys-chests-v0", alpha=0.4).sample_levels(jax.random.key(3), N, "train")
    np.testing.assert_array_equal(mixed.obj_pos, plain.obj_pos)
    np.testing.assert_array_equal(mixed.start, plain.start)
    two_keys = np.asarray(mixed.obj_kind[:, 1] == mixed.obj_kind[:, 0])
    assert _share_within(two_keys.mean(), 0.4, N), two_keys.mean()
    deploy = get_scenario("keys-chests-v0").sample_levels(jax.random.key(3), 4, "deploy")
    np.testing.assert_array_equal(np.asarray(mixed.obj_kind)[two_keys][0], np.asarray(deploy.obj_kind[0]))
    np.testing.assert_array_equal(np.asarray(mixed.obj_kind)[~two_keys], np.asarray(plain.obj_kind)[~two_keys])


@pytest.mark.parametrize("sid", ["cheese-corner-v0", "keys-chests-v0"])
def test_mixed_training_levels_conform(sid):
    report = check_scenario(get_scenario(sid, alpha=0.5))
    assert report.passed, str(report)


def test_cheese_corner_full_view_conforms():
    scenario = get_scenario("cheese-corner-v0", view="full")
    assert scenario.spec.obs_shape == (7, 7, 3)
    report = check_scenario(scenario)
    assert report.passed, str(report)
