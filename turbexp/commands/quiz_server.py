"""The web page of ``turbexp quiz``: one map at a time, an answer, the score at the end.

The server knows a map only by its session token. Every question page is the same
HTML but for the token and the position, and the image is ``/map/<token>.png``:
nothing in a page or a URL depends on the class or the source of the map.
Answers are posted as a plain form (the page works without JavaScript); the
script measures the time from the image's load to the click and disables the
buttons until the image is shown.
"""

from __future__ import annotations

import errno
import html
import math
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from turbexp.commands.quiz import CI_METHOD, CONFIDENCE, AnswerRejected, QuizSession
from turbexp.errors import UserError

MAX_FORM_BYTES = 1024
READ_TIMEOUT_S = 10
"""A request whose headers or body do not arrive within this many seconds is dropped."""
DISPLAY_PX = 480

STYLE = f"""
body {{ background: #3a3a3a; color: #eee; font: 16px/1.4 system-ui, sans-serif; margin: 0; }}
main {{ max-width: 640px; margin: 2em auto; text-align: center; }}
img {{ width: {DISPLAY_PX}px; height: {DISPLAY_PX}px; image-rendering: pixelated;
       display: block; margin: 1em auto; background: #222; }}
button {{ font-size: 1.2em; padding: 0.5em 1.5em; margin: 0 0.5em; cursor: pointer; }}
button:disabled {{ cursor: wait; }}
.note {{ color: #bbb; font-size: 0.9em; }}
table {{ margin: 1em auto; border-collapse: collapse; }}
td, th {{ padding: 0.2em 0.8em; text-align: left; }}
.big {{ font-size: 2em; margin: 0.3em 0; }}
"""

SCRIPT = """
const image = document.getElementById("map");
const form = document.getElementById("answer");
const buttons = Array.from(form.querySelectorAll("button"));
let shownAt = null, sent = false;
buttons.forEach(b => b.disabled = true);
function shown() {
  if (shownAt !== null) return;
  shownAt = performance.now();
  buttons.forEach(b => b.disabled = false);
}
if (image.complete && image.naturalWidth > 0) shown(); else image.addEventListener("load", shown);
form.addEventListener("submit", event => {
  if (sent || shownAt === null) { event.preventDefault(); return; }
  sent = true;
  document.getElementById("response_ms").value = Math.round(performance.now() - shownAt);
});
document.addEventListener("keydown", event => {
  const button = {r: buttons[0], s: buttons[1]}[event.key.toLowerCase()];
  if (button && !button.disabled && !sent) button.click();
});
"""


def page(title: str, body: str, script: str = "") -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{STYLE}</style></head>\n"
            f"<body><main>\n{body}\n</main>"
            + (f"<script>{script}</script>" if script else "") + "</body></html>\n")


def question_page(position: int, total: int, token: str) -> str:
    """The page asking about one map; only ``position`` and ``token`` vary between maps."""
    body = f"""<h1>Real or simulated?</h1>
<p id="progress">Map {position + 1} of {total}</p>
<img id="map" src="/map/{token}.png" alt="a column-density map">
<form id="answer" method="post" action="/answer">
<input type="hidden" name="token" value="{token}">
<input type="hidden" name="response_ms" id="response_ms" value="">
<button type="submit" name="answer" value="real">Real (R)</button>
<button type="submit" name="answer" value="simulated">Simulated (S)</button>
</form>
<p class="note">Log10 column density, each map stretched from its 1st to its 99th percentile.
Answers are saved as you give them; closing the page loses nothing.</p>"""
    return page("turbexp quiz", body, SCRIPT)


def result_page(session: QuizSession, run_id: str | None, log_error: str | None) -> str:
    """The score of a finished session."""
    s = session.score()
    times = "" if s.median_response_s is None else \
        f"<tr><td>median response time</td><td>{s.median_response_s:.2f} s</td></tr>"
    verdict = ("better than guessing" if s.ci_low > 0.5 else
               "worse than guessing" if s.ci_high < 0.5 else
               "not distinguishable from guessing")
    logged = (f"Logged to MLflow run <code id=\"run\">{run_id}</code>." if run_id else
              f"Not logged to MLflow yet ({html.escape(log_error or 'unknown error')}); "
              "reload this page to try again. The answers are saved.")
    body = f"""<h1>Result</h1>
<p class="big"><span id="accuracy">{100 * s.accuracy:.0f}%</span> correct</p>
<p><span id="correct">{s.correct}</span> of <span id="n">{s.n}</span> maps;
{100 * CONFIDENCE:.0f}% confidence interval
<span id="ci">{100 * s.ci_low:.0f}%–{100 * s.ci_high:.0f}%</span> ({CI_METHOD}).</p>
<p>Against 50% (guessing): p = <span id="p_value">{s.p_value:.3g}</span>
(exact two-sided binomial test), <span id="verdict">{verdict}</span>.</p>
<table>
<tr><td>real maps answered real</td><td>{s.real_correct} of {s.real_n}</td></tr>
<tr><td>simulated maps answered simulated</td><td>{s.simulated_correct} of {s.simulated_n}</td>
</tr>{times}
</table>
<p class="note">{logged}</p>"""
    return page("turbexp quiz: result", body)


class QuizServer(ThreadingHTTPServer):
    """The quiz's HTTP server; bound when made, serving once :attr:`session` is set."""

    daemon_threads = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__((host, port), QuizHandler)
        self.session: QuizSession | None = None
        self.on_finished: Callable[[QuizSession, str | None, str | None], None] | None = None
        self.log_error: str | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def log_finished(self) -> str | None:
        """Log the finished session to MLflow (once); None and an error message on failure."""
        assert self.session is not None
        try:
            run_id = self.session.ensure_logged()
            self.log_error = None
        except Exception as exc:  # the answers are safe on disk; show why and retry on reload
            run_id, self.log_error = None, f"{type(exc).__name__}: {exc}"
        return run_id


def bind(host: str, port: int) -> QuizServer:
    """Listen on ``host:port`` or raise a :class:`UserError` saying why not."""
    try:
        return QuizServer(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use; choose another with --port",
                            field="--port") from None
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                        field="--host") from None


class QuizHandler(BaseHTTPRequestHandler):
    server: QuizServer
    server_version = "turbexp-quiz"
    sys_version = ""
    timeout = READ_TIMEOUT_S  # on the connection's socket: a stalled client lets go

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the terminal shows the quiz's own messages only."""

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "same-origin")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, message: str) -> None:
        self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        session = self.server.session
        path = urlsplit(self.path).path
        if session is None:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "the quiz is being prepared")
        elif path == "/":
            self._send(HTTPStatus.OK, self._page(session).encode(), "text/html; charset=utf-8")
        elif path.startswith("/map/") and path.endswith(".png"):
            png = session.image(path.removeprefix("/map/").removesuffix(".png"))
            if png is None:
                self._text(HTTPStatus.NOT_FOUND, "no such map")
            else:
                self._send(HTTPStatus.OK, png, "image/png")
        else:
            self._text(HTTPStatus.NOT_FOUND, "not found")

    def _page(self, session: QuizSession) -> str:
        current = session.current()
        if current is not None:
            return question_page(current[0], len(session.items), current[1].token)
        run_id = session.logged_run() or self.server.log_finished()
        return result_page(session, run_id, self.server.log_error)

    def do_POST(self) -> None:
        session = self.server.session
        if session is None or urlsplit(self.path).path != "/answer":
            self._text(HTTPStatus.NOT_FOUND, "not found")
            return
        origin = self.headers.get("Origin")
        if origin and urlsplit(origin).netloc != self.headers.get("Host"):
            self._text(HTTPStatus.FORBIDDEN, "answers come from the quiz page only")
            return
        declared = self.headers.get("Content-Length")
        if declared is None:
            self._text(HTTPStatus.LENGTH_REQUIRED, "a form needs a Content-Length")
            return
        if not declared.strip().isdigit():
            self._text(HTTPStatus.BAD_REQUEST, "Content-Length must be a number of bytes")
            return
        length = int(declared)
        if length > MAX_FORM_BYTES:
            self._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "form too large")
            return
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            return
        if len(body) < length:
            self._text(HTTPStatus.BAD_REQUEST, "the form ended before its Content-Length")
            return
        form = parse_qs(body.decode("utf-8", "replace"))
        field = {name: values[0] for name, values in form.items()}
        try:
            response_ms = float(field.get("response_ms") or "nan")
            recorded = session.record(field.get("token", ""), field.get("answer", ""),
                                      None if math.isnan(response_ms) else response_ms)
        except ValueError as exc:
            status = exc.status if isinstance(exc, AnswerRejected) else HTTPStatus.BAD_REQUEST
            self._text(status, str(exc))
            return
        if recorded and session.finished:  # the last answer: log the session at once
            run_id = self.server.log_finished()
            if self.server.on_finished is not None:
                self.server.on_finished(session, run_id, self.server.log_error)
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/"})

    do_HEAD = do_GET


def serve(server: QuizServer, session: QuizSession, say: Callable[[str], None]) -> None:
    """Serve ``session`` until interrupted, telling ``say`` where and, at the end, the score."""

    def finished(session: QuizSession, run_id: str | None, error: str | None) -> None:
        s = session.score()
        say(f"finished: {s.correct} of {s.n} correct ({100 * s.accuracy:.0f}%), "
            f"{100 * CONFIDENCE:.0f}% CI {100 * s.ci_low:.0f}–{100 * s.ci_high:.0f}%, "
            f"p = {s.p_value:.3g}; "
            + (f"MLflow run {run_id}" if run_id else f"not logged to MLflow: {error}"))

    server.session, server.on_finished = session, finished
    say(f"quiz {session.name}: {len(session.items)} maps, {len(session.answers())} answered; "
        f"open {server.url} (Ctrl+C stops; resume with --session {session.directory})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say(f"stopped; {len(session.answers())} answers in {session.answers_path}")
