"""Gridworld levels as pure JAX functions, and their exact tabular view."""

from mesascope.levels.grid import ACTIONS, OBJECT_KINDS, GridSpec, Level, State, feature_names, observe, reset, step
from mesascope.levels.tabular import TabularMDP, decode, encode, observe_all, tabularize

__all__ = [
    "ACTIONS",
    "OBJECT_KINDS",
    "GridSpec",
    "Level",
    "State",
    "TabularMDP",
    "decode",
    "encode",
    "feature_names",
    "observe",
    "observe_all",
    "reset",
    "step",
    "tabularize",
]
