"""Screenshot a running dashboard with Debian's Chromium (headless, Playwright; nothing downloaded).

    python docs/screenshot.py http://127.0.0.1:8501 docs/dashboard.png            # overview
    python docs/screenshot.py http://127.0.0.1:8501/drift docs/dashboard-drift.png
    python docs/screenshot.py http://127.0.0.1:8501/drift docs/x.png --scroll-to "Retrain decisions"

Used for the README's images against a running `make demo`.
"""

from __future__ import annotations

import argparse
import sys

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--width", type=int, default=1440)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=8.0, help="seconds to let charts render after load")
    ap.add_argument("--wait-for", default='[data-testid="stMetric"], .js-plotly-plot', help="CSS selector to wait for")
    ap.add_argument("--scroll-to", default=None, help="text of a heading to scroll to the top before the shot")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(args.url, wait_until="networkidle", timeout=90_000)
            page.wait_for_selector(args.wait_for, timeout=90_000)
            page.wait_for_timeout(args.settle * 1000)
            if args.scroll_to:
                page.get_by_text(args.scroll_to, exact=True).first.evaluate("e => e.scrollIntoView()")
                page.wait_for_timeout(1500)
            page.screenshot(path=args.out, full_page=False)
        finally:
            browser.close()
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
