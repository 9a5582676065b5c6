"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright; no browser
is downloaded), against a real dashboard process and a real worker: find a task by search,
terminate a running one, retry a failed one, requeue a dead letter, retry a DAG run's failed
node found on /dags, and see each new state without reloading the page.

With ``CELERIAC_SCREENSHOTS=<folder>`` it also saves a screenshot of each main page there (how
docs/screenshots/ is made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from celeriac import Celeriac, states
from celeriac.canvas.dag import dag
from dashboard.helpers import DashboardProcess, board_worker
from support.waiting import wait_for

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="no /usr/bin/chromium (apt-get install -y chromium)"
)


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 800})
        tab.on("dialog", lambda dialog: dialog.accept())
        tab.set_default_timeout(30_000)
        yield tab
        browser.close()


def _shoot(page: Page, name: str) -> None:
    folder = os.environ.get("CELERIAC_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _mark(page: Page) -> None:
    """Mark the document: the mark is gone if the page was reloaded."""
    page.evaluate("window.notReloaded = true")


def _not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.notReloaded === true"))


def test_search_terminate_retry_and_requeue_live(
    page: Page, sqlite_url: str, tmp_path: Path
) -> None:
    client = Celeriac("board", broker=sqlite_url)
    found = client.send_task("board.add", (7, 31337)).id
    failed = client.send_task("board.fails", ("x",)).id
    with DashboardProcess(sqlite_url) as board, board_worker(sqlite_url) as worker:
        base = board.base
        assert client.AsyncResult(found).get(timeout=30) == 31344
        assert wait_for(lambda: client.AsyncResult(failed).state == states.FAILURE, 30)

        # Find a task by search.
        page.goto(base + "/tasks")
        page.fill("input[name=text]", "31337")
        page.click("form.filters button[type=submit]")
        page.wait_for_selector(f'tr[data-task="{found}"]')
        assert page.locator("table.tasks tr[data-task]").count() == 1
        _shoot(page, "tasks")

        # Terminate a running one: its page turns from STARTED to REVOKED by itself.
        running = client.send_task("board.sleep_for", (60,)).id
        page.goto(f"{base}/tasks/{running}")
        _mark(page)
        page.wait_for_selector("#task-state:text('STARTED')")
        page.click("button:text('Terminate')")
        page.wait_for_selector("#task-state:text('REVOKED')")
        assert _not_reloaded(page)
        assert client.AsyncResult(running).state == states.REVOKED

        # Retry a failed one: a new task, linked to the old one, fails in turn.
        page.goto(f"{base}/tasks/{failed}")
        _shoot(page, "task")
        page.click("button:text('Retry')")
        new_id = page.get_attribute("#followed", "href").rsplit("/", 1)[-1]  # type: ignore[union-attr]
        page.goto(f"{base}/tasks/{new_id}")
        _mark(page)
        page.wait_for_selector("#task-state:text('FAILURE')")
        page.wait_for_selector(f'#task-detail a[href="/tasks/{failed}"]')  # its parent
        assert _not_reloaded(page)

        # Requeue a dead letter: it leaves the list, runs, and dies again (a new letter).
        page.goto(f"{base}/queues")
        _mark(page)
        client.send_task("board.refused", (1,))
        row = page.wait_for_selector("table.deadletters tr[data-tag]")
        tag = row.get_attribute("data-tag")  # type: ignore[union-attr]
        _shoot(page, "queues")
        page.click(f'tr[data-tag="{tag}"] button:text("Requeue")')
        page.wait_for_selector(f'tr[data-tag="{tag}"]', state="detached")
        assert wait_for(lambda: len(client.broker.dead_letters()) == 1, 30), worker.output
        assert client.broker.dead_letters()[0].tag != tag
        assert _not_reloaded(page)
        _retry_a_dag_node(page, base, client, tmp_path / "marker")
        _shoot_the_rest(page, base, client)
    client.close()


def _retry_a_dag_node(page: Page, base: str, client: Celeriac, marker: Path) -> None:
    """Find a failed run on /dags, retry its failed node: the node turns to SUCCESS live."""
    flow = dag("nightly", app=client)
    load = flow.add(client.signature("board.needs_marker", (), {"path": str(marker)}), name="load")
    flow.add(client.signature("board.add", (1, 1), immutable=True), after=[load], name="publish")
    run = flow.apply_async()
    assert wait_for(lambda: run.state() == states.FAILURE, 30)
    page.goto(base + "/dags")
    page.click(f'tr[data-run="{run.id}"] a')
    page.wait_for_selector('tr[data-node="load"] .state:text("FAILURE")')
    _mark(page)
    marker.touch()
    page.click('tr[data-node="load"] button:text("Retry")')
    page.wait_for_selector('tr[data-node="publish"] .state:text("SUCCESS")')
    page.wait_for_selector("#dag-state:text('SUCCESS')")
    assert page.locator('tr[data-node="load"] button').count() == 0
    assert _not_reloaded(page)


def _shoot_the_rest(page: Page, base: str, client: Celeriac) -> None:
    if not os.environ.get("CELERIAC_SCREENSHOTS"):
        return
    flow = dag("report", app=client)
    users = flow.add(client.signature("board.add", (1, 2)), name="users")
    orders = flow.add(client.signature("board.fails", ("orders",)), name="orders")
    last = client.signature("board.add", (0, 0), immutable=True)
    flow.add(last, after=[users, orders], name="join")
    run = flow.apply_async()
    for _ in range(20):
        client.send_task("board.add", (1, 2))
    wait_for(lambda: run.state() != "RUNNING", 30)
    for path, name in (("/", "overview"), ("/workers", "workers"), ("/schedules", "schedules")):
        page.goto(base + path)
        page.wait_for_timeout(500)
        _shoot(page, name)
    page.goto(f"{base}/dags/{run.id}")
    _shoot(page, "dag")
