"""How a run draws its training batches: the [budget] key `sampler`.

    [budget]
    sampler = "shuffle"    # replacement (default) | shuffle | sequential

    replacement  every batch is `batch_size` indices of the training split drawn uniformly with
                 replacement by the run's generator. An "epoch" (`vaebench.bench.schedules`) is
                 E = ceil(N / B) steps, a pass over the N training images in expectation only: an
                 image is left out of an epoch with probability (1 - 1/N)^(E B), about e^-1 = 37%.
    shuffle      a fresh permutation of the training split each epoch, cut in order into E batches,
                 the last holding the N - (E - 1) B images left over (B when B divides N): every
                 image is seen once per epoch. This is PyTorch's DataLoader(shuffle=True,
                 drop_last=False), the sampler of pythae's trainer and of most published protocols.
    sequential   the same E batches per epoch, in the training split's own order every epoch
                 (DataLoader(shuffle=False)): Burda et al. 2016's code (yburda/iwae) iterates over
                 its training file in order.

Under `shuffle`, the permutation of epoch e = floor(s / E) (s the steps taken) comes from its own
generator, seeded by the run's seed and e (SeedSequence(seed, spawn_key=(SHUFFLE_STREAM, e))),
never from the run's generator: the batch of a step is a function of the step alone, so a run
resumed mid-epoch draws the batches it would have drawn without its checkpoint holding a
permutation, and the run's generator serves only what a dataset draws per batch (the dynamic
binarisation of `mnist`).
"""

from __future__ import annotations

import numpy as np

from vaebench.bench.schedules import steps_per_epoch

SAMPLERS = ("replacement", "shuffle", "sequential")
SHUFFLE_STREAM = 0x5EED  # the spawn key's first entry: the epochs' permutations, apart from any other stream


class BatchSampler:
    """The training indices of each step of a run (`indices(step, rng)`)."""

    def __init__(self, kind: str, train_indices: np.ndarray, batch_size: int, seed: int):
        if kind not in SAMPLERS:
            raise ValueError(f"unknown sampler {kind!r}; allowed: {', '.join(SAMPLERS)}")
        self.kind = kind
        self.train = np.asarray(train_indices)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch_steps = steps_per_epoch(len(self.train), batch_size)
        self._epoch = -1
        self._order = self.train

    def indices(self, step: int, rng: np.random.Generator) -> np.ndarray:
        """The indices of the batch of the step after `step` steps taken: drawn by `rng` with
        replacement, or the step's slice of its epoch's order (`rng` untouched)."""
        if self.kind == "replacement":
            return self.train[rng.integers(0, len(self.train), size=self.batch_size)]
        epoch, within = divmod(step, self.epoch_steps)
        if self.kind == "shuffle" and epoch != self._epoch:
            self._order = self.train[epoch_permutation(len(self.train), self.seed, epoch)]
            self._epoch = epoch
        return self._order[within * self.batch_size:(within + 1) * self.batch_size]


def epoch_permutation(size: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the `size` training images in `epoch` of a run of `seed` under `shuffle`."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SHUFFLE_STREAM, epoch))).permutation(size)


def batch_sizes(kind: str, train_size: int, batch_size: int) -> tuple[int, ...]:
    """The sizes a run's batches take: (B,), and by epochs (`shuffle`, `sequential`) also the last batch of an epoch,
    N - (ceil(N / B) - 1) B, when B does not divide N (a batch larger than N is the whole split)."""
    if kind == "replacement":
        return (batch_size,)
    last = train_size - (steps_per_epoch(train_size, batch_size) - 1) * batch_size
    return tuple(sorted({min(batch_size, train_size), last}, reverse=True))
