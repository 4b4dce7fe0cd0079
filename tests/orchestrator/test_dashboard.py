"""The dashboard in a real browser (Debian's headless Chromium, driven by playwright) on a real run of
the tiny stack: token entered once, runs list, live progress without a reload, curves, the samples
browser (the kept samples are those of selected.json), the filter, held-out prompts across
iterations, and cancel. Screenshots land in test-artifacts/dashboard/ (RAFTFLOW_TEST_ARTIFACTS) for
people to look at."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import REPO_ROOT
from tests.tracker_readers import mlflow_metric, mlflow_run, tensorboard_scalars

TOKEN = "dashboard-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ARTIFACTS = Path(os.environ.get("RAFTFLOW_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "dashboard"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("RAFTFLOW_REQUIRE_BROWSER"):
            pytest.fail("RAFTFLOW_REQUIRE_BROWSER is set but no chromium is installed (make browser)")
        pytest.skip("Chromium not installed: `make browser` installs Debian's package")
    return path


@pytest.fixture(scope="module")
def browser_page() -> Iterator:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


@pytest.fixture(scope="module")
def secured_orchestrator(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("dashboard-state")
    process, url = stack.start_orchestrator(
        state, name="orchestrator-dashboard", env={"RAFTFLOW_API_TOKEN": TOKEN}
    )
    yield url, state
    process.stop()


def start_run(url: str, body: dict) -> str:
    created = httpx.post(f"{url}/iterations", json=body, headers=AUTH, timeout=30)
    assert created.status_code == 202, created.text
    return created.json()["id"]


def run_view(url: str, run_id: str) -> dict:
    return httpx.get(f"{url}/iterations/{run_id}", headers=AUTH, timeout=10).json()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_dashboard_follows_a_real_run_shows_curves_and_samples_and_cancels(
    stack, secured_orchestrator, browser_page
) -> None:
    url, state = secured_orchestrator
    page = browser_page
    # The run also logs to two trackers; its metrics and its jobs' training curves are checked below.
    body = stack.minimal_body(
        num_iterations=2,
        eval_prompts=str(stack.prompts),
        max_eval_prompts=3,
        report_to=["tensorboard", "mlflow"],
    )
    run_id = start_run(url, body)
    assert httpx.get(f"{url}/iterations", timeout=10).status_code == 401  # the data needs the token

    # The page itself is static and served by the orchestrator, with a policy that keeps it offline.
    page.goto(f"{url}/dashboard/")
    csp = httpx.get(f"{url}/dashboard/", timeout=10).headers["content-security-policy"]
    assert "default-src 'self'" in csp
    page.locator("#login").wait_for(state="visible")
    page.fill("#token-input", "wrong-token")
    page.click("#login-form button")
    page.get_by_text("refused the token").wait_for()
    page.fill("#token-input", TOKEN)
    page.click("#login-form button")
    page.locator(f'tr[data-run="{run_id}"]').wait_for()
    assert TOKEN not in page.url
    shot(page, "01-runs-list")

    # Live progress: the run page changes while the run moves, and the page is never reloaded.
    page.click(f'a[href="#/runs/{run_id}"]')
    page.locator("#live").wait_for()
    page.evaluate("window.__notReloaded = true")
    seen = set()
    deadline = time.monotonic() + 240
    while run_view(url, run_id)["status"] not in {"succeeded", "failed", "cancelled"}:
        seen.add(page.inner_text("#live"))
        assert time.monotonic() < deadline, "the run did not finish in 240 s"
        time.sleep(0.25)
    page.get_by_text("2 of 2 iterations done").wait_for(timeout=10_000)
    assert page.evaluate("window.__notReloaded") is True
    assert len(seen) >= 3, seen  # stages and counts went by on screen
    page.locator('#live [data-status="succeeded"]').wait_for(timeout=10_000)  # the next refresh

    # Curves: one point per finished iteration, per series.
    reward_chart = page.locator('[data-chart="Reward"]')
    for series in ("on_policy_reward", "best_of_k_reward", "selected_reward", "eval_reward"):
        points = reward_chart.locator(f'polyline[data-series="{series}"]').get_attribute("points")
        assert len(points.split()) == 2, (series, points)
    assert page.locator('[data-chart="Distinct-2"] polyline').count() == 1
    assert page.locator('[data-chart="KL"] polyline').count() >= 1  # kl_to_initial on held-out prompts
    shot(page, "02-run-page")

    # Samples browser, iteration 1 (index 0): the kept samples are exactly the training data.
    page.select_option("#iteration", "0")
    page.locator("#samples .prompt-block").first.wait_for()
    selected = json.loads((state / "artifacts" / "runs" / run_id / "iter-000" / "selected.json").read_text())
    kept_on_page = page.locator("#samples tr.kept td.sample").all_inner_texts()
    assert sorted(kept_on_page) == sorted(row["output"] for row in selected["instances"])
    assert page.locator("#samples .prompt-block").count() == 8
    assert page.locator("#samples .prompt-block").first.locator("tbody tr").count() == 4  # K samples
    shot(page, "03-samples-iteration-1")

    first_prompt = page.locator("#samples .prompt").first.inner_text()
    page.fill("#filter", first_prompt)
    expect(page.locator("#samples .prompt-block")).to_have_count(1)
    shot(page, "04-samples-filtered")

    # The same held-out prompts, after iteration 0 and after iteration 1.
    headers = page.locator("#held-out-table thead th").all_inner_texts()
    assert headers == ["prompt", "after iteration 0", "after iteration 1"]
    assert page.locator("#held-out-table tbody tr").count() == 3

    # The API behind the browser: bad queries are 4xx that name the field and the limit.
    word = first_prompt.split()[1]
    samples = httpx.get(
        f"{url}/iterations/{run_id}/samples/0", params={"q": word.upper()}, headers=AUTH, timeout=10
    )
    assert samples.status_code == 200 and samples.json()["matching_prompts"] >= 1
    assert all(word in p["prompt"] for p in samples.json()["prompts"])
    too_many = httpx.get(
        f"{url}/iterations/{run_id}/samples/0", params={"limit": 201}, headers=AUTH, timeout=10
    )
    assert too_many.status_code == 422
    assert (
        too_many.json()["detail"][0]["loc"] == ["query", "limit"]
        and "200" in too_many.json()["detail"][0]["msg"]
    )
    missing = httpx.get(f"{url}/iterations/{run_id}/samples/7", headers=AUTH, timeout=10)
    assert missing.status_code == 404 and "iteration 7 has no scored samples" in missing.json()["detail"]
    assert httpx.get(f"{url}/iterations/nope/eval-samples", headers=AUTH, timeout=10).status_code == 404

    # Trackers: the run's metrics per iteration (orchestrator) and each job's loss per step (worker).
    view = run_view(url, run_id)
    tracking = state / "artifacts" / "tracking"
    rewards = tensorboard_scalars(tracking / "tensorboard" / run_id, "raft/on_policy_reward")
    assert rewards == pytest.approx(
        {it["index"]: it["metrics"]["on_policy_reward"] for it in view["iterations"]}
    )
    selected = mlflow_metric(f"sqlite:///{tracking.resolve() / 'mlflow.db'}", run_id, "raft/selected_reward")
    assert selected == pytest.approx(
        {it["index"]: it["metrics"]["selected_reward"] for it in view["iterations"]}
    )
    assert mlflow_run(f"sqlite:///{tracking.resolve() / 'mlflow.db'}", run_id).info.status == "FINISHED"
    checkpoints = state / "artifacts" / "runs" / run_id / "checkpoints"
    job_losses = tensorboard_scalars(checkpoints / "tensorboard" / f"{run_id}-iter000", "train/loss")
    assert job_losses and all(math.isfinite(v) for v in job_losses.values())

    # Cancel a running run from its page.
    long_run = start_run(url, stack.minimal_body(num_iterations=20, seed=1))
    deadline = time.monotonic() + 60
    while run_view(url, long_run)["status"] != "running":
        assert time.monotonic() < deadline, "the second run did not start"
        time.sleep(0.2)
    page.goto(f"{url}/dashboard/#/runs/{long_run}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.locator('#live [data-status="cancelled"]').wait_for(timeout=30_000)
    assert run_view(url, long_run)["status"] == "cancelled"
    shot(page, "05-cancelled")
