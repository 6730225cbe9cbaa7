"""Config errors reach Python and the CLI with file, line, key path and expectation intact."""
from __future__ import annotations

import pytest

import tandem
from conftest import keyword_config, run_cli


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_extends_and_overrides_resolve(tmp_path):
    write(tmp_path, "base.yaml", "seed: 1\ntrain:\n  lr: 0.5\n  epochs: 2\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\ntrain:\n  lr: 0.1\n")
    cfg = tandem.load_config(child, {"train.epochs": 9, "model.type": "bag_mlp"})
    assert cfg == {"seed": 1, "train": {"lr": 0.1, "epochs": 9}, "model": {"type": "bag_mlp"}}
    assert tandem.load_config(child, ["train__lr=0.2".replace("__", ".")])["train"]["lr"] == 0.2


@pytest.mark.parametrize(
    "text,overrides,expected",
    [
        ("a: [1, 2\n", [], r"bad\.yaml:2:1: malformed YAML"),
        ("- 1\n", [], r"bad\.yaml:1: expected a mapping of keys to values at the top level"),
        ("a: 1\n", ["a"], r"command-line override 'a': expected KEY\.PATH=VALUE"),
        ("a: 1\n", ["a.b=2"], r"command-line override 'a\.b=2': 'a' holds \"1\", not a mapping"),
        ("extends: nothere.yaml\n", [], r"bad\.yaml:1: extends: cannot read base config 'nothere\.yaml'"),
    ],
)
def test_load_errors_name_the_place(tmp_path, text, overrides, expected):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(tandem.ConfigError, match=expected):
        tandem.load_config(path, overrides)


RUN_ERRORS = [
    # (override, expected message fragment)
    ({"train.epochs": "many"}, r"train\.epochs: expected a positive integer, got \"many\""),
    ({"train.lr": -1}, r"train\.lr: expected a positive number, got \"-1\""),
    ({"classifier.hiden": 3}, r"classifier\.hiden: unknown key \(expected one of: type\)"),
    ({"classifier.type": "transformer"}, r"classifier\.type: unknown experiments\.bag_classifier 'transformer' \(known: bag_linear, bag_mlp\)"),
    ({"experiment.type": "nope"}, r"experiment\.type: unknown experiments\.experiment 'nope' \(known: .*text_classification"),
    ({"device": "gpu"}, r"device: expected one of cpu, cuda, cuda:N, mps, auto, got \"gpu\""),
    ({"dtype": "int4"}, r"dtype: expected one of float32, bfloat16, float16, float64, got \"int4\""),
    ({"cpu_kernels": "avx2"}, r"cpu_kernels: expected one of: auto, portable, got \"avx2\""),
    ({"data.test_fraction": 2}, r"data\.test_fraction: expected a number in \[0, 1\], got \"2\""),
    ({"features.ngram": [1, 2]}, r"features\.ngram: expected a positive integer, got a list"),
    ({"experiment.name": "../escape"}, r"experiment\.name: expected a name of letters, digits"),
]


@pytest.mark.parametrize("override,expected", RUN_ERRORS, ids=[next(iter(o)) for o, _ in RUN_ERRORS])
def test_run_errors_name_file_line_and_key(tmp_path, keyword_data, override, expected):
    import yaml

    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml.safe_dump(keyword_config(keyword_data, tmp_path / "results"), sort_keys=False))
    # The bad value is written into the file (not passed as an override) so the message must name a line.
    key, value = next(iter(override.items()))
    cfg = yaml.safe_load(cfg_path.read_text())
    node = cfg
    *parents, leaf = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(tandem.ConfigError, match=rf"exp\.yaml:\d+: {expected}"):
        tandem.run(cfg_path)
    assert not (tmp_path / "results").exists(), "a bad config must fail before anything is written"


def test_cli_reports_bad_override_in_one_line(tmp_path, keyword_data):
    import yaml

    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml.safe_dump(keyword_config(keyword_data, tmp_path / "results")))
    proc = run_cli("run", str(cfg_path), "train.batch_size=big")
    assert proc.returncode == 2
    assert ("tandem: error: command-line override 'train.batch_size=big': train.batch_size: "
            "expected a positive integer, got \"big\"") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_registry_lists_names():
    assert "text_classification" in tandem.registry.names("experiments.experiment")
    assert set(tandem.registry.kinds()) >= {"experiments.experiment", "data.text_classification", "data.featurizer", "experiments.bag_classifier", "text.tokenizer"}
    with pytest.raises(ValueError, match="unknown registry kind 'nope'"):
        tandem.registry.names("nope")
