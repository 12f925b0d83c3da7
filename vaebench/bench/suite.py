"""Suite files (TOML): load, validate, and expand the grid into frozen, hashable RunSpecs.

    name = "quick"                       # optional, default: the file's stem
    plugins = ["my_vaes", "lab/metrics.py"]  # optional: users' modules to import first (vaebench.plugins)
    seeds = [0, 1]
    max_runs = 10000                     # optional: refuse a grid that expands to more runs
    [budget]    steps (or epochs), batch_size, optimizer (adam|sgd|rmsprop), learning_rate, checkpoint_every,
                log_every; lr_schedule (constant|multistep|exponential|burda), lr_milestones, lr_factor
                (vaebench.bench.schedules: converted to steps for each dataset)
    [model]     architecture (mlp|conv|burgess|...), latent_dim, likelihood (bernoulli|gaussian); a list is a grid;
                for mlp: hidden = [400] (widths), activation (relu|tanh|...), decoder_hidden, decoder_activation
                (default: the encoder's mirror); a list of width lists is a grid (hidden = [[400], [200, 200]])
    [[datasets]] name = "dsprites", plus the dataset's parameters (size = 32, test_size = ...)
    [[variants]] name = "beta_vae", plus hyperparameters; a list value is a grid (beta = [1, 4])
    [evaluation] metrics = [...] (default: every metric that applies), and [evaluation.params];
                scoring along training: at_steps = [...] | at_every = N | at_halvings = k, at_metrics,
                at_images (vaebench.bench.trajectory)

Every table is checked against declared `Param`s (vaebench.params): an unknown key, a wrong
type or an out-of-range value is a ConfigError naming the file and the key. Specs are
canonical (see `RunSpec`): a dataset or metric parameter written out at its default is
dropped, so it gives the same run as leaving it out.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaebench import data
from vaebench.bench.optim import OPTIMIZERS
from vaebench.bench.schedules import SCHEDULES, schedule_in_steps, steps_per_epoch
from vaebench.bench.spec import RunSpec, freeze
from vaebench.bench.trajectory import ALONG_KEYS, parse_along  # scoring along training
from vaebench.errors import ConfigError
from vaebench.metrics import METRICS
from vaebench.metrics.registry import check_metric_params
from vaebench.params import Param, check_params
from vaebench.plugins import import_plugins
from vaebench.variants import VARIANTS
from vaebench.variants.likelihoods import LIKELIHOODS
from vaebench.variants.networks import ARCHITECTURES, NETWORK_KEYS, WIDTH_KEYS, canonical_network, make_encoder, network_options

TOP_LEVEL_KEYS = (
    "name", "description", "plugins", "seeds", "max_runs", "budget", "model", "datasets", "variants", "evaluation",
)
MAX_RUNS = 10_000  # a suite expanding to more runs is refused unless it raises `max_runs`
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")

BUDGET_PARAMS = (
    Param("steps", 1000, minimum=1, maximum=10**9, doc="gradient steps per run"),
    Param("batch_size", 64, minimum=1, maximum=65_536, doc="images per step"),
    Param("optimizer", "adam", choices=OPTIMIZERS),
    Param("learning_rate", 1e-3, greater_than=0.0, less_than=10.0),
    Param("checkpoint_every", 500, minimum=1, doc="steps between checkpoints"),
    Param("log_every", 50, minimum=1, doc="steps between logged loss terms"),
    Param("epochs", None, type=int, minimum=1, maximum=10**7,
          doc="passes over the training split, instead of steps (ceil(N / batch_size) steps each)"),
    Param("lr_schedule", "constant", choices=SCHEDULES, doc="learning-rate schedule (vaebench.bench.schedules)"),
    Param("lr_factor", None, type=float, greater_than=0.0, maximum=1.0,
          doc="multistep: factor at each milestone; exponential: factor per epoch (or step)"),
)
SCHEDULE_KEYS = ("epochs", "lr_schedule", "lr_factor", "lr_milestones")
MODEL_PARAMS = (
    Param("architecture", "conv", choices=ARCHITECTURES, doc="shared encoder/decoder networks"),
    Param("latent_dim", 10, minimum=1, maximum=4096),
    Param("likelihood", "bernoulli", choices=tuple(LIKELIHOODS.names())),
)
SEED_PARAM = Param("seeds[]", 0, minimum=0, maximum=2**31 - 1)


@dataclass(frozen=True)
class Suite:
    """A loaded suite: its runs, and the label of each run's setting."""

    name: str
    path: str
    description: str
    specs: tuple[RunSpec, ...]
    labels: dict[RunSpec, str] = dataclasses.field(default_factory=dict, compare=False)
    plugins: tuple[str, ...] = ()  # module names and absolute .py paths, imported by every worker

    def setting(self, spec: RunSpec) -> str:
        """The variant and the hyperparameters a reader needs, e.g. 'beta_vae(beta=4.0)'."""
        return self.labels.get(spec, spec.variant)


def _table(raw: dict, key: str, file: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError("must be a table", file=file, key=key)
    return value


def _array_of_tables(raw: dict, key: str, file: str) -> list[dict]:
    entries = raw.get(key)
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"must be a non-empty array of tables ([[{key}]] with a name)", file=file, key=key)
    return entries


def _non_default(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`given` less the entries equal to their default: the canonical form of parameters."""
    return {k: v for k, v in given.items() if not (k in defaults and _same(v, defaults[k]))}


def _same(a: Any, b: Any) -> bool:
    return type(a) in (int, float) and type(b) in (int, float) and a == b or (type(a) is type(b) and a == b)


def _parse_datasets(raw: dict, file: str) -> list[tuple[str, dict[str, Any], data.ImageDataset]]:
    out = []
    for i, entry in enumerate(_array_of_tables(raw, "datasets", file)):
        params = dict(entry)
        name = params.pop("name", None)
        data.DATASETS.get(name, file=file, key=f"datasets[{i}].name")
        defaults = data.dataset_defaults(name)
        for key, value in params.items():  # a parameter's type is its default's (size = 32.0 is not 32)
            if defaults.get(key) is not None:
                Param(key, defaults[key]).check(value, file=file, prefix=f"datasets[{i}].")
        try:
            dataset = data.get(name, **params)
        except ConfigError as err:
            raise err.located(file, f"datasets[{i}].") from None
        except (TypeError, ValueError, OverflowError) as err:
            raise ConfigError(f"bad parameter value: {err}", file=file, key=f"datasets[{i}]") from None
        out.append((name, _non_default(params, data.dataset_defaults(name)), dataset))
    return out


def _grid_size(entry: dict) -> int:
    return math.prod(len(v) for v in entry.values() if isinstance(v, list))


def _expand_variant(entry: dict, file: str, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """[(variant name, the hyperparameters the suite wrote)], one per grid point, each checked."""
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
    unset is the size of the dataset's training split (estimators of the aggregate posterior need it)."""
    hparams = VARIANTS.get(name).Hyperparameters
    if "dataset_size" in {f.name for f in dataclasses.fields(hparams)} and "dataset_size" not in given:
        given = {**given, "dataset_size": len(dataset.train_indices)}
    return hparams.from_dict(given).to_dict()


def _parse_evaluation(raw: dict, file: str) -> tuple[list[str] | None, dict[str, Any]]:
    """(the metrics the suite names, or None for all that apply; the non-default metric parameters)."""
    table = _table(raw, "evaluation", file)
    allowed = ("metrics", "params", *ALONG_KEYS)
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key; allowed: {', '.join(allowed)}", file=file, key=f"evaluation.{key}")
    metrics = table.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            raise ConfigError("must be an array of metric names", file=file, key="evaluation.metrics")
        for m in metrics:
            METRICS.get(m, file=file, key="evaluation.metrics")
    given = table.get("params", {})
    if not isinstance(given, dict):
        raise ConfigError("must be a table", file=file, key="evaluation.params")
    checked = check_metric_params(given, file=file)
    defaults = {p.key: p.default for _, info in METRICS.items() for p in info.params}
    return metrics, _non_default({k: checked[k] for k in given}, defaults)


def _metrics_for(requested: list[str] | None, dataset: data.ImageDataset, file: str) -> tuple[str, ...]:
    if requested is None:
        return tuple(n for n, info in METRICS.items()
                     if not info.opt_in and (dataset.has_factors or not info.needs_factors))
    for m in requested:
        if METRICS.get(m).needs_factors and not dataset.has_factors:
            raise ConfigError(
                f"metric {m!r} needs ground-truth factors, which dataset {dataset.name!r} does not have",
                file=file, key="evaluation.metrics",
            )
    return tuple(requested)


def _is_grid(key: str, value: Any) -> bool:
    """A list is a grid, except a list of widths (hidden = [400]), whose grid is a list of lists."""
    if key in WIDTH_KEYS:
        return isinstance(value, list) and bool(value) and all(isinstance(v, list) for v in value)
    return isinstance(value, list)


def _parse_models(raw: dict, file: str) -> list[dict[str, Any]]:
    """The [model] table, checked; a list value is a grid (architecture = ["conv", "pixelcnn"]).
    Each model carries `network`: the canonical mlp options, frozen (`RunSpec.network`)."""
    table = _table(raw, "model", file)
    allowed = [p.key for p in MODEL_PARAMS] + list(NETWORK_KEYS)
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key; allowed: {', '.join(allowed)}", file=file, key=f"model.{key}")
    grid_keys = [k for k, v in table.items() if _is_grid(k, v)]
    for key in grid_keys:
        if not table[key]:
            raise ConfigError("a grid must list at least one value", file=file, key=f"model.{key}")
    models = []
    for values in itertools.product(*(table[k] for k in grid_keys)):
        point = {**table, **dict(zip(grid_keys, values))}
        given = {k: point.pop(k) for k in NETWORK_KEYS if k in point}
        model = check_params(point, MODEL_PARAMS, file=file, prefix="model.")
        try:
            network = canonical_network(model["architecture"], given)
        except ConfigError as err:
            raise err.located(file, "model.") from None
        models.append({**model, "network": freeze(network)})
    return models


def _parse_budget(raw: dict, file: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the RunSpec budget fields but `steps` when the budget is in epochs, the budget's unit and
    schedule as written), every key checked; `_steps_and_schedule` converts the second per dataset."""
    table = dict(_table(raw, "budget", file))
    allowed = [p.key for p in BUDGET_PARAMS] + ["lr_milestones"]
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key; allowed: {', '.join(allowed)}", file=file, key=f"budget.{key}")
    milestones = table.pop("lr_milestones", None)
    budget = check_params(table, BUDGET_PARAMS, file=file, prefix="budget.")
    plan = {key: budget.pop(key) for key in ("epochs", "lr_schedule", "lr_factor")}
    kind = plan["lr_schedule"]
    if plan["epochs"] is not None:
        if "steps" in table:
            raise ConfigError("give steps or epochs, not both", file=file, key="budget.epochs")
        del budget["steps"]
    if kind == "multistep":
        ok = (isinstance(milestones, list) and milestones
              and all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in milestones)
              and all(a < b for a, b in zip(milestones, milestones[1:])))
        if not ok:
            what = "required" if milestones is None else f"got {milestones!r}"
            raise ConfigError(f"lr_schedule = 'multistep' needs lr_milestones, a non-empty array of increasing "
                              "integers >= 1 (epochs with an epochs budget, else steps); " + what,
                              file=file, key="budget.lr_milestones")
    elif milestones is not None:
        raise ConfigError(f"applies to lr_schedule = 'multistep' only, not {kind!r}", file=file, key="budget.lr_milestones")
    if kind in ("multistep", "exponential") and plan["lr_factor"] is None:
        raise ConfigError(f"required by lr_schedule = {kind!r}: a number > 0 and <= 1", file=file, key="budget.lr_factor")
    if kind in ("constant", "burda") and plan["lr_factor"] is not None:
        fixed = "is fixed (10^(-1/7))" if kind == "burda" else "has no factor"
        raise ConfigError(f"lr_schedule = {kind!r} {fixed}", file=file, key="budget.lr_factor")
    plan["lr_milestones"] = milestones or []
    return budget, plan


def _steps_and_schedule(plan: dict[str, Any], budget: dict[str, Any], dataset: data.ImageDataset) -> dict[str, Any]:
    """`steps` and the frozen `lr_schedule` of a run on `dataset`, both in steps."""
    epoch = steps_per_epoch(len(dataset.train_indices), budget["batch_size"])
    steps = plan["epochs"] * epoch if plan["epochs"] is not None else budget["steps"]
    schedule = schedule_in_steps(plan["lr_schedule"], milestones=plan["lr_milestones"], factor=plan["lr_factor"],
                                 unit_steps=epoch if plan["epochs"] is not None else 1, epoch_steps=epoch)
    return {"steps": steps, "lr_schedule": freeze(schedule)}


def _parse_seeds(raw: dict, file: str) -> list[int]:
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"must be a non-empty array of integers >= 0, got {seeds!r}", file=file, key="seeds")
    seeds = [SEED_PARAM.check(s, file=file) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"lists a seed twice: {seeds!r}", file=file, key="seeds")
    return seeds


def _parse_name(raw: dict, default: str, file: str) -> str:
    name = raw.get("name", default)
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name.strip(".") == "":
        raise ConfigError(
            "must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit", file=file, key="name"
        )
    return name


def setting_labels(specs: list[RunSpec], written: dict[RunSpec, set[str]]) -> dict[RunSpec, str]:
    """Each spec's label: its variant and the hyperparameters the suite wrote that either differ
    from the variant's defaults or take more than one value among that variant's runs."""
    values: dict[tuple[str, str], set[str]] = {}
    for spec in specs:
        for key, value in spec.hyperparameters:
            values.setdefault((spec.variant, key), set()).add(repr(value))
    labels = {}
    for spec in specs:
        defaults = {p.key: p.default for p in VARIANTS.get(spec.variant).Hyperparameters.params()}
        shown = [
            f"{key}={value}" for key, value in spec.hyperparameters
            if key in written.get(spec, set())
            and (not _same(value, defaults.get(key)) or len(values[(spec.variant, key)]) > 1)
        ]
        labels[spec] = f"{spec.variant}({', '.join(shown)})" if shown else spec.variant
    return labels


def check_variant_contract(name: str, given: dict[str, Any], dataset: data.ImageDataset, model: dict[str, Any],
                           file: str) -> None:
    """A variant from a plugin, built on two images of the dataset: encode gives (2, latent_dim) twice, loss
    gives a `Losses` with a finite scalar total, phases are `Phase`s. Built-in variants are tested instead."""
    cls = VARIANTS.get(name)
    if cls.__module__.startswith("vaebench."):
        return
    from vaebench.variants import Losses, Phase, build_variant

    expected = (2, model["latent_dim"])
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            variant = build_variant(name, given, image_shape=dataset.image_shape, **model)
            x = torch.from_numpy(dataset.images(dataset.train_indices[:2]))
            mu, logvar = variant.encode(x)
            if tuple(mu.shape) != expected or tuple(logvar.shape) != expected:
                raise ValueError(f"encode gave {tuple(mu.shape)} and {tuple(logvar.shape)}, expected {expected} twice")
            losses = variant.loss(x, 0)
            if not isinstance(losses, Losses) or losses.total.ndim != 0:
                raise ValueError("loss(x, step) must return Losses with a scalar total")
            if not all(isinstance(p, Phase) for p in variant.phases()):
                raise ValueError("phases() must return Phase objects")
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's variant failing on a dry batch
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConfigError(f"variant {name!r} does not follow the variant contract on a dry batch: "
                          f"{type(err).__name__}: {detail}", file=file, key="variants") from None


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite file; every error names the file and the key."""
    file = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ConfigError("no such file", file=file) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"not valid TOML: {err}", file=file) from None
    return suite_from_table(raw, file=file, default_name=Path(path).stem)


def suite_from_table(raw: dict[str, Any], *, file: str = "<suite>", default_name: str = "suite") -> Suite:
    """A suite from its parsed table (what a suite file holds), validated like a file."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a suite must be a table (dict), got {type(raw).__name__}", file=file)
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown key; allowed: {', '.join(TOP_LEVEL_KEYS)}", file=file, key=key)
    plugins = import_plugins(raw.get("plugins", []), file=file)
    name = _parse_name(raw, default_name, file)
    seeds = _parse_seeds(raw, file)
    max_runs = Param("max_runs", MAX_RUNS, minimum=1).check(raw.get("max_runs", MAX_RUNS), file=file)
    budget, plan = _parse_budget(raw, file)
    models = _parse_models(raw, file)
    variant_entries = _array_of_tables(raw, "variants", file)
    n_runs = (len(seeds) * len(models) * len(_array_of_tables(raw, "datasets", file))
              * sum(_grid_size(e) for e in variant_entries))
    if n_runs > max_runs:
        raise ConfigError(f"the grid expands to {n_runs:,d} runs, more than max_runs = {max_runs:,d} "
                          "(raise max_runs to allow it)", file=file, key="variants")
    datasets = _parse_datasets(raw, file)
    variants = [v for i, e in enumerate(variant_entries) for v in _expand_variant(e, file, f"variants[{i}].")]
    requested, metric_params = _parse_evaluation(raw, file)
    along = parse_along(_table(raw, "evaluation", file), file)  # scoring along training
    specs: list[RunSpec] = []
    written: dict[RunSpec, set[str]] = {}
    for (ds_name, ds_params, dataset), model in itertools.product(datasets, models):
        try:
            make_encoder(model["architecture"], dataset.image_shape, model["latent_dim"],
                         **network_options(dict(model["network"]))[0])
        except ConfigError as err:
            raise ConfigError(f"{err.detail} (dataset {ds_name!r})", file=file, key="model.architecture") from None
        metrics = _metrics_for(requested, dataset, file)
        for v_name, given in variants:
            check_variant_contract(v_name, given, dataset, model, file)
        in_steps = _steps_and_schedule(plan, budget, dataset)
        at_steps = along.steps_for(in_steps["steps"], ds_name)  # scoring along training
        at = ({"at_steps": at_steps, "at_metrics": along.metrics_for(metrics),
               "at_images": along.images_for(len(dataset.test_indices))} if at_steps else {})
        for (v_name, given), seed in itertools.product(variants, seeds):
            spec = RunSpec(
                variant=v_name, hyperparameters=freeze(_hyperparameters_for(v_name, given, dataset)),
                dataset=ds_name, dataset_params=freeze(ds_params), dataset_version=dataset.version,
                seed=seed, metrics=metrics,
                metric_params=freeze(metric_params), **model, **{**budget, **in_steps}, **at,
            )
            specs.append(spec)
            written.setdefault(spec, set()).update(given)
    unique = list(dict.fromkeys(specs))
    return Suite(
        name=name, path=file, description=str(raw.get("description", "")), specs=tuple(unique),
        labels=setting_labels(unique, written), plugins=tuple(p.name for p in plugins),
    )
