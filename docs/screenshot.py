"""Screenshot a running dashboard with Debian's Chromium (headless, Playwright; nothing downloaded).

    python docs/screenshot.py http://127.0.0.1:8501 docs/dashboard.png               # one page
    python docs/screenshot.py http://127.0.0.1:8501 docs/dashboard-{page}.png \\
        --pages overview,drift,model --full                                           # several, whole pages
    python docs/screenshot.py http://127.0.0.1:8501/drift docs/x.png --scroll-to "Retrain decisions"

Each page is loaded, waited for until its script has written its last element (so no
half-rendered page), every Plotly chart has drawn and Streamlit's "running" indicator is
gone. Run the dashboard with a long ``CHURN_DASHBOARD_REFRESH_S`` (e.g. 600) so a live
refresh does not dim the page mid-shot. ``--check-tiles`` also fails (exit 1) if any KPI
tile's text overflows its box (the browser test's measure).
"""

from __future__ import annotations

import argparse
import sys

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
# page -> the text its script writes last
LAST = {"overview": "Last metrics tick", "stream": "Partitions", "risk": "Risk history",
        "revenue": "Best K on this grid", "drift": "Latest Evidently report", "model": "All versions"}  # fmt: skip
OVERFLOW_JS = """
() => [...document.querySelectorAll('[data-testid="stMetric"] *')]
  .filter(e => e.innerText && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
  .map(e => e.innerText)
"""


def shoot(page: object, url: str, out: str, last: str | None, full: bool, width: int, height: int,
          scroll_to: str | None = None) -> list[str]:
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url, wait_until="domcontentloaded", timeout=90_000)
    page.wait_for_selector('[data-testid="stMetric"], [data-testid="stAlert"], .js-plotly-plot', timeout=90_000)
    if last:
        page.wait_for_function("t => document.body.innerText.includes(t)", arg=last, timeout=90_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=90_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.main-svg'))",
        timeout=60_000,
    )  # fmt: skip
    if full:  # Streamlit scrolls inside its own container: grow the viewport to the content
        tall = page.evaluate("() => Math.max(...[...document.querySelectorAll('section, div')].map(e => e.scrollHeight))")
        page.set_viewport_size({"width": width, "height": min(max(tall, height), 6000)})
    page.wait_for_timeout(1500)  # Plotly re-lays out to the new size
    # tables draw on a canvas and iframes (the Evidently report) load after the resize
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stDataFrame]')].every(d => d.querySelector('canvas'))"
        " && [...document.querySelectorAll('iframe')].every(f => f.contentDocument"
        " && f.contentDocument.readyState === 'complete' && f.contentDocument.body"
        " && f.contentDocument.body.innerText.length > 50)",
        timeout=90_000,
    )  # fmt: skip
    page.wait_for_timeout(3000)
    if full:  # the loaded tables and iframes made the page taller: measure again
        tall = page.evaluate("() => Math.max(...[...document.querySelectorAll('section, div')].map(e => e.scrollHeight))")
        page.set_viewport_size({"width": width, "height": min(max(tall, height), 6000)})
        page.wait_for_timeout(2000)
    if scroll_to:  # a heading to bring to the top of the first screen
        page.get_by_text(scroll_to, exact=True).first.evaluate("e => e.scrollIntoView()")
        page.wait_for_timeout(1500)
    page.screenshot(path=out, full_page=full)
    return page.evaluate(OVERFLOW_JS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="the dashboard's base URL (with --pages) or one page's URL")
    ap.add_argument("out", help="PNG path; with --pages, '{page}' in it is replaced by each page's name")
    ap.add_argument("--pages", default="", help="comma-separated: overview,stream,risk,revenue,drift,model")
    ap.add_argument("--full", action="store_true", help="the whole page, not just the first screen")
    ap.add_argument("--check-tiles", action="store_true", help="exit 1 if a tile's text overflows")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--width", type=int, default=1440)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--scroll-to", default=None, help="text of a heading to scroll to the top before the shot")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    pages = [p for p in args.pages.split(",") if p] or [None]
    bad = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for name in pages:
                url = args.url if name is None else f"{args.url.rstrip('/')}/{'' if name == 'overview' else name}"
                out = args.out if name is None else args.out.replace("{page}", name)
                over = shoot(page, url, out, LAST.get(name or ""), args.full, args.width, args.height,
                             args.scroll_to)
                print(f"saved {out}" + (f" (tile overflow: {over})" if over else ""))
                if over:
                    bad[name] = over
        finally:
            browser.close()
    return 1 if bad and args.check_tiles else 0


if __name__ == "__main__":
    sys.exit(main())
