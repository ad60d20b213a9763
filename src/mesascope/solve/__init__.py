"""Exact dynamic programming on enumerable levels (SPEC.md section 2)."""

from mesascope.solve.dp import (
    Solution,
    fixed_point,
    optimal_action_mask,
    policy_evaluation,
    policy_evaluation_dense,
    range_over_optimal,
    transition_matrix,
    uniform_policy,
    value_iteration,
    worst_case_over_optimal,
)

__all__ = [
    "Solution",
    "fixed_point",
    "optimal_action_mask",
    "policy_evaluation",
    "policy_evaluation_dense",
    "range_over_optimal",
    "transition_matrix",
    "uniform_policy",
    "value_iteration",
    "worst_case_over_optimal",
]
