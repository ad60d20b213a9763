"""JAX's persistent compilation cache for mesascope (compile once across processes).

Every `mesascope run`, `audit` and sweep point compiles the same programs for the same level shapes;
XLA on CPU spends seconds on each. With the cache, a second identical run, or every sweep point after
the first, loads them from disk instead (`--profile` shows the cache hits per stage).

Where: `$MESASCOPE_JAX_CACHE` if set, else `$XDG_CACHE_HOME/mesascope/jax` (default
`~/.cache/mesascope/jax`). `MESASCOPE_JAX_CACHE=off` (or `0`, `false`, `none`) turns it off. A folder that
cannot be created disables the cache silently: it only ever saves time.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "enable_compilation_cache"]

CACHE_ENV = "MESASCOPE_JAX_CACHE"
_OFF = {"off", "0", "false", "none", "no", ""}


def cache_dir() -> Path | None:
    """The persistent cache folder, or None when the cache is turned off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mesascope" / "jax"


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at `cache_dir()`; returns the folder used (None: off)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Cache every program, not only those that took over a second to compile: an audit compiles dozens
    # of sub-second programs, and together they are most of a cold audit's time.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
