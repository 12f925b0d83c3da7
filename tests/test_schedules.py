"""Learning-rate schedules and epoch budgets: the rates against PyTorch's own schedulers, the
[budget] keys, and a run killed at a milestone that resumes bit-identically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import digits_vae_suite
from vaebench import data
from vaebench.bench.schedules import (
    BURDA_FACTOR,
    burda_epochs,
    burda_milestones,
    lr_multiplier,
    schedule_in_steps,
    steps_per_epoch,
)
from vaebench.bench.spec import RunSpec
from vaebench.bench.suite import load_suite
from vaebench.bench.train import Trainer, load_checkpoint
from vaebench.errors import ConfigError


def torch_rates(scheduler_cls, epochs: int, epoch_steps: int, **kwargs) -> list[float]:
    """The rate of every step under a PyTorch scheduler stepped once per epoch (pythae's way)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = scheduler_cls(opt, **kwargs)
    rates = []
    for _ in range(epochs):
        rates += [opt.param_groups[0]["lr"]] * epoch_steps
        opt.step()
        scheduler.step()
    return rates


def test_multistep_in_epochs_is_pytorchs_multisteplr():
    # pythae's VAE schedule, scaled down: milestones past the budget have no effect
    gamma, epoch = 10 ** (-1 / 5), 3
    schedule = schedule_in_steps("multistep", milestones=[2, 4, 9], factor=gamma, unit_steps=epoch)
    ours = [lr_multiplier(s, schedule) for s in range(7 * epoch)]
    reference = torch_rates(torch.optim.lr_scheduler.MultiStepLR, 7, epoch, milestones=[2, 4, 9], gamma=gamma)
    assert ours == pytest.approx(reference, rel=1e-12, abs=0)
    assert ours[2 * epoch - 1] == 1.0 and ours[2 * epoch] == pytest.approx(gamma)  # the drop starts at epoch 2


def test_exponential_per_epoch_is_torchs():
    schedule = schedule_in_steps("exponential", factor=0.9, unit_steps=4)
    reference = torch_rates(torch.optim.lr_scheduler.ExponentialLR, 5, 4, gamma=0.9)
    assert [lr_multiplier(s, schedule) for s in range(20)] == pytest.approx(reference, rel=1e-12, abs=0)


def test_exponential_per_step():
    per_step = schedule_in_steps("exponential", factor=0.5)
    assert [lr_multiplier(s, per_step) for s in range(4)] == [1.0, 0.5, 0.25, 0.125]


def test_the_constant_schedule_keeps_the_base_rate():
    assert lr_multiplier(10**6, {}) == 1.0


def test_burda_schedule_is_their_formula():
    assert burda_milestones() == [1, 4, 13, 40, 121, 364, 1093] and burda_epochs() == 3280
    epoch = 2980  # 59,600 images in minibatches of 20
    schedule = schedule_in_steps("burda", epoch_steps=epoch)
    start = 0
    for i in range(8):  # stage i: 3^i passes at 0.001 * 10^(-i/7)
        rate = 1e-3 * 10 ** (-i / 7)
        first, last = start * epoch, (start + 3**i) * epoch - 1
        assert 1e-3 * lr_multiplier(first, schedule) == pytest.approx(rate, rel=1e-12)
        assert 1e-3 * lr_multiplier(last, schedule) == pytest.approx(rate, rel=1e-12)
        start += 3**i
    assert start == 3280 and BURDA_FACTOR == pytest.approx(0.719685673, rel=1e-9)


def test_steps_per_epoch_rounds_up():
    assert steps_per_epoch(50_000, 100) == 500 and steps_per_epoch(59_600, 20) == 2980
    assert steps_per_epoch(1_597, 16) == 100 and steps_per_epoch(1, 64) == 1


def _load(tmp_path, budget: str, name: str = "s.toml"):
    return load_suite(digits_vae_suite(tmp_path / name, f"{budget}\nbatch_size = 16\nlog_every = 1", name="sched"))


def test_budget_keys_become_steps(tmp_path):
    n_train = len(data.get("digits", test_size=200).train_indices)
    epoch = math.ceil(n_train / 16)
    plain = _load(tmp_path, "steps = 30", "a.toml").specs[0]
    assert plain.lr_schedule == () and "lr_schedule" not in plain.to_dict()
    spelled = _load(tmp_path, 'steps = 30\nlr_schedule = "constant"', "b.toml").specs[0]
    assert spelled.run_id == plain.run_id
    by_epochs = _load(tmp_path, 'epochs = 3\nlr_schedule = "multistep"\nlr_milestones = [1, 2]\nlr_factor = 0.5',
                      "c.toml").specs[0]
    assert by_epochs.steps == 3 * epoch
    assert dict(by_epochs.lr_schedule) == {"kind": "multistep", "milestones": (epoch, 2 * epoch), "factor": 0.5}
    assert by_epochs.to_dict()["lr_schedule"] == {"kind": "multistep", "milestones": [epoch, 2 * epoch], "factor": 0.5}
    back = RunSpec.from_dict(by_epochs.to_dict())
    assert back == by_epochs and back.run_id == by_epochs.run_id
    in_steps = _load(tmp_path, 'steps = 40\nlr_schedule = "multistep"\nlr_milestones = [10, 20]\nlr_factor = 0.5',
                     "d.toml").specs[0]
    assert dict(in_steps.lr_schedule)["milestones"] == (10, 20) and in_steps.steps == 40
    burda = _load(tmp_path, 'epochs = 3280\nlr_schedule = "burda"', "e.toml").specs[0]
    assert dict(burda.lr_schedule)["milestones"] == tuple(m * epoch for m in burda_milestones())
    exponential = _load(tmp_path, 'epochs = 2\nlr_schedule = "exponential"\nlr_factor = 0.9', "f.toml").specs[0]
    assert dict(exponential.lr_schedule) == {"kind": "exponential", "factor": 0.9, "every": epoch}


@pytest.mark.parametrize("budget, key, message", [
    ("steps = 10\nepochs = 2", "budget.epochs", "give steps or epochs, not both"),
    ('lr_schedule = "multistep"\nlr_factor = 0.5', "budget.lr_milestones", "needs lr_milestones.*required"),
    ('lr_schedule = "multistep"\nlr_factor = 0.5\nlr_milestones = [3, 2]', "budget.lr_milestones", "increasing"),
    ('lr_schedule = "multistep"\nlr_factor = 0.5\nlr_milestones = [0]', "budget.lr_milestones", ">= 1"),
    ('lr_schedule = "multistep"\nlr_milestones = [2]', "budget.lr_factor", "required by lr_schedule = 'multistep'"),
    ('lr_schedule = "exponential"', "budget.lr_factor", "required by lr_schedule = 'exponential'"),
    ('lr_schedule = "burda"\nlr_factor = 0.5', "budget.lr_factor", "is fixed"),
    ("lr_milestones = [2]", "budget.lr_milestones", "applies to lr_schedule = 'multistep' only"),
    ('lr_schedule = "cosine"', "budget.lr_schedule", "must be one of 'constant', 'multistep'"),
    ('lr_schedule = "exponential"\nlr_factor = 1.5', "budget.lr_factor", "<= 1"),
    ("epochs = 0", "budget.epochs", ">= 1"),
    ("lr_milestone = [2]", "budget.lr_milestone", "unknown key; allowed: .*lr_milestones"),
])
def test_budget_errors_name_the_key(tmp_path, budget, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, budget)
    assert info.value.key == key


def _trainer(tmp_path, budget: str, name: str = "t.toml") -> Trainer:
    spec = _load(tmp_path, budget, name).specs[0]
    return Trainer(spec, data.get("digits", test_size=200), torch.device("cpu"))


def test_a_run_follows_its_schedule(tmp_path):
    trainer = _trainer(tmp_path, 'steps = 7\nlr_schedule = "multistep"\nlr_milestones = [2, 5]\nlr_factor = 0.5\n'
                                 "learning_rate = 0.004")
    trainer.train(None, None)
    rates = [v for _, name, v in trainer.curves if name == "model/lr"]
    assert rates == [0.004, 0.004, 0.002, 0.002, 0.002, 0.001, 0.001]
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.001
    constant = _trainer(tmp_path, "steps = 3", "u.toml")
    constant.train(None, None)
    assert not any(name.endswith("/lr") for _, name, _ in constant.curves)


class Killed(Exception):
    pass


def test_killed_at_a_milestone_resumes_bit_identically(tmp_path):
    budget = ('steps = 12\ncheckpoint_every = 4\nlr_schedule = "multistep"\nlr_milestones = [4, 8]\nlr_factor = 0.1\n'
              'learning_rate = 0.01')
    straight = _trainer(tmp_path, budget)
    straight.train(None, None)

    ckpt = tmp_path / "run.pt"
    first = _trainer(tmp_path, budget)

    def kill_after_the_milestone(run_id, step):
        if step == 5:  # the checkpoint of step 4, the first milestone, is on disk; step 5 is lost
            raise Killed

    with pytest.raises(Killed):
        first.train(ckpt, kill_after_the_milestone)
    resumed = _trainer(tmp_path, budget)
    resumed.restore(load_checkpoint(ckpt, torch.device("cpu")))
    assert resumed.step == 4
    resumed.train(ckpt, None)

    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for opt_a, opt_b in zip(straight.optimizers, resumed.optimizers):
        state_a, state_b = opt_a.state_dict(), opt_b.state_dict()
        assert state_a["param_groups"] == state_b["param_groups"]
        for key in state_a["state"]:
            for name, value in state_a["state"][key].items():
                assert torch.equal(value, state_b["state"][key][name]), name
    assert resumed.curves == straight.curves
    assert [v for s, n, v in straight.curves if n == "model/lr"] == pytest.approx([0.01] * 4 + [0.001] * 4 + [1e-4] * 4)
    assert np.isfinite([v for _, _, v in straight.curves]).all()
