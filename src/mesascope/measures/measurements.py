"""One system's numbers, as every property and verdict reads them (SPEC.md sections 2, 5 and 7).

`Measurements` is scenario-agnostic: a gridworld PPO audit, an explicit mesa-optimizer, an evolution
scenario or a supervised learner all fill it in, and `mesascope.properties` / `mesascope.verdicts`
read nothing else. `None` always means "not applicable or not measured", never zero and never failure:
every mesa-only field is `None` for a system without a mesa-objective, and the properties that read it
come out *undefined* (seed `000_a6e1b8d5e803b8fe.txt`).

Conventions:

* `J` is the normalised score of SPEC.md section 2 (1 = optimal, 0 = uniform random), averaged over the
  audited levels of a split (`train` = levels from `D_train`, `deploy` = levels from `D_deploy`) that
  are *informative* for its objective. `estimates` holds, for any float field that is such a mean, its
  `Estimate`: the informative-level count and the 95% bootstrap interval over levels (SPEC.md section 2).
  A float field without an estimate is a number that is not a mean over sampled levels (a closed form in
  a study); it has no count and no interval.
* EPIC distances are the published `sqrt((1 - rho) / 2)` in [0, 1] (SPEC.md section 3).
* "base-optimal policies" are all policies taking only actions within tolerance of `max_a Q*_base`; a
  "worst J over base-optimal policies" is the exact minimum over that set (SPEC.md section 2).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesascope.measures.estimates import Estimate
from mesascope.types import MesascopeError

__all__ = ["MeasurementsError", "Measurements", "Witness"]


class MeasurementsError(MesascopeError, ValueError):
    """A `Measurements` (or its dict form) is malformed; the message names the field."""


@dataclass(frozen=True)
class Witness:
    """A candidate training-optimal policy tested for Wentworth's outer alignment (seed 001).

    Attributes:
        name: Short id, e.g. `"system"` (the trained system itself) or `"pursue:corner"` (a policy
            optimal for the candidate goal `corner`).
        description: One sentence saying what the policy does.
        train_gap: Its training-optimality gap under the base objective, `1 - J_base(pi; D_train)`.
        j_intended_deploy: `J_int(pi; D_deploy)`.
        j_base_deploy: `J_base(pi; D_deploy)`, if measured.
        trained: True for the trained system itself. The others exist without training (exact optimal
            policies, each candidate goal's pursuer): Wentworth's verdict is decided before training over
            them alone and after training with the trained system added (SPEC.md section 7).
        train_gap_estimate: The gap's `Estimate` (informative levels, interval), if it is a level mean.
        j_intended_deploy_estimate: Likewise for `j_intended_deploy`.
    """

    name: str
    description: str
    train_gap: float
    j_intended_deploy: float
    j_base_deploy: float | None = None
    trained: bool = False
    train_gap_estimate: Estimate | None = None
    j_intended_deploy_estimate: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = dataclasses.asdict(self)
        for name in ("train_gap_estimate", "j_intended_deploy_estimate"):
            est = getattr(self, name)
            out[name] = None if est is None else est.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Witness:
        """Inverse of `to_dict`."""
        data = dict(data)
        for name in ("train_gap_estimate", "j_intended_deploy_estimate"):
            if data.get(name) is not None:
                data[name] = Estimate.from_dict(data[name])
        try:
            return cls(**data)
        except TypeError as err:
            raise MeasurementsError(f"bad witness {data!r}: {err}") from None

    def gap(self) -> Estimate:
        """The training gap as an `Estimate` (exact when it has none)."""
        return self.train_gap_estimate or Estimate.exact(self.train_gap)

    def j_int(self) -> Estimate:
        """`J_int(pi; D_deploy)` as an `Estimate` (exact when it has none)."""
        return self.j_intended_deploy_estimate or Estimate.exact(self.j_intended_deploy)


_FLOATS = (
    "j_base_train",
    "j_base_deploy",
    "j_intended_train",
    "j_intended_deploy",
    "j_behavioral_train",
    "j_behavioral_deploy",
    "worst_j_intended_base_optimal_deploy",
    "worst_j_intended_base_optimal_train",
    "training_optimality_gap",
    "worst_j_intended_behavioral_optimal_deploy",
    "epic_behavioral_base_deploy",
    "epic_behavioral_intended_deploy",
    "epic_behavioral_mesa_deploy",
    "epic_base_intended_deploy",
    "epic_mesa_base_train",
    "epic_mesa_base_deploy",
    "epic_mesa_intended_deploy",
    "j_mesa_train",
    "j_mesa_deploy",
    "behavioral_fit",
)


@dataclass(frozen=True)
class Measurements:
    """Everything SPEC.md sections 5 and 7 need about one system; `None` = not applicable / not measured.

    Attributes:
        system: Id of the system within its run, e.g. `"seed-0"`.
        has_mesa_objective: True if the system has an explicit, readable mesa-objective (then the mesa
            fields below are filled in; otherwise they must stay `None`).
        j_base_train: `J_base(pi; D_train)`.
        j_base_deploy: `J_base(pi; D_deploy)` (robustness).
        j_intended_train: `J_int(pi; D_train)`.
        j_intended_deploy: `J_int(pi; D_deploy)` (behavioral alignment).
        j_behavioral_train: `J_beh(pi; D_train)`, `beh` = the behavioral objective named below.
        j_behavioral_deploy: `J_beh(pi; D_deploy)` (capability robustness).
        behavioral_objective: Which objective `beh` is, e.g. `"goal:corner"` or `"irl"` (SPEC.md section
            4: the best candidate goal that explains the behaviour, else the IRL reward if it explains);
            `None` when nothing explains it or it was not measured.
        behavioral_fit: How well `beh` explains the behaviour: its log-likelihood gain over the uniform
            policy in nats per step (for the best candidate when nothing explains).
        behavioral_explained: True when some candidate goal or the IRL reward explains the behaviour
            (fit >= kappa), False when none does (the behaviour is *unexplained* and the properties
            that need a behavioral objective are undefined), None when not measured.
        worst_j_intended_base_optimal_deploy: min of `J_int` over all policies optimal for the base
            objective on deployment levels (Hubinger's infinite-data outer alignment).
        worst_j_intended_base_optimal_train: the same minimum on training levels (Demski's
            on-distribution alignment, Shah's outer alignment).
        training_optimality_gap: How far the system is from training-optimal, `1 - J_base(pi; D_train)`
            (Wentworth's imperfect optimization when > delta).
        worst_j_intended_behavioral_optimal_deploy: min of `J_int` over policies optimal for the
            behavioral objective on deployment levels (Hubinger's intent alignment).
        epic_behavioral_base_deploy: `EPIC(beh, base)` on deployment coverage (Hubinger's objective
            robustness).
        epic_behavioral_intended_deploy: `EPIC(beh, int)` on deployment coverage.
        epic_behavioral_mesa_deploy: `EPIC(beh, bridge(g))` on deployment coverage (mesa only): whether
            the behavioral objective is the bridged mesa-objective (an and-or graph edge condition).
        epic_base_intended_deploy: `EPIC(base, int)` on deployment coverage (context).
        epic_mesa_base_train: `EPIC(bridge(g), base)` on training coverage (mesa only).
        epic_mesa_base_deploy: `EPIC(bridge(g), base)` on deployment coverage (inner alignment).
        epic_mesa_intended_deploy: `EPIC(bridge(g), int)` on deployment coverage (Demski's intent
            alignment).
        j_mesa_train: `J_g(pi; D_train)`, the system's score under its own bridged mesa-objective.
        j_mesa_deploy: `J_g(pi; D_deploy)` (inner robustness; Ngo's "it chose that behaviour").
        mesa_uses_deploy_feature: True if the mesa-objective puts weight on a feature that tells
            training from deployment (deceptive pseudo-alignment); `None` if unknown or no mesa.
        mesa_points_to_base: True if the mesa-objective is a pointer to the system's model of the base
            objective (corrigible pseudo-alignment); `None` if unknown or no mesa.
        witnesses: Candidate training-optimal policies tested for Wentworth's outer alignment, each
            with its training gap and deployment `J_int`.
        estimates: Field name -> `Estimate` for the float fields that are means over audited levels.
        notes: Free-form provenance, e.g. `{"behavioral_objective": "best candidate goal ..."}`.
    """

    system: str = "system"
    has_mesa_objective: bool = False
    j_base_train: float | None = None
    j_base_deploy: float | None = None
    j_intended_train: float | None = None
    j_intended_deploy: float | None = None
    j_behavioral_train: float | None = None
    j_behavioral_deploy: float | None = None
    behavioral_objective: str | None = None
    behavioral_fit: float | None = None
    behavioral_explained: bool | None = None
    worst_j_intended_base_optimal_deploy: float | None = None
    worst_j_intended_base_optimal_train: float | None = None
    training_optimality_gap: float | None = None
    worst_j_intended_behavioral_optimal_deploy: float | None = None
    epic_behavioral_base_deploy: float | None = None
    epic_behavioral_intended_deploy: float | None = None
    epic_behavioral_mesa_deploy: float | None = None
    epic_base_intended_deploy: float | None = None
    epic_mesa_base_train: float | None = None
    epic_mesa_base_deploy: float | None = None
    epic_mesa_intended_deploy: float | None = None
    j_mesa_train: float | None = None
    j_mesa_deploy: float | None = None
    mesa_uses_deploy_feature: bool | None = None
    mesa_points_to_base: bool | None = None
    witnesses: tuple[Witness, ...] = ()
    estimates: Mapping[str, Estimate] = field(default_factory=dict, hash=False, compare=False)
    notes: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        for name in _FLOATS:
            value = getattr(self, name)
            if value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise MeasurementsError(f"Measurements.{name} must be a number or None, got {value!r}") from None
            if math.isnan(number):
                raise MeasurementsError(f"Measurements.{name} is NaN; use None for 'not measured'")
            object.__setattr__(self, name, number)
        if not self.has_mesa_objective:
            set_mesa = [
                n
                for n in ("epic_mesa_base_train", "epic_mesa_base_deploy", "epic_mesa_intended_deploy",
                          "epic_behavioral_mesa_deploy", "j_mesa_train", "j_mesa_deploy", "mesa_uses_deploy_feature",
                          "mesa_points_to_base")
                if getattr(self, n) is not None
            ]
            if set_mesa:
                raise MeasurementsError(
                    f"Measurements of {self.system!r}: {set_mesa} are set but has_mesa_objective is False; "
                    "mesa-only fields must be None for a system without a mesa-objective"
                )
        witnesses = tuple(w if isinstance(w, Witness) else Witness.from_dict(w) for w in self.witnesses)
        object.__setattr__(self, "witnesses", witnesses)
        unknown = sorted(set(self.estimates) - set(_FLOATS))
        if unknown:
            raise MeasurementsError(f"estimates given for {unknown}, which are not float fields of Measurements")
        estimates = {k: v if isinstance(v, Estimate) else Estimate.from_dict(v) for k, v in self.estimates.items()}
        object.__setattr__(self, "estimates", estimates)
        object.__setattr__(self, "notes", dict(self.notes))

    def estimate(self, name: str) -> Estimate | None:
        """The `Estimate` behind float field `name`: its level statistics, or the bare number (None if unset)."""
        if name in self.estimates:
            return self.estimates[name]
        value = getattr(self, name)
        return None if value is None else Estimate.exact(value)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`None` stays `null`); `from_dict` inverts it."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["witnesses"] = [w.to_dict() for w in self.witnesses]
        out["estimates"] = {k: v.to_dict() for k, v in self.estimates.items()}
        out["notes"] = dict(self.notes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurements:
        """Build from `to_dict` output (unknown keys are an error that names them).

        Raises:
            MeasurementsError: on unknown keys or malformed values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MeasurementsError(f"unknown Measurements field(s) {unknown}; valid fields: {sorted(known)}")
        kwargs = dict(data)
        kwargs["witnesses"] = tuple(Witness.from_dict(w) for w in kwargs.get("witnesses", ()))
        return cls(**kwargs)
