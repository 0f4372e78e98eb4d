"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright with its executable path set; nothing downloads a browser) on the tiny study.

Skipped when no Chromium is installed, unless ``PARETOMERGE_REQUIRE_BROWSER=1`` (CI sets it,
after installing Debian's ``chromium``): then a missing browser fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from app.data import list_studies, load_study

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(p) if (p := os.environ.get("PARETOMERGE_SCREENSHOTS")) else None


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser_path() -> str:
    path = chromium()
    if path is None:
        if os.environ.get("PARETOMERGE_REQUIRE_BROWSER") == "1":
            pytest.fail("PARETOMERGE_REQUIRE_BROWSER=1 but no chromium is installed")
        pytest.skip("no chromium installed (Debian: apt-get install chromium)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tiny_study, tmp_path):
    """``paretomerge dashboard`` (the installed console script) on a free localhost port."""
    exe = shutil.which("paretomerge") or str(Path(sys.executable).parent / "paretomerge")
    port = free_port()
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [exe, "dashboard", "--storage", tiny_study, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "dashboard.log").read_text())
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()  # the command became the server (exec): this stops the server
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        assert not _serving(port), "the dashboard server outlived its command"


def _serving(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _shown(key: str) -> re.Pattern:
    """What the trial picker shows for ``key``: the key, then its rank and probability."""
    return re.compile(rf"^{re.escape(key)}\s")


def _centre(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _settled_offset(ring, point, timeout: float = 20.0) -> float:
    """Largest x/y distance between the centres of ``ring`` and ``point``, once the
    page has stopped moving them (a Streamlit rerun can shift the chart after a click)."""
    deadline = time.monotonic() + timeout
    while True:
        boxes = ring.bounding_box(), point.bounding_box()  # None while a rerun redraws them
        offset = float("inf")
        if None not in boxes:
            (rx, ry), (px, py) = (_centre(box) for box in boxes)
            offset = max(abs(rx - px), abs(ry - py))
        if offset < 2 or time.monotonic() > deadline:
            return offset
        time.sleep(0.25)


def test_select_a_trial_read_its_detail_move_between_pages_and_reload(
    browser_path, served, tiny_study, tmp_path
):
    from playwright.sync_api import expect, sync_playwright

    data = load_study(list_studies([tiny_study])[0])
    knee = data.trials.loc[data.trials["knee"], "key"].iloc[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(f"{served}/front", wait_until="domcontentloaded")
        first = page.locator('[data-testid="stVegaLiteChart"]').first
        points = first.locator("g.trials_marks path")
        expect(points).to_have_count(len(data.trials), timeout=90_000)
        front = int(data.trials["on_front"].sum())
        expect(first.locator("g.front_marks path")).to_have_count(front)
        picker = page.get_by_role("combobox", name="Selected trial")
        expect(picker).to_have_value(_shown(knee))

        # a point with no other within 12 px (so the click cannot land on a neighbour)
        boxes = [points.nth(i).bounding_box() for i in range(points.count())]
        labels = [points.nth(i).get_attribute("aria-label") for i in range(points.count())]
        keys = [re.search(r"trial: ([^;]+)", label).group(1) for label in labels]
        centres = [_centre(b) for b in boxes]
        lonely = [
            i
            for i, (x, y) in enumerate(centres)
            if keys[i] != knee
            and all(abs(x - u) + abs(y - v) > 12 for j, (u, v) in enumerate(centres) if j != i)
        ]
        assert lonely, "no isolated point to click"
        target = lonely[0]
        page.mouse.click(*centres[target])
        expect(picker).to_have_value(_shown(keys[target]), timeout=60_000)
        # the selection is drawn on the chart clicked and on the others
        ring = first.locator("g.selected_marks path")
        expect(ring).to_have_count(1)
        # measured against the point where it is now: the rerun may move the chart
        clicked = points.nth(target)
        assert keys[target] in clicked.get_attribute("aria-label")
        assert _settled_offset(ring, clicked) < 2
        others = page.locator('[data-testid="stVegaLiteChart"]').nth(1)
        expect(others.locator("g.selected_marks path")).to_have_count(1)
        shot = tmp_path / "front.png"
        page.screenshot(path=str(shot))

        # its detail: the same trial, x, samples beside the base model's
        page.get_by_role("link", name=f"Open trial {keys[target]}").click()
        expect(page.get_by_role("heading", name="Trial detail")).to_be_visible(timeout=60_000)
        main = page.get_by_role("main")
        expect(picker).to_have_value(_shown(keys[target]))
        expect(main).to_contain_text(f"{keys[target]} · family")
        expect(main).to_contain_text("Sample generations, beside the base model's")
        expect(main).to_contain_text("Base model ·")
        page.screenshot(path=str(tmp_path / "trial.png"), full_page=True)

        # move between pages by the sidebar's links, then reload: the trial stays selected
        in_url = re.compile(rf"[?&]trial={re.escape(quote(keys[target], safe=''))}(&|$)")
        for name in ("Studies", "Convergence and comparison", "Front explorer"):
            page.get_by_role("link", name=name, exact=True).click()
            expect(page.get_by_role("heading", name=name)).to_be_visible(timeout=60_000)
            expect(page).to_have_url(in_url, timeout=30_000)
        expect(picker).to_have_value(_shown(keys[target]), timeout=60_000)
        page.reload(wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Front explorer")).to_be_visible(timeout=90_000)
        expect(picker).to_have_value(_shown(keys[target]), timeout=60_000)
        expect(page).to_have_url(in_url)
        browser.close()
    assert shot.stat().st_size > 10_000
    if SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOTS / "front.png")
        shutil.copy(tmp_path / "trial.png", SCREENSHOTS / "trial.png")
