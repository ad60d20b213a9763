"""Compiled programs kept across processes: `cached_jit`, a `jax.jit` whose executables are saved to disk.

JAX's persistent compilation cache (`mesascope._jax_setup`) saves XLA's compile step, but every new
process still traces each function to a jaxpr and lowers it to StableHLO before it can look the program
up: for the audit's largest programs (the goal-posterior fit, the exact values, MCE IRL) that is most of
a warm audit's overhead (issue 16: about 4 s of a 17 s `mesascope audit`). `cached_jit` keeps the
compiled executable itself (`jax.experimental.serialize_executable`), keyed by everything the program
depends on, so a second process calls it without tracing, lowering or compiling.

What the key holds, and why it is safe:

- the function's module and qualified name, and a fingerprint of every file of the mesascope package,
  so any change to mesascope's code starts a new set of programs;
- the JAX and jaxlib versions, the backend and the host CPU (machine code is compiled for it), and the
  JAX settings that change a trace (`jax_enable_x64`, default matmul precision, `XLA_FLAGS`);
- the static arguments' `repr` (they must be values with a deterministic one: numbers, strings, tuples,
  frozen dataclasses), the dynamic arguments' tree structure and each leaf's shape, dtype and weak type;
- `key=`: for a function that closes over something (a network's static structure), a description of
  what it closes over. A closure over anything the key does not describe must not use `cached_jit`.

Only a program XLA really compiled is saved: one that JAX's persistent cache supplied does not serialize
whole (jaxlib 0.10.2), so such a program is compiled once more, with that cache bypassed, and the fresh
copy is saved (once per program and version of the code: after an upgrade or an edit). Inside another
transformation (any argument a tracer), or with the cache off (`MESASCOPE_JAX_CACHE=off`), the function is
plain `jax.jit`. A file that cannot be read or loaded is compiled again and replaced: the cache only ever
saves time. Each program loaded from disk is reported to the profile as a cache hit
(`mesascope.experiments.profiling`).

Programs live in `<cache folder>/programs/`, one file per program (tens to hundreds of kilobytes), named
by a digest of the environment; those of another environment unused for `STALE_DAYS` are deleted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
import pickle
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from mesascope._jax_setup import cache_dir

__all__ = [
    "PERSISTENT_HIT_EVENT", "PROGRAM_HIT_EVENT", "STALE_DAYS", "cached_jit", "clear_loaded", "programs_dir",
]

PERSISTENT_HIT_EVENT = "/jax/compilation_cache/cache_hits"
"""JAX's `jax.monitoring` event for a program its persistent compilation cache supplied."""

PROGRAM_HIT_EVENT = "/mesascope/programs/loaded"
"""`jax.monitoring` event recorded for every program loaded from disk (counted by `--profile`)."""

_FORMAT = 2  # bump when the file layout changes
_LOADED: list[dict[tuple[Any, ...], Any]] = []  # every `cached_jit`'s programs held in this process
_LOCK = threading.Lock()


def clear_loaded() -> None:
    """Forget the programs every `cached_jit` holds in memory (as `jax.clear_caches` does for `jax.jit`).

    Each loaded XLA:CPU executable keeps memory mappings; a long process (the test suite) that loads
    hundreds of them should drop them now and then. They are loaded from disk again when next called.
    """
    for loaded in _LOADED:
        loaded.clear()


def programs_dir() -> Path | None:
    """The folder of saved programs, or None when the cache is off."""
    folder = cache_dir()
    return None if folder is None else folder / "programs"


@functools.cache
def _environment() -> str:
    """Everything outside the call that a compiled program depends on, as one digest."""
    import jaxlib

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    # Every file of the package (data files too: a scenario may read one), compiled bytecode aside.
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    backend = jax.devices()[0]
    parts = [
        f"format={_FORMAT}", f"jax={jax.__version__}", f"jaxlib={jaxlib.__version__}",
        f"platform={backend.platform}", f"device={backend.device_kind}", f"machine={platform.machine()}",
        f"cpu={_cpu_flags()}", f"x64={jax.config.jax_enable_x64}",
        f"matmul={jax.config.jax_default_matmul_precision}", f"xla_flags={os.environ.get('XLA_FLAGS', '')}",
    ]
    digest.update("\n".join(parts).encode())
    return digest.hexdigest()


def _cpu_flags() -> str:
    # XLA compiles CPU programs for the host's instruction set: a folder shared with another machine must
    # not hand it code it cannot run.
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return hashlib.sha256(line.encode()).hexdigest()[:16]
    except OSError:
        pass
    return platform.processor()


def _leaf_signature(leaf: Any) -> tuple[Any, ...]:
    if isinstance(leaf, jax.Array):
        # The sharding names the device: a program is compiled for the device its inputs live on.
        return (tuple(leaf.shape), str(leaf.dtype), bool(getattr(leaf, "weak_type", False)), repr(leaf.sharding))
    if isinstance(leaf, np.ndarray | np.generic):
        return (tuple(leaf.shape), str(leaf.dtype), False)
    if isinstance(leaf, bool | int | float | complex):
        return ("python", type(leaf).__name__)
    raise TypeError(f"cached_jit: unsupported argument leaf of type {type(leaf).__name__}")


def cached_jit(
    fun: Callable[..., Any] | None = None,
    *,
    static_argnames: str | Sequence[str] = (),
    key: Any = None,
) -> Any:
    """`jax.jit(fun, static_argnames=...)` whose compiled programs are saved and reused across processes.

    Use as `@cached_jit`, `@cached_jit(static_argnames="steps")` or `cached_jit(f, key=...)`. Results are
    those of `jax.jit` bit for bit: the same program, compiled once and loaded instead of traced again.

    Args:
        fun: The function; it must be pure and determined by its source, its arguments and `key`.
        static_argnames: As in `jax.jit`.
        key: Optional value with a deterministic `repr` describing what `fun` closes over.
    """
    if fun is None:
        return functools.partial(cached_jit, static_argnames=static_argnames, key=key)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    jitted = jax.jit(fun, static_argnames=names)
    params = list(inspect.signature(fun).parameters)
    static_positions = {params.index(n) for n in names if n in params}
    loaded: dict[tuple[Any, ...], Any] = {}
    _LOADED.append(loaded)

    @functools.wraps(fun)
    def call(*args: Any, **kwargs: Any) -> Any:
        folder = programs_dir()
        if folder is None:
            return jitted(*args, **kwargs)
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_positions)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in names}
        leaves, tree = jax.tree_util.tree_flatten((dyn_args, dyn_kwargs))
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return jitted(*args, **kwargs)
        statics = tuple((i, repr(a)) for i, a in enumerate(args) if i in static_positions)
        statics += tuple(sorted((k, repr(v)) for k, v in kwargs.items() if k in names))
        try:
            signature = (repr(key), statics, str(tree), tuple(_leaf_signature(x) for x in leaves))
        except TypeError:
            return jitted(*args, **kwargs)
        if " at 0x" in signature[0] or " at 0x" in signature[2] or any(" at 0x" in text for _, text in statics):
            # A repr with an object's address is not a description of it (and differs in every process).
            return jitted(*args, **kwargs)
        compiled = loaded.get(signature)
        if compiled is None:
            with _LOCK:
                compiled = loaded.get(signature)
                if compiled is None:
                    compiled = _load_or_compile(folder, fun, names, signature, args, kwargs)
                    loaded[signature] = compiled
        try:
            return compiled(*dyn_args, **dyn_kwargs)
        except (TypeError, ValueError):
            # Arguments the key did not tell apart (a sharding or layout it does not record): jax.jit
            # handles them, and reports a genuine error in the call the way it always does.
            return jitted(*args, **kwargs)

    return call


@functools.cache
def _prepare_runtime() -> None:
    # A saved program may call LAPACK (every `jnp.linalg.solve`). jaxlib binds LAPACK's routines only when it
    # first lowers such a call; a program loaded without lowering anything would call unbound routines
    # and crash the process. Binding them first is what lowering would have done.
    try:
        from jax._src.lib import lapack

        lapack._lapack.initialize()
    except (ImportError, AttributeError):
        pass


_PERSISTENT_HITS = [0]  # programs JAX's persistent cache has supplied in this process


def _count_persistent_hit(event: str, **_: Any) -> None:
    if event == PERSISTENT_HIT_EVENT:
        _PERSISTENT_HITS[0] += 1


jax.monitoring.register_event_listener(_count_persistent_hit)


def _compile(fun: Callable[..., Any], names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Compile `fun` as `jax.jit` would, into an executable that serializes whole.

    An executable JAX's persistent cache supplied does not (jaxlib 0.10.2 on CPU: the saved copy loads,
    then fails when run with "Function ... not found"). Every program to be saved is therefore traced
    anew (JAX's in-memory caches hand an earlier trace's executable back without saying where it came
    from: a call with NumPy instead of JAX arrays of the same shapes, for example, is another signature
    here but the same program there), and one the persistent cache supplies is compiled once more with
    that cache bypassed. Bypassing it always would also recompile the programs it does not hold, and keep
    them out of it.
    """
    from jax._src import config as jax_config
    from jax.experimental.compilation_cache import compilation_cache

    def fresh() -> Any:
        return jax.jit(functools.partial(fun), static_argnames=names).lower(*args, **kwargs).compile()

    before = _PERSISTENT_HITS[0]
    compiled = fresh()
    if _PERSISTENT_HITS[0] == before:
        return compiled
    compilation_cache.reset_cache()
    try:
        with jax_config.enable_compilation_cache(False):
            return fresh()
    finally:
        # The next compile looks the persistent cache up again (its folder setting is unchanged).
        compilation_cache.reset_cache()


def _load_or_compile(folder: Path, fun: Callable[..., Any], names: tuple[str, ...], signature: tuple[Any, ...],
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from jax.experimental.serialize_executable import deserialize_and_load, serialize

    text = repr((_environment(), fun.__module__, fun.__qualname__, signature))
    # Named by the environment first, so programs of other versions of the code can be told apart and pruned.
    name = fun.__qualname__.replace("<", "").replace(">", "")[:40]
    path = folder / f"{_environment()[:12]}-{name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}.bin"
    try:
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        _prepare_runtime()
        compiled = deserialize_and_load(payload, in_tree, out_tree)
        jax.monitoring.record_event(PROGRAM_HIT_EVENT)
        with contextlib.suppress(OSError):
            os.utime(path)  # in use: kept by `_prune`
        return compiled
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, RuntimeError):
        pass  # missing, from an older layout, or unreadable: compile again and replace it
    compiled = _compile(fun, names, args, kwargs)
    partial_file = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = pickle.dumps(serialize(compiled))
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as handle:
            partial_file = handle.name
            handle.write(data)
        os.replace(partial_file, path)
        _prune(folder)
    except (OSError, TypeError, ValueError, pickle.PicklingError, RuntimeError):
        # A program that cannot be saved is simply compiled again next time; a half-written file (a full
        # disk) is not left behind, since `_prune` deletes only whole programs.
        if partial_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial_file)
    return compiled


STALE_DAYS = 7.0
"""Programs of another version of the code (or JAX) unused for this many days are deleted."""


@functools.cache
def _prune(folder: Path) -> None:
    """Once per process, on the first save: delete other environments' programs unused for `STALE_DAYS`.

    Every edit of mesascope's code starts a new set of programs (tens of megabytes for the test suite);
    without pruning they would pile up. Another checkout sharing the folder keeps what it still uses.
    """
    current = _environment()[:12]
    cutoff = time.time() - STALE_DAYS * 86400.0
    for path in folder.glob("*.bin"):
        with contextlib.suppress(OSError):
            if not path.name.startswith(current) and path.stat().st_mtime < cutoff:
                path.unlink()
    # A save cut short by the process being killed (the audit's helper is stopped that way) leaves its
    # temporary file; one an hour old is no save in progress.
    for path in folder.glob("*.tmp"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < time.time() - 3600.0:
                path.unlink()
