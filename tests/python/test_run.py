"""Running experiments from Python and from the CLI, on fixture data and on the real default."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml

import tandem
from conftest import REPO, keyword_config, run_cli


def test_run_from_dict_returns_result_and_writes_files(tmp_path, keyword_data):
    res = tandem.run(keyword_config(keyword_data, tmp_path / "results"), echo_log=False)
    assert res.run_dir.parent == tmp_path / "results" / "kw"
    assert isinstance(res.table, pd.DataFrame)
    assert list(res.table.columns) == ["label", "test_examples", "accuracy"]
    assert list(res.table["label"]) == ["music", "science", "sport", "all"]
    # The "all" row counts every test example and its accuracy is the headline metric.
    all_row = res.table.set_index("label").loc["all"]
    assert all_row["test_examples"] == res.table["test_examples"][:-1].sum() == res.metrics["test_examples"]
    assert abs(all_row["accuracy"] - res.metrics["accuracy"]) < 1e-4
    assert res.metrics["accuracy"] >= 0.95  # the label is one keyword: learnable
    for name in ("config.yaml", "metrics.json", "table.csv", "table.md", "log.txt", "curve.csv", "curve.png"):
        assert (res.run_dir / name).exists(), name
    assert res.plots == [res.run_dir / "curve.png"]
    assert res.metrics_frame.loc[0, "run.device"] == "cpu"
    curve = res.read_table("curve")
    assert list(curve["epoch"]) == list(range(1, 7))
    resolved = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert resolved["train"]["lr"] == 0.05


def test_keyword_overrides_and_reproducibility(tmp_path, keyword_data):
    cfg = keyword_config(keyword_data, tmp_path / "results")
    a = tandem.run(cfg, run__id="a", train__epochs=2, echo_log=False, plot=False)
    b = tandem.run(cfg, {"run.id=b", "train.epochs=2"}, echo_log=False, plot=False)
    assert a.metrics["run"]["run_id"] == "a" and b.metrics["run"]["run_id"] == "b"
    assert len(a.read_table("curve")) == 2
    assert a.metrics["final_train_loss"] == b.metrics["final_train_loss"]


def test_cli_run_prints_table(tmp_path, keyword_data):
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml.safe_dump(keyword_config(keyword_data, tmp_path / "results")))
    proc = run_cli("run", str(cfg_path), "train.epochs=3", "--no-plot")
    assert proc.returncode == 0, proc.stderr
    assert "| label | test_examples | accuracy |" in proc.stdout
    assert "results: " in proc.stdout
    run_dir = proc.stdout.split("results: ")[1].split()[0]
    assert json.loads(open(f"{run_dir}/metrics.json").read())["run"]["experiment"] == "kw"


def test_cli_overrides_may_follow_options(tmp_path, keyword_data):
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml.safe_dump(keyword_config(keyword_data, tmp_path / "results")))
    proc = run_cli("config", str(cfg_path), "seed=4")
    assert yaml.safe_load(proc.stdout)["seed"] == 4
    proc = run_cli("run", str(cfg_path), "--no-plot", "train.epochs=2", "seed=7")
    assert proc.returncode == 0, proc.stderr
    run_dir = proc.stdout.split("results: ")[1].split()[0]
    assert json.loads(open(f"{run_dir}/metrics.json").read())["run"]["seed"] == 7
    proc = run_cli("run", str(cfg_path), "--no-plot", "--bogus")
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr


def test_cli_config_and_registry():
    proc = run_cli("config", "configs/default.yaml", "seed=5")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["seed"] == 5
    proc = run_cli("registry", "data.featurizer")
    assert proc.stdout.strip() == "data.featurizer: hashed_ngrams"


def test_mmlu_subject_classification_on_real_data(tmp_path):
    """Real MMLU-Pro questions, subject classification, trained in C++."""
    data = tandem.data_root() / "mmlu_pro" / "test.jsonl"
    assert data.exists(), f"real data missing at {data}: set TANDEM_DATA"
    res = tandem.run(REPO / "configs" / "text_classification" / "mmlu_subjects.yaml", train__epochs=2,
                     results_dir=tmp_path, echo_log=False)
    assert res.metrics["labels"] == 14
    assert res.metrics["train_examples"] + res.metrics["test_examples"] == 12030
    # Far above the majority-label baseline (~11%): the loop really learns.
    assert res.metrics["accuracy"] > 3 * res.metrics["majority_baseline_accuracy"]


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_default_config_answers_real_questions_with_a_real_model(tmp_path):
    """The README's main job, shortened: SmolLM2-135M answers real SciQ questions by log-likelihood."""
    res = tandem.run(REPO / "configs" / "default.yaml", data__limit=40, results_dir=tmp_path, echo_log=False)
    n = res.metrics["questions"]
    assert n == 40
    assert res.metrics["chance_accuracy"] == 0.25
    assert list(res.table["method"]) == ["log-likelihood (sum)", "log-likelihood (per token)", "chance"]
    assert res.plots == [res.run_dir / "accuracy.png"]
    # A real model, not a coin: the number right is significantly above chance (exact one-sided
    # binomial test at 1%).
    right = round(res.metrics["accuracy"] * n)
    assert binomial_tail(n, right, 0.25) < 0.01, f"{right}/{n} right is not clearly above chance"


def test_default_config_runs_unchanged_on_an_hf_checkpoint_directory(tmp_path):
    """What a GPU user does with a real checkpoint, at toy size on the CPU: only model.path (and
    device) change. The checkpoint: a random Llama saved by transformers, with a byte-level BPE
    tokenizer.json trained here by HF tokenizers."""
    transformers = __import__("pytest").importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = [json.loads(line)["question"] for line in open(tandem.data_root() / "sciq" / "test.jsonl")][:300]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    ckpt = tmp_path / "tiny-llama"
    ckpt.mkdir()
    tok.save(str(ckpt / "tokenizer.json"))
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    hf = transformers.LlamaForCausalLM(cfg)
    hf.save_pretrained(ckpt)
    res = tandem.run(REPO / "configs" / "default.yaml", results_dir=tmp_path / "results", echo_log=False,
                     **{"model.path": str(ckpt), "device": "cpu", "data.limit": 8})
    assert res.metrics["questions"] == 8
    assert res.metrics["model_parameters"] == sum(p.numel() for p in hf.parameters())
    assert 0.0 <= res.metrics["accuracy"] <= 1.0


def test_a_run_directory_in_use_is_refused_not_shared(tmp_path, keyword_data):
    """Two runs of one config into one run directory would append to the same predictions (and
    pay a remote twice): the second is refused while the first holds the directory's lock."""
    import fcntl
    import os

    cfg = keyword_config(keyword_data, tmp_path, **{"run.id": "busy", "train.epochs": 1})
    run_dir = tmp_path / "kw" / "busy"
    run_dir.mkdir(parents=True)
    with open(run_dir / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write(f"{os.getpid()}\n")
        f.flush()
        with pytest.raises(RuntimeError, match=rf"kw/busy is in use by another tandem process \(pid {os.getpid()}\)"):
            tandem.run(cfg, plot=False, echo_log=False)
    assert tandem.run(cfg, plot=False, echo_log=False).run_dir == run_dir  # free again: it runs
