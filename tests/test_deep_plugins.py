"""The deep plugins are registered by the ``deep`` entry point, and without TensorFlow they fail
to load by name while everything else works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT

from turbexp.plugins import load_registry

DEEP = {
    "estimator": {"cnn", "debiased_cnn"},
    "features": {"transfer", "pixels"},
    "report": {"saliency", "embeddings", "debiasing"},
}

WITHOUT_TENSORFLOW = textwrap.dedent("""
    import sys

    sys.modules["tensorflow"] = None  # as if not installed: find_spec gives None, import fails
    from turbexp.cli import main

    main(sys.argv[1:])
""")


def test_deep_plugins_are_registered() -> None:
    pytest.importorskip("tensorflow")
    registry = load_registry()
    assert not [f for f in registry.failures if f.entry_point in ("deep", "pixels")]
    for kind, names in DEEP.items():
        assert names <= set(registry.names(kind))
    assert registry.get("estimator", "cnn").entry_point == "deep"
    assert registry.get("features", "pixels").entry_point == "pixels"
    assert registry.get("report", "saliency").cls.estimators == {"cnn", "debiased_cnn"}


def test_without_tensorflow_the_deep_plugins_are_listed_as_not_installed(
        tmp_path: Path) -> None:
    script = tmp_path / "no_tf.py"
    script.write_text(WITHOUT_TENSORFLOW)
    result = subprocess.run([sys.executable, str(script), "plugins"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "not installed deep" in " ".join(out.split())
    assert "No module named 'tensorflow'" in out and "turbexp[deep]" in out
    # a missing optional extra is no warning on every other command
    (tmp_path / "c.yaml").write_text("name: c\ngrid: 16\ngroups: [{index: 4.0, count: 3}]\n")
    other = subprocess.run([sys.executable, str(script), "sims", "validate", "c.yaml"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr
    assert "warning: plugin" not in other.stderr and "tensorflow" not in other.stderr
    table = [line for line in result.stdout.splitlines() if "│" in line]
    names = {cells[2].strip() for cells in (line.split("│") for line in table) if len(cells) > 3}
    assert {"hog", "svm", "pixels", "roc"} <= names
    assert not names & {"cnn", "debiased_cnn", "transfer", "saliency"}


def test_a_report_for_another_estimator_is_refused(workdir: Path) -> None:
    pytest.importorskip("tensorflow")
    from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, write

    from turbexp.errors import UserError
    from turbexp.experiment import plan_experiment

    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    path = write(workdir / "experiments" / "tiny.yaml",
                 TINY_EXPERIMENT.replace("[roc, confusion_matrix, tsne]", "[roc, saliency]"))
    with pytest.raises(UserError, match="report 'saliency' needs one of the estimators "
                                        "cnn, debiased_cnn, not 'svm'"):
        plan_experiment(path)


def test_the_package_sources_keep_tensorflow_out_of_the_plugin_listing() -> None:
    # the entry point module and the plugin declarations import no framework at top level
    code = ("import sys, turbexp_plugins.deep, turbexp_plugins.pixels\n"
            "from turbexp.plugins import load_registry\n"
            "load_registry()\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    if "No module named 'tensorflow'" in result.stderr:
        pytest.skip("tensorflow is not installed")
    assert result.returncode == 0, result.stderr
