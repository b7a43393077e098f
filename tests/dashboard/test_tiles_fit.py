"""Numbers fit their tiles (issue 19): real headless Chromium measures every KPI tile of the
Overview and Stream pages -- no text element wider than its box (``scrollWidth`` against
``clientWidth``), no text running past the tile's right edge -- on the real run's store
during its catch-up (the store as it was mid-replay: its metrics cut at a tick where the
stream was millions of event-seconds behind) and after it (caught up, live producer).

Also checks the catch-up state is said (a banner) and, after it, the tiles' averages cover
the steady part only. Screenshots go to ``tests/dashboard/artifacts/`` (``CHURN_SCREENSHOTS_DIR``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.dashboard.test_browser import ARTIFACTS, _screenshot, _settle, chromium, serve

pytestmark = pytest.mark.slow

# every element of a tile: wider content than its box, or text past the tile's right edge
OVERFLOW_JS = """
() => {
  const out = [];
  for (const tile of document.querySelectorAll('[data-testid="stMetric"]')) {
    const edge = tile.getBoundingClientRect().right;
    for (const el of tile.querySelectorAll('*')) {
      if (!el.innerText || !el.innerText.trim()) continue;
      if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
        out.push({text: el.innerText, scroll: el.scrollWidth, client: el.clientWidth});
      for (const node of el.childNodes) {
        if (node.nodeType !== Node.TEXT_NODE || !node.textContent.trim()) continue;
        const r = document.createRange(); r.selectNodeContents(node);
        const right = r.getBoundingClientRect().right;
        if (right > edge + 1) out.push({text: node.textContent, right: right, edge: edge});
      }
    }
  }
  return out;
}
"""


def catch_up_copy(src: Path, dest: Path) -> pd.Timestamp:
    """``src`` data dir copied to ``dest`` as it was mid-catch-up: the stream's metrics and
    autoscaler decisions after the first tick at which the stream was behind by more than a
    third of its peak lag are removed (everything left was written by the real run)."""
    from sqlalchemy import delete

    from dashboard import data
    from pipeline.store import Store, schema

    shutil.copytree(src, dest)
    with Store(f"sqlite:///{dest / 'churn.db'}") as store:
        ts = data.stream_timeseries(store.metrics_since(None))
        behind = ts[data.catching_up(ts["lag"], ts["events_per_s"], ts["lag_seconds"]) & (ts["lag"] > ts["lag"].max() / 3)]
        assert len(behind) >= 2, f"the real run has no catch-up to cut at:\n{ts}"
        cut = behind["time"].iloc[len(behind) // 2] + pd.Timedelta(seconds=0.999)
        at = store._since(cut.to_pydatetime(), "cut")  # the store's own time encoding
        with store.engine.begin() as conn:
            for table in (schema.stream_metrics, schema.autoscale_decisions):
                conn.execute(delete(table).where(table.c.time > at))
        assert not store.latest_metrics().empty
    return cut


def _tiles(page: object, path: str) -> tuple[list[dict], str]:
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 5",
                           timeout=60_000)  # fmt: skip
    _settle(page)
    page.wait_for_timeout(500)
    return page.evaluate(OVERFLOW_JS), page.inner_text("body")


@pytest.mark.parametrize("width", [1440, 1100])
def test_tiles_fit_during_catch_up_and_after(chromium_exe, populated, tmp_path, width) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    after = tmp_path / "after"
    shutil.copytree(populated["env"]["CHURN_DATA_DIR"], after)
    during = tmp_path / "during"
    cut = catch_up_copy(Path(populated["env"]["CHURN_DATA_DIR"]), during)
    for phase, data_dir in (("catchup", during), ("steady", after)):
        env = {**populated["env"], "CHURN_DATA_DIR": str(data_dir)}
        with serve(env, tmp_path / f"streamlit-{phase}.log") as url, chromium() as page:
            page.set_viewport_size({"width": width, "height": 900})
            for path in ("", "stream"):
                page.goto(f"{url}/{path}", wait_until="domcontentloaded")
                page.wait_for_function("t => document.body.innerText.includes(t)",
                                       arg="Last metrics tick" if path == "" else "Partitions", timeout=60_000)
                bad, body = _tiles(page, path)
                assert bad == [], f"{phase} /{path} at {width}px: tile text overflows: {bad}"
                banner = page.locator('[data-phase="catching_up"]').count()
                if phase == "catchup":
                    assert banner == 1, f"/{path}: no catching-up banner (metrics cut at {cut})"
                    assert "records behind" in body and " d of event time" in body, body[:600]
                else:
                    assert banner == 0, f"/{path}: still says catching up after the run caught up"
                    if path == "":
                        assert "Caught up at" in body and "steady" in body, body[:800]
                        assert "catch-up avg" not in body
                page.set_viewport_size({"width": width, "height": 900})
                if width == 1440:
                    page.evaluate("window.scrollTo(0, 0)")
                    _screenshot(page, f"{path or 'overview'}-{phase}")
