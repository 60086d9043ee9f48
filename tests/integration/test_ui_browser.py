"""The dashboard in a real browser: Debian's headless Chromium, driven by Selenium.

The stack is real (Kafka, the sink and its endpoint, and ``fleetlog ui`` started as
the ``ui`` component, exactly as ``fleetlog up`` starts it); runs are logged
through the SDK. Screenshots land in ``test-artifacts/ui/`` (and in the folder
``FLEETLOG_SCREENSHOTS`` names, which is how ``make screenshots`` refreshes the
README's). Every wait polls the page with a deadline.
"""

from __future__ import annotations

import functools
import os
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polling
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

import fleetlog
from fleetlog import query as q
from fleetlog.config import Settings
from fleetlog.localkafka import LocalKafka, free_port
from fleetlog.stack import SINK, UI, LocalStack
from fleetlog.ui.app import DIST

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
STEPS = 6000


# The page changes under the driver while it is polled: a stale element is "not yet".
wait_for = functools.partial(
    polling.wait_for, every=0.25, retry_on=(AssertionError, StaleElementReferenceException, WebDriverException)
)


@pytest.fixture(scope="module")
def ui_stack(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if not (DIST / "app.js").is_file():
        pytest.fail("the dashboard's front end is not built: run `make ui` (make test does)")
    home = tmp_path_factory.mktemp("ui")
    settings = Settings.build(
        home=home,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"u{uuid.uuid4().hex[:10]}",
        http_port=free_port(),
        ui_port=free_port(),
        flush_interval_seconds=0.1,
        sink_batch_seconds=0.3,
        telemetry_interval_seconds=0.5,
        outputs_dir="",
    )
    stack = LocalStack(settings)
    stack.start(SINK)
    stack.start(UI)
    yield stack
    stack.stop(UI)
    stack.stop(SINK)


def _curves(seed: int, lr: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = np.arange(STEPS, dtype=np.float64)
    loss = 0.2 + 2.2 * np.exp(-s * lr * 3) * (1 + 0.08 * rng.standard_normal(STEPS))
    return {"train/loss": loss, "train/accuracy": np.clip(1 - loss / 2.4, 0, 1), "train/lr": lr * (1 - s / STEPS)}


@pytest.fixture(scope="module")
def runs(ui_stack: LocalStack) -> Iterator[dict[str, Any]]:
    """Two finished runs with different learning rates, logged through the SDK, and a live one."""
    exp = fleetlog.Experiment("ui-demo", settings=ui_stack.settings)
    ids: dict[str, Any] = {}
    for i, lr in enumerate((1e-3, 3e-4)):
        with exp.start_logging(run_id=f"ui-{i}-{uuid.uuid4().hex[:4]}", display_name=f"lr {lr:g}") as run:
            ids[f"run{i}"] = run.id
            run.log_params({"lr": lr, "model": {"layers": 12, "width": 768}, "seed": i})
            run.set_tags({"team": "vision", "dataset": "cifar10"})
            curves = _curves(i, lr)
            for step in range(STEPS):
                run.log_metrics({name: float(values[step]) for name, values in curves.items()}, step=step)
                if step % 1000 == 0:
                    run.log_text(f"step {step}: loss {curves['train/loss'][step]:.4f}")
            run.log_table("per_class", {"class": ["cat", "dog", "ship"], "accuracy": [0.91, 0.88, 0.95]})
    live = exp.start_logging(run_id=f"ui-live-{uuid.uuid4().hex[:4]}", display_name="still training")
    ids["live"] = live.id
    live.log_params({"lr": 1e-3, "seed": 7})
    for step in range(200):
        live.log("train/loss", 2.0 / (1 + step / 50), step=step)
    live.flush()

    def landed() -> bool:
        n = q.sql("SELECT count() AS n FROM metric_points WHERE metric = 'train/loss'", settings=ui_stack.settings)
        return int(n["n"].iloc[0]) == 2 * STEPS + 200 and len(q.runs(settings=ui_stack.settings)) == 3

    wait_for(landed, 120, "the runs to land")
    ids["_live_run"] = live
    yield ids
    live.complete()
    exp.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (make browser-deps installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    drv = webdriver.Chrome(service=Service(driver), options=options)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def shot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    extra = os.environ.get("FLEETLOG_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{name}.png", Path(extra) / f"dashboard-{name}.png")


def chart(browser: WebDriver, metric: str) -> dict[str, str]:
    el = browser.find_element(By.CSS_SELECTOR, f'.chart[data-metric="{metric}"]')
    return {k: el.get_attribute(f"data-{k}") or "" for k in ("points", "series", "source", "bucket", "loads")}


def test_status_reports_the_dashboard_address(ui_stack):
    report = ui_stack.status()
    assert report["ui"]["state"] == "running" and report["ui"]["address"] == ui_stack.settings.ui.url
    with urllib.request.urlopen(f"{ui_stack.settings.ui.url}/api/health", timeout=10) as resp:
        assert resp.status == 200


def test_runs_table_run_page_zoom_and_compare(ui_stack, runs, browser):
    base = ui_stack.settings.ui.url
    browser.get(f"{base}/#/")
    rows = wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")) == 3, what="3 rows")
    assert rows
    table = browser.find_element(By.ID, "runs-table").text
    assert runs["run0"] in table and "Running" in table and "vision" in table
    shot(browser, "runs")

    # Open a run from the table: its loss chart shows the logged series, downsampled on the server.
    browser.find_element(By.CSS_SELECTOR, f'a[href="#/run/{runs["run0"]}"]').click()
    wait_for(lambda: int(chart(browser, "train/loss")["points"] or 0) > 100, what="the loss chart")
    loss = chart(browser, "train/loss")
    assert loss["series"] == "1" and loss["source"] in ("downsample", "rollup") and int(loss["bucket"]) > 1
    assert "lr 0.001" in browser.find_element(By.CSS_SELECTOR, ".run-head").text
    wait_for(lambda: "step 5000" in browser.find_element(By.ID, "logs").text, what="log lines")
    assert "per_class" in browser.page_source
    shot(browser, "run")

    # Zoom: drag across a fifth of the chart; the chart refetches that range at a finer resolution.
    over = browser.find_element(By.CSS_SELECTOR, '.chart[data-metric="train/loss"] .u-over')
    width = over.size["width"]
    ActionChains(browser).move_to_element_with_offset(over, -width // 4, 0).click_and_hold().move_by_offset(
        width // 5, 0
    ).release().perform()
    zoomed = wait_for(lambda: (c := chart(browser, "train/loss"))["loads"] != loss["loads"] and c, what="a refetch")
    assert zoomed["source"] == "raw" or int(zoomed["bucket"]) < int(loss["bucket"])

    # Compare the two finished runs: one overlay chart, a line per run.
    browser.get(f"{base}/#/")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'input.pick[data-run="{runs["run1"]}"]'), what="rows")
    for key in ("run0", "run1"):
        browser.find_element(By.CSS_SELECTOR, f'input.pick[data-run="{runs[key]}"]').click()
    browser.find_element(By.ID, "compare").click()
    wait_for(lambda: chart(browser, "train/loss")["series"] == "2", what="two series in the overlay")
    assert "params.lr" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "compare")


def test_live_run_updates_and_fleet_page(ui_stack, runs, browser):
    base = ui_stack.settings.ui.url
    live = runs["_live_run"]
    browser.get(f"{base}/#/run/{runs['live']}")
    first = wait_for(lambda: int(chart(browser, "train/loss")["points"] or 0), what="the live chart")
    wait_for(lambda: browser.find_element(By.ID, "live").text.endswith("live"), what="the live marker")
    for step in range(200, 1200):
        live.log("train/loss", 2.0 / (1 + step / 50), step=step)
    live.flush()
    wait_for(lambda: int(chart(browser, "train/loss")["points"]) > first, 60, "the chart to grow with new points")

    browser.get(f"{base}/#/fleet")
    wait_for(lambda: "still training" in browser.find_element(By.TAG_NAME, "main").text, what="the run in the fleet")
    wait_for(lambda: int(browser.find_element(By.ID, "throughput").get_attribute("data-points") or 0) > 0)
    shot(browser, "fleet")
