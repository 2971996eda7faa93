"""``turbexp list``: each experiment file with its last run, its model and headline metric.

In a terminal the table folds long names and ids onto more lines rather than cutting them;
piped, it is tab-separated values, one experiment per line, nothing shortened; ``--json``
gives the same rows for scripts.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from turbexp import tracking
from turbexp.spec import ExperimentSpec, validate
from turbexp.uncertainty import from_metrics
from turbexp.yamlfile import load_yaml

COLUMNS = ("experiment", "file", "last_run", "status", "run_id", "model_uri", "metric",
           "value", "ci95_low", "ci95_high", "sd", "repeats")


def _model_uri(client: Any, run: Any) -> str:
    """The model of an experiment's run: its registered version, else ``runs:/ID/NAME``;
    empty when it logged none (a run that failed first, or one that reused a model)."""
    holder_id = run.data.tags.get(tracking.MODEL_RUN)
    if holder_id is None:
        return ""
    versions = client.search_model_versions(f"run_id = '{holder_id}'")
    if versions:
        version = max(versions, key=lambda v: int(v.version))
        return f"models:/{version.name}/{version.version}"
    return tracking.run_model_uri(run if holder_id == run.info.run_id
                                  else client.get_run(holder_id))


def rows(paths: list[str]) -> list[dict[str, Any]]:
    """One row per experiment file, every key of :data:`COLUMNS` (status ``never`` and empty
    values for an experiment never run)."""
    from mlflow.tracking import MlflowClient

    specs = {p: validate(ExperimentSpec, load_yaml(p)) for p in paths}
    runs = tracking.last_runs([s.name for s in specs.values()])
    client = MlflowClient()
    found = []
    for path, spec in specs.items():
        row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
        row |= {"experiment": spec.name, "file": path, "metric": f"holdout_{spec.metric}",
                "status": "never"}
        run = runs.get(spec.name)
        if run is not None:
            metric = run.data.tags.get(f"{tracking.TAG}.headline_metric", row["metric"])
            value = from_metrics(run.data.metrics, metric)
            row |= {"last_run": datetime.fromtimestamp(run.info.start_time / 1000)
                    .strftime("%Y-%m-%d %H:%M"),
                    "status": run.info.status, "run_id": run.info.run_id,
                    "model_uri": _model_uri(client, run), "metric": metric,
                    "value": _number(value.value), "ci95_low": _number(value.low),
                    "ci95_high": _number(value.high),
                    "sd": _number(run.data.metrics.get(f"{metric}_sd", math.nan)),
                    "repeats": run.data.params.get("repeats", "")}
        found.append(row)
    return found


def _number(value: float) -> float | str:
    return float(value) if math.isfinite(value) else ""


def _value_text(row: dict[str, Any]) -> str:
    if row["value"] == "":
        return ""
    text = f"{row['value']:.4g}"
    if row["ci95_low"] != "":
        text += f" [{row['ci95_low']:.4g}, {row['ci95_high']:.4g}]"
    if row["sd"] != "":
        text += f" sd {row['sd']:.2g} ({row['repeats']} repeats)"
    return text


def render(found: list[dict[str, Any]], console: Console) -> None:
    """The rows as a table that fits the terminal: names and ids fold, none is cut (the
    files are in the plain and JSON outputs)."""
    table = Table(title="turbexp catalogue (95 % intervals: bootstrap over holdout "
                        "simulations)", show_lines=True)
    for column in ("experiment", "last run", "holdout metric", "run id / model"):
        table.add_column(column, overflow="fold")
    for row in found:
        when = f"{row['last_run']}\n{row['status']}" if row["run_id"] else row["status"]
        ids = "\n".join(part for part in (row["run_id"], row["model_uri"]) if part)
        table.add_row(row["experiment"], when,
                      f"{row['metric']}\n{_value_text(row)}".rstrip(), ids)
    console.print(table)


def write_plain(found: list[dict[str, Any]], out: IO[str]) -> None:
    """The rows as tab-separated values with a header line, nothing shortened."""
    print("\t".join(COLUMNS), file=out)
    for row in found:
        print("\t".join(str(row[c]) for c in COLUMNS), file=out)


def write_json(found: list[dict[str, Any]], out: IO[str]) -> None:
    json.dump(found, out, indent=2)
    print(file=out)
