"""Suite files (TOML): load, validate, and expand the grid into frozen, hashable RunSpecs.

    name = "quick"                       # optional, default: the file's stem
    plugins = ["my_vaes", "lab/metrics.py"]  # optional: users' modules to import first (vaebench.plugins)
    seeds = [0, 1]
    max_runs = 10000                     # optional: refuse a grid that expands to more runs
    [budget]    steps (or epochs), batch_size, optimizer (adam|sgd|rmsprop), optimizer_implementation
                (default|foreach|fused), adam_eps, learning_rate, checkpoint_every, log_every,
                sampler (replacement|shuffle|sequential: vaebench.bench.sampler);
                lr_schedule (constant|multistep|exponential|burda), lr_milestones, lr_factor
                (vaebench.bench.schedules: converted to steps for each dataset); select (final|best_validation),
                validate_every (vaebench.bench.selection)
    [model]     architecture (mlp|conv|burgess|...), latent_dim, likelihood (bernoulli|gaussian); a list is a grid;
                for mlp: hidden = [400] (widths), activation (relu|tanh|...), decoder_hidden, decoder_activation
                (default: the encoder's mirror); a list of width lists is a grid (hidden = [[400], [200, 200]])
    [[datasets]] name = "dsprites", plus the dataset's parameters (size = 32, test_size = ...)
    [[variants]] name = "beta_vae", plus hyperparameters; a list value is a grid (beta = [1, 4]);
                reproduces = "<reference id>" (or a list): the published values this setting reproduces
                (vaebench.bench.reproduction), recorded in each run's environment
    [evaluation] metrics = [...] (default: every metric that applies), and [evaluation.params];
                scoring along training: at_steps = [...] | at_every = N | at_halvings = k, at_metrics,
                at_images (vaebench.bench.trajectory)
    [tracking]  tensorboard = true | "dir", mlflow = true | "URI or dir", experiment (vaebench.tracking.config)

Every table is checked against declared `Param`s (vaebench.params): an unknown key, a wrong
type or an out-of-range value is a ConfigError naming the file and the key. Specs are
canonical (see `RunSpec`): a dataset or metric parameter written out at its default is
dropped, so it gives the same run as leaving it out.

Loading is five steps, each one function: `parse_suite` checks every table (no dataset is built),
`build_datasets` builds and checks the datasets, `expand_runs` expands the grid into canonical
RunSpecs, `check_runs` checks that each setting can train and be scored on its dataset (the checks
of `vaebench.bench.setting_checks`, which `vaebench evaluate` shares), and `assemble_suite` labels
the settings.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaebench import data
from vaebench.bench.optim import IMPLEMENTATIONS, OPTIMIZERS, check_optimizer_options
from vaebench.bench.reproduction import check_reference_dataset, pop_reproduces
from vaebench.bench.sampler import SAMPLERS, batch_sizes
from vaebench.bench.schedules import SCHEDULES, schedule_in_steps, steps_per_epoch
from vaebench.bench.selection import SELECTION_KEYS, check_validation_split, parse_selection, selection_in_steps
from vaebench.bench.setting_checks import (
    build_dataset,
    check_batch_size,
    check_metric_list,
    check_metric_needs,
    check_variant_contract,
    metrics_for,
    non_default,
    same_value,
    test_images_key,
)
from vaebench.bench.spec import RunSpec, freeze
from vaebench.bench.trajectory import ALONG_KEYS, AlongPlan, parse_along  # scoring along training
from vaebench.errors import ConfigError
from vaebench.metrics.registry import check_metric_params, metric_param_declarations
from vaebench.params import Param, check_params
from vaebench.plugins import Plugin, calling_user_code, import_plugins, plugin_identity
from vaebench.tracking.config import TrackingRequest, parse_tracking_table
from vaebench.variants import VARIANTS
from vaebench.variants.likelihoods import LIKELIHOODS
from vaebench.variants.networks import ARCHITECTURES, NETWORK_KEYS, WIDTH_KEYS, canonical_network, check_network_size

TOP_LEVEL_KEYS = (
    "name", "description", "plugins", "seeds", "max_runs", "budget", "model", "datasets", "variants", "evaluation",
    "tracking",
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
    Param("optimizer_implementation", "default", choices=IMPLEMENTATIONS,
          doc="PyTorch's default (for-loop on the CPU), foreach or fused (vaebench.bench.optim)"),
    Param("adam_eps", None, type=float, greater_than=0.0, less_than=1.0, doc="Adam's epsilon (PyTorch: 1e-8)"),
    Param("sampler", "replacement", choices=SAMPLERS,
          doc="batches drawn with replacement, or a shuffled pass per epoch (vaebench.bench.sampler)"),
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
    tracking: TrackingRequest = TrackingRequest()  # the [tracking] table: off unless it names a tracker
    # the reference ids (vaebench.reference) each run reproduces, from its variant entry's `reproduces`
    reproduces: dict[RunSpec, tuple[str, ...]] = dataclasses.field(default_factory=dict, compare=False)

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


@dataclass(frozen=True)
class SuiteDataset:
    """A [[datasets]] entry, built: its index, its name, its canonical parameters (those that differ from
    the declared defaults) and the dataset."""

    index: int
    name: str
    params: dict[str, Any]
    dataset: data.ImageDataset


def build_datasets(entries: Sequence[dict[str, Any]], file: str) -> tuple[SuiteDataset, ...]:
    """Every [[datasets]] entry built and checked (`build_dataset`), in the suite's order."""
    out = []
    for i, entry in enumerate(entries):
        params = dict(entry)
        name = params.pop("name", None)
        dataset, canonical = build_dataset(name, params, file=file, prefix=f"datasets[{i}].",
                                           name_key=f"datasets[{i}].name")
        out.append(SuiteDataset(i, name, canonical, dataset))
    return tuple(out)


def _grid_size(entry: dict) -> int:
    return math.prod(len(v) for k, v in entry.items() if _is_grid(k, v))


def _largest_list(entry: dict, prefix: str) -> str:
    """The key of `entry`'s longest grid (the axis to shorten), or the table itself without one."""
    lists = [(len(v), k) for k, v in entry.items() if _is_grid(k, v)]
    return f"{prefix}.{max(lists, key=lambda t: t[0])[1]}" if lists else prefix


def count_runs(raw: dict, seeds: list[int], max_runs: int, file: str) -> int:
    """The number of runs the suite's grids expand to, counted from the lengths of its lists before any
    grid is expanded; a ConfigError naming the key at fault (the largest factor) beyond `max_runs`."""
    model = _table(raw, "model", file)
    datasets = _array_of_tables(raw, "datasets", file)
    variants = _array_of_tables(raw, "variants", file)
    sizes = [_grid_size(e) for e in variants]
    factors = [  # (count, what, the key to shorten)
        (len(seeds), "seeds", "seeds"),
        (_grid_size(model), "[model] settings", _largest_list(model, "model")),
        (len(datasets), "datasets", "datasets"),
        (sum(sizes), "variant settings",
         _largest_list(variants[sizes.index(max(sizes))], f"variants[{sizes.index(max(sizes))}]")),
    ]
    n_runs = math.prod(count for count, _, _ in factors)
    if n_runs > max_runs:
        worst = max(factors, key=lambda f: f[0])
        parts = " x ".join(f"{count:,d} {what}" for count, what, _ in factors)
        raise ConfigError(f"the grid expands to {n_runs:,d} runs ({parts}), more than max_runs = {max_runs:,d}; "
                          "shorten this list or raise max_runs", file=file, key=worst[2])
    return n_runs


@dataclass(frozen=True)
class VariantPoint:
    """One grid point of a [[variants]] entry: the variant, the hyperparameters the suite wrote for it
    (checked), the reference ids it reproduces, and the entry's index."""

    name: str
    given: dict[str, Any]
    reproduces: tuple[str, ...]
    entry: int


def _variant_points(entry: dict, index: int, file: str) -> list[VariantPoint]:
    """The grid points of [[variants]] entry `index`, each one's hyperparameters checked."""
    prefix = f"variants[{index}]."
    params = dict(entry)
    name = params.pop("name", None)
    cls = VARIANTS.get(name, file=file, key=f"{prefix}name")
    reproduces = pop_reproduces(params, file=file, prefix=prefix)
    grid_keys = [k for k, v in params.items() if isinstance(v, list)]
    for key in grid_keys:
        if not params[key]:
            raise ConfigError("a grid must list at least one value", file=file, key=f"{prefix}{key}")
    out = []
    for values in itertools.product(*(params[k] for k in grid_keys)):
        hp = {**params, **dict(zip(grid_keys, values))}
        try:
            with calling_user_code(f"checking the hyperparameters of {name!r}", key="name"):
                cls.Hyperparameters.from_dict(hp)
        except ConfigError as err:
            raise err.located(file, prefix) from None
        out.append(VariantPoint(name, hp, reproduces, index))
    return out


def _parse_evaluation(raw: dict, file: str) -> tuple[list[str] | None, dict[str, Any]]:
    """(the metrics the suite names, or None for all that apply; the non-default metric parameters)."""
    table = _table(raw, "evaluation", file)
    allowed = ("metrics", "params", *ALONG_KEYS)
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key; allowed: {', '.join(allowed)}", file=file, key=f"evaluation.{key}")
    metrics = table.get("metrics")
    if metrics is not None:
        check_metric_list(metrics, file=file, key="evaluation.metrics")
    given = table.get("params", {})
    if not isinstance(given, dict):
        raise ConfigError("must be a table", file=file, key="evaluation.params")
    defaults = {key: p.default for key, p in metric_param_declarations().items()}
    return metrics, non_default(check_metric_params(given, file=file), defaults)


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
    allowed = [p.key for p in BUDGET_PARAMS] + ["lr_milestones", *SELECTION_KEYS]
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key; allowed: {', '.join(allowed)}", file=file, key=f"budget.{key}")
    milestones = table.pop("lr_milestones", None)
    selection = parse_selection({k: table.pop(k) for k in SELECTION_KEYS if k in table},
                                epochs_budget=table.get("epochs") is not None, file=file)
    budget = check_params(table, BUDGET_PARAMS, file=file, prefix="budget.")
    plan = {key: budget.pop(key) for key in ("epochs", "lr_schedule", "lr_factor")}
    implementation, eps = budget.pop("optimizer_implementation"), budget.pop("adam_eps")
    check_optimizer_options(budget["optimizer"], implementation, eps, file=file)
    budget["optimizer_implementation"] = "" if implementation == "default" else implementation
    budget["optimizer_options"] = freeze({"eps": eps}) if eps is not None else ()
    budget["sampler"] = "" if budget["sampler"] == "replacement" else budget["sampler"]
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
            raise ConfigError("lr_schedule = 'multistep' needs lr_milestones, a non-empty array of increasing "
                              "integers >= 1 (epochs with an epochs budget, else steps); " + what,
                              file=file, key="budget.lr_milestones")
    elif milestones is not None:
        raise ConfigError(f"applies to lr_schedule = 'multistep' only, not {kind!r}", file=file,
                          key="budget.lr_milestones")
    if kind in ("multistep", "exponential") and plan["lr_factor"] is None:
        raise ConfigError(f"required by lr_schedule = {kind!r}: a number > 0 and <= 1", file=file,
                          key="budget.lr_factor")
    if kind in ("constant", "burda") and plan["lr_factor"] is not None:
        fixed = "is fixed (10^(-1/7))" if kind == "burda" else "has no factor"
        raise ConfigError(f"lr_schedule = {kind!r} {fixed}", file=file, key="budget.lr_factor")
    plan["lr_milestones"] = milestones or []
    plan["selection"] = selection
    return budget, plan


def _steps_and_schedule(plan: dict[str, Any], budget: dict[str, Any], dataset: data.ImageDataset) -> dict[str, Any]:
    """`steps`, the frozen `lr_schedule` and `selection` of a run on `dataset`, all in steps."""
    epoch = steps_per_epoch(len(dataset.train_indices), budget["batch_size"])
    unit = epoch if plan["epochs"] is not None else 1
    steps = plan["epochs"] * epoch if plan["epochs"] is not None else budget["steps"]
    schedule = schedule_in_steps(plan["lr_schedule"], milestones=plan["lr_milestones"], factor=plan["lr_factor"],
                                 unit_steps=unit, epoch_steps=epoch)
    return {"steps": steps, "lr_schedule": freeze(schedule),
            "selection": freeze(selection_in_steps(plan["selection"], unit))}


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
            and (not same_value(value, defaults.get(key)) or len(values[(spec.variant, key)]) > 1)
        ]
        labels[spec] = f"{spec.variant}({', '.join(shown)})" if shown else spec.variant
    return labels


def _import_suite_plugins(names: Any, file: str, allowed: Collection[str] | None) -> tuple[Plugin, ...]:
    """Import the suite's `plugins`; with `allowed` (a reading command's --plugins, already imported),
    a plugin outside it is refused instead: only the user names code to run, never a file they read."""
    if allowed is not None and isinstance(names, (list, tuple)):
        for name in names:
            identity = plugin_identity(name, file=file)
            if identity not in allowed:
                raise ConfigError(f"names the plugin {name!r}, which is not imported: reading commands import only "
                                  f"the plugins given with --plugins (add --plugins {identity})",
                                  file=file, key="plugins")
    return import_plugins(names, file=file)


def load_suite(path: str | Path, *, allowed_plugins: Collection[str] | None = None) -> Suite:
    """Parse and validate a suite file; every error names the file and the key.

    allowed_plugins: None imports the plugins the suite names (`vaebench run`); a collection (the
    plugins a reading command was given) refuses a suite naming any other."""
    file = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ConfigError("no such file", file=file) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"not valid TOML: {err}", file=file) from None
    except RecursionError:
        raise ConfigError("not a suite: arrays or tables nested too deeply to read", file=file) from None
    return suite_from_table(raw, file=file, default_name=Path(path).stem, allowed_plugins=allowed_plugins)


@dataclass(frozen=True)
class ParsedSuite:
    """A suite's tables, each checked against its declaration, the variants' grids expanded into points;
    nothing built yet (`parse_suite`)."""

    name: str
    description: str
    plugins: tuple[Plugin, ...]
    tracking: TrackingRequest
    seeds: tuple[int, ...]
    budget: dict[str, Any]  # the RunSpec budget fields (no `steps` for a budget in epochs)
    plan: dict[str, Any]  # the budget's unit and schedule as written, converted per dataset (`_steps_and_schedule`)
    models: tuple[dict[str, Any], ...]  # one per [model] grid point, with its frozen `network`
    datasets: tuple[dict[str, Any], ...]  # the [[datasets]] entries as written
    variants: tuple[VariantPoint, ...]
    requested: list[str] | None  # [evaluation] metrics, or None for every metric that applies
    metric_params: dict[str, Any]  # [evaluation.params], checked, those that differ from the defaults
    along: AlongPlan  # scoring along training


@dataclass(frozen=True)
class PlannedRun:
    """One run of the expanded grid: its spec, with the dataset and the variant grid point it comes from."""

    spec: RunSpec
    dataset: SuiteDataset
    variant: VariantPoint


def suite_from_table(raw: dict[str, Any], *, file: str = "<suite>", default_name: str = "suite",
                     allowed_plugins: Collection[str] | None = None) -> Suite:
    """A suite from its parsed table (what a suite file holds), validated like a file: its tables parsed,
    its datasets built, its grids expanded into runs, each run checked, then labelled."""
    parsed = parse_suite(raw, file=file, default_name=default_name, allowed_plugins=allowed_plugins)
    runs = expand_runs(parsed, build_datasets(parsed.datasets, file), file)
    check_runs(runs, parsed.plan, file)
    return assemble_suite(parsed, runs, file)


def parse_suite(raw: Any, *, file: str, default_name: str, allowed_plugins: Collection[str] | None) -> ParsedSuite:
    """Every table checked against its declaration, the variants' grids expanded (`VariantPoint`s) and the
    grid's size bounded (`count_runs`), before any dataset is built; the suite's plugins imported first."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a suite must be a table (dict), got {type(raw).__name__}", file=file)
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown key; allowed: {', '.join(TOP_LEVEL_KEYS)}", file=file, key=key)
    plugins = _import_suite_plugins(raw.get("plugins", []), file, allowed_plugins)
    tracking = parse_tracking_table(raw.get("tracking"), file=file)
    name = _parse_name(raw, default_name, file)
    seeds = _parse_seeds(raw, file)
    max_runs = Param("max_runs", MAX_RUNS, minimum=1).check(raw.get("max_runs", MAX_RUNS), file=file)
    budget, plan = _parse_budget(raw, file)
    count_runs(raw, seeds, max_runs, file)
    models = _parse_models(raw, file)
    variant_entries = _array_of_tables(raw, "variants", file)
    datasets = _array_of_tables(raw, "datasets", file)
    variants = [point for i, entry in enumerate(variant_entries) for point in _variant_points(entry, i, file)]
    requested, metric_params = _parse_evaluation(raw, file)
    along = parse_along(_table(raw, "evaluation", file), file)  # scoring along training
    return ParsedSuite(
        name=name, description=str(raw.get("description", "")), plugins=plugins, tracking=tracking,
        seeds=tuple(seeds), budget=budget, plan=plan, models=tuple(models), datasets=tuple(datasets),
        variants=tuple(variants), requested=requested, metric_params=metric_params, along=along,
    )


def expand_runs(parsed: ParsedSuite, datasets: Sequence[SuiteDataset], file: str) -> list[PlannedRun]:
    """Every run: dataset x [model] point x variant point x seed, in that order, each a canonical RunSpec
    (hyperparameters completed for its dataset, budget and schedule in steps, the metrics that apply)."""
    runs = []
    for ds, model in itertools.product(datasets, parsed.models):
        metrics, _ = metrics_for(parsed.requested, ds.dataset, file)  # a variant has a decoder: nothing skipped
        in_steps = _steps_and_schedule(parsed.plan, parsed.budget, ds.dataset)
        at = _along_fields(parsed.along, in_steps["steps"], metrics, ds)
        for point in parsed.variants:
            hparams = VARIANTS.get(point.name).Hyperparameters.for_dataset(point.given, ds.dataset).to_dict()
            for seed in parsed.seeds:
                spec = RunSpec(
                    variant=point.name, hyperparameters=freeze(hparams), dataset=ds.name,
                    dataset_params=freeze(ds.params), dataset_version=ds.dataset.version, seed=seed, metrics=metrics,
                    metric_params=freeze(parsed.metric_params), **model, **{**parsed.budget, **in_steps}, **at,
                )
                runs.append(PlannedRun(spec, ds, point))
    return runs


def _along_fields(along: AlongPlan, steps: int, metrics: tuple[str, ...], ds: SuiteDataset) -> dict[str, Any]:
    """The RunSpec fields of scoring along training for a run of `steps` on `ds` (none when it asks for none)."""
    at_steps = along.steps_for(steps, ds.name)
    if not at_steps:
        return {}
    return {"at_steps": at_steps, "at_metrics": along.metrics_for(metrics),
            "at_images": along.images_for(len(ds.dataset.test_indices))}


def check_runs(runs: Sequence[PlannedRun], plan: dict[str, Any], file: str) -> None:
    """Each setting (the runs that differ in the seed alone are checked once) can train and be scored on
    its dataset: a ConfigError naming the key at fault when the suite loads, never after training."""
    checked: set[tuple[RunSpec, int]] = set()
    for run in runs:
        setting = (dataclasses.replace(run.spec, seed=0), run.variant.entry)  # an entry's own `reproduces`
        if setting not in checked:
            checked.add(setting)
            check_run(run, plan, file)


def check_run(run: PlannedRun, plan: dict[str, Any], file: str) -> None:
    """One run against its dataset: the network fits its images, its metrics can be computed, a plugin's
    variant keeps its contract, the batch size suits the objective, the references were published on the
    dataset, and a best-on-validation selection has a validation split."""
    spec, ds = run.spec, run.dataset
    try:
        check_network_size(spec.architecture, ds.dataset.image_shape, spec.latent_dim, dict(spec.network))
    except ConfigError as err:
        raise ConfigError(f"{err.detail} (dataset {ds.name!r})", file=file, key="model.architecture") from None
    check_metric_needs(spec.metrics, ds.dataset, spec.latent_dim, dict(spec.metric_params), file=file,
                       dataset_key=test_images_key(ds.name, f"datasets[{ds.index}]"))
    check_variant_contract(spec, ds.dataset, file)
    for size in batch_sizes(spec.sampler or "replacement", len(ds.dataset.train_indices), spec.batch_size):
        check_batch_size(spec.variant, dict(spec.hyperparameters), size, file=file,
                         what="" if size == spec.batch_size else f"the last batch of each epoch (sampler = "
                         f"'shuffle', {len(ds.dataset.train_indices)} training images on {ds.name!r})")
    check_reference_dataset(run.variant.reproduces, ds.name, file=file,
                            key=f"variants[{run.variant.entry}].reproduces")
    check_validation_split(ds.dataset, plan["selection"], file=file, key=f"budget.select (dataset {ds.name!r})")


def assemble_suite(parsed: ParsedSuite, runs: Sequence[PlannedRun], file: str) -> Suite:
    """The Suite: its distinct specs in order, each one's setting label and the references it reproduces."""
    written: dict[RunSpec, set[str]] = {}
    references: dict[RunSpec, tuple[str, ...]] = {}
    for run in runs:
        written.setdefault(run.spec, set()).update(run.variant.given)
        if run.variant.reproduces:
            references[run.spec] = tuple(dict.fromkeys((*references.get(run.spec, ()), *run.variant.reproduces)))
    unique = list(dict.fromkeys(run.spec for run in runs))
    return Suite(
        name=parsed.name, path=file, description=parsed.description, specs=tuple(unique),
        labels=setting_labels(unique, written), plugins=tuple(p.name for p in parsed.plugins),
        tracking=parsed.tracking, reproduces=references,
    )
