"""Verdicts of every school on a deployment failure (SPEC.md section 7) and the audit's per-system block."""

from mesascope.verdicts.consistency import label_contradictions
from mesascope.verdicts.entry import Judgement, audit_entry, graph_facts, graphs_block, judge
from mesascope.verdicts.schools import (
    SCHOOLS,
    Verdict,
    classify_failure,
    demski,
    hubinger,
    ngo,
    pseudo_alignment,
    shah,
    wentworth,
    wentworth_before_training,
    wentworth_corollary,
)

__all__ = [
    "Judgement",
    "SCHOOLS",
    "Verdict",
    "audit_entry",
    "classify_failure",
    "demski",
    "graph_facts",
    "graphs_block",
    "label_contradictions",
    "hubinger",
    "judge",
    "ngo",
    "pseudo_alignment",
    "shah",
    "wentworth",
    "wentworth_before_training",
    "wentworth_corollary",
]
