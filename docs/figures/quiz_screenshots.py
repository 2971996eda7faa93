"""Take docs/figures/quiz_question.png and quiz_result.png: the page of `turbexp quiz`.

A demonstration session in a temporary folder (its own cache, TURBEXP_HOME and
MLflow store): a campaign of four 32³ simulations at the `developed` preset and,
standing in for observed maps, two synthetic lognormal column-density maps
written as FITS. Chromium (Debian's, /usr/bin/chromium) is driven by Playwright.
Run: python docs/figures/quiz_screenshots.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np
from astropy.io import fits

HERE = Path(__file__).resolve().parent
CAMPAIGN = """
name: demo
preset: developed
grid: 32
seed: 1
groups:
  - {label: kolmogorov, index: 3.6666667, count: 2}
  - {label: burgers, index: 4.0, count: 2}
"""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


def synthetic_map(path: Path, size: int, seed: int) -> Path:
    """A lognormal map with a k^-3 power spectrum, in cm^-2."""
    rng = np.random.default_rng(seed)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    k[0, 0] = np.inf
    field = np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * k**-1.5).real
    hdu = fits.PrimaryHDU(1e21 * np.exp(0.5 * (field - field.mean()) / field.std()))
    hdu.header["BUNIT"] = "cm-2"
    hdu.writeto(path)
    return path


def main() -> None:
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="quiz-demo-"))
    os.environ["TURBEXP_HOME"] = str(root / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    from turbexp.commands import quiz as q
    from turbexp.commands.quiz_server import bind
    from turbexp.store import SimulationStore

    campaign = root / "demo.yaml"
    campaign.write_text(textwrap.dedent(CAMPAIGN))
    maps = [str(synthetic_map(root / f"cloud_{i}.fits", 64, i)) for i in range(2)]
    inputs = q.check_inputs(maps, str(campaign), 6)
    session = q.build_session(inputs, root / "home" / "quiz" / "demo",
                              SimulationStore(root / "cache"), count=6, seed=2)
    server = bind("127.0.0.1", 0)
    server.session = session
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 680, "height": 760})
        page.goto(server.url)
        for position, answer in enumerate(["real", "simulated", "simulated", "real", "real",
                                           "simulated"]):
            if position == 1:
                page.screenshot(path=HERE / "quiz_question.png")
            page.wait_for_timeout(600 + 200 * position)  # a person takes a moment
            with page.expect_navigation():
                page.click(f"button[value={answer}]")
        page.set_viewport_size({"width": 680, "height": 420})
        page.screenshot(path=HERE / "quiz_result.png")
        browser.close()
    server.shutdown()
    print(f"demo session in {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
