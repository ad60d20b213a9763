"""Evolution as a base optimizer: a genetic algorithm and a diploid Wright-Fisher population (SPEC.md §1, §8).

Two pure, seeded, vmappable programs:

* `make_evolve(config, fitness) -> evolve(key)`: a genetic algorithm over real parameter vectors
  `[P, D]` (Gaussian mutation, truncation or tournament selection, optional sexual recombination by
  uniform crossover). The base objective is `fitness`; nothing else is selected for. One generation is
  `next_generation`, which other drivers reuse (`mesascope.systems.mesa.train_evolution` runs it on the
  host around a costly jitted fitness).
* `make_wright_fisher(config) -> simulate(key)`: an individual-based diploid population at one locus
  with a driving allele `D` (meiotic drive, seed 001's "greedy genes"): viability selection by the
  genotype's fitness, then each surviving parent's gamete carries `D` with probability 1/2, except
  that `Dd` heterozygotes transmit `D` with probability `(1 + k) / 2`. `drive_recursion` is the
  infinite-population limit of the same life cycle, and `drive_equilibrium` its closed form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DriveConfig",
    "EvolutionConfig",
    "drive_equilibrium",
    "drive_invades",
    "drive_recursion",
    "make_evolve",
    "make_wright_fisher",
    "next_generation",
]

SELECTIONS = ("truncation", "tournament")


@dataclass(frozen=True)
class EvolutionConfig:
    """A genetic algorithm's settings.

    Attributes:
        pop_size: Individuals per generation `P`.
        dim: Length `D` of each individual's parameter vector.
        generations: Generations `G` (the optimizer's compute budget).
        mutation_sd: Standard deviation of the Gaussian mutation added to every child gene.
        selection: "truncation" (parents drawn uniformly from the best `truncation` fraction) or
            "tournament" (each parent is the fittest of `tournament_size` uniform draws).
        truncation: Fraction of the population allowed to breed under truncation selection.
        tournament_size: Contestants per tournament.
        recombination: Sexual reproduction: each child gene comes from one of two parents (uniform
            crossover). Without it, each child copies one parent.
        elite: The best `elite` individuals are copied unmutated into the next generation.
        init_mean: Mean of the initial population, `[D]` (a tuple) or a scalar.
        init_sd: Standard deviation of the initial population.
    """

    pop_size: int = 256
    dim: int = 4
    generations: int = 50
    mutation_sd: float = 0.1
    selection: str = "truncation"
    truncation: float = 0.5
    tournament_size: int = 3
    recombination: bool = True
    elite: int = 0
    init_mean: tuple[float, ...] | float = 0.0
    init_sd: float = 0.5

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}; got {self.selection!r}")
        if not 0 < self.truncation <= 1:
            raise ValueError(f"truncation must be in (0, 1]; got {self.truncation}")
        if self.pop_size < 2 or self.generations < 0 or self.elite >= self.pop_size:
            raise ValueError("need pop_size >= 2, generations >= 0 and elite < pop_size")


Fitness = Callable[[jax.Array], jax.Array]
"""`fitness(population [P, D]) -> [P]`, higher is better (the base objective)."""


def _select_parents(cfg: EvolutionConfig, key: jax.Array, fit: jax.Array, n: int) -> jax.Array:
    """Indices `[n]` of parents chosen by the configured selection scheme."""
    if cfg.selection == "truncation":
        n_keep = max(1, int(round(cfg.truncation * cfg.pop_size)))
        best = jnp.argsort(-fit)[:n_keep]
        return best[jax.random.randint(key, (n,), 0, n_keep)]
    draws = jax.random.randint(key, (n, cfg.tournament_size), 0, cfg.pop_size)
    winner = jnp.argmax(fit[draws], axis=1)
    return jnp.take_along_axis(draws, winner[:, None], axis=1)[:, 0]


def next_generation(
    cfg: EvolutionConfig,
    pop: jax.Array,
    fit: jax.Array,
    *,
    select: jax.Array,
    mutate: jax.Array,
    select_father: jax.Array | None = None,
    mix: jax.Array | None = None,
) -> jax.Array:
    """One generation of the genetic algorithm: the next population `[P, D]` from `pop` `[P, D]` scored `fit` `[P]`.

    Children (`P - elite` of them) copy a parent chosen by `cfg.selection` (with recombination, each gene
    comes from one of two parents, uniform crossover) and get Gaussian mutation of sd `cfg.mutation_sd`;
    the `elite` fittest are copied first, unmutated. The keys are passed in, not split here, so each
    driver keeps its own key schedule (the same key gives the same run).

    Args:
        cfg: The algorithm's settings (`pop_size` must equal `P`).
        pop: float32 `[P, D]`, the current population.
        fit: float32 `[P]`, its fitness (higher is better).
        select: Key choosing the (first) parents.
        mutate: Key drawing the mutations.
        select_father: Key choosing the second parents (needed with `cfg.recombination`).
        mix: Key of the uniform crossover (needed with `cfg.recombination`).
    """
    n_children = cfg.pop_size - cfg.elite
    mother = pop[_select_parents(cfg, select, fit, n_children)]
    if cfg.recombination:
        if select_father is None or mix is None:
            raise ValueError("recombination needs the select_father and mix keys")
        father = pop[_select_parents(cfg, select_father, fit, n_children)]
        child = jnp.where(jax.random.bernoulli(mix, 0.5, mother.shape), mother, father)
    else:
        child = mother
    child = child + cfg.mutation_sd * jax.random.normal(mutate, child.shape)
    if cfg.elite:
        child = jnp.concatenate([pop[jnp.argsort(-fit)[: cfg.elite]], child])
    return child


def make_evolve(cfg: EvolutionConfig, fitness: Fitness) -> Callable[[jax.Array], tuple[jax.Array, dict[str, jax.Array]]]:
    """A pure genetic algorithm `evolve(key) -> (final population [P, D], history)`.

    `history` holds per-generation arrays (index 0 is the initial population, so length `G + 1`):
    `mean_fitness [G+1]`, `max_fitness [G+1]`, `mean_params [G+1, D]`. `evolve` is jittable and
    vmappable over keys (one replicate population per key); the same key gives the same run.
    """
    init_mean = jnp.broadcast_to(jnp.asarray(cfg.init_mean, jnp.float32), (cfg.dim,))

    def generation(pop: jax.Array, key: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        fit = fitness(pop)
        k_a, k_b, k_mix, k_mut = jax.random.split(key, 4)
        child = next_generation(cfg, pop, fit, select=k_a, mutate=k_mut, select_father=k_b, mix=k_mix)
        return child, (fit.mean(), fit.max(), pop.mean(0))

    def evolve(key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        k_init, k_run = jax.random.split(key)
        pop = init_mean + cfg.init_sd * jax.random.normal(k_init, (cfg.pop_size, cfg.dim))
        pop, (mean_f, max_f, mean_p) = jax.lax.scan(generation, pop, jax.random.split(k_run, cfg.generations))
        last = fitness(pop)
        history = {
            "mean_fitness": jnp.append(mean_f, last.mean()),
            "max_fitness": jnp.append(max_f, last.max()),
            "mean_params": jnp.concatenate([mean_p, pop.mean(0)[None]]),
        }
        return pop, history

    return evolve


# --- greedy genes: meiotic drive -------------------------------------------------------------------


@dataclass(frozen=True)
class DriveConfig:
    """One locus, alleles `D` (driver) and `d`, in a diploid, randomly mating population.

    Attributes:
        k: Transmission bias: a `Dd` parent passes on `D` with probability `(1 + k) / 2`, `0 <= k <= 1`.
        s: Fitness cost of `DD` (viability `1 - s`), `0 <= s <= 1`.
        h: Dominance of the cost: `Dd` has viability `1 - h s` (h = 0: the cost is recessive).
        n: Diploid individuals per generation (the stochastic simulation).
        generations: Generations to simulate.
        p0: Initial frequency of `D`.
    """

    k: float = 0.2
    s: float = 0.5
    h: float = 0.0
    n: int = 2000
    generations: int = 400
    p0: float = 0.05

    def viabilities(self) -> tuple[float, float, float]:
        """Viabilities of (dd, Dd, DD)."""
        return 1.0, 1.0 - self.h * self.s, 1.0 - self.s


def drive_step(p: jax.Array, k: float, s: float, h: float) -> jax.Array:
    """One generation of the infinite-population recursion (Hardy-Weinberg zygotes, selection, drive).

    `p' = (p^2 w2 + p q w1 (1 + k)) / (p^2 w2 + 2 p q w1 + q^2 w0)` with `q = 1 - p` and viabilities
    `w0 = 1` (dd), `w1 = 1 - h s` (Dd), `w2 = 1 - s` (DD): a heterozygote survivor contributes a
    `D` gamete with probability `(1 + k) / 2`, so its share `2 p q w1` gives `p q w1 (1 + k)`.
    """
    w0, w1, w2 = 1.0, 1.0 - h * s, 1.0 - s
    q = 1.0 - p
    mean_w = p * p * w2 + 2 * p * q * w1 + q * q * w0
    return (p * p * w2 + p * q * w1 * (1 + k)) / mean_w


def drive_recursion(cfg: DriveConfig, generations: int | None = None) -> np.ndarray:
    """Frequencies of `D`, `[G + 1]`, under the deterministic recursion `drive_step` (float64, NumPy)."""
    g = cfg.generations if generations is None else generations
    out = np.empty(g + 1)
    out[0] = cfg.p0
    w0, w1, w2 = 1.0, 1.0 - cfg.h * cfg.s, 1.0 - cfg.s
    for t in range(g):
        p = out[t]
        q = 1.0 - p
        out[t + 1] = (p * p * w2 + p * q * w1 * (1 + cfg.k)) / (p * p * w2 + 2 * p * q * w1 + q * q * w0)
    return out


def drive_invades(cfg: DriveConfig) -> bool:
    """Invasion condition: a rare `D` sits in heterozygotes, so it grows iff `(1 - h s)(1 + k) > 1`."""
    return (1.0 - cfg.h * cfg.s) * (1.0 + cfg.k) > 1.0


def drive_equilibrium(cfg: DriveConfig) -> float:
    """The stable frequency of `D` under `drive_step`, in closed form.

    Setting `p' = p` and dividing by `p q` gives `p (w2 - 2 w1 + w0) = w0 - (1 + k) w1`, so the interior
    equilibrium is `p* = ((1 + k)(1 - h s) - 1) / (s (1 - 2 h))` (for `h != 1/2`). It exists and is
    stable iff both alleles invade when rare: `D` iff `(1 - h s)(1 + k) > 1` (`drive_invades`), `d` iff
    `(1 - h s)(1 - k) > 1 - s`. Otherwise the population goes to `p = 0` (D cannot invade) or to
    fixation `p = 1` (d cannot invade). With a recessive cost (`h = 0`) this is `p* = k / s` when
    `0 < k < s`, and mean fitness there is `1 - s p*^2 < 1`: the driver spreads although it lowers
    the fitness the selection is for.
    """
    w1 = 1.0 - cfg.h * cfg.s
    if not drive_invades(cfg):
        return 0.0
    if w1 * (1.0 - cfg.k) <= 1.0 - cfg.s:
        return 1.0
    return ((1.0 + cfg.k) * w1 - 1.0) / (cfg.s * (1.0 - 2.0 * cfg.h))


def make_wright_fisher(cfg: DriveConfig) -> Callable[[jax.Array], jax.Array]:
    """An individual-based diploid Wright-Fisher population with meiotic drive: `simulate(key) -> [G + 1]`.

    Each generation, every one of the `n` offspring draws two parents independently with probability
    proportional to the parent's viability (the genetic algorithm's fitness-proportional selection,
    random mating), and inherits one gamete from each: a homozygote passes its allele, a `Dd` parent
    passes `D` with probability `(1 + k) / 2` (the gene hacking the 50:50 lottery of recombination).
    Returns the frequency of `D` per generation. Vmappable over keys (replicate populations).
    """
    viab = jnp.asarray(cfg.viabilities(), jnp.float32)

    def gamete(key: jax.Array, genome: jax.Array) -> jax.Array:
        n_d = genome.sum(-1)
        p_d = jnp.where(n_d == 2, 1.0, jnp.where(n_d == 1, (1.0 + cfg.k) / 2.0, 0.0))
        return jax.random.bernoulli(key, p_d)

    def generation(genomes: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_p, k_g = jax.random.split(key)
        # fitness-proportional draws by inverse CDF: O(n log n), where categorical would be O(n^2)
        cdf = jnp.cumsum(viab[genomes.sum(-1)])
        u = jax.random.uniform(k_p, (2, cfg.n)) * cdf[-1]
        parents = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cfg.n - 1)
        kids = jnp.stack([gamete(kk, genomes[idx]) for kk, idx in zip(jax.random.split(k_g, 2), parents)], -1)
        return kids.astype(jnp.int32), kids.mean()

    def simulate(key: jax.Array) -> jax.Array:
        k_init, k_run = jax.random.split(key)
        genomes = jax.random.bernoulli(k_init, cfg.p0, (cfg.n, 2)).astype(jnp.int32)
        _, freqs = jax.lax.scan(generation, genomes, jax.random.split(k_run, cfg.generations))
        return jnp.concatenate([genomes.mean()[None], freqs])

    return simulate
