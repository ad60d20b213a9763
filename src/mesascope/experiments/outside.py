"""`mesascope audit-policy`: a policy trained elsewhere, audited exactly like mesascope's own systems.

`plan_policy_audit` resolves the scenario, loads the policy (`mesascope.systems.outside`) and evaluates
it on every state of every level the audit will read, **before anything is written**: an import path
that does not resolve, a file that is not a policy, wrong shapes or rows that are not distributions
(naming the first bad level and state) stop it with one `MesascopeError`. `audit_policy` then writes
a normal run folder:

* `run.json`: kind gridworld, `optimizer: "outside"`, `preset: "outside"`, seed 0, the policy
  (`policy`, and `config`: its `OutsideRecord`), the scenario's parameters and the thresholds;
* `systems/seed-0.json` (the record) and, for a `.zip` or `.onnx` policy, its copy `systems/seed-0.zip`
  or `.onnx`, so `mesascope audit RUN_DIR` re-audits the very file that was audited;
* `audit.json`, pictures and graph drawings from the same `audit_run` as every run.

The policy runs once per audited state: the check's probabilities are memoised and the audit reuses them.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from mesascope import __version__
from mesascope.experiments.audit import AuditConfig, ProgressFn, audit_run
from mesascope.experiments.profiling import NULL_TIMER, StageTimer
from mesascope.experiments.run import RunEvents, run_lifecycle
from mesascope.levels.grid import Level
from mesascope.levels.tabular import observe_all
from mesascope.properties import Thresholds
from mesascope.scenarios import get_scenario
from mesascope.scenarios.study import jsonable
from mesascope.systems.outside import (
    FILE_FORMATS,
    OutsidePolicy,
    OutsideRecord,
    check_policy_batch,
    load_policy,
    outside_action_probs,
    parse_policy_spec,
)
from mesascope.types import MesascopeError

__all__ = ["PolicyPlan", "audit_policy", "audited_levels", "default_out", "plan_policy_audit"]

def _noop(stage: str, frac: float) -> None:
    return None


PROBE_BATCH = 3
"""Observations in the first call to a policy (3, so a transposed `[A, B]` answer cannot pass as `[B, A]`)."""


@dataclass(frozen=True)
class PolicyPlan:
    """An outside policy's audit, resolved and checked before anything is written.

    Attributes:
        scenario_id: The registered id.
        scenario: The scenario built with `params`.
        params: The scenario parameters the user gave, checked (run.json `scenario_params`).
        policy: The loaded policy, already evaluated without error on every audited state.
        audit: The audited level counts and key.
    """

    scenario_id: str
    scenario: Any
    params: Mapping[str, Any]
    policy: OutsidePolicy
    audit: AuditConfig

    def record(self) -> OutsideRecord:
        """run.json `config`: what the policy is and where the run folder keeps it."""
        spec, policy = self.policy.spec, self.policy
        if spec.format == "callable":
            return OutsideRecord(spec.text, "callable", callable=spec.target, source=policy.source, sha256=policy.sha256,
                                 from_logits=spec.from_logits)
        return OutsideRecord(spec.text, spec.format, file=f"systems/seed-0{Path(spec.target).suffix.lower()}",
                             source=spec.target, sha256=policy.sha256, from_logits=spec.from_logits)

    def meta(self, thresholds: Thresholds) -> dict[str, Any]:
        """run.json."""
        return jsonable({
            "mesascope_version": __version__,
            "kind": "gridworld",
            "scenario": self.scenario_id,
            "scenario_params": dict(self.params),
            "params": dict(self.scenario.params),
            "preset": "outside",
            "optimizer": "outside",
            "policy": self.policy.spec.text,
            "seeds": [0],
            "config": asdict(self.record()),
            "thresholds": thresholds.to_dict(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })


def audited_levels(scenario: Any, audit: AuditConfig) -> dict[str, Level]:
    """The levels `audit_systems` will audit, per split: `{"train": [n_train], "deploy": [n_deploy]}`.

    The same keys and calls as `mesascope.experiments.audit.audit_systems` (tested: checking a policy
    and auditing it call the policy once per state).
    """
    key_train, key_deploy = jax.random.split(jax.random.key(audit.seed))
    return {"train": scenario.sample_levels(key_train, audit.n_train, "train"),
            "deploy": scenario.sample_levels(key_deploy, audit.n_deploy, "deploy")}


def plan_policy_audit(
    scenario_id: str,
    policy: str,
    *,
    scenario_params: Mapping[str, Any] | None = None,
    from_logits: bool = False,
    audit: AuditConfig = AuditConfig(),
) -> PolicyPlan:
    """Resolve the scenario and the policy, and evaluate the policy on every audited state (writes nothing).

    Args:
        scenario_id: A gridworld scenario id.
        policy: `module:function`, `path/to/file.py:function`, a stable-baselines3 `.zip` or an `.onnx` file.
        scenario_params: Scenario parameters (as `mesascope run --param`).
        from_logits: The policy returns logits.
        audit: The audited level counts and key.

    Raises:
        MesascopeError: on an unknown scenario or parameter, a study, a level count below 1, a policy
            that cannot be loaded, or one whose output on some audited state is not a distribution
            over the scenario's actions (naming the split, level and state).
    """
    if audit.n_train < 1 or audit.n_deploy < 1:
        raise MesascopeError(f"--audit-levels must be at least 1; got {min(audit.n_train, audit.n_deploy)}")
    scenario = get_scenario(scenario_id, **dict(scenario_params or {}))
    if scenario.kind != "gridworld":
        raise MesascopeError(f"{scenario_id} is a {scenario.kind}: it has no gridworld levels to audit a policy on; "
                             "choose a gridworld scenario (`mesascope list`)")
    given = {k: scenario.params[k] for k in (scenario_params or {})}
    grid = scenario.spec
    loaded = load_policy(parse_policy_spec(policy, from_logits=from_logits), grid)
    levels = audited_levels(scenario, audit)
    first = jax.tree_util.tree_map(lambda x: x[0], levels["train"])
    # One small batch first: a wrong shape or a crash is reported on 3 observations, not 20,000.
    check_policy_batch(loaded, grid, np.asarray(observe_all(grid, first)[:PROBE_BATCH]), where="train")
    for split, lv in levels.items():
        outside_action_probs(grid, lv, loaded, where=split)
    return PolicyPlan(scenario_id, scenario, given, loaded, audit)


def default_out(scenario_id: str, policy: str) -> Path:
    """`runs/<scenario>-outside-<name>`, the name being the function's or the file's."""
    text = policy.rstrip("/")
    if Path(text).suffix.lower() in FILE_FORMATS:
        name = Path(text).stem
    else:
        name = text.rpartition(":")[2] or text
    return Path("runs") / f"{scenario_id}-outside-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-') or 'policy'}"


def audit_policy(
    plan: PolicyPlan,
    out: Path,
    *,
    thresholds: Thresholds = Thresholds(),
    progress: ProgressFn = _noop,
    events: RunEvents | None = None,
    timer: StageTimer = NULL_TIMER,
) -> dict[str, Any]:
    """Write the run folder of a checked outside policy and audit it (the same `audit_run` as every run).

    `events` hears "started", "trained" (the policy is in `systems/`), "audited", then "complete" or
    "failed", as for `mesascope.experiments.run.run`.

    Returns:
        The audit as a dict (also in `out / "audit.json"`).

    Raises:
        MesascopeError: if `out` already holds a run.
    """
    out = Path(out)
    meta = plan.meta(thresholds)

    def produce(emit: RunEvents) -> dict[str, Any]:
        record = plan.record()
        (out / "systems").mkdir(parents=True, exist_ok=True)
        if record.file:
            shutil.copyfile(plan.policy.spec.target, out / record.file)
        (out / "systems" / "seed-0.json").write_text(json.dumps(asdict(record), indent=2) + "\n")
        emit("trained", out, meta)
        return audit_run(out, plan.audit, progress, thresholds, timer)

    return run_lifecycle(out, meta, events, produce)
