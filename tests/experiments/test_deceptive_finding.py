"""deceptive-v0's expected finding: a perfect base optimizer (exhaustive search) cannot tell deceptive
from aligned mesa-objectives on training levels; gradient descent leaves the flag-off weights untouched."""

from __future__ import annotations

import jax
import pytest

from mesascope.scenarios import get_scenario
from mesascope.scenarios.deceptive import deceptive_finding


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_perfect_and_imperfect_base_optimizers(reproduced):
    finding = deceptive_finding(get_scenario("deceptive-v0"), jax.random.key(0), n_levels=16)
    ex = finding["exhaustive"]
    assert ex["systems"] == 81 and ex["training_optimal"] == 9 and ex["train_score_spread_among_optimal"] == 0.0
    assert any(o["deceptive"] for o in ex["optimal"]) and any(o["aligned"] for o in ex["optimal"])
    for row in finding["gradient"]:
        assert row["gap_to_optimum"] < 0.05  # near training-optimal ...
        assert abs(row["weights"]["cheese|noflag"]) < 0.5 and abs(row["weights"]["coin|noflag"]) < 0.5  # ... flag-off untouched

    reproduced("deceptive-v0")
