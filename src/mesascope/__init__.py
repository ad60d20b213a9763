"""mesascope: inner and outer alignment as exact, reproducible measurements.

The numeric core is JAX. Importing mesascope sets one XLA flag before JAX initialises: on CPU,
vmapping a whole jitted training loop over seeds sometimes deadlocks with XLA's concurrency-optimised
scheduler (measured on this project's 2-core machines, see DESIGN.md), and turning it off costs ~8%.
It also turns on JAX's persistent compilation cache in a user cache folder (`mesascope._jax_setup`;
`MESASCOPE_JAX_CACHE=off` turns it off), so programs compiled by one run are reused by the next.
"""

from __future__ import annotations

import os as _os

_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
if _FLAG not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

from mesascope._jax_setup import enable_compilation_cache as _enable_compilation_cache

_enable_compilation_cache()

__version__ = "0.1.0"

__all__ = ["__version__"]
