"""The report in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Opens the report of the fixture run (a real tiny run, see conftest.py) from a file:// URL (then the
mesa-optimizer fixture run's report in the same browser), finds the
and-or graph SVG, the verdict table and the level pictures (decoded: `naturalWidth > 0`), checks the
console stayed clean, and keeps a full-page screenshot in `tests/artifacts/report.png` (ignored by git).

`make test` installs Chromium and Graphviz with apt when they are missing; Playwright's own browser
download (`playwright install`) is never used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FIXTURE_MESA = Path(__file__).resolve().parent.parent / "golden" / "report_run_mesa"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the `test` extra: pip install -e '.[test]'")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (make test installs it: apt-get install -y chromium)", allow_module_level=True)
if shutil.which("dot") is None:
    pytest.skip("Graphviz `dot` is not installed (make test installs it: apt-get install -y graphviz)", allow_module_level=True)


@pytest.fixture(scope="module")
def page_of_report(report_run, tmp_path_factory):
    from mesascope.report import write_run_report

    mesa_report = write_run_report(FIXTURE_MESA, tmp_path_factory.mktemp("mesa") / "report.html")
    messages: list[tuple[str, str]] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: messages.append((m.type, m.text)))
            page.on("pageerror", lambda e: messages.append(("pageerror", str(e))))
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(report_run.path.as_uri(), wait_until="load")
            found = page.evaluate(
                """() => ({
                    graphs: [...document.querySelectorAll('#graphs figure.graph svg')].map(s => ({
                        nodes: [...s.querySelectorAll('g.node title')].map(t => t.textContent)
                            .filter(t => !t.startsWith('__and_')).length,
                        width: s.getBoundingClientRect().width,
                        visible: s.getBoundingClientRect().height > 0})),
                    verdictRows: [...document.querySelectorAll('#verdict-table tbody tr')].map(
                        r => r.querySelector('th').textContent.trim()),
                    verdictVisible: document.querySelector('#verdict-table').getBoundingClientRect().height > 0,
                    images: [...document.querySelectorAll('#pictures img')].map(i => ({
                        complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})),
                    plots: document.querySelectorAll('figure.plot svg').length,
                    tocTargets: [...document.querySelectorAll('nav.toc a')].every(
                        a => document.querySelector(a.getAttribute('href')) !== null),
                })"""
            )
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the report: {shot}")
            # The mesa-optimizer run's report, in the same browser: it must load as cleanly.
            page.goto(mesa_report.as_uri(), wait_until="load")
            found["mesaPictures"] = page.evaluate("() => [...document.querySelectorAll('#pictures img')].map(i => i.naturalWidth)")
            found["mesaGraphs"] = page.evaluate("() => document.querySelectorAll('#graphs figure.graph svg').length")
        finally:
            browser.close()
    return found, messages, failed, shot


def test_graph_svg_is_drawn_with_its_nodes(page_of_report):
    found, *_ = page_of_report
    graphs = found["graphs"]
    assert len(graphs) == 6  # consolidated, revised, collapsed x 2 seeds
    first = graphs[0]  # seed 0's details are open: its graphs are laid out
    assert first["visible"] and first["width"] > 200
    assert first["nodes"] == 7  # the consolidated graph's seven properties (and-junctions not counted)


def test_verdict_table_lists_every_school(page_of_report):
    found, *_ = page_of_report
    assert found["verdictVisible"]
    assert found["verdictRows"] == ["Hubinger (infinite data)", "Wentworth (after training)", "Wentworth (before training)",
                                    "Shah", "Ngo", "Demski"]


def test_level_pictures_decoded(page_of_report):
    found, *_ = page_of_report
    assert len(found["images"]) == 2 + 3  # two seeds, three witness policies
    for image in found["images"]:
        assert image["complete"] and image["w"] > 0 and image["h"] > 0


def test_the_mesa_optimizer_report_loads_too(page_of_report):
    found, *_ = page_of_report
    assert len(found["mesaPictures"]) == 1 + 3 and all(w > 0 for w in found["mesaPictures"])
    assert found["mesaGraphs"] == 3


def test_no_console_errors_and_nothing_fetched(page_of_report):
    found, messages, failed, shot = page_of_report
    assert [m for m in messages if m[0] in ("error", "pageerror", "warning")] == []
    assert failed == []
    assert found["plots"] == 3 and found["tocTargets"]  # scores, first reached, learning curves
    assert shot.stat().st_size > 10_000
