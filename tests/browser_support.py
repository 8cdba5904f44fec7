"""Fixtures for the end-to-end tests: one Streamlit server, one headless Chromium (Debian's).

The server is `streamlit run streamlit_app.py` on a free port, started once per test module
and torn down after it; the browser is Debian's /usr/bin/chromium driven by Playwright
(`playwright install` is not needed).  Console errors and page errors are collected per page
and every test asserts there are none.  Screenshots go to test-artifacts/browser/.
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

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("SOP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Opening a page's own URL (e.g. /compare) makes Streamlit's frontend probe that path as a
# base URL first (GET /compare/_stcore/health, host-config -> 404) before falling back to
# the root: browser noise from Streamlit itself, not an app error.
BENIGN = [re.compile(r"/(explain|compare|mistakes|theory|science)/_stcore/(health|host-config)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    def __init__(self, port: int, log: Path):
        self.port, self.log = port, log
        self.url = f"http://localhost:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> "StreamlitServer":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
        cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(self.port),
               "--server.headless", "true", "--server.address", "localhost"]
        self._log_file = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy within {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, "_log_file", None):
            self._log_file.close()


class ConsoleWatch:
    """Console messages of type error and uncaught page errors of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        text = f"{msg.text} @ {where}"
        if any(p.search(where) or p.search(msg.text) for p in BENIGN):
            return
        self.errors.append(text)

    def take(self) -> list[str]:
        out, self.errors = self.errors, []
        return out


def require_browser() -> None:
    if not Path(CHROMIUM).is_file() and not shutil.which(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")


def running_server(log_name: str):
    """A Streamlit server for one test module, logging to test-artifacts/browser/<log_name>; a module
    fixture's body: `yield from running_server("server_x.log")` (skips when no browser is installed)."""
    require_browser()
    srv = StreamlitServer(free_port(), ARTIFACTS / log_name).start()
    try:
        yield srv
    finally:
        srv.stop()


def wait_idle(page, timeout: float = 120.0) -> None:
    """Wait until the script run finished (Streamlit's 'Running…' status widget is gone)."""
    page.wait_for_timeout(300)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.locator("[data-testid='stStatusWidget']").count() == 0:
            page.wait_for_timeout(200)
            if page.locator("[data-testid='stStatusWidget']").count() == 0:
                return
        page.wait_for_timeout(250)
    raise TimeoutError("the app is still running after %.0fs" % timeout)


def screenshot(page, name: str, *, docs: bool = False, full: bool = True) -> Path:
    """Save a screenshot under test-artifacts/browser/ (and, when SOP_DOCS_SCREENSHOTS=1 and
    docs=True, a downscaled copy under docs/screenshots/)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # Streamlit scrolls inside its own container, so grow the viewport to the content's height
    size = page.viewport_size
    if full:
        height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
                               "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight), 800)")
        page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 5000)})
        page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    if full:
        page.set_viewport_size(size)
    if docs and os.environ.get("SOP_DOCS_SCREENSHOTS") == "1":
        docs_copy(path)
    return path


def docs_copy(path: Path, width: int = 960, colours: int = 64) -> Path:
    """A small copy of a screenshot for docs/screenshots/ (downscaled, palette PNG, ~100 KB)."""
    from PIL import Image
    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    img = Image.open(path).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    img = img.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    out = DOCS_SHOTS / Path(path).name
    img.save(out, optimize=True)
    return out
