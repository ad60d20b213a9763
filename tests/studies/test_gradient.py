"""Gradient descent, capability/alignment of an optimizer (seed 004), tessellating hills."""

from __future__ import annotations

import mesascope  # noqa: F401  (XLA flag before jax)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.optimizers.gradient import DescentConfig, alignment, capability, make_descent
from mesascope.scenarios.hills import make_loss


def test_descent_on_a_quadratic_matches_the_closed_form():
    # x_{t+1} = x_t - lr * 2 (x_t - c): x_T - c = (1 - 2 lr)^T (x_0 - c)
    c = jnp.array([1.0, -1.0])
    cfg = DescentConfig(steps=100, lr=0.05, record_every=10)
    traj = np.asarray(make_descent(lambda x: jnp.sum((x - c) ** 2), cfg)(jax.random.key(0), jnp.zeros(2)))
    expected = np.asarray(c) + (1 - 2 * 0.05) ** 100 * (0 - np.asarray(c))
    assert traj.shape == (11, 2)
    assert np.allclose(traj[-1], expected, atol=1e-5)


def test_capability_and_alignment_are_invariant_to_positive_affine_maps():
    rng = np.random.default_rng(0)
    ref_own, ref_base = rng.normal(size=500), rng.normal(size=500)
    c_own, c_base = capability(0.3, 2.0, ref_own), capability(-1.0, 0.5, ref_base)
    for a, b in [(0.01, 5.0), (3.0, -7.0), (100.0, 1e3)]:
        c_own_t = capability(a * 0.3 + b, a * 2.0 + b, a * ref_own + b)
        c_base_t = capability(2 * a * -1.0 - b, 2 * a * 0.5 - b, 2 * a * ref_base - b)
        assert c_own_t == pytest.approx(c_own, rel=1e-12)
        assert alignment(c_base_t, c_own_t) == pytest.approx(alignment(c_base, c_own), rel=1e-12)
    # a negative scale is not an admissible transformation: it flips the sign
    assert capability(-0.3, -2.0, -ref_own) == pytest.approx(-c_own)


def test_demon_free_descent_has_alignment_one_and_the_hills_grow_a_demon():
    key = jax.random.key(0)
    cfg = DescentConfig(steps=800, lr=0.01, record_every=50)
    ref = np.asarray(jax.random.normal(jax.random.key(7), (1024, 16)), np.float64)
    flat, _ = make_loss(key, 16, 8, 0.0)
    hills, _ = make_loss(key, 16, 8, 0.2)
    for loss, want_aligned in ((flat, True), (hills, False)):
        traj = np.asarray(make_descent(loss, cfg)(key, jnp.zeros(16)), np.float64)
        own = -np.asarray(jax.vmap(loss)(jnp.asarray(traj)))
        own_ref = -np.asarray(jax.vmap(loss)(jnp.asarray(ref)))
        a = alignment(capability(traj[0, 0], traj[-1, 0], ref[:, 0]), capability(own[0], own[-1], own_ref))
        if want_aligned:
            assert a == pytest.approx(1.0, abs=1e-6)
            assert np.all(traj[:, 1:] == 0)
        else:
            assert np.linalg.norm(traj[-1, 1:]) > 1.0


@pytest.mark.slow
def test_tessellating_hills_fast_run_reproduces_its_finding(reproduced, tmp_path):
    reproduced("tessellating-hills-v0")
    assert (tmp_path / "tessellating-hills-v0" / "plots" / "x0-and-demon.png").exists()
