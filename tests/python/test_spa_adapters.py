"""The SPA grid's side networks against hand-written PyTorch references of the same modules:
same weights in, same outputs out (1e-5).

- `lst` with `init: pruned`: the reference prunes the transformers model's own weights by L1
  magnitude itself (hidden channels over all layers, heads and MLP channels per layer), builds the
  side network (ladder gates, RMSNorm, RoPE attention, SwiGLU) and runs it on the backbone's real
  hidden states, with right padding. Nothing is taken from tandem but the inputs.
- `spa_ladder`: the authors' per-position ladder, with tandem's (random) initial parameters.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tandem import _C

transformers = pytest.importorskip("transformers")
T = torch


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A random GQA Llama (8 query / 2 key-value heads) saved by transformers, loaded by tandem."""
    torch.manual_seed(3)
    cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=160, num_hidden_layers=4,
                                   num_attention_heads=8, num_key_value_heads=2, rope_theta=5000.0, rms_norm_eps=1e-5)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # visible norm weights, so pruning them is tested too
        for n, p in hf.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    path = Path(tmp_path_factory.mktemp("lst")) / "tiny-llama"
    hf.save_pretrained(path)
    ids = torch.randint(0, 96, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0  # right padding, as in training
    captured = {}
    hook = hf.model.norm.register_forward_hook(lambda mod, args, out: captured.setdefault("pre_norm", args[0]))
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hook.remove()
    # The ladder reads the raw residual stream: the last state is the final norm's input (whether
    # hidden_states[-1] is taken before or after the norm differs across transformers versions).
    states = list(out.hidden_states[:-1]) + [captured["pre_norm"]]
    lm = _C.load_causal_lm(str(path), "cpu", "float32")
    return hf, lm, [s.float() for s in states], mask.bool()


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta):
    hd = x.shape[-1]
    inv = theta ** (-torch.arange(0, hd, 2).float() / hd)
    ang = pos.float()[..., None] * inv
    emb = torch.cat([ang, ang], -1)  # [B, T, hd]: one head at a time
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()


def top(imp, k):
    return torch.sort(torch.topk(imp, k).indices).values


def reference_pruned_lst(hf, states, key_mask, r, every):
    """LST (Sung et al. 2022) with the side network pruned from the backbone, written from scratch."""
    cfg = hf.config
    H, L, nh, nkv = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads
    hd, eps, theta = H // nh, cfg.rms_norm_eps, 5000.0  # the fixture's rope_theta (transformers 5 nests it)
    d, heads, ffn = H // r, max(1, nh // r), cfg.intermediate_size // r
    W = {n: p.detach().float() for n, p in hf.named_parameters()}
    lw = lambda i, n: W[f"model.layers.{i}.{n}.weight"]
    imp = torch.zeros(H)
    for i in range(L):
        for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"):
            imp += lw(i, n).abs().sum(0)
        for n in ("self_attn.o_proj", "mlp.down_proj"):
            imp += lw(i, n).abs().sum(1)
    keep = top(imp, d)
    read = list(range(L, 0, -every))[::-1]
    s = states[0][..., keep]  # the embedding projection starts as the channel selection
    B, Tn = key_mask.shape
    pos = (key_mask.long().cumsum(1) - 1).clamp(min=0)
    allowed = torch.ones(Tn, Tn).tril().bool()[None] & key_mask[:, None, :]
    allowed = allowed | torch.eye(Tn).bool()[None]
    for l in read:
        src = l - 1
        s = 0.5 * states[l][..., keep] + 0.5 * s  # gate sigmoid(0) = 1/2
        q_w, k_w, v_w, o_w = (lw(src, f"self_attn.{n}") for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
        head_imp = q_w.view(nh, hd, H).abs().sum((1, 2)) + o_w.view(H, nh, hd).abs().sum((0, 2))
        hs = top(head_imp, heads)
        group = nh // nkv
        h = rms(s, lw(src, "input_layernorm")[keep], eps)
        outs = []
        for hh in hs.tolist():
            q = rope(h @ q_w[hh * hd:(hh + 1) * hd][:, keep].T, pos, theta)
            kv = hh // group
            k = rope(h @ k_w[kv * hd:(kv + 1) * hd][:, keep].T, pos, theta)
            v = h @ v_w[kv * hd:(kv + 1) * hd][:, keep].T
            att = (q @ k.transpose(-1, -2)) / hd ** 0.5
            att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
            outs.append(att @ v)
        o_cols = torch.cat([o_w[keep][:, hh * hd:(hh + 1) * hd] for hh in hs.tolist()], 1)
        s = s + torch.cat(outs, -1) @ o_cols.T
        g_w, u_w, dn_w = lw(src, "mlp.gate_proj"), lw(src, "mlp.up_proj"), lw(src, "mlp.down_proj")
        ch = top(g_w.abs().sum(1) + u_w.abs().sum(1) + dn_w.abs().sum(0), ffn)
        h2 = rms(s, lw(src, "post_attention_layernorm")[keep], eps)
        s = s + (torch.nn.functional.silu(h2 @ g_w[ch][:, keep].T) * (h2 @ u_w[ch][:, keep].T)) @ dn_w[keep][:, ch].T
    out = torch.zeros(B, Tn, H)
    out[..., keep] = rms(s, W["model.norm.weight"][keep], eps)
    return out, s


@pytest.mark.parametrize("r,every", [(2, 1), (4, 2)])
def test_pruned_lst_matches_a_pytorch_reference(backbone, r, every):
    hf, lm, states, key_mask = backbone
    read = [0] + list(range(len(states) - 1, 0, -every))[::-1]
    got = _C._testing.adapter_forward(lm, f"type: lst\nreduction: {r}\nevery: {every}\ninit: pruned\n",
                                      [states[l] for l in read], states[-1], key_mask)
    assert got["layers_read"] == read
    want_hidden, want_side = reference_pruned_lst(hf, states, key_mask, r, every)
    real = key_mask  # padded positions are don't-care
    assert (got["features"][real] - want_side[real]).abs().max() < 1e-5 * max(1.0, want_side.abs().max())
    assert (got["hidden"][real] - want_hidden[real]).abs().max() < 1e-5 * max(1.0, want_hidden.abs().max())
    # The untrained pruned side network is not the random one: its output is the backbone's scale.
    rand = _C._testing.adapter_forward(lm, f"type: lst\nreduction: {r}\nevery: {every}\ninit: random\n",
                                       [states[l] for l in read], states[-1], key_mask)
    assert not torch.allclose(rand["hidden"], got["hidden"])


def test_pruned_lst_refuses_unknown_importance(backbone):
    _, lm, states, key_mask = backbone
    with pytest.raises(Exception, match="importance"):
        _C._testing.adapter_forward(lm, "type: lst\nimportance: fisher\n", states, states[-1], key_mask)


def test_spa_ladder_matches_a_pytorch_reference(backbone):
    _, lm, states, _ = backbone
    got = _C._testing.adapter_forward(lm, "type: spa_ladder\nwidth: 8\nbottleneck: 4\n", states, states[-1], seed=7)
    p = got["params"]
    assert got["layers_read"] == list(range(len(states)))  # the embeddings and every layer
    assert not p["rung_out"].any()  # rungs start as identity
    # Give the zero-initialised rung outputs a value so the bottleneck path is exercised too.
    rung = torch.randn_like(p["rung_out"]) * 0.3
    got = _C._testing.adapter_forward(lm, "type: spa_ladder\nwidth: 8\nbottleneck: 4\n", states, states[-1], seed=7,
                                      overrides={"rung_out": rung})
    assert torch.equal(got["params"]["in"], p["in"]) and torch.equal(got["params"]["rung_out"], rung)

    def unit(x):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def ladder(p):
        s = unit(states[0]) @ p["in"].T
        for i in range(len(states) - 1):
            s = s + torch.relu(s @ p["rung_in"][i].T) @ p["rung_out"][i].T + unit(states[i + 1]) @ p["down"][i].T
        return s @ p["out"].T, s

    hidden, side = ladder(got["params"])
    assert (got["hidden"] - hidden).abs().max() < 1e-5 * max(1.0, hidden.abs().max())
    assert (got["features"] - side).abs().max() < 1e-5
    # With the rungs at zero the output differs: the rung path is really exercised.
    assert not torch.allclose(ladder(p)[0], hidden)
