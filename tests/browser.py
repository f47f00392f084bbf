"""Headless Chromium for the browser tests, driven by Playwright: Debian's chromium (`make test`
installs it; SELFPLAY_CHROMIUM names another binary), never a browser Playwright downloads."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The flags this machine needs: no sandbox as root, no GPU, and none of Chromium's own network
# traffic (the closed network refuses it, many connections at a time).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("SELFPLAY_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"))


def chromium_path() -> str:
    path = os.environ.get("SELFPLAY_CHROMIUM", "/usr/bin/chromium")
    assert Path(path).exists(), f"no Chromium at {path}: run `make browser` (Debian's chromium) or set SELFPLAY_CHROMIUM"
    return path


@contextmanager
def page() -> Iterator[tuple[Any, list[str]]]:
    """A new page in a fresh headless Chromium, and the errors it logs (console errors and
    uncaught exceptions) as they come."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            tab.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            yield tab, errors
        finally:
            browser.close()


def keep_screenshot(tab: Any, name: str) -> Path:
    """A full-page screenshot kept as a test artifact (runs/test-artifacts/, or SELFPLAY_TEST_ARTIFACTS)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def drawn_figures(report: Path, name: str) -> list[str]:
    """`selfplay report`'s page opened from disk in Chromium: the ids of the figures whose image
    the browser decoded and laid out (wider than 100 px); asserts the page logged no error and
    keeps its screenshot as `<name>.png`."""
    with page() as (tab, errors):
        tab.goto(report.resolve().as_uri(), wait_until="load")
        drawn = tab.evaluate("""() => [...document.querySelectorAll('figure')].filter(f => {
            const img = f.querySelector('img');
            return img && img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 100;
        }).map(f => f.id)""")
        keep_screenshot(tab, name)
        assert errors == [], errors
    return drawn
