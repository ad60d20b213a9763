"""What the registry holds, in words: `mesascope show ID` (and the docs' scenario pages)."""

from __future__ import annotations

from typing import Any

from mesascope.experiments.train import Trainer, get_trainer
from mesascope.params import describe_all
from mesascope.scenarios import get_scenario

__all__ = ["describe_scenario", "reproduce_command"]


def _setting_value(trainer: Trainer, config: Any, name: str) -> Any:
    """A setting's value in one preset's configuration (network settings live in `config.network`)."""
    if hasattr(config, name):
        return getattr(config, name)
    network = getattr(config, "network", None)
    return getattr(network, {"network_kind": "kind"}.get(name, name), "?")


def reproduce_command(scenario_id: str, spec: Any, kind: str) -> str:
    """The `mesascope run` command line equivalent to reproducing a finding with `spec` (a `RunSpec`)."""
    cmd = f"mesascope run {scenario_id} --seeds {spec.seeds} --preset {spec.preset}"
    if kind == "gridworld":
        cmd += f" --audit-levels {spec.audit_levels}"
    cmd += "".join(f" --param {k}={v}" for k, v in spec.params.items())
    return cmd + "".join(f" --set {k}={v}" for k, v in spec.settings.items())


def describe_scenario(scenario_id: str) -> list[str]:
    """`mesascope show ID`: the scenario in full, one printable line (or paragraph) per item.

    Raises:
        MesascopeError: on an unknown id (naming the closest).
    """
    sc = get_scenario(scenario_id)
    lines = [f"[bold]{scenario_id}[/] ({sc.kind}; base optimizer: {sc.optimizer})", "", sc.description, ""]
    if sc.kind == "gridworld":
        lines.append(f"[bold]objectives[/]: base {dict(sc.base_objective.weights)}; intended {dict(sc.intended_objective.weights)}")
        lines.append("[bold]candidate goals[/]: " + ", ".join(f"{g.name} {dict(g.weights)}" for g in sc.candidate_goals))
        for m in sc.measures:
            lines.append(f"[bold]measure[/] {m.name}: {m.description}")
    lines += ["", "[bold]parameters[/] (--param NAME=VALUE):"]
    lines += [f"  {line}" for line in describe_all(sc.param_specs)] or ["  none"]
    if sc.kind == "study":
        lines += ["", "[bold]training settings[/] (--set NAME=VALUE; preset values):"]
        for p in sc.settings:
            by_preset = ", ".join(f"{name} {sc.presets[name].get(p.name, p.default)}" for name in sc.presets)
            lines.append(f"  {p.name} ({p.describe()}; {by_preset}): {p.help}")
    else:
        trainer = get_trainer(sc.optimizer)
        lines += ["", f"[bold]training settings[/] of {sc.optimizer} (--set NAME=VALUE; preset values):"]
        for p in trainer.settings:
            by_preset = ", ".join(f"{name} {_setting_value(trainer, cfg, p.name)}" for name, cfg in trainer.presets.items())
            lines.append(f"  {p.name} ({p.describe()}; {by_preset}): {p.help}")
    lines += ["", "[bold]expected finding[/]:", sc.expected_finding, ""]
    if sc.finding is not None:
        for flag, spec in (("", sc.finding.fast), (" --full", sc.finding.full)):
            if spec is not None:
                lines.append(f"[bold]reproduce[/]: mesascope reproduce{flag} {scenario_id}  (runs: "
                             f"{reproduce_command(scenario_id, spec, sc.kind)})")
    return lines
