"""What a run was trained and scored on, as MLflow datasets.

Each run logs its campaign (context ``campaign``) and the three splits of its image set
(contexts ``train``, ``test``, ``holdout``) with ``mlflow.log_input``: the campaign file is
their source, and their digests come from the checksums of the cached maps (and, for a
split, the image and observation settings), so two runs on the same data show the same
digests in the UI's Dataset column, and a different seed or setting shows another.
"""

from __future__ import annotations

import warnings
from typing import Any

import mlflow
import numpy as np

from turbexp.experiment import ExperimentPlan
from turbexp.images import SPLITS, ImageSet
from turbexp.store import content_hash

DIGEST_LENGTH = 16
"""Hex digits of a dataset digest (MLflow keeps at most 36)."""


def _source(plan: ExperimentPlan) -> Any:
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():  # a local path reads as more than one kind of source
        warnings.simplefilter("ignore")
        return resolve_dataset_source(plan.campaign.path.resolve().as_uri())


def digests(plan: ExperimentPlan, data: ImageSet) -> dict[str, str]:
    """The digest of the campaign and of each split, from the maps' checksums."""
    checksums = [data.checksums[s] for s in sorted(data.checksums)]
    found = {"campaign": content_hash(checksums)[:DIGEST_LENGTH]}
    settings = {"images": plan.spec.data.images.model_dump(mode="json"),
                "observation": plan.spec.data.observation.model_dump(mode="json")}
    for name in SPLITS:
        members = np.unique(data.simulation[data.part(name)])
        found[name] = content_hash({"split": name, **settings,
                                    "maps": [data.checksums[int(s)] for s in members]}
                                   )[:DIGEST_LENGTH]
    return found


def log_datasets(plan: ExperimentPlan, data: ImageSet) -> None:
    """Log the campaign and each split to the active run as MLflow datasets."""
    from mlflow.data.meta_dataset import MetaDataset

    source = _source(plan)
    campaign = plan.campaign.spec.name
    names = {"campaign": campaign, **{split: f"{campaign} {split}" for split in SPLITS}}
    for context, digest in digests(plan, data).items():
        mlflow.log_input(MetaDataset(source, name=names[context], digest=digest),
                         context=context)
