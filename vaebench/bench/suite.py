"""Suite files (TOML): load, validate, and expand the grid into frozen, hashable RunSpecs.

    name = "quick"                       # optional, default: the file's stem
    seeds = [0, 1]
    [budget]    steps, batch_size, optimizer (adam|sgd|rmsprop), learning_rate, checkpoint_every, log_every
    [model]     architecture (mlp|conv|burgess), latent_dim, likelihood (bernoulli|gaussian)
    [[datasets]] name = "dsprites", plus the dataset's parameters (size = 32, test_size = ...)
    [[variants]] name = "beta_vae", plus hyperparameters; a list value is a grid (beta = [1, 4])
    [evaluation] metrics = [...] (default: every metric that applies), and [evaluation.params]

A RunSpec's run_id is the SHA-256 of its canonical JSON: the same spec is the same run
everywhere (resume, deduplication, caches). The suite's name is not part of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vaebench import data
from vaebench.bench.optim import OPTIMIZERS
from vaebench.errors import ConfigError
from vaebench.metrics import METRICS
from vaebench.variants import VARIANTS
from vaebench.variants.likelihoods import LIKELIHOODS
from vaebench.variants.networks import ARCHITECTURES, make_encoder

TOP_LEVEL_KEYS = ("name", "description", "seeds", "budget", "model", "datasets", "variants", "evaluation")
BUDGET_DEFAULTS: dict[str, Any] = {
    "steps": 1000,
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "checkpoint_every": 500,
    "log_every": 50,
}
MODEL_DEFAULTS: dict[str, Any] = {"architecture": "conv", "latent_dim": 10, "likelihood": "bernoulli"}


def _freeze(d: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(d.items()))


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one training run and its scores."""

    variant: str
    hyperparameters: tuple[tuple[str, Any], ...]
    dataset: str
    dataset_params: tuple[tuple[str, Any], ...]
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
    metric_params: tuple[tuple[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("hyperparameters", "dataset_params", "metric_params"):
            out[key] = dict(getattr(self, key))
        out["metrics"] = list(self.metrics)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        d = dict(d)
        for key in ("hyperparameters", "dataset_params", "metric_params"):
            d[key] = _freeze(d.get(key, {}))
        d["metrics"] = tuple(d["metrics"])
        return cls(**d)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @property
    def setting(self) -> str:
        """The variant and its hyperparameters as a label, e.g. 'beta_vae(beta=4.0)'."""
        hp = ", ".join(f"{k}={v}" for k, v in self.hyperparameters)
        return f"{self.variant}({hp})" if hp else self.variant


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    description: str
    specs: tuple[RunSpec, ...]


def _table(raw: dict, key: str, file: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError("must be a table", file=file, key=key)
    return value


def _check_keys(table: dict, allowed: dict | tuple, file: str, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key; allowed: {', '.join(allowed)}", file=file, key=f"{prefix}{key}")


def _positive_int(value: Any, file: str, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", file=file, key=key)
    return value


def _parse_budget(raw: dict, file: str) -> dict[str, Any]:
    table = _table(raw, "budget", file)
    _check_keys(table, BUDGET_DEFAULTS, file, "budget.")
    budget = {**BUDGET_DEFAULTS, **table}
    for key in ("steps", "batch_size", "checkpoint_every", "log_every"):
        _positive_int(budget[key], file, f"budget.{key}")
    if budget["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"must be one of {', '.join(OPTIMIZERS)}, got {budget['optimizer']!r}", file=file, key="budget.optimizer")
    lr = budget["learning_rate"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 10:
        raise ConfigError(f"must be a number in (0, 10), got {lr!r}", file=file, key="budget.learning_rate")
    budget["learning_rate"] = float(lr)
    return budget


def _parse_model(raw: dict, file: str) -> dict[str, Any]:
    table = _table(raw, "model", file)
    _check_keys(table, MODEL_DEFAULTS, file, "model.")
    model = {**MODEL_DEFAULTS, **table}
    if model["architecture"] not in ARCHITECTURES:
        raise ConfigError(f"must be one of {', '.join(ARCHITECTURES)}, got {model['architecture']!r}", file=file, key="model.architecture")
    _positive_int(model["latent_dim"], file, "model.latent_dim")
    LIKELIHOODS.get(model["likelihood"], file=file, key="model.likelihood")
    return model


def _parse_datasets(raw: dict, file: str) -> list[tuple[str, dict[str, Any]]]:
    entries = raw.get("datasets")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError("must be a non-empty array of tables ([[datasets]] with a name)", file=file, key="datasets")
    out = []
    for i, entry in enumerate(entries):
        params = dict(entry)
        name = params.pop("name", None)
        data.DATASETS.get(name, file=file, key=f"datasets[{i}].name")
        try:
            data.get(name, **params)
        except ConfigError as err:
            raise err.located(file, f"datasets[{i}].") from None
        except TypeError as err:
            raise ConfigError(f"bad parameter value: {err}", file=file, key=f"datasets[{i}]") from None
        out.append((name, params))
    return out


def _expand_variant(entry: dict, file: str, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    params = dict(entry)
    name = params.pop("name", None)
    cls = VARIANTS.get(name, file=file, key=f"{prefix}name")
    grid_keys = [k for k, v in params.items() if isinstance(v, list)]
    for key in grid_keys:
        if not params[key]:
            raise ConfigError("a grid must list at least one value", file=file, key=f"{prefix}{key}")
    out = []
    for values in itertools.product(*(params[k] for k in grid_keys)):
        hp = {**params, **dict(zip(grid_keys, values))}
        try:
            cls.Hyperparameters.from_dict(hp)
        except ConfigError as err:
            raise err.located(file, prefix) from None
        out.append((name, hp))
    return out


def _hyperparameters_for(name: str, given: dict[str, Any], dataset: data.ImageDataset) -> dict[str, Any]:
    """All hyperparameters of a run, defaults filled in; a `dataset_size` the suite leaves
    unset is the size of the dataset's training split (beta-TCVAE's estimators need it)."""
    hparams = VARIANTS.get(name).Hyperparameters
    if "dataset_size" in {f.name for f in dataclasses.fields(hparams)} and "dataset_size" not in given:
        given = {**given, "dataset_size": len(dataset.train_indices)}
    return hparams.from_dict(given).to_dict()


def _parse_variants(raw: dict, file: str) -> list[tuple[str, dict[str, Any]]]:
    entries = raw.get("variants")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError("must be a non-empty array of tables ([[variants]] with a name)", file=file, key="variants")
    out = []
    for i, entry in enumerate(entries):
        out.extend(_expand_variant(entry, file, f"variants[{i}]."))
    return out


def _parse_metrics(raw: dict, file: str) -> tuple[list[str] | None, dict[str, Any]]:
    table = _table(raw, "evaluation", file)
    _check_keys(table, ("metrics", "params"), file, "evaluation.")
    metrics = table.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            raise ConfigError("must be an array of metric names", file=file, key="evaluation.metrics")
        for m in metrics:
            METRICS.get(m, file=file, key="evaluation.metrics")
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError("must be a table", file=file, key="evaluation.params")
    return metrics, params


def _metrics_for(requested: list[str] | None, dataset: data.ImageDataset, file: str) -> tuple[str, ...]:
    if requested is None:
        return tuple(n for n, info in METRICS.items() if dataset.has_factors or not info.needs_factors)
    for m in requested:
        if METRICS.get(m).needs_factors and not dataset.has_factors:
            raise ConfigError(
                f"metric {m!r} needs ground-truth factors, which dataset {dataset.name!r} does not have",
                file=file, key="evaluation.metrics",
            )
    return tuple(requested)


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite file; every error names the file and the key."""
    file = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError("no such file", file=file) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"not valid TOML: {err}", file=file) from None
    _check_keys(raw, TOP_LEVEL_KEYS, file, "")
    name = raw.get("name", Path(path).stem)
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError("must be a non-empty string without '/'", file=file, key="name")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"must be a non-empty array of integers >= 0, got {seeds!r}", file=file, key="seeds")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"lists a seed twice: {seeds!r}", file=file, key="seeds")
    budget = _parse_budget(raw, file)
    model = _parse_model(raw, file)
    datasets = _parse_datasets(raw, file)
    variants = _parse_variants(raw, file)
    requested, metric_params = _parse_metrics(raw, file)
    specs = []
    for ds_name, ds_params in datasets:
        dataset = data.get(ds_name, **ds_params)
        try:
            make_encoder(model["architecture"], dataset.image_shape, model["latent_dim"])
        except ConfigError as err:
            raise ConfigError(f"{err.detail} (dataset {ds_name!r})", file=file, key="model.architecture") from None
        metrics = _metrics_for(requested, dataset, file)
        for (v_name, given), seed in itertools.product(variants, seeds):
            hp = _hyperparameters_for(v_name, given, dataset)
            specs.append(
                RunSpec(
                    variant=v_name, hyperparameters=_freeze(hp), dataset=ds_name, dataset_params=_freeze(ds_params),
                    seed=seed, metrics=metrics, metric_params=_freeze(metric_params), **model, **budget,
                )
            )
    unique = tuple(dict.fromkeys(specs))
    return Suite(name=name, path=file, description=str(raw.get("description", "")), specs=unique)
