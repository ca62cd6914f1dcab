"""First paint of /dashboard in chromium, served by `chatlake app` over big tables.

Registers the Delta tables that benchmarks/analytics.py generated (``--keep
DIR``) as EXTERNAL tables of a catalog on loopback, starts two `chatlake app`
processes over that catalog, one loading plotly's cartesian build (the
default) and one Dash's full build (the baseline), and opens /dashboard in
fresh chromium contexts, alternating between the two. A paint ends when the
status line says "updated" and all nine charts have drawn.

The first load of each app is printed apart: it pays the worker's one-time
costs (imports, the catalog token, opening the tables). Target: the median
first paint <= 2 s.

    .venv/bin/python benchmarks/analytics.py --keep /tmp/bench   # runs this too
    .venv/bin/python benchmarks/first_paint.py /tmp/bench [--loads 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from playwright.sync_api import sync_playwright

from chatlake.app import dashboard
from chatlake.app.testing import CHROMIUM_ARGS, ChildProcess, free_port
from chatlake.catalog.client import CatalogClient
from chatlake.catalog.config import CatalogSettings
from chatlake.catalog.server import serve_in_thread
from chatlake.chat_tables import CHAT_TABLES
from chatlake.types import parse_columns

TARGET_MS = 2000
TIMEOUT_MS = 120_000
CHARTS = len(dashboard.CHARTS)


def register_tables(admin: CatalogClient, data: Path) -> None:
    """main.chatbot.<table> for each generated Delta table, where it lies."""
    admin.create_catalog("main")
    admin.create_schema("main", "chatbot")
    for spec in CHAT_TABLES:
        admin.create_table(
            f"main.chatbot.{spec.name}",
            parse_columns(spec.columns),
            spec.properties,
            storage_location=(data / spec.name).resolve().as_uri(),
        )


def start_app(catalog_url: str, data_dir: Path, build: str, log: Path) -> tuple:
    port = free_port()
    env = {
        "CHATLAKE_CATALOG_URL": catalog_url,
        "CHATLAKE_DATA_DIR": str(data_dir),
        "CHATLAKE_PLOTLY_BUILD": build,
        "ZEROBUS_SERVER_ENDPOINT": "",  # no telemetry: only the page is measured
    }
    args = ["app", "--port", str(port), "--data-dir", str(data_dir)]
    app = ChildProcess(args, log, env)
    url = f"http://127.0.0.1:{port}"
    app.wait_http(url + "/")
    return app, url


def first_paint_ms(browser, url: str) -> float:
    """One load of /dashboard in a new context (an empty cache), until drawn."""
    context = browser.new_context()
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url + "/dashboard")
        page.wait_for_selector("#dashboard-status >> text=updated", timeout=TIMEOUT_MS)
        drawn = f"document.querySelectorAll('.chart-grid .main-svg').length >= {CHARTS}"
        page.wait_for_function(drawn, timeout=TIMEOUT_MS)
        return (time.perf_counter() - started) * 1000
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="Dir of benchmarks/analytics.py --keep")
    parser.add_argument(
        "--loads", type=int, default=7, help="Timed loads per build (default 7)."
    )
    parser.add_argument(
        "--chromium",
        default=os.environ.get("CHATLAKE_CHROMIUM", "/usr/bin/chromium"),
        help="Chromium to drive [env CHATLAKE_CHROMIUM; default /usr/bin/chromium].",
    )
    args = parser.parse_args()
    if args.loads < 1:
        parser.error(f"--loads {args.loads}: at least one load is needed")
    if not (args.data / "chat_events" / "_delta_log").is_dir():
        parser.error(f"{args.data}: no chat_events table; run analytics.py --keep")
    if not Path(args.chromium).is_file():
        parser.error(f"no chromium at {args.chromium}")
    measure(args.data, args.loads, args.chromium)


def measure(data: Path, loads: int, chromium: str) -> None:
    """Time first paints of both builds over the tables in ``data``; print them."""
    work = Path(tempfile.mkdtemp(prefix="chatlake-paint-"))
    settings = CatalogSettings(data_dir=work / "data", port=0)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        catalog = stack.enter_context(serve_in_thread(settings))
        admin = CatalogClient.local_admin(catalog.url, catalog.data_dir)
        stack.callback(admin.close)
        register_tables(admin, data)

        apps = {}
        for build in ("cartesian", "full"):
            app, url = start_app(catalog.url, catalog.data_dir, build, work / build)
            stack.callback(app.stop)
            apps[build] = url

        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        stack.callback(browser.close)

        firsts = {build: first_paint_ms(browser, url) for build, url in apps.items()}
        samples = {build: [] for build in apps}
        for _ in range(loads):
            for build, url in apps.items():
                samples[build].append(first_paint_ms(browser, url))

    report(firsts, samples)


def report(firsts: dict[str, float], samples: dict[str, list[float]]) -> None:
    medians = {build: statistics.median(times) for build, times in samples.items()}
    print(f"{'plotly.js':10} {'first load ms':>14} {'median ms':>10} {'range ms':>14}")
    for build, times in samples.items():
        spread = f"{min(times):.0f}-{max(times):.0f}"
        print(f"{build:10} {firsts[build]:14.0f} {medians[build]:10.0f} {spread:>14}")
    ratio = medians["cartesian"] / medians["full"]
    verdict = "met" if medians["cartesian"] <= TARGET_MS else "missed"
    print(
        f"\nfirst paint: median {medians['cartesian']:.0f} ms, {ratio:.2f}x the full "
        f"build's; target <= {TARGET_MS} ms: {verdict}"
    )


if __name__ == "__main__":
    main()
