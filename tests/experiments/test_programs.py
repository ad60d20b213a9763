"""Saved compiled programs (`mesascope.programs.cached_jit`, issue 16): bit-identical to `jax.jit`, loaded
whole by a second process (no trace, no compile), keyed by everything they depend on, and never trusted
when they cannot be read."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mesascope import programs
from mesascope.programs import PROGRAM_HIT_EVENT, cached_jit


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder, with JAX's persistent cache pointed at it too (and so cold).

    A program JAX's persistent cache supplies is not saved (see `test_a_program_the_persistent_cache_
    supplied_is_not_saved`); the suite's own persistent cache would hold these tests' programs from an
    earlier run.
    """
    from jax.experimental.compilation_cache import compilation_cache

    folder = tmp_path / "jax-cache"
    monkeypatch.setenv("MESASCOPE_JAX_CACHE", str(folder))
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(folder))
    compilation_cache.reset_cache()
    yield folder
    jax.config.update("jax_compilation_cache_dir", previous)
    compilation_cache.reset_cache()


def _solve_levels(a, b, gamma):
    # LAPACK inside (the case a loaded program once crashed on), a reduction and a Python scalar.
    x = jax.vmap(jnp.linalg.solve)(jnp.eye(a.shape[-1]) - gamma * a, b)
    return x, x.sum()


def _with_steps(x, *, steps):
    return jax.lax.fori_loop(0, steps, lambda _, y: 0.5 * y + 1.0, x)


def _inputs():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(6), size=(3, 6)).astype(np.float32)
    return jax.device_put(a), jax.device_put(rng.normal(size=(3, 6)).astype(np.float32))


def test_results_equal_jax_jit_bit_for_bit_and_programs_are_saved(cache):
    a, b = _inputs()
    fast = cached_jit(_solve_levels)
    got, want = fast(a, b, 0.9), jax.jit(_solve_levels)(a, b, 0.9)
    for x, y in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    saved = list((cache / "programs").iterdir())
    assert len(saved) == 1 and "-_solve_levels-" in saved[0].name
    # Another shape is another program; the same shape again is not.
    fast(a[:2], b[:2], 0.5)
    fast(a, b, 0.1)
    assert len(list((cache / "programs").iterdir())) == 2


def test_static_arguments_and_keys_separate_programs(cache):
    x = jax.device_put(np.zeros(4, np.float32))
    fast = cached_jit(_with_steps, static_argnames="steps")
    assert float(fast(x, steps=1)[0]) == 1.0 and float(fast(x, steps=2)[0]) == 1.5
    assert len(list((cache / "programs").iterdir())) == 2
    # A closure is told apart by its key; a key whose repr holds an address is not a description of
    # anything, so such a function is plain jax.jit and nothing is saved for it.
    for scale in (2.0, 3.0):
        assert float(cached_jit(lambda y, s=scale: y + s, key=("add", scale))(x)[0]) == scale
    assert len(list((cache / "programs").iterdir())) == 4
    assert float(cached_jit(lambda y: y + 1.0, key=object())(x)[0]) == 1.0
    assert len(list((cache / "programs").iterdir())) == 4


def test_inside_another_transformation_it_is_plain_jit(cache):
    a, b = _inputs()
    fast = cached_jit(_solve_levels)
    outer = jax.jit(lambda a, b: fast(a, b, 0.9)[1] * 2.0)
    np.testing.assert_array_equal(np.asarray(outer(a, b)), np.asarray(2.0 * jax.jit(_solve_levels)(a, b, 0.9)[1]))
    assert not (cache / "programs").exists()


def test_cache_off_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MESASCOPE_JAX_CACHE", "off")
    a, b = _inputs()
    assert programs.programs_dir() is None
    cached_jit(_solve_levels)(a, b, 0.9)
    assert not any(tmp_path.rglob("*.bin"))


def test_an_unreadable_program_is_compiled_again_and_replaced(cache):
    a, b = _inputs()
    cached_jit(_solve_levels)(a, b, 0.9)
    want = np.asarray(jax.jit(_solve_levels)(a, b, 0.9)[0])
    (path,) = (cache / "programs").iterdir()
    path.write_bytes(b"not a program")
    np.testing.assert_array_equal(np.asarray(cached_jit(_solve_levels)(a, b, 0.9)[0]), want)
    assert path.read_bytes() != b"not a program"
    programs.clear_loaded()
    np.testing.assert_array_equal(np.asarray(cached_jit(_solve_levels)(a, b, 0.9)[0]), want)


_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from mesascope.programs import PROGRAM_HIT_EVENT, cached_jit
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("t", sys.argv[1]); mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    events = {"loaded": 0, "traced": 0}
    jax.monitoring.register_event_listener(lambda e, **_: events.__setitem__("loaded", events["loaded"] + (e == PROGRAM_HIT_EVENT)))
    jax.monitoring.register_event_duration_secs_listener(
        lambda e, d, **kw: events.__setitem__("traced", events["traced"] + (e.endswith("jaxpr_trace_duration") and kw.get("fun_name") == "_solve_levels")))
    a, b = mod._inputs()
    x, total = cached_jit(mod._solve_levels)(a, b, 0.9)
    print(events["loaded"], events["traced"], repr(np.asarray(x).tobytes().hex()))
    """
)


def _processes(script, env, n):
    outputs = []
    for _ in range(n):
        done = subprocess.run([sys.executable, str(script), __file__], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout.split())
    return outputs


def test_a_second_process_loads_the_program_whole(tmp_path):
    # Fresh processes, as successive `mesascope audit` runs: the first compiles and saves, the next neither
    # trace nor compile (the program calls LAPACK: loading it must not crash), and all get the same bits.
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "MESASCOPE_JAX_CACHE": str(tmp_path / "jax-cache")}
    (l1, t1, x1), (l2, t2, x2), (l3, t3, x3) = _processes(script, env, 3)
    assert (l1, t1) == ("0", "1") and (l2, t2) == ("1", "0") and (l3, t3) == ("1", "0")
    assert x1 == x2 == x3


def test_a_program_the_persistent_cache_supplied_is_compiled_again_to_be_saved(tmp_path):
    # As after an upgrade of mesascope: JAX's persistent cache holds the program, but no saved copy of it
    # exists. Saved as the persistent cache supplied it, it would load and then fail when run; it is
    # compiled once more, and the copy saved then loads in the next process and gives the same bits.
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "MESASCOPE_JAX_CACHE": str(tmp_path / "jax-cache")}
    (_, _, x1), = _processes(script, env, 1)
    for path in (tmp_path / "jax-cache" / "programs").glob("*.bin"):
        path.unlink()
    (l2, t2, x2), (l3, t3, x3) = _processes(script, env, 2)
    # Traced twice there: once for the persistent cache's copy, once more for the fresh compile.
    assert (l2, t2) == ("0", "2") and (l3, t3) == ("1", "0")
    assert x1 == x2 == x3


_TWO_SIGNATURES = textwrap.dedent(
    """
    import jax, numpy as np
    from mesascope.programs import cached_jit
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("t", sys.argv[1]); mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a, b = mod._inputs()
    fast = cached_jit(mod._solve_levels)
    x1 = fast(a, b, 0.9)[0]
    x2 = fast(np.asarray(a), np.asarray(b), 0.9)[0]  # another signature here, the same program to JAX
    print(np.asarray(x1).tobytes().hex(), np.asarray(x2).tobytes().hex())
    """
)


def test_no_copy_the_persistent_cache_supplied_is_saved_through_jaxs_memory(tmp_path):
    # Regression (found by the suite from a clean clone): with JAX's persistent cache warm and no saved
    # programs, the second signature's compile came from JAX's in-memory cache, holding the executable
    # the persistent cache had supplied for the first; saved, it failed in the next process with
    # "Function ... not found".
    script = tmp_path / "script.py"
    script.write_text(_TWO_SIGNATURES)
    env = {**os.environ, "MESASCOPE_JAX_CACHE": str(tmp_path / "jax-cache")}
    (first,) = _processes(script, env, 1)
    for path in (tmp_path / "jax-cache" / "programs").glob("*.bin"):
        path.unlink()
    outputs = _processes(script, env, 2)
    assert len(list((tmp_path / "jax-cache" / "programs").glob("*.bin"))) == 2
    assert outputs == [first, first]


def test_profile_counts_a_loaded_program_as_a_cache_hit(cache):
    from mesascope.experiments.profiling import StageTimer

    a, b = _inputs()
    cached_jit(_solve_levels)(a, b, 0.9)
    programs.clear_loaded()
    timer = StageTimer()
    fresh = cached_jit(_solve_levels)
    with timer.stage("load"):
        jax.block_until_ready(fresh(a, b, 0.9))
    stages = timer.as_dict()["stages"]["load"]
    assert (stages["compiled"], stages["from_cache"]) == (0, 1)
    assert PROGRAM_HIT_EVENT.startswith("/mesascope/")


def test_programs_of_other_code_versions_are_pruned_when_stale(cache):
    folder = cache / "programs"
    folder.mkdir(parents=True)
    old, recent = folder / "0123456789ab-f-old.bin", folder / "0123456789ab-f-recent.bin"
    # Temporary files of saves cut short (a killed helper process): an old one goes, a fresh one may be a
    # save in progress.
    old_tmp, fresh_tmp = folder / "tmpold.tmp", folder / "tmpfresh.tmp"
    for path in (old, recent, old_tmp, fresh_tmp):
        path.write_bytes(b"x")
    stale = os.stat(old).st_mtime - (programs.STALE_DAYS + 1) * 86400
    os.utime(old, (stale, stale))
    os.utime(old_tmp, (stale, stale))
    programs._prune.cache_clear()
    a, b = _inputs()
    cached_jit(_solve_levels)(a, b, 0.9)
    assert not old.exists() and recent.exists()
    assert not old_tmp.exists() and fresh_tmp.exists()
    assert len(list(folder.glob(programs._environment()[:12] + "-*.bin"))) == 1


def test_a_program_that_cannot_be_saved_leaves_no_half_written_file(cache, monkeypatch):
    def refuse(*_):
        raise OSError("disk full")

    monkeypatch.setattr(programs.os, "replace", refuse)
    a, b = _inputs()
    want = np.asarray(jax.jit(_solve_levels)(a, b, 0.9)[0])
    np.testing.assert_array_equal(np.asarray(cached_jit(_solve_levels)(a, b, 0.9)[0]), want)
    assert list((cache / "programs").iterdir()) == []
