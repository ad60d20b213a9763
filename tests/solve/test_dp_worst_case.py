"""Worst (and best) case of one objective over every policy optimal for another (SPEC.md section 2),
on a level with two equally short routes to the cheese: the lower one crosses lava, the upper one
crosses a "mud" region. Checked by hand and by brute force over every cheese-optimal deterministic
policy."""

from __future__ import annotations

import numpy as np
import pytest

from mesascope.solve.dp import optimal_action_mask

#   col 0123
LEVEL = (
    "S..#",  # upper route: (0,1) (0,2) (1,2) -> cheese
    ".#.#",
    ".LC#",  # lower route: (1,0) (2,0) (2,1)=lava -> cheese
)
MUD = (
    ".xx.",
    "....",
    "....",
)
GAMMA = 0.9
# features: cheese, lava, step, mud
R_CHEESE = np.array([1.0, 0.0, 0.0, 0.0])
R_NOLAVA = np.array([1.0, -1.0, 0.0, 0.0])
R_NOMUD = np.array([1.0, 0.0, 0.0, -1.0])


@pytest.fixture(scope="module")
def world(draw_level, tabular_np, brute_force):
    spec, level, cells = draw_level(LEVEL, regions={"mud": MUD}, kinds=("cheese", "lava"), gamma=GAMMA)
    mdp = tabular_np(spec, level)
    states = brute_force.reachable(mdp.next_state, mdp.start)
    policies = brute_force.policies(mdp.next_state, mdp.features, states)
    return spec, level, cells, mdp, states, policies


def _index(spec, r, c):
    return r * spec.width + c  # n_tracked = 0, max_inventory = 0


def _reward(mdp, w):
    return (mdp.features @ w).astype(np.float32)


def test_features_are_as_drawn(world):
    spec, _, _, mdp, _, _ = world
    assert spec.kinds == ("cheese", "lava") and spec.regions == ("mud",)
    lava, below_lava = _index(spec, 2, 0), 1  # from (2,0) moving right enters the lava
    np.testing.assert_array_equal(mdp.features[lava, below_lava], [0, 1, 1, 0])
    np.testing.assert_array_equal(mdp.features[mdp.start, 1], [0, 0, 1, 1])  # right: into the mud


def test_both_routes_are_cheese_optimal(world, dp_jit):
    spec, _, _, mdp, _, _ = world
    sol = dp_jit.value_iteration(mdp.next_state, _reward(mdp, R_CHEESE), GAMMA)
    assert float(sol.v[mdp.start]) == pytest.approx(GAMMA**3, abs=1e-6)
    mask = np.asarray(optimal_action_mask(sol.q))
    assert mask[mdp.start].tolist() == [False, True, True, False]  # right and down, nothing else


def test_worst_and_best_case_by_hand(world, dp_jit):
    spec, _, _, mdp, _, _ = world
    g = GAMMA
    cases = {
        # (objective B, worst-case value at the start, best-case value at the start)
        "nolava": (R_NOLAVA, g**3 - g**2, g**3),  # the lava is entered on the third move
        "nomud": (R_NOMUD, g**3 - 1 - g, g**3),  # the mud is entered on the first two moves
    }
    for name, (w_b, worst, best) in cases.items():
        lo = dp_jit.worst_case_over_optimal(mdp.next_state, _reward(mdp, R_CHEESE), _reward(mdp, w_b), GAMMA)
        hi = dp_jit.worst_case_over_optimal(
            mdp.next_state, _reward(mdp, R_CHEESE), _reward(mdp, w_b), GAMMA, best_case=True
        )
        assert float(lo.v[mdp.start]) == pytest.approx(worst, abs=1e-5), name
        assert float(hi.v[mdp.start]) == pytest.approx(best, abs=1e-5), name
    # Off the start there is one optimal route: from (1,0) only the lava route, from (0,1) only the mud.
    lo = dp_jit.worst_case_over_optimal(mdp.next_state, _reward(mdp, R_CHEESE), _reward(mdp, R_NOLAVA), GAMMA)
    hi = dp_jit.worst_case_over_optimal(
        mdp.next_state, _reward(mdp, R_CHEESE), _reward(mdp, R_NOLAVA), GAMMA, best_case=True
    )
    for v in (lo.v, hi.v):
        assert float(v[_index(spec, 1, 0)]) == pytest.approx(g**2 - g, abs=1e-5)
        assert float(v[_index(spec, 0, 1)]) == pytest.approx(g**2, abs=1e-5)


def test_extreme_policy_is_read_from_q(world, dp_jit):
    """argmin of the returned q (disallowed actions are +inf) walks the lava route."""
    spec, _, _, mdp, _, _ = world
    lo = dp_jit.worst_case_over_optimal(mdp.next_state, _reward(mdp, R_CHEESE), _reward(mdp, R_NOLAVA), GAMMA)
    q = np.asarray(lo.q)
    assert np.isposinf(q[mdp.start, [0, 3]]).all()  # up and left are not cheese-optimal
    policy = q.argmin(1)
    s, path = mdp.start, []
    for _ in range(4):
        s = int(mdp.next_state[s, policy[s]])
        path.append(s)
    assert path == [_index(spec, 1, 0), _index(spec, 2, 0), _index(spec, 2, 1), spec.n_states - 1]


@pytest.mark.parametrize("w_b", [R_NOLAVA, R_NOMUD, np.array([0.5, -2.0, -0.1, 0.3])], ids=["nolava", "nomud", "mixed"])
def test_worst_case_matches_brute_force(world, brute_force, dp_jit, w_b):
    spec, _, _, mdp, states, policies = world
    r_a, r_b = mdp.features @ R_CHEESE, mdp.features @ w_b
    v_a = brute_force.values(mdp.next_state, r_a, GAMMA, states, policies)
    v_b = brute_force.values(mdp.next_state, r_b, GAMMA, states, policies)
    optimal = np.all(v_a >= v_a.max(0) - 1e-9, axis=1)  # optimal for the cheese at every reachable state
    lo = dp_jit.worst_case_over_optimal(mdp.next_state, r_a.astype(np.float32), r_b.astype(np.float32), GAMMA)
    hi = dp_jit.worst_case_over_optimal(
        mdp.next_state, r_a.astype(np.float32), r_b.astype(np.float32), GAMMA, best_case=True
    )
    np.testing.assert_allclose(np.asarray(lo.v)[states], v_b[optimal].min(0), atol=1e-5)
    np.testing.assert_allclose(np.asarray(hi.v)[states], v_b[optimal].max(0), atol=1e-5)
    # The cheese-optimal set is exactly the policies built from optimal_action_mask's actions
    # (counted up to actions with identical outcomes, as the enumeration does).
    sol_a = dp_jit.value_iteration(mdp.next_state, r_a.astype(np.float32), GAMMA)
    mask = np.asarray(optimal_action_mask(sol_a.q))
    in_mask = np.all(mask[states[None, :], policies], axis=1)
    np.testing.assert_array_equal(in_mask, optimal)
    assert 1 < optimal.sum() < len(policies)


def test_zero_objective_a_makes_every_policy_optimal(world, brute_force, dp_jit):
    """With A = 0 everything is A-optimal: the worst case is the minimum over all policies."""
    spec, _, _, mdp, states, policies = world
    r_b = mdp.features @ np.array([1.0, -1.0, -0.2, 0.5])
    v_b = brute_force.values(mdp.next_state, r_b, GAMMA, states, policies)
    zero = np.zeros(mdp.next_state.shape, np.float32)
    lo = dp_jit.worst_case_over_optimal(mdp.next_state, zero, r_b.astype(np.float32), GAMMA)
    hi = dp_jit.worst_case_over_optimal(mdp.next_state, zero, r_b.astype(np.float32), GAMMA, best_case=True)
    np.testing.assert_allclose(np.asarray(lo.v)[states], v_b.min(0), atol=1e-5)
    np.testing.assert_allclose(np.asarray(hi.v)[states], v_b.max(0), atol=1e-5)


def test_range_over_optimal_is_the_batched_brute_force_range(world, brute_force):
    """The batched (least, most) at the start equals min/max over every enumerated A-optimal policy."""
    from mesascope.solve.dp import range_over_optimal

    spec, _, _, mdp, states, policies = world
    r_a = mdp.features @ R_CHEESE
    w_bs = [R_NOLAVA, R_NOMUD, np.array([0.5, -2.0, -0.1, 0.3])]
    v_a = brute_force.values(mdp.next_state, r_a, GAMMA, states, policies)
    optimal = np.all(v_a >= v_a.max(0) - 1e-9, axis=1)
    start_col = list(states).index(mdp.start)
    # The same level three times, each with another objective B: one batch of L = 3.
    r_b = np.stack([mdp.features @ w for w in w_bs]).astype(np.float32)
    lo, hi = range_over_optimal(
        np.stack([mdp.next_state] * 3), np.stack([r_a] * 3).astype(np.float32), r_b,
        np.full(3, mdp.start, np.int32), GAMMA,
    )
    for i, w in enumerate(w_bs):
        v_b = brute_force.values(mdp.next_state, mdp.features @ w, GAMMA, states, policies)[optimal, start_col]
        assert float(lo[i]) == pytest.approx(v_b.min(), abs=1e-5)
        assert float(hi[i]) == pytest.approx(v_b.max(), abs=1e-5)
    assert float(lo[0]) < float(hi[0])  # the two cheese routes differ on lava
