"""Adapters to other ecosystems: scenarios as Gymnasium environments, outside policies as systems.

Importing this package registers nothing; call `register_gymnasium_envs()` to make
`gymnasium.make("mesascope/cheese-corner-v0")` work.
"""

from mesascope.adapters.gymnasium_env import (
    ENV_NAMESPACE,
    LEVEL_BLOCK,
    ScenarioEnv,
    gymnasium_id,
    make_env,
    make_env_spec,
    policy_from_callable,
    register_gymnasium_envs,
)

__all__ = [
    "ENV_NAMESPACE",
    "LEVEL_BLOCK",
    "ScenarioEnv",
    "gymnasium_id",
    "make_env",
    "make_env_spec",
    "policy_from_callable",
    "register_gymnasium_envs",
]
