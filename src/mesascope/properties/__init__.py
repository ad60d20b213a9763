"""The properties of SPEC.md section 5, computed from one system's `Measurements`."""

from mesascope.properties.measurements import Measurements, MeasurementsError, Witness

__all__ = ["Measurements", "MeasurementsError", "Witness"]
