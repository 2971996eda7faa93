"""`turbexp quiz`: drawing, persistence, scoring, the page's blindness, in a real browser."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pytest
from astropy.io import fits
from conftest import TINY_CAMPAIGN, write
from matplotlib import colormaps
from mlflow.tracking import MlflowClient
from PIL import Image
from scipy.stats import beta, binomtest

from turbexp.campaign import plan_campaign, run_campaign
from turbexp.cli import main
from turbexp.commands import quiz as q
from turbexp.commands.quiz_server import QuizHandler, QuizServer, bind
from turbexp.errors import UserError
from turbexp.maps import read_map
from turbexp.store import SimulationStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
GRID = 16  # TINY_CAMPAIGN's grid: the side of every map shown
LABELS = ("kolmogorov", "burgers")  # TINY_CAMPAIGN's group labels


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationStore]:
    """The tiny campaign, simulated once for the module: its file and its cache."""
    root = tmp_path_factory.mktemp("quiz_campaign")
    path = write(root / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    store = SimulationStore(root / "cache")
    outcome = run_campaign(plan_campaign(path), store, jobs=1, show_progress=False)
    assert not outcome.failed
    return path, store


def fits_map(path: Path, shape: tuple[int, int], seed: int,
             masked: tuple[slice, slice] | None = None) -> Path:
    """A lognormal column-density map (cm⁻²) with a power-law spectrum, NaN where ``masked``."""
    rng = np.random.default_rng(seed)
    ky, kx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
    k = np.hypot(ky, kx)
    k[0, 0] = np.inf
    field = np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) * k**-1.5).real
    data = 1e21 * np.exp(0.6 * (field - field.mean()) / field.std())
    if masked is not None:
        data[masked] = np.nan
    hdu = fits.PrimaryHDU(data)
    hdu.header["BUNIT"] = "cm-2"
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path)
    return path


@pytest.fixture
def real_maps(workdir: Path) -> list[Path]:
    """Two observed maps of 40×40 pixels: four whole 16×16 tiles each (8 real maps)."""
    return [fits_map(workdir / "maps" / f"cloud_{i}.fits", (40, 40), seed=i) for i in range(2)]


def new_session(workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore],
                count: int = 10, seed: int = 7, name: str = "s") -> q.QuizSession:
    path, store = campaign
    inputs = q.check_inputs([str(p) for p in real_maps], str(path), count)
    return q.build_session(inputs, workdir / ".turbexp" / "quiz" / name, store, count=count,
                           seed=seed, show_progress=False)


def png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        chunks.append(data[at + 4:at + 8].decode())
        at += 12 + length
    return chunks


@contextmanager
def serving(session: q.QuizSession) -> Iterator[QuizServer]:
    server = bind("127.0.0.1", 0)
    server.session = session
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def post(url: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, urllib.parse.urlencode(fields).encode(),
                                     headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def candidates(kind: str, n: int) -> list[q.Candidate]:
    return [q.Candidate(kind, f"{kind} {i}", lambda: np.ones((GRID, GRID))) for i in range(n)]


# --------------------------------------------------------------------------- session logic


def test_draw_is_balanced_seeded_and_shrinks_rather_than_unbalance() -> None:
    real, simulated = candidates("real", 8), candidates("simulated", 18)
    drawn = q.draw(real, simulated, 10, seed=1)
    assert [c.truth for c in drawn].count("real") == 5
    assert [c.truth for c in drawn].count("simulated") == 5
    assert len({c.source for c in drawn}) == 10
    assert [c.source for c in q.draw(real, simulated, 10, seed=1)] == [c.source for c in drawn]
    orders = {tuple(c.source for c in q.draw(real, simulated, 10, seed=s)) for s in range(5)}
    assert len(orders) == 5
    short = q.draw(real[:3], simulated, 10, seed=1)
    assert sorted(c.truth for c in short) == ["real"] * 3 + ["simulated"] * 3
    with pytest.raises(UserError, match="even number"):
        q.draw(real, simulated, 9, seed=1)


def test_real_maps_are_whole_unmasked_tiles_at_their_own_pixel_scale(workdir: Path) -> None:
    path = fits_map(workdir / "m.fits", (40, 50), seed=3, masked=(slice(20, 21), slice(5, 6)))
    found = q.real_candidates([str(path)], GRID)
    # 2×3 tiles of 16 pixels; the one holding pixel (20, 5) is left out
    assert len(found) == 5
    assert not any("row 1 col 0" in c.source for c in found)
    tile = next(c for c in found if "row 1 col 2" in c.source).load()
    np.testing.assert_array_equal(tile, np.log10(read_map(path).data[16:32, 32:48]))


def test_maps_of_both_kinds_render_alike_without_metadata(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore]) -> None:
    session = new_session(workdir, real_maps, campaign)
    for item in session.items:
        data = (session.directory / q.MAPS_DIR / f"{item.token}.png").read_bytes()
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
        image = Image.open(session.directory / q.MAPS_DIR / f"{item.token}.png")
        assert (image.size, image.mode) == ((GRID, GRID), "RGB")
    # origin lower: row 0 of the map is the bottom row of the image
    ramp = np.repeat(np.linspace(1, 0, GRID)[:, None], GRID, axis=1)
    pixels = np.asarray(Image.open(io.BytesIO(q.render_png(ramp))))
    top = colormaps[q.COLORMAP](0.0, bytes=True)[:3]
    bottom = colormaps[q.COLORMAP](1.0, bytes=True)[:3]
    assert tuple(pixels[0, 0]) == tuple(top) and tuple(pixels[-1, 0]) == tuple(bottom)


def test_answers_persist_and_a_reopened_session_resumes(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore]) -> None:
    session = new_session(workdir, real_maps, campaign)
    for item in session.items[:3]:
        assert session.record(item.token, "real", 800.0)
    reopened = q.QuizSession(session.directory)
    assert reopened.current() == (3, session.items[3])
    assert [a.token for _, a in reopened.answers()] == [i.token for i in session.items[:3]]
    with open(session.answers_path, "a") as handle:
        handle.write('{"token": "ab')  # a crash in the middle of a line
    torn = q.QuizSession(session.directory)
    assert torn.current() == (3, session.items[3])
    assert torn.record(session.items[3].token, "simulated", None)
    lines = session.answers_path.read_text().splitlines()
    assert json.loads(lines[-1])["token"] == session.items[3].token
    assert q.QuizSession(session.directory).current() == (4, session.items[4])


def test_a_second_answer_for_a_map_is_ignored_and_order_is_kept(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore]) -> None:
    session = new_session(workdir, real_maps, campaign)
    first, second = session.items[:2]
    assert session.record(first.token, "real", 500.0)
    assert not session.record(first.token, "simulated", 20.0)
    assert len(session.answers_path.read_text().splitlines()) == 1
    assert session.answers()[0][1].answer == "real"
    with pytest.raises(q.AnswerRejected) as ahead:
        session.record(session.items[5].token, "real", 1.0)
    assert ahead.value.status == 409
    with pytest.raises(q.AnswerRejected) as unknown:
        session.record("0" * 32, "real", 1.0)
    assert unknown.value.status == 404
    with pytest.raises(q.AnswerRejected) as bad:
        session.record(second.token, "maybe", 1.0)
    assert bad.value.status == 400
    assert session.current() == (1, second)


def _raw(server: QuizServer, request: bytes, wait_s: float = 15) -> bytes:
    """Send ``request`` as it is, then read the answer until the server closes."""
    with socket.create_connection(server.server_address[:2], timeout=wait_s) as client:
        client.sendall(request)
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
    return answer


@pytest.mark.parametrize(("length", "status"), [
    ("-1", b"400"), ("abc", b"400"), ("99999999999", b"413"), (None, b"411"), ("40", b"400")])
def test_a_malformed_answer_gets_a_4xx_and_holds_nothing(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore],
        length: str | None, status: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QuizHandler, "timeout", 1)  # an unfinished body is given up on soon
    session = new_session(workdir, real_maps, campaign)
    body = b"answer=real"  # shorter than a Content-Length of 40: the client stops sending
    header = b"" if length is None else f"Content-Length: {length}\r\n".encode()
    request = b"POST /answer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header \
        + b"\r\n" + body
    with serving(session) as server:
        answer = _raw(server, request)
    if length == "40":  # an unfinished body: dropped when the read times out, or refused
        assert answer == b"" or answer.split()[1] == status
    else:
        assert answer.split()[1] == status
    assert session.answers() == []


def test_one_process_at_a_time_serves_a_session(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore]) -> None:
    session = new_session(workdir, real_maps, campaign)
    with session.hold():
        with pytest.raises(UserError, match="open in another turbexp quiz"):
            with q.QuizSession(session.directory).hold():
                pass
    with q.QuizSession(session.directory).hold():
        pass


@pytest.mark.parametrize(("correct", "n"), [(7, 10), (0, 10), (10, 10), (31, 40)])
def test_accuracy_interval_is_clopper_pearson(correct: int, n: int) -> None:
    pairs = [("real", q.Answer("t", "real" if i < correct else "simulated", 1000.0, None, 0.0))
             for i in range(n)]
    score = q.score_answers(pairs)
    assert (score.correct, score.n, score.accuracy) == (correct, n, correct / n)
    ci = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="exact")
    assert (score.ci_low, score.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    # the textbook form, from beta quantiles
    low = beta.ppf(0.025, correct, n - correct + 1) if correct else 0.0
    high = beta.ppf(0.975, correct + 1, n - correct) if correct < n else 1.0
    assert (score.ci_low, score.ci_high) == pytest.approx((low, high), abs=1e-9)
    assert score.p_value == pytest.approx(binomtest(correct, n, 0.5).pvalue)
    assert score.real_n == n and score.real_correct == correct and score.simulated_n == 0
    assert score.median_response_s == 1.0


def test_a_finished_session_is_logged_to_mlflow_once(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore]) -> None:
    session = new_session(workdir, real_maps, campaign, count=4)
    for item in session.items:
        session.record(item.token, "real", 1500.0)
    run_id = session.ensure_logged()
    assert session.ensure_logged() == run_id
    (session.directory / q.LOGGED_NAME).unlink()  # as if killed before the marker was written
    assert q.QuizSession(session.directory).ensure_logged() == run_id
    runs = mlflow.search_runs(filter_string="tags.`turbexp.role` = 'quiz'", output_format="list",
                              search_all_experiments=True)
    assert [r.info.run_id for r in runs] == [run_id]
    run = runs[0]
    assert run.data.metrics["accuracy"] == 0.5
    assert run.data.metrics["n"] == 4
    assert run.data.params["campaign"] == "tiny"
    assert run.data.params["n_real_files"] == "2"
    table = mlflow.load_table("quiz/answers.json", run_ids=[run_id])
    assert list(table["truth"]) == [i.truth for i in session.items]
    assert list(table["answer"]) == ["real"] * 4


# --------------------------------------------------------------------------- HTTP and CLI


def test_restarting_the_server_resumes_at_the_first_unanswered_map(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore]) -> None:
    session = new_session(workdir, real_maps, campaign)
    with serving(session) as server:
        for item in session.items[:2]:
            assert item.token in get(server.url)
            assert post(server.url + "answer", {"token": item.token, "answer": "real",
                                                "response_ms": "900"}) == 303
        assert post(server.url + "answer", {"token": session.items[2].token, "answer": "real"},
                    {"Origin": "http://elsewhere.example"}) == 403
        assert post(server.url + "answer", {"token": session.items[5].token,
                                            "answer": "real"}) == 409
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(server.url + f"map/{'0' * 32}.png")
        assert missing.value.code == 404
    with serving(q.QuizSession(session.directory)) as server:
        page = get(server.url)
        assert "Map 3 of 10" in page
        assert f"/map/{session.items[2].token}.png" in page


def _interruptible() -> None:
    """In the child, before exec: take SIGINT as a terminal would deliver it, whatever the
    test process inherited (an ignored or blocked SIGINT is passed on to children)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_quiz_command_serves_and_resumes(workdir: Path, real_maps: list[Path],
                                         campaign: tuple[Path, SimulationStore]) -> None:
    path, store = campaign
    env = {**os.environ, "TURBEXP_CACHE": str(store.root)}

    errors = workdir / "quiz.err"  # a file, not a pipe: a full pipe would block the process

    def start(*args: str) -> tuple[subprocess.Popen, str]:
        with open(errors, "w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "turbexp.cli", "quiz", "--session", "cli", "--port",
                 "0", "--no-progress", *args], cwd=workdir, env=env, stdout=subprocess.PIPE,
                stderr=stderr, text=True, preexec_fn=_interruptible)
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line + errors.read_text()
        return process, url.group(0)

    process, url = start("--real", *map(str, real_maps), "--simulated", str(path),
                         "--count", "4", "--seed", "3")
    token = re.search(r'name="token" value="([0-9a-f]{32})"', get(url)).group(1)
    assert post(url + "answer", {"token": token, "answer": "simulated"}) == 303
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(60) == 0, errors.read_text()
    except subprocess.TimeoutExpired:
        process.kill()
        here = (signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, []))
        raise AssertionError(f"quiz did not stop on SIGINT (test process SIGINT handler and "
                             f"blocked signals: {here}); stderr:\n{errors.read_text()}") from None
    assert "stopped; 1 answers" in process.stdout.read()
    process, url = start()  # the session's inputs come from its plan
    try:
        assert "Map 2 of 4" in get(url)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


@pytest.mark.parametrize(("args", "expected"), [
    (["--real", "maps/none.fits"], "maps/none.fits: --real: no such file"),
    (["--simulated", "SIMS"], "--real: no observed maps given"),
    (["--real", "REAL", "--simulated", "sims/none.yaml"], "sims/none.yaml"),
    (["--real", "REAL", "--count", "7"], "--count: must be an even number"),
    (["--real", "REAL", "--port", "BUSY"], "is in use; choose another with --port"),
    (["--real", "REAL", "--host", "0.0.0.0"], "--host: 0.0.0.0 can be reached from other "
                                              "machines, and the quiz has no login"),
], ids=["missing-fits", "no-real", "unknown-campaign", "odd-count", "port-in-use",
        "remote-host"])
def test_bad_input_is_one_message_and_writes_nothing(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore],
        capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    values = {"REAL": str(real_maps[0]), "SIMS": str(campaign[0]),
              "BUSY": str(busy.getsockname()[1])}
    args = [values.get(a, a) for a in args]
    if "--simulated" not in args:
        args += ["--simulated", str(campaign[0])]
    try:
        with pytest.raises(SystemExit) as info:
            main(["quiz", *args, "--no-progress"])
    finally:
        busy.close()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("error:") == 1
    assert expected in err.replace("\n", " ")
    assert not (workdir / ".turbexp").exists()
    assert not (workdir / "mlflow.db").exists()


def test_resuming_with_other_inputs_is_refused(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore],
        capsys: pytest.CaptureFixture[str]) -> None:
    session = new_session(workdir, real_maps, campaign)
    with pytest.raises(SystemExit) as info:
        main(["quiz", "--session", str(session.directory), "--real", str(real_maps[0])])
    assert info.value.code == 2
    assert "--real: session s was made with other --real values" in capsys.readouterr().err
    assert not session.answers_path.exists()


# --------------------------------------------------------------------------- real browser


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not at /usr/bin/chromium "
                    "(.ci/run installs it: apt-get install chromium)")
def test_a_person_answers_ten_maps_in_a_real_browser(
        workdir: Path, real_maps: list[Path], campaign: tuple[Path, SimulationStore]) -> None:
    from playwright.sync_api import sync_playwright

    session = new_session(workdir, real_maps, campaign, count=10, seed=11)
    plan = json.loads((session.directory / q.PLAN_NAME).read_text())
    truths = [item["truth"] for item in plan["items"]]
    assert sorted(truths) == ["real"] * 5 + ["simulated"] * 5
    clicks = ["real", "real", "simulated", "real", "simulated",
              "simulated", "simulated", "real", "real", "simulated"]
    correct = sum(c == t for c, t in zip(clicks, truths, strict=True))
    keys = [i["source"].split()[1] for i in plan["items"] if i["truth"] == "simulated"]
    forbidden = [*(p.name for p in real_maps), *(p.stem for p in real_maps), *LABELS, ".fits",
                 "tile row", "projection", *keys, *(k[:12] for k in keys)]

    requested: list[str] = []
    pages: list[str] = []
    with serving(session) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("request", lambda r: requested.append(urllib.parse.urlsplit(r.url).path))
        page.goto(server.url)
        for position, answer in enumerate(clicks):
            assert page.text_content("#progress") == f"Map {position + 1} of 10"
            src = page.get_attribute("#map", "src")
            assert re.fullmatch(r"/map/[0-9a-f]{32}\.png", src)
            token = src[5:-4]
            assert token == plan["items"][position]["token"]
            raw = get(server.url)  # the HTML as served, for this map
            for text in (raw, page.content(), src):
                assert not [word for word in forbidden if word.lower() in text.lower()]
            pages.append(raw.replace(token, "TOKEN").replace(f"Map {position + 1} ", "Map # "))
            page.wait_for_timeout(60)
            with page.expect_navigation():
                page.click(f"button[value={answer}]")
        assert page.text_content("#n") == "10"
        assert page.text_content("#correct") == str(correct)
        assert page.text_content("#accuracy") == f"{100 * correct / 10:.0f}%"
        run_id = page.text_content("#run")
        page.reload()
        assert page.text_content("#run") == run_id
        browser.close()

    # every question page is the same HTML but for the token and the position
    assert len(set(pages)) == 1
    tokens = [item["token"] for item in plan["items"]]
    assert tokens != sorted(tokens) and tokens != sorted(tokens, reverse=True)
    assert {p for p in requested if p.startswith("/map/")} == \
        {f"/map/{item['token']}.png" for item in plan["items"]}
    assert set(requested) <= {"/", "/answer"} | {p for p in requested if p.startswith("/map/")}

    recorded = [json.loads(line) for line in session.answers_path.read_text().splitlines()]
    assert [r["token"] for r in recorded] == [item["token"] for item in plan["items"]]
    assert [r["answer"] for r in recorded] == clicks
    assert all(r["response_ms"] >= 50 for r in recorded)
    assert all(r["served_at"] is not None and r["served_at"] <= r["answered_at"]
               for r in recorded)

    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("turbexp").experiment_id],
                              filter_string="tags.`turbexp.role` = 'quiz'")
    assert [r.info.run_id for r in runs] == [run_id]
    assert runs[0].data.metrics["accuracy"] == correct / 10
    ci = binomtest(correct, 10).proportion_ci(method="exact")
    assert runs[0].data.metrics["ci_low"] == pytest.approx(ci.low)
    table = mlflow.load_table("quiz/answers.json", run_ids=[run_id])
    assert list(table["answer"]) == clicks
    assert list(table["correct"]) == [c == t for c, t in zip(clicks, truths, strict=True)]
