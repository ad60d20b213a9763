"""EPIC, DARD and optimal-policy regret (SPEC.md section 3): invariances, pseudometric axioms, the
memory-efficient path against the dense one, batching, and a regret worked out by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesascope.measures.epic import (
    PolicyRegret,
    canonicalize_dard,
    canonicalize_epic,
    dard_distance,
    epic_distance,
    epic_distance_decomposed,
    optimal_policy_regret,
)

FAST = settings(max_examples=30, deadline=None)

seeds = st.integers(0, 2**32 - 1)
# A few fixed (S, A) sizes rather than every pair: each new shape costs a compilation, and these cover a
# single action, the largest sizes and a non-square case. Contents vary freely.
sizes = st.sampled_from([(2, 1), (4, 3), (5, 2)])
gammas = st.floats(0.0, 0.99)
reward_kinds = st.sampled_from(["dense", "dense", "dense", "sparse", "shaped-constant", "zero"])


def _shape(rng, s, gamma, scale=5.0):
    """A potential-shaping term `gamma Phi(s') - Phi(s)` as `[S, 1, S]`."""
    phi = rng.normal(size=s) * scale
    return gamma * phi[None, None, :] - phi[:, None, None]


def _reward(rng, s, a, gamma, kind="dense"):
    if kind == "dense":
        return rng.normal(size=(s, a, s))
    if kind == "sparse":  # "entered the goal": a function of s' only
        r = np.zeros((s, a, s))
        r[:, :, rng.integers(s)] = 1.0
        return r
    if kind == "shaped-constant":  # every policy equally good: canonical form is constant
        return rng.normal() + _shape(rng, s, gamma) + np.zeros((s, a, s))
    return np.zeros((s, a, s))


def _dists(rng, s, a, uniform):
    if uniform:
        return None, None
    return rng.dirichlet(np.ones(s)), rng.dirichlet(np.ones(a))


def _transitions(rng, s, a):
    """Random dynamics `[S, A, S]` in which about half the transitions are impossible, as in a gridworld."""
    t = rng.dirichlet(np.ones(s), size=(s, a)) * (rng.random((s, a, s)) < 0.5)
    t[np.arange(s)[:, None], np.arange(a)[None, :], rng.integers(s, size=(s, a))] += 0.1  # every row reaches somewhere
    return t / t.sum(-1, keepdims=True)


# ------------------------------------------------------------------------------------------------ EPIC


@FAST
@given(seed=seeds, size=sizes, gamma=gammas, c=st.floats(0.1, 10.0), uniform=st.booleans())
def test_epic_is_zero_under_shaping_and_positive_rescaling(seed, size, gamma, c, uniform):
    s, a = size
    rng = np.random.default_rng(seed)
    r = _reward(rng, s, a, gamma)
    p, q = _dists(rng, s, a, uniform)
    shaped = c * r + _shape(rng, s, gamma)
    d = epic_distance(r, shaped, gamma=gamma, state_dist=p, action_dist=q)
    assert float(d) <= 1e-4
    # ...and the canonical forms themselves agree up to the scale factor.
    ca = canonicalize_epic(r, gamma=gamma, state_dist=p, action_dist=q)
    cb = canonicalize_epic(shaped, gamma=gamma, state_dist=p, action_dist=q)
    np.testing.assert_allclose(c * np.asarray(ca), np.asarray(cb), atol=2e-4 * (1 + c))


@FAST
@given(seed=seeds, size=sizes, gamma=gammas, kinds=st.tuples(reward_kinds, reward_kinds),
       cover=st.sampled_from(["product", "explicit", "dists"]))
def test_epic_is_symmetric_and_in_unit_interval(seed, size, gamma, kinds, cover):
    s, a = size
    rng = np.random.default_rng(seed)
    ra, rb = (_reward(rng, s, a, gamma, k) for k in kinds)
    p, q = _dists(rng, s, a, cover != "dists")
    w = rng.uniform(size=(s, a, s)) if cover == "explicit" else None
    dab = float(epic_distance(ra, rb, gamma=gamma, state_dist=p, action_dist=q, coverage=w))
    dba = float(epic_distance(rb, ra, gamma=gamma, state_dist=p, action_dist=q, coverage=w))
    assert dab == pytest.approx(dba, abs=1e-6)
    assert 0.0 <= dab <= 1.0
    assert float(epic_distance(ra, ra, gamma=gamma, state_dist=p, action_dist=q, coverage=w)) <= 1e-4


@FAST
@given(seed=seeds, size=sizes, gamma=gammas, kinds=st.tuples(reward_kinds, reward_kinds, reward_kinds),
       explicit=st.booleans())
def test_epic_triangle_inequality(seed, size, gamma, kinds, explicit):
    s, a = size
    rng = np.random.default_rng(seed)
    r = [_reward(rng, s, a, gamma, k) for k in kinds]
    w = rng.uniform(size=(s, a, s)) if explicit else None

    def d(i, j):
        return float(epic_distance(r[i], r[j], gamma=gamma, coverage=w))

    assert d(0, 2) <= d(0, 1) + d(1, 2) + 1e-5
    assert d(0, 1) <= d(0, 2) + d(2, 1) + 1e-5
    assert d(1, 2) <= d(1, 0) + d(0, 2) + 1e-5


@FAST
@given(seed=seeds, size=sizes, gamma=gammas, uniform=st.booleans())
def test_epic_of_negation_is_one(seed, size, gamma, uniform):
    s, a = size
    rng = np.random.default_rng(seed)
    r = _reward(rng, s, a, gamma)
    p, q = _dists(rng, s, a, uniform)
    assert float(epic_distance(r, -r, gamma=gamma, state_dist=p, action_dist=q)) == pytest.approx(1.0, abs=1e-5)


def test_canonical_forms_match_their_definitions_written_as_explicit_sums():
    """The closed forms against a literal transcription of each paper's expectation (small loops)."""
    rng = np.random.default_rng(5)
    s, a, gamma = 3, 2, 0.8
    r = rng.normal(size=(s, a, s))
    p, q = rng.dirichlet(np.ones(s)), rng.dirichlet(np.ones(a))
    t = _transitions(rng, s, a)
    epic = np.zeros((s, a, s))
    dard = np.zeros((s, a, s))
    for x, u, y in np.ndindex(s, a, s):
        # EPIC: S, S' ~ D_S and A ~ D_A, all independent.
        epic[x, u, y] = r[x, u, y] + sum(
            p[i] * q[b] * p[j] * (gamma * r[y, b, j] - r[x, b, j] - gamma * r[i, b, j])
            for i, b, j in np.ndindex(s, a, s)
        )
        # DARD: one A ~ D_A; given A, S' ~ T(x, A) and S'' ~ T(y, A) independently.
        dard[x, u, y] = r[x, u, y] + sum(
            q[b] * t[x, b, i] * t[y, b, j] * (gamma * r[y, b, j] - r[x, b, i] - gamma * r[i, b, j])
            for i, b, j in np.ndindex(s, a, s)
        )
    got_epic = canonicalize_epic(r, gamma=gamma, state_dist=p, action_dist=q)
    got_dard = canonicalize_dard(r, gamma=gamma, transitions=t, action_dist=q)
    np.testing.assert_allclose(np.asarray(got_epic), epic, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_dard), dard, atol=1e-5)


def test_epic_of_unrelated_rewards_is_strictly_between_zero_and_one():
    rng = np.random.default_rng(0)
    d = float(epic_distance(rng.normal(size=(4, 2, 4)), rng.normal(size=(4, 2, 4)), gamma=0.9))
    assert 0.1 < d < 0.9


def test_degenerate_convention():
    """Constant canonical forms: 0 between two of them, 0.5 to anything else (module docstring)."""
    rng = np.random.default_rng(1)
    s, a, gamma = 4, 2, 0.9
    zero = np.zeros((s, a, s))
    const = np.full((s, a, s), 3.0)
    shaped_const = _reward(rng, s, a, gamma, "shaped-constant")
    r = rng.normal(size=(s, a, s))
    assert float(epic_distance(zero, const, gamma=gamma)) == 0.0
    assert float(epic_distance(const, shaped_const, gamma=gamma)) == 0.0
    assert float(epic_distance(zero, r, gamma=gamma)) == pytest.approx(0.5, abs=1e-6)
    assert float(epic_distance(r, shaped_const, gamma=gamma)) == pytest.approx(0.5, abs=1e-6)
    assert float(epic_distance(shaped_const, -r, gamma=gamma)) == pytest.approx(0.5, abs=1e-6)
    t = _transitions(rng, s, a)
    assert float(dard_distance(const, shaped_const, gamma=gamma, transitions=t)) == 0.0
    assert float(dard_distance(r, shaped_const, gamma=gamma, transitions=t)) == pytest.approx(0.5, abs=1e-6)
    # The decomposed path follows the same convention (zero versus a constant, then versus a real reward).
    u, v = rng.normal(size=(s, a)), rng.normal(size=s)
    zs, zn = np.zeros((s, a)), np.zeros(s)
    assert float(epic_distance_decomposed(zs, zn, zs, zn + 2.0, gamma=gamma)) == 0.0
    assert float(epic_distance_decomposed(u, v, zs, zn + 2.0, gamma=gamma)) == pytest.approx(0.5, abs=1e-6)


# ------------------------------------------------------------------------------------- decomposed path


def _sa_next(rng, s, a, gamma, kind):
    if kind == "dense":
        return rng.normal(size=(s, a)), rng.normal(size=s)
    if kind == "cheese":  # +1 on entering one cell, a step cost of -0.1
        v = np.zeros(s)
        v[rng.integers(s)] = 1.0
        return np.full((s, a), -0.1), v
    if kind == "shaped":  # R = gamma Phi(s') - Phi(s) + const: canonically constant
        phi = rng.normal(size=s)
        return np.repeat(-phi[:, None], a, 1) + 0.3, gamma * phi
    return np.zeros((s, a)), np.zeros(s)


@FAST
@given(seed=seeds, size=sizes, gamma=gammas, uniform=st.booleans(),
       kinds=st.tuples(*[st.sampled_from(["dense", "dense", "cheese", "shaped", "zero"])] * 2))
def test_decomposed_equals_dense(seed, size, gamma, uniform, kinds):
    s, a = size
    rng = np.random.default_rng(seed)
    (ua, va), (ub, vb) = (_sa_next(rng, s, a, gamma, k) for k in kinds)
    p, q = _dists(rng, s, a, uniform)
    dense = epic_distance(ua[:, :, None] + va, ub[:, :, None] + vb, gamma=gamma, state_dist=p, action_dist=q)
    fast = epic_distance_decomposed(ua, va, ub, vb, gamma=gamma, state_dist=p, action_dist=q)
    assert float(fast) == pytest.approx(float(dense), abs=1e-5)


def test_decomposed_handles_a_large_level_without_materialising_sas():
    rng = np.random.default_rng(2)
    s, a = 3000, 4  # dense [S, A, S] would be 36M floats per reward
    v = np.zeros(s)
    v[123] = 1.0
    ua = np.full((s, a), -0.01)
    d_same = epic_distance_decomposed(ua, v, 2.0 * ua, 2.0 * v, gamma=0.99)
    d_other = epic_distance_decomposed(ua, v, ua, rng.normal(size=s), gamma=0.99)
    assert float(d_same) <= 1e-4
    assert 0.3 < float(d_other) < 1.0


# ------------------------------------------------------------------------------------------- batching


@settings(max_examples=10, deadline=None)
@given(seed=seeds, gamma=st.floats(0.0, 0.95))
def test_batched_equals_loop(seed, gamma):
    s, a = 4, 3
    rng = np.random.default_rng(seed)
    n = 3
    ra = np.stack([_reward(rng, s, a, gamma, k) for k in ["dense", "sparse", "zero"]])
    rb = rng.normal(size=(n, s, a, s))
    p = rng.dirichlet(np.ones(s), size=n)
    t = np.stack([_transitions(rng, s, a) for _ in range(n)])
    ua, ub = rng.normal(size=(2, n, s, a))
    va, vb = rng.normal(size=(2, n, s))

    batched = {
        "epic": epic_distance(ra, rb, gamma=gamma, state_dist=p),
        "dec": epic_distance_decomposed(ua, va, ub, vb, gamma=gamma, state_dist=p),
        "dard": dard_distance(ra, rb, gamma=gamma, transitions=t, state_dist=p),
        "regret": optimal_policy_regret(ra, rb, gamma=gamma, transitions=t, start_dist=p).normalised_regret,
    }
    for k in batched:
        assert batched[k].shape == (n,)
    for i in range(n):
        one = epic_distance(ra[i], rb[i], gamma=gamma, state_dist=p[i])
        assert float(batched["epic"][i]) == pytest.approx(float(one), abs=1e-6)
        one = epic_distance_decomposed(ua[i], va[i], ub[i], vb[i], gamma=gamma, state_dist=p[i])
        assert float(batched["dec"][i]) == pytest.approx(float(one), abs=1e-6)
        one = dard_distance(ra[i], rb[i], gamma=gamma, transitions=t[i], state_dist=p[i])
        assert float(batched["dard"][i]) == pytest.approx(float(one), abs=1e-6)
        one = optimal_policy_regret(ra[i], rb[i], gamma=gamma, transitions=t[i], start_dist=p[i])
        assert float(batched["regret"][i]) == pytest.approx(float(one.normalised_regret), abs=1e-5)

    # A reward shared by every level broadcasts against batched distributions.
    shared = epic_distance(ra[0], rb[0], gamma=gamma, state_dist=p)
    assert shared.shape == (n,)
    assert float(shared[1]) == pytest.approx(float(epic_distance(ra[0], rb[0], gamma=gamma, state_dist=p[1])), abs=1e-6)


def test_functions_jit_and_vmap():
    """vmap over levels and jit with a traced gamma give the batched answer, in float32 by default."""
    rng = np.random.default_rng(3)
    n, s, a, gamma = 3, 4, 3, 0.9
    ra = jnp.asarray(rng.normal(size=(n, s, a, s)), jnp.float32)
    rb = jnp.asarray(rng.normal(size=(n, s, a, s)), jnp.float32)
    t = jnp.asarray(np.stack([_transitions(rng, s, a) for _ in range(n)]), jnp.float32)
    start = jnp.full((n, s), 1.0 / s)
    direct = epic_distance(ra, rb, gamma=gamma)
    assert direct.dtype == jnp.float32
    via_vmap = jax.vmap(lambda x, y: epic_distance(x, y, gamma=gamma))(ra, rb)
    np.testing.assert_allclose(via_vmap, direct, atol=1e-6)
    solve = jax.jit(lambda x, y, tt, s0, g: optimal_policy_regret(x, y, gamma=g, transitions=tt, start_dist=s0))
    reg = solve(ra, rb, t, start, gamma)
    assert isinstance(reg, PolicyRegret)
    assert reg.regret.shape == (n,) and reg.regret.dtype == jnp.float32
    eager = optimal_policy_regret(ra, rb, gamma=gamma, transitions=t, start_dist=start)
    np.testing.assert_allclose(reg.regret, eager.regret, atol=1e-5)


# ------------------------------------------------------------------------------------------------ DARD


@FAST
@given(seed=seeds, size=sizes, gamma=gammas, c=st.floats(0.1, 10.0), uniform=st.booleans())
def test_dard_is_zero_under_shaping(seed, size, gamma, c, uniform):
    s, a = size
    rng = np.random.default_rng(seed)
    r = _reward(rng, s, a, gamma)
    t = _transitions(rng, s, a)
    p, q = _dists(rng, s, a, uniform)
    shaped = c * r + _shape(rng, s, gamma)
    d = float(dard_distance(r, shaped, gamma=gamma, transitions=t, state_dist=p, action_dist=q))
    # DARD's coverage can be a handful of transitions on which C(R) barely varies; float32 then cannot
    # resolve c * std(C(R)) against shaping terms of size max|shaped| better than about eps * their ratio.
    canon = np.asarray(canonicalize_dard(r, gamma=gamma, transitions=t, action_dist=q), np.float64)
    p_, q_ = (np.full(s, 1 / s), np.full(a, 1 / a)) if uniform else (p, q)
    w = p_[:, None, None] * q_[None, :, None] * t
    signal = c * np.sqrt((w * (canon - (w * canon).sum()) ** 2).sum())
    resolution = np.finfo(np.float32).eps * np.abs(shaped).max() / signal if signal > 0 else 0.0
    assert d <= max(1e-4, resolution)


@FAST
@given(seed=seeds, size=sizes, gamma=gammas, kinds=st.tuples(reward_kinds, reward_kinds))
def test_dard_is_symmetric_and_in_unit_interval(seed, size, gamma, kinds):
    s, a = size
    rng = np.random.default_rng(seed)
    ra, rb = (_reward(rng, s, a, gamma, k) for k in kinds)
    t = _transitions(rng, s, a)
    dab = float(dard_distance(ra, rb, gamma=gamma, transitions=t))
    dba = float(dard_distance(rb, ra, gamma=gamma, transitions=t))
    assert dab == pytest.approx(dba, abs=1e-6)
    assert 0.0 <= dab <= 1.0
    # R versus -R is 1, unless R is indifferent on the coverage (e.g. a single action under deterministic
    # dynamics leaves no choice at all); then R is at 0 from the zero reward and from -R.
    to_zero = float(dard_distance(ra, np.zeros_like(ra), gamma=gamma, transitions=t))
    to_negation = float(dard_distance(ra, -ra, gamma=gamma, transitions=t))
    if to_zero == 0.0:
        assert to_negation == 0.0
    else:
        assert to_zero == pytest.approx(0.5, abs=1e-6)
        assert to_negation == pytest.approx(1.0, abs=1e-5)


@FAST
@given(seed=seeds, size=sizes, gamma=gammas)
def test_dard_equals_epic_when_successors_are_drawn_from_the_state_distribution(seed, size, gamma):
    s, a = size
    # With T(s, a, .) = D_S, DARD's expectations and coverage reduce to EPIC's.
    rng = np.random.default_rng(seed)
    ra, rb = rng.normal(size=(s, a, s)), rng.normal(size=(s, a, s))
    p = rng.dirichlet(np.ones(s))
    t = np.broadcast_to(p, (s, a, s))
    dard = float(dard_distance(ra, rb, gamma=gamma, transitions=t, state_dist=p))
    assert dard == pytest.approx(float(epic_distance(ra, rb, gamma=gamma, state_dist=p)), abs=1e-5)


def test_dard_differs_from_epic_on_real_dynamics():
    rng = np.random.default_rng(4)
    s, a, gamma = 5, 2, 0.9
    ra, rb = rng.normal(size=(s, a, s)), rng.normal(size=(s, a, s))
    t = np.zeros((s, a, s))
    t[np.arange(s), 0, (np.arange(s) + 1) % s] = 1.0  # deterministic ring
    t[np.arange(s), 1, np.arange(s)] = 1.0
    dard = float(dard_distance(ra, rb, gamma=gamma, transitions=t))
    assert abs(dard - float(epic_distance(ra, rb, gamma=gamma))) > 1e-3


# ---------------------------------------------------------------------------------------------- regret


@FAST
@given(seed=seeds, size=sizes, gamma=st.floats(0.0, 0.9), c=st.floats(0.1, 10.0))
def test_regret_is_zero_against_a_shaped_version(seed, size, gamma, c):
    s, a = size
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(s, a, s))
    shaped = c * r + _shape(rng, s, gamma)
    t = _transitions(rng, s, a)
    start = rng.dirichlet(np.ones(s))
    out = optimal_policy_regret(r, shaped, gamma=gamma, transitions=t, start_dist=start)
    scale = np.abs(shaped).max() / (1 - gamma)
    assert float(out.regret) <= 1e-4 * scale
    assert float(out.normalised_regret) <= 1e-3
    assert float(out.v_optimal) >= float(out.v_uniform) - 1e-4 * scale


def _fork_level():
    """Start state 0 and three absorbing states; from 0, action i moves to state i + 1.

    Objective A pays 1 for entering state 1. Objective B pays 1 for entering state 2 plus 0.25 per step spent
    in state 2 afterwards, and 0.9 for entering state 1. State 3 is a dead end.
    """
    s, a = 4, 3
    t = np.zeros((s, a, s))
    for i in range(a):
        t[0, i, i + 1] = 1.0
    for x in range(1, s):
        t[x, :, x] = 1.0
    ra = np.zeros((s, a, s))
    ra[0, :, 1] = 1.0
    rb = np.zeros((s, a, s))
    rb[0, :, 1] = 0.9
    rb[0, :, 2] = 1.0
    rb[2, :, 2] = 0.25
    start = np.array([1.0, 0.0, 0.0, 0.0])
    return ra, rb, t, start


def test_regret_matches_a_hand_computation():
    ra, rb, t, start = _fork_level()
    gamma = 0.5
    out = optimal_policy_regret(ra, rb, gamma=gamma, transitions=t, start_dist=start)
    # By hand, under B: V(2) = 0.25 / (1 - 0.5) = 0.5, so Q(0, ->2) = 1 + 0.5 * 0.5 = 1.25 = V*_B(0);
    # A's optimal policy goes to state 1: V_B = 0.9; uniform: (0.9 + 1.25 + 0) / 3 = 2.15 / 3.
    # regret = 1.25 - 0.9 = 0.35; normalised = 0.35 / (1.25 - 2.15 / 3) = 1.05 / 1.6 = 21 / 32.
    assert float(out.v_optimal) == pytest.approx(1.25, abs=1e-5)
    assert float(out.v_policy) == pytest.approx(0.9, abs=1e-5)
    assert float(out.v_uniform) == pytest.approx(2.15 / 3, abs=1e-5)
    assert float(out.regret) == pytest.approx(0.35, abs=1e-5)
    assert float(out.normalised_regret) == pytest.approx(21 / 32, abs=1e-5)
    # Not symmetric: B's optimal policy (go to state 2) earns nothing under A, whose optimum is 1.
    back = optimal_policy_regret(rb, ra, gamma=gamma, transitions=t, start_dist=start)
    assert float(back.regret) == pytest.approx(1.0, abs=1e-5)
    assert float(back.normalised_regret) == pytest.approx(1.0 / (1.0 - 1.0 / 3), abs=1e-5)


def test_regret_of_an_indifferent_objective_is_zero():
    ra, rb, t, start = _fork_level()
    out = optimal_policy_regret(ra, np.full_like(rb, 2.0), gamma=0.5, transitions=t, start_dist=start)
    assert float(out.regret) == 0.0
    assert float(out.normalised_regret) == 0.0
    assert float(out.v_optimal) == pytest.approx(4.0, abs=1e-5)


# ------------------------------------------------------------------------------------------ validation


def test_bad_inputs_raise_clear_errors():
    r = np.zeros((3, 2, 3))
    with pytest.raises(ValueError, match=r"\[\.\.\., S, A, S\]"):
        epic_distance(np.zeros((3, 2, 4)), r, gamma=0.9)
    with pytest.raises(ValueError, match="reward_b"):
        epic_distance(r, np.zeros((3, 3, 3)), gamma=0.9)
    with pytest.raises(ValueError, match="state_dist"):
        epic_distance(r, r, gamma=0.9, state_dist=np.ones(4))
    with pytest.raises(ValueError, match="gamma"):
        epic_distance(r, r, gamma=1.5)
    with pytest.raises(ValueError, match="gamma"):
        optimal_policy_regret(r, r, gamma=1.0, transitions=np.full((3, 2, 3), 1 / 3), start_dist=np.ones(3))
    with pytest.raises(ValueError, match="transitions"):
        dard_distance(r, r, gamma=0.9, transitions=np.ones((3, 2, 2)))
