"""What a setting needs of its dataset, checked before anything trains: shared by suite files
(`vaebench.bench.suite`) and models scored with `vaebench evaluate` (`vaebench.bench.external`).

    build_dataset           a dataset from its name and parameters, each checked against its declaration
    check_test_split_size   the test split fits in memory as float32
    check_first_images      a user's dataset draws its first images under its contract
    check_metric_list       metric names known, each once
    metrics_for             the one choice of the metrics a model computes on a dataset
    check_metric_needs      each metric's test images and latents are there
    check_batch_size        the variant's objective is defined at the batch size
    check_variant_contract  a plugin variant encodes, computes a loss and declares phases on a dry batch

Each error is a ConfigError naming the file and the key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vaebench import data
from vaebench.bench.spec import RunSpec
from vaebench.data.base import MAX_TEST_SPLIT_BYTES, test_split_bytes
from vaebench.data.checked import CheckedDataset
from vaebench.errors import ConfigError, VaebenchError
from vaebench.metrics import METRICS
from vaebench.plugins import USER_CODE_ERRORS, calling_user_code, first_line, raising_module, user_code_failure
from vaebench.variants import VARIANTS


def same_value(a: Any, b: Any) -> bool:
    """Whether two parameter values are the same setting: equal numbers (1 == 1.0), or equal values of one type."""
    return type(a) in (int, float) and type(b) in (int, float) and a == b or (type(a) is type(b) and a == b)


def non_default(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`given` less the entries equal to their default: the canonical form of parameters."""
    return {k: v for k, v in given.items() if not (k in defaults and same_value(v, defaults[k]))}


def build_dataset(name: Any, params: dict[str, Any], *, file: str | None, prefix: str, name_key: str
                  ) -> tuple[data.ImageDataset, dict[str, Any]]:
    """(the dataset, its canonical parameters: those that differ from the defaults), validated the one way
    a suite and `vaebench evaluate` share: the name, each parameter against the dataset's declaration
    (`register_dataset`), the dataset's own checks, its first images (a user's), each error naming the key
    (`prefix` + the parameter)."""
    declared = {p.key: p for p in data.DATASETS.get(name, file=file, key=name_key).params}
    for key, value in params.items():  # an undeclared key is data.get's error, below
        if key in declared:
            declared[key].check(value, file=file, prefix=prefix)
    where = prefix.rstrip(". ")
    try:
        with calling_user_code(f"building dataset {name!r}"):
            dataset = data.get(name, **params)
    except ConfigError as err:
        raise err.located(file, prefix) if err.key else ConfigError(err.detail, file=file, key=where) from None
    except (TypeError, ValueError, OverflowError) as err:
        raise ConfigError(f"bad parameter value: {err}", file=file, key=where) from None
    check_test_split_size(dataset, file=file, key=test_images_key(name, prefix.rstrip(". "), separator=prefix[-1]))
    check_first_images(dataset, file, where)
    return dataset, non_default(params, {key: p.default for key, p in declared.items()})


def check_test_split_size(dataset: data.ImageDataset, *, file: str | None, key: str) -> None:
    """ConfigError when the test split, held as float32 at evaluation, would exceed MAX_TEST_SPLIT_BYTES."""
    needed = test_split_bytes(dataset)
    if needed > MAX_TEST_SPLIT_BYTES:
        shape = "x".join(map(str, dataset.image_shape))
        raise ConfigError(f"the test split ({len(dataset.test_indices):,d} images of {shape}, encoded at once as "
                          f"float32) needs {needed / 2**30:.1f} GB, more than the limit of "
                          f"{MAX_TEST_SPLIT_BYTES / 2**30:.0f} GB; hold out fewer or smaller images",
                          file=file, key=key)


def check_first_images(dataset: data.ImageDataset, file: str | None, key: str) -> None:
    """A user's dataset draws its first training and test images under its checked contract (float32 in
    [0, 1]) when the suite loads; vaebench's own are checked where they read their files."""
    if not isinstance(dataset, CheckedDataset):
        return
    try:
        dataset.images(np.asarray(dataset.train_indices[:2]))
        dataset.images(np.asarray(dataset.test_indices[:2]))
    except VaebenchError as err:
        raise ConfigError(str(err), file=file, key=key) from None
    except USER_CODE_ERRORS as err:  # the user's dataset failing on its first images (or lacking an attribute)
        raise ConfigError(user_code_failure(err, "drawing the first images of the dataset"), file=file,
                          key=key) from None


def check_metric_list(metrics: Any, *, file: str | None, key: str) -> None:
    """ConfigError unless `metrics` is a non-empty array of known metric names, each named once."""
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ConfigError("must be a non-empty array of metric names (leave it out for every metric that applies)",
                          file=file, key=key)
    for m in metrics:
        METRICS.get(m, file=file, key=key)
    twice = sorted({m for m in metrics if metrics.count(m) > 1})
    if twice:
        raise ConfigError(f"names {', '.join(map(repr, twice))} more than once", file=file, key=key)


def metrics_for(requested: list[str] | None, dataset: data.ImageDataset, file: str | None, *,
                key: str = "evaluation.metrics", decoder: bool = True) -> tuple[tuple[str, ...], dict[str, str]]:
    """(the metrics a model scored on `dataset` computes, {metric: why it is skipped}): those requested (each
    known and applicable to the dataset), or every one that applies and is not opt-in; less, for a model
    without a decoder (`decoder=False`: an encoder-only external model), those that need one. The one
    choice of metrics, for a suite's runs and `vaebench evaluate` alike."""
    if requested is None:
        applicable = [n for n, info in METRICS.items()
                      if not info.opt_in and (dataset.has_factors or not info.needs_factors)]
    else:
        check_metric_list(requested, file=file, key=key)
        for m in requested:
            if METRICS.get(m, file=file, key=key).needs_factors and not dataset.has_factors:
                raise ConfigError(
                    f"metric {m!r} needs ground-truth factors, which dataset {dataset.name!r} does not have",
                    file=file, key=key,
                )
        applicable = list(requested)
    skipped = {n: "needs a decoder, which the model does not have" for n in applicable
               if METRICS.get(n).needs_decoder and not decoder}
    return tuple(n for n in applicable if n not in skipped), skipped


def test_images_key(dataset: str, prefix: str, *, separator: str = ".") -> str:
    """The key that sets a dataset's number of test images (its `test_size`), or the dataset's table."""
    return f"{prefix}{separator}test_size" if "test_size" in data.dataset_parameters(dataset) else prefix


def check_metric_needs(metrics: tuple[str, ...], dataset: data.ImageDataset, latent_dim: int,
                       metric_params: dict[str, Any], *, file: str | None, dataset_key: str,
                       latent_key: str = "model.latent_dim") -> None:
    """ConfigError unless every metric can be computed on this dataset's test split and latents
    (`MetricInfo.min_images`, `min_latents`; `metric_params`: the run's, checked): refused when the suite
    loads, not after training."""
    simulated = callable(getattr(dataset, "sample_factors", None))
    test_images = len(dataset.test_indices)
    for name in metrics:
        info = METRICS.get(name)
        needed = info.needed_test_images(metric_params, simulated)
        if test_images < needed:
            raise ConfigError(f"metric {name!r} needs at least {needed} test images, and dataset {dataset.name!r} "
                              f"holds out {test_images}; hold out more, or leave {name!r} out of the metrics",
                              file=file, key=dataset_key)
        if latent_dim < info.min_latents:
            raise ConfigError(f"metric {name!r} needs at least {info.min_latents} latent dimensions, got {latent_dim}; "
                              f"use more, or leave {name!r} out of the metrics", file=file, key=latent_key)


def check_batch_size(variant: str, hyperparameters: dict[str, Any], batch_size: int, *, file: str | None,
                     what: str = "") -> None:
    """ConfigError unless the variant's objective is defined at this batch size (`Variant.batch_size_range`);
    `what` names the batch when it is not the budget's batch_size (a shuffled epoch's last batch)."""
    cls = VARIANTS.get(variant)
    with calling_user_code(f"asking variant {variant!r} for its batch sizes"):
        low, high = cls.batch_size_range(cls.Hyperparameters.from_dict(hyperparameters))
    if batch_size < low or (high is not None and batch_size > high):
        allowed = f"at least {low}" + (f" and at most {high}" if high is not None else "")
        settings = ", ".join(f"{k}={v!r}" for k, v in sorted(hyperparameters.items()))
        got = f"{what} holds {batch_size}" if what else f"got {batch_size}"
        raise ConfigError(f"variant {variant!r} ({settings}) needs batches of {allowed} images, {got}",
                          file=file, key="budget.batch_size")


def check_variant_contract(spec: RunSpec, dataset: data.ImageDataset, file: str) -> None:
    """The variant of `spec`, from a plugin, built on two images of the dataset: encode gives (2, latent_dim)
    twice, loss gives a `Losses` with a finite scalar total, phases are `Phase`s. Built-in variants are
    tested instead."""
    name = spec.variant
    if VARIANTS.get(name).__module__.startswith("vaebench."):
        return
    from vaebench.bench.train import build_model
    from vaebench.variants import Losses, Phase

    expected = (2, spec.latent_dim)
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            variant = build_model(spec, dataset)
            x = torch.from_numpy(dataset.images(dataset.train_indices[:2]))
            mu, logvar = variant.encode(x)
            if tuple(mu.shape) != expected or tuple(logvar.shape) != expected:
                raise ValueError(f"encode gave {tuple(mu.shape)} and {tuple(logvar.shape)}, expected {expected} twice")
            losses = variant.loss(x, 0)
            if not isinstance(losses, Losses) or losses.total.ndim != 0:
                raise ValueError("loss(x, step) must return Losses with a scalar total")
            if not all(isinstance(p, Phase) for p in variant.phases()):
                raise ValueError("phases() must return Phase objects")
    except VaebenchError:
        raise
    except USER_CODE_ERRORS as err:  # the user's variant failing (or exiting) on a dry batch
        where = raising_module(err)
        raise ConfigError(f"variant {name!r} does not follow the variant contract on a dry batch"
                          f"{f' (in {where})' if where else ''}: {first_line(err)}",
                          file=file, key="variants") from None
