"""A table of bad inputs, each through the real CLI entry point: one message naming file and
field, exit status 2, no traceback, nothing written to the cache, Optuna or MLflow."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write

from turbexp.cli import main

# the deep plugins are listed too when their distribution is installed
DEEP = importlib.util.find_spec("turbexp_deep") is not None
def _laughs(levels: int = 9) -> str:
    """A flow list whose anchors nest ``levels`` deep: a few hundred bytes that expand to
    9 ** levels elements."""
    text = "&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"
    for i in range(1, levels):
        text = f"&l{i} [{text}, " + ", ".join([f"*l{i - 1}"] * 8) + "]"
    return text


# (which file, text to replace, replacement, field named in the message, words expected)
CASES = [
    ("experiment", "name: tiny-hog-svm", "name: [oops", None, "invalid YAML"),
    ("experiment", "name: tiny-hog-svm", "name: a\nname: b", None, "duplicate key 'name'"),
    ("experiment", "tune: {", "tunes: {trials: 1}\ntune: {", "tunes", "unknown key"),
    ("experiment", "size: 8", "size: eight", "data.images.size", "integer"),
    ("experiment", "size: 8", "size: -8", "data.images.size", "greater than or equal to 8"),
    ("experiment", "cuts: 4", "cuts: 3", "data.images.cuts", "1 or 4"),
    ("experiment", "flips: 2", "flips: 3", "data.images.flips", "1, 2 or 4"),
    ("experiment", "size: 8,", "size: 8, projections: [x, x],", "data.images.projections",
     "once"),
    ("experiment", "holdout: 0.3", "holdout: 0.5", "data.split", "must be 1"),
    ("experiment", "seed: 0, defaults", "seed: -1, defaults", "tune.seed", "greater than"),
    ("experiment", "trials: 3", "trials: many", "tune.trials", "integer"),
    ("experiment", "kind: classify", "kind: cluster", "task.kind", "'classify' or 'regress'"),
    ("experiment", "burgers: 4.0", "burgers: 1.5", "task.classes.burgers", "greater than"),
    ("experiment", "burgers: 4.0", "burgers: 4.3", "task.classes.burgers", "no simulation"),
    ("experiment", "plugin: hog", "plugin: hoog", "features.plugin",
     "unknown features plugin 'hoog'; installed: hog, pixels, power_spectrum"
     + (", transfer" if DEEP else "")),
    ("experiment", "plugin: svm,", "plugin: forest,", "estimator.plugin",
     "unknown estimator plugin 'forest'; installed: "
     + ("cnn, debiased_cnn, " if DEEP else "") + "logistic, svm, svr"),
    ("experiment", "reports: [roc", "reports: [rocc", "evaluate.reports.0.plugin",
     "unknown report plugin 'rocc'"),
    ("experiment", "orientations: 6", "orientations: 100", "features.orientations",
     "less than or equal to 36"),
    ("experiment", "low: 0.1", "low: -0.1", "estimator.C", "log range needs low > 0"),
    ("experiment", "log: true", "log: yes please", "estimator.C", "log must be true or false"),
    ("experiment", "../sims/tiny.yaml", "../sims/gone.yaml", "data.campaign", "not found"),
    ("experiment", "metric: roc_auc", "metric: r2", "tune.metric", "not a classify metric"),
    ("campaign", "grid: 16", "grid: -16", "grid", "greater than 7"),
    ("campaign", "index: 4.0", "index: 7.5", "groups.1.index", "less than or equal to 6"),
    ("campaign", "index: 4.0", "index: {low: 4.5, high: 3}", "groups.1.index", "below high"),
    ("campaign", "count: 3}", "count: 0}", "groups.0.count", "greater than 0"),
    ("campaign", "count: 3}", "count: true}", "groups.0.count", "valid integer"),
    ("campaign", "grid: 16", "grid: 4096", "grid", "less than or equal to 2048"),
    ("campaign", "grid: 16", "grid: 16.5", "grid", "valid integer"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {mach: -1}", "physics.mach", "greater than 0"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {temperature: 10}", "physics.temperature",
     "unknown key"),
    ("campaign", "preset: reference", "preset: relaxed", "preset",
     "'reference' or 'developed'"),
    ("campaign", "seed: 3", "seed: 3\nsimulator: {plugin: builtin, cfl: 2}", "simulator.cfl",
     "less than or equal to 1"),
    ("campaign", "seed: 3", "seed: 3\nsimulator: {plugin: ramses9}", "simulator.plugin",
     "unknown simulator plugin"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nlist: " + "[" * 100_000
     + "]" * 100_000, None, "collections nest too deep; at most 50"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\n? [a, b]\n: 1", None,
     "a key must be a name or a number, not a list"),
    ("experiment", "high: 10", "high: .inf", "estimator.C", "low and high must be finite"),
    ("experiment", "seed: 0, defaults", "seed: 4294967296, defaults", "tune.seed",
     "less than or equal to 2147483647"),
    ("experiment", "defaults: false}", "defaults: false, storage: 'nope://x'}", "tune.storage",
     "not a database URL that SQLAlchemy can use"),
    ("experiment", "defaults: false}", "defaults: false, storage: 'mysql://a@b/c'}",
     "tune.storage", "its database driver is not installed"),
    ("experiment", "orientations: 6", f"orientations: {_laughs()}", "features.orientations",
     "valid integer, got [[[...]"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {time_myr: {low: 5, high: 0.5}}",
     "physics.time_myr", "low (5.0) must be below high (0.5)"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {mach: .nan}", "physics.mach", "finite number"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {time_myr: .inf}", "physics.time_myr",
     "finite number"),
    ("experiment", "  split:", "  observation: {noise: -0.1}\n  split:", "data.observation.noise",
     "greater than or equal to 0"),
    ("experiment", "  split:", "  observation: {augment_pixel_factors: [1]}\n  split:",
     "data.observation.augment_pixel_factors.0", "greater than or equal to 2"),
    ("experiment", "  split:", "  observation: {augment_beams_pc: [0]}\n  split:",
     "data.observation.augment_beams_pc.0", "greater than 0"),
    # --- the experiment file, key by key
    ("experiment", "name: tiny-hog-svm", "name: 'tiny hog'", "name", "should match pattern"),
    ("experiment", "name: tiny-hog-svm", "name: " + "a" * 300, "name", "at most 100 characters"),
    ("experiment", "name: tiny-hog-svm", "name: 12", "name", "valid string, got 12"),
    ("experiment", "name: tiny-hog-svm\n", "", "name", "required field missing"),
    ("experiment", "name: tiny-hog-svm", "- name: tiny-hog-svm", None, "invalid YAML"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\ndescription: [a, b]",
     "description", "valid string"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nrepeats: 0", "repeats",
     "greater than or equal to 1"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nrepeats: 1001", "repeats",
     "less than or equal to 1000"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nrepeats: two", "repeats",
     "valid integer"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nmodel: nothing", "model",
     "should match pattern '^experiment:"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nmodel: experiment:other", "model",
     "leave out features, estimator and tune"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nscales: [paper]", "scales",
     "valid dictionary"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nscales: {paper: {tune.trialz: 3}}",
     "scales.paper.tune.trialz", "unknown key 'trialz' at tune"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nscales: {paper: {tune.trials: -5}}",
     "tune.trials", "with --scale paper: Input should be greater than or equal to 0"),
    ("experiment", "task: {kind: classify, classes: {kolmogorov: 3.6666667, burgers: 4.0}}\n",
     "", "task", "required field missing"),
    ("experiment", "data:\n  campaign: ../sims/tiny.yaml\n", "data:\n", "data.campaign",
     "required field missing"),
    ("experiment", "campaign: ../sims/tiny.yaml", "campaign: 42", "data.campaign",
     "valid string, got 42"),
    ("experiment", "campaign: ../sims/tiny.yaml", "campaign: ../sims", "data.campaign",
     "is a folder, not a campaign file"),
    ("experiment", "campaign: ../sims/tiny.yaml", "campaign: ''", "data.campaign",
     "at least 1 character"),
    ("experiment", "campaign: ../sims/tiny.yaml", "campaign: ../experiments/tiny.yaml",
     "estimator", "unknown key 'estimator'; expected one of: name, description, preset"),
    ("experiment", "size: 8", "size: 5000", "data.images.size", "less than or equal to 4096"),
    ("experiment", "size: 8", "size: 8.5", "data.images.size", "fractional part"),
    ("experiment", "size: 8,", "size: 8, projections: [w],", "data.images.projections.0",
     "'x', 'y' or 'z', got 'w'"),
    ("experiment", "size: 8,", "size: 8, projections: [],", "data.images.projections",
     "at least 1 item"),
    ("experiment", "size: 8,", "size: 8, shuffle: true,", "data.images.shuffle",
     "unknown key 'shuffle'"),
    ("experiment", "cuts: 4", "cuts: four", "data.images.cuts", "1 or 4, got 'four'"),
    ("experiment", "flips: 2", "flips: -1", "data.images.flips", "1, 2 or 4, got -1"),
    ("experiment", "train: 0.4", "train: 0", "data.split.train", "greater than 0"),
    ("experiment", "train: 0.4", "train: 1.2", "data.split.train", "less than 1"),
    ("experiment", "train: 0.4", "train: half", "data.split.train", "valid number"),
    ("experiment", "holdout: 0.3, seed: 0", "holdout: 0.3, seed: 1.5", "data.split.seed",
     "valid integer"),
    ("experiment", "test: 0.3", "test: .nan", "data.split.test", "finite number"),
    ("experiment", "  split:", "  observation: {beam_fwhm_pc: -1}\n  split:",
     "data.observation.beam_fwhm_pc", "greater than or equal to 0"),
    ("experiment", "  split:", "  observation: {beam_fwhm_pc: 5000}\n  split:",
     "data.observation.beam_fwhm_pc", "less than or equal to 1000"),
    ("experiment", "  split:", "  observation: {noise: .inf}\n  split:", "data.observation.noise",
     "finite number"),
    ("experiment", "  split:", "  observation: {noise: 11}\n  split:", "data.observation.noise",
     "less than or equal to 10"),
    ("experiment", "  split:", "  observation: {blur: 1}\n  split:", "data.observation.blur",
     "unknown key 'blur'"),
    ("experiment", "  split:", "  observation: {augment_pixel_factors: [32]}\n  split:",
     "data.observation.augment_pixel_factors.0", "less than or equal to 16"),
    ("experiment", "  split:", "  observation: {augment_beams_pc: 1}\n  split:",
     "data.observation.augment_beams_pc", "valid list"),
    ("experiment", "  split:", "  observation: [1]\n  split:", "data.observation",
     "valid dictionary"),
    ("experiment", "  split:", "  extra: 1\n  split:", "data.extra", "unknown key 'extra'"),
    ("experiment", "kind: classify,", "kind: classify, tolerance: 0,", "task.tolerance",
     "greater than 0"),
    ("experiment", "classes: {kolmogorov: 3.6666667, burgers: 4.0}",
     "classes: {kolmogorov: 3.6666667}", "task", "exactly two classes"),
    ("experiment", "classes: {kolmogorov: 3.6666667, burgers: 4.0}",
     "classes: {a: 3.6666667, b: 3.6666667}", "task", "differ by more than 2 × tolerance"),
    ("experiment", "classes: {kolmogorov: 3.6666667, burgers: 4.0}", "classes: [3.6666667, 4.0]",
     "task.classes", "valid dictionary"),
    ("experiment", "burgers: 4.0", "burgers: four", "task.classes.burgers", "valid number"),
    ("experiment", "kind: classify, classes: {kolmogorov: 3.6666667, burgers: 4.0}",
     "kind: classify", "task", "exactly two classes"),
    ("experiment", "kind: classify,", "kind: regress,", "task",
     "classes are only for kind: classify"),
    ("experiment", "metric: roc_auc", "metric: accuracyy", "tune.metric",
     "expected one of: roc_auc, accuracy, f1"),
    # --- plugin sections and search spaces
    ("experiment", "features: {plugin: hog, orientations: 6, cells: 2}",
     "features: {orientations: 6}", "features.plugin", "required field missing"),
    ("experiment", "orientations: 6", "orientations: 1", "features.orientations",
     "greater than or equal to 2"),
    ("experiment", "orientations: 6", "orientations: six", "features.orientations",
     "valid integer"),
    ("experiment", "cells: 2", "cells: 0", "features.cells", "greater than or equal to 1"),
    ("experiment", "cells: 2", "cells: 2, cells_per_block: 3", "features",
     "cells_per_block (3) must not exceed cells (2)"),
    ("experiment", "cells: 2", "cells: 2, block_norm: L3", "features.block_norm",
     "'L1', 'L1-sqrt', 'L2' or 'L2-Hys'"),
    ("experiment", "cells: 2", "cells: 2, colour: red", "features.colour",
     "unknown parameter of features plugin 'hog'"),
    ("experiment", "orientations: 6", "orientations: {choices: []}", "features.orientations",
     "choices must be a non-empty list"),
    ("experiment", "orientations: 6", "orientations: {choices: 4}", "features.orientations",
     "choices must be a non-empty list"),
    ("experiment", "orientations: 6", "orientations: {choices: [4, 100]}",
     "features.orientations", "got 100 in the search space"),
    ("experiment", "orientations: 6", "orientations: {low: 4, high: 4}", "features.orientations",
     "low (4) must be below high (4)"),
    ("experiment", "orientations: 6", "orientations: {low: 4, high: 9, step: 0}",
     "features.orientations", "step must be a positive number"),
    ("experiment", "orientations: 6", "orientations: {low: 4, high: 9, step: .nan}",
     "features.orientations", "step must be a positive number"),
    ("experiment", "orientations: 6", "orientations: {low: 4, high: 9, log: true, step: 1}",
     "features.orientations", "a range takes log or step, not both"),
    ("experiment", "orientations: 6", "orientations: {low: a, high: 9}", "features.orientations",
     "low and high must be numbers"),
    ("experiment", "orientations: 6", "orientations: {low: 4, hi: 9}", "features.orientations",
     "a search space is {low: L, high: H"),
    ("experiment", "plugin: hog,", "plugin: power_spectrum,", "features.orientations",
     "unknown parameter of features plugin 'power_spectrum'"),
    ("experiment", "features: {plugin: hog, orientations: 6, cells: 2}",
     "features: {plugin: power_spectrum, kmin: 0.5}", "features.kmin",
     "greater than or equal to 1"),
    ("experiment", "features: {plugin: hog, orientations: 6, cells: 2}",
     "features: {plugin: power_spectrum, window: square}", "features.window",
     "'hann' or 'none'"),
    ("experiment", "features: {plugin: hog, orientations: 6, cells: 2}",
     "features: {plugin: power_spectrum, kmax_fraction: 2}", "features.kmax_fraction",
     "less than or equal to 1"),
    ("experiment", "C: {low: 0.1, high: 10, log: true}", "C: 0", "estimator.C",
     "greater than 0"),
    ("experiment", "C: {low: 0.1, high: 10, log: true}", "kernel: tree", "estimator.kernel",
     "'rbf' or 'linear'"),
    ("experiment", "C: {low: 0.1, high: 10, log: true}", "gamma: -1", "estimator.gamma",
     "Input should be 'scale' or greater than 0, got -1"),
    ("experiment", "C: {low: 0.1, high: 10, log: true}", "gamma: auto", "estimator.gamma",
     "Input should be 'scale' or a valid number, got 'auto'"),
    ("experiment", "C: {low: 0.1, high: 10, log: true}", "class_weight: heavy",
     "estimator.class_weight", "'none' or 'balanced'"),
    ("experiment", "C: {low: 0.1, high: 10, log: true}", "probability: maybe",
     "estimator.probability", "valid boolean"),
    ("experiment", "plugin: svm, C: {low: 0.1, high: 10, log: true}",
     "plugin: logistic, max_iter: 0", "estimator.max_iter", "greater than or equal to 1"),
    ("experiment", "plugin: svm, C: {low: 0.1, high: 10, log: true}", "plugin: svr",
     "estimator.plugin", "does not do classify tasks"),
    ("experiment", "log: true}", "log: true}, C2: 1", "estimator.C2",
     "unknown parameter of estimator plugin 'svm'"),
    ("experiment", "estimator: {plugin: svm, C: {low: 0.1, high: 10, log: true}}",
     "estimator: [svm]", "estimator", "valid dictionary"),
    ("experiment", "estimator: {plugin: svm, C: {low: 0.1, high: 10, log: true}}\n", "", None,
     "an experiment needs features and estimator"),
    ("experiment", "plugin: svm,", "plugin: 'svm; rm -rf /',", "estimator.plugin",
     "should match pattern"),
    # --- tune and evaluate
    ("experiment", "trials: 3", "trials: -1", "tune.trials", "greater than or equal to 0"),
    ("experiment", "trials: 3", "trials: 100001", "tune.trials", "less than or equal to 100000"),
    ("experiment", "trials: 3", "trials: 0", "tune.trials", "search spaces need tune.trials > 0"),
    ("experiment", "trials: 3", "trials: 2.5", "tune.trials", "fractional part"),
    ("experiment", "defaults: false", "defaults: sometimes", "tune.defaults", "valid boolean"),
    ("experiment", "defaults: false}", "defaults: false, pruner: median}", "tune.pruner",
     "unknown key 'pruner'"),
    ("experiment", "defaults: false}", "defaults: false, storage: " + "x" * 2100 + "}",
     "tune.storage", "at most 2000 characters"),
    ("experiment", "tune: {trials: 3, metric: roc_auc, seed: 0, defaults: false}", "tune: 3",
     "tune", "valid dictionary"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]", "reports: roc", "evaluate.reports",
     "valid list"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]",
     "reports: [{plugin: tsne, perplexity: 0}]", "evaluate.reports.0.perplexity",
     "greater than 0"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]",
     "reports: [{plugin: tsne, n_jobs: 100}]", "evaluate.reports.0.n_jobs",
     "less than or equal to 64"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]",
     "reports: [{plugin: confusion_matrix, normalize: all}]", "evaluate.reports.0.normalize",
     "'none' or 'true'"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]",
     "reports: [{plugin: tsne, perplexity: {low: 5, high: 30}}]", "evaluate.reports.0",
     "report parameters take values, not search spaces"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]",
     "reports: [{plugin: zoom_invariance, factors: [100]}]", "evaluate.reports.0.factors",
     "between 0.1 and 10"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]",
     "reports: [{plugin: zoom_invariance, factors: []}]", "evaluate.reports.0.factors",
     "at least 1 item"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]",
     "reports: [{plugin: index_response, campaign: ../sims/none.yaml}]", "evaluate.reports.0",
     "report 'index_response' reads campaign file"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]", "reports: [{plugin: index_response}]",
     "evaluate.reports.0.campaign", "Field required"),
    ("experiment", "reports: [roc, confusion_matrix, tsne]", "reports: [roc, roc]",
     "evaluate.reports.1", "listed twice"),
    ("experiment", "  reports:", "  on: test\n  reports:", "evaluate.on",
     "Input should be 'holdout', got 'test'"),
    ("experiment", "  reports:", "  bootstrap: {resamples: 10}\n  reports:",
     "evaluate.bootstrap.resamples", "greater than or equal to 100"),
    ("experiment", "  reports:", "  bootstrap: {resamples: 1000000}\n  reports:",
     "evaluate.bootstrap.resamples", "less than or equal to 100000"),
    ("experiment", "  reports:", "  bootstrap: {seed: -5}\n  reports:",
     "evaluate.bootstrap.seed", "greater than or equal to 0"),
    ("experiment", "  reports:", "  bootstrap: {repeats: 5}\n  reports:",
     "evaluate.bootstrap.repeats", "unknown key 'repeats'"),
    # --- YAML itself
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\n\tdescription: tab", None,
     "found character '\\t' that cannot start any token"),
    ("experiment", "name: tiny-hog-svm", "name: !!python/object/apply:os.system [echo hi]", None,
     "could not determine a constructor for the tag"),
    ("experiment", "name: tiny-hog-svm", "name: *undefined", None, "undefined alias"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\n---\nname: second", None,
     "but found another document"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\n<<: {x: 1}", "<<",
     "unknown key '<<'"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\ndescription: " + "x" * 1_000_001,
     None, "a YAML file here is at most 1000000"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\n? {a: 1}\n: 1", None,
     "a key must be a name or a number, not a dict"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\nnull: 1", "null",
     "unknown key 'null'"),
    ("experiment", "name: tiny-hog-svm", "name: tiny-hog-svm\n1.5: 1", "1.5",
     "unknown key '1.5'"),
    # --- the campaign file
    ("campaign", "name: tiny", "name: 'a/b'", "name", "should match pattern"),
    ("campaign", "name: tiny", "name: tiny\ndescription: {a: 1}", "description", "valid string"),
    ("campaign", "grid: 16", "grid: 7", "grid", "greater than 7"),
    ("campaign", "grid: 16", "grid: sixteen", "grid", "valid integer"),
    ("campaign", "grid: 16\n", "", "grid", "required field missing"),
    ("campaign", "seed: 3", "seed: -3", "seed", "greater than or equal to 0"),
    ("campaign", "seed: 3", "seed: 2147483648", "seed", "less than or equal to 2147483647"),
    ("campaign", "seed: 3", "seed: 3.5", "seed", "valid integer"),
    ("campaign", "  - {label: kolmogorov, index: 3.6666667, count: 3}\n"
                 "  - {label: burgers, index: 4.0, count: 3}\n", "  []\n", "groups",
     "at least 1 item"),
    ("campaign", "groups:\n", "groups: none\n", None, "invalid YAML"),
    ("campaign", "count: 3}", "count: 200000}", "groups.0.count", "less than or equal to 100000"),
    ("campaign", "count: 3}", "count: 3.5}", "groups.0.count", "valid integer"),
    ("campaign", "count: 3}", "count: 3, colour: red}", "groups.0.colour", "unknown key 'colour'"),
    ("campaign", "index: 4.0", "index: four", "groups.1.index", "valid number"),
    ("campaign", "index: 4.0", "index: .nan", "groups.1.index", "finite number"),
    ("campaign", "index: 4.0, count: 3}", "count: 3}", "groups.1.index", "required field missing"),
    ("campaign", "label: burgers", "label: 'bad label'", "groups.1.label", "should match pattern"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {box_pc: 0}", "physics.box_pc", "greater than 0"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {box_pc: .inf}", "physics.box_pc",
     "finite number"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {density_g_cm3: -1}", "physics.density_g_cm3",
     "greater than 0"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {temperature_K: 0}", "physics.temperature_K",
     "greater than 0"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {mean_molecular_weight: .nan}",
     "physics.mean_molecular_weight", "finite number"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {mach: {low: 1}}", "physics.mach.high",
     "required field missing"),
    ("campaign", "seed: 3", "seed: 3\nphysics: {time_myr: -1}", "physics.time_myr",
     "greater than or equal to 0"),
    ("campaign", "seed: 3", "seed: 3\nphysics: 5", "physics", "valid dictionary"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {kind: cloud}", "executor.kind",
     "'local' or 'slurm'"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {jobs: 0}", "executor.jobs",
     "greater than or equal to 1"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {kind: slurm, slurm: {time_min: 0}}",
     "executor.slurm.time_min", "greater than 0"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {kind: slurm, slurm: {cpus_per_task: 0}}",
     "executor.slurm.cpus_per_task", "greater than or equal to 1"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {kind: slurm, slurm: {mem_gb: -2}}",
     "executor.slurm.mem_gb", "greater than 0"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {kind: slurm, slurm: {gpus_per_node: -1}}",
     "executor.slurm.gpus_per_node", "greater than or equal to 0"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {kind: slurm, slurm: {array_parallelism: 0}}",
     "executor.slurm.array_parallelism", "greater than or equal to 1"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {kind: slurm, slurm: {sbatch: {qos: [a]}}}",
     "executor.slurm.sbatch.qos", "valid string"),
    ("campaign", "seed: 3", "seed: 3\nexecutor: {kind: slurm, slurm: {queue: long}}",
     "executor.slurm.queue", "unknown key 'queue'"),
    ("campaign", "seed: 3", "seed: 3\nsimulator: {plugin: builtin, cfl: 0}", "simulator.cfl",
     "greater than 0"),
    ("campaign", "seed: 3", "seed: 3\nsimulator: {plugin: builtin, speed: fast}",
     "simulator.speed", "unknown parameter of simulator plugin 'builtin'"),
    ("campaign", "seed: 3", "seed: 3\nscales: {paper: {grid: 4096}}", "grid",
     "with --scale paper: Input should be less than or equal to 2048"),
    ("campaign", "seed: 3", "seed: 3\nscales: {paper: [1]}", "scales.paper", "valid dictionary"),
    ("campaign", "preset: reference", "preset: 3", "preset",
     "'reference' or 'developed', got 3"),
]


@pytest.mark.parametrize(("which", "old", "new", "field", "expected"), CASES,
                         ids=[f"{c[0]}-{c[3] or c[4]}" for c in CASES])
def test_bad_input(tiny: Path, capsys: pytest.CaptureFixture[str], which: str, old: str,
                   new: str, field: str | None, expected: str) -> None:
    root = tiny.parent.parent
    target = tiny if which == "experiment" else root / "sims" / "tiny.yaml"
    original = TINY_EXPERIMENT if which == "experiment" else TINY_CAMPAIGN
    assert old in original
    write(target, original.replace(old, new, 1))
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert str(target) in err
    if field:
        assert f": {field}: " in err
    assert expected in err.replace("\n", " ")
    assert not (root / ".turbexp").exists()
    assert not (root / "mlflow.db").exists()


def test_an_error_message_stays_short_whatever_the_value(
        tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tiny, TINY_EXPERIMENT.replace("orientations: 6", f"orientations: {_laughs(12)}"))
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err) < 1000


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("TURBEXP_HOME", "FILE", "is not a folder; point TURBEXP_HOME at a folder"),
    ("TURBEXP_CACHE", "FILE", "is not a folder; point TURBEXP_CACHE at a folder"),
    ("MLFLOW_TRACKING_URI", "weird://x", "cannot open the MLflow tracking store 'weird://x'"),
    ("MLFLOW_TRACKING_URI", "sqlite:////proc/none/m.db", "cannot open the MLflow tracking"),
])
def test_a_bad_environment_is_one_message_naming_the_variable(
        tiny: Path, variable: str, value: str, expected: str) -> None:
    root = tiny.parent.parent
    (root / "a-file").write_text("")
    env = {variable: str(root / "a-file") if value == "FILE" else value}
    result = turbexp_cli("run", str(tiny), "--no-progress", cwd=root, env=env)
    assert result.returncode == 2
    err = result.stderr
    assert "Traceback" not in err and f"{variable}: " in err
    assert expected in err.replace("\n", " ")
    assert not (root / ".turbexp" / "cache").exists()


def test_an_image_set_larger_than_the_memory_is_refused_before_anything_is_made(
        tiny: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from turbexp import experiment

    monkeypatch.setattr(experiment, "memory_here", lambda: 100 * 2**20)  # a 100 MiB machine
    write(tiny, TINY_EXPERIMENT.replace("size: 8", "size: 512"))
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err.replace("\n", " ")
    # 6 simulations × 3 projections × 4 cuts × 2 flips, 8 bytes a pixel
    assert "data.images.size: 144 images of 512² pixels need about 0.281 GiB" in err, err
    assert "this machine has 0.0977 GiB" in err
    assert not (tiny.parent.parent / ".turbexp").exists()


def test_an_optuna_storage_that_cannot_be_opened_fails_before_any_run(
        tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    root = tiny.parent.parent
    url = f"sqlite:///{root / 'missing' / 'optuna.db'}"
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress", "--set", f"tune.storage={url}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"tune.storage: cannot open the Optuna storage '{url}'" in err.replace("\n", " ")
    assert "Traceback" not in err
    assert not (root / ".turbexp" / "cache").exists()
    if (root / "mlflow.db").exists():
        assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink loop"])
def test_an_experiment_file_that_is_no_file_is_refused_without_reading(
        workdir: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    import os

    if kind == "fifo":  # reading one would wait for a writer for ever
        path = workdir / "fifo.yaml"
        os.mkfifo(path)
        expected = "not a regular file"
    elif kind == "device":
        path, expected = Path("/dev/zero"), "not a regular file"
    else:
        path = workdir / "loop.yaml"
        path.symlink_to(workdir / "other.yaml")
        (workdir / "other.yaml").symlink_to(path)
        expected = "symbolic links"
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--no-progress"])
    assert info.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_campaign_path_that_loops_is_one_message(
        tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sims = tiny.parent.parent / "sims"
    (sims / "a.yaml").symlink_to(sims / "b.yaml")
    (sims / "b.yaml").symlink_to(sims / "a.yaml")
    write(tiny, TINY_EXPERIMENT.replace("../sims/tiny.yaml", "../sims/a.yaml"))
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny), "--no-progress"])
    assert info.value.code == 2
    assert "a.yaml: a loop of symbolic links" in capsys.readouterr().err


def test_missing_experiment_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "experiments/none.yaml"])
    assert info.value.code == 2
    assert "experiments/none.yaml: file not found" in capsys.readouterr().err
    assert not (workdir / "mlflow.db").exists()


def test_bad_jobs_variable(tiny: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURBEXP_JOBS", "lots")
    with pytest.raises(SystemExit) as info:
        main(["sims", "run", str(tiny.parent.parent / "sims" / "tiny.yaml")])
    assert info.value.code == 2
    assert "TURBEXP_JOBS must be an integer" in capsys.readouterr().err
