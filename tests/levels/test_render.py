"""Pictures of levels: sizes, colours per object kind, trajectories, PNG files, rollouts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from mesascope.levels.grid import KIND_INDEX, OBJECT_KINDS, GridSpec, Level, reset
from mesascope.levels.render import (
    AGENT_COLOUR,
    KIND_COLOURS,
    REGION_COLOURS,
    WALL_COLOUR,
    render_level,
    render_pair,
    rollout_positions,
    save_png,
)
from mesascope.types import MesascopeError

KINDS = OBJECT_KINDS[1:]
PX = 24
# Every kind on its own square of a walled 6x7 room (rows 1, 2 and 4; (2, 5) stays empty); the agent
# starts at (3, 1). The list follows OBJECT_KINDS, so a new kind needs no edit here.
_FREE = [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 1), (2, 2), (2, 3), (2, 4), (4, 1), (4, 2), (4, 3), (4, 4), (4, 5)]
assert len(KINDS) <= len(_FREE), "more object kinds than free squares in the test room: enlarge it"
POSITIONS = _FREE[: len(KINDS)]
SPEC = GridSpec(height=6, width=7, n_objects=len(KINDS), regions=("corner",), view="full", max_steps=10)


def _level() -> Level:
    walls = np.zeros((6, 7), bool)
    walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
    regions = np.zeros((1, 6, 7), bool)
    regions[0, 3, 4:6] = True
    return Level(
        walls=jnp.asarray(walls),
        obj_kind=jnp.array([KIND_INDEX[k] for k in KINDS], jnp.int32),
        obj_pos=jnp.array(POSITIONS, jnp.int32),
        start=jnp.array([3, 1], jnp.int32),
        regions=jnp.asarray(regions),
    )


def _cell(image: Image.Image, r: int, c: int, px: int = PX) -> np.ndarray:
    return np.asarray(image)[r * px : (r + 1) * px, c * px : (c + 1) * px]


def _has(cell: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((cell.reshape(-1, 3) == np.array(colour)).all(-1).any())


@pytest.mark.parametrize("px", [8, 24])
def test_image_size_is_grid_times_cell(px: int) -> None:
    image = render_level(SPEC, _level(), cell_px=px)
    assert image.size == (SPEC.width * px, SPEC.height * px)
    assert image.mode == "RGB"


def test_every_kind_has_its_own_colour_on_its_square() -> None:
    assert len(set(KIND_COLOURS.values())) == len(KINDS), "kind colours must be distinct"
    image = render_level(SPEC, _level())
    empty = _cell(image, 2, 5)
    for kind, (r, c) in zip(KINDS, POSITIONS):
        assert _has(_cell(image, r, c), KIND_COLOURS[kind]), kind
        assert not _has(empty, KIND_COLOURS[kind]), kind
    assert _has(_cell(image, 3, 1), AGENT_COLOUR)
    assert not _has(empty, AGENT_COLOUR)
    assert (_cell(image, 0, 0) == np.array(WALL_COLOUR)).all()
    assert _has(_cell(image, 3, 4), REGION_COLOURS[0]) and _has(_cell(image, 3, 5), REGION_COLOURS[0])
    assert not _has(_cell(image, 3, 3), REGION_COLOURS[0])


def test_state_moves_the_agent_and_hides_consumed_objects() -> None:
    level = _level()
    state = reset(level)._replace(pos=jnp.array([3, 3], jnp.int32), consumed=jnp.zeros(len(KINDS), bool).at[0].set(True))
    image = render_level(SPEC, level, state=state)
    assert not _has(_cell(image, 1, 1), KIND_COLOURS["cheese"])
    assert _has(_cell(image, 1, 2), KIND_COLOURS["coin"])
    assert _has(_cell(image, 3, 3), AGENT_COLOUR) and not _has(_cell(image, 3, 1), AGENT_COLOUR)


def test_trajectory_changes_only_the_pixels_on_its_path() -> None:
    plain = np.asarray(render_level(SPEC, _level()))
    path = [(3, 1), (3, 2), (3, 3), (2, 5)]
    drawn = np.asarray(render_level(SPEC, _level(), trajectory=np.array(path)))
    changed = (plain != drawn).any(-1)
    assert changed.sum() > 50
    rows, cols = np.nonzero(changed)
    # Everything drawn stays inside the bounding box of the visited squares.
    assert rows.min() >= 2 * PX and rows.max() < 4 * PX and cols.min() >= 1 * PX and cols.max() < 6 * PX
    # The end marker is drawn on the last square.
    assert (plain[2 * PX : 3 * PX, 5 * PX : 6 * PX] != drawn[2 * PX : 3 * PX, 5 * PX : 6 * PX]).any()


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(MesascopeError, match="outside"):
        render_level(SPEC, _level(), trajectory=[(0, 0), (9, 9)])
    batch = jax.tree_util.tree_map(lambda x: x[None], _level())
    with pytest.raises(MesascopeError, match="one level"):
        render_level(SPEC, batch)


def test_png_writes_and_reopens_identically(tmp_path) -> None:
    image = render_level(SPEC, _level(), trajectory=[(3, 1), (3, 2)])
    path = save_png(image, tmp_path / "sub" / "level.png")
    assert path.exists()
    with Image.open(path) as back:
        assert back.format == "PNG"
        assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(image))


def test_render_pair_places_both_panels_under_captions() -> None:
    level = _level()
    pair = render_pair(SPEC, level, [(3, 1), (3, 2)], level, None, "train", "deploy")
    left = np.asarray(render_level(SPEC, level, trajectory=[(3, 1), (3, 2)]))
    right = np.asarray(render_level(SPEC, level))
    w, h = left.shape[1], left.shape[0]
    assert pair.width > 2 * w and pair.height > h
    arr = np.asarray(pair)
    # Find each panel by exact match in the bottom band of the image.
    top = pair.height - 8 - h
    assert np.array_equal(arr[top : top + h, 8 : 8 + w], left)
    assert np.array_equal(arr[top : top + h, pair.width - 8 - w : pair.width - 8], right)
    assert (arr[:top] != 255).any(), "captions are drawn above the panels"


ROOM = GridSpec(height=5, width=6, n_objects=1, kinds=("cheese",), max_steps=12)


def _room(cheese: tuple[int, int]) -> Level:
    walls = np.zeros((5, 6), bool)
    walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
    return Level(
        walls=jnp.asarray(walls),
        obj_kind=jnp.array([KIND_INDEX["cheese"]], jnp.int32),
        obj_pos=jnp.array([cheese], jnp.int32),
        start=jnp.array([2, 1], jnp.int32),
        regions=jnp.zeros((0, 5, 6), bool),
    )


def _always_right(obs: jax.Array) -> jax.Array:
    return jnp.array([0.0, 1.0, 0.0, 0.0])


def test_rollout_walks_until_the_wall_and_stops_at_max_steps() -> None:
    pos, n = rollout_positions(ROOM, _room((3, 4)), _always_right, jax.random.key(0), greedy=True, max_steps=6)
    assert pos.shape == (7, 2) and pos.dtype == jnp.int32
    assert int(n) == 6  # never terminal: the cheese is off the path
    assert np.asarray(pos).tolist() == [[2, 1], [2, 2], [2, 3], [2, 4], [2, 4], [2, 4], [2, 4]]


def test_rollout_counts_steps_until_done_and_is_jittable() -> None:
    level = _room((2, 3))
    run = jax.jit(lambda lv, k: rollout_positions(ROOM, lv, _always_right, k))
    pos, n = run(level, jax.random.key(1))
    assert pos.shape == (ROOM.max_steps + 1, 2)
    assert int(n) == 2
    assert np.asarray(pos[: int(n) + 1]).tolist() == [[2, 1], [2, 2], [2, 3]]
    assert (np.asarray(pos[int(n) :]) == [2, 3]).all()
    # Sampling from a one-hot distribution takes the same path as greedy.
    sampled, n_sampled = rollout_positions(ROOM, level, _always_right, jax.random.key(2))
    assert np.array_equal(np.asarray(sampled), np.asarray(pos)) and int(n_sampled) == 2


def test_sampled_rollouts_depend_on_the_key() -> None:
    level = _room((3, 4))
    uniform = lambda obs: jnp.full((4,), 0.25)  # noqa: E731
    paths = {tuple(np.asarray(rollout_positions(ROOM, level, uniform, jax.random.key(s))[0]).ravel()) for s in range(4)}
    assert len(paths) > 1
