"""A second, independent reading of every verdict label against the properties (SPEC.md section 7).

`mesascope.verdicts.schools` decides each label by walking a school's properties; this module does not
share that code. It reads an audit's JSON block (`audit_entry`) and checks, for every label, that the
property defining it is in the state the label claims: "capability robustness failure" needs
capability robustness to fail (and outer alignment to hold), Ngo's "outer alignment failure" needs
robustness to hold, a path that "breaks" needs a failing node below the root, and so on. A label that
contradicts its property is a bug in mesascope; the audit records the result as an invariant
(`invariants.labels_established`) and the tests walk every golden case and every real run with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["label_contradictions"]

_FAILURE_FREE = ("aligned", "undetermined", "not applicable", "robustly aligned")


def _state(props: Mapping[str, Any], name: str) -> str:
    return props.get(name, {}).get("state", "undefined")


def _need(problems: list[str], school: str, label: str, props: Mapping[str, Any], name: str, *states: str) -> None:
    got = _state(props, name)
    if got not in states:
        problems.append(f"{school}: '{label}' needs {name} {' or '.join(states)}, but it {got}")


def label_contradictions(entry: Mapping[str, Any]) -> list[str]:
    """Every verdict label in one system's audit block that contradicts the properties defining it.

    Args:
        entry: A system's block: `properties`, `verdicts` and `graphs` as `audit_entry` writes them.

    Returns:
        One line per contradiction (empty when every label is established by its property).
    """
    props, verdicts = entry.get("properties", {}), entry.get("verdicts", {})
    problems: list[str] = []
    behaved = _state(props, "behavioral_alignment")
    for school, verdict in verdicts.items():
        label = verdict.get("label", "")
        if label == "aligned" and behaved != "holds":
            problems.append(f"{school}: 'aligned' but behavioral alignment {behaved}")
        if school != "pseudo_alignment" and label not in _FAILURE_FREE and behaved != "fails":
            problems.append(f"{school}: failure label '{label}' but behavioral alignment {behaved}")

    def check(school: str, label: str) -> None:
        if school == "hubinger":
            if label == "outer alignment failure":
                _need(problems, school, label, props, "outer_alignment_hubinger", "fails")
            elif label == "capability robustness failure":
                _need(problems, school, label, props, "outer_alignment_hubinger", "holds")
                _need(problems, school, label, props, "capability_robustness", "fails")
            elif label.startswith("objective robustness failure"):
                _need(problems, school, label, props, "outer_alignment_hubinger", "holds")
                _need(problems, school, label, props, "capability_robustness", "holds")
                _need(problems, school, label, props, "objective_robustness_hubinger", "fails")
                if "inner alignment failure" in label:
                    _need(problems, school, label, props, "inner_alignment", "fails")
                    kind = label.split("inner alignment failure: ", 1)[-1].rstrip(")") if ": " in label else "undetermined"
                    got = verdicts.get("pseudo_alignment", {}).get("label")
                    if got != kind:
                        problems.append(f"{school}: names pseudo-alignment '{kind}' but the pseudo-alignment verdict is '{got}'")
        elif school in ("wentworth", "wentworth_before_training"):
            outer = "outer_alignment_wentworth" + ("_before_training" if school.endswith("training") else "")
            if label == "outer alignment failure":
                _need(problems, school, label, props, outer, "fails")
            elif label == "inner failure (imperfect optimization)":
                _need(problems, school, label, props, outer, "holds")
                _need(problems, school, label, props, "training_optimality", "fails")
        elif school == "shah":
            if label == "outer alignment failure":
                _need(problems, school, label, props, "outer_alignment_shah", "fails")
            elif label in ("robustness failure", "inner alignment failure"):
                _need(problems, school, label, props, "outer_alignment_shah", "holds")
                _need(problems, school, label, props, "robustness", "fails")
                if label == "inner alignment failure":
                    _need(problems, school, label, props, "inner_alignment", "fails")
        elif school == "ngo":
            if label == "outer alignment failure":
                _need(problems, school, label, props, "robustness", "holds")
            elif label == "inner alignment failure":
                _need(problems, school, label, props, "robustness", "fails")
                _need(problems, school, label, props, "inner_robustness", "holds")
            elif label == "robustness failure":
                _need(problems, school, label, props, "robustness", "fails")
                if _state(props, "inner_robustness") == "holds":
                    problems.append(f"{school}: 'robustness failure' but the mesa-objective rates the behaviour highly")
        elif school == "demski" and "path" in label:
            broken = {p["name"] for p in entry.get("graphs", {}).get("revised", {}).get("broken_paths", [])}
            named = {"objective-focused", "generalization-focused"} if label == "both paths break" else {label.removesuffix(" path breaks")}
            for path in named - broken:
                problems.append(f"{school}: says the {path} path breaks, but the revised graph has no failing node below the root on it")
        elif school == "pseudo_alignment":
            if label == "robustly aligned":
                _need(problems, school, label, props, "inner_alignment", "holds")
            elif label.endswith("pseudo-alignment"):
                _need(problems, school, label, props, "inner_alignment", "fails")

    for school, verdict in verdicts.items():
        check(school, verdict.get("label", ""))
    return problems
