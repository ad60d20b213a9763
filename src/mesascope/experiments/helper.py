"""A helper process that computes the audit's MCE IRL fits on the machine's second core (issue 16).

XLA on the CPU runs one program at a time in a process (jaxlib 0.10.2, measured on the 2-core machine: two
programs dispatched together take the sum of their times; two CPU devices in one process hang on LAPACK
calls), so an audit keeps one core busy and leaves the other idle. Its MCE IRL fits, one per system and
split and a third of a warm audit's computation, depend only on the split's levels and the system's
action probabilities. `Helper` hands them to a second Python process as soon as those are known; the
audit goes on with everything else and collects each fit when it needs it.

Trust comes first, speed second:

- *Same numbers.* The helper calls the same function with the same arguments, so it runs the same
  compiled program (`mesascope.programs.cached_jit`, loaded from the same saved file) on the same inputs:
  its results are bit-identical to computing them here (tested on a whole audit).
- *Never a lost or slower audit.* A task the helper has not started when its result is needed is computed
  here (and the helper told to skip it), so a small audit never waits for the helper to start. Whatever
  goes wrong with the helper (it cannot start, it dies, a task fails there), the task is computed here
  instead, where a genuine error is raised the way it always is.
- *Honest profile.* What the helper compiled or loaded from the cache is counted into the stage that
  collected the result (`mesascope.experiments.profiling.record_events`).

It is used only where it can help: the CPU backend with at least two cores available. `MESASCOPE_HELPER=off`
(or `0`, `false`, `no`) turns it off; parallel sweep points turn it off in their workers (the cores are
taken).

Protocol: length-prefixed pickles over the helper's stdin and stdout. To the helper: `("config", {...})`
(JAX settings to match), `("run", i, module, name, args, kwargs)`, `("skip", i)`. From it: `("started", i)`,
then `("done", i, ok, value or error text, events)`; `("ready",)` once it has started.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import jax
import numpy as np

__all__ = ["HELPER_ENV", "Helper", "Task", "helper_enabled", "start_helper"]

HELPER_ENV = "MESASCOPE_HELPER"
_OFF = {"off", "0", "false", "no", "none"}
_CONFIG = (
    # The settings a compiled program (and the saved program's key) depends on, and where the caches are.
    "jax_enable_x64", "jax_default_matmul_precision", "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs", "jax_persistent_cache_min_entry_size_bytes",
)
_HEADER = struct.Struct("<Q")


def _send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the other process closed the channel")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other process closed the channel mid-message")
    return pickle.loads(data)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def helper_enabled() -> bool:
    """True where a helper process can run beside this one: CPU backend, two cores, not turned off."""
    value = os.environ.get(HELPER_ENV)
    if value is not None and value.strip().lower() in _OFF:
        return False
    return jax.default_backend() == "cpu" and _cores() >= 2


class Task:
    """One function call handed to the helper; `result()` returns its value (computed here if need be)."""

    def __init__(self, helper: Helper, index: int, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self._helper, self._index, self._fn, self._args, self._kwargs = helper, index, fn, args, kwargs

    def result(self) -> Any:
        """The call's value: the helper's if it has started the task and finishes it, else computed here."""
        outcome = self._helper._collect(self._index)
        if outcome is None:
            return self._fn(*self._args, **self._kwargs)
        value, events = outcome
        from mesascope.experiments.profiling import record_events

        record_events(events)
        return value


class Helper:
    """A running helper process (see the module docstring). Use `start_helper`, then `submit` and `close`."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._cond = threading.Condition()
        self._started: set[int] = set()
        self._done: dict[int, tuple[bool, Any, list[Any]]] = {}
        self._alive = True
        self._ready = False
        self._next = 0
        self._reader = threading.Thread(target=self._read, name="mesascope-helper-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self._process.stdout
        try:
            while True:
                message = _receive(stream)  # type: ignore[arg-type]
                with self._cond:
                    if message[0] == "ready":
                        self._ready = True
                    elif message[0] == "started":
                        self._started.add(message[1])
                    elif message[0] == "done":
                        self._done[message[1]] = (message[2], message[3], message[4])
                    self._cond.notify_all()
        except Exception:  # noqa: BLE001 - any failure of the channel ends the helper's use, nothing else
            with self._cond:
                self._alive = False
                self._cond.notify_all()

    def _write(self, message: Any) -> None:
        try:
            _send(self._process.stdin, message)  # type: ignore[arg-type]
        except (OSError, ValueError, pickle.PicklingError, AttributeError, TypeError):
            with self._cond:
                self._alive = False
                self._cond.notify_all()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        """Hand `fn(*args, **kwargs)` to the helper; `fn` must be a module-level mesascope function.

        Arguments and results travel as pickles: pass host (NumPy) arrays, which is also what makes the
        call the same program here and there.
        """
        index = self._next
        self._next += 1
        if self._alive:
            self._write(("run", index, fn.__module__, fn.__qualname__, args, kwargs))
        return Task(self, index, fn, args, kwargs)

    def _collect(self, index: int) -> tuple[Any, list[Any]] | None:
        """The helper's `(value, events)` for task `index`, or None: compute it here."""
        with self._cond:
            if index not in self._started and index not in self._done:
                if self._alive:
                    self._write(("skip", index))  # the condition's lock is reentrant
                return None
            while index not in self._done and self._alive:
                self._cond.wait()
            outcome = self._done.pop(index, None)
        if outcome is None or not outcome[0]:
            return None  # the helper died or the call failed there: here, a genuine error is raised as usual
        return outcome[1], outcome[2]

    def close(self) -> None:
        """Stop the helper and reap it, without waiting for a helper still starting (a small audit)."""
        with self._cond:
            self._alive = False
            ready = self._ready
        try:
            self._process.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            # A ready helper exits as soon as its input ends; one still importing is stopped at once.
            self._process.wait(timeout=2.0 if ready else 0.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def start_helper() -> Helper | None:
    """Start a helper process where `helper_enabled()`; None otherwise or if it cannot be started."""
    if not helper_enabled():
        return None
    env = {**os.environ, "JAX_PLATFORMS": "cpu", HELPER_ENV: "off"}
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", "from mesascope.experiments.helper import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
    except OSError:
        return None
    helper = Helper(process)
    helper._write(("config", {name: getattr(jax.config, name) for name in _CONFIG}))
    return helper


# ------------------------------------------------------------------------------------------ the helper


def serve() -> None:
    """The helper process's main loop: run tasks in order, skip those computed elsewhere, until stdin ends."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the channel
    inbox = sys.stdin.buffer
    tasks: queue.Queue[Any] = queue.Queue()
    skipped: set[int] = set()

    def read() -> None:
        try:
            while True:
                message = _receive(inbox)
                if message[0] == "skip":
                    skipped.add(message[1])
                else:
                    tasks.put(message)
        except Exception:  # noqa: BLE001 - the channel closed: stop after the task at hand
            tasks.put(None)

    threading.Thread(target=read, daemon=True).start()
    events: list[Any] = []
    _listen(events)
    _send(out, ("ready",))
    while (message := tasks.get()) is not None:
        if message[0] == "config":
            for name, value in message[1].items():
                jax.config.update(name, value)
            continue
        _, index, module, name, args, kwargs = message
        if index in skipped:
            continue
        _send(out, ("started", index))
        events.clear()
        try:
            fn = _function(module, name)
            value = jax.tree_util.tree_map(np.asarray, fn(*args, **kwargs))
            reply = ("done", index, True, value, list(events))
        except Exception as err:  # noqa: BLE001 - reported; the audit computes the task itself
            reply = ("done", index, False, f"{type(err).__name__}: {err}", [])
        _send(out, reply)
    out.close()
    os._exit(0)  # no interpreter teardown of JAX: nothing is left to save


def _function(module: str, name: str) -> Callable[..., Any]:
    import importlib

    if not module.startswith("mesascope."):
        raise ValueError(f"the helper runs mesascope functions only, not {module}.{name}")
    fn: Any = importlib.import_module(module)
    for part in name.split("."):
        fn = getattr(fn, part)
    return fn


def _listen(events: list[Any]) -> None:
    """Record the JAX events `--profile` counts, to report them with each result."""
    from mesascope.experiments.profiling import BACKEND_COMPILE_EVENT
    from mesascope.programs import PERSISTENT_HIT_EVENT, PROGRAM_HIT_EVENT

    def on_event(event: str, **_: Any) -> None:
        if event in (PERSISTENT_HIT_EVENT, PROGRAM_HIT_EVENT):
            events.append((event, None))

    def on_duration(event: str, duration: float, **_: Any) -> None:
        if event == BACKEND_COMPILE_EVENT:
            events.append((event, float(duration)))

    jax.monitoring.register_event_listener(on_event)
    jax.monitoring.register_event_duration_secs_listener(on_duration)
