"""The published files' digests, and the check that tells a user when a file is not the published one.

A dataset that reads a publisher's files (SmallNORB, MPI3D, ...) hashes each file it reads
when it is built (at suite load). Where a digest of the published file is known (PUBLISHED,
keyed by the file's published name, each with the place it is listed), a file whose digest
differs gets one warning line, naming the file, both digests and the source, and is still
used. Every file's SHA-256, and whether it matched, goes into each run's environment
(`ImageDataset.data_files()`, recorded as ``environment["data_files"]``), so a number made on a
modified file is never mistaken for one made on the published data.

Only digests actually found in a source are listed, in the algorithm the source gives:

- SmallNORB's six ``.mat.gz`` files: SHA-256 and byte size from TensorFlow Datasets'
  ``tensorflow_datasets/datasets/smallnorb/checksums.tsv`` (tensorflow/datasets at commit
  732bfc1f122d2f54c19ce800b088655db0e31ab5). The uncompressed ``.mat`` files (what
  disentanglement_lib's download script leaves after ``gunzip``) have no published digest:
  their SHA-256 is recorded, nothing is checked.
- MPI3D's ``mpi3d_{toy,realistic,real}.npz``: the MD5 of the whole file listed by disent
  (nmichlo/disent, ``disent/dataset/data/_groundtruth__mpi3d.py``, ``uri_hash["full"]`` of each
  ``Final_Dataset`` download; disent's "full" hash is the MD5 of every byte). No SHA-256 of these
  files is published that we found.
- Cars3D: disent lists only the MD5 of the archive ``nips2015-analogy-data.tar.gz``, not of the
  ``car_*_mesh.mat`` files a user extracts from it; the scream image (Wikimedia's
  ``The_Scream.jpg``) has no published digest. Their SHA-256s are recorded, nothing is checked.

Hashing reads the whole file (MPI3D's are 12 GB): the digests of a file are computed once and
kept, by the file's resolved path, inode, size and modification time, in this process and on
disk under ``$VAEBENCH_CACHE_DIR/file_digests/`` (default ``$XDG_CACHE_HOME/vaebench`` or
``~/.cache/vaebench``); a cache that cannot be written is skipped. As with
`vaebench.data.files.fingerprint`, an edit that keeps size and modification time (``touch -r``)
is not seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from vaebench.errors import DataError
from vaebench.files import atomic_write, content_hash

log = logging.getLogger(__name__)

_TFDS = ("TensorFlow Datasets, tensorflow_datasets/datasets/smallnorb/checksums.tsv "
         "(tensorflow/datasets@732bfc1f)")
_DISENT_MPI3D = "disent, disent/dataset/data/_groundtruth__mpi3d.py (nmichlo/disent, uri_hash 'full')"
ALGORITHMS = ("sha256", "md5")
_BLOCK = 1 << 22


@dataclass(frozen=True)
class PublishedDigest:
    """A published file's digest: `algorithm` (sha256 or md5), the hex `digest`, its byte `size` where
    the source gives it, and the `source` that lists it."""

    algorithm: str
    digest: str
    source: str
    size: int | None = None


PUBLISHED: dict[str, PublishedDigest] = {
    "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz": PublishedDigest(
        "sha256", "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873", _TFDS, 131896188),
    "smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat.gz": PublishedDigest(
        "sha256", "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa", _TFDS, 348),
    "smallnorb-5x46789x9x18x6x2x96x96-training-info.mat.gz": PublishedDigest(
        "sha256", "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32", _TFDS, 71052),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz": PublishedDigest(
        "sha256", "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474", _TFDS, 130799817),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat.gz": PublishedDigest(
        "sha256", "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff", _TFDS, 347),
    "smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat.gz": PublishedDigest(
        "sha256", "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2", _TFDS, 10428),
    "mpi3d_toy.npz": PublishedDigest("md5", "55889cb7c7dfc655d6e0277beee88868", _DISENT_MPI3D),
    "mpi3d_realistic.npz": PublishedDigest("md5", "59a6225b88b635365f70c91b3e52f70f", _DISENT_MPI3D),
    "mpi3d_real.npz": PublishedDigest("md5", "0f33f609918fb5c97996692f91129802", _DISENT_MPI3D),
}

# digests by (resolved path, inode, size, mtime_ns), for this process
_DIGESTS: dict[tuple, dict[str, str]] = {}
# (path, published name) pairs already warned about in this process: one line per file
_WARNED: set[tuple[str, str]] = set()


def digest_cache_dir() -> Path:
    """Where file digests are kept between processes (see the module docstring)."""
    root = os.environ.get("VAEBENCH_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "file_digests"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vaebench" / "file_digests"


def file_digests(path: Path) -> dict[str, str]:
    """{"sha256": hex, "md5": hex} of the file's bytes, read once per file version (see the module docstring)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as err:
        raise DataError(f"{path}: cannot be read: {err.strerror or err}") from None
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    stored = digest_cache_dir() / f"{content_hash(list(key))}.json"
    digests = _read_stored(stored, key)
    if digests is None:
        hashes = {name: hashlib.new(name) for name in ALGORITHMS}
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(_BLOCK), b""):
                    for h in hashes.values():
                        h.update(block)
        except OSError as err:
            raise DataError(f"{path}: cannot be read: {err.strerror or err}") from None
        digests = {name: h.hexdigest() for name, h in hashes.items()}
        try:
            with atomic_write(stored, "w") as f:
                json.dump({"key": list(key), **digests}, f)
        except OSError as err:
            log.debug("file digests of %s not kept on disk (%s)", path, err)
    _DIGESTS[key] = digests
    return digests


def _read_stored(stored: Path, key: tuple) -> dict[str, str] | None:
    try:
        entry = json.loads(stored.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != list(key):
        return None
    digests = {name: entry.get(name) for name in ALGORITHMS}
    checked = {n: d for n, d in digests.items() if isinstance(d, str) and len(d) == hashlib.new(n).digest_size * 2}
    return checked if len(checked) == len(digests) else None


def check_published(path: Path, published_name: str | None = None) -> dict[str, object]:
    """The file's record for the run's environment: {"sha256": hex, "published": true, false or
    null (no published digest)}; one warning line when the file differs from the published one.

    published_name: the name the publisher gives the file (default: the file's own name).
    """
    path = Path(path)
    name = published_name or path.name
    expected = PUBLISHED.get(name)
    digests = file_digests(path)
    record: dict[str, object] = {"sha256": digests["sha256"], "published": None}
    if expected is None:
        return record
    actual = digests[expected.algorithm]
    record["published"] = actual == expected.digest
    if actual != expected.digest and (str(path), name) not in _WARNED:
        _WARNED.add((str(path), name))
        size = path.stat().st_size
        sizes = f", {size} bytes against {expected.size}" if expected.size is not None and size != expected.size else ""
        log.warning("%s: not the published %s (%s %s, published %s%s; listed in %s): numbers made on it are "
                    "not numbers on the published data", path, name, expected.algorithm.upper(), actual,
                    expected.digest, sizes, expected.source)
    return record
