"""Train stable-baselines3 PPO on `mesascope/cheese-corner-v0` through Gymnasium, for `mesascope audit-policy`.

Needs the optional extra `bench` (stable-baselines3 and the CPU build of PyTorch)::

    pip install -e '.[bench]'
    python examples/sb3_agent.py --total-steps 1000000 --save runs/sb3-ppo.zip
    mesascope audit-policy cheese-corner-v0 --policy runs/sb3-ppo.zip --out runs/cc-sb3

The hyperparameters are those of mesascope's own PPO `fast` preset (64 environments x 16 steps, 3
epochs of 4 minibatches, Adam 1e-3 annealed to 0, entropy 0.001, clip 0.2, GAE 0.95, gamma 0.99, two
dense layers of 128, ReLU), so the audit compares the two implementations more than two configurations.
What still differs: SB3 gives the actor and the critic separate networks (mesascope's share a torso), and
its Gymnasium environments draw a fresh level at every reset (mesascope's PPO samples a fixed pool of
65,536 training levels per seed).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import gymnasium

from mesascope.adapters import register_gymnasium_envs
from mesascope.scenarios import get_scenario


def train(total_steps: int, *, seed: int = 0, scenario_params: dict[str, Any] | None = None, num_envs: int = 64) -> Any:
    """SB3 PPO with the `fast` preset's settings on the scenario's train split; returns the model."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)  # SB3's small MLPs are fastest on one thread (benchmarks/bench_ppo.py)
    register_gymnasium_envs()
    scenario = get_scenario("cheese-corner-v0", **(scenario_params or {}))
    env = make_vec_env(lambda: gymnasium.make("mesascope/cheese-corner-v0", scenario=scenario), n_envs=num_envs, seed=seed)
    n_steps = 16
    model = PPO(
        "MlpPolicy", env, n_steps=n_steps, batch_size=num_envs * n_steps // 4, n_epochs=3,
        learning_rate=lambda remaining: 1e-3 * remaining, ent_coef=0.001, clip_range=0.2, gae_lambda=0.95,
        gamma=0.99, vf_coef=0.5, max_grad_norm=0.5, seed=seed, device="cpu",
        policy_kwargs={"net_arch": [128, 128], "activation_fn": torch.nn.ReLU},
    )
    model.learn(total_timesteps=total_steps)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total-steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid-size", type=int, default=None, help="cheese-corner's grid_size (maze_sizes follows it)")
    parser.add_argument("--save", type=Path, default=Path("runs/sb3-ppo.zip"))
    args = parser.parse_args()
    params = {"grid_size": args.grid_size, "maze_sizes": (args.grid_size,)} if args.grid_size else {}
    start = time.perf_counter()
    model = train(args.total_steps, seed=args.seed, scenario_params=params)
    seconds = time.perf_counter() - start
    args.save.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.save)
    print(f"trained {args.total_steps} steps in {seconds:.0f} s ({args.total_steps / seconds:.0f} steps/s); saved to {args.save}")


if __name__ == "__main__":
    main()
