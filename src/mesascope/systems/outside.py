"""Outside policies: agents trained elsewhere, loaded and checked so the exact audit can read them.

An outside policy maps a batch of observations float32 `[B, *obs_shape]`, laid out exactly as the
Gymnasium environments mesascope registers (`mesascope.adapters.ScenarioEnv`, i.e.
`mesascope.levels.grid.observe`), to action probabilities `[B, A]`. Three formats are read:

* `callable`: `module:function` (a module importable from the current folder or `PYTHONPATH`) or
  `path/to/file.py:function`; `function` may be a dotted attribute (`module:agent.probs`);
* `sb3`: a Stable-Baselines3 `.zip` saved by `model.save` (an actor-critic such as PPO or A2C gives its
  action distribution; a DQN its greedy action, one-hot), needing the optional extra `bench`;
* `onnx`: an ONNX file whose first input takes the observations (`[B, *obs_shape]` or flattened
  `[B, prod(obs_shape)]`) and whose first output is `[B, A]`, needing the optional extra `onnx`.

`parse_policy_spec` reads the `--policy` text, `load_policy` loads it (checking the shapes a file
declares), `check_policy_batch` calls it once on a small batch, and `outside_action_probs` evaluates it
on every state of every level, naming the first state whose probabilities are not a distribution.

Example:
    >>> parse_policy_spec("my_agent:probs").format
    'callable'
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mesascope.levels.grid import GridSpec, Level
from mesascope.measures.scores import system_action_probs
from mesascope.types import MesascopeError, error_line

__all__ = [
    "FILE_FORMATS",
    "OutsidePolicy",
    "OutsideRecord",
    "PolicySpec",
    "check_policy_batch",
    "file_sha256",
    "load_policy",
    "outside_action_probs",
    "parse_policy_spec",
    "sb3_layer_activations",
]

FILE_FORMATS = {".zip": "sb3", ".onnx": "onnx"}
"""File suffix -> policy format."""

_EXTRAS = {"sb3": ("stable_baselines3", "bench", "stable-baselines3"), "onnx": ("onnxruntime", "onnx", "onnxruntime")}
"""format -> (module it needs, the optional extra that installs it, its package name)."""

ROW_TOL = 1e-3
"""Tolerance on each row summing to 1 (the same as `system_action_probs`)."""

NEG_TOL = 1e-6
"""Entries below `-NEG_TOL` are negative probabilities."""

SPEC_HELP = "pass module:function, path/to/file.py:function, a stable-baselines3 .zip or an .onnx file"


@dataclass(frozen=True)
class PolicySpec:
    """An outside policy as named on the command line, resolved (nothing loaded yet).

    Attributes:
        text: The `--policy` text as given.
        format: "callable", "sb3" or "onnx".
        target: callable: `module:attribute` or `/absolute/file.py:attribute`; file formats: the file's
            absolute path.
        from_logits: The policy returns unnormalised logits; a softmax turns them into probabilities.
    """

    text: str
    format: str
    target: str
    from_logits: bool = False


@dataclass(frozen=True)
class OutsidePolicy:
    """A loaded outside policy.

    Attributes:
        spec: What was loaded.
        fn: The raw policy: float32 `[B, *obs_shape]` -> `[B, A]` probabilities (or logits), any array type
            `np.asarray` accepts.
        source: The file it was loaded from (the module's file for a callable), or None.
        sha256: That file's SHA-256, or None.
    """

    spec: PolicySpec
    fn: Callable[[np.ndarray], Any]
    source: str | None
    sha256: str | None

    @property
    def memo_key(self) -> tuple[Any, ...]:
        """Identifies the policy for the probabilities memo: a file by its content, a callable by identity.

        (The memo keeps the policy alive with its entry, so an identity is never reused while cached.)
        """
        return (self.spec.format, self.sha256 if self.spec.format != "callable" else id(self.fn), self.spec.from_logits)


@dataclass(frozen=True)
class OutsideRecord:
    """An outside policy as a run folder records it (run.json `config`, and `systems/seed-0.json`).

    Attributes:
        policy: The `--policy` text as given.
        format: "callable", "sb3" or "onnx".
        callable: callable only: `module:attribute` or `/absolute/file.py:attribute`, imported again by
            `mesascope audit RUN_DIR`.
        file: file formats only: the policy's copy in the run folder (`systems/seed-0.zip`), relative to it.
        source: Where the policy was loaded from (the callable's module file, or the original file).
        sha256: The SHA-256 of `source` when the run was written.
        from_logits: The policy returns logits (`--from-logits`).
    """

    policy: str
    format: str
    callable: str | None = None
    file: str | None = None
    source: str | None = None
    sha256: str | None = None
    from_logits: bool = False

    def spec_in(self, run_dir: Path) -> PolicySpec:
        """The `PolicySpec` that reloads this policy from the run folder `run_dir`.

        Raises:
            MesascopeError: if the record names neither a callable nor a file.
        """
        if self.format == "callable" and self.callable:
            return PolicySpec(self.policy, "callable", self.callable, self.from_logits)
        if self.file:
            return PolicySpec(self.policy, self.format, str((Path(run_dir) / self.file).resolve()), self.from_logits)
        raise MesascopeError(f"{run_dir}/run.json names an outside policy without a callable or a file; it cannot be reloaded")


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_policy_spec(text: str, *, from_logits: bool = False) -> PolicySpec:
    """Resolve a `--policy` text to a format and target (no import, no loading).

    An existing file is read by its suffix (`FILE_FORMATS`); otherwise `module:attribute` or
    `file.py:attribute` names a callable.

    Raises:
        MesascopeError: on an empty text, a missing file, a file of another kind, or a callable
            without `:attribute`.
    """
    text = str(text).strip()
    if not text:
        raise MesascopeError(f"--policy is empty; {SPEC_HELP}")
    path = Path(text)
    if path.is_file():
        fmt = FILE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise MesascopeError(
                f"--policy {text}: a {path.suffix or 'suffix-less'} file is not a policy mesascope reads; {SPEC_HELP} "
                f"(a Python file as {text}:function)"
            )
        return PolicySpec(text, fmt, str(path.resolve()), from_logits)
    if path.suffix.lower() in FILE_FORMATS:
        raise MesascopeError(f"--policy {text}: no such file")
    module, sep, attribute = text.rpartition(":")
    if not sep or not module or not attribute:
        raise MesascopeError(f"--policy {text!r} names no policy; {SPEC_HELP}")
    if module.endswith(".py"):
        file = Path(module)
        if not file.is_file():
            raise MesascopeError(f"--policy {text}: no such file {module}")
        return PolicySpec(text, "callable", f"{file.resolve()}:{attribute}", from_logits)
    return PolicySpec(text, "callable", f"{module}:{attribute}", from_logits)


def _require(fmt: str) -> Any:
    module, extra, package = _EXTRAS[fmt]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MesascopeError(
            f"reading a {'stable-baselines3 .zip' if fmt == 'sb3' else 'ONNX file'} needs {package}, which is not "
            f"installed; install the optional extra: pip install 'mesascope[{extra}]'"
        ) from None


@contextlib.contextmanager
def _current_folder_importable() -> Iterator[None]:
    """Put the current folder first on `sys.path` while importing (the `mesascope` script lacks it)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import_callable(spec: PolicySpec) -> tuple[Callable[..., Any], str | None]:
    module_name, _, attribute = spec.target.rpartition(":")
    try:
        if module_name.endswith(".py"):
            # A file: imported under a name derived from its path, so two files called agent.py never collide.
            name = "mesascope_outside_" + hashlib.sha1(module_name.encode()).hexdigest()[:12]
            module = sys.modules.get(name)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(name, module_name)
                assert loader_spec is not None and loader_spec.loader is not None
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[name] = module
                try:
                    with _current_folder_importable():
                        loader_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            with _current_folder_importable():
                module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise MesascopeError(
            f"--policy {spec.text}: cannot import {module_name!r} ({error_line(err, with_type=False)}); run from the "
            f"folder that holds it, add that folder to PYTHONPATH, or pass path/to/file.py:{attribute}"
        ) from None
    except Exception as err:  # noqa: BLE001 - any error while importing the user's module is theirs to fix
        raise MesascopeError(f"--policy {spec.text}: importing {module_name!r} failed: {error_line(err)}") from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None)))
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise MesascopeError(
                f"--policy {spec.text}: {module_name!r} has no attribute {attribute!r}; its callables: {shown or 'none'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise MesascopeError(
            f"--policy {spec.text}: {attribute} is of type {type(obj).__name__}, not a callable from observations to "
            "action probabilities"
        )
    return obj, getattr(module, "__file__", None)


def _obs_mismatch(spec: PolicySpec, declared: tuple[Any, ...], obs_shape: tuple[int, ...]) -> MesascopeError:
    return MesascopeError(
        f"--policy {spec.text} takes observations of shape {tuple(declared)}; this scenario observes {tuple(obs_shape)} "
        "(train it on the scenario's Gymnasium environment with the same --param values)"
    )


def _sb3_policy(spec: PolicySpec, grid: GridSpec) -> Any:
    """The torch policy of a stable-baselines3 `.zip`, rebuilt and checked against the scenario."""
    _require("sb3")
    from gymnasium import spaces
    from stable_baselines3.common.save_util import load_from_zip_file

    try:
        data, params, _ = load_from_zip_file(spec.target, device="cpu", print_system_info=False)
        policy_class = data["policy_class"]
        obs_space, act_space = data["observation_space"], data["action_space"]
    except Exception as err:  # noqa: BLE001 - whatever SB3 says, the file is not a policy it saved
        raise MesascopeError(
            f"--policy {spec.text} is not a stable-baselines3 policy (a .zip written by model.save): {error_line(err)}"
        ) from None
    if not isinstance(act_space, spaces.Discrete) or int(act_space.n) != grid.n_actions:
        raise MesascopeError(
            f"--policy {spec.text} acts in {act_space}; this scenario's actions are Discrete({grid.n_actions})"
        )
    if tuple(getattr(obs_space, "shape", None) or ()) != tuple(grid.obs_shape):
        raise _obs_mismatch(spec, tuple(getattr(obs_space, "shape", None) or ()), grid.obs_shape)
    try:
        policy = policy_class(obs_space, act_space, lambda _: 0.0, **data.get("policy_kwargs", {}))
        policy.load_state_dict(params["policy"])
    except Exception as err:  # noqa: BLE001
        raise MesascopeError(f"--policy {spec.text}: its policy network could not be rebuilt: {error_line(err)}") from None
    policy.set_training_mode(False)
    return policy


def _load_sb3(spec: PolicySpec, grid: GridSpec) -> Callable[[np.ndarray], np.ndarray]:
    policy = _sb3_policy(spec, grid)  # first: says which extra to install when SB3 (and torch) are missing
    import torch

    def probs(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=torch.float32)
            if hasattr(policy, "get_distribution"):  # actor-critics (PPO, A2C): the action distribution
                return policy.get_distribution(x).distribution.probs.numpy()
            # Value-based (DQN): the greedy action, as SB3's `predict(deterministic=True)` takes it.
            q = policy.q_net(x).numpy()
            return np.eye(q.shape[-1], dtype=np.float32)[q.argmax(-1)]

    if not hasattr(policy, "get_distribution") and not hasattr(policy, "q_net"):
        raise MesascopeError(
            f"--policy {spec.text}: {type(policy).__name__} has neither an action distribution nor a Q-network; "
            "mesascope reads actor-critic (PPO, A2C) and DQN policies"
        )
    return probs


def sb3_layer_activations(spec: PolicySpec, grid: GridSpec) -> tuple[tuple[str, ...], Callable[[np.ndarray], dict[str, np.ndarray]]]:
    """Every layer of an SB3 actor-critic's action path, read with torch forward hooks.

    The layers are the leaf modules that run when the policy computes its action distribution (the
    features extractor, the actor's part of the MLP, the action head), named by their module path, in
    the order they run; each is flattened to `[B, D]`.

    Returns:
        `(names, activations)`, `activations(obs [B, *obs_shape]) -> {name: float32 [B, D]}`.

    Raises:
        MesascopeError: if the file is not such a policy (DQN policies have no action distribution).
    """
    policy = _sb3_policy(spec, grid)
    import torch

    if not hasattr(policy, "get_distribution"):
        raise MesascopeError(f"--policy {spec.text}: probes read actor-critic (PPO, A2C) policies, whose action "
                             "distribution is a chain of layers")
    leaves = {name: m for name, m in policy.named_modules() if name and not list(m.children())}
    seen: dict[str, np.ndarray] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(
        name, out.detach().reshape(out.shape[0], -1).numpy().astype(np.float32))) for name, m in leaves.items()]

    def activations(obs: np.ndarray) -> dict[str, np.ndarray]:
        seen.clear()
        with torch.no_grad():
            policy.get_distribution(torch.as_tensor(obs, dtype=torch.float32))
        return dict(seen)

    names = tuple(activations(np.zeros((1, *grid.obs_shape), np.float32)))
    del hooks  # the hooks stay registered for the policy's lifetime; the handles are not needed
    return names, activations


def _load_onnx(spec: PolicySpec, grid: GridSpec) -> Callable[[np.ndarray], np.ndarray]:
    ort = _require("onnx")
    try:
        session = ort.InferenceSession(spec.target, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001
        raise MesascopeError(f"--policy {spec.text} is not an ONNX model onnxruntime can run: {error_line(err)}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise MesascopeError(f"--policy {spec.text} has {len(inputs)} inputs ({names}); a policy takes one, the observations")
    declared = tuple(inputs[0].shape[1:])
    flat = int(np.prod(grid.obs_shape))

    def fits(want: tuple[int, ...]) -> bool:  # symbolic (str or None) dimensions fit anything
        return len(declared) == len(want) and all(not isinstance(d, int) or d == w for d, w in zip(declared, want))

    if fits(tuple(grid.obs_shape)):
        flatten = False
    elif fits((flat,)):
        flatten = True
    else:
        raise _obs_mismatch(spec, declared, grid.obs_shape)
    name = inputs[0].name

    def probs(obs: np.ndarray) -> np.ndarray:
        x = obs.reshape(obs.shape[0], -1) if flatten else obs
        return session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]

    return probs


_LOADED: dict[tuple[Any, ...], OutsidePolicy] = {}
"""Loaded file policies by (format, content hash, from_logits): `mesascope audit-policy` checks a policy,
then the audit loads the copy in the run folder; both get the same object (and the same memo entries)."""


def load_policy(spec: PolicySpec, grid: GridSpec) -> OutsidePolicy:
    """Load an outside policy and check what its file declares against the scenario.

    Args:
        spec: From `parse_policy_spec`.
        grid: The scenario's grid spec (observation shape, action count).

    Raises:
        MesascopeError: if the module or attribute cannot be imported, the optional extra a file format
            needs is missing, the file is not a policy, or its declared observation or action shapes
            differ from the scenario's.
    """
    if spec.format == "callable":
        fn, source = _import_callable(spec)
        return OutsidePolicy(spec, fn, source, file_sha256(source) if source and Path(source).is_file() else None)
    if spec.format not in _EXTRAS:
        raise MesascopeError(f"unknown policy format {spec.format!r}; choose one of: callable, {', '.join(_EXTRAS)}")
    if not Path(spec.target).is_file():
        raise MesascopeError(f"--policy {spec.text}: the policy file {spec.target} is missing")
    digest = file_sha256(spec.target)
    key = (spec.format, digest, spec.from_logits, grid.obs_shape, grid.n_actions)
    if key not in _LOADED:
        fn = _load_sb3(spec, grid) if spec.format == "sb3" else _load_onnx(spec, grid)
        _LOADED[key] = OutsidePolicy(spec, fn, spec.target, digest)
    return _LOADED[key]


def _where(grid: GridSpec, where: str, index: int) -> str:
    """'deploy level 3, state 41 (agent at row 2, column 1)' for a flat state index over levels."""
    level, state = divmod(index, grid.n_states)
    if state == grid.n_states - 1:
        return f"{where} level {level}, state {state} (the terminal state; its observation is all zeros)"
    cell = state // ((2**grid.n_tracked) * (grid.max_inventory + 1))
    row, col = divmod(cell, grid.width)
    return f"{where} level {level}, state {state} (agent at row {row}, column {col})"


def _rows(policy: OutsidePolicy, grid: GridSpec, obs: np.ndarray, first: int, where: str) -> np.ndarray:
    """Call the policy on one batch and check it: float32 `[B, A]` probabilities, renormalised.

    `first` is the flat index (over `where`'s levels and states) of the batch's first observation, so
    an error can name the level and state.
    """
    try:
        raw = policy.fn(obs)
    except Exception as err:  # noqa: BLE001 - the user's policy failed; say so in one line
        raise MesascopeError(
            f"--policy {policy.spec.text} raised {error_line(err)} when called on observations float32 {list(obs.shape)}"
        ) from None
    try:
        out = np.asarray(raw, np.float64)
    except Exception as err:  # noqa: BLE001
        raise MesascopeError(
            f"--policy {policy.spec.text} returned a {type(raw).__name__} that is not an array ({error_line(err)}); "
            "return numpy, JAX or CPU torch arrays"
        ) from None
    want = (obs.shape[0], grid.n_actions)
    if out.shape != want:
        raise MesascopeError(
            f"--policy {policy.spec.text} returned shape {list(out.shape)} for observations {list(obs.shape)}; expected "
            f"[B, A] = {list(want)} (one row of {grid.n_actions} action probabilities per observation)"
        )
    bad = ~np.isfinite(out).all(-1)
    if bad.any():
        i = int(bad.argmax())
        raise MesascopeError(
            f"--policy {policy.spec.text} returned non-finite values {out[i].tolist()} at {_where(grid, where, first + i)}"
        )
    if policy.spec.from_logits:
        out = np.exp(out - out.max(-1, keepdims=True))
    else:
        sums = out.sum(-1)
        bad = (np.abs(sums - 1.0) > ROW_TOL) | (out < -NEG_TOL).any(-1)
        if bad.any():
            i = int(bad.argmax())
            raise MesascopeError(
                f"--policy {policy.spec.text}'s action probabilities at {_where(grid, where, first + i)} are "
                f"{np.round(out[i], 6).tolist()} (sum {sums[i]:.6g}): not a distribution (non-negative, summing to 1 "
                f"within {ROW_TOL}); pass --from-logits if it returns logits"
            )
    # Rows within tolerance are renormalised: the exact solver needs distributions.
    out = np.clip(out, 0.0, None)
    return (out / out.sum(-1, keepdims=True)).astype(np.float32)


def check_policy_batch(policy: OutsidePolicy, grid: GridSpec, obs: np.ndarray, where: str = "audited") -> np.ndarray:
    """Call the policy once on a batch `[B, *obs_shape]` and check its output (shape, finite, distributions).

    Returns:
        float32 `[B, A]` action probabilities.

    Raises:
        MesascopeError: naming what was wrong (the policy's own error, the shape, or the first bad row).
    """
    obs = np.asarray(obs, np.float32)
    if obs.shape[1:] != tuple(grid.obs_shape):
        raise MesascopeError(f"observations have shape {list(obs.shape)}; expected [B, *{list(grid.obs_shape)}]")
    return _rows(policy, grid, obs, 0, where)


_MEMO: OrderedDict[tuple[Any, ...], tuple[OutsidePolicy, jax.Array]] = OrderedDict()
_MEMO_SIZE = 8


def _levels_digest(levels: Level) -> str:
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(levels):
        arr = np.asarray(leaf)
        digest.update(f"{arr.dtype}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def outside_action_probs(grid: GridSpec, levels: Level, policy: OutsidePolicy, *, where: str = "audited") -> jax.Array:
    """The outside policy's action probabilities on every state of every level: float32 `[L, S, A]`.

    The observations are those of `system_action_probs` (the audit's, the Gymnasium environment's). Each
    batch is checked as it comes back, so an error names the first bad state: its level (index into
    `levels`), its tabular state index and the agent's square. Results are memoised by the levels'
    content (a few entries): checking a policy before a run and auditing it calls it once per state.

    Args:
        grid: The scenario's grid spec.
        levels: `Level` batched `[L]`.
        policy: From `load_policy`.
        where: How errors name the levels ("train", "deploy", "audited").

    Raises:
        MesascopeError: if the policy raises, returns the wrong shape, non-finite values or rows that are
            not distributions.
    """
    key = (policy.memo_key, _levels_digest(levels))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key][1]
    seen = 0

    def checked(obs: jax.Array) -> jax.Array:
        nonlocal seen
        batch = np.asarray(obs, np.float32)
        rows = _rows(policy, grid, batch, seen, where)
        seen += batch.shape[0]
        return jnp.asarray(rows)

    probs = system_action_probs(grid, levels, checked)
    _MEMO[key] = (policy, probs)
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return probs
