"""Audit saved run folders with mesascope at a git revision and with the working tree; fail if any shared
number moves: `python scripts/audit_before_after.py --rev REV RUN_DIR... [--audit-levels N] [--max-diff X]`.

For a refactor that must not change what the audit measures. Each RUN_DIR (a finished gridworld run:
run.json and its trained systems) is copied twice into a scratch folder; one copy is audited by the
code at REV (checked out with `git worktree`), the other by the current source tree, each in its own
Python process with the same thresholds and level count; then every numeric leaf the two audit.json
files share is compared (`compare_audits.compare_all`). Keys only one side has (new audit fields) are
counted, not compared. Exits 1 when any shared number differs by more than `--max-diff`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_audits import compare_all  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# A process that audits RUN_DIR with the mesascope found first on sys.path (both revisions have
# `mesascope audit`, so the command line is the shared interface).
AUDIT = "import sys; from mesascope.cli import main; sys.exit(main(sys.argv[1:]))"


def _audit(src: Path, run_dir: Path, levels: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "MESASCOPE_JAX_CACHE": "off"}
    cmd = [sys.executable, "-c", AUDIT, "audit", str(run_dir), "--audit-levels", str(levels), "--db",
           str(run_dir.parent / f"{run_dir.name}.duckdb")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"auditing {run_dir} with {src} failed:\n{done.stderr[-2000:]}")
    return json.loads((run_dir / "audit.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished gridworld run folders")
    parser.add_argument("--rev", required=True, help="the revision to compare against, e.g. a commit before a refactor")
    parser.add_argument("--after", default=None, help="audit the 'after' side with this revision too (default: the working tree)")
    parser.add_argument("--audit-levels", type=int, default=32)
    parser.add_argument("--max-diff", type=float, default=0.0)
    parser.add_argument("--ignore", action="append", default=[], help="leave out leaves whose path contains this")
    args = parser.parse_args(argv)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        tree = scratch / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.rev], check=True,
                       capture_output=True)
        after_src = ROOT / "src"
        if args.after:
            after_tree = scratch / "after"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(after_tree), args.after], check=True,
                           capture_output=True)
            after_src = after_tree / "src"
        try:
            for run in args.runs:
                copies = {}
                for side in ("before", "after"):
                    dst = scratch / f"{run.name}-{side}"
                    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("audit*.json", "report.html", "graphs", "pictures"))
                    copies[side] = dst
                before = _audit(tree / "src", copies["before"], args.audit_levels)
                after = _audit(after_src, copies["after"], args.audit_levels)
                print(f"== {run}")
                worst = max(worst, compare_all(before, after, ignore=tuple(args.ignore)))
        finally:
            for wt in (tree, scratch / "after"):
                if wt.exists():
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)], capture_output=True)
    print(f"largest difference over all runs: {worst:.3g} (allowed {args.max_diff:g})")
    return 1 if worst > args.max_diff else 0


if __name__ == "__main__":
    raise SystemExit(main())
