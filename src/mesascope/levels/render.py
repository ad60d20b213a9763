"""Pictures of levels and of what a system did in them (Pillow only).

Rendering reads a level's arrays and draws them; it computes nothing a report could not recompute.
Each object kind has its own colour *and* its own shape, so a picture stays legible in greyscale:

============  ===================================  =========================
kind          shape                                colour
============  ===================================  =========================
cheese        a wedge with holes                   cheese yellow
coin          a disc with a rim                    gold
key           a ring, a shaft and two teeth        teal
chest         a box with a lid and a latch         brown
lava          the whole square, with ripples       orange-red
door_*        a door with a frame and a knob       its colour
apple         a round fruit with a stalk and leaf  apple red-pink
shield        a heater shield with a cross         steel blue
monster       a spiky body with two white eyes     olive green
============  ===================================  =========================

Regions (e.g. the "corner") are drawn as a faint outline around their squares, the agent as a
mouse-grey circle with ears, and a trajectory as a polyline through square centres whose colour fades
from light (start, marked by a ring) to dark (end, marked by a diamond).

`rollout_positions` produces such trajectories: it runs the simulator with a policy (pure JAX, one
`lax.scan`, so it jits and vmaps).

Example:
    >>> from mesascope.scenarios import get_scenario
    >>> sc = get_scenario("cheese-corner-v0")
    >>> level = jax.tree_util.tree_map(lambda x: x[0], sc.sample_levels(jax.random.key(0), 1, "deploy"))
    >>> uniform = lambda obs: jnp.full((4,), 0.25)
    >>> pos, n = rollout_positions(sc.spec, level, uniform, jax.random.key(1), max_steps=20)
    >>> image = render_level(sc.spec, level, trajectory=np.asarray(pos)[: int(n) + 1])
    >>> image.size
    (168, 168)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mesascope.levels.grid import OBJECT_KINDS, GridSpec, Level, State, observe, reset, step
from mesascope.types import MesascopeError

__all__ = [
    "AGENT_COLOUR",
    "FLOOR_COLOUR",
    "KIND_COLOURS",
    "REGION_COLOURS",
    "WALL_COLOUR",
    "render_level",
    "render_pair",
    "rollout_positions",
    "save_png",
]

RGB = tuple[int, int, int]

FLOOR_COLOUR: RGB = (244, 241, 234)
GRID_COLOUR: RGB = (226, 222, 212)
WALL_COLOUR: RGB = (52, 58, 74)
AGENT_COLOUR: RGB = (128, 128, 136)
AGENT_OUTLINE: RGB = (72, 72, 80)

KIND_COLOURS: dict[str, RGB] = {
    "cheese": (255, 214, 51),
    "coin": (212, 160, 23),
    "key": (0, 150, 136),
    "chest": (139, 90, 43),
    "lava": (255, 69, 0),
    "door_red": (205, 40, 40),
    "door_green": (46, 160, 67),
    "door_blue": (45, 95, 215),
    "door_yellow": (230, 190, 0),
    "apple": (214, 51, 108),
    "shield": (70, 130, 180),
    "monster": (85, 120, 30),
}
"""The main fill colour of each object kind (every one distinct)."""

REGION_COLOURS: tuple[RGB, ...] = ((160, 130, 225), (90, 175, 200), (220, 140, 200), (150, 190, 110))
"""Outline colours of the scenario's regions, in `GridSpec.regions` order (cycled)."""

_TRAJ_LIGHT: RGB = (236, 180, 236)
_TRAJ_DARK: RGB = (128, 0, 128)


def _darker(colour: RGB, factor: float = 0.6) -> RGB:
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


def _single(level: Level) -> Level:
    """`level` as numpy arrays, refusing a batch (a picture shows one level)."""
    lv = Level(*(np.asarray(x) for x in level))
    if lv.walls.ndim != 2:
        raise MesascopeError(
            f"render_level draws one level, but got walls of shape {lv.walls.shape}; "
            "pick one level from a batch first, e.g. `jax.tree_util.tree_map(lambda x: x[i], levels)`"
        )
    return lv


def _check_positions(spec: GridSpec, trajectory: object) -> np.ndarray:
    arr = np.asarray(trajectory)
    if arr.size == 0:
        return np.zeros((0, 2), np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise MesascopeError(f"a trajectory is a sequence of (row, col) positions `[T, 2]`; got shape {arr.shape}")
    pts = arr.astype(np.int64)
    bad = (pts < 0).any(-1) | (pts[:, 0] >= spec.height) | (pts[:, 1] >= spec.width)
    if bad.any():
        raise MesascopeError(
            f"trajectory position {pts[bad][0].tolist()} lies outside the {spec.height}x{spec.width} grid"
        )
    return pts


# ----------------------------------------------------------------------------------------------- shapes


def _box(r: int, c: int, px: int, inset: float) -> tuple[float, float, float, float]:
    """Pixel box of square (r, c), shrunk by `inset` (a fraction of the square) on every side."""
    d = inset * px
    return (c * px + d, r * px + d, (c + 1) * px - 1 - d, (r + 1) * px - 1 - d)


def _at(r: int, c: int, px: int, fx: float, fy: float) -> tuple[float, float]:
    """The point at fractions (fx, fy) of square (r, c)."""
    return (c * px + fx * (px - 1), r * px + fy * (px - 1))


def _draw_cheese(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    pts = [_at(r, c, px, 0.12, 0.8), _at(r, c, px, 0.88, 0.8), _at(r, c, px, 0.88, 0.22)]
    d.polygon(pts, fill=colour, outline=_darker(colour, 0.75))
    hole = max(1.0, 0.06 * px)
    for fx, fy in ((0.7, 0.6), (0.8, 0.42), (0.55, 0.7)):
        x, y = _at(r, c, px, fx, fy)
        d.ellipse((x - hole, y - hole, x + hole, y + hole), fill=_darker(colour, 0.85))


def _draw_coin(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    width = max(1, px // 12)
    d.ellipse(_box(r, c, px, 0.18), fill=colour, outline=_darker(colour, 0.7), width=width)
    d.ellipse(_box(r, c, px, 0.34), outline=_darker(colour, 0.85), width=max(1, width // 2))


def _draw_key(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    t = max(2.0, 0.1 * px)
    hx, hy = _at(r, c, px, 0.3, 0.5)
    rad = 0.17 * px
    d.ellipse((hx - rad, hy - rad, hx + rad, hy + rad), fill=colour)
    d.ellipse((hx - rad / 2.5, hy - rad / 2.5, hx + rad / 2.5, hy + rad / 2.5), fill=FLOOR_COLOUR)
    x0, _ = _at(r, c, px, 0.42, 0.5)
    x1, _ = _at(r, c, px, 0.88, 0.5)
    d.rectangle((x0, hy - t / 2, x1, hy + t / 2), fill=colour)
    for fx in (0.72, 0.84):
        tx, _ = _at(r, c, px, fx, 0.5)
        _, ty = _at(r, c, px, fx, 0.7)
        d.rectangle((tx - t / 2, hy, tx + t / 2, ty), fill=colour)


def _draw_chest(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    x0, y0 = _at(r, c, px, 0.14, 0.28)
    x1, y1 = _at(r, c, px, 0.86, 0.82)
    d.rectangle((x0, y0, x1, y1), fill=colour, outline=_darker(colour, 0.7), width=max(1, px // 16))
    _, ly = _at(r, c, px, 0.14, 0.46)
    d.line((x0, ly, x1, ly), fill=_darker(colour, 0.7), width=max(1, px // 16))
    lx0, ly0 = _at(r, c, px, 0.45, 0.4)
    lx1, ly1 = _at(r, c, px, 0.55, 0.58)
    d.rectangle((lx0, ly0, lx1, ly1), fill=(236, 206, 130))


def _draw_lava(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    d.rectangle(_box(r, c, px, 0.0), fill=colour)
    ripple = _darker(colour, 0.8)
    for fy in (0.3, 0.7):
        pts = [_at(r, c, px, fx, fy + (0.06 if i % 2 else -0.06)) for i, fx in enumerate(np.linspace(0.1, 0.9, 5))]
        d.line(pts, fill=ripple, width=max(1, px // 14))


def _draw_door(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    d.rectangle(_box(r, c, px, 0.12), fill=colour, outline=_darker(colour, 0.55), width=max(1, px // 10))
    kx, ky = _at(r, c, px, 0.7, 0.55)
    k = max(1.0, 0.06 * px)
    d.ellipse((kx - k, ky - k, kx + k, ky + k), fill=(245, 245, 245))


def _draw_apple(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    d.ellipse(_box(r, c, px, 0.22), fill=colour, outline=_darker(colour, 0.7), width=max(1, px // 16))
    sx, sy = _at(r, c, px, 0.5, 0.1)
    _, ey = _at(r, c, px, 0.5, 0.3)
    d.line((sx, sy, sx, ey), fill=(101, 67, 33), width=max(1, px // 12))
    lx, ly = _at(r, c, px, 0.66, 0.16)
    leaf = max(1.0, 0.08 * px)
    d.ellipse((lx - leaf, ly - leaf / 1.6, lx + leaf, ly + leaf / 1.6), fill=(46, 160, 67))


def _draw_shield(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    pts = [_at(r, c, px, fx, fy) for fx, fy in ((0.2, 0.15), (0.8, 0.15), (0.8, 0.5), (0.5, 0.88), (0.2, 0.5))]
    d.polygon(pts, fill=colour, outline=_darker(colour, 0.6))
    t = max(1, px // 12)
    x, y0 = _at(r, c, px, 0.5, 0.22)
    _, y1 = _at(r, c, px, 0.5, 0.72)
    d.line((x, y0, x, y1), fill=(235, 235, 240), width=t)
    x0, y = _at(r, c, px, 0.3, 0.42)
    x1, _ = _at(r, c, px, 0.7, 0.42)
    d.line((x0, y, x1, y), fill=(235, 235, 240), width=t)


def _draw_monster(d: ImageDraw.ImageDraw, r: int, c: int, px: int, colour: RGB) -> None:
    # A star-shaped body: 8 spikes alternating with the inner radius.
    cx, cy = _at(r, c, px, 0.5, 0.52)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    radii = np.where(np.arange(16) % 2 == 0, 0.42 * px, 0.28 * px)
    pts = [(cx + rad * np.sin(a), cy - rad * np.cos(a)) for a, rad in zip(angles, radii)]
    d.polygon(pts, fill=colour, outline=_darker(colour, 0.6))
    eye = max(1.0, 0.07 * px)
    for fx in (0.4, 0.6):
        ex, ey = _at(r, c, px, fx, 0.46)
        d.ellipse((ex - eye, ey - eye, ex + eye, ey + eye), fill=(250, 250, 250))


_DRAW: dict[str, Callable[[ImageDraw.ImageDraw, int, int, int, RGB], None]] = {
    "cheese": _draw_cheese,
    "coin": _draw_coin,
    "key": _draw_key,
    "chest": _draw_chest,
    "lava": _draw_lava,
    "apple": _draw_apple,
    "shield": _draw_shield,
    "monster": _draw_monster,
    **{k: _draw_door for k in OBJECT_KINDS if k.startswith("door_")},
}


def _draw_agent(d: ImageDraw.ImageDraw, r: int, c: int, px: int) -> None:
    width = max(1, px // 16)
    ear = 0.12 * px
    for fx in (0.3, 0.7):
        x, y = _at(r, c, px, fx, 0.26)
        d.ellipse((x - ear, y - ear, x + ear, y + ear), fill=AGENT_COLOUR, outline=AGENT_OUTLINE, width=width)
    d.ellipse(_box(r, c, px, 0.22), fill=AGENT_COLOUR, outline=AGENT_OUTLINE, width=width)
    e = max(1.0, 0.04 * px)
    for fx in (0.4, 0.6):
        x, y = _at(r, c, px, fx, 0.45)
        d.ellipse((x - e, y - e, x + e, y + e), fill=(30, 30, 30))


def _draw_region(d: ImageDraw.ImageDraw, mask: np.ndarray, px: int, colour: RGB) -> None:
    """Outline the boundary of a region's squares (edges next to a square outside the region)."""
    h, w = mask.shape
    width = max(1, px // 12)
    inset = width  # keep the outline off the grid line
    for r, c in zip(*np.nonzero(mask)):
        x0, y0, x1, y1 = c * px + inset, r * px + inset, (c + 1) * px - 1 - inset, (r + 1) * px - 1 - inset
        if r == 0 or not mask[r - 1, c]:
            d.line((x0, y0, x1, y0), fill=colour, width=width)
        if r == h - 1 or not mask[r + 1, c]:
            d.line((x0, y1, x1, y1), fill=colour, width=width)
        if c == 0 or not mask[r, c - 1]:
            d.line((x0, y0, x0, y1), fill=colour, width=width)
        if c == w - 1 or not mask[r, c + 1]:
            d.line((x1, y0, x1, y1), fill=colour, width=width)


def _draw_trajectory(d: ImageDraw.ImageDraw, pts: np.ndarray, px: int) -> None:
    if len(pts) == 0:
        return
    centres = [((c + 0.5) * px - 0.5, (r + 0.5) * px - 0.5) for r, c in pts]
    width = max(2, px // 8)
    n = len(centres) - 1
    light, dark = np.array(_TRAJ_LIGHT, float), np.array(_TRAJ_DARK, float)
    for i in range(n):
        t = (i + 1) / n
        colour = tuple(int(v) for v in np.round(light + t * (dark - light)))
        d.line((centres[i], centres[i + 1]), fill=colour, width=width)
    (sx, sy), (ex, ey) = centres[0], centres[-1]
    ring = 0.2 * px
    d.ellipse((sx - ring, sy - ring, sx + ring, sy + ring), outline=_TRAJ_DARK, width=width)
    m = 0.16 * px
    d.polygon([(ex, ey - m), (ex + m, ey), (ex, ey + m), (ex - m, ey)], fill=_TRAJ_DARK)


# ----------------------------------------------------------------------------------------------- images


def render_level(
    spec: GridSpec,
    level: Level,
    *,
    state: State | None = None,
    trajectory: Sequence[Sequence[int]] | np.ndarray | jax.Array | None = None,
    cell_px: int = 24,
) -> Image.Image:
    """Draw one level.

    Args:
        spec: Static shape of the level.
        level: One level (no batch axis): walls `[H, W]`, objects `[N]`, regions `[R, H, W]`.
        state: Where the episode is: the agent is drawn at `state.pos` and consumed objects are left
            out. Defaults to the start state.
        trajectory: Optional positions int `[T, 2]` (row, col), e.g. `rollout_positions(...)[0][: n + 1]`,
            drawn as a fading polyline with a ring at the start and a diamond at the end.
        cell_px: Side of one square in pixels.

    Returns:
        An RGB image of `W * cell_px` by `H * cell_px` pixels.

    Raises:
        MesascopeError: if `level` is a batch, or the trajectory leaves the grid.
    """
    if cell_px < 4:
        raise MesascopeError(f"cell_px must be at least 4 pixels to draw anything legible; got {cell_px}")
    lv = _single(level)
    px = int(cell_px)
    h, w = spec.height, spec.width
    if lv.walls.shape != (h, w):
        raise MesascopeError(f"level walls have shape {lv.walls.shape} but the spec says {(h, w)}")
    image = Image.new("RGB", (w * px, h * px), FLOOR_COLOUR)
    d = ImageDraw.Draw(image)

    for r in range(h):
        for c in range(w):
            box = _box(r, c, px, 0.0)
            if lv.walls[r, c]:
                d.rectangle(box, fill=WALL_COLOUR)
            else:
                d.rectangle(box, outline=GRID_COLOUR)

    consumed = np.zeros(lv.obj_kind.shape, bool) if state is None else np.asarray(state.consumed, bool)
    kinds = [OBJECT_KINDS[int(k)] for k in lv.obj_kind]
    # Terrain (lava) first, so objects that share its square stay visible.
    order = sorted(range(len(kinds)), key=lambda i: kinds[i] != "lava")
    for i in order:
        if kinds[i] == "none" or consumed[i]:
            continue
        r, c = (int(v) for v in lv.obj_pos[i])
        if 0 <= r < h and 0 <= c < w:
            _DRAW[kinds[i]](d, r, c, px, KIND_COLOURS[kinds[i]])

    for j, mask in enumerate(np.asarray(lv.regions, bool).reshape(-1, h, w)):
        _draw_region(d, mask, px, REGION_COLOURS[j % len(REGION_COLOURS)])

    pos = np.asarray(lv.start if state is None else state.pos)
    _draw_agent(d, int(pos[0]), int(pos[1]), px)

    if trajectory is not None:
        _draw_trajectory(d, _check_positions(spec, trajectory), px)
    return image


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def render_pair(
    spec: GridSpec,
    train_level: Level,
    train_traj: Sequence[Sequence[int]] | np.ndarray | jax.Array | None,
    deploy_level: Level,
    deploy_traj: Sequence[Sequence[int]] | np.ndarray | jax.Array | None,
    title_train: str = "train",
    title_deploy: str = "deploy",
    *,
    cell_px: int = 24,
) -> Image.Image:
    """What the system did in training next to what it did in deployment, each with a caption.

    Args:
        spec: Static shape of both levels.
        train_level: One training level.
        train_traj: Positions `[T, 2]` of the agent on it (or None).
        deploy_level: One deployment level.
        deploy_traj: Positions `[T', 2]` on it (or None).
        title_train: Caption above the left panel.
        title_deploy: Caption above the right panel.
        cell_px: Side of one square in pixels.

    Returns:
        An RGB image: the two panels side by side on white, captions above.
    """
    left = render_level(spec, train_level, trajectory=train_traj, cell_px=cell_px)
    right = render_level(spec, deploy_level, trajectory=deploy_traj, cell_px=cell_px)
    font = _font(max(11, int(cell_px * 0.6)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), t, font=font) for t in (title_train, title_deploy)]
    text_h = max(b[3] for b in boxes) + 4
    margin, gap = 8, max(12, cell_px // 2)
    col_w = [max(left.width, boxes[0][2]), max(right.width, boxes[1][2])]
    width = 2 * margin + col_w[0] + gap + col_w[1]
    height = 2 * margin + text_h + max(left.height, right.height)
    out = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(out)
    x = margin
    for panel, title, box, cw in ((left, title_train, boxes[0], col_w[0]), (right, title_deploy, boxes[1], col_w[1])):
        d.text((x + (cw - box[2]) // 2, margin), title, fill=(30, 30, 30), font=font)
        out.paste(panel, (x + (cw - panel.width) // 2, margin + text_h))
        x += cw + gap
    return out


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write `image` as a PNG (creating parent folders) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


# ----------------------------------------------------------------------------------------------- rollouts


def rollout_positions(
    spec: GridSpec,
    level: Level,
    policy_fn: Callable[[jax.Array], jax.Array],
    key: jax.Array,
    *,
    greedy: bool = False,
    max_steps: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Run one episode from `reset(level)` and record where the agent was.

    Pure JAX (one `lax.scan` of static length `max_steps` with a done mask), so it jits and vmaps:
    `jax.vmap(lambda lv, k: rollout_positions(spec, lv, pi, k))(levels, keys)`. Called directly it is
    compiled once per `(spec, policy_fn, greedy, max_steps)`, like any jitted function: values
    `policy_fn` closes over are baked in at its first call, so build a new `policy_fn` when its
    parameters change (an unhashable `policy_fn` is traced on every call instead).

    Args:
        spec: Static shape of the level.
        level: One level.
        policy_fn: One observation `spec.obs_shape` -> action probabilities `[A]`. A batched system
            (`[B, *obs_shape] -> [B, A]`) fits as `lambda obs: policy(obs[None])[0]`.
        key: PRNG key for sampling actions (unused when `greedy`).
        greedy: Take the most probable action instead of sampling.
        max_steps: Static number of steps `T` (default `spec.max_steps`).

    Returns:
        `(positions, n_steps)`: int32 `[T + 1, 2]` (row, col) before each step and after the last, and
        int32 scalar, the steps taken before the episode ended (or `T`). `positions[: n_steps + 1]` is
        the trajectory; later rows repeat the final position.
    """
    n = spec.max_steps if max_steps is None else int(max_steps)
    if n < 0:
        raise MesascopeError(f"max_steps must be >= 0; got {n}")
    try:
        hash(policy_fn)
    except TypeError:  # an unhashable callable cannot key the compile cache: trace it every call
        return _rollout(spec, level, policy_fn, key, greedy, n)
    return _rollout_jit(spec, level, policy_fn, key, greedy, n)


def _rollout(
    spec: GridSpec, level: Level, policy_fn: Callable[[jax.Array], jax.Array], key: jax.Array, greedy: bool, n: int
) -> tuple[jax.Array, jax.Array]:
    start = reset(level)

    def body(state: State, k: jax.Array) -> tuple[State, tuple[jax.Array, jax.Array]]:
        probs = policy_fn(observe(spec, level, state))
        if greedy:
            action = jnp.argmax(probs)
        else:
            action = jax.random.categorical(k, jnp.log(probs))
        nxt, _ = step(spec, level, state, action)
        return nxt, (nxt.pos, ~state.done)

    _, (pos, live) = jax.lax.scan(body, start, jax.random.split(key, n))
    positions = jnp.concatenate([start.pos[None], pos.reshape(n, 2)]).astype(jnp.int32)
    return positions, live.sum().astype(jnp.int32)


# One compiled program per (spec, policy function, greedy, length); levels and keys are arguments.
_rollout_jit = jax.jit(_rollout, static_argnums=(0, 2, 4, 5))
