"""Three-valued states and Kleene connectives (SPEC.md section 5; seed 000 on undefined properties)."""

from __future__ import annotations

import itertools

import pytest

from mesascope.graphs import GraphError, PropertyValue, Truth, index_values, kleene_and, kleene_or

H, F, U = Truth.HOLDS, Truth.FAILS, Truth.UNDEFINED

# Independent oracle: strong Kleene logic is min/max over the order fails < undefined < holds.
RANK = {F: 0, U: 1, H: 2}


def oracle_and(truths):
    return min(truths, key=RANK.__getitem__)


def oracle_or(truths):
    return max(truths, key=RANK.__getitem__)


# The binary tables written out by hand, so a shared mistake in oracle and code cannot hide.
AND_TABLE = {
    (H, H): H, (H, U): U, (H, F): F,
    (U, H): U, (U, U): U, (U, F): F,
    (F, H): F, (F, U): F, (F, F): F,
}  # fmt: skip
OR_TABLE = {
    (H, H): H, (H, U): H, (H, F): H,
    (U, H): H, (U, U): U, (U, F): U,
    (F, H): H, (F, U): U, (F, F): F,
}  # fmt: skip


@pytest.mark.parametrize(("pair", "expected"), AND_TABLE.items())
def test_and_binary_table(pair, expected):
    assert kleene_and(pair) is expected


@pytest.mark.parametrize(("pair", "expected"), OR_TABLE.items())
def test_or_binary_table(pair, expected):
    assert kleene_or(pair) is expected


def test_every_tuple_up_to_four_inputs_matches_the_oracle():
    checked = 0
    for n in range(1, 5):
        for truths in itertools.product(list(Truth), repeat=n):
            assert kleene_and(truths) is oracle_and(truths), truths
            assert kleene_or(truths) is oracle_or(truths), truths
            checked += 1
    assert checked == 3 + 9 + 27 + 81


def test_undefined_is_not_failure():
    # The reason for three values: a missing mesa-objective must not read as an inner failure (seed 000).
    assert kleene_and([H, U]) is U
    assert kleene_or([F, U]) is U


def test_empty_and_is_holds_and_empty_or_is_fails():
    assert kleene_and([]) is H
    assert kleene_or([]) is F


def test_connectives_accept_generators_and_reject_non_truths():
    assert kleene_and(t for t in (H, H)) is H
    with pytest.raises(TypeError):
        kleene_and([H, True])
    with pytest.raises(TypeError):
        kleene_or([F, "holds"])


def test_truth_has_no_boolean_value():
    with pytest.raises(TypeError, match="compare"):
        bool(Truth.FAILS)


def test_truth_of():
    assert (Truth.of(True), Truth.of(False), Truth.of(None)) == (H, F, U)


def test_property_value_coerces_and_validates():
    value = PropertyValue("robustness", "fails", score=1, threshold=0.9)
    assert value.truth is F and isinstance(value.score, float)
    with pytest.raises(GraphError, match="holds/fails/undefined"):
        PropertyValue("robustness", "maybe")
    with pytest.raises(GraphError, match="NaN"):
        PropertyValue("robustness", H, score=float("nan"))


def test_property_value_is_frozen_hashable_and_evidence_is_read_only():
    evidence = {"levels": [1, 2, 3]}
    a = PropertyValue("outer_alignment", H, 0.95, 0.9, None, evidence)
    b = PropertyValue("outer_alignment", H, 0.95, 0.9, None, {"levels": [1, 2, 3]})
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    with pytest.raises(TypeError):
        a.evidence["levels"] = []  # type: ignore[index]
    evidence["other"] = 1  # the value kept its own copy
    assert "other" not in a.evidence
    with pytest.raises(AttributeError):
        a.truth = F  # type: ignore[misc]


def test_undefined_constructor_records_the_reason():
    value = PropertyValue.undefined("inner_alignment", "no mesa-objective")
    assert value.truth is U and value.evidence["reason"] == "no mesa-objective"


def test_index_values_keys_by_name_and_school():
    hub = PropertyValue("objective_robustness", H, school="hubinger")
    dem = PropertyValue("objective_robustness", F, school="demski")
    rob = PropertyValue("robustness", H)
    index = index_values([hub, dem, rob])
    assert index == {"objective_robustness/hubinger": hub, "objective_robustness/demski": dem, "robustness": rob}
    # A single schooled value is also reachable by its bare name.
    assert index_values([hub])["objective_robustness"] is hub


def test_index_values_rejects_duplicates():
    with pytest.raises(GraphError):
        index_values([PropertyValue("robustness", H), PropertyValue("robustness", F)])
    with pytest.raises(GraphError):
        index_values([PropertyValue("robustness", H), PropertyValue("robustness", F, school="demski")])
