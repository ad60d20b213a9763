"""Linear probes: what a network's layers encode, read on every state of every level (issue 15).

A probe is a closed-form ridge regression from one layer's activations to a target, cross-validated
across levels: the levels are cut into folds, each fold's states are predicted by a probe fitted on the
other folds' states, so a probe never sees the level it is scored on. Targets are categorical: the cell
an object of the level stands on (constant over a level's states), or the next optimal action of a
candidate goal (a set of actions where `Q*` ties). A prediction is correct when it is the object's cell,
or one of the goal's optimal actions.

Two baselines say what an accuracy means: the best constant guess (`majority`), and the same probe fitted
to shuffled targets (`shuffled`: a level's object cell moved to another level, an action set moved to
another state), which measures what the probe can fit without any relation to the layer.

Everything here is NumPy on host arrays: a probe is one `[D, D]` (or `[N, N]`) solve per fold, far
below the cost of the activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ProbeScore", "cross_validated_probe", "fold_of_levels", "ridge_fit", "ridge_predict"]


@dataclass(frozen=True)
class ProbeScore:
    """A probe's held-out accuracy and its two baselines (fractions of the probed states).

    Attributes:
        accuracy: Share of states whose prediction is correct, each predicted by a probe fitted without
            its level.
        shuffled: The same with the targets shuffled (see the module docstring).
        majority: The best constant prediction's share.
        n_states: States probed.
    """

    accuracy: float
    shuffled: float
    majority: float
    n_states: int

    def as_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "shuffled": self.shuffled, "majority": self.majority,
                "n_states": self.n_states}


def ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form ridge regression on standardised features, with an unpenalised intercept.

    Solved in the primal (`[D, D]`) or the dual (`[N, N]`) form, whichever is smaller; the two give the
    same weights.

    Args:
        x: float `[N, D]` features (a layer's activations).
        y: float `[N, C]` targets (one-hot classes).
        ridge: The penalty on the standardised weights, `> 0`.

    Returns:
        `(w [D, C], b [C], mean [D], scale [D])`: predictions are `((x - mean) / scale) @ w + b`.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-8, scale, 1.0)  # a constant unit carries nothing: leave it at 0
    z = (x - mean) / scale
    y_mean = y.mean(0)
    yc = y - y_mean
    n, d = z.shape
    if d <= n:
        w = np.linalg.solve(z.T @ z + ridge * np.eye(d), z.T @ yc)
    else:
        w = z.T @ np.linalg.solve(z @ z.T + ridge * np.eye(n), yc)
    return w, y_mean, mean, scale


def ridge_predict(fit: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Scores `[N, C]` of a `ridge_fit` on features `x` `[N, D]`."""
    w, b, mean, scale = fit
    return ((np.asarray(x, np.float64) - mean) / scale) @ w + b


def fold_of_levels(n_levels: int, folds: int) -> np.ndarray:
    """int `[n_levels]`: each level's fold, contiguous blocks of (nearly) equal size."""
    if not 2 <= folds <= n_levels:
        raise ValueError(f"folds must be in [2, {n_levels}] (the number of levels); got {folds}")
    return np.arange(n_levels) * folds // n_levels


def _held_out_predictions(x: np.ndarray, y: np.ndarray, fold: np.ndarray, ridge: float) -> np.ndarray:
    pred = np.empty(len(x), np.int64)
    for f in np.unique(fold):
        test = fold == f
        pred[test] = ridge_predict(ridge_fit(x[~test], y[~test], ridge), x[test]).argmax(1)
    return pred


def cross_validated_probe(
    x: np.ndarray,
    correct: np.ndarray,
    level: np.ndarray,
    *,
    folds: int,
    ridge: float,
    rng: np.random.Generator,
    per_level: bool,
) -> ProbeScore:
    """A linear probe's held-out accuracy on a categorical target, with its baselines.

    The probe regresses onto `correct` as a target (an object's one-hot cell; the indicator of a goal's
    optimal actions, so tied actions share the target) and predicts the class of largest score.

    Args:
        x: float `[N, D]`, one layer's activations on the probed states.
        correct: bool `[N, C]`, which classes count as correct at each state (at least one per row).
        level: int `[N]`, the level (0..L-1) each state belongs to; folds are cut over levels.
        folds: Number of folds over levels.
        ridge: Ridge penalty (standardised features).
        rng: Drives the shuffle of the `shuffled` baseline (pass a seeded generator).
        per_level: The target is constant over a level's states (an object's cell): the shuffle moves
            whole levels' targets; otherwise it moves single states' targets.

    Returns:
        The `ProbeScore`.
    """
    correct = np.asarray(correct, bool)
    level = np.asarray(level)
    n_levels = int(level.max()) + 1
    fold = fold_of_levels(n_levels, folds)[level]
    y = correct.astype(np.float64)
    rows = np.arange(len(x))
    accuracy = correct[rows, _held_out_predictions(x, y, fold, ridge)].mean()
    if per_level:
        first = np.array([np.flatnonzero(level == i)[0] for i in range(n_levels)])
        moved = correct[first][rng.permutation(n_levels)][level]
    else:
        moved = correct[rng.permutation(len(x))]
    shuffled = moved[rows, _held_out_predictions(x, moved.astype(np.float64), fold, ridge)].mean()
    return ProbeScore(float(accuracy), float(shuffled), float(correct.mean(0).max()), len(x))
