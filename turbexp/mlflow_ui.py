"""MLflow's UI as ``turbexp ui`` serves it: MLflow's own app, opening on the training runs.

MLflow's UI keeps a "workflow type" in the browser (GenAI by default, which opens an
experiment on an empty traces dashboard) and opens its assistant panel and GenAI hints on a
first visit. The page served here gives a browser that holds no choice yet the machine
learning workflow, so an experiment opens on its runs, with the panel and hints closed; what
a user then picks in the UI is kept. Registered as MLflow app ``turbexp`` (entry point
``mlflow.app``), so ``mlflow server --app-name turbexp`` serves the same.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

DEFAULTS: dict[str, object] = {
    "mlflow.workflowType_v1": "machine_learning",  # the runs, not the GenAI overview
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,  # its assistant stays closed
    "mlflow.detectIssues.guidanceShown_v1": True,  # and the GenAI "Detect issues" hint
}
"""The browser's localStorage entries (MLflow's ``KEY_vVERSION``, JSON values) set where
absent."""

DEFAULT_SCRIPT = ("<script>try{"
                  + "".join(f"if(localStorage.getItem({json.dumps(key)})===null)"
                            f"localStorage.setItem({json.dumps(key)},"
                            f"{json.dumps(json.dumps(value))});"
                            for key, value in DEFAULTS.items())
                  + "}catch(e){}</script>").encode()


def with_defaults(page: bytes) -> bytes:
    """The UI's page with :data:`DEFAULTS` set before MLflow's own script runs."""
    head = page.find(b"<head>")
    if head < 0:
        return page
    at = head + len(b"<head>")
    return page[:at] + DEFAULT_SCRIPT + page[at:]


class TrainingRunsFirst:
    """ASGI middleware: MLflow's app, with its page (the HTML it serves at ``/``, or at its
    static prefix) given :func:`with_defaults`; every other response passes as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if (scope["type"] != "http" or scope.get("method") != "GET"
                or not scope.get("path", "").endswith("/")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                html = headers.get(b"content-type", b"").startswith(b"text/html")
                if message["status"] != 200 or not html:
                    await send(message)
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            page = with_defaults(bytes(body))
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, rewrite)


def create_app() -> ASGIApp:
    """MLflow's tracking server app (its FastAPI app, configured from the environment that
    ``mlflow server`` sets), opening on training runs."""
    from mlflow.server.fastapi_app import app

    return TrainingRunsFirst(app)
