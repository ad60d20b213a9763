"""Which levels separate the intended objective from its proxies (SPEC.md section 2, informative levels).

A level *separates* the intended objective from a proxy goal when the proxy is informative there (some
policy does better for it than the uniform one: `V*_proxy - V^unif_proxy > SPAN_TOL`) and acting optimally
for the proxy is not optimal for the intended objective: the proxy's pursuer (uniform over its optimal
actions, as in `mesascope.properties.gridworld`) loses intended value at the start state,
`V*_intended - V_intended^{pursuer} > SEPARATION_TOL * max(1, |V*_intended|)`. The first condition
leaves out levels where the proxy cannot be pursued at all, e.g. a deploy maze whose cheese (which ends
the episode) lies on the only path to the corner: every policy then has the same corner value, the
pursuer is uniform, and yet a corner-seeking agent would eat the cheese on its way.
On a level that no proxy separates, training cannot tell the intended goal from the proxy; a curriculum
that remedies goal misgeneralization has to show levels that do (Langosco et al. 2022; Sadek et al.
2025). Proxies are the candidate goals whose objective differs from the intended one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.tabular import TabularMDP
from mesascope.measures.scores import SPAN_TOL
from mesascope.solve.dp import policy_evaluation, stop_on_arrival, uniform_over_optimal, uniform_policy, value_iteration

__all__ = ["SEPARATION_TOL", "proxy_objectives", "separating_levels"]

SEPARATION_TOL = 1e-4
"""Relative intended value a proxy's optimal policy must lose for the level to separate them (well above
float32 rounding of the solves, as `optimal_action_mask`'s tolerance)."""


def proxy_objectives(scenario) -> list:
    """The scenario's candidate goals whose weights or reach differ from the intended objective's."""
    names = scenario.feature_names
    intended = scenario.intended_objective
    w_int = intended.vector(names)
    return [g for g in scenario.candidate_goals
            if not (np.array_equal(g.vector(names), w_int) and g.reach == intended.reach)]


@jax.jit
def _loss(next_state, features, start, terminal, w_int, reach_int, w_proxy, reach_proxy, gamma):
    def one_level(ns, ft, s0, term):
        r_int = ft @ w_int
        ns_int = stop_on_arrival(ns, r_int, term, reach_int)
        v_star = value_iteration(ns_int, r_int, gamma).v[s0]

        def one_proxy(w, rch):
            r = ft @ w
            ns_g = stop_on_arrival(ns, r, term, rch)
            sol = value_iteration(ns_g, r, gamma)
            span = sol.v[s0] - policy_evaluation(ns_g, r, uniform_policy(ns_g), gamma)[s0]
            pi = uniform_over_optimal(sol.q)
            return v_star - policy_evaluation(ns_int, r_int, pi, gamma)[s0], v_star, span

        return jax.vmap(one_proxy)(w_proxy, reach_proxy)

    return jax.vmap(one_level)(next_state, features, start, terminal)


def separating_levels(scenario, tab: TabularMDP) -> np.ndarray:
    """bool `[L, G]`: whether each level separates the intended objective from each proxy goal.

    Args:
        scenario: A gridworld `Scenario`.
        tab: Its levels' tabular views, batched `[L, ...]`.

    Returns:
        bool `[L, G]`, `G` the proxies (`proxy_objectives`); `[L, 0]` when the scenario has none.
    """
    proxies = proxy_objectives(scenario)
    n = int(tab.start.shape[0])
    if not proxies:
        return np.zeros((n, 0), bool)
    names = scenario.feature_names
    w_proxy = jnp.asarray(np.stack([g.vector(names) for g in proxies]))
    reach_proxy = jnp.asarray([g.reach for g in proxies])
    intended = scenario.intended_objective
    loss, v_star, span = _loss(tab.next_state, tab.features, tab.start, tab.terminal,
                               jnp.asarray(intended.vector(names)), jnp.asarray(intended.reach), w_proxy, reach_proxy,
                               scenario.spec.gamma)
    loss, v_star, span = np.asarray(loss), np.asarray(v_star), np.asarray(span)
    return (span > SPAN_TOL) & (loss > SEPARATION_TOL * np.maximum(1.0, np.abs(v_star)))
