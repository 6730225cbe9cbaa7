"""Bad input, each refused with a clear error that names the file, key or line (or honoured), never
a backtrace, a silent default or an allocation sized by garbage: duplicated YAML keys, limit 0,
an ambiguous relative data path, absurd config.json sizes, a GGUF whose dimensions overflow, a
shard index that climbs out of the model directory, invalid UTF-8 in a JSONL file, an absent
device, a huge adapter rank, an empty test split, an unbounded multiple-choice prompt."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

import tandem
from conftest import REPO, keyword_config, make_tiny_llama_checkpoint, write_keyword_dataset

SMOL = REPO / "models" / "smollm2-135m.gguf"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_llama_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama")


def test_duplicated_yaml_keys_are_refused_naming_both_lines(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("experiment: {type: lm_multiple_choice}\nseed: 1\ntrain:\n  lr: 0.1\nseed: 2\n")
    with pytest.raises(tandem.ConfigError, match=r"dup.yaml:5: seed: duplicated key \(first written at line 2\)"):
        tandem.load_config(p)
    p.write_text("train:\n  lr: 0.1\n  steps: 3\n  lr: 0.2\n")
    with pytest.raises(tandem.ConfigError, match=r"dup.yaml:4: train.lr: duplicated key \(first written at line 2\)"):
        tandem.load_config(p)


def test_limit_zero_is_refused_and_all_is_spelled_out(tmp_path, keyword_data):
    cfg = keyword_config(keyword_data, tmp_path, **{"data.limit": 0})
    with pytest.raises(tandem.ConfigError, match=r"data.limit: expected a positive integer, or \"all\""):
        tandem.run(cfg, plot=False, echo_log=False)
    res = tandem.run(keyword_config(keyword_data, tmp_path, **{"data.limit": "all", "train.epochs": 1}), plot=False,
                     echo_log=False)
    assert (res.run_dir / "metrics.json").exists()


def test_ambiguous_relative_data_path_names_both_files_and_runs_log_what_they_read(tmp_path):
    root = tmp_path / "data"
    here = tmp_path / "cwd"
    for d in (root, here):
        (d / "sciq").mkdir(parents=True)
        shutil.copy(Path(tandem.data_root()) / "sciq" / "test.jsonl", d / "sciq" / "test.jsonl")
    env_cfg = REPO / "configs" / "default.yaml"
    p = run_cli_env(["run", str(env_cfg), "data.path=sciq/test.jsonl", "data.limit=2", f"run.results_dir={tmp_path / 'r'}",
                     "--no-plot"], cwd=here, env={"TANDEM_DATA": str(root), "TANDEM_MODELS": str(REPO / "models")})
    assert p.returncode == 2, p.stderr
    assert "data path 'sciq/test.jsonl' names two files" in p.stderr and str(here / "sciq" / "test.jsonl") in p.stderr
    # Written explicitly, it runs, and the log names the absolute path of every input.
    p = run_cli_env(["run", str(env_cfg), "data.path=./sciq/test.jsonl", "data.limit=2", f"run.results_dir={tmp_path / 'r'}",
                     "--no-plot"], cwd=here, env={"TANDEM_DATA": str(root), "TANDEM_MODELS": str(REPO / "models")})
    assert p.returncode == 0, p.stderr
    log = next((tmp_path / "r").glob("*/*/log.txt")).read_text()
    assert f"read data: {here / 'sciq' / 'test.jsonl'}" in log
    assert f"read model: {REPO / 'models' / 'smollm2-135m.gguf'}" in log


def run_cli_env(args, cwd, env):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tandem", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "PYTHONPATH": str(REPO / "python")})


@pytest.mark.parametrize("key,value,message", [
    ("num_hidden_layers", 10 ** 9, "number of layers = 1000000000 is outside [1, 4096]"),
    ("hidden_size", 12.5, "key \"hidden_size\" must be an integer, got 12.5"),
    ("vocab_size", -5, "vocab size = -5 is outside"),
    ("num_attention_heads", 0, "attention heads = 0 is outside"),
    ("intermediate_size", 1 << 40, "intermediate size = 1099511627776 is outside"),
])
def test_absurd_config_json_sizes_are_refused_naming_the_file(tiny, tmp_path, key, value, message):
    d = tmp_path / "m"
    shutil.copytree(tiny, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg[key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match=str(d / "config.json").replace(".", r"\.") + ".*" + message.replace("[", r"\[").replace(".", r"\.")):
        tandem.models.load(str(d))


def test_shard_index_cannot_point_outside_the_model_directory(tiny, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny, d)
    (d / "model.safetensors").rename(tmp_path / "outside.safetensors")
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"lm_head.weight": "../outside.safetensors"}}))
    with pytest.raises(RuntimeError, match=r"weight_map\[\"lm_head.weight\"\] = \"\.\./outside\.safetensors\" is not a file inside"):
        tandem.models.load(str(d))


def test_gguf_dimensions_whose_product_overflows_are_refused(tmp_path):
    import gguf
    import numpy as np

    p = tmp_path / "x.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_tensor("w", np.zeros((2, 2), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = bytearray(p.read_bytes())
    i = data.index(b"\x01\x00\x00\x00\x00\x00\x00\x00w") + 9  # name length 1, "w", then rank and dims
    assert struct.unpack_from("<IQQ", data, i) == (2, 2, 2)
    struct.pack_into("<QQ", data, i + 4, 1 << 35, 1 << 35)  # each fine alone; the product is 2^70
    p.write_bytes(bytes(data))
    with pytest.raises(tandem._C.GgufError, match=r"x\.gguf: tensor 'w' has dimensions whose product exceeds 2\^50"):
        tandem._C.GgufFile(str(p))


def test_invalid_utf8_in_a_jsonl_keeps_its_file_and_line_message(tmp_path):
    data = write_keyword_dataset(tmp_path / "kw.jsonl", 10)
    lines = data.read_bytes().splitlines()
    lines[2] = b'{"id": "ex2", "text": "bad \xff\xfe bytes", "label": "music"}'
    data.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(RuntimeError) as e:  # not a UnicodeDecodeError hiding the message
        tandem.run(keyword_config(data, tmp_path / "r"), plot=False, echo_log=False)
    assert not isinstance(e.value, UnicodeError)
    assert "kw.jsonl:3: malformed JSON" in str(e.value) and "\\xFF" in str(e.value), str(e.value)


def test_adapter_layers_with_every_is_refused_by_name(tiny, tmp_path):
    cfg = REPO / "configs" / "spa" / "sciq_spa.yaml"
    with pytest.raises(tandem.ConfigError) as e:
        tandem.run(cfg, ["adapter.layers=[1,2]", "adapter.every=2", f"model.path={tiny}", "device=cpu"],
                   results_dir=tmp_path, plot=False, echo_log=False)
    assert "adapter.every: expected no every: together with layers: (layers names them)" in str(e.value), str(e.value)


@pytest.mark.parametrize("override,message", [
    ("device=mps", "device: expected a device this machine has (cpu or auto); mps was requested"),
    ("adapter.rank=1000000000", "adapter.rank: expected an integer in [1, 65536]"),
    ("task.test=0", "task.test: expected a positive integer"),
    ("experiment.prompt_template=chatm", "experiment.prompt_template: expected one of auto, chatml, gemma, llama2, llama3, mistral, phi3, plain"),
])
def test_settings_that_used_to_end_in_traces_are_config_errors(tiny, tmp_path, override, message):
    cfg = REPO / "configs" / "spa" / "sciq_spa.yaml"
    with pytest.raises(tandem.ConfigError) as e:
        tandem.run(cfg, [override, f"model.path={tiny}", "device=cpu" if "device" not in override else override],
                   results_dir=tmp_path, plot=False, echo_log=False)
    assert message in str(e.value) and "Traceback" not in str(e.value), str(e.value)


@pytest.mark.skipif(not SMOL.exists(), reason="run scripts/setup.sh (installs models)")
def test_multiple_choice_prompts_are_capped_not_allocated_whole(tmp_path):
    rows = [json.loads(l) for l in open(Path(tandem.data_root()) / "sciq" / "test.jsonl")][:2]
    for r in rows:
        r["support"] = "A very long supporting passage. " * 8000  # ~64,000 tokens
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = tandem.run(REPO / "configs" / "default.yaml", [f"data.path={data}", "data.with_support=true",
                                                        "eval.max_prompt_tokens=256"], results_dir=tmp_path,
                     plot=False, echo_log=False)
    assert res.metrics["prompts_truncated"] == 2 and res.metrics["questions"] == 2
