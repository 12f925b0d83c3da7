"""The HTML report in a real browser: headless Chromium loads it from file:// and dumps the DOM.

The report's inline script writes on <body> how many images decoded (data-images-ok="k/n") and
how many resources failed or were blocked (data-load-errors). Skipped without Chromium, except
under CI=true (.ci/run installs it), where a missing browser fails the test.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_reports_fixtures import EVIL, SETTINGS, make_store
from vaebench.reports.report import write_report

CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")


def find_chromium() -> str:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    reason = "headless Chromium is not installed (apt-get install chromium) so the report is not tested in a browser"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


@pytest.fixture(scope="module")
def browser() -> str:
    return find_chromium()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    run = make_store(root / "run", seeds=(0, 1), settings=SETTINGS[:3], evil=True, failed=True)
    write_report(run, root / "report")
    return root / "report" / "report.html"


def test_report_renders_with_every_image_and_table(browser, report, tmp_path):
    n_images = report.read_text().count("<img ")
    assert n_images >= 10  # plots and 3 grids per setting
    dom = dump_dom(browser, report, tmp_path / "profile")
    attrs = body_attrs(dom)
    assert attrs.get("data-images-ok") == f"{n_images}/{n_images}", attrs
    assert attrs.get("data-load-errors") == "0", attrs
    assert '<table class="comparison">' in dom and '<table class="ranks">' in dom and '<table class="pairwise">' in dom
    assert dom.count("<tr>") > 10
    # the malicious strings are text in the rendered page, never elements
    assert EVIL not in dom and html.escape(EVIL, quote=False) in dom
    assert "alert(1)</script>" not in dom


def test_the_browser_check_catches_broken_and_external_images(browser, report, tmp_path):
    page = report.read_text()
    first = re.search(r'src="data:image/png;base64,[^"]*"', page).group(0)
    broken = page.replace(first, 'src="data:image/png;base64,iVBORw0KGgoAAAA="', 1)
    broken = broken.replace("</body>", '<img src="https://example.invalid/x.png" alt="external">\n</body>')
    path = tmp_path / "broken.html"
    path.write_text(broken)
    attrs = body_attrs(dump_dom(browser, path, tmp_path / "profile"))
    total = broken.count("<img ")
    assert attrs.get("data-images-ok") == f"{total - 2}/{total}", attrs
    assert int(attrs.get("data-load-errors", "0")) >= 2, attrs
    assert "csp:img-src" in attrs.get("data-load-error-list", ""), attrs  # the external image is blocked


def test_a_missing_browser_skips_locally_and_fails_under_ci(monkeypatch):
    import test_browser

    monkeypatch.setattr(test_browser, "CANDIDATES", ("no-such-browser-vaebench",))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        test_browser.find_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        test_browser.find_chromium()
