"""Best-on-validation selection ([budget] select = "best_validation"): the suite keys, the validation
loss against a direct computation, the selected model against a run stopped at the selected step,
exact resume, and the run's environment; specs without the option keep their run ids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import digits_vae_suite
from vaebench import data
from vaebench.bench.executors import InProcessExecutor
from vaebench.bench.runner import run_suite
from vaebench.bench.seeding import derived_seed
from vaebench.bench.selection import VALIDATION_CURVE, best_model_path, validation_loss
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.bench.train import Trainer, checkpoint_path, load_checkpoint, model_path
from vaebench.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

SUITE = """\
[budget]
{budget}
batch_size = 16
learning_rate = 0.01
log_every = 5
[model]
architecture = "mlp"
hidden = [64]
latent_dim = 4
[[datasets]]
{dataset}
[[variants]]
name = "vae"
[evaluation]
metrics = ["recon_bce", "neg_elbo"]
"""
SELECT = 'steps = 80\nselect = "best_validation"\nvalidate_every = 5\ncheckpoint_every = 7'


@pytest.fixture(scope="module")
def overfitting_data(tmp_path_factory) -> Path:
    """A binarised-MNIST directory of 32 training images, noisy copies of 4 prototypes, that the
    network above overfits: its validation loss is lowest well before the last step."""
    d = tmp_path_factory.mktemp("bm")
    rng = np.random.default_rng(0)
    protos = rng.random((4, 784)) < 0.3

    def draw(n: int) -> np.ndarray:
        return (protos[rng.integers(0, 4, n)] ^ (rng.random((n, 784)) < 0.1)).astype(np.uint8)

    np.savez(d / "binarized_mnist.npz", train=draw(32), valid=draw(64), test=draw(32))
    return d


def _suite(tmp_path: Path, budget: str, dataset: str, name: str = "s.toml"):
    path = tmp_path / name
    path.write_text(SUITE.format(budget=budget, dataset=dataset))
    return load_suite(path)


def _bm(d: Path, extra: str = "") -> str:
    return f'name = "binarized_mnist"\npath = "{d}"\n{extra}'


def _trainer(spec, d: Path) -> Trainer:
    return Trainer(spec, data.get("binarized_mnist", path=str(d)), torch.device("cpu"))


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------- suite keys

def test_without_the_option_run_ids_do_not_change(tmp_path):
    def spec(budget: str, name: str):
        return load_suite(digits_vae_suite(tmp_path / name, f"{budget}\nbatch_size = 16")).specs[0]

    # run ids of these two specs computed before `selection` existed (commit 9ee2e40)
    plain = spec("steps = 30", "a.toml")
    assert plain.run_id == "e7abe47af2195dc8" and plain.selection == () and "selection" not in plain.to_dict()
    scheduled = spec('epochs = 3\nlr_schedule = "multistep"\nlr_milestones = [1, 2]\nlr_factor = 0.5', "b.toml")
    assert scheduled.run_id == "a018987b5241f5d0"
    assert spec('steps = 30\nselect = "final"', "c.toml").run_id == plain.run_id


def test_the_interval_is_in_the_budgets_unit(tmp_path, overfitting_data):
    by_steps = _suite(tmp_path, SELECT, _bm(overfitting_data), "a.toml").specs[0]
    assert dict(by_steps.selection) == {"kind": "best_validation", "every": 5}
    assert by_steps.to_dict()["selection"] == {"kind": "best_validation", "every": 5}
    by_epochs = _suite(tmp_path, 'epochs = 4\nselect = "best_validation"', _bm(overfitting_data), "b.toml").specs[0]
    assert dict(by_epochs.selection) == {"kind": "best_validation", "every": 2}  # ceil(32 / 16) steps an epoch
    every_3 = _suite(tmp_path, 'epochs = 9\nselect = "best_validation"\nvalidate_every = 3', _bm(overfitting_data),
                     "c.toml").specs[0]
    assert dict(every_3.selection)["every"] == 6
    assert len({by_steps.run_id, by_epochs.run_id, every_3.run_id}) == 3


@pytest.mark.parametrize("budget, dataset, key, message", [
    ('steps = 10\nvalidate_every = 2', None, "budget.validate_every", "applies to select = 'best_validation' only"),
    ('steps = 10\nselect = "best_validation"', None, "budget.validate_every", "required by .* with a steps budget"),
    ('steps = 10\nselect = "best"', None, "budget.select", "must be one of 'final', 'best_validation'"),
    ('epochs = 2\nselect = "best_validation"\nvalidate_every = 0', None, "budget.validate_every", ">= 1"),
    ('epochs = 2\nselect = "best_validation"', 'name = "digits"\ntest_size = 200',
     "budget.select (dataset 'digits')", "needs a validation split; dataset 'digits' has no validation split"),
    ('epochs = 2\nselect = "best_validation"', "train+valid", "budget.select (dataset 'binarized_mnist')",
     "holds no validation images"),
])
def test_selection_errors_name_the_key(tmp_path, overfitting_data, budget, dataset, key, message):
    if dataset is None:
        dataset = _bm(overfitting_data)
    elif dataset == "train+valid":
        dataset = _bm(overfitting_data, 'train = "train+valid"')
    with pytest.raises(ConfigError, match=message) as info:
        _suite(tmp_path, budget, dataset)
    assert info.value.key == key


# ------------------------------------------------------------------------------- the loss itself

def test_validation_loss_is_the_mean_loss_over_the_split_and_leaves_the_generators(tmp_path, overfitting_data):
    spec = _suite(tmp_path, SELECT, _bm(overfitting_data)).specs[0]
    trainer = _trainer(spec, overfitting_data)
    trainer.model.train()
    ds = trainer.dataset
    before = torch.get_rng_state()
    got = validation_loss(trainer.model, ds, ds.validation_indices, batch_size=24, step=3, seed=spec.seed,
                          device=torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before) and trainer.model.training
    # directly: the per-image negative ELBO of the VAE (recon + KL), one reparameterised draw each, the
    # draws in batches of 24 from torch's generator seeded with the derived seed
    torch.manual_seed(derived_seed(spec.seed, "validation"))
    per_image = []
    with torch.no_grad():
        for start in range(0, 64, 24):
            x = torch.from_numpy(ds.images(ds.validation_indices[start:start + 24]))
            mu, logvar = trainer.model.encode(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            logits = trainer.model.decode(z)
            recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
            kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
            per_image.append((recon + kl).double())
    torch.set_rng_state(before)
    assert got == pytest.approx(float(torch.cat(per_image).mean()), rel=1e-6)
    again = validation_loss(trainer.model, ds, ds.validation_indices, batch_size=24, step=3, seed=spec.seed,
                            device=torch.device("cpu"))
    assert again == got  # the same draws every time: a function of the model
    other_seed = validation_loss(trainer.model, ds, ds.validation_indices, batch_size=24, step=3, seed=spec.seed + 1,
                                 device=torch.device("cpu"))
    assert other_seed != got


# ------------------------------------------------------------------------------ the selected model

def test_selection_does_not_change_training_and_keeps_the_argmin(tmp_path, overfitting_data):
    spec = _suite(tmp_path, SELECT, _bm(overfitting_data), "a.toml").specs[0]
    selecting = _trainer(spec, overfitting_data)
    selecting.train(None, None)
    plain = _trainer(_suite(tmp_path, "steps = 80\ncheckpoint_every = 7", _bm(overfitting_data), "b.toml").specs[0],
                     overfitting_data)
    plain.train(None, None)
    assert _same_weights(selecting.model.state_dict(), plain.model.state_dict())  # training is untouched
    assert [c for c in selecting.curves if c[1] != VALIDATION_CURVE] == plain.curves

    curve = [(s, v) for s, n, v in selecting.curves if n == VALIDATION_CURVE]
    assert [s for s, _ in curve] == list(range(5, 81, 5))
    best_step, best_loss = min(curve, key=lambda sv: sv[1])  # min keeps the first of equal values
    sel = selecting.selector
    assert (sel.best_step, sel.best_loss, sel.validations) == (best_step, best_loss, 16)
    assert 5 < best_step < 80  # the fixture overfits: the selected model is neither the first nor the last

    # independently: the same run stopped at the selected step has the selected weights
    stopped = _trainer(_suite(tmp_path, f"steps = {best_step}\ncheckpoint_every = 7", _bm(overfitting_data),
                              "c.toml").specs[0], overfitting_data)
    stopped.train(None, None)
    assert _same_weights(sel.best_model, stopped.model.state_dict())
    ds = stopped.dataset
    assert validation_loss(stopped.model, ds, ds.validation_indices, batch_size=16, step=best_step, seed=spec.seed,
                           device=torch.device("cpu")) == best_loss


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", [25, 35, 60])  # progress is called every 5 steps; checkpoints every 7
def test_killed_and_resumed_selects_the_same_model_bit_for_bit(tmp_path, overfitting_data, kill_at):
    spec = _suite(tmp_path, SELECT, _bm(overfitting_data)).specs[0]
    straight = _trainer(spec, overfitting_data)
    straight.train(tmp_path / "straight" / "ckpt.pt", None)

    ckpt = tmp_path / "killed" / "ckpt.pt"
    first = _trainer(spec, overfitting_data)

    def kill(run_id, step):
        if step == kill_at:
            raise Killed

    with pytest.raises(Killed):
        first.train(ckpt, kill)
    best_file = best_model_path(ckpt)
    assert best_file.name == "ckpt.best.pt" and best_file.exists()  # beside the last checkpoint
    state = load_checkpoint(ckpt, torch.device("cpu"))
    assert state["step"] == (kill_at - 1) // 7 * 7 and state["selection"]["best_step"] <= state["step"]
    resumed = _trainer(spec, overfitting_data)
    resumed.restore(state)
    resumed.train(ckpt, None)

    a, b = straight.selector, resumed.selector
    assert (a.best_step, a.best_loss, a.validations) == (b.best_step, b.best_loss, b.validations)
    assert _same_weights(a.best_model, b.best_model)
    assert _same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert resumed.curves == straight.curves
    kept = torch.load(best_file, weights_only=True)
    assert kept["step"] == a.best_step and _same_weights(kept["model"], a.best_model)


def test_a_run_scores_the_selected_model_and_records_it(tmp_path, overfitting_data):
    suite = _suite(tmp_path, SELECT, _bm(overfitting_data))
    out = tmp_path / "run"
    summary = run_suite(suite, out, InProcessExecutor())
    assert summary.statuses == {"done": 1}
    spec = suite.specs[0]
    with ResultsStore(out, create=False) as store:
        run = store.runs().iloc[0]
        metrics = dict(zip(store.metrics()["name"], store.metrics()["value"]))
        curves = store.curves()
    selection = run["environment"]["selection"]
    val = curves[curves["name"] == VALIDATION_CURVE]
    best = val.loc[val["value"].idxmin()]
    assert selection == {"kind": "best_validation", "every_steps": 5, "selected_step": int(best["step"]),
                         "validation_loss": best["value"], "validations": 16, "validation_images": 64}
    straight = _trainer(spec, overfitting_data)
    straight.train(None, None)
    scored = torch.load(model_path(out, spec.run_id), weights_only=True)
    assert _same_weights(scored, straight.selector.best_model)
    assert not _same_weights(scored, straight.model.state_dict())  # not the final model
    ckpt = checkpoint_path(out, spec.run_id)
    assert not ckpt.exists() and not best_model_path(ckpt).exists()
    # the stored score is the selected model's: recompute recon_bce on the test split with it
    straight.model.load_state_dict(scored)
    from vaebench.bench.evaluate import evaluate

    values = evaluate(straight.model, straight.dataset, spec, device=torch.device("cpu"),
                      cache_dir=tmp_path / "cache", grids=False).values
    assert metrics["recon_bce"] == values["recon_bce"] and math.isfinite(values["recon_bce"])
