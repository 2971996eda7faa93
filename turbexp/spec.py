"""Pydantic models of the two YAML files a user writes: campaigns (sims/) and experiments.

Unknown keys are refused everywhere. Plugin sections (``simulator``, ``features``,
``estimator``, reports) carry ``plugin: NAME`` plus that plugin's own parameters,
which are checked against the plugin's model in :mod:`turbexp.params`.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from turbexp.errors import UserError, UserErrors, shown
from turbexp.yamlfile import YamlDocument

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
Index = Annotated[float, Field(ge=2.0, le=6.0, allow_inf_nan=False,
                               description="spectral index n, P(k) ∝ k^-n")]
Mach = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False,
                               description="rms Mach number of the initial field")]
TimeMyr = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False,
                                 description="evolution time, Myr")]

SEED_MAX = 2**31 - 1
"""Seeds are at most this, so that every seed turbexp derives (repeats add 0, 1, ...) fits
the 32-bit seeds scikit-learn and NumPy's legacy generators take."""
Seed = Annotated[int, Field(ge=0, le=SEED_MAX, strict=True)]

KOLMOGOROV = 11.0 / 3.0
BURGERS = 4.0

PRESETS: dict[str, dict[str, float]] = {
    "reference": {"time_myr": 0.5},
    "developed": {"time_myr": 5.0},
}


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginRef(BaseModel):
    """``plugin: NAME`` plus the plugin's parameters (checked against its own model)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    plugin: Annotated[str, Field(pattern=NAME_PATTERN)]

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"plugin": value} if isinstance(value, str) else value

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# --- campaigns ----------------------------------------------------------------


class Spread(StrictModel):
    """Values drawn uniformly between ``low`` and ``high``, one per simulation."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Spread:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class IndexRange(Spread):
    low: Index
    high: Index


class MachRange(Spread):
    low: Mach
    high: Mach


class TimeRange(Spread):
    low: TimeMyr
    high: TimeMyr


class PhysicsSpec(StrictModel):
    """Physical set-up, in pc, g/cm³, K and Myr. ``mach`` and ``time_myr`` may be a range
    ``{low, high}``: each simulation then draws its own value, so that a model trained on
    the campaign need not know a cloud's age or Mach number."""

    box_pc: float = Field(10.0, gt=0, allow_inf_nan=False)
    density_g_cm3: float = Field(6.77e-22, gt=0, allow_inf_nan=False)
    temperature_K: float = Field(10.0, gt=0, allow_inf_nan=False)
    mean_molecular_weight: float = Field(2.37, gt=0, allow_inf_nan=False)
    mach: Mach | MachRange = 1.41
    time_myr: TimeMyr | TimeRange = 0.5


class GroupSpec(StrictModel):
    """``count`` simulations with one index, or indices spread over a range."""

    index: Index | IndexRange
    count: int = Field(gt=0, le=100_000, strict=True)
    label: Name | None = None


class SlurmSpec(StrictModel):
    """Resources of each SLURM array task (one simulation per task)."""

    partition: str | None = None
    time_min: int = Field(60, gt=0, description="wall-clock limit per simulation, minutes")
    cpus_per_task: int = Field(1, ge=1)
    gpus_per_node: int = Field(0, ge=0)
    mem_gb: float | None = Field(None, gt=0)
    account: str | None = None
    array_parallelism: int = Field(256, ge=1, description="array tasks running at once")
    folder: str = Field(".turbexp/slurm", description="submission scripts and job logs")
    sbatch: dict[str, str | int] = Field({}, description="further #SBATCH options")


class ExecutorSpec(StrictModel):
    """Where the simulations run: here (``local``) or as a SLURM job array (``slurm``)."""

    kind: Literal["local", "slurm"] = "local"
    jobs: int | None = Field(None, ge=1, description="local: simulations at a time")
    slurm: SlurmSpec = SlurmSpec()


class CampaignSpec(StrictModel):
    name: Name
    description: str = ""
    preset: Literal["reference", "developed"] = "reference"
    simulator: PluginRef = PluginRef(plugin="builtin")
    physics: PhysicsSpec = PhysicsSpec()
    grid: int = Field(gt=7, le=2048, strict=True, description="cells per side")
    groups: list[GroupSpec] = Field(min_length=1)
    seed: Seed = 0
    executor: ExecutorSpec = ExecutorSpec()
    scales: dict[Name, dict[str, Any]] = Field(
        {}, description="named sets of dotted keys to change, chosen by `--scale NAME`")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = PRESETS.get(data.get("preset", "reference"), {})
        physics = data.get("physics", {})
        if isinstance(physics, dict):
            data = {**data, "physics": {**preset, **physics}}
        return data


# --- experiments --------------------------------------------------------------


class ImagesSpec(StrictModel):
    size: int = Field(64, ge=8, le=4096, description="pixels per side")
    projections: list[Literal["x", "y", "z"]] = Field(["x", "y", "z"], min_length=1)
    cuts: Literal[1, 4] = 4
    flips: Literal[1, 2, 4] = 4

    @field_validator("projections")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each projection may appear once")
        return value


class SplitSpec(StrictModel):
    train: float = Field(0.8, gt=0, lt=1, allow_inf_nan=False)
    test: float = Field(0.1, gt=0, lt=1, allow_inf_nan=False)
    holdout: float = Field(0.1, gt=0, lt=1, allow_inf_nan=False)
    seed: Seed = 0

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        total = self.train + self.test + self.holdout
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + test + holdout must be 1, got {total:g}")
        return self


class ObservationSpec(StrictModel):
    """What a telescope does to the maps before they are imaged (turbexp.observation)."""

    beam_fwhm_pc: float = Field(0.0, ge=0, le=1000, description=(
        "FWHM of a Gaussian beam (pc) convolving the column density of every training map "
        "and of every map given to predict; 0: none"))
    noise: float = Field(0.0, ge=0, le=10, allow_inf_nan=False, description=(
        "standard deviation of white Gaussian noise added to each simulated map's column "
        "density after the beam, as a fraction of the map's mean; predict adds none"))
    augment_beams_pc: list[Annotated[float, Field(gt=0, le=1000)]] = Field(
        [], max_length=16, description=(
            "further beams (FWHM, pc): every map of the campaign is also imaged through each, "
            "so that the model does not depend on the beam; predict applies beam_fwhm_pc only"))
    augment_pixel_factors: list[Annotated[int, Field(ge=2, le=16)]] = Field(
        [], max_length=16, description=(
            "every map is also imaged with pixels this many times wider, resampled back as "
            "predict resamples a coarser map, so that the model does not depend on resolution"))

    @property
    def views(self) -> int:
        """How many times each map is imaged: as observed, and once per augmentation."""
        return 1 + len(self.augment_beams_pc) + len(self.augment_pixel_factors)


class DataSpec(StrictModel):
    campaign: str = Field(min_length=1, description="campaign YAML, relative to the experiment "
                                                    "file")
    images: ImagesSpec = ImagesSpec()
    split: SplitSpec = SplitSpec()
    observation: ObservationSpec = ObservationSpec()


class TaskSpec(StrictModel):
    kind: Literal["classify", "regress"]
    classes: dict[Name, Index] | None = None
    tolerance: float = Field(1e-3, gt=0, description="how close an index must be to a class")

    @model_validator(mode="after")
    def _classes_match_kind(self) -> TaskSpec:
        if self.kind == "classify":
            if not self.classes or len(self.classes) != 2:
                raise ValueError("a classify task needs exactly two classes, name: index")
            low, high = sorted(self.classes.values())
            if high - low <= 2 * self.tolerance:
                raise ValueError("the two class indices must differ by more than 2 × tolerance")
        elif self.classes:
            raise ValueError("classes are only for kind: classify")
        return self


class TuneSpec(StrictModel):
    trials: int = Field(20, ge=0, le=100_000)
    metric: str | None = Field(None, description="default: roc_auc (classify), mse (regress)")
    seed: Seed = 0
    defaults: bool = Field(True, description="also tune the plugins' default search spaces")
    storage: str | None = Field(None, max_length=2000, description="Optuna storage URL")

    @field_validator("storage")
    @classmethod
    def _a_database_url(cls, value: str | None) -> str | None:
        from turbexp.paths import check_storage_url

        problem = None if value is None else check_storage_url(value)
        if problem:
            raise ValueError(problem)
        return value


class BootstrapSpec(StrictModel):
    """The bootstrap over holdout simulations that gives every holdout metric its interval."""

    resamples: int = Field(1000, ge=100, le=100_000)
    seed: Seed = 0


class EvaluateSpec(StrictModel):
    on: Literal["holdout"] = "holdout"
    reports: list[PluginRef] = []
    bootstrap: BootstrapSpec = BootstrapSpec()


MODEL_PATTERN = r"^experiment:[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ExperimentSpec(StrictModel):
    name: Name
    description: str = ""
    data: DataSpec
    task: TaskSpec
    features: PluginRef | None = None
    estimator: PluginRef | None = None
    model: Annotated[str, Field(pattern=MODEL_PATTERN)] | None = Field(
        None, description="experiment:NAME: score the model of that experiment's latest "
                          "finished run instead of training one (same data and task)")
    tune: TuneSpec = TuneSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    repeats: int = Field(1, ge=1, le=1000, description="independent repeats: campaign, split "
                                                       "and tuning seeds + 0, 1, …")
    scales: dict[Name, dict[str, Any]] = Field(
        {}, description="named sets of dotted keys to change, chosen by `--scale NAME`")

    @model_validator(mode="after")
    def _trains_or_reuses(self) -> ExperimentSpec:
        if self.model is None:
            if self.features is None or self.estimator is None:
                raise ValueError("an experiment needs features and estimator (or model: "
                                 "experiment:NAME to score another experiment's model)")
        elif {"features", "estimator", "tune"} & self.model_fields_set:
            raise ValueError("model: reuses a trained model; leave out features, estimator "
                             "and tune")
        elif self.repeats != 1:
            raise ValueError("model: reuses one trained model; repeats need training")
        return self

    @property
    def reused_experiment(self) -> str | None:
        """The experiment whose model this one scores, if any."""
        return self.model.removeprefix("experiment:") if self.model else None

    @property
    def metric(self) -> str:
        return self.tune.metric or ("roc_auc" if self.task.kind == "classify" else "mse")


# --- validation with file positions ---------------------------------------------


def validate(model: type[BaseModel], doc: YamlDocument) -> Any:
    """Validate ``doc`` against ``model``; errors name the file, field and line."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise UserErrors([doc.error(_message(model, err), loc)
                          for loc, err in plain_errors(exc)]) from None


def plain_errors(exc: ValidationError) -> list[tuple[tuple, Any]]:
    """A validation error's complaints, one per field, located without pydantic's names of
    union members: the members' complaints about one value are joined (``Input should be
    'scale' or greater than 0``)."""
    errors = exc.errors()
    kept = _without_union_noise(errors)
    seen: dict[tuple, Any] = {}
    for err in kept + [e for e in errors if e not in kept]:
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        other = err["msg"].split(",")[0].removeprefix("Input should be ")
        if loc not in seen:
            if err in kept:
                seen[loc] = err
        elif other not in seen[loc]["msg"] and "Value error" not in err["msg"]:
            seen[loc] = {**seen[loc], "msg": f"{seen[loc]['msg']} or {other}"}
    return list(seen.items())


def _without_union_noise(errors: list[Any]) -> list[Any]:
    """A union field reports one error per member: keep the members' real complaints and drop
    "not a dict" / "not a number" from the members the value was never meant for."""
    groups: dict[tuple, list[Any]] = {}
    for err in errors:
        loc = err["loc"]
        cut = next((i for i, p in enumerate(loc) if _is_union_tag(p)), None)
        groups.setdefault(tuple(loc) if cut is None else (*loc[:cut], "|"), []).append(err)
    kept = []
    for key, group in groups.items():
        if key[-1:] == ("|",):
            group = [e for e in group if not _type_mismatch(e)] or group
        kept += group
    return sorted(kept, key=errors.index)


def _type_mismatch(err: Any) -> bool:
    return err["type"] in ("model_type", "dict_type", "float_type", "int_type", "string_type",
                           "float_parsing", "int_parsing", "bool_type", "list_type")


def _message(model: type[BaseModel], err: Any) -> str:
    loc = [p for p in err["loc"] if not _is_union_tag(p)]
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        known = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {loc[-1]!r}{known}"
    if err["type"] == "missing":
        return "required field missing"
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if not isinstance(value, dict | list) and err["type"] not in ("value_error", "assertion_error"):
        message += f", got {shown(value)}"
    return message


def _is_union_tag(part: Any) -> bool:
    """Pydantic's names of union members in an error location, e.g. 'constrained-float'."""
    return isinstance(part, str) and (
        part in _MODEL_NAMES
        or part in ("float", "int", "str", "bool", "list", "dict", "none")
        or part.startswith(("function-", "constrained-", "literal[", "tagged-union["))
    )


def _fields_at(model: type[BaseModel], loc: list[Any]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            if not (isinstance(current, type) and issubclass(current, BaseModel)):
                args = typing.get_args(current)
                current = args[0] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = field.annotation
        for arg in typing.get_args(current) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def check(condition: bool, doc: YamlDocument, loc: tuple, message: str) -> None:
    """Raise a positioned :class:`UserError` unless ``condition`` holds."""
    if not condition:
        raise doc.error(message, loc)


__all__ = [
    "BURGERS",
    "KOLMOGOROV",
    "CampaignSpec",
    "ExperimentSpec",
    "PluginRef",
    "UserError",
    "validate",
]


_MODEL_NAMES = {name for name, obj in list(globals().items())
                if isinstance(obj, type) and issubclass(obj, BaseModel)}
