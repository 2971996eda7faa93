"""`turbexp ui`: MLflow's UI on loopback, opening on the training runs, in a real browser."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write
from test_quiz import CHROMIUM, CHROMIUM_ARGS

from turbexp.mlflow_ui import DEFAULTS, TrainingRunsFirst, with_defaults

DESCRIPTION = "Kolmogorov against Burgers on six tiny boxes, for the UI test"


@contextmanager
def serving_ui(root: Path) -> Iterator[str]:
    """``turbexp ui`` on a free loopback port in ``root``; yields its address once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "turbexp.cli", "ui", "--port", str(port)],
                               cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and status is None and process.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    status = response.status
            except OSError:
                time.sleep(0.5)
        assert status == 200, process.stdout.read().decode() if process.poll() is not None \
            else "no answer in 120 s"
        yield url
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "Warning" not in output, output  # MLflow's workers start without warnings


def test_the_page_sets_only_what_the_browser_has_not_chosen() -> None:
    page = b'<!doctype html><html lang="en"><head><meta charset="utf-8"/></head></html>'
    served = with_defaults(page)
    assert served.startswith(b'<!doctype html><html lang="en"><head><script>')
    assert served.endswith(b'<meta charset="utf-8"/></head></html>')
    for key, value in DEFAULTS.items():
        assert f"getItem({json.dumps(key)})===null".encode() in served
        assert json.dumps(json.dumps(value)).encode() in served
    assert with_defaults(b"not a page") == b"not a page"


def _served(path: str, method: str = "GET", content_type: bytes = b"text/html") -> bytes:
    """What the middleware passes on of a page MLflow's app would serve at ``path``."""
    import asyncio

    page = b"<html><head></head><body>MLflow</body></html>"

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type),
                                (b"content-length", str(len(page)).encode())]})
        await send({"type": "http.response.body", "body": page[:10], "more_body": True})
        await send({"type": "http.response.body", "body": page[10:]})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request"}

    asyncio.run(TrainingRunsFirst(app)({"type": "http", "method": method, "path": path},
                                       receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    assert dict(start["headers"])[b"content-length"] == str(len(body)).encode()
    return body


def test_only_the_uis_own_page_is_given_the_defaults() -> None:
    assert _served("/") == with_defaults(b"<html><head></head><body>MLflow</body></html>")
    assert _served("/prefix/") != _served("/get-artifact")  # a static prefix's page too
    for path, method, kind in (("/get-artifact", "GET", b"text/html"),
                               ("/", "POST", b"text/html"), ("/", "GET", b"application/json")):
        assert _served(path, method, kind) == b"<html><head></head><body>MLflow</body></html>"


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not at /usr/bin/chromium "
                    "(apt-get install chromium; .ci/run installs it)")
def test_ui_serves_mlflow_on_loopback_opening_on_the_training_runs(workdir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    experiment = TINY_EXPERIMENT.replace("name: tiny-hog-svm",
                                         f"name: tiny-hog-svm\ndescription: {DESCRIPTION}")
    write(workdir / "experiments" / "tiny.yaml",
          experiment.replace("trials: 3", "trials: 1").replace("[roc, confusion_matrix, tsne]",
                                                                "[]"))
    result = turbexp_cli("run", "experiments/tiny.yaml", "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    experiment_id = mlflow.get_experiment_by_name("turbexp").experiment_id
    [run] = mlflow.search_runs([experiment_id], output_format="list",
                               filter_string="tags.`turbexp.role` = 'experiment'")

    with serving_ui(workdir) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.goto(f"{url}/#/experiments/{experiment_id}")
        # the training runs, with the data each was trained and scored on
        run_link = page.locator(f'a[href$="/runs/{run.info.run_id}"]')
        expect(run_link).to_have_text("tiny-hog-svm", timeout=60_000)
        expect(page.locator('a[href$="/models/tiny-hog-svm/versions/1"]')).to_be_visible()
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        for dataset in ("tiny", "tiny train", "tiny test"):
            expect(page.get_by_role("button", name=re.compile(rf"^{dataset} \([0-9a-f]{{16}}\)$"))
                   ).to_be_visible()
        body = page.inner_text("body")
        for genai in ("Detect Issues", "Ask a question", "Overview"):
            assert genai not in body, genai
        assert page.evaluate("localStorage.getItem('mlflow.workflowType_v1')") \
            == '"machine_learning"'
        # each run's note is its experiment's description
        run_link.click()
        expect(page.get_by_text(DESCRIPTION)).to_be_visible(timeout=30_000)
        # a choice made in the UI is the browser's own and outlives a reload
        page.evaluate("localStorage.setItem('mlflow.workflowType_v1', '\"genai\"')")
        page.reload()
        page.wait_for_load_state("load")
        assert page.evaluate("localStorage.getItem('mlflow.workflowType_v1')") == '"genai"'
        browser.close()
