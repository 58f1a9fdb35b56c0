"""The HTML conformance matrix: self-contained, and in a real headless browser (Debian's chromium)
it loads, shows every adapter, and opens a planted failure's case, reproducer and clause text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnspec.conformance.matrix import anchor

ROOT = Path(__file__).resolve().parents[1]
PLANTED = "tests/adapters/variants.py:NoMomentumCheck"  # fails arg-momentum-range (BN-ARG-5)
CRASHING = "tests/adapters/faulty.py:ExitOnNegativeEps"  # dies in arg-negative-eps
ADAPTERS = ("reference", PLANTED, CRASHING)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("matrix")
    p = subprocess.run([sys.executable, "-m", "bnspec", "matrix", *ADAPTERS, "--examples", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 1, p.stdout + p.stderr  # two of the three do not conform
    assert "Traceback" not in p.stdout + p.stderr
    return out / "conformance.html"


def test_page_is_self_contained(page):
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    # No server, no network: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html, re.I)
    assert "<link" not in html and "@import" not in html
    for target in ADAPTERS:
        assert f'<th scope="col" class="adapter">{target}</th>' in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(url: str, profile: Path) -> str:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium here (Debian: apt-get install chromium)")
    p = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "</html>" in p.stdout, p.stderr[-2000:]
    return p.stdout


def test_browser_shows_every_adapter_and_opens_the_planted_failure(page, tmp_path):
    """BN-ARG-5: the planted failure's cell opens its minimal case, reproducer and clause text."""
    finding = "f-" + anchor(PLANTED, "arg-momentum-range")
    dom = dump_dom(page.as_uri() + "#" + finding, tmp_path / "profile")
    headers = re.findall(r'<th scope="col" class="adapter">([^<]*)</th>', dom)
    assert headers == list(ADAPTERS)
    # The grid a reader came for is the first table of the page; its first row holds each verdict.
    first = re.search(r"<table[^>]*>", dom).group(0)
    assert 'class="results"' in first, first
    assert re.search(r'<tr class="verdict"><th scope="row">verdict</th><td></td><td class="pass">conforms</td>', dom)
    cell = re.search(rf'<td class="cell fail"[^>]*><a href="#{finding}">fail', dom)
    assert cell, "the planted failure's cell is not marked fail with a link to its case"
    opened = re.search(rf'<details class="finding" id="{finding}" open="">(.*?)</details>', dom, re.S)
    assert opened, "following the cell's link did not open its case"
    body = opened.group(1)
    assert "Minimal case:" in body and "momentum=1.5" in body
    assert "bnspec.Case(" in body and "bnspec.load(" in body  # the reproducer
    assert "BN-ARG-5" in body and "MUST raise" in body  # the clause's own text
    # The crashing adapter's cells say crash and link to their case too; the others stay closed.
    crash = "f-" + anchor(CRASHING, "arg-negative-eps")
    assert re.search(rf'<td class="cell crash"[^>]*><a href="#{crash}">crash', dom)
    assert f'<details class="finding" id="{crash}">' in dom and "exit status 3" in dom
    assert len(re.findall(r'<details class="finding"[^>]* open=""', dom)) == 1
