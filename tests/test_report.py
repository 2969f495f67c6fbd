"""`snakemake --report`: every figure with its caption, rendered without page errors.

The report is opened in headless Chromium (Debian's ``chromium``, installed with apt-get
when missing and possible). Console messages go to stderr with ``--enable-logging``; an
uncaught exception or a console error fails the test, and the dumped DOM must show the
rendered report app rather than its loading screen.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from labaug.augment import for_experiment, get
from tests.cluster.smoke import expected_figures, snakemake
from tests.conftest import merged_config

pytestmark = pytest.mark.slow

CAPTION_PARTS = ("What it shows.", "Claim tested.", "Config behind it.")


def chromium() -> str:
    """Path of a Chromium binary, installing Debian's ``chromium`` when missing."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (needs root apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip(f"installing chromium failed: {proc.stderr[-2000:]}")
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


def report_results(html: str) -> dict[str, Any]:
    """The report's embedded table of results: file -> {caption, ...}."""
    match = re.search(r"var results = (\{.*?\});\s*</script>", html, flags=re.DOTALL)
    assert match, "no results table in the report"
    results: dict[str, Any] = json.loads(match.group(1))
    return results


@pytest.fixture(scope="module")
def report(smoke_run: Path) -> tuple[Path, set[str]]:
    """report.html of the shared smoke run (tests/conftest.py), and the figures it must hold."""
    figures = expected_figures(smoke_run)
    made = snakemake(smoke_run, "--report", str(smoke_run / "report.html"), timeout=300)
    assert made.returncode == 0, made.stderr[-4000:]
    assert "ERROR" not in made.stderr, made.stderr[-4000:]  # docutils caption errors
    return smoke_run / "report.html", figures


def test_every_figure_is_in_the_report_with_a_full_caption(report: tuple[Path, set[str]]) -> None:
    path, figures = report
    assert {f"figures/fig{n}.pdf" for n in range(1, 8)} <= figures
    results = report_results(path.read_text())
    assert figures <= set(results), sorted(figures - set(results))
    for figure in figures:
        caption = results[figure]["caption"]
        for part in CAPTION_PARTS:
            assert part in caption, (figure, part)
        # The config values behind it are rendered, not left as template code.
        assert "seeds: 0" in caption, figure
        assert "{{" not in caption and "{%" not in caption, figure
        if re.fullmatch(r"figures/fig\d\.pdf", figure):
            assert f"Figure {figure[-5]} (" in caption, figure


def test_captions_state_the_config_values(report: tuple[Path, set[str]]) -> None:
    path, _ = report
    smoke = merged_config("smoke")
    results = report_results(path.read_text())
    fig1 = results["figures/fig1.pdf"]["caption"]
    assert f"{smoke['synthetic']['n_train']} training" in fig1
    assert f"{smoke['optim']['epochs']} epochs" in fig1
    assert f"seeds: {', '.join(str(s) for s in smoke['seeds'])}" in fig1
    fig4 = results["figures/fig4.pdf"]["caption"]
    assert f"width {smoke['resnet']['width']}" in fig4
    for name in for_experiment(smoke["methods"], "class_channels"):
        method = get(name)
        assert f"{method.title}: {method.hp_words}" in fig4, name
        assert f"= {smoke['resnet']['hp'][name]}" in fig4, name
    assert f"{smoke['resnet']['epochs']} epochs" in fig4
    for dataset in smoke["image_datasets"]:
        assert dataset in results["figures/fig2.pdf"]["caption"]


def test_report_renders_without_page_errors(report: tuple[Path, set[str]],
                                            tmp_path: Path) -> None:
    path, _ = report
    browser = chromium()
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=15000", "--dump-dom", path.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console
              if "Uncaught" in line or ":ERROR:CONSOLE" in line or "Error:" in line]
    assert not errors, "\n".join(errors)
    dom = proc.stdout
    app = dom[dom.index('id="app"'):]
    assert app.startswith('id="app"><'), "the report app rendered nothing"
    assert re.search(r'id="loading-screen" style="display: none;?"', dom), "stuck loading"


def test_page_error_detection_works(report: tuple[Path, set[str]], tmp_path: Path) -> None:
    # The check above must be able to fail: a report with a script error is caught.
    path, _ = report
    broken = tmp_path / "broken.html"
    broken.write_text(path.read_text().replace(
        '<div id="app">', "<script>thisFunctionDoesNotExist();</script><div id=\"app\">", 1))
    proc = subprocess.run(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", broken.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert "Uncaught ReferenceError: thisFunctionDoesNotExist" in proc.stderr
