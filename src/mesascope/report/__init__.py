"""HTML reports of runs and sweeps: render only, no computation (DESIGN.md: `report/`).

* `write_run_report(run_dir)` writes `run_dir/report.html` from the run folder's files;
* `write_sweep_report(sweep_dir)` writes `sweep_dir/report.html` from the sweep's `curve.json`;
* `try_write_report(run_dir)` is what `mesascope run` and `mesascope audit` call: it never raises, so a
  report failure can never cost a finished audit.
"""

from mesascope.report.run_report import SECTION_IDS, ReportError, build_run_report, write_run_report
from mesascope.report.sweep_report import build_sweep_report, write_sweep_report
from mesascope.types import error_line


def try_write_report(run_dir):
    """Write the run's report; return `(path, None)` or `(None, "why it failed")`, never raise."""
    try:
        return write_run_report(run_dir), None
    except Exception as err:  # noqa: BLE001 - the audit is already on disk; a report failure is a warning
        return None, error_line(err)


__all__ = [
    "SECTION_IDS",
    "ReportError",
    "build_run_report",
    "build_sweep_report",
    "try_write_report",
    "write_run_report",
    "write_sweep_report",
]
