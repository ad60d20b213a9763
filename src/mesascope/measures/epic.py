"""Objective distances: EPIC, DARD and the regret of the optimal policy (SPEC.md section 3).

All rewards are tabular transition rewards `R(s, a, s')` of shape `[..., S, A, S]`; leading dimensions are
batch dimensions (usually levels) and broadcast against each other and against the distributions.

Pearson distance. EPIC (Gleave et al. 2021, "Quantifying Differences in Reward Functions") and DARD (Wulfe et
al. 2022, "Dynamics-Aware Comparison of Learned Reward Functions") both end with the Pearson distance
`D(X, Y) = sqrt((1 - rho(X, Y)) / 2)`, in `[0, 1]`, between two canonicalised rewards. Some public EPIC code
omits the 1/2 and reports `sqrt(1 - rho)`, in `[0, sqrt(2)]`, a factor `sqrt(2)` larger; mesascope uses the
published `sqrt((1 - rho) / 2)` everywhere (multiply by `sqrt(2)` to compare with such numbers).

We evaluate it as half the root-mean-square difference of the standardised rewards,
`D = sqrt(E_w[(Z_X - Z_Y)^2]) / 2` with `Z = (X - E_w X) / std_w(X)`, which equals `sqrt((1 - rho) / 2)`
algebraically but has no cancellation near `rho = 1`: in float32, `sqrt((1 - rho) / 2)` cannot resolve
distances below about 2e-4, which would blur exact potential-shaping invariance.

Degenerate rewards. A reward whose canonical form is constant on the coverage (e.g. any potential-shaped
constant: every policy is equally good under it) has no correlation with anything. mesascope maps its
standardised form to the zero function instead of the unit sphere, so `D` stays half a Euclidean distance
between points and therefore remains a pseudometric (symmetric, triangle inequality):

- both canonical rewards constant -> `D = 0` (both are indifferent between all behaviour: equivalent);
- exactly one constant            -> `D = 0.5` (the midpoint between `R` and `-R`, which are at distance 1).

"Constant" means `std_w(C(R)) <= constant_rtol * max|R|` (default `1e-5`): float32 rounding leaves a residue of
order `1e-7 * max|R|` in the canonical form of a shaped constant, and signals this small are barely above it.
"""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp

from mesascope.programs import cached_jit
from mesascope.solve.dp import uniform_over_optimal

__all__ = [
    "CONSTANT_RTOL",
    "PolicyRegret",
    "canonicalize_dard",
    "canonicalize_epic",
    "dard_distance",
    "epic_distance",
    "epic_distance_decomposed",
    "optimal_policy_regret",
]

CONSTANT_RTOL = 1e-5
"""Relative standard deviation under which a canonical reward counts as constant (see module docstring)."""

_SAS = (-3, -2, -1)
_VI_TOL = 1e-6
_VI_MAX_ITERS = 20_000
_SPAN_RTOL = 1e-6


# --------------------------------------------------------------------------------------------- helpers
#
# Each public function validates shapes in Python (clear errors, no device work) and then calls one jitted
# private implementation, so a new shape costs one compilation instead of one per operation.


def _as_float(x) -> jax.Array:
    x = jnp.asarray(x)
    # Keep a float input's dtype (float64 when x64 is on); promote ints and bools to float32.
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _shape_of(x) -> tuple[int, ...]:
    return tuple(jnp.shape(x))


def _check_sas(name: str, x) -> tuple[int, int]:
    shape = _shape_of(x)
    if len(shape) < 3 or shape[-1] != shape[-3]:
        raise ValueError(f"{name} must have shape [..., S, A, S] (a value per transition), got {list(shape)}")
    return shape[-3], shape[-2]


def _check_trailing(name: str, x, trailing: tuple[int, ...]) -> None:
    if x is None:
        return
    shape, k = _shape_of(x), len(trailing)
    if len(shape) < k or shape[len(shape) - k :] != trailing:
        names = {1: "[..., n]", 2: "[..., S, A]", 3: "[..., S, A, S]"}[k]
        raise ValueError(f"{name} must have shape {names} with trailing dims {list(trailing)}, got {list(shape)}")


def _check_gamma(gamma, *, allow_one: bool) -> None:
    # Only concrete numbers can be checked; traced values (inside jit/vmap) pass through unchecked.
    if isinstance(gamma, numbers.Real):
        ok = 0.0 <= gamma <= 1.0 if allow_one else 0.0 <= gamma < 1.0
        if not ok:
            raise ValueError(f"gamma must be in {'[0, 1]' if allow_one else '[0, 1)'}, got {gamma}")


def _lead(x, k: int) -> tuple[int, ...]:
    """Batch shape of `x` (all but its last `k` dims); `()` for None."""
    return () if x is None else _shape_of(x)[: len(_shape_of(x)) - k]


def _batch_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(jnp.broadcast_shapes(*shapes))


def _distribution(dist, n: int, batch: tuple[int, ...], dtype) -> jax.Array:
    """A distribution over `n` items broadcast to `batch + (n,)`: uniform if None, else normalised to sum 1.

    Built in the rewards' dtype: shaping cancels exactly only if the weights sum to 1 at that precision.
    """
    if dist is None:
        return jnp.full(batch + (n,), 1.0 / n, dtype)
    d = jnp.asarray(dist).astype(dtype)
    return jnp.broadcast_to(d / d.sum(-1, keepdims=True), batch + (n,))


def _standardise(x: jax.Array, w: jax.Array, axes: tuple[int, ...], scale: jax.Array, rtol) -> jax.Array:
    """`(x - mean) / std` under weights `w` (summing to one over `axes`); the zero function if `x` is constant.

    `scale` has the batch shape; "constant" means `std <= rtol * scale` (see module docstring).
    """
    mean = jnp.sum(w * x, axes, keepdims=True)
    xc = x - mean
    var = jnp.sum(w * xc * xc, axes, keepdims=True)
    constant = var <= (rtol * jnp.expand_dims(scale, axes)) ** 2
    return jnp.where(constant, 0.0, xc / jnp.sqrt(jnp.where(constant, 1.0, var)))


def _half_rms(diff_sq_mean: jax.Array) -> jax.Array:
    # sqrt(E[(Z_X - Z_Y)^2]) / 2; the clip only absorbs rounding (the exact value lies in [0, 1]).
    return jnp.clip(0.5 * jnp.sqrt(jnp.maximum(diff_sq_mean, 0.0)), 0.0, 1.0)


def _pearson_distance_sas(x, y, w, scale_x, scale_y, rtol) -> jax.Array:
    """Pearson distance over the last three axes, weights `w` (any positive total mass)."""
    w = w / jnp.sum(w, _SAS, keepdims=True)
    zx = _standardise(x, w, _SAS, scale_x, rtol)
    zy = _standardise(y, w, _SAS, scale_y, rtol)
    return _half_rms(jnp.sum(w * (zx - zy) ** 2, _SAS))


def _max_abs_sas(r: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(r), _SAS)


# ------------------------------------------------------------------------------------------------ EPIC


def _epic_canonical(r: jax.Array, p: jax.Array, q: jax.Array, gamma) -> jax.Array:
    """EPIC canonical form; `r` `[..., S, A, S]`, `p` `[..., S]`, `q` `[..., A]` already broadcast."""
    m = jnp.einsum("...xay,...a,...y->...x", r, q, p)  # m(x) = E[R(x, A, S')], [..., S]
    big_m = jnp.sum(p * m, -1)  # M = E[m(S)], [...]
    return r + gamma * m[..., None, None, :] - m[..., :, None, None] - gamma * big_m[..., None, None, None]


@jax.jit
def _canonicalize_epic(reward, state_dist, action_dist, gamma):
    r = _as_float(reward)
    s, a, dtype = r.shape[-3], r.shape[-2], r.dtype
    batch = _batch_shape(r.shape[:-3], _lead(state_dist, 1), _lead(action_dist, 1))
    p = _distribution(state_dist, s, batch, dtype)
    q = _distribution(action_dist, a, batch, dtype)
    return _epic_canonical(jnp.broadcast_to(r, batch + (s, a, s)), p, q, gamma)


def canonicalize_epic(
    reward: jax.Array,
    *,
    gamma: float,
    state_dist: jax.Array | None = None,
    action_dist: jax.Array | None = None,
) -> jax.Array:
    """EPIC canonical form of a tabular reward (Gleave et al. 2021; SPEC.md section 3).

    `C(R)(s, a, s') = R(s, a, s') + E[gamma R(s', A, S') - R(s, A, S') - gamma R(S, A, S')]` with
    `S, S' ~ D_S` and `A ~ D_A` independent. Writing `m(x) = E[R(x, A, S')]` and `M = E[m(S)]`, this is
    `R(s, a, s') + gamma m(s') - m(s) - gamma M`. Potential shaping `gamma Phi(s') - Phi(s)` and constants are
    removed exactly, for any `D_S`, `D_A`.

    Args:
        reward: float `[..., S, A, S]`.
        gamma: Discount in `[0, 1]`.
        state_dist: `D_S`, float `[..., S]` (normalised to sum 1); uniform if None.
        action_dist: `D_A`, float `[..., A]` (normalised to sum 1); uniform if None.

    Returns:
        float `[..., S, A, S]` (batch dimensions broadcast with the distributions').
    """
    _check_gamma(gamma, allow_one=True)
    s, a = _check_sas("reward", reward)
    _check_trailing("state_dist", state_dist, (s,))
    _check_trailing("action_dist", action_dist, (a,))
    return _canonicalize_epic(reward, state_dist, action_dist, gamma)


@jax.jit
def _epic_distance(reward_a, reward_b, state_dist, action_dist, coverage, gamma, rtol):
    dtype = jnp.result_type(_as_float(reward_a), _as_float(reward_b))
    ra, rb = _as_float(reward_a).astype(dtype), _as_float(reward_b).astype(dtype)
    s, a = ra.shape[-3], ra.shape[-2]
    batch = _batch_shape(
        ra.shape[:-3], rb.shape[:-3], _lead(state_dist, 1), _lead(action_dist, 1), _lead(coverage, 3)
    )
    full = batch + (s, a, s)
    p = _distribution(state_dist, s, batch, dtype)
    q = _distribution(action_dist, a, batch, dtype)
    ra, rb = jnp.broadcast_to(ra, full), jnp.broadcast_to(rb, full)
    ca, cb = _epic_canonical(ra, p, q, gamma), _epic_canonical(rb, p, q, gamma)
    if coverage is None:
        w = p[..., :, None, None] * q[..., None, :, None] * p[..., None, None, :]
    else:
        w = jnp.broadcast_to(_as_float(coverage), full)
    return _pearson_distance_sas(ca, cb, w, _max_abs_sas(ra), _max_abs_sas(rb), rtol)


def epic_distance(
    reward_a: jax.Array,
    reward_b: jax.Array,
    *,
    gamma: float,
    state_dist: jax.Array | None = None,
    action_dist: jax.Array | None = None,
    coverage: jax.Array | None = None,
    constant_rtol: float = CONSTANT_RTOL,
) -> jax.Array:
    """EPIC distance between two tabular rewards (Gleave et al. 2021; SPEC.md section 3).

    `EPIC(R_A, R_B) = sqrt((1 - rho) / 2)`, where `rho` is the Pearson correlation of `C(R_A)` and `C(R_B)`
    (see `canonicalize_epic`) over transitions `(s, a, s')` drawn from the coverage distribution. This is the
    published formula, in `[0, 1]`; one public implementation omits the 1/2 (`sqrt(1 - rho)`, larger by a
    factor `sqrt(2)`). It is a pseudometric, 0 when the rewards agree up to potential shaping and positive
    rescaling (and, with full-support coverage, only then), and 1 for `R` versus `-R`. Computed as half the
    RMS difference of the standardised canonical rewards (same value, no cancellation near 0). If a canonical
    reward is constant on the coverage, the distance is 0 when both are and 0.5 when only one is (module
    docstring).

    Args:
        reward_a: float `[..., S, A, S]`.
        reward_b: float `[..., S, A, S]`.
        gamma: Discount in `[0, 1]` used by the canonicalisation.
        state_dist: `D_S`, float `[..., S]`; uniform if None.
        action_dist: `D_A`, float `[..., A]`; uniform if None.
        coverage: Nonnegative weights `[..., S, A, S]` over transitions for the correlation (normalised to
            sum 1; must have positive mass). Default: the product `D_S x D_A x D_S`. The canonicalisation
            always uses `D_S` and `D_A`.
        constant_rtol: A canonical reward counts as constant when its standard deviation on the coverage
            is at most `constant_rtol * max|R|`.

    Returns:
        float `[...]`, the broadcast batch shape.
    """
    _check_gamma(gamma, allow_one=True)
    s, a = _check_sas("reward_a", reward_a)
    _check_trailing("reward_b", reward_b, (s, a, s))
    _check_trailing("state_dist", state_dist, (s,))
    _check_trailing("action_dist", action_dist, (a,))
    _check_trailing("coverage", coverage, (s, a, s))
    return _epic_distance(reward_a, reward_b, state_dist, action_dist, coverage, gamma, constant_rtol)


def _decomposed_parts(r_sa: jax.Array, r_next: jax.Array, gamma, q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Canonical form of `R = r_sa[s, a] + r_next[s']` as `f[s, a] + g[s'] + const`.

    With `u = r_sa`, `v = r_next`: `m(x) = ubar(x) + vbar` where `ubar(x) = E_A u(x, A)` and `vbar = E v(S')`,
    so `C(R)(s, a, s') = (u(s, a) - ubar(s)) + (v(s') + gamma ubar(s')) + const`. The constant does not
    matter for a correlation, so it is dropped.
    """
    ubar = jnp.sum(q[..., None, :] * r_sa, -1)  # [..., S]
    return r_sa - ubar[..., None], r_next + gamma * ubar


@cached_jit
def _epic_distance_decomposed(ra_sa, ra_next, rb_sa, rb_next, state_dist, action_dist, gamma, rtol):
    ua, va, ub, vb = (_as_float(x) for x in (ra_sa, ra_next, rb_sa, rb_next))
    dtype = jnp.result_type(ua, va, ub, vb)
    ua, va, ub, vb = (x.astype(dtype) for x in (ua, va, ub, vb))
    s, a = ua.shape[-2], ua.shape[-1]
    batch = _batch_shape(
        ua.shape[:-2], va.shape[:-1], ub.shape[:-2], vb.shape[:-1], _lead(state_dist, 1), _lead(action_dist, 1)
    )
    p = _distribution(state_dist, s, batch, dtype)
    q = _distribution(action_dist, a, batch, dtype)
    w_sa = p[..., :, None] * q[..., None, :]

    def standardised(u, v):
        u, v = jnp.broadcast_to(u, batch + (s, a)), jnp.broadcast_to(v, batch + (s,))
        f, g = _decomposed_parts(u, v, gamma, q)
        fc = f - jnp.sum(w_sa * f, (-2, -1), keepdims=True)
        gc = g - jnp.sum(p * g, -1, keepdims=True)
        # (s, a) and s' are independent under product coverage: the variances add.
        var = jnp.sum(w_sa * fc * fc, (-2, -1)) + jnp.sum(p * gc * gc, -1)
        # max over (s, a, s') of |u(s, a) + v(s')|, exactly, without forming the sum.
        hi = jnp.max(u, (-2, -1)) + jnp.max(v, -1)
        lo = jnp.min(u, (-2, -1)) + jnp.min(v, -1)
        constant = var <= (rtol * jnp.maximum(hi, -lo)) ** 2
        inv_std = jnp.where(constant, 0.0, 1.0 / jnp.sqrt(jnp.where(constant, 1.0, var)))
        return fc * inv_std[..., None, None], gc * inv_std[..., None]

    fa, ga = standardised(ua, va)
    fb, gb = standardised(ub, vb)
    # Both parts are centred and independent, so the cross term of E[(df + dg)^2] vanishes.
    return _half_rms(jnp.sum(w_sa * (fa - fb) ** 2, (-2, -1)) + jnp.sum(p * (ga - gb) ** 2, -1))


def epic_distance_decomposed(
    ra_sa: jax.Array,
    ra_next: jax.Array,
    rb_sa: jax.Array,
    rb_next: jax.Array,
    *,
    gamma: float,
    state_dist: jax.Array | None = None,
    action_dist: jax.Array | None = None,
    constant_rtol: float = CONSTANT_RTOL,
) -> jax.Array:
    """EPIC distance for rewards of the form `R(s, a, s') = r_sa[s, a] + r_next[s']` (SPEC.md section 3).

    Returns the number `epic_distance` gives (up to rounding) on the dense rewards with the default product coverage
    `D_S x D_A x D_S`, in `O(S A)` memory instead of `O(S^2 A)`: a gridworld level with 3000 states and 4
    actions would need 36M floats per dense reward. The canonical form is `f(s, a) + g(s') + const` with
    `f(s, a) = r_sa(s, a) - E_A r_sa(s, A)` and `g(s') = r_next(s') + gamma E_A r_sa(s', A)`; under product
    coverage `(s, a)` and `s'` are independent, so `Var C = Var f + Var g` and the mean squared difference
    of the standardised forms splits the same way. The distance is `sqrt((1 - rho) / 2)` in `[0, 1]` (the
    published formula; one public implementation omits the 1/2), with the same degenerate-case convention
    as `epic_distance`.

    Args:
        ra_sa: float `[..., S, A]`, the `(s, a)` part of reward A (e.g. step costs).
        ra_next: float `[..., S]`, the `s'` part of reward A (e.g. "entered a cheese cell").
        rb_sa: float `[..., S, A]`.
        rb_next: float `[..., S]`.
        gamma: Discount in `[0, 1]`.
        state_dist: `D_S`, float `[..., S]`; uniform if None.
        action_dist: `D_A`, float `[..., A]`; uniform if None.
        constant_rtol: As in `epic_distance` (`max|R|` is computed exactly from the two parts).

    Returns:
        float `[...]`.
    """
    _check_gamma(gamma, allow_one=True)
    shape = _shape_of(ra_sa)
    if len(shape) < 2:
        raise ValueError(f"ra_sa must have shape [..., S, A], got {list(shape)}")
    s, a = shape[-2:]
    _check_trailing("rb_sa", rb_sa, (s, a))
    _check_trailing("ra_next", ra_next, (s,))
    _check_trailing("rb_next", rb_next, (s,))
    _check_trailing("state_dist", state_dist, (s,))
    _check_trailing("action_dist", action_dist, (a,))
    return _epic_distance_decomposed(ra_sa, ra_next, rb_sa, rb_next, state_dist, action_dist, gamma, constant_rtol)


# ------------------------------------------------------------------------------------------------ DARD


def _dard_canonical(r: jax.Array, t: jax.Array, q: jax.Array, gamma) -> jax.Array:
    """DARD canonical form; `r`, `t` `[..., S, A, S]` and `q` `[..., A]` already broadcast."""
    e = jnp.einsum("...xay,...xay,...a->...x", t, r, q)  # e(x) = E_A E_{Y ~ T(x, A)} R(x, A, Y)
    u = jnp.einsum("...sax,...xay->...say", t, r)  # E_{X ~ T(s, a)} R(X, a, y)
    w = jnp.einsum("...say,...tay,...a->...st", u, t, q)  # W(s, t), one A shared by S' and S''
    return r + gamma * e[..., None, None, :] - e[..., :, None, None] - gamma * w[..., :, None, :]


@jax.jit
def _canonicalize_dard(reward, transitions, action_dist, gamma):
    dtype = jnp.result_type(_as_float(reward), _as_float(transitions))
    r, t = _as_float(reward).astype(dtype), _as_float(transitions).astype(dtype)
    s, a = r.shape[-3], r.shape[-2]
    batch = _batch_shape(r.shape[:-3], t.shape[:-3], _lead(action_dist, 1))
    full = batch + (s, a, s)
    q = _distribution(action_dist, a, batch, dtype)
    return _dard_canonical(jnp.broadcast_to(r, full), jnp.broadcast_to(t, full), q, gamma)


def canonicalize_dard(
    reward: jax.Array,
    *,
    gamma: float,
    transitions: jax.Array,
    action_dist: jax.Array | None = None,
) -> jax.Array:
    """DARD canonical form of a tabular reward (Wulfe et al. 2022; SPEC.md section 3).

    `C_T(R)(s, a, s') = R(s, a, s') + E[gamma R(s', A, S'') - R(s, A, S') - gamma R(S', A, S'')]` with one
    action `A ~ D_A` shared by the three terms and, given `A`, successors `S' ~ T(. | s, A)` and
    `S'' ~ T(. | s', A)` drawn independently. Unlike EPIC, every expectation looks only at states one step
    from `s` or `s'` under the dynamics, so a learned reward is not queried far off its data. Potential
    shaping is still removed exactly (only the marginals of `S'` and `S''` matter for it).

    In closed form, with `e(x) = E_A E_{Y ~ T(x, A)} R(x, A, Y)` and
    `W(s, t) = E_A sum_{x, y} T(s, A, x) R(x, A, y) T(t, A, y)`:
    `C_T(R)(s, a, s') = R(s, a, s') + gamma e(s') - e(s) - gamma W(s, s')`. Cost `O(S^3 A)`.

    Args:
        reward: float `[..., S, A, S]`.
        gamma: Discount in `[0, 1]`.
        transitions: float `[..., S, A, S]`, `T(s, a, s')`, rows summing to 1 over `s'` (not checked).
        action_dist: `D_A`, float `[..., A]`; uniform if None.

    Returns:
        float `[..., S, A, S]`.
    """
    _check_gamma(gamma, allow_one=True)
    s, a = _check_sas("reward", reward)
    _check_trailing("transitions", transitions, (s, a, s))
    _check_trailing("action_dist", action_dist, (a,))
    return _canonicalize_dard(reward, transitions, action_dist, gamma)


@jax.jit
def _dard_distance(reward_a, reward_b, transitions, state_dist, action_dist, coverage, gamma, rtol):
    ra, rb, t = _as_float(reward_a), _as_float(reward_b), _as_float(transitions)
    dtype = jnp.result_type(ra, rb, t)
    ra, rb, t = ra.astype(dtype), rb.astype(dtype), t.astype(dtype)
    s, a = ra.shape[-3], ra.shape[-2]
    batch = _batch_shape(
        ra.shape[:-3], rb.shape[:-3], t.shape[:-3], _lead(state_dist, 1), _lead(action_dist, 1), _lead(coverage, 3)
    )
    full = batch + (s, a, s)
    p = _distribution(state_dist, s, batch, dtype)
    q = _distribution(action_dist, a, batch, dtype)
    ra, rb, t = (jnp.broadcast_to(x, full) for x in (ra, rb, t))
    ca, cb = _dard_canonical(ra, t, q, gamma), _dard_canonical(rb, t, q, gamma)
    if coverage is None:
        w = p[..., :, None, None] * q[..., None, :, None] * t  # only transitions the dynamics can produce
    else:
        w = jnp.broadcast_to(_as_float(coverage), full)
    return _pearson_distance_sas(ca, cb, w, _max_abs_sas(ra), _max_abs_sas(rb), rtol)


def dard_distance(
    reward_a: jax.Array,
    reward_b: jax.Array,
    *,
    gamma: float,
    transitions: jax.Array,
    state_dist: jax.Array | None = None,
    action_dist: jax.Array | None = None,
    coverage: jax.Array | None = None,
    constant_rtol: float = CONSTANT_RTOL,
) -> jax.Array:
    """DARD distance between two tabular rewards (Wulfe et al. 2022; SPEC.md section 3).

    The Pearson distance `sqrt((1 - rho) / 2)` (published EPIC/DARD formula, in `[0, 1]`; one public EPIC
    implementation omits the 1/2) between `canonicalize_dard` of each reward. As in the paper, the
    correlation is taken over physically possible transitions: by default `S ~ D_S`, `A ~ D_A`,
    `S' ~ T(. | S, A)`, i.e. weights `D_S(s) D_A(a) T(s, a, s')`. Invariant to potential shaping and positive
    rescaling; same degenerate-case convention as `epic_distance` (0 if both canonical rewards are constant
    on the coverage, 0.5 if one is). When `T(s, a, .) = D_S` for every `(s, a)`, DARD equals EPIC.

    Args:
        reward_a: float `[..., S, A, S]`.
        reward_b: float `[..., S, A, S]`.
        gamma: Discount in `[0, 1]`.
        transitions: float `[..., S, A, S]`, row-stochastic in the last axis.
        state_dist: `D_S`, float `[..., S]`, for the coverage; uniform if None.
        action_dist: `D_A`, float `[..., A]`, for the canonicalisation and coverage; uniform if None.
        coverage: Optional explicit nonnegative weights `[..., S, A, S]` replacing the default coverage.
        constant_rtol: As in `epic_distance`.

    Returns:
        float `[...]`.
    """
    _check_gamma(gamma, allow_one=True)
    s, a = _check_sas("reward_a", reward_a)
    _check_trailing("reward_b", reward_b, (s, a, s))
    _check_trailing("transitions", transitions, (s, a, s))
    _check_trailing("state_dist", state_dist, (s,))
    _check_trailing("action_dist", action_dist, (a,))
    _check_trailing("coverage", coverage, (s, a, s))
    return _dard_distance(reward_a, reward_b, transitions, state_dist, action_dist, coverage, gamma, constant_rtol)


# ---------------------------------------------------------------------------------------------- regret


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PolicyRegret:
    """Regret under objective B of an optimal policy for objective A, at the start distribution.

    A JAX pytree, so it can be returned from `jit`/`vmap`. All fields are float `[...]` (the batch shape).

    Attributes:
        regret: `V*_B - V_B^{pi_A}` (nonnegative; clipped at 0 against rounding).
        normalised_regret: `regret / (V*_B - V_B^unif)`, 0 where that range is 0 (every policy is equally
            good under B, so there is nothing to regret). Above 1 when `pi_A` is worse than uniform under B.
        v_optimal: `V*_B`.
        v_policy: `V_B^{pi_A}`.
        v_uniform: `V_B^unif`, the uniform-random policy's value.
    """

    regret: jax.Array
    normalised_regret: jax.Array
    v_optimal: jax.Array
    v_policy: jax.Array
    v_uniform: jax.Array


def _optimal_q(t: jax.Array, r_sak: jax.Array, gamma) -> jax.Array:
    """`Q*` `[..., S, A, K]` for `K` objectives at once by value iteration on a stochastic model.

    `t` is `[..., S, A, S]`, `r_sak` the expected immediate rewards `[..., S, A, K]`; the objectives share
    one loop (and one compilation) and `t` is never copied. Stops when every sup-norm change is below
    `_VI_TOL` times that objective's largest attainable `|value|`, or after `_VI_MAX_ITERS` sweeps.
    """
    scale = jnp.maximum(jnp.max(jnp.abs(r_sak), (-3, -2)) / (1.0 - gamma), 1e-12)  # [..., K]

    def q_of(v):  # v [..., S, K]
        return r_sak + gamma * jnp.einsum("...sax,...xk->...sak", t, v)

    def cond(carry):
        _, delta, i = carry
        return jnp.any(delta > _VI_TOL * scale) & (i < _VI_MAX_ITERS)

    def body(carry):
        v, _, i = carry
        v_new = q_of(v).max(-2)
        return v_new, jnp.max(jnp.abs(v_new - v), -2), i + 1

    v0 = jnp.zeros(r_sak.shape[:-3] + (r_sak.shape[-3], r_sak.shape[-1]), r_sak.dtype)
    v, _, _ = jax.lax.while_loop(cond, body, (v0, jnp.full(scale.shape, jnp.inf, r_sak.dtype), 0))
    return q_of(v)


def _policy_values(t: jax.Array, r_sa: jax.Array, policies: jax.Array, gamma) -> jax.Array:
    """Exact `V^pi` `[..., K, S]` of `K` policies `[..., K, S, A]` by solving `(I - gamma P_pi) V = r_pi`."""
    p_pi = jnp.einsum("...ksa,...sax->...ksx", policies, t)
    r_pi = jnp.sum(policies * r_sa[..., None, :, :], -1)
    eye = jnp.eye(p_pi.shape[-1], dtype=p_pi.dtype)
    return jnp.linalg.solve(eye - gamma * p_pi, r_pi[..., None])[..., 0]


@jax.jit
def _optimal_policy_regret(reward_a, reward_b, transitions, start_dist, gamma) -> PolicyRegret:
    ra, rb, t, start = (_as_float(x) for x in (reward_a, reward_b, transitions, start_dist))
    s, a = ra.shape[-3], ra.shape[-2]
    batch = _batch_shape(ra.shape[:-3], rb.shape[:-3], t.shape[:-3], start.shape[:-1])
    full = batch + (s, a, s)
    dtype = jnp.result_type(ra, rb, t, start)
    ra, rb, t = (jnp.broadcast_to(x, full).astype(dtype) for x in (ra, rb, t))
    start = jnp.broadcast_to(start / start.sum(-1, keepdims=True), batch + (s,)).astype(dtype)
    gamma = jnp.asarray(gamma, dtype)

    r_b = jnp.sum(t * rb, -1)  # expected immediate reward [..., S, A]
    r_ab = jnp.stack([jnp.sum(t * ra, -1), r_b], -1)  # [..., S, A, 2]
    q_ab = jnp.moveaxis(_optimal_q(t, r_ab, gamma), -1, -3)  # [..., 2, S, A]
    pi_a, pi_b = jnp.moveaxis(uniform_over_optimal(q_ab), -3, 0)
    pi_u = jnp.full(r_b.shape, 1.0 / a, dtype)
    values = _policy_values(t, r_b, jnp.stack([pi_b, pi_a, pi_u], -3), gamma)  # [..., 3, S]
    v_opt, v_pol, v_unif = jnp.moveaxis(jnp.sum(start[..., None, :] * values, -1), -1, 0)

    regret = jnp.maximum(v_opt - v_pol, 0.0)
    span = v_opt - v_unif
    # A range below float32 resolution of B's value scale counts as zero.
    has_range = span > _SPAN_RTOL * jnp.max(jnp.abs(r_b), (-2, -1)) / (1.0 - gamma)
    normalised = jnp.where(has_range, regret / jnp.where(has_range, span, 1.0), 0.0)
    return PolicyRegret(regret, normalised, v_opt, v_pol, v_unif)


def optimal_policy_regret(
    reward_a: jax.Array,
    reward_b: jax.Array,
    *,
    gamma: float,
    transitions: jax.Array,
    start_dist: jax.Array,
) -> PolicyRegret:
    """How much objective B loses when a policy optimal for objective A is followed (SPEC.md section 3).

    `pi_A` is the optimal policy for A that splits ties evenly: in each state it picks uniformly among the
    actions within `optimal_action_mask` tolerance of `max_a Q*_A(s, a)` (SPEC.md section 2). Then
    `regret = V*_B - V_B^{pi_A}` and `normalised_regret = regret / (V*_B - V_B^unif)` (0 when that range
    is 0), all at `start_dist`. `Q*` comes from value iteration; the three values from an exact linear solve
    of the policies' Bellman equations (`V*_B` as the value of B's tie-splitting optimal policy). Unlike EPIC
    and DARD this depends on the dynamics and start states, and it is not symmetric. Cost `O(S^3)` per level.

    Args:
        reward_a: float `[..., S, A, S]`, the objective that chooses the policy.
        reward_b: float `[..., S, A, S]`, the objective that scores it.
        gamma: Discount in `[0, 1)`.
        transitions: float `[..., S, A, S]`, `T(s, a, s')`, row-stochastic in the last axis.
        start_dist: float `[..., S]`, the start-state distribution (normalised to sum 1).

    Returns:
        `PolicyRegret` of float `[...]` arrays.
    """
    _check_gamma(gamma, allow_one=False)
    s, a = _check_sas("reward_a", reward_a)
    _check_trailing("reward_b", reward_b, (s, a, s))
    _check_trailing("transitions", transitions, (s, a, s))
    _check_trailing("start_dist", start_dist, (s,))
    return _optimal_policy_regret(reward_a, reward_b, transitions, start_dist, gamma)
