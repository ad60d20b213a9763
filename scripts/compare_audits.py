"""Compare two audits of the same systems, old against new: `python scripts/compare_audits.py OLD NEW`.

OLD and NEW are `audit.json` files (or run folders holding one). Typical use: keep a run folder's
`audit.json` from an earlier mesascope, re-audit the same trained systems with `mesascope audit RUN_DIR`,
and print what changed: each seed's scores (mean over informative levels in new audits, over all levels
in old ones), first-reached probabilities, behavioral objective, EPIC between it and the base objective,
and every school's label. With `--max-diff X` it exits 1 when a shared score or probability differs by more
than X (a refactor that must not move any number).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _load(path: str) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / "audit.json"
    return json.loads(p.read_text())


def _behavioral(system: dict[str, Any]) -> str:
    choice = system.get("behavioral", {}).get("deploy", {}).get("objective")
    if choice is not None:
        return str(choice.get("name") or "unexplained")
    post = system.get("behavioral", {}).get("deploy", {}).get("goal_posterior", {})
    return f"goal:{post.get('best')} (posterior winner)" if post else "n/a"


def rows(audit: dict[str, Any]) -> dict[tuple[int, str], Any]:
    """Flat `(seed, quantity) -> value` for every number and label worth comparing."""
    out: dict[tuple[int, str], Any] = {}
    for s in audit.get("systems", []):
        seed = s.get("seed")
        for split in ("train", "deploy"):
            for obj, j in (s.get("scores", {}).get(split) or {}).items():
                out[(seed, f"J_{obj} {split}")] = j
            for goal, p in (s.get("first_reached", {}).get(split) or {}).items():
                out[(seed, f"{goal} first {split}")] = p
        out[(seed, "behavioral objective")] = _behavioral(s)
        m = s.get("measurements") or {}
        out[(seed, "EPIC(beh, base) deploy")] = m.get("epic_behavioral_base_deploy")
        for school, v in (s.get("verdicts") or {}).items():
            out[(seed, f"verdict {school}")] = v.get("label") + (" (marginal)" if v.get("marginal") else "")
    return out


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a JSON document by its path (`systems.0.scores.train.base`)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(leaves(v, f"{prefix}.{i}"))
        return out
    return {prefix: obj}


_VOLATILE = ("timings", "graph_files", "pictures", "witness_pictures", "mesascope_version")


def compare_all(old: dict[str, Any], new: dict[str, Any], top: int = 15, ignore: tuple[str, ...] = ()) -> float:
    """Print the largest differences between every shared numeric leaf (and every changed other leaf).

    Leaves whose path contains one of `ignore` (e.g. `.beta`) are left out.
    """
    def keep(k: str) -> bool:
        return not k.startswith(_VOLATILE) and not any(part in k for part in ignore)

    a = {k: v for k, v in leaves(old).items() if keep(k)}
    b = {k: v for k, v in leaves(new).items() if keep(k)}
    diffs, other = [], []
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, int | float) or not isinstance(y, int | float):
            if x != y:
                other.append((key, x, y))
            continue
        diffs.append((abs(float(x) - float(y)), key, x, y))
    diffs.sort(reverse=True)
    worst = diffs[0][0] if diffs else 0.0
    print(f"{len(diffs)} shared numbers, largest difference {worst:.3g}; {len(other)} other leaves differ; "
          f"{len(set(a) - set(b))} only in old, {len(set(b) - set(a))} only in new")
    for d, key, x, y in diffs[:top]:
        if d > 0:
            print(f"  {d:.3g}  {key}: {x} -> {y}")
    for key, x, y in other[:top]:
        print(f"  {key}: {str(x)[:60]} -> {str(y)[:60]}")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--changed", action="store_true", help="print only what changed")
    parser.add_argument("--max-diff", type=float, default=None, help="fail if a shared number moves more than this")
    parser.add_argument("--all", action="store_true", help="compare every number of the two files, not the summary")
    parser.add_argument("--ignore", action="append", default=[], help="with --all: leave out paths containing this")
    args = parser.parse_args(argv)
    if args.all:
        worst = compare_all(_load(args.old), _load(args.new), ignore=tuple(args.ignore))
        return 1 if args.max_diff is not None and worst > args.max_diff else 0
    old, new = rows(_load(args.old)), rows(_load(args.new))
    worst = 0.0
    for key in sorted(set(old) | set(new), key=lambda k: (k[0], k[1])):
        a, b = old.get(key), new.get(key)
        if isinstance(a, float) and isinstance(b, float):
            worst = max(worst, abs(a - b))
            same = abs(a - b) < 5e-4
            text = f"{a:.3f} -> {b:.3f}"
        else:
            same = a == b
            text = f"{a} -> {b}"
        if args.changed and same:
            continue
        print(f"seed {key[0]}  {key[1]:<32} {text}{'' if same else '   *'}")
    if args.max_diff is not None and worst > args.max_diff:
        print(f"largest difference {worst:.3g} > {args.max_diff}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
