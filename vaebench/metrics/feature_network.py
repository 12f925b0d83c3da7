"""Feature networks for FID and KID: trained on the dataset itself, or a user's InceptionV3 TorchScript file.

Nothing is downloaded (DESIGN.md). Two kinds:

- ``trained`` (the default): a small convolutional classifier trained on the dataset's own
  training split to predict its labels -- one softmax head per ground-truth factor on
  dSprites (shape, scale, orientation, posX, posY), the digit on digits -- with a fixed
  seed for ``TRAIN_STEPS`` Adam steps on one CPU thread (so the weights do not depend on
  the device or the thread count). Its features are the ``FEATURE_DIM``-d penultimate
  layer (the heads are linear in it), as Inception's pool3 features are for ImageNet FID,
  standardised to mean 0 and std 1 per dimension on ``STANDARDIZE_IMAGES`` training images
  (so the scale of KID's polynomial kernel is sensible). Trained once per (dataset
  description and training indices, architecture, training settings, seed) and cached on
  disk under ``<cache_dir>/feature_networks/`` by the SHA-256 of that description; loaded
  with ``torch.load(weights_only=True)``.
- ``inception``: a TorchScript file the user already has (never downloaded) that maps a
  uint8 batch (N, 3, H, W) in [0, 255] to (N, F) features, such as NVIDIA's
  ``inception-2015-12-05.pt`` used by StyleGAN2-ADA and clean-fid (standard 2048-d
  InceptionV3 pool3 features; it resizes to 299 px itself). If the module's ``forward``
  has a ``return_features`` argument it is called with ``return_features=True``. Grey
  images are repeated to 3 channels. Its hash is the SHA-256 of the file's bytes.

Every network has a `name` and a `hash`; FID/KID values are stored with ``feature=<name>:<hash>``.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vaebench.cache import load_entry, store_entry
from vaebench.errors import ConfigError, DataError
from vaebench.files import canonical_json, content_hash, file_sha256

FEATURE_DIM = 64  # width of the feature layer
CONV_CHANNELS = (16, 32, 32, 64)  # 4x4 stride-2 convolutions while the side is even and > 4
HIDDEN = 128  # dense layer between the convolutions and the feature layer
TRAIN_STEPS = 300
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
SEED = 0
STANDARDIZE_IMAGES = 2_048  # training images whose features set the per-dimension mean 0 / std 1
FORMAT_VERSION = 1  # bump when the architecture or the training loop changes meaning

FEATURE_NETWORKS = ("trained", "inception")


@dataclass(frozen=True)
class FeatureNetwork:
    """A feature extractor for torchmetrics, with the name and hash stored beside every value."""

    module: ConvFeatureNet | TorchScriptFeatures
    name: str
    hash: str

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.hash}"

    @property
    def num_features(self) -> int:
        return int(self.module.num_features)


def _to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 (torchmetrics' format without normalize=True) is divided by 255."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x.float()


class ConvFeatureNet(nn.Module):
    """Convolutions -> dense HIDDEN -> FEATURE_DIM features -> one linear head per label column.

    The features are standardised by the buffers `shift` and `scale` (set after training).

    forward(x) returns the features, for torchmetrics (``num_features`` is set); ``logits(x)``
    returns the heads' outputs, for training. Input: (N, C, H, W) float in [0, 1] or uint8.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, image_shape: tuple[int, int, int], num_classes: tuple[int, ...],
                 num_features: int = FEATURE_DIM, channels: tuple[int, ...] = CONV_CHANNELS, hidden: int = HIDDEN):
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for c_out in channels:
            if h % 2 or w % 2 or min(h, w) <= 4:
                break
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1), nn.ReLU()]
            c, h, w = c_out, h // 2, w // 2
        layers += [nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_features)]
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(num_features, n) for n in num_classes)
        self.num_features = int(num_features)
        # set after training so features have mean 0 and std 1 per dimension on training images
        self.register_buffer("shift", torch.zeros(num_features))
        self.register_buffer("scale", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.trunk(_to_unit_float(x)) - self.shift) / self.scale

    def logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(_to_unit_float(x))
        return [head(features) for head in self.heads]


def _init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Conv/Linear initialisation, drawn from `generator` instead of the global RNG."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            fan_in = layer.weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            if layer.bias is not None:
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _num_classes(dataset: Any) -> tuple[int, ...]:
    if getattr(dataset, "has_factors", False):
        return tuple(int(s) for s in dataset.factor_sizes)
    labels = dataset.labels(dataset.train_indices)
    if labels is None:
        raise ConfigError(
            f"the trained feature network needs a dataset with labels or factors, and {dataset.name!r} has "
            "neither; use feature_network = 'inception' with inception_weights = PATH",
            key="feature_network",
        )
    return tuple(int(m) + 1 for m in np.asarray(labels).max(axis=0))


def trained_network_spec(dataset: Any, *, steps: int = TRAIN_STEPS, batch_size: int = BATCH_SIZE,
                         learning_rate: float = LEARNING_RATE, seed: int = SEED,
                         num_features: int = FEATURE_DIM) -> dict[str, Any]:
    """Everything the trained network's weights depend on; its canonical JSON is hashed for the cache."""
    train_indices = np.ascontiguousarray(np.asarray(dataset.train_indices, dtype=np.int64))
    return {
        "format": FORMAT_VERSION,
        "dataset": dataset.describe(),
        "train_indices_sha256": hashlib.sha256(train_indices.tobytes()).hexdigest(),
        "num_classes": list(_num_classes(dataset)),
        "architecture": {"type": "ConvFeatureNet", "channels": list(CONV_CHANNELS), "hidden": HIDDEN,
                         "num_features": num_features},
        "training": {"steps": steps, "batch_size": batch_size, "optimizer": "adam",
                     "learning_rate": learning_rate, "loss": "sum of per-head cross-entropies", "device": "cpu",
                     "standardize_images": STANDARDIZE_IMAGES},
        "seed": seed,
    }


def _build(dataset: Any, spec: dict[str, Any]) -> ConvFeatureNet:
    with torch.device("meta"):  # no draw from the global RNG: parameters are initialised below
        net = ConvFeatureNet(tuple(dataset.image_shape), tuple(spec["num_classes"]),
                             num_features=spec["architecture"]["num_features"])
    net = net.to_empty(device="cpu")
    net.shift.zero_()
    net.scale.fill_(1.0)
    return net


def train_feature_network(dataset: Any, *, steps: int = TRAIN_STEPS, batch_size: int = BATCH_SIZE,
                          learning_rate: float = LEARNING_RATE, seed: int = SEED,
                          num_features: int = FEATURE_DIM) -> ConvFeatureNet:
    """Train a ConvFeatureNet on the dataset's training split (CPU, seeded; see the module doc)."""
    with torch.inference_mode(False), torch.enable_grad():  # callers may be evaluating under no_grad
        return _train(dataset, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                      num_features=num_features)


def _train(dataset: Any, *, steps: int, batch_size: int, learning_rate: float, seed: int,
           num_features: int) -> ConvFeatureNet:
    spec = trained_network_spec(dataset, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                                seed=seed, num_features=num_features)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _build(dataset, spec)
    _init_parameters(net, generator)
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    train = np.asarray(dataset.train_indices)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the weights must not depend on the machine's thread count
    try:
        for _ in range(steps):
            idx = np.sort(train[rng.integers(0, len(train), size=batch_size)])
            x = torch.from_numpy(dataset.images(idx))
            y = torch.from_numpy(np.asarray(dataset.labels(idx), dtype=np.int64))
            losses = [F.cross_entropy(logits, y[:, j]) for j, logits in enumerate(net.logits(x))]
            loss = cast(torch.Tensor, sum(losses))  # 0 + the heads' losses: a tensor (a network has a head)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval().requires_grad_(False)
        idx = np.sort(train[rng.integers(0, len(train), size=STANDARDIZE_IMAGES)])
        with torch.no_grad():
            features = net.trunk(torch.from_numpy(dataset.images(idx)))
        net.shift.copy_(features.mean(0))
        net.scale.copy_(features.std(0).clamp_min(1e-6))
    finally:
        torch.set_num_threads(threads)
    return net


_NETWORKS: dict[tuple[str, str], FeatureNetwork] = {}


def trained_feature_network(dataset: Any, cache_dir: Path | str, **settings: Any) -> FeatureNetwork:
    """The trained network for `dataset` and `settings`: from this process, else the disk cache, else trained.

    settings: steps, batch_size, learning_rate, seed, num_features (defaults: the module constants).
    """
    spec = trained_network_spec(dataset, **settings)
    digest = content_hash(spec)
    name = f"{dataset.name}-convnet{spec['architecture']['num_features']}"
    path = Path(cache_dir) / "feature_networks" / f"{name}-{digest}.pt"
    key = (str(path.resolve()), digest)
    if key in _NETWORKS:
        return _NETWORKS[key]
    stored = load_entry(path, canonical_json(spec))
    if stored is not None:
        net = _build(dataset, spec)
        net.load_state_dict(stored)
        net.eval().requires_grad_(False)
    else:
        net = train_feature_network(dataset, **settings)
        # atomic: concurrent runs that train the same network both write the same bytes
        store_entry(path, canonical_json(spec), dict(net.state_dict()))
    network = FeatureNetwork(net, name, digest)
    _NETWORKS[key] = network
    return network


class TorchScriptFeatures(nn.Module):
    """Wraps a TorchScript feature extractor: [0, 1] or uint8 images -> uint8 3-channel -> (N, F) float32."""

    def __init__(self, scripted: torch.jit.ScriptModule, num_features: int, return_features: bool):
        super().__init__()
        self.scripted = scripted
        self.num_features = int(num_features)
        self.return_features = return_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out = self.scripted(x, return_features=True) if self.return_features else self.scripted(x)
        return out.reshape(len(x), -1).float()


def torchscript_feature_network(path: Path | str, image_shape: tuple[int, int, int],
                                name: str = "inception") -> FeatureNetwork:
    """A FeatureNetwork from a TorchScript file (see the module doc); DataError if it is missing or unreadable."""
    path = Path(path).expanduser()
    stat = path.stat() if path.is_file() else None
    if stat is None:
        raise DataError(f"{path}: inception_weights file not found (a TorchScript feature extractor, never downloaded)")
    key = (f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}", name)
    if key in _NETWORKS:
        return _NETWORKS[key]
    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated, but the standard weights are TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
        raise DataError(f"{path}: not a TorchScript module torch.jit.load can read "
                        f"({exc.__class__.__name__})") from None
    scripted.eval()
    try:
        arguments = [a.name for a in scripted.forward.schema.arguments]
    except AttributeError:
        arguments = []
    return_features = "return_features" in arguments
    probe = TorchScriptFeatures(scripted, 0, return_features)
    try:
        with torch.no_grad():
            num_features = probe(torch.zeros((2, *image_shape), dtype=torch.uint8)).shape[1]
    except Exception as exc:  # noqa: BLE001 - the user's module rejects the images
        raise DataError(f"{path}: the module does not map a uint8 (N, 3, H, W) batch to (N, F) features "
                        f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    network = FeatureNetwork(TorchScriptFeatures(scripted, num_features, return_features), name,
                             file_sha256(path)[:16])
    _NETWORKS[key] = network
    return network
