"""Fixtures shared by the report tests: a copy of a real (tiny) run folder and its report.

`tests/golden/report_run/` is the output of a real run, kept small: `mesascope run cheese-corner-v0
--seeds 2 --audit-levels 32 --param grid_size=5 --param 'maze_sizes=[5]' --set total_timesteps=2048
--set num_envs=32 --set num_steps=32 --set level_pool=64` (audit.json, run.json, training.npz and
pictures/; the trained systems are left out because the report never reads them). Training it in every
test session would cost about a minute of CPU for nothing the report depends on.
"""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURE_RUN = GOLDEN / "report_run"


class _Structure(HTMLParser):
    """Section ids in page order and the text of every cell of every table with an id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._depth = 0
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and a.get("id"):
            self.sections.append(a["id"])
        if tag == "table":
            self._depth += 1
            if self._depth == 1 and a.get("id"):
                self._table = a["id"]
                self.tables[self._table] = []
        elif self._table and tag == "tr":
            self._row = []
        elif self._table and tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif self._table and tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag == "table":
            self._depth -= 1
            if self._depth == 0:
                self._table = None
        elif self._table and tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif self._table and tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_structure(html_text: str) -> SimpleNamespace:
    parser = _Structure()
    parser.feed(html_text)
    return SimpleNamespace(sections=parser.sections, tables=parser.tables)


@pytest.fixture(scope="session")
def structure_of():
    return parse_structure


@pytest.fixture(scope="session")
def fixture_run_copy(tmp_path_factory):
    """`copy() -> Path`: a fresh copy of the fixture run folder for a test to change."""

    def copy() -> Path:
        target = tmp_path_factory.mktemp("run") / "report_run"
        shutil.copytree(FIXTURE_RUN, target)
        return target

    return copy


@pytest.fixture(scope="session")
def report_run(fixture_run_copy):
    """`(run_dir, html_path, html_text)`: the fixture run with its report written once per session."""
    from mesascope.report import write_run_report

    run_dir = fixture_run_copy()
    path = write_run_report(run_dir)
    return SimpleNamespace(run_dir=run_dir, path=path, html=path.read_text(encoding="utf-8"))
