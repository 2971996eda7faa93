"""Human realism test: can a person tell simulated column-density maps from observed ones?

A session shows ``count`` maps, half of them tiles of observed FITS maps (``real``)
and half projections of a campaign's simulations (``simulated``), in a seeded
random order. Both are drawn the same way: log10 column density of an N×N map
(N the campaign's grid), a 1st–99th percentile stretch per image, one colour map,
origin at the lower left, rendered to a PNG without metadata.

Real maps are cut into non-overlapping N×N tiles at their own pixel scale, never
resampled (interpolation would smooth them and give them away); only tiles
without a masked pixel are used, since the simulations have none. Simulated maps
are the three projections (x, y, z) of each simulation. When one kind has fewer
than ``count / 2`` maps, the session shows fewer maps rather than unequal
numbers, so that 50% stays the score of someone who cannot tell them apart.

A session lives in a folder (default ``TURBEXP_HOME/quiz/<name>``):

- ``plan.json``: which token is which map and class, written once, atomically,
  before anything is served, and never served;
- ``maps/<token>.png``: the images, the only thing of a map the page sees;
- ``answers.jsonl``: one JSON line per answer, appended and fsynced as it is given;
- ``mlflow.json``: the MLflow run the finished session was logged to.

The score is the fraction of correct answers with an exact (Clopper–Pearson)
binomial confidence interval, and the two-sided exact binomial test against 50%.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from turbexp import tracking
from turbexp.errors import UserError, gather
from turbexp.files import atomic_write
from turbexp.paths import home

CLASSES = ("real", "simulated")
DEFAULT_COUNT = 20
COLORMAP = "inferno"
STRETCH_PERCENTILES = (1.0, 99.0)
CONFIDENCE = 0.95
CI_METHOD = "Clopper-Pearson exact"
PLAN_NAME = "plan.json"
ANSWERS_NAME = "answers.jsonl"
LOGGED_NAME = "mlflow.json"
MAPS_DIR = "maps"
SESSION_TAG = f"{tracking.TAG}.quiz_session"
TOKEN = re.compile(r"[0-9a-f]{32}")


# --------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class Candidate:
    """A map that may be shown: its class, where it comes from, and how to load it."""

    truth: str  # "real" or "simulated"
    source: str  # provenance, kept in the plan only
    load: Callable[[], np.ndarray]  # (N, N) log10 column density, row 0 at the bottom


def real_candidates(paths: list[str], size: int) -> list[Candidate]:
    """Every whole, unmasked ``size``×``size`` tile of every FITS map (all errors at once)."""
    from turbexp.maps import read_map

    def tiles(path: str) -> list[Candidate]:
        try:
            observed = read_map(path)
        except UserError as exc:
            exc.field = "--real" if exc.field == "MAPS" else exc.field
            raise
        ny, nx = observed.data.shape
        found = []
        for row in range(ny // size):
            for col in range(nx // size):
                window = (slice(row * size, (row + 1) * size),
                          slice(col * size, (col + 1) * size))
                if observed.mask[window].any():
                    continue
                found.append(Candidate(
                    "real", f"{observed.path} tile row {row} col {col} ({size} px)",
                    lambda w=window, d=observed.data: np.log10(d[w])))
        if not found:
            raise UserError(f"no {size}×{size}-pixel tile of this {ny}×{nx} map is free of masked "
                            f"pixels ({size} is the campaign's grid)", file=path, field="--real")
        return found

    return [c for found in gather(tiles, paths) for c in found]


def simulated_candidates(keys: list[tuple[str, str]], store: Any) -> list[Candidate]:
    """The three projections of each stored simulation; ``keys`` holds (key, description)."""

    def projection(key: str, axis: int) -> np.ndarray:
        # transposed: the first remaining axis runs left to right, as solver_maps.py draws it
        return np.log10(store.get(key).column_density[axis]).T

    return [Candidate("simulated", f"simulation {key} ({about}) projection {'xyz'[axis]}",
                      lambda k=key, a=axis: projection(k, a))
            for key, about in keys for axis in range(3)]


def draw(real: list[Candidate], simulated: list[Candidate], count: int,
         seed: int) -> list[Candidate]:
    """``count / 2`` maps of each kind (fewer if one kind runs short), in a random order."""
    check_count(count)
    rng = np.random.default_rng(seed)
    each = min(count // 2, len(real), len(simulated))
    chosen = [real[i] for i in rng.choice(len(real), each, replace=False)] + \
             [simulated[i] for i in rng.choice(len(simulated), each, replace=False)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def render_png(log_map: np.ndarray) -> bytes:
    """An RGB PNG of a map: percentile stretch, the colour map, origin lower, no metadata."""
    from matplotlib import colormaps
    from PIL import Image

    values = np.asarray(log_map, dtype=np.float64)
    low, high = np.percentile(values, STRETCH_PERCENTILES)
    scaled = np.clip((values - low) / (high - low), 0, 1) if high > low \
        else np.full(values.shape, 0.5)
    rgb = colormaps[COLORMAP](scaled[::-1], bytes=True)[..., :3]  # row 0 drawn at the bottom
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buffer, "PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Item:
    """One map of a session, by its position."""

    token: str
    truth: str
    source: str


@dataclass(frozen=True)
class Answer:
    """One recorded answer."""

    token: str
    answer: str
    response_ms: float | None  # image load to click, measured in the browser
    served_at: float | None  # Unix time the image was first sent by this server process
    answered_at: float  # Unix time the answer arrived


@dataclass(frozen=True)
class Score:
    """Accuracy of a (possibly unfinished) session."""

    n: int
    correct: int
    ci_low: float
    ci_high: float
    p_value: float  # exact two-sided binomial test against 0.5
    real_n: int
    real_correct: int  # real maps answered "real"
    simulated_n: int
    simulated_correct: int  # simulated maps answered "simulated"
    median_response_s: float | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else math.nan


def score_answers(pairs: list[tuple[str, Answer]]) -> Score:
    """Score (truth, answer) pairs; the interval is Clopper–Pearson at :data:`CONFIDENCE`."""
    from scipy.stats import binomtest

    n = len(pairs)
    correct = sum(truth == a.answer for truth, a in pairs)
    if n:
        test = binomtest(correct, n, 0.5)
        ci = test.proportion_ci(confidence_level=CONFIDENCE, method="exact")
        low, high, p_value = float(ci.low), float(ci.high), float(test.pvalue)
    else:
        low, high, p_value = 0.0, 1.0, 1.0
    times = [a.response_ms / 1000 for _, a in pairs if a.response_ms is not None]
    counts = {c: [a.answer == c for truth, a in pairs if truth == c] for c in CLASSES}
    return Score(n, correct, low, high, p_value, len(counts["real"]), sum(counts["real"]),
                 len(counts["simulated"]), sum(counts["simulated"]),
                 float(np.median(times)) if times else None)


class AnswerRejected(ValueError):
    """An answer the session cannot take; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def session_dir(name_or_path: str | None) -> Path:
    """A session's folder: a path as given, or a name under ``TURBEXP_HOME/quiz``."""
    if name_or_path is None:
        name_or_path = datetime.now().strftime("%Y%m%d-%H%M%S")
    if "/" in name_or_path or name_or_path in (".", ".."):
        return Path(name_or_path)
    return home() / "quiz" / name_or_path


class QuizSession:
    """A session's plan and answers, on disk; safe to use from several threads."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.plan: dict[str, Any] = json.loads((self.directory / PLAN_NAME).read_text())
        self.items = [Item(**i) for i in self.plan["items"]]
        self._by_token = {item.token: item for item in self.items}
        self._answers: dict[str, Answer] = {}
        self._served: dict[str, float] = {}
        self._lock = threading.RLock()
        self._torn = False
        self._read_answers()

    @staticmethod
    def exists(directory: Path) -> bool:
        return (Path(directory) / PLAN_NAME).is_file()

    @property
    def name(self) -> str:
        return str(self.plan["name"])

    @property
    def answers_path(self) -> Path:
        return self.directory / ANSWERS_NAME

    def _read_answers(self) -> None:
        if not self.answers_path.exists():
            return
        text = self.answers_path.read_text()
        self._torn = bool(text) and not text.endswith("\n")
        for line in text.splitlines():
            try:
                answer = Answer(**json.loads(line))
            except (ValueError, TypeError):
                continue  # a line torn by a crash mid-write was never acknowledged
            if answer.token in self._by_token and answer.token not in self._answers:
                self._answers[answer.token] = answer

    def answers(self) -> list[tuple[Item, Answer]]:
        """The answered maps, in the order they were shown."""
        with self._lock:
            return [(i, self._answers[i.token]) for i in self.items if i.token in self._answers]

    def current(self) -> tuple[int, Item] | None:
        """Position (0-based) and map of the first unanswered map, or None when finished."""
        with self._lock:
            for position, item in enumerate(self.items):
                if item.token not in self._answers:
                    return position, item
        return None

    @property
    def finished(self) -> bool:
        return self.current() is None

    def image(self, token: str) -> bytes | None:
        """The PNG of a map of this session (noting when it was first served), else None."""
        if not TOKEN.fullmatch(token) or token not in self._by_token:
            return None
        with self._lock:
            self._served.setdefault(token, time.time())
        return (self.directory / MAPS_DIR / f"{token}.png").read_bytes()

    def record(self, token: str, answer: str, response_ms: float | None) -> bool:
        """Append an answer for the current map; False if that map was already answered."""
        if answer not in CLASSES:
            raise AnswerRejected(f"answer must be one of {', '.join(CLASSES)}", 400)
        if token not in self._by_token:
            raise AnswerRejected("no such map in this session", 404)
        if response_ms is not None and not (math.isfinite(response_ms) and response_ms >= 0):
            response_ms = None
        with self._lock:
            if token in self._answers:
                return False
            _, item = self.current() or (None, None)
            if item is None or item.token != token:
                raise AnswerRejected("this map is not the one being asked", 409)
            entry = Answer(token, answer, response_ms, self._served.get(token), time.time())
            self._append(json.dumps(asdict(entry)) + "\n")
            self._answers[token] = entry
        return True

    def _append(self, line: str) -> None:
        with open(self.answers_path, "ab") as handle:
            if self._torn:
                handle.write(b"\n")  # end a line torn by a crash, so this one stays whole
                self._torn = False
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())

    def score(self) -> Score:
        return score_answers([(item.truth, answer) for item, answer in self.answers()])

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Be the only process serving this session (an advisory lock on its folder)."""
        lock = FileLock(self.directory / ".lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise UserError(f"session {self.name} is open in another turbexp quiz",
                            file=str(self.directory), field="--session") from None
        try:
            yield
        finally:
            lock.release()

    def check_inputs(self, real: list[str], campaign: str | None, count: int | None,
                     seed: int | None) -> None:
        """Refuse to resume with inputs other than those the session was made from."""
        given = {"--real": sorted(str(Path(p).resolve()) for p in real) if real else None,
                 "--simulated": str(Path(campaign).resolve()) if campaign else None,
                 "--count": count, "--seed": seed}
        made = {"--real": sorted(self.plan["real_files"]),
                "--simulated": self.plan["campaign"]["file"],
                "--count": self.plan["count_requested"], "--seed": self.plan["seed"]}
        for option, value in given.items():
            if value is not None and value != made[option]:
                raise UserError(f"session {self.name} was made with other {option} values; leave "
                                "them out to resume it, or start a new --session",
                                file=str(self.directory), field=option)

    def logged_run(self) -> str | None:
        path = self.directory / LOGGED_NAME
        return json.loads(path.read_text())["run_id"] if path.exists() else None

    def ensure_logged(self) -> str:
        """Log the finished session to MLflow once; returns the run id."""
        with self._lock:
            run_id = self.logged_run()
            if run_id is None:
                run_id = log_session(self)
                payload = json.dumps({"run_id": run_id}).encode()
                atomic_write(self.directory / LOGGED_NAME, lambda h: h.write(payload))
            return run_id


def create_session(directory: Path, chosen: list[Candidate], *, size: int, count: int,
                   seed: int, campaign: dict[str, str], real_files: list[str]) -> QuizSession:
    """Render the chosen maps and write the plan (last, atomically: it makes the session)."""
    items = []
    for candidate in chosen:
        token = uuid.uuid4().hex
        png = render_png(candidate.load())
        atomic_write(directory / MAPS_DIR / f"{token}.png", lambda h, b=png: h.write(b))
        items.append(Item(token, candidate.truth, candidate.source))
    plan = {
        "id": uuid.uuid4().hex,
        "name": directory.name,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "count_requested": count,
        "seed": seed,
        "image_size": size,
        "colormap": COLORMAP,
        "stretch_percentiles": list(STRETCH_PERCENTILES),
        "campaign": campaign,
        "real_files": sorted(str(Path(p).resolve()) for p in real_files),
        "items": [asdict(i) for i in items],
    }
    text = json.dumps(plan, indent=1).encode()
    atomic_write(directory / PLAN_NAME, lambda h: h.write(text))
    return QuizSession(directory)


def new_seed() -> int:
    return secrets.randbits(32)


@dataclass
class QuizInputs:
    """The checked inputs of a new session."""

    campaign: Any  # turbexp.campaign.CampaignPlan
    real_files: list[str]
    real: list[Candidate]


def check_count(count: int) -> None:
    if count < 2 or count % 2:
        raise UserError(f"must be an even number of at least 2 (half real, half simulated), "
                        f"not {count}", field="--count")


def check_inputs(real_files: list[str], campaign: str | None, count: int) -> QuizInputs:
    """Read the observed maps and the campaign of a new session; nothing is written."""
    from turbexp.campaign import plan_campaign

    check_count(count)
    if not real_files:
        raise UserError("no observed maps given (FITS files after --real)", field="--real")
    if not campaign:
        raise UserError("no campaign given for the simulated maps", field="--simulated")
    plan = plan_campaign(campaign)
    return QuizInputs(plan, list(real_files), real_candidates(list(real_files), plan.spec.grid))


def build_session(inputs: QuizInputs, directory: Path, store: Any, *, count: int, seed: int,
                  jobs: int | None = None, show_progress: bool = True,
                  warn: Callable[[str], None] = lambda _: None) -> QuizSession:
    """Make the campaign's missing simulations, draw the maps and write the session."""
    from turbexp.campaign import run_campaign

    plan = inputs.campaign
    run_campaign(plan, store, jobs=jobs, show_progress=show_progress)
    made = [(s.key, f"{s.label or f'group {s.group}'}, n = {s.request.index:g}")
            for s in plan.simulations if store.verify(s.key)]
    if not made:
        raise UserError("no simulation of this campaign could be made; see `turbexp sims run`",
                        file=str(plan.path), field="--simulated")
    simulated = simulated_candidates(made, store)
    chosen = draw(inputs.real, simulated, count, seed)
    if len(chosen) < count:
        warn(f"{len(inputs.real)} real tiles and {len(simulated)} simulated maps: the quiz shows "
             f"{len(chosen)} maps, half of each kind, instead of {count}")
    campaign = {"name": plan.spec.name, "file": str(plan.path.resolve()),
                "hash": plan.content_hash}
    return create_session(directory, chosen, size=plan.spec.grid, count=count, seed=seed,
                          campaign=campaign, real_files=inputs.real_files)


# --------------------------------------------------------------------------- MLflow


def answers_table(session: QuizSession) -> dict[str, list[Any]]:
    """The answers as columns, one row per answered map in the order shown."""
    rows = [{"position": p + 1, "token": item.token, "truth": item.truth, "answer": a.answer,
             "correct": item.truth == a.answer, "response_ms": a.response_ms,
             "served_at": a.served_at, "answered_at": a.answered_at, "source": item.source}
            for p, (item, a) in enumerate(session.answers())]
    columns = ("position", "token", "truth", "answer", "correct", "response_ms", "served_at",
               "answered_at", "source")
    return {c: [r[c] for r in rows] for c in columns}


def log_session(session: QuizSession) -> str:
    """One MLflow run (tag ``turbexp.role = quiz``) with the answers table and the accuracy.

    A finished run already tagged with this session's id is reused, so logging twice
    (a reload, a restart) makes one run.
    """
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.tracking import MlflowClient

    plan = session.plan
    experiment_id = tracking.use_experiment()
    client = MlflowClient()
    earlier = client.search_runs([experiment_id],
                                 filter_string=f"tags.`{SESSION_TAG}` = '{plan['id']}'")
    for run in earlier:
        if run.info.status == "FINISHED":
            return run.info.run_id
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
    score = session.score()
    campaign = plan["campaign"]
    tags = {
        tracking.ROLE: "quiz",
        SESSION_TAG: plan["id"],
        f"{tracking.TAG}.quiz_name": session.name,
        f"{tracking.TAG}.campaign": campaign["name"],
        f"{tracking.TAG}.campaign_hash": campaign["hash"],
        f"{tracking.TAG}.headline_metric": "accuracy",
        f"{tracking.TAG}.git_commit": tracking.git_commit(Path(campaign["file"]).parent),
        **tracking.process_tags(),
    }
    run_id = client.create_run(experiment_id, tags=tags,
                               run_name=f"quiz {session.name}").info.run_id
    params = {"count": len(session.items), "count_requested": plan["count_requested"],
              "seed": plan["seed"], "campaign": campaign["name"],
              "campaign_file": campaign["file"], "n_real_files": len(plan["real_files"]),
              "n_real": score.real_n, "n_simulated": score.simulated_n,
              "image_size": plan["image_size"], "colormap": plan["colormap"],
              "stretch_percentiles": "-".join(f"{p:g}" for p in plan["stretch_percentiles"]),
              "ci_method": CI_METHOD, "ci_confidence": CONFIDENCE}
    values = {"accuracy": score.accuracy, "ci_low": score.ci_low, "ci_high": score.ci_high,
              "n": score.n, "correct": score.correct, "p_value": score.p_value,
              "real_called_real": score.real_correct / max(score.real_n, 1),
              "simulated_called_simulated": score.simulated_correct / max(score.simulated_n, 1)}
    if score.median_response_s is not None:
        values["median_response_s"] = score.median_response_s
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()],
                     params=[Param(k, str(v)) for k, v in params.items()])
    client.log_table(run_id, answers_table(session), "quiz/answers.json")
    client.log_dict(run_id, plan, "quiz/plan.json")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id
