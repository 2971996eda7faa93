"""MLflow conventions: where runs go, how they are tagged, and finding them again."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import math
import os
import re
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import mlflow
from filelock import FileLock
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

import turbexp
from turbexp import interrupt
from turbexp.errors import UserError
from turbexp.plugin_types import ImageInputs

DEFAULT_EXPERIMENT = "turbexp"
TAG = "turbexp"
ROLE = f"{TAG}.role"  # "experiment" on parent runs, "trial" on nested ones


def mlflow_experiment_name() -> str:
    """MLflow experiment holding every turbexp run (``MLFLOW_EXPERIMENT_NAME`` overrides)."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)


def use_experiment() -> str:
    """Select the MLflow experiment (creating store and experiment if needed); returns its id.

    Several processes may start on a new SQLite store at once; its creation (schema
    migrations, then the experiment) is done under a file lock so that only one makes it.
    """
    uri = mlflow.get_tracking_uri()
    try:
        with _store_creation_lock(uri), quiet_mlflow():
            name = mlflow_experiment_name()
            client = MlflowClient()
            if client.get_experiment_by_name(name) is None:
                client.create_experiment(name, artifact_location=_artifact_root(uri))
            return mlflow.set_experiment(name).experiment_id
    except Exception as exc:  # stores, drivers and SQLAlchemy raise many unrelated types
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        raise UserError(f"cannot open the MLflow tracking store {uri!r}: "
                        f"{type(exc).__name__}: {reason}",
                        field="MLFLOW_TRACKING_URI") from None


QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration",
                 "mlflow.tracking._model_registry.fluent")
"""MLflow's notes on creating a store and registering a model: not for turbexp's output."""


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's start-up and registration notes (its loggers at INFO, its prints on stderr)
    left out of the output for the block; its logged warnings and its exceptions still come
    through."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite tracking URI, None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store (``mlruns/`` next
    to the database file, wherever the command runs), else the store's own default."""
    database = _sqlite_file(uri)
    return None if database is None else (database.resolve().parent / "mlruns").as_uri()


def existing_store() -> None:
    """Refuse to read a SQLite store that does not exist (opening it would create it): the
    commands that only read runs (predict, compare) call this first."""
    database = _sqlite_file(mlflow.get_tracking_uri())
    if database is not None and not database.is_file():
        raise UserError(f"no MLflow store at {database}: nothing has been run with this "
                        "store; run an experiment first, or point MLFLOW_TRACKING_URI at the "
                        "store that holds the runs", field="MLFLOW_TRACKING_URI")



def finite(values: dict[str, float]) -> dict[str, float]:
    """Metrics with a finite value only: MLflow stores NaN, but its UI sorts it badly, so a
    metric without a value is left out."""
    return {k: float(v) for k, v in values.items() if math.isfinite(float(v))}

@contextmanager
def _store_creation_lock(uri: str) -> Iterator[None]:
    database = _sqlite_file(uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(database.with_name(database.name + ".lock")):
        yield


def git_commit(folder: Path) -> str:
    """The commit of the repository holding ``folder`` (``+dirty`` if modified), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=folder,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if status else "")


def process_tags() -> dict[str, str]:
    return {f"{TAG}.host": socket.gethostname(), f"{TAG}.pid": str(os.getpid()),
            f"{TAG}.started": process_start(os.getpid()) or "",
            f"{TAG}.version": turbexp.__version__}


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), so that a later
    process given the same id is told apart; None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else None


def plugin_versions(plugins: list[Any]) -> str:
    return json.dumps({f"{p.kind}/{p.name}": f"{p.package}=={p.version}" for p in plugins},
                      sort_keys=True)


@contextmanager
def tracked_run(run_name: str, tags: dict[str, str], *, nested: bool = False) -> Iterator[Any]:
    """An MLflow run that ends FINISHED, KILLED when interrupted (Ctrl-C, SIGTERM) or FAILED
    on any other error. An error raised while an interrupt unwinds (a library's half-done
    step failing on the way out: Optuna's journal lock, say) is the interruption's: the run
    ends KILLED and the error goes on as the ``KeyboardInterrupt`` it is."""
    run = mlflow.start_run(run_name=run_name, tags=tags, nested=nested)
    try:
        yield run
    except KeyboardInterrupt:
        _end_after_error(run.info.run_id, RunStatus.KILLED)
        raise
    except Exception as exc:
        if interrupt.requested():
            _end_after_error(run.info.run_id, RunStatus.KILLED)
            raise KeyboardInterrupt from exc
        _end_after_error(run.info.run_id, RunStatus.FAILED)
        raise
    except BaseException:
        _end_after_error(run.info.run_id, RunStatus.FAILED)
        raise
    mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


_UNFINISHED: list[tuple[str, str]] = []
"""Runs an error could not end (run id, status), for :func:`end_unfinished`."""


def _end_after_error(run_id: str, status: int) -> None:
    """End the active run with ``status`` without hiding the error that ended it. A store
    write the interrupt cut short can keep an SQLite store locked while its frames live:
    such a run is ended by :func:`end_unfinished` once the error has been handled."""
    try:
        mlflow.end_run(RunStatus.to_string(status))  # pops the run first, whatever happens
    except Exception:
        _UNFINISHED.append((run_id, RunStatus.to_string(status)))


def end_unfinished() -> None:
    """End the runs an error left open (after the frames that held the store are freed);
    a run still not ended is marked KILLED by the next run of its study."""
    gc.collect()
    while _UNFINISHED:
        run_id, status = _UNFINISHED.pop(0)
        for delay in (0.0, 0.5, 2.0):
            time.sleep(delay)
            try:
                MlflowClient().set_terminated(run_id, status)
                break
            except Exception:
                continue


def close_stale_runs(experiment_id: str, study: str) -> list[str]:
    """Mark as KILLED the runs of ``study`` left RUNNING by a process that no longer exists
    (killed with SIGKILL, or its machine lost); returns their ids."""
    client = MlflowClient()
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG}.study` = '{study}' and attributes.status = 'RUNNING'",
    )
    closed = []
    for run in runs:
        tags = run.data.tags
        if process_gone(tags.get(f"{TAG}.host"), tags.get(f"{TAG}.pid"),
                        tags.get(f"{TAG}.started")):
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
            closed.append(run.info.run_id)
    return closed


def killed_runs(experiment_id: str, study: str, role: str) -> list[str]:
    """Ids of the KILLED runs of ``study`` in role ``role``, newest first."""
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG}.study` = '{study}' and tags.`{ROLE}` = '{role}' "
                      "and attributes.status = 'KILLED'",
        order_by=["attributes.start_time DESC"])
    return [r.info.run_id for r in runs]


def process_gone(host: str | None, pid: str | int | None, started: str | None = None) -> bool:
    """True only when ``pid`` on ``host`` is known to have exited (this host only). With
    ``started`` (:func:`process_start`), a process that now holds the same id but started at
    another time counts as gone: ids are reused, fast on a busy machine."""
    if host != socket.gethostname():
        return False
    try:
        number = int(pid or 0)
        if number <= 0:
            return False
        os.kill(number, 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False
    if started:
        now = process_start(number)
        return now is not None and now != started
    return False


def last_runs(names: list[str]) -> dict[str, Any]:
    """The most recent parent run of each named experiment (none, and no store made, when
    the SQLite store does not exist yet)."""
    database = _sqlite_file(mlflow.get_tracking_uri())
    if database is not None and not database.is_file():
        return {}
    client = MlflowClient()
    experiment = client.get_experiment_by_name(mlflow_experiment_name())
    if experiment is None:
        return {}
    found: dict[str, Any] = {}
    for name in names:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{ROLE}` = 'experiment' and tags.`{TAG}.experiment` = '{name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            found[name] = runs[0]
    return found


EXPERIMENT_URI = "experiment:"
MODEL_RUN = f"{TAG}.model_run"
"""Tag of an experiment's parent run: the run holding its model (itself, or the nested run
of repeat 0 when the experiment is repeated)."""
MODEL_NAME = f"{TAG}.model_name"
"""Tag of a run that logged a model: the model's name, the experiment's (older runs: none,
their model is named ``model``)."""
INPUTS = f"{TAG}.inputs"
"""Tag of a run that logged a model: what its images hold, ``standardised`` or
``log_column_density`` (:data:`turbexp.plugin_types.ImageInputs`; older runs: none, meaning
standardised)."""


def model_inputs(run: Any) -> ImageInputs:
    """What the images of the model ``run`` logged hold (its tag :data:`INPUTS`);
    ``ValueError`` for a value turbexp does not know."""
    inputs = run.data.tags.get(INPUTS, "standardised")
    if inputs not in get_args(ImageInputs):
        raise ValueError(f"the tag {INPUTS} of run {run.info.run_id} is {inputs!r}, not one "
                         f"of {', '.join(get_args(ImageInputs))}")
    return inputs


NEWEST = "newest"
"""Alias of the version of an experiment's registered model logged last (MLflow reserves
``latest``; ``models:/NAME/latest`` is its own name for the highest version)."""
RUN_ID = re.compile(r"[0-9a-f]{32}")


def run_model_uri(run: Any) -> str:
    """``runs:/ID/NAME``, the model that ``run`` logged."""
    return f"runs:/{run.info.run_id}/{run.data.tags.get(MODEL_NAME, 'model')}"


def model_run(name: str) -> Any:
    """The run holding the model of experiment ``name``'s latest finished parent run;
    ``ValueError`` if the experiment has no finished run."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(mlflow_experiment_name())
    runs = [] if experiment is None else client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{ROLE}` = 'experiment' and tags.`{TAG}.experiment` = '{name}' "
                      "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ValueError(f"experiment {name!r} has no finished run to take its model from; "
                         "run it first")
    holder = runs[0].data.tags.get(MODEL_RUN, runs[0].info.run_id)
    return runs[0] if holder == runs[0].info.run_id else client.get_run(holder)


def resolve_model_uri(uri: str) -> str:
    """A model as a user names it, as an MLflow model URI:

    - ``experiment:NAME``: the model of that experiment's latest finished run;
    - ``runs:/ID`` or a bare run id: the model that run logged;
    - a name: the version of that registered model with the alias ``newest``;
    - anything else (``models:/NAME@alias``, ``models:/NAME/3``, ``runs:/ID/PATH``, a
      folder) as it is.

    ``ValueError``, saying what would work, when the experiment, run or model is not in the
    tracking store."""
    if uri.startswith(EXPERIMENT_URI):
        return run_model_uri(model_run(uri.removeprefix(EXPERIMENT_URI)))
    run_id = uri.removeprefix("runs:/").strip("/")
    if RUN_ID.fullmatch(run_id):
        try:
            return run_model_uri(MlflowClient().get_run(run_id))
        except Exception as exc:  # MLflow raises its own exception for a missing run
            raise ValueError(f"no run {run_id} in the tracking store "
                             f"{mlflow.get_tracking_uri()}") from exc
    if ":" in uri or "/" in uri or Path(uri).exists():
        return uri
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_registered_model(uri)
    except MlflowException:
        known = sorted(m.name for m in MlflowClient().search_registered_models())
        raise ValueError(f"no registered model {uri!r} (registered: "
                         f"{', '.join(known) or 'none'}); give an experiment's name once it "
                         "has run, models:/NAME@ALIAS, runs:/RUN_ID or a run id") from None
    return f"models:/{uri}@{NEWEST}"


@contextmanager
def quiet_reading() -> Iterator[None]:
    """Reading models and artifacts without MLflow's download progress bar (unless the user
    chose to have it) or the libraries' warnings about their own internals."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    chosen = key in os.environ
    if not chosen:
        os.environ[key] = "false"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if not chosen:
            os.environ.pop(key, None)


def load_pipeline(uri: str) -> Any:
    """The fitted scikit-learn pipeline logged at ``uri``, loaded with skops trusting only the
    types turbexp allows (:func:`refused_types`), never the list the model carries;
    ``ValueError`` when there is none to load or it holds a type turbexp does not allow."""
    import skops.io
    import yaml
    from mlflow.exceptions import MlflowException

    try:
        with quiet_reading():
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["sklearn"]
        if flavor.get("serialization_format") != "skops":
            raise ValueError(f"the model at {uri!r} is saved as "
                             f"{flavor.get('serialization_format')!r}: turbexp loads only "
                             "skops models, which cannot run code when read")
        path = local / flavor["pickled_model"]
        found = skops.io.get_untrusted_types(file=path)
        refused = refused_types(found)
        if refused:
            raise ValueError(f"the model at {uri!r} holds types turbexp does not trust: "
                             f"{', '.join(refused)}; it was not loaded (turbexp loads only "
                             "scikit-learn, turbexp and installed plugins' estimators)")
        return skops.io.load(path, trusted=found)
    except ValueError:
        raise
    except (MlflowException, OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot load the model at {uri!r}: {exc}") from None


def refused_types(names: list[str]) -> list[str]:
    """Those of these qualified type names turbexp does not allow in a model: all but the
    scikit-learn estimator classes defined in turbexp or an installed plugin's package."""
    from turbexp.plugins import registry

    roots = {"turbexp", "turbexp_plugins"} | {info.cls.__module__.split(".")[0]
                                              for info in registry().all()}
    return [name for name in names if not _allowed_estimator(name, roots)]


def _allowed_estimator(name: str, roots: set[str]) -> bool:
    import importlib

    from sklearn.base import BaseEstimator

    module, _, qualname = name.rpartition(".")
    if module.split(".")[0] not in roots or "<" in qualname:
        return False
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(found, type) and issubclass(found, BaseEstimator) \
        and found.__module__ == module
