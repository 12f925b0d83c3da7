"""The reference registry: every shipped entry loads and agrees with the line it quotes; every
schema mistake is one ConfigError naming the file and the key."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from vaebench.errors import ConfigError, UnknownNameError
from vaebench.reference import REFERENCES, get_reference, load_reference_file, load_references, shipped_files
from vaebench.reference.schema import parse_reference_table

MINIMAL = {
    "source": {
        "id": "doe2020", "authors": ["Jane Doe"], "year": 2020, "title": "A Paper", "venue": "A Venue",
        "arxiv": "2001.00001", "read": "paper",
    },
    "references": [{
        "id": "doe2020-vae", "where": "Table 1", "quote": "| VAE | 90.1 |", "model": "VAE", "value": 90.1,
        "tolerance": 1.0, "tolerance_reason": "because",
        "dataset": {"name": "mnist", "preprocessing": "none", "train": "all", "test": "test"},
        "protocol": {"architecture": "mlp", "objective": "ELBO", "optimizer": "Adam", "schedule": "constant",
                     "budget": "10 epochs", "selection": "final"},
        "metric": {"name": "iwae_nll", "estimator": "IS", "split": "test"},
    }],
}


def _toml(value) -> str:
    """A minimal TOML writer for the nested dicts of these tests (strings, numbers, lists, tables)."""
    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + " }"
        return repr(v)

    lines = []
    for key, table in value.items():
        if isinstance(table, list):
            for entry in table:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {scalar(v)}" for k, v in entry.items()]
        else:
            lines.append(f"[{key}]")
            lines += [f"{k} = {scalar(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _error(raw, file="refs.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_reference_table(raw, file=file)
    return info.value


def _edited(path: list, value=None, delete: bool = False):
    raw = copy.deepcopy(MINIMAL)
    node: Any = raw
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


def test_every_shipped_file_loads_and_ids_are_unique():
    files = shipped_files()
    assert {f.stem for f in files} >= {"burda2016", "pythae2022", "rezende2015"}
    seen = []
    for f in files:
        source, refs = load_reference_file(f)
        assert source.id == f.stem  # one file per source, named by its id
        seen += [r.id for r in refs]
    assert len(seen) == len(set(seen)) == len(REFERENCES)


def test_each_value_is_the_number_its_quote_shows():
    # the value was typed twice (the number and the line it was read from): they must agree
    for ref in REFERENCES.values():
        numbers = {float(n) for n in re.findall(r"\d+\.\d+", ref.quote)}
        assert ref.value in numbers, (ref.id, ref.value, ref.quote)


def test_shipped_values_as_read_in_the_sources():
    # spot checks against SOURCES.md, written from the sources independently of the TOML files
    expected = {
        "burda2016-iwae-k50-l1": 84.78, "burda2016-iwae-k5-l1": 85.54, "burda2016-vae-k1-l1": 86.76,
        "burda2016-iwae-k50-l2": 82.90, "burda2016-iwae-k50-l1-static": 87.10,
        "rezende2015-vae-binarized-mnist": 89.9, "pythae2022-vae-binarized-mnist": 89.78,
        "pythae2022-iwae-k50-binarized-mnist": 86.82, "pythae2022-betatcvae-dsprites-modified-elbo": 710.41,
        "pythae2022-betatcvae-dsprites-elbo-official": 86.40,
    }
    assert {k: REFERENCES[k].value for k in expected} == expected
    assert "burda2016-vae-k5-l1" not in REFERENCES  # the secondary sources disagree (86.47 / 86.46)
    pythae_vae = REFERENCES["pythae2022-vae-binarized-mnist"]
    assert pythae_vae.reproduces == "rezende2015-vae-binarized-mnist"
    assert (pythae_vae.uncertainty, pythae_vae.metric.importance_samples) == (0.01, 200)
    assert pythae_vae.protocol.batch_size == 100 and pythae_vae.protocol.epochs == 500


def test_defaults_are_merged_key_by_key():
    static = REFERENCES["burda2016-iwae-k50-l1-static"]
    assert static.dataset.name == "binarized_mnist"  # the entry's own dataset table
    assert static.protocol.batch_size == 20 and static.protocol.epochs == 3280  # from [defaults.protocol]
    assert dict(static.protocol.hyperparameters) == {"model": "iwae", "k": 50}
    two_layers = REFERENCES["burda2016-iwae-k50-l2"]
    assert two_layers.protocol.architecture.startswith("two stochastic layers")
    assert two_layers.protocol.schedule == static.protocol.schedule


def test_shipped_metric_names_are_known():
    from vaebench.metrics import METRICS

    value_names = {v.name for _, info in METRICS.items() for v in info.values}
    for ref in REFERENCES.values():
        if ref.metric.kind == "metric":
            assert ref.metric.name in value_names, ref.id
        else:
            parts = ref.metric.name.split(" + ")  # a curve, or curves summed step by step
            assert all(re.fullmatch(r"[a-z_]+/[a-z_]+", part) for part in parts), ref.id


def test_shipped_dataset_names_are_registered():
    from vaebench.data import DATASETS

    assert {ref.dataset.name for ref in REFERENCES.values()} <= set(DATASETS.names())


def test_get_reference_names_the_known_ids():
    assert get_reference("burda2016-iwae-k50-l1").source.citation == "Burda, Grosse & Salakhutdinov 2016"
    with pytest.raises(UnknownNameError, match="burda2016-iwae-k50-l1"):
        get_reference("burda2016-iwae-k500")


def test_minimal_file_round_trips(tmp_path):
    path = tmp_path / "doe2020.toml"
    path.write_text(_toml(MINIMAL))
    source, (ref,) = load_reference_file(path)
    assert (source.id, source.citation, ref.value, ref.metric.kind, ref.metric.unit) == (
        "doe2020", "Doe 2020", 90.1, "metric", "nats")
    assert ref.source is source and ref.uncertainty is None and ref.departures == ()


BAD = [
    (["source", "year"], "2020", "source.year", "must be an integer"),
    (["source", "read"], "blog", "source.read", "one of 'paper', 'code', 'secondary'"),
    (["source", "arxiv"], "arXiv:2001.00001", "source.arxiv", "arXiv identifier"),
    (["source", "authors"], [], "source.authors", "non-empty array"),
    (["source", "id"], "Doe 2020", "source.id", "lower-case letters"),
    (["source", "colour"], "blue", "source.colour", "unknown key"),
    (["references", 0, "value"], "90.1", "references[0].value", "must be a number"),
    (["references", 0, "value"], float("nan"), "references[0].value", "must be a number"),
    (["references", 0, "tolerance"], 0.0, "references[0].tolerance", "> 0"),
    (["references", 0, "quote"], "  ", "references[0].quote", "must not be blank"),
    (["references", 0, "uncertainty"], 0.3, "references[0].uncertainty_kind", "give both or neither"),
    (["references", 0, "metric", "split"], "valid", "references[0].metric.split", "'train', 'validation', 'test'"),
    (["references", 0, "metric", "kind"], "table", "references[0].metric.kind", "'metric', 'curve'"),
    (["references", 0, "metric", "importance_samples"], 0, "references[0].metric.importance_samples", ">= 1"),
    (["references", 0, "protocol", "batch_size"], 2.5, "references[0].protocol.batch_size", "an integer"),
    (["references", 0, "protocol", "hyperparameters"], {"k": [1, 2]}, "references[0].protocol.hyperparameters.k",
     "string, number or boolean"),
    (["references", 0, "dataset"], "mnist", "references[0].dataset", "must be a table"),
    (["references", 0, "departures"], "none", "references[0].departures", "array of non-blank strings"),
    (["references"], [], "references", "non-empty array"),
    (["sources"], {}, "sources", "unknown key"),
]


@pytest.mark.parametrize("path, value, key, message", BAD, ids=[b[2] + ":" + b[3] for b in BAD])
def test_schema_errors_name_the_file_and_the_key(path, value, key, message):
    err = _error(_edited(path, value))
    assert err.file == "refs.toml" and err.key == key
    assert message in str(err) and str(err).startswith(f"refs.toml: key '{key}': ")


@pytest.mark.parametrize("path, key", [
    (["source", "title"], "source.title"),
    (["references", 0, "tolerance_reason"], "references[0].tolerance_reason"),
    (["references", 0, "metric", "estimator"], "references[0].metric.estimator"),
    (["references", 0, "protocol", "selection"], "references[0].protocol.selection"),
    (["references", 0, "dataset"], "references[0].dataset"),
])
def test_required_keys(path, key):
    err = _error(_edited(path, delete=True))
    assert err.key == key and "required" in str(err)


def test_a_source_read_elsewhere_says_where():
    err = _error(_edited(["source", "read"], "secondary"))
    assert err.key == "source.read_in"
    raw = _edited(["source", "arxiv"], delete=True)
    assert "one of arxiv, doi or url" in str(_error(raw))


def test_ids_unique_across_files_and_reproduces_must_exist(tmp_path):
    a = tmp_path / "a.toml"
    a.write_text(_toml(MINIMAL))
    b = tmp_path / "b.toml"
    other = copy.deepcopy(MINIMAL)
    other["source"]["id"] = "roe2021"
    b.write_text(_toml(other))
    with pytest.raises(ConfigError,
                       match=r"b\.toml: key 'references\[0\]\.id': reference id 'doe2020-vae' is also used"):
        load_references([a, b])
    with pytest.raises(ConfigError, match=r"source id 'doe2020' is also used"):
        load_references([a, a])
    other["references"][0]["id"] = "roe2021-vae"
    other["references"][0]["reproduces"] = "doe2020-vea"
    b.write_text(_toml(other))
    with pytest.raises(ConfigError, match=r"b\.toml: key 'references\[0\]\.reproduces': no reference has the id"):
        load_references([a, b])
    other["references"][0]["reproduces"] = "doe2020-vae"
    b.write_text(_toml(other))
    assert load_references([a, b])["roe2021-vae"].reproduces == "doe2020-vae"


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_reference_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[source\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_reference_file(bad)


def test_shipped_files_are_plain_toml():
    # the package data is read with tomllib alone (no vaebench code) in the same shape
    for f in shipped_files():
        raw = tomllib.loads(Path(f).read_text(encoding="utf-8"))
        assert set(raw) <= {"source", "defaults", "references"}
