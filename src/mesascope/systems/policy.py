"""Neural policies: systems that map an observation of a level to an action distribution (SPEC.md §1).

Networks are equinox modules. Training code works on the module's arrays only (`eqx.partition`), so a
trained system is a plain pytree of arrays that vmaps over seeds and saves with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["ActorCritic", "NetworkConfig", "action_probs", "layer_activations", "layer_names", "make_actor_critic",
           "steered_action_probs"]


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of an actor-critic.

    Attributes:
        kind: "mlp" (flattened observation) or "cnn" (3x3 convolutions, then dense layers).
        hidden: Width of the dense layers.
        depth: Number of hidden dense layers.
        channels: Convolution channels (cnn only).
    """

    kind: str = "mlp"
    hidden: int = 128
    depth: int = 2
    channels: tuple[int, ...] = (16, 32)


class ActorCritic(eqx.Module):
    """Shared torso, a policy head (logits `[A]`) and a value head (scalar)."""

    convs: tuple[eqx.nn.Conv2d, ...]
    dense: tuple[eqx.nn.Linear, ...]
    pi_head: eqx.nn.Linear
    v_head: eqx.nn.Linear

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Args: obs float32 `[H, W, C]`. Returns: `(logits [A], value [])`."""
        x = jnp.transpose(obs, (2, 0, 1))
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        x = x.reshape(-1)
        for layer in self.dense:
            x = jax.nn.relu(layer(x))
        return self.pi_head(x), self.v_head(x)[0]


def make_actor_critic(key: jax.Array, obs_shape: tuple[int, int, int], n_actions: int, config: NetworkConfig) -> ActorCritic:
    """A freshly initialised actor-critic for observations of shape `[H, W, C]`."""
    if config.kind not in ("mlp", "cnn"):
        raise ValueError(f"unknown network kind {config.kind!r}; choose 'mlp' or 'cnn'")
    h, w, c = obs_shape
    keys = iter(jax.random.split(key, 16))
    convs: list[eqx.nn.Conv2d] = []
    if config.kind == "cnn":
        cin = c
        for cout in config.channels:
            convs.append(eqx.nn.Conv2d(cin, cout, 3, padding=1, key=next(keys)))
            cin = cout
        width = h * w * cin
    else:
        width = h * w * c
    dense = []
    for _ in range(config.depth):
        dense.append(eqx.nn.Linear(width, config.hidden, key=next(keys)))
        width = config.hidden
    pi_head = eqx.nn.Linear(width, n_actions, key=next(keys))
    # A small policy head starts the policy near uniform, as is usual for PPO.
    pi_head = eqx.tree_at(lambda m: m.weight, pi_head, pi_head.weight * 0.01)
    v_head = eqx.nn.Linear(width, 1, key=next(keys))
    return ActorCritic(tuple(convs), tuple(dense), pi_head, v_head)


def action_probs(model: ActorCritic, obs: jax.Array) -> jax.Array:
    """Action probabilities for a batch of observations: `[B, H, W, C] -> [B, A]`."""
    logits, _ = jax.vmap(model)(obs)
    return jax.nn.softmax(logits, axis=-1)


def layer_names(model: ActorCritic) -> tuple[str, ...]:
    """The layers `layer_activations` returns, in order: `input`, `conv1`..., `dense1`..., `logits`."""
    return ("input", *(f"conv{i + 1}" for i in range(len(model.convs))),
            *(f"dense{i + 1}" for i in range(len(model.dense))), "logits")


def _forward(model: ActorCritic, obs: jax.Array, edit: tuple[str, jax.Array] | None) -> dict[str, jax.Array]:
    """One observation `[H, W, C]` through the network, keeping every layer flattened; `edit = (layer,
    delta)` adds `delta` to that layer's output before the next layer reads it."""

    def keep(name: str, x: jax.Array) -> jax.Array:
        flat = x.reshape(-1)
        if edit is not None and edit[0] == name:
            flat = flat + edit[1]
        out[name] = flat
        return flat.reshape(x.shape)

    out: dict[str, jax.Array] = {}
    x = jnp.transpose(keep("input", obs), (2, 0, 1))
    for i, conv in enumerate(model.convs):
        x = keep(f"conv{i + 1}", jax.nn.relu(conv(x)))
    x = x.reshape(-1)
    for i, layer in enumerate(model.dense):
        x = keep(f"dense{i + 1}", jax.nn.relu(layer(x)))
    keep("logits", model.pi_head(x))
    return out


def layer_activations(model: ActorCritic, obs: jax.Array) -> dict[str, jax.Array]:
    """Every layer's activations (after its nonlinearity) for a batch of observations.

    The same computation as `ActorCritic.__call__`, with each intermediate kept, for probes and
    steering (issue 15).

    Args:
        model: The network.
        obs: float32 `[B, H, W, C]`.

    Returns:
        `{layer: float32 [B, D_layer]}` in `layer_names(model)` order, flattened per observation
        (`input` is the observation itself, convolutions are channel-first `[C, H, W]` flattened).
    """
    acts = jax.vmap(lambda o: _forward(model, o, None))(obs)
    return {name: acts[name] for name in layer_names(model)}  # vmap sorts a dict's keys; keep the layer order


def steered_action_probs(model: ActorCritic, obs: jax.Array, layer: str, delta: jax.Array) -> jax.Array:
    """Action probabilities `[B, A]` with `delta` (`[D_layer]`) added to one layer's activations.

    An activation edit (steering, issue 15): with `delta` zero this is `action_probs`.
    """
    if layer not in layer_names(model):
        raise ValueError(f"unknown layer {layer!r}; layers: {', '.join(layer_names(model))}")
    return jax.nn.softmax(jax.vmap(lambda o: _forward(model, o, (layer, delta))["logits"])(obs), axis=-1)
