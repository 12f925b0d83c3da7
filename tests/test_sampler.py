"""How a run draws its batches ([budget] sampler): each sampler's batches against what it promises,
worked out by hand; the suite key; the last batch's size against the variant; and a run killed
mid-epoch under `shuffle` that resumes bit-identically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import digits_vae_suite
from vaebench import data
from vaebench.bench.sampler import BatchSampler, batch_sizes, epoch_permutation
from vaebench.bench.suite import load_suite
from vaebench.bench.train import Trainer, load_checkpoint
from vaebench.errors import ConfigError

TRAIN = np.arange(100, 123)  # 23 training images, batch 5: epochs of 5 steps, the last batch of 3


def test_replacement_draws_with_the_runs_generator():
    rng, reference = np.random.default_rng(7), np.random.default_rng(7)
    sampler = BatchSampler("replacement", TRAIN, 5, seed=0)
    for step in range(4):
        assert sampler.indices(step, rng).tolist() == (100 + reference.integers(0, 23, size=5)).tolist()


def test_shuffle_is_a_permutation_per_epoch_cut_in_order():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    sampler = BatchSampler("shuffle", TRAIN, 5, seed=3)
    batches = [sampler.indices(step, rng) for step in range(10)]
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3] * 2  # 23 = 4 x 5 + 3
    for epoch in (0, 1):
        seen = np.concatenate(batches[5 * epoch:5 * epoch + 5])
        assert sorted(seen.tolist()) == TRAIN.tolist()  # every image once per epoch
        assert seen.tolist() == (100 + epoch_permutation(23, 3, epoch)).tolist()
    assert not np.array_equal(np.concatenate(batches[:5]), np.concatenate(batches[5:]))  # a fresh order
    assert rng.bit_generator.state == before  # the run's generator is left to the dataset's own draws
    again = BatchSampler("shuffle", TRAIN, 5, seed=3)
    assert again.indices(7, rng).tolist() == batches[7].tolist()  # a function of the step: resumes anywhere
    other_seed = BatchSampler("shuffle", TRAIN, 5, seed=4)
    assert not np.array_equal(np.concatenate([other_seed.indices(s, rng) for s in range(5)]),
                              np.concatenate(batches[:5]))


def test_the_permutation_is_numpys_from_the_seed_and_the_epoch():
    expected = np.random.default_rng(np.random.SeedSequence(3, spawn_key=(0x5EED, 1))).permutation(23)
    assert epoch_permutation(23, 3, 1).tolist() == expected.tolist()


def test_sequential_is_the_file_order_every_epoch():
    sampler = BatchSampler("sequential", TRAIN, 5, seed=0)
    rng = np.random.default_rng(0)
    assert [sampler.indices(s, rng).tolist() for s in (0, 4, 5, 9)] == [
        [100, 101, 102, 103, 104], [120, 121, 122], [100, 101, 102, 103, 104], [120, 121, 122]]


def test_batch_sizes():
    assert batch_sizes("replacement", 23, 5) == (5,)
    assert batch_sizes("shuffle", 23, 5) == (5, 3)
    assert batch_sizes("sequential", 25, 5) == (5,)
    assert batch_sizes("shuffle", 3, 5) == (3,)  # a batch larger than the split is the whole split


def _suite(tmp_path, budget: str, name: str = "s.toml", variant: str = 'name = "vae"'):
    return load_suite(digits_vae_suite(tmp_path / name, budget, name="sampled", variant=variant))


def test_the_suite_key(tmp_path):
    plain = _suite(tmp_path, "steps = 4", "a.toml").specs[0]
    spelled = _suite(tmp_path, 'steps = 4\nsampler = "replacement"', "b.toml").specs[0]
    assert plain.sampler == "" and "sampler" not in plain.to_dict() and spelled.run_id == plain.run_id
    shuffled = _suite(tmp_path, 'steps = 4\nsampler = "shuffle"', "c.toml").specs[0]
    assert shuffled.sampler == "shuffle" and shuffled.run_id != plain.run_id
    with pytest.raises(ConfigError, match="must be one of 'replacement', 'shuffle', 'sequential'") as info:
        _suite(tmp_path, 'steps = 4\nsampler = "random"', "d.toml")
    assert info.value.key == "budget.sampler"


def test_a_last_batch_too_small_for_the_objective_is_refused(tmp_path):
    n_train = len(data.get("digits", test_size=200).train_indices)
    batch = n_train - 1  # the last batch of each epoch holds one image; beta-TCVAE needs two
    variant = 'name = "beta_tcvae"\nestimator = "mss"'
    assert _suite(tmp_path, f"steps = 2\nbatch_size = {batch}", "a.toml", variant).specs  # with replacement: fine
    with pytest.raises(ConfigError, match="the last batch of each epoch .* holds 1") as info:
        _suite(tmp_path, f'steps = 2\nbatch_size = {batch}\nsampler = "shuffle"', "b.toml", variant)
    assert info.value.key == "budget.batch_size"


class Killed(Exception):
    pass


def test_killed_mid_epoch_resumes_bit_identically(tmp_path):
    budget = 'steps = 12\ncheckpoint_every = 3\nbatch_size = 400\nsampler = "shuffle"\nlog_every = 1'
    spec = _suite(tmp_path, budget).specs[0]
    dataset = data.get("digits", test_size=200)
    assert len(dataset.train_indices) // 400 >= 3  # step 3 is inside the first epoch
    straight = Trainer(spec, dataset, torch.device("cpu"))
    straight.train(None, None)

    ckpt = tmp_path / "run.pt"

    def kill(run_id, step):
        if step == 5:  # the checkpoint of step 3 is on disk
            raise Killed

    with pytest.raises(Killed):
        Trainer(spec, dataset, torch.device("cpu")).train(ckpt, kill)
    resumed = Trainer(spec, dataset, torch.device("cpu"))
    resumed.restore(load_checkpoint(ckpt, torch.device("cpu")))
    assert resumed.step == 3
    resumed.train(ckpt, None)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.curves == straight.curves
