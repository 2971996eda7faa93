"""The deep plugins are registered by the ``deep`` entry point of turbexp-deep, without
importing TensorFlow, and the ``pixels`` features hand the images on as images."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from turbexp.errors import UserError
from turbexp.experiment import plan_experiment
from turbexp.plugins import load_registry
from turbexp.testing import TurbexpProject
from turbexp_deep.pixels import PixelsTransformer

DEEP = {
    "estimator": {"cnn", "debiased_cnn"},
    "features": {"transfer", "pixels"},
    "report": {"saliency", "embeddings", "debiasing"},
}


def test_deep_plugins_are_registered() -> None:
    registry = load_registry()
    assert not [f for f in registry.failures if f.entry_point == "deep"]
    for kind, names in DEEP.items():
        assert names <= set(registry.names(kind))
        for name in names:
            found = registry.get(kind, name)
            assert (found.entry_point, found.package) == ("deep", "turbexp-deep")
    assert registry.get("report", "saliency").cls.estimators == {"cnn", "debiased_cnn"}


def test_pixels_are_the_images_themselves() -> None:
    images = np.random.default_rng(0).standard_normal((3, 8, 8))
    pixels = PixelsTransformer().fit(images)
    out = pixels.transform(images)
    assert out.shape == (3, 8, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out, images.astype(np.float32))
    with pytest.raises(ValueError, match="fitted on 8×8 images, got 4×4"):
        pixels.transform(images[:, :4, :4])
    with pytest.raises(ValueError, match=r"expected images of shape \(n, H, W\)"):
        pixels.transform(images.reshape(3, 64))


def test_a_report_for_another_estimator_is_refused(turbexp_project: TurbexpProject) -> None:
    path = turbexp_project.experiment(evaluate={"reports": ["roc", "saliency"]})
    with pytest.raises(UserError, match="report 'saliency' needs one of the estimators "
                                        "cnn, debiased_cnn, not 'svm'"):
        plan_experiment(path)


def test_the_plugin_listing_imports_no_framework(tmp_path: Path) -> None:
    # the entry point module and the plugin declarations import no framework at top level
    code = ("import sys, turbexp_deep\n"
            "from turbexp.plugins import load_registry\n"
            "load_registry()\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_tensorflow_start_up_notes_stay_off_the_terminal_and_errors_do_not(
        tmp_path: Path) -> None:
    code = ("import os\n"
            "from turbexp_deep import framework\n"
            "with framework._start_up_notes_kept():\n"
            "    os.write(2, b'I0000 cudart_stub.cc:31] Could not find cuda drivers\\n')\n"
            "    os.write(2, b'E0000 something real went wrong\\n')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "cudart_stub" not in result.stderr and "Could not find cuda" not in result.stderr
    assert "E0000 something real went wrong" in result.stderr
    assert "absl::InitializeLog" not in result.stderr  # TensorFlow's own import: quiet too
    verbose = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "TURBEXP_VERBOSE": "1"})
    assert "Could not find cuda drivers" in verbose.stderr
