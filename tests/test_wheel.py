"""The built wheels, installed without ``-e``, work: their plugins load and find their data.

The wheels of turbexp and of the plugin distributions under plugins/ go into a fresh virtual
environment with ``--no-deps``; the dependencies are
borrowed from this environment's site-packages through a ``.pth`` path line, which puts
them on ``sys.path`` without running this environment's editable-install hooks, so that
``turbexp`` is imported from the wheel and not from the repository.
"""

from __future__ import annotations

import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import ROOT

PROBE = """
import json, pathlib, turbexp
from turbexp.plugins import load_registry
from turbexp_ramses import namelist
import turbexp_deep
found = load_registry()
print(json.dumps({
    "turbexp": turbexp.__file__,
    "ramses": namelist.__file__,
    "deep": turbexp_deep.__file__,
    "plugins": sorted(f"{i.kind}:{i.name}" for i in found.all()),
    "failures": [f.error for f in found.failures],
    "template": namelist.TEMPLATE.is_file(),
    "patch": (namelist.TEMPLATE.parent / "patch" / "condinit.f90").is_file(),
}))
"""


@pytest.mark.slow
def test_the_wheels_installed_without_editable_mode_work(tmp_path: Path) -> None:
    import json

    sources = [ROOT, *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-w", str(tmp_path / "dist"),
                            *map(str, sources)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheels = sorted((tmp_path / "dist").glob("*.whl"))
    assert len(wheels) == len(sources), wheels
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                                *map(str, wheels)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    [own] = (env_dir / "lib").glob("python3.*/site-packages")
    (own / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    probe = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout.splitlines()[-1])
    assert result["turbexp"].startswith(str(own)), result["turbexp"]
    assert result["ramses"].startswith(str(own)), result["ramses"]
    assert result["deep"].startswith(str(own)), result["deep"]
    assert result["failures"] == []
    assert {"features:hog", "estimator:svm", "simulator:builtin", "simulator:ramses",
            "report:roc", "estimator:cnn", "features:pixels"} <= set(result["plugins"])
    assert result["template"] and result["patch"]
    # the command-line entry point of the core wheel runs a whole quickstart validation
    (tmp_path / "experiments").mkdir()
    (tmp_path / "sims").mkdir()
    for name in ("experiments/quickstart.yaml", "sims/quickstart.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    validated = subprocess.run([str(env_dir / "bin" / "turbexp"), "validate",
                                "experiments/quickstart.yaml"], capture_output=True, text=True,
                               cwd=tmp_path, timeout=300)
    assert validated.returncode == 0, validated.stderr
    assert "quickstart" in validated.stdout
