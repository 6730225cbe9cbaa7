"""FedIns federation: FedAvg against a hand-written PyTorch FedAvg on HF transformers' BERT
layers, simulation == torch.distributed, client and server kills, partitions, pool choice and
per-entry aggregation by hand."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tandem
import tandem.fed as tf

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / "models" / "minilm-l6"
pytestmark = pytest.mark.skipif(not MINILM.exists(), reason="run scripts/setup.sh (installs models)")

MASK64 = (1 << 64) - 1


def tiny_config(tmp_path: Path, method: str = "fedins", **fed) -> str:
    """4 clients on 400 real MMLU-Pro questions, 32 tokens, 3 rounds of 2 local steps."""
    f = {"rounds": 3, "clients_per_round": 3, "local_steps": 2, "batch_size": 8, "eval_every": 1, **fed}
    text = (f"extends: {ROOT / 'configs' / 'fedins' / (method + '.yaml')}\n"
            "device: cpu\n"
            "data: {max_examples: 400}\n"
            f"model: {{max_tokens: 32, cache_dir: '{tmp_path / 'cache'}'}}\n"
            "partition: {clients: 4, min_examples: 10, alpha: 1.0}\n"
            f"fed: {json.dumps(f)}\n")
    p = tmp_path / f"{method}.yaml"
    p.write_text(text)
    return str(p)


def splitmix(a: int, b: int) -> int:  # the seed mixer federation.cpp documents
    z = (a * 0x9E3779B97F4A7C15 + b + 0x632BE59BD9B4E019) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


# SGD must agree to 1e-6. AdamW divides by sqrt(v): on SSF channels whose gradient is ~0,
# float rounding noise (1e-9) becomes an update of order lr, so it is held to 1e-4.
@pytest.mark.parametrize("optimizer,lr,bound", [("sgd", 0.05, 1e-6), ("adamw", 0.003, 1e-4)])
def test_fedavg_equals_hand_written_pytorch_fedavg_on_hf_bert(tmp_path, optimizer, lr, bound):
    """3 rounds of tandem FedAvg vs plain PyTorch: HF BertLayer modules with SSF forward hooks,
    torch.optim, a weighted mean by hand. Same inputs (features, partition, sampling)."""
    from transformers import BertModel

    cfg = tiny_config(tmp_path, "fedavg", optimizer=optimizer, lr=lr, momentum=0.9 if optimizer == "sgd" else 0.0)
    fed = tf.Federation(cfg)
    names = fed.state_names()
    assert names == ["ssf", "head.weight", "head.bias"]
    feats = fed.train_features()
    parts = fed.partition()
    hf = BertModel.from_pretrained(str(MINILM)).eval()
    for p in hf.parameters():
        p.requires_grad_(False)
    H, I = 384, 1536
    top = [hf.encoder.layer[4], hf.encoder.layer[5]]
    # SSF layout: per layer, sites attn_out (H), ffn_hidden (I), ffn_out (H), block_out (H); gamma then beta.
    sizes = [H, I, H, H]

    def forward(ssf, head_w, head_b, lower, mask):
        off = 0
        hooks = []

        def ssf_at(module, c):
            nonlocal off
            o = off
            off += 2 * c
            hooks.append(module.register_forward_hook(lambda m, i, out: out * ssf[o:o + c] + ssf[o + c:o + 2 * c]))

        for layer in top:
            ssf_at(layer.attention.output.dense, sizes[0])
            ssf_at(layer.intermediate.dense, sizes[1])
            ssf_at(layer.output.dense, sizes[2])
            ssf_at(layer.output.LayerNorm, sizes[3])
        assert off == ssf.numel()
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        h = lower
        try:
            for layer in top:
                h = layer(h, attention_mask=ext)
                h = h[0] if isinstance(h, tuple) else h
        finally:
            for k in hooks:
                k.remove()
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1)
        return pooled @ head_w.t() + head_b

    glob = [t.clone() for t in fed.global_state()]
    s = 0  # the config's seed
    for rnd in range(1, 4):
        new_states, sizes_n = [], []
        for c in fed.sample_clients(rnd):
            rows = torch.tensor(parts[c])
            params = [t.clone().requires_grad_(True) for t in glob]
            opt = (torch.optim.SGD(params, lr=lr, momentum=0.9) if optimizer == "sgd"
                   else torch.optim.AdamW(params, lr=lr, weight_decay=0.0))
            g = torch.Generator().manual_seed(splitmix(splitmix(s, rnd), c + 1))
            perm, pos = None, len(rows)
            for _ in range(2):
                idx = []
                while len(idx) < min(8, len(rows)):
                    if pos >= len(rows):
                        perm, pos = torch.randperm(len(rows), generator=g), 0
                    take = min(min(8, len(rows)) - len(idx), len(rows) - pos)
                    idx += perm[pos:pos + take].tolist()
                    pos += take
                b = rows[idx]
                logits = forward(params[0], params[1], params[2], feats["lower"][b], feats["mask"][b])
                loss = torch.nn.functional.cross_entropy(logits, feats["label"][b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            new_states.append([p.detach() for p in params])
            sizes_n.append(len(rows))
        total = sum(sizes_n)
        glob = [sum(st[i] * (n / total) for st, n in zip(new_states, sizes_n)) for i in range(len(glob))]

    fed.run()
    ours = fed.global_state()
    for n, a, b in zip(names, ours, glob):
        diff = (a - b).abs().max().item()
        print(f"{optimizer} {n}: max |tandem - PyTorch FedAvg| = {diff:.2e}")
        assert diff < bound, f"{n}: max |tandem - PyTorch FedAvg| = {diff}"
    assert (ours[0] - fed_initial_ssf(fed)).abs().max() > 1e-4  # SSF really trained


def fed_initial_ssf(fed):
    ident = torch.zeros_like(fed.global_state()[0])
    off = 0
    for _ in range(2):
        for c in (384, 1536, 384, 384):
            ident[off:off + c] = 1
            off += 2 * c
    return ident


def run_workers(cfg: str, run_dir: Path, clients: int, env: dict | None = None, timeout: float = 240):
    """Starts rank 0..clients as `tandem fed worker` processes; returns the server's rc."""
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    procs, logs = [], []
    run_dir.mkdir(parents=True, exist_ok=True)
    for rank in range(clients + 1):
        # Output to files: a pipe nobody reads until the end could fill and block a worker.
        logs.append(run_dir / f"rank{rank}.{len(list(run_dir.glob(f'rank{rank}.*')))}.log")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tandem", "fed", "worker", cfg, "--rank", str(rank), "--client-ranks", str(clients),
             "--master", f"127.0.0.1:{port}", "--run-dir", str(run_dir), "--timeout", "30"],
            env={**os.environ, **(env or {})}, stdout=open(logs[-1], "w"), stderr=subprocess.STDOUT))
    rc = procs[0].wait(timeout=timeout)
    for p in procs[1:]:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    return rc, logs[0].read_text()


def server_state(run_dir: Path) -> list[torch.Tensor]:
    st = tandem.load_safetensors(str(run_dir / "server" / "server_state.safetensors"))
    tensors = st[0] if isinstance(st, tuple) else st
    return tensors


@pytest.fixture(scope="module")
def fedins_sim(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fedins")
    cfg = tiny_config(tmp, "fedins")
    fed = tf.Federation(cfg)  # also fills the feature cache the workers share
    records = fed.run()
    return tmp, cfg, fed, records


def test_distributed_equals_simulation_with_three_client_processes(fedins_sim):
    tmp, cfg, fed, records = fedins_sim
    rc, log = run_workers(cfg, tmp / "dist", clients=3)
    assert rc == 0, log
    st = server_state(tmp / "dist")
    for name, sim in zip(fed.state_names(), fed.global_state()):
        assert torch.allclose(st[name], sim, atol=1e-6, rtol=0), name
    rep = json.loads((tmp / "dist" / "report.json").read_text())
    assert rep["dropped"] == [] and rep["runtime"].startswith("torch.distributed")
    assert [r["accuracy"] for r in rep["rounds"]] == pytest.approx([r.accuracy for r in records], abs=1e-9)


def test_killed_client_is_dropped_and_the_round_completes(fedins_sim):
    tmp, cfg, fed, _ = fedins_sim
    victim_rank, rnd = 2, 2
    clients = fed.sample_clients(rnd)
    assert any(1 + c % 3 == victim_rank for c in clients), "the victim must host a client sampled in round 2"
    rc, log = run_workers(cfg, tmp / "kill", clients=3, env={tf._KILL_ENV: f"{victim_rank}:{rnd}"})
    assert rc == 0, log
    rep = json.loads((tmp / "kill" / "report.json").read_text())
    assert len(rep["rounds"]) == 3
    r2 = rep["rounds"][1]
    lost = [c for c in clients if 1 + c % 3 == victim_rank]
    assert r2["clients_ok"] == r2["clients_sampled"] - len(lost)
    assert any(f"client {lost[0]}: process rank {victim_rank}" in d for d in rep["dropped"]), rep["dropped"]
    assert "Dropped:" in (tmp / "kill" / "rounds.md").read_text()


def test_killed_server_resumes_from_its_last_round(fedins_sim):
    tmp, cfg, fed, records = fedins_sim
    rc, _ = run_workers(cfg, tmp / "resume", clients=3, env={tf._KILL_ENV: "0:3"})
    assert rc == -9  # SIGKILL at the start of round 3
    st = tandem.load_safetensors(str(tmp / "resume" / "server" / "server_state.safetensors"))
    meta = st[1] if isinstance(st, tuple) else {}
    assert meta.get("round") == "2"
    rc, log = run_workers(cfg, tmp / "resume", clients=3)
    assert rc == 0, log
    final = server_state(tmp / "resume")
    for name, sim in zip(fed.state_names(), fed.global_state()):
        assert torch.allclose(final[name], sim, atol=1e-6, rtol=0), name
    rep = json.loads((tmp / "resume" / "report.json").read_text())
    assert [r["round"] for r in rep["rounds"]] == [1, 2, 3]


def test_pool_choice_is_top_k_cosine_and_instance_ssf_is_their_mean(fedins_sim):
    _, _, fed, _ = fedins_sim
    st = dict(zip(fed.state_names(), fed.global_state()))
    q = fed.test_queries()[:20]
    sim = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(st["keys"], dim=1).t()
    want = sim.topk(3, dim=1).indices
    got = fed.test_choices(20)
    assert torch.equal(got.sort(1).values, want.sort(1).values)


def test_fedavg_and_fedins_usage_aggregation_by_hand(tmp_path):
    fed = tf.Federation(tiny_config(tmp_path, "fedins", rounds=1), ["strategy.entry_weight=usage"])
    names, g = fed.state_names(), fed.global_state()
    M = g[names.index("pool")].shape[0]
    ups = []
    for c, (n, fill) in enumerate([(30, 1.0), (10, 3.0)]):
        u = tf.FedClientUpdate()
        u.client, u.num_examples, u.ok = c, n, True
        u.state = [torch.full_like(t, fill) for t in g]
        usage = torch.zeros(M, dtype=torch.int64)
        usage[0] = 4 if c == 0 else 1      # entry 0: both chose it (4 vs 1)
        if c == 1:
            usage[1] = 2                   # entry 1: only client 1
        u.usage = usage
        ups.append(u)
    bad = tf.FedClientUpdate()
    bad.client, bad.ok, bad.error = 2, False, "gone"
    fed.aggregate(ups + [bad])
    new = dict(zip(names, fed.global_state()))
    old = dict(zip(names, g))
    # head: example-weighted mean (30*1 + 10*3) / 40 = 1.5
    assert torch.allclose(new["head.weight"], torch.full_like(new["head.weight"], 1.5))
    pool = new["pool"]
    assert torch.allclose(pool[0], torch.full_like(pool[0], (4 * 1.0 + 1 * 3.0) / 5))
    assert torch.allclose(pool[1], torch.full_like(pool[1], 3.0))
    assert torch.equal(pool[2], old["pool"][2])  # nobody chose entry 2: kept


def test_dirichlet_partition_covers_every_example_once_and_alpha_controls_skew(tmp_path):
    fed_lo = tf.Federation(tiny_config(tmp_path, "fedavg"), ["partition.alpha=0.1", "partition.min_examples=5"])
    fed_hi = tf.Federation(tiny_config(tmp_path, "fedavg"), ["partition.alpha=100", "partition.min_examples=5"])
    for fed in (fed_lo, fed_hi):
        flat = sorted(i for p in fed.partition() for i in p)
        assert flat == list(range(len(flat)))
        assert all(len(p) >= 5 for p in fed.partition())
    share = lambda f: sum(c["largest_label_share"] for c in json.loads(f.describe())["partition"]) / 4  # noqa: E731
    assert share(fed_lo) > share(fed_hi) + 0.2


def test_bad_partition_and_strategy_keys_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="strategy.type"):
        tf.Federation(tiny_config(tmp_path, "fedavg"), ["strategy.type=fedmedian"])
    with pytest.raises(ValueError, match="min_examples"):
        tf.Federation(tiny_config(tmp_path, "fedavg"), ["partition.min_examples=500"])


def test_resume_after_a_config_change_is_refused_naming_the_keys(tmp_path):
    """A server checkpoint records the config that wrote it: changing a file pulled in by
    `extends:` and relaunching must not "resume" (and report) the old run."""
    base = tmp_path / "base.yaml"
    base.write_text(Path(tiny_config(tmp_path, "fedavg", rounds=2)).read_text())
    top = tmp_path / "top.yaml"
    top.write_text(f"extends: {base}\n")
    before = tf.default_run_dir(str(top), [], 3)
    tf.Federation(str(top)).run(checkpoint_dir=str(tmp_path / "server"))
    base.write_text(base.read_text().replace('"local_steps": 2', '"local_steps": 3'))
    assert tf.default_run_dir(str(top), [], 3) != before  # the launch directory follows the resolved config
    with pytest.raises(RuntimeError, match=r"server_state.safetensors: the server checkpoint was written by a different "
                                           r"config \(differs in: fed.local_steps\)"):
        tf.Federation(str(top)).run(checkpoint_dir=str(tmp_path / "server"))


def test_a_run_directory_serves_one_launch_at_a_time(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    held = tf._lock_run_dir(out)
    with pytest.raises(RuntimeError, match=rf"{out} is in use by another tandem fed server \(pid {os.getpid()}\)"):
        tf._lock_run_dir(out)
    held.close()
    tf._lock_run_dir(out).close()  # released with its holder
