"""shaping-v0's expected finding on real `fast` runs (`mesascope reproduce`): sparse and potential-based
rewards chisel a cheese-eater, the non-potential proximity bonus chisels a policy that lingers next to the
cheese; potential shaping is invisible to EPIC and no proximity-optimal policy eats the cheese (exact)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.timeout(2700)
def test_what_each_chisel_carves(reproduced):
    sparse = reproduced("shaping-v0")
    assert sparse["scenario_measures"]["epic_sparse_potential"]["value"]["deploy"] < 1e-3
    proximity = reproduced("shaping-v0", shaping="proximity")
    assert all(s["first_reached"]["deploy"]["linger"] >= 0.9 for s in proximity["systems"])
