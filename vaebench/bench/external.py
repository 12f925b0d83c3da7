"""Scoring a model vaebench did not train (`vaebench evaluate`), into the same store as a suite's runs.

The model is a TorchScript file with methods `encode(x) -> (mu, logvar)` and (optionally)
`decode(z) -> likelihood parameters`, or `module:function`, a factory returning an nn.Module
with those methods (imported like a plugin). It is scored by the same `evaluate` as a trained
run, on the metrics a suite's run on the dataset gets (`bench.setting_checks.metrics_for`, the one choice);
those that need a decoder are skipped, with a note, when the model has none. Its identity is the
file's SHA-256 (or the factory's name, its module's version and the SHA-256 of its module's
source, so an edited factory is another model). Its spec is an `ExternalSpec` (the model's
identity and label, the dataset, the metrics; no training), stored as a run of variant
`external`, so it sits beside the suite's runs in `results`, `report`, `claims` and baselines.
"""

from __future__ import annotations

import importlib
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaebench import data
from vaebench.bench.contract import CONTRACT, checked
from vaebench.bench.environment import check_device, describe_environment
from vaebench.bench.evaluate import evaluate
from vaebench.bench.identity import data_identity
from vaebench.bench.runner import run_directory_lock
from vaebench.bench.setting_checks import (
    build_dataset,
    check_metric_list,
    check_metric_needs,
    metrics_for,
    test_images_key,
)
from vaebench.bench.spec import ExternalSpec, RunResult, RunStatus, freeze
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import SEED_PARAM
from vaebench.errors import ConfigError, ContractError, DataError
from vaebench.files import file_sha256
from vaebench.params import Param
from vaebench.plugins import USER_CODE_ERRORS, first_line, module_version, source_sha256, user_code_failure
from vaebench.variants.likelihoods import LIKELIHOODS

EXTERNAL_SUITE = "external"


class ExternalModel(nn.Module):
    """A user's model behind the variant interface the metrics use: encode, decode, likelihood, log_likelihood."""

    users_code = True  # its methods run the user's code (see vaebench.bench.contract)

    def __init__(self, inner: nn.Module, likelihood: str):
        super().__init__()
        self.inner: Any = inner  # a user's module: its encode and decode are duck-typed (checked by bench.contract)
        self.likelihood = LIKELIHOODS.get(likelihood, key="--likelihood")()
        self.has_decoder = callable(getattr(inner, "decode", None))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.inner.encode(x)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner.decode(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.likelihood.log_prob(x, self.decode(z))


def load_external(source: str) -> tuple[nn.Module, str]:
    """(the model, its identity): a TorchScript file (identity: sha256) or `module:function` (name@version)."""
    path = Path(source).expanduser()
    if path.is_file():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as err:  # noqa: BLE001 - any unreadable file is the user's
            raise DataError(f"{path}: not a TorchScript module torch.jit.load can read ({first_line(err)})") from None
        return module, f"sha256:{file_sha256(path)}"
    if ":" not in source:
        raise ConfigError(f"no such file, and not module:function: {source!r}", key="MODEL")
    module_name, function = source.split(":", 1)
    try:
        factory = getattr(importlib.import_module(module_name), function)
        module = factory()
    except USER_CODE_ERRORS as err:  # whatever the user's module or factory raises, or its sys.exit()
        raise ConfigError(f"{source!r} does not give a model: {user_code_failure(err, 'importing it')}",
                          key="MODEL") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"{source!r} must return an nn.Module, got {type(module).__name__}", key="MODEL")
    return module, f"{source}@{module_version(module_name)} {source_sha256(module_name)}"


def evaluate_external(
    source: str, dataset: str, dataset_params: dict[str, Any], out: Path, *, label: str | None = None,
    metrics: list[str] | None = None, likelihood: str = "bernoulli", seed: int = 0, device: str = "cpu",
) -> RunResult:
    """Score the model into `out`'s store; the result (its environment lists the skipped metrics).

    Everything is validated the way a suite is (`bench.setting_checks`: the dataset and its parameters, the
    metrics, what they need, the seed, the device) and the model's contract is checked on a dry batch,
    before anything is written. Without `metrics`, the model gets a suite's default on this dataset
    (`metrics_for`), less those that need a decoder when it has none."""
    dev = check_device(device)
    seed = Param("--seed", 0, minimum=SEED_PARAM.minimum, maximum=SEED_PARAM.maximum).check(seed)
    LIKELIHOODS.get(likelihood, key="--likelihood")
    images, params = build_dataset(dataset, dict(dataset_params), file=None, prefix="--param ", name_key="--dataset")
    if metrics is not None:  # the names, before the user's code is imported
        check_metric_list(metrics, file=None, key="--metrics")
    inner, identity = load_external(source)
    name = f"external model {source!r}"
    model = ExternalModel(inner, likelihood).to(dev).eval()
    latent_dim = dry_batch(model, images, dev, name)
    chosen, skipped = metrics_for(metrics, images, None, key="--metrics", decoder=model.has_decoder)
    check_metric_needs(chosen, images, latent_dim, {}, file=None,
                       dataset_key=test_images_key(dataset, "--param", separator=" "), latent_key="MODEL")
    spec = ExternalSpec(
        model=identity, label=label or Path(source.split(":")[0]).stem, dataset=dataset,
        dataset_params=freeze(params), dataset_version=images.version, latent_dim=latent_dim, likelihood=likelihood,
        seed=seed, metrics=chosen,
    )
    result = RunResult(spec=spec, status=RunStatus.DONE, environment=describe_environment(dev))
    started = time.perf_counter()
    scores = evaluate(model, images, spec, device=dev, cache_dir=out / "cache", grids=model.has_decoder, name=name)
    result.metrics, result.notes, result.ceilings = scores.values, scores.notes, scores.ceilings
    result.artifacts, result.curves = scores.artifacts, scores.curves
    result.wall_time_s = time.perf_counter() - started
    result.environment.update({"external_model": source, "skipped_metrics": skipped,
                               "made_from": {"model": identity, **data_identity(images)}})
    files = images.data_files()
    if files:
        result.environment["data_files"] = files
    with run_directory_lock(out), ResultsStore(out) as store:
        store.write_result(result, suite=EXTERNAL_SUITE, setting=f"external({spec.label})")
        store.record_suite(EXTERNAL_SUITE, [spec.run_id])
    return result


def dry_batch(model: ExternalModel, images: data.ImageDataset, device: torch.device, name: str) -> int:
    """The model's latent dimension, from encoding two test images; its contract (`bench.contract`:
    encode, and decode where it has one) checked on them. A ContractError before anything is written."""
    x = torch.from_numpy(images.images(images.test_indices[:2])).to(device)
    with torch.no_grad():
        try:
            out = model.inner.encode(x)
        except USER_CODE_ERRORS as err:
            raise ContractError(f"{name}: encode failed on two of the dataset's images: {first_line(err)}") from None
        mu = out[0] if isinstance(out, (tuple, list)) and len(out) == 2 else None
        if not isinstance(mu, torch.Tensor) or mu.ndim != 2 or mu.shape[1] < 1:
            shape = tuple(mu.shape) if isinstance(mu, torch.Tensor) else type(out).__name__
            raise ContractError(f"{name}: encode returned {shape} for 2 images; the contract is {CONTRACT['encode']}")
        contract = checked(model, image_shape=images.image_shape, latent_dim=mu.shape[1], name=name)
        mu, _ = contract.encode(x)
        if model.has_decoder:
            contract.decode(mu)
    return int(mu.shape[1])
