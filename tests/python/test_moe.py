"""Symbolic-MoE: profiles and recruiting on a hand-built pool whose right expert per skill is
known, determinism for a seed, the memory budget of the model pool, and the experiment end to
end on tiny HF checkpoints (batched-by-expert vs naive: one load per model, same answers)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import tandem
from tandem import _C
from conftest import REPO, make_tiny_llama_checkpoint

pytest.importorskip("transformers")

# Skills 0 = algebra, 1 = anatomy, 2 = law. Expert 0 is right exactly on algebra, expert 1 on
# anatomy, expert 2 on law; 4 validation questions per skill.
SKILLS = [[0]] * 4 + [[1]] * 4 + [[2]] * 4
CORRECT = [[s == [0] for s in SKILLS], [s == [1] for s in SKILLS], [s == [2] for s in SKILLS]]


def test_profiles_by_hand():
    prof = _C.moe_profiles(["alg", "ana", "law"], 3, SKILLS, CORRECT, 1.0)
    # Expert 0: +4 on algebra, -4 on anatomy and law; / (4 questions + smoothing 1). Strength 4/12.
    assert prof[0][0] == pytest.approx([4 / 5, -4 / 5, -4 / 5])
    assert prof[0][1] == pytest.approx(1 / 3)
    assert prof[2][0] == pytest.approx([-4 / 5, -4 / 5, 4 / 5])


def test_recruiting_picks_the_known_expert_per_skill_and_is_deterministic():
    prof = _C.moe_profiles(["alg", "ana", "law"], 3, SKILLS, CORRECT, 1.0)
    for skill, expert in ((0, 0), (1, 1), (2, 2)):
        assert _C.moe_recruit(prof, [skill], k=1) == [expert]
        assert _C.moe_recruit(prof, [skill], k=2)[0] == expert
    # Sampling: the same seed and key give the same experts, and the first pick follows the
    # softmax of the scores / temperature. Scores for an anatomy question: (0.8 / 3) for the
    # anatomy expert, -(0.8 / 3) for the others, so P(anatomy first) = 1 / (1 + 2 exp(-1.6 / 3 / T)).
    import math
    n, T = 2000, 0.5
    a = [_C.moe_recruit(prof, [1], k=2, mode="sample", temperature=T, seed=7, key=f"q{i}") for i in range(n)]
    b = [_C.moe_recruit(prof, [1], k=2, mode="sample", temperature=T, seed=7, key=f"q{i}") for i in range(n)]
    assert a == b
    p = 1 / (1 + 2 * math.exp(-1.6 / 3 / T))
    freq = sum(r[0] == 1 for r in a) / n
    assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n), (freq, p)
    assert all(len(set(r)) == 2 for r in a)  # without replacement
    c = [_C.moe_recruit(prof, [1], k=2, mode="sample", temperature=T, seed=8, key=f"q{i}") for i in range(n)]
    assert a != c


@pytest.fixture(scope="module")
def two_ckpts(tmp_path_factory):
    base = tmp_path_factory.mktemp("pool")
    return make_tiny_llama_checkpoint(base / "a"), make_tiny_llama_checkpoint(base / "b", vocab_size=420)


def test_pool_budget_below_two_models_keeps_one_resident(two_ckpts):
    a, b = map(str, two_ckpts)
    size_a, size_b = _C.estimate_model_bytes(a), _C.estimate_model_bytes(b)
    budget = size_a + size_b - 1  # below two models' size
    pool = _C.ModelPool(budget)
    for path in (a, b, a, b, a):
        model = pool.acquire(path)
        del model
        assert pool.resident_bytes <= budget
    assert pool.max_resident_models == 1 and pool.loads == 5
    assert pool.peak_resident_bytes == max(size_a, size_b)  # the estimate is the measured size
    roomy = _C.ModelPool(size_a + size_b)
    roomy.acquire(a), roomy.acquire(b), roomy.acquire(a)
    assert roomy.max_resident_models == 2 and roomy.loads == 2
    with pytest.raises(Exception, match="budget"):
        _C.ModelPool(size_a // 2).acquire(a)


def test_experiment_batched_equals_naive_with_one_load_per_model(two_ckpts, tmp_path):
    a, b = map(str, two_ckpts)
    cfg = yaml.safe_load((REPO / "configs" / "moe" / "symbolic_moe.yaml").read_text())
    e = cfg["experiment"]
    # A tandem-made expert: a's weights plus an SPA plugin trained (briefly) by an SPA run.
    spa = tandem.run(REPO / "configs" / "spa" / "sciq_spa_norouter.yaml", results_dir=tmp_path / "spa", echo_log=False, plot=False,
                     **{"model.path": a, "device": "cpu", "task.train": 8, "task.dev": 4,
                        "task.test": 2, "train.steps": 4, "train.eval_every": 2,
                        "train.log_every": 2, "train.checkpoint_every": 0,
                        "task.max_new_tokens": 2, "state_cache.dir": str(tmp_path / "cache")})
    cfg["experts"] = [{"name": "a", "model": a}, {"name": "b", "model": b}, {"name": "a-med", "model": a, "system": "You are a doctor."},
                    {"name": "a-plugin", "model": a, "adapter_run": str(spa.run_dir), "answer": "letter"}]
    e["aggregators"] = ["a", "b"]
    cfg["data"].update(validation_per_dataset=3, test_per_dataset=3)
    e["compare_instances"] = 10
    cfg["device"] = "cpu"
    res = tandem.run(cfg, results_dir=tmp_path / "results", echo_log=False, plot=False)
    ex = res.metrics["execution"]
    assert ex["identical_answers"] is True and ex["batched_by_expert"]["jobs"] == 20
    assert ex["batched_by_expert"]["loads"] == 2  # one per model: the persona shares a's weights
    assert ex["batched_by_model"]["loads"] == 2 and ex["batched_by_model"]["identical_answers"] is True
    assert ex["naive"]["loads"] == 20             # one per (instance, recruited expert)
    prof = json.loads((Path(res.run_dir) / "profiles.json").read_text())
    assert set(prof) == {"a", "b", "a-med", "a-plugin"}
    assert set(res.metrics["accuracy"]) >= {"Symbolic-MoE", "best single expert", "majority vote", "task-level router"}
    rows = [json.loads(line) for line in open(Path(res.run_dir) / "per_instance.jsonl")]
    assert len(rows) == 9 and all(len(r["recruited"]) == 2 and set(r["expert_answers"]) == {"a", "b", "a-med", "a-plugin"} for r in rows)
    assert all("question" not in r for r in rows)  # ids and letters only (GPQA's terms)
    # Every table row's letter per instance (the bootstrap intervals resample these).
    acc = res.metrics["accuracy"]
    for meth in ("Symbolic-MoE", "best single expert", "majority vote", "task-level router"):
        assert acc[meth]["all"] == pytest.approx(sum(r["methods"][meth] == r["gold"] for r in rows) / len(rows))


def test_plugin_expert_with_loglik_answers_is_refused(two_ckpts, tmp_path):
    a, b = map(str, two_ckpts)
    cfg = yaml.safe_load((REPO / "configs" / "moe" / "symbolic_moe.yaml").read_text())
    run = tmp_path / "fake_run"
    run.mkdir()
    (run / "adapter.safetensors").write_bytes(b"")
    cfg["experts"] = [{"name": "a", "model": a}, {"name": "a-plugin", "model": a, "adapter_run": str(run), "answer": "loglik"}]
    cfg["experiment"]["aggregators"] = ["a"]
    with pytest.raises(Exception, match=r"experts\[1\]\.answer.*answer: letter for a plugin expert"):
        tandem.run(cfg, results_dir=tmp_path / "r", echo_log=False, plot=False)


def _loglik_by_hand(ckpt, inst, system=""):
    """Each option's log-likelihood per byte after the rendered stem + "Answer:", by transformers."""
    import torch
    import transformers
    lm = tandem.models.load(str(ckpt))
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(ckpt), torch_dtype=torch.float32).eval()
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": inst.stem}]
    prompt = lm.tokenizer.encode_for_model(lm.chat_template.render(msgs) + "Answer:")
    scores = []
    for opt in inst.options:
        cont = lm.tokenizer.encode(" " + opt)
        ids = torch.tensor([prompt + cont])
        with torch.no_grad():
            logp = hf(ids).logits[0].log_softmax(-1)
        total = sum(logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(cont))
        scores.append(total / max(1, len(opt.encode())))
    return torch.tensor(scores, dtype=torch.float64).log_softmax(0).tolist()


def test_loglik_answers_match_transformers_and_the_aggregator_picks_among_proposals(two_ckpts):
    a, b = map(str, two_ckpts)
    data = tandem.data_root() / "symbolic_moe"
    xs = _C.read_mc_instances(str(data / "medmcqa_test.jsonl"), "medmcqa", 3) + \
        _C.read_mc_instances(str(data / "mmlu_pro_test.jsonl"), "mmlu_pro", 2)
    assert all(len(x.options) == x.n_options and x.stem and x.stem in x.question for x in xs)
    skills = _C.SkillExtractor("type: embedding\nencoder: minilm-l6\nper_instance: 1\nvocabulary: [medicine, physics]\n")
    experts = [_C.ExpertSpec("a", a, answer="loglik"), _C.ExpertSpec("b", b, answer="loglik"),
               _C.ExpertSpec("a-med", a, "You are a doctor.", answer="loglik")]
    pipe = _C.MoePipeline(experts, skills, _C.ModelPool(0), k=2, batch_size=5)
    ans = pipe.answer_all(xs)
    for e, (ckpt, system) in enumerate([(a, ""), (b, ""), (a, "You are a doctor.")]):
        for i, x in enumerate(xs):
            want = _loglik_by_hand(ckpt, x, system)
            assert ans[e][i].logprobs == pytest.approx(want, abs=1e-4), (e, i)
            assert ans[e][i].choice == max(range(x.n_options), key=lambda k: want[k])
    # The loglik aggregator: its own most likely option among the recruited experts' proposals.
    tags = pipe.tag(xs)
    rec = [[1, 2]] * len(xs)
    final = pipe.aggregate(0, xs, rec, ans)
    for i, x in enumerate(xs):
        proposed = sorted({ans[1][i].choice, ans[2][i].choice})
        assert final[i].choice == max(proposed, key=lambda k: ans[0][i].logprobs[k])
    assert len(tags) == len(xs)


def test_options_and_stem_parsed_from_the_question_when_the_file_has_none(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"id": "x1", "question": "Which gas? The options are: (A) oxygen (B) carbon dioxide  (C) neon",
                             "gold_answer": "B"}) + "\n")
    (x,) = _C.read_mc_instances(str(f), "demo", 0)
    assert x.options == ["oxygen", "carbon dioxide", "neon"] and x.n_options == 3
    assert x.stem == "Which gas?" and x.gold == 1


def test_pipeline_steps_from_python(two_ckpts):
    """The method without the experiment harness: tag, answer, profile, recruit, choose, aggregate."""
    a, b = map(str, two_ckpts)
    data = tandem.data_root() / "symbolic_moe"
    val = _C.read_mc_instances(str(data / "medmcqa_train.jsonl"), "medmcqa", 6)
    test = _C.read_mc_instances(str(data / "medmcqa_test.jsonl"), "medmcqa", 4)
    skills = _C.SkillExtractor("type: embedding\nencoder: minilm-l6\nper_instance: 2\n"
                               "vocabulary: [medicine, anatomy, physics, law]\n")
    pool = _C.ModelPool(0)
    experts = [_C.ExpertSpec("a", a), _C.ExpertSpec("b", b), _C.ExpertSpec("a-med", a, "You are a doctor.")]
    pipe = _C.MoePipeline(experts, skills, pool, k=2)
    val_tags, test_tags = pipe.tag(val), pipe.tag(test)
    assert all(len(t.skills) == 2 for t in val_tags)
    va, ta = pipe.answer_all(val), pipe.answer_all(test)
    assert len(va) == 3 and all(len(x) == len(val) for x in va)
    # Batched by expert answers as each instance alone would be answered.
    alone = [pipe.answer_all([x]) for x in test]
    assert [[ta[e][i].choice for i in range(len(test))] for e in range(3)] == \
           [[alone[i][e][0].choice for i in range(len(test))] for e in range(3)]
    profiles = pipe.build_profiles(val, val_tags, va)
    for e, p in enumerate(profiles):  # strength = validation accuracy
        assert p.strength == pytest.approx(sum(va[e][i].choice == val[i].gold for i in range(len(val))) / len(val))
    rec = pipe.recruit(test, test_tags, profiles)
    assert all(len(r) == 2 and len(set(r)) == 2 for r in rec)
    val_rec = pipe.recruit(val, val_tags, profiles)
    choice = pipe.choose_aggregator([0, 1], val, val_rec, va)
    for c, acc in zip([0, 1], choice.validation):
        ans = pipe.aggregate(c, val, val_rec, va)
        assert acc == pytest.approx(sum(ans[i].choice == val[i].gold for i in range(len(val))) / len(val))
    assert choice.validation[[0, 1].index(choice.expert)] == max(choice.validation)
    final = pipe.aggregate(choice.expert, test, rec, ta)
    assert all(0 <= f.choice < t.n_options for f, t in zip(final, test))


def _moe_answers(run_dir):
    return [(r["id"], r["expert_answers"], r["final"]) for r in
            (json.loads(line) for line in open(Path(run_dir) / "per_instance.jsonl"))]


def test_launch_over_ranks_gives_the_single_process_answers(two_ckpts, tmp_path):
    """`tandem moe launch` over 2 and 3 processes (gloo): each rank holds some experts' models,
    answers are gathered on rank 0 and equal the single-process run's; a rank killed mid-run has
    its jobs answered on rank 0 (counted), never lost."""
    from tandem import moe

    a, b = map(str, two_ckpts)
    c = str(make_tiny_llama_checkpoint(tmp_path / "c", vocab_size=440))
    cfg = yaml.safe_load((REPO / "configs" / "moe" / "symbolic_moe.yaml").read_text())
    cfg["experts"] = [{"name": "a", "model": a}, {"name": "b", "model": b}, {"name": "c", "model": c},
                      {"name": "a-med", "model": a, "system": "You are a doctor.", "answer": "letter"}]
    cfg["experiment"].update(aggregators=["a", "c"], compare_instances=0, compare_executors=["batched_by_expert"])
    cfg["data"].update(validation_per_dataset=2, test_per_dataset=2)
    cfg["device"] = "cpu"
    path = tmp_path / "moe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    single = tandem.run(str(path), results_dir=tmp_path / "single", echo_log=False, plot=False)
    # compare_instances: 0 runs no comparison (nor reads its file: this test took 94 s when it did)
    assert single.metrics["execution"]["batched_by_expert"]["instances"] == 0
    want = _moe_answers(single.run_dir)
    two = moe.launch(str(path), 2, run_dir=str(tmp_path / "two"), timeout_s=120)
    assert _moe_answers(two["run_dir"]) == want
    assert sorted(set(two["placement"].values())) == [0, 1] and two["reassigned_jobs"] == 0 and all(two["jobs_per_rank"])
    three = moe.launch(str(path), 3, run_dir=str(tmp_path / "three"), timeout_s=30, env={"TANDEM_MOE_KILL_RANK_AT": "2:1"})
    assert _moe_answers(three["run_dir"]) == want
    assert sorted(three["placement"].values()) == [0, 1, 2]
    assert list(three["dead_ranks"]) == ["2"] and three["reassigned_jobs"] > 0
    assert three["accuracy"] == single.metrics["accuracy"]
