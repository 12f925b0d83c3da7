"""The values every layer of the harness passes, typed: RunSpec, ExternalSpec, RunTask, RunResult, RunStatus.

    suite file --load_suite--> Suite(RunSpec...) --driver--> RunTask --executor--> train/evaluate
        --> RunResult --driver--> store
    model file --vaebench evaluate--> ExternalSpec --> evaluate --> RunResult --> store

They are frozen or plain dataclasses of builtins, so they pickle across the process pool and
Ray unchanged; a spec becomes JSON only at the store (`RunSpec.to_dict`) and comes back with
`spec_from_dict`. A spec's `run_id` is the content hash of its canonical JSON: the same
spec is the same run everywhere (resume, deduplication, caches); the suite's name and the
setting label are not part of it. Its `setting_key()` is the identity of its setting (the runs
whose specs differ in the seed alone): the store keeps it with each run (the driver writes it
from the spec), and the comparison, claims and reproduction rows group runs by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from vaebench.files import canonical_json, content_hash

if TYPE_CHECKING:
    from vaebench.tracking.config import TrackingConfig


class RunStatus(StrEnum):
    """A run's outcome, stored as its value ('done', 'diverged', 'failed'); in order of severity."""

    DONE = "done"
    DIVERGED = "diverged"
    FAILED = "failed"

    @property
    def recorded(self) -> bool:
        """An outcome the store keeps (done, diverged); a failed run is retried by the next sweep."""
        return self is not RunStatus.FAILED

    @property
    def severity(self) -> int:
        """0 for done, 1 for diverged, 2 for failed: a change to a higher one is a regression."""
        return list(RunStatus).index(self)


# what an executor reports while a run trains: (run_id, step)
ProgressFn = Callable[[str, int], None]

Frozen = tuple[tuple[str, Any], ...]


# RunSpec fields added after stores existed: left out of its JSON when empty, so the specs (and
# run ids) written before they existed are unchanged. The tables are written as dicts of lists.
OPTIONAL_FIELDS = ("network", "lr_schedule", "dataset_version", "selection", "optimizer_implementation",
                   "optimizer_options", "at_steps", "at_metrics", "at_images", "sampler")
OPTIONAL_TABLES = ("network", "lr_schedule", "selection", "optimizer_options")


def freeze(d: dict[str, Any]) -> Frozen:
    """A dict as a sorted tuple of items: hashable, and equal for equal dicts."""
    return tuple(sorted(d.items()))


class StoredSpec:
    """The identities of a spec (RunSpec, ExternalSpec), all from its stored form `to_dict()`."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def canonical_json(self) -> str:
        return canonical_json(self.to_dict())

    @property
    def run_id(self) -> str:
        return content_hash(self.to_dict())

    def setting_key(self) -> str:
        """The identity of the spec's setting: the content hash of its JSON without the seed, equal for
        specs that differ in the seed alone (the store keeps it with each run)."""
        return content_hash({k: v for k, v in self.to_dict().items() if k != "seed"})

    def flat(self) -> dict[str, Any]:
        """The spec's fields flattened, `hyperparameters.beta` style, lists joined with ','
        (`vaebench.api.load_results`' columns, the trackers' parameters, the fields a setting label names)."""
        return flatten(self.to_dict())


@dataclass(frozen=True)
class RunSpec(StoredSpec):
    """Everything that determines one training run and its scores.

    Parameters are canonical: hyperparameters are complete (defaults filled in), dataset and
    metric parameters and the network options (`mlp` widths, activation) list only what differs
    from the defaults, so a parameter written out at its default and one left out give the same
    spec and the same run_id. `steps` and `lr_schedule` are in steps whatever unit the suite
    wrote (`vaebench.bench.schedules`). `dataset_version` is the dataset's `version` (what makes
    its images beyond its parameters, e.g. dSprites' renderer). `selection` is empty when the run
    scores its final model, else the best-on-validation selection in steps (`vaebench.bench.selection`).
    `optimizer_implementation` ("" for PyTorch's default, "foreach", "fused") and `optimizer_options`
    (Adam's eps) are `vaebench.bench.optim`'s. `sampler` is how batches are drawn ("" for uniformly
    with replacement, "shuffle" for a permutation per epoch; `vaebench.bench.sampler`).
    """

    variant: str
    hyperparameters: Frozen
    dataset: str
    dataset_params: Frozen
    architecture: str
    latent_dim: int
    likelihood: str
    steps: int
    batch_size: int
    optimizer: str
    learning_rate: float
    checkpoint_every: int
    log_every: int
    seed: int
    metrics: tuple[str, ...]
    metric_params: Frozen = ()
    network: Frozen = ()
    lr_schedule: Frozen = ()
    dataset_version: str = ""
    selection: Frozen = ()
    optimizer_implementation: str = ""
    optimizer_options: Frozen = ()
    # scoring along training (vaebench.bench.trajectory): the steps (at most `steps`) at which the
    # metrics `at_metrics` (a subset of `metrics`) score the model as it is then, on `at_images`
    # test images (a fixed subset; 0: the whole test split, the final scoring's)
    at_steps: tuple[int, ...] = ()
    at_metrics: tuple[str, ...] = ()
    at_images: int = 0
    sampler: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("hyperparameters", "dataset_params", "metric_params"):
            out[key] = dict(getattr(self, key))
        out["metrics"] = list(self.metrics)
        out["at_steps"], out["at_metrics"] = list(self.at_steps), list(self.at_metrics)
        for key in OPTIONAL_TABLES:
            out[key] = {k: list(v) if isinstance(v, tuple) else v for k, v in getattr(self, key)}
        return {k: v for k, v in out.items() if k not in OPTIONAL_FIELDS or v}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        d = dict(d)
        for key in ("hyperparameters", "dataset_params", "metric_params"):
            d[key] = freeze(d.get(key, {}))
        for key in OPTIONAL_TABLES:
            d[key] = freeze({k: tuple(v) if isinstance(v, list) else v for k, v in d.get(key, {}).items()})
        d["metrics"] = tuple(d["metrics"])
        d["at_steps"], d["at_metrics"] = tuple(d.get("at_steps", ())), tuple(d.get("at_metrics", ()))
        return cls(**d)



def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as one level of dotted keys; a list becomes its items joined with ','."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(item, dict):
            out.update(flatten(item, name))
        elif isinstance(item, list):
            out[name] = ",".join(map(str, item))
        else:
            out[name] = item
    return out


@dataclass(frozen=True)
class ExternalSpec(StoredSpec):
    """A model vaebench did not train (`vaebench evaluate`), scored on a dataset: what determines its scores.

    model: its identity (a TorchScript file's SHA-256, or a factory's name, version and source hash);
    label: its name in reports, as the setting `external(label)`. Nothing about training: it had none here.

    Its stored form (`to_dict`) is the one these runs had before this type, a RunSpec of variant
    "external" with `model` and `label` as its hyperparameters and the training fields at placeholders
    (STORED_PLACEHOLDERS), so its run_id, and every store holding it, stay as they were.
    """

    VARIANT: ClassVar[str] = "external"  # reserved: vaebench.variants.registry.RESERVED
    STORED_PLACEHOLDERS: ClassVar[dict[str, Any]] = {
        "architecture": "external", "steps": 0, "batch_size": 0, "optimizer": "none", "learning_rate": 0.0,
        "checkpoint_every": 1, "log_every": 1,
    }

    model: str
    label: str
    dataset: str
    dataset_params: Frozen
    latent_dim: int
    likelihood: str
    seed: int
    metrics: tuple[str, ...]
    dataset_version: str = ""
    metric_params: Frozen = ()

    @property
    def variant(self) -> str:
        """"external": what the store's `variant` column and reports show for it."""
        return self.VARIANT

    def to_dict(self) -> dict[str, Any]:
        out = {
            "variant": self.VARIANT, "hyperparameters": {"model": self.model, "label": self.label},
            "dataset": self.dataset, "dataset_params": dict(self.dataset_params), "latent_dim": self.latent_dim,
            "likelihood": self.likelihood, "seed": self.seed, "metrics": list(self.metrics),
            "metric_params": dict(self.metric_params), **self.STORED_PLACEHOLDERS,
        }
        if self.dataset_version:  # an optional RunSpec field: left out when empty
            out["dataset_version"] = self.dataset_version
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExternalSpec:
        hyperparameters = d["hyperparameters"]
        return cls(
            model=hyperparameters["model"], label=hyperparameters["label"], dataset=d["dataset"],
            dataset_params=freeze(d.get("dataset_params", {})), latent_dim=d["latent_dim"],
            likelihood=d["likelihood"], seed=d["seed"], metrics=tuple(d["metrics"]),
            dataset_version=d.get("dataset_version", ""), metric_params=freeze(d.get("metric_params", {})),
        )



def spec_from_dict(d: dict[str, Any]) -> RunSpec | ExternalSpec:
    """A stored spec (the store's JSON, parsed) as its type: an ExternalSpec for a model scored by
    `vaebench evaluate` (variant "external"), else a RunSpec."""
    return ExternalSpec.from_dict(d) if d.get("variant") == ExternalSpec.VARIANT else RunSpec.from_dict(d)


@dataclass(frozen=True)
class RunTask:
    """One run for an executor: the spec, its setting's label (what the store and the trackers show),
    and where and how to run it."""

    spec: RunSpec
    setting: str
    run_dir: str
    device: str = "cpu"
    threads: int | None = None
    plugins: tuple[str, ...] = ()  # imported by the worker before the run is built
    tracking: TrackingConfig | None = None  # where the worker logs the run live (vaebench.tracking)
    reproduces: tuple[str, ...] = ()  # the reference ids the run reproduces (recorded in its environment)

    @property
    def run_id(self) -> str:
        return self.spec.run_id


class AlongValue(NamedTuple):
    """A value scored along training (vaebench.bench.trajectory): its step, name, value, the note stored
    beside it and its ceiling (the most it can be on its evaluation set, where its estimator has one)."""

    step: int
    name: str
    value: float
    note: str | None = None
    ceiling: float | None = None


@dataclass
class RunResult:
    """What a run (or the scoring of an external model) hands back to the driver. `ceilings`: per value
    name, the most it can be on its evaluation set (mi_xz's log N), for the values whose estimator has one."""

    spec: RunSpec | ExternalSpec
    status: RunStatus
    metrics: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    ceilings: dict[str, float] = field(default_factory=dict)
    curves: list[tuple[int, str, float]] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    steps_done: int = 0
    wall_time_s: float = 0.0
    steps_per_s: float = 0.0
    diverged_step: int | None = None
    error: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    # values scored along training (vaebench.bench.trajectory)
    along: list[AlongValue] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)  # ValueError for a status that is none of RunStatus's

    @property
    def run_id(self) -> str:
        return self.spec.run_id
