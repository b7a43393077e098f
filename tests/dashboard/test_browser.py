"""One real-browser test: ``streamlit run`` + Debian Chromium driven by Playwright.

Starts the app on a free 127.0.0.1 port against the small real run's data dir and MLflow
registry (``populated``), visits every page, checks that KPIs and Plotly charts render with
data and no exception box shows, and saves a full-page screenshot per page to
``tests/dashboard/artifacts/`` (git-ignored; ``CHURN_SCREENSHOTS_DIR`` overrides it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from tests.needs import need_chromium

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CHURN_SCREENSHOTS_DIR") or Path(__file__).parent / "artifacts")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
# page url path -> (selector that must show with data, minimum count)
PAGES = {
    "": ('[data-testid="stMetric"]', 8),
    "stream": (".js-plotly-plot", 6),
    "risk": (".js-plotly-plot", 2),
    "revenue": (".js-plotly-plot", 1),
    "drift": (".js-plotly-plot", 2),
    "model": ('[data-testid="stDataFrame"]', 2),
}
# ... and the text its script writes last (so the screenshot shows the finished page)
LAST = {"": "Last metrics tick", "stream": "Partitions (kafka-consumer-groups style)",
        "risk": "Risk history", "revenue": "Best K on this grid", "drift": "Latest Evidently report",
        "model": "All versions"}  # fmt: skip

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)  # polling a server we do not control: no event to wait on
    raise TimeoutError(f"{url} not healthy after {timeout_s} s")


@contextmanager
def serve(app_env: dict[str, str], log_path: Path, refresh_s: float = 3) -> Iterator[str]:
    """``streamlit run`` on a free port with ``app_env``; stopped (by pid) on exit."""
    port = _free_port()
    env = {**os.environ, **app_env, "CHURN_DASHBOARD_REFRESH_S": str(refresh_s),
           "MLFLOW_DISABLE_TELEMETRY": "true"}  # fmt: skip
    env.pop("CHURN_STORE_URL", None)
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (new session)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@contextmanager
def answering() -> Iterator[str]:
    """A local HTTP server standing in for the MLflow UI (the Model page links only to a
    service that answers); stopped on exit."""
    import http.server
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.fixture
def server(populated, tmp_path) -> Iterator[tuple[str, Path]]:
    """The app on a private copy of the populated data dir (the test writes to it); an
    answering "MLflow UI", and a Prefect UI URL where nothing listens."""
    data_dir = tmp_path / "data"
    shutil.copytree(populated["env"]["CHURN_DATA_DIR"], data_dir)
    with answering() as mlflow_ui:
        env = {**populated["env"], "CHURN_DATA_DIR": str(data_dir), "CHURN_MLFLOW_UI_URL": mlflow_ui,
               "CHURN_PREFECT_UI_URL": f"http://127.0.0.1:{_free_port()}"}
        with serve(env, tmp_path / "streamlit.log") as url:
            yield url, data_dir


def _new_tick(data_dir: Path) -> None:
    """The stream writes one more tick: every partition at lag 0, 999 events/s each."""
    from pipeline.store import Store, StreamMetric

    with Store(f"sqlite:///{data_dir / 'churn.db'}") as store:
        latest = store.latest_metrics()
        t = latest["time"].max().to_pydatetime() + timedelta(seconds=5)
        store.record_metrics([
            StreamMetric(time=t, worker=w, partition=int(p), lag=0, lag_seconds=0.0,
                         status="OK", events=4_995, events_per_s=999.0, dead_letters=0)
            for p, w in zip(latest["partition"], latest["worker"], strict=True)
        ])  # fmt: skip


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=need_chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1440, "height": 900})
        finally:
            browser.close()


def _settle(page: object) -> None:
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)


def _screenshot(page: object, name: str) -> None:
    # Streamlit scrolls inside its main container: grow the viewport to its content first
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('section, div')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1440, "height": min(max(height, 900), 6000)})
    page.wait_for_timeout(800)  # let Plotly re-lay out to the new size
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.set_viewport_size({"width": 1440, "height": 900})


def test_every_page_renders_in_chromium(chromium_exe, server, populated) -> None:
    server, data_dir = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as page:
        for path, (selector, minimum) in PAGES.items():  # each URL loaded directly (a bookmark)
            t0 = time.monotonic()
            page.goto(f"{server}/{path}", wait_until="domcontentloaded")
            page.wait_for_selector(selector, timeout=60_000)
            page.wait_for_function(
                "([s, n]) => document.querySelectorAll(s).length >= n",
                arg=[selector, minimum], timeout=60_000,
            )  # fmt: skip
            print(f"/{path}: {minimum} x {selector} after {time.monotonic() - t0:.1f} s")
            page.wait_for_function("t => document.body.innerText.includes(t)", arg=LAST[path],
                                   timeout=60_000)  # fmt: skip
            _settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0, path
            body = page.inner_text("body")
            assert "Traceback" not in body and "no data yet" not in body, path
            nav = page.inner_text('[data-testid="stSidebarNav"]')
            assert "Overview" in nav and "app" not in nav.split(), path  # the app's navigation
            if path == "":
                assert page.locator("[data-level]").count() == 1  # the alert banner
                assert f"{populated['users']:,}" in body  # users scored
                # the champion tile fills in once MLflow loaded in the background
                page.wait_for_function(
                    "v => document.body.innerText.includes(v)", arg=f"v{populated['champion']}",
                    timeout=90_000,
                )  # fmt: skip
            if path in ("stream", "risk", "revenue", "drift"):
                assert page.locator('[data-testid="stMetric"]').count() >= 4, path
            if path == "revenue":
                page.wait_for_function(
                    "() => document.querySelectorAll('[data-testid=stSliderThumbValue]').length == 5",
                    timeout=30_000,
                )  # fmt: skip
            if path == "drift":  # the Evidently report, rendered inside its iframe
                page.frame_locator("iframe").first.locator("text=Dataset Drift").first.wait_for(
                    timeout=60_000)  # fmt: skip
            if path == "risk":
                assert populated["top_user"] in body
            if path == "drift":  # (table cells are drawn on a canvas: not in innerText)
                assert "Critical" in body and "Retrain decisions" in body
                assert page.locator('[data-testid="stDataFrame"]').count() == 1  # the events
            if path == "model":
                assert f"Champion: v{populated['champion']}" in body
                assert page.locator('a[href*="#/models/churn/versions/"]').count() >= 1  # MLflow answers
                assert page.locator('a[href*="/runs/flow-run/"]').count() == 0  # Prefect does not: no link
                assert "Not running: Prefect" in body
            _screenshot(page, path or "overview")
        # live refresh: a new metrics tick shows up on the Overview without a page reload
        page.goto(server, wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)
        _settle(page)
        page.evaluate("window.__sameDocument = 42")
        _new_tick(data_dir)
        # the banner is the worse of the stream's health (now Healthy) and the newest drift check
        level = populated["drift_level"]
        from pipeline.humanize import count
        from tests.dashboard.realrun import PARTITIONS

        rate = count(999.0 * PARTITIONS)  # the tile's compact figure of the new tick ("4.00k")
        page.wait_for_function(
            f"() => [...document.querySelectorAll('[data-testid=stMetricValue]')].some(e => e.innerText === '{rate}')"
            f" && document.querySelector('[data-level]')?.dataset.level === '{level}'",
            timeout=30_000,
        )  # fmt: skip
        if level != "Healthy":
            assert "drift of v" in page.locator("[data-level]").inner_text()
        assert page.evaluate("window.__sameDocument") == 42  # no reload happened


def test_fresh_install_says_what_to_run(chromium_exe, empty, tmp_path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve(empty["env"], tmp_path / "streamlit.log") as url, chromium() as page:
        for path in PAGES:
            page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            page.wait_for_selector('[data-testid="stAlert"]', timeout=60_000)
            _settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0, path
            assert "churn " in page.inner_text('[data-testid="stAlert"] >> nth=0'), path  # the command to run
            _screenshot(page, f"empty-{path or 'overview'}")
    assert not list(Path(empty["root"]).iterdir())  # the dashboard created nothing
