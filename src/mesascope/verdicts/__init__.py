"""Verdicts of every school on a deployment failure (SPEC.md section 7) and the audit's per-system block."""

from mesascope.verdicts.entry import audit_entry, graphs_block
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
    wentworth_corollary,
)

__all__ = [
    "SCHOOLS",
    "Verdict",
    "audit_entry",
    "classify_failure",
    "demski",
    "graphs_block",
    "hubinger",
    "ngo",
    "pseudo_alignment",
    "shah",
    "wentworth",
    "wentworth_corollary",
]
