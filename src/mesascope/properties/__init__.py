"""The properties of SPEC.md section 5, computed from one system's `Measurements`."""

from mesascope.properties.core import (
    DEFINITIONS,
    GRAPH_NODES,
    PROPERTY_NAMES,
    Definition,
    PropertyResult,
    compute_properties,
    graph_values,
    training_optimal_witnesses,
)
from mesascope.properties.thresholds import THRESHOLD_FIELDS, Thresholds, ThresholdsError
from mesascope.measures.measurements import Measurements, MeasurementsError, Witness


def audit_entry(m: Measurements, thresholds: Thresholds = Thresholds()) -> dict:
    """See `mesascope.verdicts.audit_entry` (re-exported here, imported lazily to avoid a cycle)."""
    from mesascope.verdicts.entry import audit_entry as _entry

    return _entry(m, thresholds)


__all__ = [
    "DEFINITIONS",
    "GRAPH_NODES",
    "PROPERTY_NAMES",
    "THRESHOLD_FIELDS",
    "Definition",
    "Measurements",
    "MeasurementsError",
    "PropertyResult",
    "Thresholds",
    "ThresholdsError",
    "Witness",
    "audit_entry",
    "compute_properties",
    "graph_values",
    "training_optimal_witnesses",
]
