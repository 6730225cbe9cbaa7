"""SPA end to end on a tiny random HF checkpoint (CPU): every method of the grid runs from the
committed configs with only the model and device changed, the cloud/device accounting follows
its formula, the router really switches, and a SIGKILLed training resumes to identical results."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tandem
from tandem import _C
from conftest import REPO, make_tiny_llama_checkpoint

pytest.importorskip("transformers")

SMALL = {"task.train": 12, "task.dev": 8, "task.test": 6,
         "train.steps": 6, "train.eval_every": 3, "train.log_every": 2,
         "train.checkpoint_every": 2, "router_train.steps": 10,
         "task.max_new_tokens": 6, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    return make_tiny_llama_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama")


def run_cfg(name: str, ckpt: Path, tmp: Path, **extra):
    ov = {**SMALL, "model.path": str(ckpt), "state_cache.dir": str(tmp / "cache"), **extra}
    return tandem.run(REPO / "configs" / "spa" / f"{name}.yaml", results_dir=tmp / "results", echo_log=False, plot=False, **ov)


@pytest.mark.parametrize("name", ["sciq_one_shot", "sciq_lst", "sciq_spa", "sciq_spa_norouter", "xsum_spa",
                                  "sciq_spa_ladder", "sciq_spa_sequential"])
def test_grid_configs_run_unchanged_on_an_hf_checkpoint(name, tiny_ckpt, tmp_path):
    res = run_cfg(name, tiny_ckpt, tmp_path)
    m = res.metrics
    assert m["test_examples"] == 6
    assert m["primary_metric"] == "rougeL" and 0.0 <= m["primary"] <= 100.0
    preds = [json.loads(line) for line in open(Path(res.run_dir) / "predictions.jsonl")]
    assert len(preds) == 6
    V, H = 400, 32
    if name.endswith("spa") or name.endswith("norouter"):
        # Plugin every 3rd layer of 2 -> reads layer 2 only; rank 64, MLP 256 wide, up 32x64.
        plugin = 1 * 64 * H + 256 * 64 + 64 * 256 + H * 64
        router = (64 * (H + 64 + 8) + 64 + 64 + 1) if name.endswith("spa") else 0
        assert m["device_trainable_parameters"] == plugin + router
        # Cloud -> device per token: 1 layer state (float32) + the backbone's float32 logits.
        assert m["cloud_to_device_bytes_per_token"] == 1 * H * 4 + V * 4
        assert 0.0 <= m["adapter_use_fraction"] <= 1.0
        if name.endswith("norouter"):
            assert m["adapter_use_fraction"] == 1.0
        curve = pd.read_csv(Path(res.run_dir) / "train_curve.csv")
        assert list(curve["step"]) == [2, 3, 4, 6] and curve["eval_dev_loss"].notna().sum() == 2
    if name.endswith("lst"):
        assert m["cloud_to_device_bytes_per_token"] == 3 * H * 4  # embeddings + both layers, no logits
        assert m["adapter_use_fraction"] == 1.0
    if name.endswith("spa_ladder"):
        # Width 32, bottleneck 16, embeddings + 2 layers read: in 32xH, 2 rungs (down 32xH, 16x32, 32x16), out Hx32.
        assert m["device_trainable_parameters"] - (64 * (H + 32 + 8) + 64 + 64 + 1) == 32 * H + 2 * (32 * H + 16 * 32 + 32 * 16) + H * 32
        assert m["cloud_to_device_bytes_per_token"] == 3 * H * 4 + V * 4
    if name.endswith("sequential"):
        assert m["cloud_to_device_bytes_per_token"] == 1 * H * 4 + V * 4  # the final state only


@pytest.mark.parametrize("layers,read", [("[0,1,2]", 3), ("all", 2)])
def test_adapter_layers_list_or_all_override_the_default(layers, read, tiny_ckpt, tmp_path):
    """The documented `adapter.layers=[..]` / `all`, as typed on the command line, on the grid's
    configs (which leave `every` at its default so that `layers` can replace it)."""
    ov = {**SMALL, "model.path": str(tiny_ckpt), "state_cache.dir": str(tmp_path / "cache")}
    res = tandem.run(REPO / "configs" / "spa" / "sciq_spa_norouter.yaml",
                     [f"adapter.layers={layers}", *(f"{k}={v}" for k, v in ov.items())],
                     results_dir=tmp_path / "results", echo_log=False, plot=False)
    assert res.metrics["cloud_to_device_bytes_per_token"] == read * 32 * 4 + 400 * 4


def test_a_trained_run_loads_and_decodes_from_python_as_in_the_run(tiny_ckpt, tmp_path):
    """tandem.spa.SideAdaptedLM.from_run rebuilds plugin + router from the run directory alone and
    decodes the run's own test prompts to the same tokens and routes."""
    res = run_cfg("sciq_spa", tiny_ckpt, tmp_path)
    lm = tandem.spa.SideAdaptedLM.from_run(res.run_dir, model=tiny_ckpt)
    test = _C.load_generation_task("type: sciq\ntest: 6\nmax_context_words: 200\n", "test")
    preds = [json.loads(line) for line in open(Path(res.run_dir) / "predictions.jsonl")]
    assert [p["id"] for p in preds] == [e["id"] for e in test]
    out = lm.generate([e["prompt"] for e in test], max_new_tokens=6)
    assert [o.tokens for o in out] == [p["token_ids"] for p in preds]
    assert [o.routes for o in out] == [p["routes"] for p in preds]
    assert lm.device_footprint()["device_trainable_parameters"] == res.metrics["device_trainable_parameters"]


def test_router_never_reproduces_the_frozen_backbone_exactly(tiny_ckpt, tmp_path):
    """With the router forced to 'never', SPA must emit exactly the zero-shot backbone's tokens: the
    decode path of the adapter adds nothing unless the router picks it."""
    never = run_cfg("sciq_spa_norouter", tiny_ckpt, tmp_path / "a", **{"router.type": "never"})
    zero = run_cfg("sciq_one_shot", tiny_ckpt, tmp_path / "b", **{"experiment.method": "zero_shot"})
    read = lambda r: [json.loads(line)["prediction"] for line in open(Path(r.run_dir) / "predictions.jsonl")]
    assert read(never) == read(zero)
    assert never.metrics["adapter_use_fraction"] == 0.0


def test_router_features_and_labels_by_hand():
    import math

    import torch

    lb = torch.tensor([[math.log(2.0), 0.0]])  # backbone: p = (2/3, 1/3)
    la = torch.tensor([[math.log(3.0), 0.0]])  # adapted: p = (3/4, 1/4)
    f = _C.router_distribution_features(lb, la)[0]
    h = lambda p: -sum(x * math.log(x) for x in p)
    kl = 0.75 * math.log(0.75 / (2 / 3)) + 0.25 * math.log(0.25 / (1 / 3))
    # Both argmaxes are token 0: they agree; the backbone gives the adapted pick 2/3, the adapted
    # distribution gives the backbone's pick 3/4.
    assert f.tolist() == pytest.approx([h([2 / 3, 1 / 3]), h([0.75, 0.25]), 2 / 3, 0.75, kl, 1.0, 2 / 3, 0.75], abs=1e-6)
    # Label: the adapted distribution gives gold token 0 more (3/4 > 2/3) and token 1 less (1/4 < 1/3).
    assert _C.router_labels(lb.repeat(2, 1), la.repeat(2, 1), torch.tensor([0, 1])).tolist() == [1.0, 0.0]


def test_router_features_equal_their_definitions_on_random_logits():
    """The features are computed from sums over shifted logits (few passes per decode step): they
    must equal the definitions written with log-softmax, over a real vocabulary's width."""
    import torch

    g = torch.Generator().manual_seed(0)
    b, a = torch.randn(3, 5000, generator=g) * 4, torch.randn(3, 5000, generator=g) * 4
    a[1] = b[1] + 0.01 * torch.randn(5000, generator=g)  # a near-identical pair: KL near 0
    lb, la = torch.log_softmax(b.double(), -1), torch.log_softmax(a.double(), -1)
    pb, pa = lb.exp(), la.exp()
    ref = torch.stack([-(pb * lb).sum(-1), -(pa * la).sum(-1), pb.max(-1).values, pa.max(-1).values, (pa * (la - lb)).sum(-1),
                       (pa.argmax(-1) == pb.argmax(-1)).double(), pb.gather(-1, pa.argmax(-1, keepdim=True)).squeeze(-1),
                       pa.gather(-1, pb.argmax(-1, keepdim=True)).squeeze(-1)], -1)
    got = _C.router_distribution_features(b, a).double()
    assert torch.allclose(got, ref, rtol=1e-4, atol=2e-5), (got - ref).abs().max().item()


def cli(cfg: Path, results: Path, cache: Path, ckpt: Path, **extra) -> list[str]:
    ov = {**SMALL, "model.path": str(ckpt), "state_cache.dir": str(cache), **extra}
    return [sys.executable, "-m", "tandem", "run", str(cfg), *[f"{k}={v}" for k, v in ov.items()], f"run.results_dir={results}", "--no-plot"]


def test_sigkill_during_training_resumes_to_identical_results(tiny_ckpt, tmp_path):
    cfg = REPO / "configs" / "spa" / "sciq_lst.yaml"
    extra = {"train.steps": 200, "train.eval_every": 50, "train.log_every": 5,
             "train.checkpoint_every": 5, "task.train": 24}
    ref = subprocess.run(cli(cfg, tmp_path / "ref", tmp_path / "cache", tiny_ckpt, **extra), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    victim = cli(cfg, tmp_path / "victim", tmp_path / "cache", tiny_ckpt, **extra)
    proc = subprocess.Popen(victim, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpts = lambda: list((tmp_path / "victim").glob("*/*/adapter_train.ckpt"))
    deadline = time.time() + 300
    while not ckpts() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # a few more checkpoints, then kill mid-training
    assert proc.poll() is None, "training finished before it could be killed: raise the step count"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dirs = list((tmp_path / "victim").glob("*/*"))
    assert len(run_dirs) == 1 and not (run_dirs[0] / "metrics.json").exists()
    again = subprocess.run(victim, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list((tmp_path / "victim").glob("*/*"))) == 1, "the rerun must continue the unfinished run, not start another"
    log = (run_dirs[0] / "log.txt").read_text()
    assert "resuming the unfinished run" in log
    m_ref = json.loads(next((tmp_path / "ref").glob("*/*/metrics.json")).read_text())
    m_res = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert m_res["train"]["resumed_from_step"] > 0
    assert m_res["train"]["final_loss"] == m_ref["train"]["final_loss"]
    assert m_res["scores"] == m_ref["scores"]
    curve_ref = (next((tmp_path / "ref").glob("*/*/train_curve.csv"))).read_text()
    assert (run_dirs[0] / "train_curve.csv").read_text() == curve_ref


COQA = {
    "version": "1.0",
    "data": [
        {"id": "story-a", "story": "Anna has a white cat named Snow. Snow sleeps in the park every afternoon.",
         "questions": [{"input_text": "What does Anna have?", "turn_id": 1}, {"input_text": "What is its name?", "turn_id": 2},
                       {"input_text": "Where does it sleep?", "turn_id": 3}],
         "answers": [{"input_text": "a white cat", "span_text": "a white cat", "turn_id": 1},
                     {"input_text": "Snow", "span_text": "Snow", "turn_id": 2},
                     {"input_text": "in the park", "span_text": "in the park", "turn_id": 3}],
         "additional_answers": {"0": [{"input_text": "a cat", "turn_id": 1}, {"input_text": "Snow", "turn_id": 2},
                                      {"input_text": "the park", "turn_id": 3}]}},
        {"id": "story-b", "story": "Bo paints boats. He sells them at the harbour market.",
         "questions": [{"input_text": "What does Bo paint?", "turn_id": 1}, {"input_text": "Where does he sell them?", "turn_id": 2}],
         "answers": [{"input_text": "boats", "span_text": "boats", "turn_id": 1},
                     {"input_text": "at the harbour market", "span_text": "harbour market", "turn_id": 2}]},
    ],
}


def test_coqa_reader_official_format_with_history(tmp_path):
    (tmp_path / "coqa.json").write_text(json.dumps(COQA))
    y = f"type: coqa\npath: {tmp_path / 'coqa.json'}\ntest_path: {tmp_path / 'coqa.json'}\ntrain: 10\nhistory_turns: 2\n"
    train = _C.load_generation_task(y, "train")
    assert sorted(e["id"] for e in train) == ["story-a_1", "story-a_2", "story-a_3", "story-b_1", "story-b_2"]
    third = next(e for e in train if e["id"] == "story-a_3")
    assert third["references"] == ["in the park", "the park"]
    assert third["history"] == [("What does Anna have?", "a white cat"), ("What is its name?", "Snow")]
    assert "Q: What is its name?\nA: Snow\nQ: Where does it sleep?" in third["prompt"]


def test_coqa_dev_and_test_split_the_dev_file_by_story_with_turns_per_story(tmp_path):
    """Dev and the final test are disjoint halves of test_path's stories; each keeps k turns per
    story, a story's turns adjacent (one batch shares its story); the shared files parse as JSONL."""
    stories = []
    for i in range(40):
        stories.append({"id": f"s{i}", "story": f"Story {i}.", "questions": [{"input_text": f"q{t}", "turn_id": t + 1} for t in range(6)],
                        "answers": [{"input_text": f"a{t}", "turn_id": t + 1} for t in range(6)]})
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stories))
    y = f"type: coqa\npath: {tmp_path / 'dev.jsonl'}\ntest_path: {tmp_path / 'dev.jsonl'}\ndev: 1000\ntest: 12\neval_turns_per_story: 3\n"
    test, dev = _C.load_generation_task(y, "test"), _C.load_generation_task(y, "dev")
    story = lambda e: e["id"].rsplit("_", 1)[0]
    assert len(test) == 12 and len({story(e) for e in test}) == 4  # 4 stories x 3 turns
    assert not ({story(e) for e in test} & {story(e) for e in dev})
    assert len({story(e) for e in dev}) + len({story(e) for e in _C.load_generation_task(y.replace("test: 12", "test: 1000"), "test")}) == 40
    order = [story(e) for e in test]
    assert order == sorted(order, key=order.index) and all(order.count(s) == 3 for s in set(order))
    # The real files: 74 train stories, dev split into two halves of the 500 official dev stories.
    real = "type: coqa\ntrain: 5000\ndev: 10000\ntest: 10000\neval_turns_per_story: 0\n"
    n_train = len(_C.load_generation_task(real, "train"))
    n_dev, n_test = (len(_C.load_generation_task(real, s)) for s in ("dev", "test"))
    assert n_train == 1112 and n_dev + n_test == 7983


def test_coqa_file_runs_unchanged_through_the_spa_experiment(tiny_ckpt, tmp_path):
    (tmp_path / "coqa.json").write_text(json.dumps(COQA))
    res = run_cfg("coqa_one_shot", tiny_ckpt, tmp_path, **{"task.path": str(tmp_path / "coqa.json"),
                                                             "task.test_path": str(tmp_path / "coqa.json"),
                                                             "task.train": 3, "task.test": 2})
    assert res.metrics["task"] == "CoQA" and res.metrics["primary_metric"] == "f1"
    assert set(res.metrics["scores"]) == {"f1", "exact_match"}


def test_task_splits_are_disjoint_and_fixed():
    for y in ("type: xsum\ntrain: 1000\ndev: 1000\ntest: 1000\n", "type: sciq\ntrain: 1000\ndev: 1000\ntest: 1000\n",
              "type: cnn_dailymail\ntrain: 1000\ndev: 1000\ntest: 1000\n"):
        ids = {s: [e["id"] for e in _C.load_generation_task(y, s)] for s in ("train", "dev", "test")}
        assert not (set(ids["train"]) & set(ids["dev"])) and not (set(ids["train"]) & set(ids["test"]))
        assert not (set(ids["dev"]) & set(ids["test"]))
        assert ids["train"] == [e["id"] for e in _C.load_generation_task(y, "train")]  # same order every time
    assert len(_C.load_generation_task("type: xsum\ntest: 1000\n", "test")) == 321
    # Train comes from each summarisation task's official train file, dev from the dev file.
    for y, train_file, dev_file in (("type: xsum\ntrain: 2000\ndev: 2000\n", "xsum/train.jsonl", "xsum/test.jsonl"),
                                    ("type: cnn_dailymail\ntrain: 2000\ndev: 2000\n", "cnn_dailymail/train.jsonl",
                                     "cnn_dailymail/validation.jsonl")):
        file_ids = lambda f: {str(json.loads(line)["id"]) for line in open(tandem.data_root() / f)}
        assert {e["id"] for e in _C.load_generation_task(y, "train")} <= file_ids(train_file)
        assert {e["id"] for e in _C.load_generation_task(y, "dev")} <= file_ids(dev_file)


def test_cnn_dailymail_reference_fields_per_record(tmp_path):
    rows = [{"id": "a", "article": "x", "highlights_cleaned": "First line\nNEW second line!\n"},
            {"id": "b", "article": "y", "highlights": "One .\nTwo ."},
            {"id": "c", "article": "z", "highlights_tokenized": "Locke 's side won . Fans cheered ."}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    y = f"type: cnn_dailymail\ntest_path: {tmp_path / 'c.jsonl'}\ntest: 3\n"
    refs = [e["references"][0] for e in _C.load_generation_task(y, "test")]
    assert refs == ["First line.\nNEW second line!", "One.\nTwo.", "Locke's side won.\nFans cheered."]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "d", "article": "w", "highlights": "a", "highlights_cleaned": "b"}) + "\n")
    with pytest.raises(Exception, match=r"bad\.jsonl:1: expected exactly one of highlights"):
        _C.load_generation_task(f"type: cnn_dailymail\ntest_path: {tmp_path / 'bad.jsonl'}\n", "test")


def test_bad_task_line_names_file_and_line_or_is_skipped(tmp_path):
    rows = [json.dumps({"id": i, "document": f"doc {i}", "summary": f"sum {i}"}) for i in range(6)]
    rows[3] = '{"id": 3, "document": "no summary"}'
    (tmp_path / "x.jsonl").write_text("\n".join(rows) + "\n")
    y = f"type: xsum\ntrain_path: ''\npath: {tmp_path / 'x.jsonl'}\ntrain: 10\ndev: 10\n"
    with pytest.raises(Exception, match=r"x\.jsonl:4.*summary"):
        _C.load_generation_task(y, "train")
    ok = _C.load_generation_task(y + "skip_bad_lines: true\n", "train") + _C.load_generation_task(y + "skip_bad_lines: true\n", "dev")
    assert sorted(int(e["id"]) for e in ok) == [0, 1, 2, 4, 5]


def test_rank_r_logits_path_trains_exactly_like_the_full_projection(tiny_ckpt, tmp_path):
    """Backbone logits + z (W U)^T must equal W (final + U z): the same losses step by step
    whether the backbone logits are cached (rank-r path) or everything is projected (budget 0)."""
    fast = run_cfg("sciq_spa_norouter", tiny_ckpt, tmp_path / "fast")
    full = run_cfg("sciq_spa_norouter", tiny_ckpt, tmp_path / "full", **{"state_cache.logits_budget_gb": 0})
    a = pd.read_csv(Path(fast.run_dir) / "train_curve.csv")
    b = pd.read_csv(Path(full.run_dir) / "train_curve.csv")
    assert list(a["step"]) == list(b["step"])
    assert (a["loss"] - b["loss"]).abs().max() < 1e-4 * b["loss"].abs().max()
    assert (a["eval_dev_loss"] - b["eval_dev_loss"]).abs().max() < 1e-4
