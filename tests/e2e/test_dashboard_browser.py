"""The dashboard in a real browser: headless Chromium (Debian's package, installed here with
apt-get when missing) driven by Playwright, over a ledger seeded with the known sample rows.

Checks the numbers the page shows against the sample's hand-computed totals, moves the what-if
threshold with the keyboard and checks the projection, opens a query's ledger row, and saves a
screenshot to test-artifacts/dashboard.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from orchestrator.config.tenants import TenantSettings
from orchestrator.dashboard import StatsSource, dashboard_router
from orchestrator.dashboard.tenants import tenants_router
from orchestrator.errors import NotFound, SpillwayError, Unauthorized
from orchestrator.ledger import Ledger
from orchestrator.ledger.periods import month_bounds
from tests import dashboard_sample as sample

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_KEY, USER_KEY = "sk-admin-browser", "sk-user-browser"
TENANTS = [
    TenantSettings(name="acme", api_keys=[USER_KEY], monthly_budget_usd=Decimal("1.00")),
    TenantSettings(name="beta", api_keys=["sk-beta"], requests_per_minute=60),
]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api")


def _install_chromium() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is missing and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for command in (
        ["apt-get", *lock, "update"],
        [
            "apt-get",
            *lock,
            "install",
            "-y",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
        ],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{' '.join(command)} failed: {done.stderr[-800:]}"


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        _install_chromium()
    return CHROMIUM


class _Caller:
    def __init__(self, name: str, admin: bool):
        self.name, self.admin = name, admin


def _authorize(request: Request) -> _Caller:
    key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if key == ADMIN_KEY:
        return _Caller("ops", True)
    if key == USER_KEY:
        return _Caller("acme", False)
    raise Unauthorized("Incorrect API key provided.")


def _app(ledger: Ledger, url: str) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(SpillwayError)
    async def _error(_: Request, exc: SpillwayError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/v1/queries/{query_id}")  # what the ingress serves; the page links to it
    def query_row(query_id: str, request: Request) -> dict[str, Any]:
        _authorize(request)
        row = ledger.get(query_id)
        if row is None:
            raise NotFound(f"No query with id '{query_id}'.")
        return {
            k: (str(v) if not isinstance(v, int | float | bool | None) else v)
            for k, v in row.items()
        }

    app.include_router(
        dashboard_router(StatsSource(url), authorize=_authorize, policy=sample.THRESHOLDS)
    )
    app.include_router(tenants_router(StatsSource(url), TENANTS, authorize=_authorize))
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    url = f"sqlite:///{tmp_path_factory.mktemp('ledger')}/ledger.db"
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ledger = Ledger(url)
    ledger.start()
    sample.seed(ledger, midnight - timedelta(days=2))  # both sample days lie in "last 7 days"
    port = _free_port()
    config = uvicorn.Config(_app(ledger, url), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)
    ledger.close()


@pytest.fixture()
def page(chromium: Path, tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def _text(page: Any, selector: str, expected: str) -> None:
    sync_api.expect(page.locator(selector)).to_have_text(expected, timeout=15_000)


def _acme_spend_this_month(now: datetime) -> Decimal:
    """acme's cost in the seeded rows that fall in `now`'s calendar month (UTC): the sample's
    two days straddle a month's start on the first two days of every month."""
    first_day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    month_start, _ = month_bounds(now)
    return sum(
        (
            r.cost_usd
            for r in sample.rows(first_day)
            if r.tenant == "acme" and r.created_at >= month_start
        ),
        Decimal(0),
    )


def test_dashboard_in_chromium(server: str, page: Any) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/dashboard")

    page.fill("#key-input", USER_KEY)  # a tenant key without admin: refused, form stays
    page.click("#key-form button[type=submit]")
    _text(page, "#key-error", "The dashboard and stats need an admin API key.")

    page.fill("#key-input", ADMIN_KEY)
    page.click("#key-form button[type=submit]")
    _text(page, "#s-queries", "10")
    _text(page, "#s-cost", "$0.1270")
    _text(page, "#s-baseline", "$0.1860")
    _text(page, "#s-savings", "$0.0590")
    _text(page, "#s-escalation", "40.0%")
    _text(page, "#expensive-table tbody tr:first-child td:first-child", "q-a2")
    _text(page, "#latest-table tbody tr:first-child td:first-child", "q-a5")
    first_day = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d")
    _text(page, "#router-versions tbody tr:first-child td:nth-child(3)", f"{first_day} 00:00")
    # The sample's rows predate adapter versions (ledger migration 0005): the panel says so.
    _text(page, "#versions-table tbody td", "No query used a versioned adapter in this range.")

    page.select_option("#w-route", "math")
    _text(page, "#w-value", "0.60")
    _text(page, "#w-projected-rate", "50.0%")
    _text(page, "#w-projected-cost", "$0.0920")
    page.focus("#w-threshold")
    for _ in range(30):  # 0.60 -> 0.90, one 0.01 step a key press
        page.keyboard.press("ArrowRight")
    _text(page, "#w-value", "0.90")
    _text(page, "#w-projected-rate", "83.3%")  # 5 of math's 6 queries
    _text(page, "#w-projected-cost", "$0.1420")

    spent = _acme_spend_this_month(datetime.now(UTC))  # $0.0790 when both days are this month
    acme = "#tenants-table tbody tr:first-child"
    _text(page, f"{acme} td:first-child", "acme")
    _text(page, f"{acme} td:nth-child(3)", "$1.00")
    _text(page, f"{acme} td:nth-child(4)", f"${spent:.4f}")
    _text(page, f"{acme} td:nth-child(5)", f"{spent / Decimal('1.00'):.1%}")
    _text(page, "#tenants-table tbody tr:nth-child(2) td:nth-child(2)", "60")

    page.click("#expensive-table a[data-query=q-a2]")
    sync_api.expect(page.locator("#row-json")).to_contain_text('"query_id": "q-a2"')
    page.click("#row-dialog button")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.select_option("#f-tenant", "beta")
    page.click("#filters button[type=submit]")
    _text(page, "#s-queries", "4")
    _text(page, "#s-cost", "$0.0480")
    assert errors == []
