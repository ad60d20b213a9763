"""Evolution studies: GA mechanics, the meiotic-drive closed form, the fertility table (seed 001)."""

from __future__ import annotations

import itertools
import json

import mesascope  # noqa: F401  (XLA flag before jax)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope.optimizers.evolution import (
    DriveConfig,
    EvolutionConfig,
    drive_equilibrium,
    drive_invades,
    drive_recursion,
    make_evolve,
    make_wright_fisher,
)
from mesascope.scenarios.evolution_fertility import (
    ANCESTRAL,
    MODERN,
    behaviour,
    offspring,
    optimal_allocation,
)


@pytest.mark.parametrize("k,s,h", [(0.2, 0.5, 0.0), (0.1, 0.3, 0.0), (0.3, 0.6, 0.1), (0.5, 0.9, 0.2), (0.05, 0.8, 0.0)])
def test_drive_equilibrium_matches_the_recursion_within_1e3(k, s, h):
    cfg = DriveConfig(k=k, s=s, h=h, p0=0.05)
    assert drive_invades(cfg)
    p_star = drive_equilibrium(cfg)
    assert 0 < p_star < 1
    assert abs(drive_recursion(cfg, generations=20000)[-1] - p_star) < 1e-3
    # started from above, the same equilibrium (it is stable, not just a fixed point)
    from dataclasses import replace
    assert abs(drive_recursion(replace(cfg, p0=0.95), generations=20000)[-1] - p_star) < 1e-3


def test_recessive_cost_gives_k_over_s_and_lowers_mean_fitness():
    cfg = DriveConfig(k=0.2, s=0.5, h=0.0)
    assert drive_equilibrium(cfg) == pytest.approx(0.4, abs=1e-12)
    p = drive_equilibrium(cfg)
    assert 1 - cfg.s * p**2 < 1.0


def test_invasion_condition_decides_the_fate_of_a_rare_driver():
    for k, s, h in itertools.product([0.05, 0.2, 0.4], [0.2, 0.5, 0.9], [0.3, 0.5, 0.8]):
        cfg = DriveConfig(k=k, s=s, h=h, p0=1e-3)
        rec = drive_recursion(cfg, generations=300)
        grows = rec[1] > rec[0]
        assert grows == drive_invades(cfg), (k, s, h)
        if not drive_invades(cfg):
            assert drive_equilibrium(cfg) == 0.0


def test_wright_fisher_is_deterministic_per_key_and_tracks_the_recursion():
    cfg = DriveConfig(k=0.2, s=0.5, h=0.0, n=1000, generations=150, p0=0.05)
    sim = jax.jit(jax.vmap(make_wright_fisher(cfg)))
    keys = jax.random.split(jax.random.key(3), 8)
    a, b = np.asarray(sim(keys)), np.asarray(sim(keys))
    assert np.array_equal(a, b)
    per_rep = a[:, 75:].mean(1)
    se = per_rep.std(ddof=1) / np.sqrt(len(per_rep))
    assert abs(per_rep.mean() - drive_equilibrium(cfg)) < 3 * se + 2 / cfg.n


def test_ga_climbs_a_concave_fitness_and_is_seeded():
    target = jnp.array([1.0, -2.0, 0.5])
    cfg = EvolutionConfig(pop_size=64, dim=3, generations=60, mutation_sd=0.1, selection="tournament")
    evolve = jax.jit(make_evolve(cfg, lambda pop: -jnp.sum((pop - target) ** 2, -1)))
    pop, hist = evolve(jax.random.key(0))
    pop2, _ = evolve(jax.random.key(0))
    assert np.array_equal(np.asarray(pop), np.asarray(pop2))
    assert hist["mean_fitness"][-1] > hist["mean_fitness"][0]
    assert np.linalg.norm(np.asarray(pop.mean(0) - target)) < 0.2


def test_offspring_optimum_matches_brute_force_over_the_simplex():
    c, births = 0.25, 8.0
    grid = np.linspace(0, 1, 201)
    best = max(((m, b, u, 1 - m - b - u) for m in grid for b in grid[:5] for u in grid[:5] if m + b + u <= 1),
               key=lambda x: offspring(np.array(x), c, births))
    x_opt = optimal_allocation(c)
    assert best[1] == 0 and best[2] == 0
    assert abs(best[0] - x_opt[0]) <= 0.005
    assert offspring(x_opt, c, births) >= offspring(np.array(best), c, births) - 1e-12


def test_behaviour_respects_availability():
    w = np.array([1.0, 2.0, 3.0, 0.5])
    x_a, x_m = behaviour(w, ANCESTRAL, 1.0), behaviour(w, MODERN, 1.0)
    assert x_a[1] == 0 and np.isclose(x_a.sum(), 1) and x_m[1] > 0


def test_fertility_reproduces_the_seed_table(reproduced, tmp_path):
    """Seed 001's table on its fast reproduction: Wentworth bc=outer, masturbation=inner; Hubinger bc not outer."""
    result = reproduced("evolution-fertility-v0")
    checks = {c["name"]: c for c in result["finding"]["checks"]}
    assert checks["Wentworth: birth control"]["measured"] == "outer alignment failure"
    assert checks["Wentworth: masturbation"]["measured"] == "inner failure (imperfect optimization)"
    assert "outer" not in checks["Hubinger (infinite data): birth control"]["measured"]
    assert result["findings"]["masturbation_rate"]["exact_optimum"] == 0.0
    assert result["findings"]["masturbation_rate"]["ga"] > 0.01
    assert set(result["systems"][0]) >= {"measurements", "properties", "verdicts"}
    assert json.loads((tmp_path / "evolution-fertility-v0" / "run.json").read_text())["kind"] == "study"


@pytest.mark.slow
def test_greedy_genes_fast_run_reproduces_its_finding(reproduced, tmp_path):
    reproduced("greedy-genes-v0")
    assert (tmp_path / "greedy-genes-v0" / "plots" / "drive-frequency.png").exists()
