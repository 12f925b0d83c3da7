"""[budget] optimizer_implementation (default | foreach | fused) and adam_eps: part of the spec only
when set, each implementation repeating itself and resuming bit for bit, recorded in the environment
and the checkpoint, and a checkpoint of another implementation never resumed."""

from __future__ import annotations

import logging

import pytest
import torch

from helpers import digits_vae_suite
from vaebench import data
from vaebench.bench.identity import made_from
from vaebench.bench.optim import check_implementations, resolved_implementation
from vaebench.bench.spec import RunTask
from vaebench.bench.suite import load_suite
from vaebench.bench.train import Trainer, checkpoint_path, execute_run, load_checkpoint, run_plugins
from vaebench.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

BUDGET = "steps = 12\nbatch_size = 16\ncheckpoint_every = 4\nlog_every = 1"


def _spec(tmp_path, budget: str = "", name: str = "s.toml"):
    return load_suite(digits_vae_suite(tmp_path / name, f"{budget}\n{BUDGET}")).specs[0]


def _trainer(spec) -> Trainer:
    return Trainer(spec, data.get("digits", test_size=200), torch.device("cpu"))


def _weights(trainer: Trainer) -> dict:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_the_default_implementation_leaves_the_spec_and_its_run_id_as_they_were(tmp_path):
    plain = _spec(tmp_path, "", "a.toml")
    assert plain.optimizer_implementation == "" and plain.optimizer_options == ()
    assert "optimizer_implementation" not in plain.to_dict() and "optimizer_options" not in plain.to_dict()
    assert _spec(tmp_path, 'optimizer_implementation = "default"', "b.toml").run_id == plain.run_id


def test_another_implementation_is_another_run(tmp_path):
    plain = _spec(tmp_path, "", "a.toml")
    fused = _spec(tmp_path, 'optimizer_implementation = "fused"', "c.toml")
    assert fused.optimizer_implementation == "fused" and fused.run_id != plain.run_id


def test_adams_eps_is_an_option_of_the_spec_that_reaches_the_optimizer(tmp_path):
    plain = _spec(tmp_path, "", "a.toml")
    eps = _spec(tmp_path, "adam_eps = 1e-4", "d.toml")
    assert eps.to_dict()["optimizer_options"] == {"eps": 1e-4} and eps.run_id != plain.run_id
    assert _trainer(eps).optimizers[0].defaults["eps"] == 1e-4
    assert _trainer(plain).optimizers[0].defaults["eps"] == 1e-8


@pytest.mark.parametrize("budget, key, message", [
    ('optimizer = "rmsprop"\noptimizer_implementation = "fused"', "budget.optimizer_implementation",
     "PyTorch has no fused rmsprop"),
    ('optimizer = "sgd"\nadam_eps = 1e-4', "budget.adam_eps", "applies to optimizer = 'adam' only"),
    ('optimizer_implementation = "fast"', "budget.optimizer_implementation", "must be one of 'default', 'foreach'"),
    ("adam_eps = 0", "budget.adam_eps", "> 0"),
])
def test_errors_name_the_key(tmp_path, budget, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        _spec(tmp_path, budget)
    assert info.value.key == key


def test_resolved_implementations_on_the_cpu(tmp_path):
    assert _trainer(_spec(tmp_path, "", "a.toml")).implementations == ["for-loop"]
    assert _trainer(_spec(tmp_path, 'optimizer_implementation = "foreach"', "b.toml")).implementations == ["foreach"]
    assert _trainer(_spec(tmp_path, 'optimizer_implementation = "fused"', "c.toml")).implementations == ["fused"]
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert resolved_implementation(torch.optim.SGD(p, lr=0.1, fused=True)) == "fused"


class Killed(Exception):
    pass


@pytest.mark.parametrize("implementation", ["default", "foreach", "fused"])
def test_each_repeats_and_resumes_bit_for_bit(tmp_path, implementation):
    spec = _spec(tmp_path, f'optimizer_implementation = "{implementation}"')
    a = _trainer(spec)  # a trainer seeds the global generator: build each one right before it trains
    a.train(None, None)
    b = _trainer(spec)
    b.train(None, None)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a).values(), _weights(b).values()))

    ckpt = tmp_path / "ckpt.pt"
    first = _trainer(spec)

    def kill(run_id, step):
        if step == 6:
            raise Killed

    with pytest.raises(Killed):
        first.train(ckpt, kill)
    state = load_checkpoint(ckpt, torch.device("cpu"))
    assert state["step"] == 4 and state["optimizer_implementations"] == a.implementations
    resumed = _trainer(spec)
    resumed.restore(state)
    resumed.train(ckpt, None)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a).values(), _weights(resumed).values()))
    assert resumed.curves == a.curves


def test_fused_is_not_the_for_loop(tmp_path):
    """Why the implementation is part of the spec: the two round differently."""
    default = _trainer(_spec(tmp_path, "", "a.toml"))
    default.train(None, None)
    fused = _trainer(_spec(tmp_path, 'optimizer_implementation = "fused"', "b.toml"))
    fused.train(None, None)
    assert not all(torch.equal(x, y) for x, y in zip(_weights(default).values(), _weights(fused).values()))


def test_a_checkpoint_of_another_implementation_is_not_resumed(tmp_path, caplog):
    default = _trainer(_spec(tmp_path, "", "a.toml"))
    default.train(None, None)
    state = default.state()
    fused_spec = _spec(tmp_path, 'optimizer_implementation = "fused"', "b.toml")
    with pytest.raises(ValueError, match=r"stepped with \['for-loop'\], this run's with \['fused'\]"):
        _trainer(fused_spec).restore(state)
    old = {k: v for k, v in state.items() if k != "optimizer_implementations"}  # written before they were recorded
    _trainer(_spec(tmp_path, "", "a.toml")).restore(old)  # PyTorch's default: resumed as before
    with pytest.raises(ValueError, match="stepped with"):
        _trainer(fused_spec).restore(old)
    with pytest.raises(ValueError):
        check_implementations(["foreach"], default.optimizers)

    # through a run: the foreign checkpoint is moved aside, the run restarts and equals a fresh one
    run_dir = tmp_path / "run"
    ckpt = checkpoint_path(run_dir, fused_spec.run_id)
    ckpt.parent.mkdir(parents=True)
    dataset = data.get(fused_spec.dataset, **dict(fused_spec.dataset_params))
    # made from the same code and data: only the implementation differs
    state["made_from"] = made_from(dataset, run_plugins(()))
    torch.save(state, ckpt)
    with caplog.at_level(logging.WARNING, logger="vaebench.bench.train"):
        result = execute_run(RunTask(fused_spec, "vae", str(run_dir)))
    assert result.status == "done" and result.environment["resumed_from_step"] == 0
    assert result.environment["optimizer_implementation"] == ["fused"]
    assert ckpt.with_name(ckpt.name + ".corrupt").exists() and "stepped with ['for-loop']" in caplog.text
    fresh = execute_run(RunTask(fused_spec, "vae", str(tmp_path / "fresh")))
    assert fresh.metrics == result.metrics and fresh.curves == result.curves
