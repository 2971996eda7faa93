"""The report plugins draw what they claim, on classification and regression results."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.figure import Figure
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from turbexp.embedding import tsne_perplexity
from turbexp.figures import REFERENCE_INDICES
from turbexp.plugin_types import PluginParams, ReportContext
from turbexp.plugins import load_registry
from turbexp_plugins.reports import (
    ConfusionMatrix,
    PredictedVsTrue,
    Roc,
    Tsne,
)

NAMES = ["kolmogorov", "burgers"]
KOLMOGOROV_INDEX, BURGERS_INDEX = REFERENCE_INDICES.values()


def classify_context(n: int = 40, seed: int = 0) -> ReportContext:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    score = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    features = rng.standard_normal((n, 6)) + 2.0 * y[:, None]
    index = np.where(y == 1, BURGERS_INDEX, KOLMOGOROV_INDEX)
    return ReportContext("classify", NAMES, y, (score > 0.5).astype(int), score, features, index)


def regress_context(n: int = 30, seed: int = 0) -> ReportContext:
    rng = np.random.default_rng(seed)
    index = rng.uniform(3.0, 4.5, n)
    predicted = index + 0.1 * rng.standard_normal(n)
    features = np.column_stack([index, rng.standard_normal((n, 3))]) * 100.0
    return ReportContext("regress", [], index, predicted, predicted, features, index, seed=3)


def test_roc_curve_and_auc_in_legend() -> None:
    context = classify_context()
    output = Roc().render(context, Roc.Params())
    fig = output.figures["roc.png"]
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.lines) == 2  # the curve and the chance diagonal
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[1] == "chance"
    auc = float(re.search(r"AUC = ([0-9.]+)", legend[0]).group(1))
    expected = roc_auc_score(context.y_true, context.score)
    assert auc == pytest.approx(expected, abs=5e-4)
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_roc_with_a_single_class_has_no_auc() -> None:
    context = classify_context()
    context.y_true = np.zeros_like(context.y_true)
    output = Roc().render(context, PluginParams())
    ax = output.figures["roc.png"].axes[0]
    assert not ax.lines and "ROC undefined" in ax.texts[0].get_text()


def test_confusion_matrix_counts_and_names() -> None:
    context = classify_context()
    output = ConfusionMatrix().render(context, ConfusionMatrix.Params())
    ax = output.figures["confusion_matrix.png"].axes[0]
    cells = [int(t.get_text()) for t in ax.texts]
    assert len(cells) == 4 and sum(cells) == 40
    true_pos = int(np.sum((context.y_true == 1) & (context.y_pred == 1)))
    assert cells[3] == true_pos
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES


def test_confusion_matrix_normalised_rows() -> None:
    output = ConfusionMatrix().render(classify_context(), {"normalize": "true"})
    values = [float(t.get_text()) for t in output.figures["confusion_matrix.png"].axes[0].texts]
    assert values[0] + values[1] == pytest.approx(1, abs=0.011)
    with pytest.raises(ValidationError):
        ConfusionMatrix.Params(normalize="all")


def test_tsne_classify_on_twelve_samples() -> None:
    context = classify_context(n=12)
    output = Tsne().render(context, Tsne.Params())
    ax = output.figures["tsne.png"].axes[0]
    assert [len(c.get_offsets()) for c in ax.collections] == [6, 6]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == NAMES
    assert np.isfinite(output.metrics["tsne_kl_divergence"])
    again = Tsne().render(context, Tsne.Params()).figures["tsne.png"].axes[0]
    np.testing.assert_array_equal(
        again.collections[0].get_offsets(), ax.collections[0].get_offsets()
    )


def test_tsne_regress_has_colorbar() -> None:
    output = Tsne().render(regress_context(), Tsne.Params(perplexity=5))
    fig = output.figures["tsne.png"]
    assert len(fig.axes) == 2  # the map and its colour bar
    assert len(fig.axes[0].collections[0].get_offsets()) == 30
    assert "index" in fig.axes[1].get_ylabel()


def test_tsne_perplexity_is_clipped() -> None:
    assert tsne_perplexity(30, 1000) == 30
    assert tsne_perplexity(30, 12) < 11 / 3
    with pytest.raises(ValueError, match="at least 4"):
        tsne_perplexity(30, 3)
    with pytest.raises(ValidationError):
        Tsne.Params(perplexity=0)


def test_predicted_vs_true() -> None:
    context = regress_context()
    output = PredictedVsTrue().render(context, PluginParams())
    ax = output.figures["predicted_vs_true.png"].axes[0]
    assert len(ax.collections) == 1
    np.testing.assert_allclose(
        ax.collections[0].get_offsets(), np.column_stack([context.y_true, context.score])
    )
    assert len(ax.lines) == 5  # identity and each reference index across both axes
    expected = [KOLMOGOROV_INDEX, BURGERS_INDEX]
    np.testing.assert_allclose([line.get_xdata()[0] for line in ax.lines[0:4:2]], expected)
    np.testing.assert_allclose([line.get_ydata()[0] for line in ax.lines[1:4:2]], expected)


def test_tasks_declared() -> None:
    assert Roc.tasks == ConfusionMatrix.tasks == frozenset({"classify"})
    assert PredictedVsTrue.tasks == frozenset({"regress"})
    assert Tsne.tasks == frozenset({"classify", "regress"})


def test_registered() -> None:
    registry = load_registry()
    names = set(registry.names("report"))
    assert {"roc", "confusion_matrix", "tsne", "predicted_vs_true"} <= names
    assert not [f for f in registry.failures if f.entry_point == "reports"]


BROKEN_REPORT = """
from turbexp.api import PluginParams, Report, hookimpl


class Broken(Report):
    name = "broken"

    def render(self, context, params):
        raise RuntimeError("this report always fails")


@hookimpl
def register_reports(register):
    register(Broken)
"""


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_a_failing_report_leaves_the_model_and_the_other_reports_logged(
        tiny, strict: bool) -> None:
    import mlflow
    from conftest import TINY_EXPERIMENT, fake_distribution, turbexp_cli, write

    from turbexp.tracking import load_pipeline, run_model_uri

    root = tiny.parent.parent
    site = fake_distribution(root / "site", "turbexp-broken-report", "broken", BROKEN_REPORT)
    write(tiny, TINY_EXPERIMENT.replace("reports: [roc, confusion_matrix, tsne]",
                                        "reports: [broken, roc]"))
    env = {"PYTHONPATH": str(site), "TURBEXP_STRICT_PLUGINS": "1" if strict else "0"}
    result = turbexp_cli("run", str(tiny), "--no-progress", cwd=root, env=env)
    assert result.returncode == (2 if strict else 0), result.stderr
    assert "report 'broken' failed (RuntimeError: this report always fails)" in \
        result.stderr.replace("\n", " ")
    [run] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                               filter_string="tags.`turbexp.role` = 'experiment'")
    assert run.data.tags["turbexp.report_failed.broken"] == \
        "RuntimeError: this report always fails"
    assert run.info.status == ("FAILED" if strict else "FINISHED")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id,
                                                                      "reports")}
    assert {"reports/roc.png", "reports/broken.error.txt"} <= artifacts
    traceback = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/reports/broken.error.txt")
    assert "RuntimeError: this report always fails" in traceback
    # the model was logged before the reports ran: it is there and loads
    assert run.data.tags["turbexp.model_run"] == run.info.run_id
    assert hasattr(load_pipeline(run_model_uri(run)), "predict")
