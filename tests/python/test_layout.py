"""The structure the build enforces: layers include only downward (a back edge does not compile),
and every config documents every key it sets (`tandem config --explain`)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

import tandem
from conftest import REPO, run_cli

LAYERS = REPO / "build" / "layers"
# Units by level, as cmake/tandem_layers.cmake declares them.
LEVELS = {"core": 0, "text": 1, "models": 2, "data": 3, "train": 4, "peft": 5,
          "spa": 6, "collab": 6, "fed": 6, "moe": 7, "experiments": 8}  # moe's plugin experts are spa's SideAdaptedLM
FOLDERS = {"core": ["core"], "text": ["text"], "models": ["models"], "data": ["data", "eval"], "train": ["train"],
           "peft": ["peft"], "spa": ["spa"], "collab": ["collab"], "fed": ["fed"], "moe": ["moe"],
           "experiments": ["experiments"]}


def compile_include(unit: str, header: str, tmp_path):
    src = tmp_path / "probe.cpp"
    src.write_text(f'#include "{header}"\nint main() {{ return 0; }}\n')
    cxx = shutil.which("c++") or shutil.which("g++")
    return subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-I", str(LAYERS / unit), str(src)],
                          capture_output=True, text=True, timeout=120)


def test_each_layer_sees_only_itself_and_lower_layers():
    for unit, level in LEVELS.items():
        seen = sorted(p.name for p in (LAYERS / unit / "tandem").iterdir())
        want = sorted(f for u, lv in LEVELS.items() if lv < level or u == unit for f in FOLDERS[u])
        assert seen == want, unit


@pytest.mark.parametrize("unit,header", [("core", "tandem/models/causal_lm.h"),     # core -> models
                                         ("text", "tandem/models/generation.h"),   # the old text <-> models cycle
                                         ("models", "tandem/spa/router.h"),         # models -> a system
                                         ("collab", "tandem/fed/strategy.h")])      # a system -> a sibling system
def test_an_upward_or_sideways_include_does_not_compile(unit, header, tmp_path):
    proc = compile_include(unit, header, tmp_path)
    assert proc.returncode != 0
    assert f"{header}: No such file or directory" in proc.stderr


def test_a_downward_include_compiles(tmp_path):
    proc = compile_include("models", "tandem/core/hash.h", tmp_path)  # the positive control
    assert proc.returncode == 0, proc.stderr


def flat_keys(node, prefix=""):
    """Dotted keys of every scalar or list a config sets (list items of mappings: key[].field)."""
    out = set()
    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flat_keys(v, key + ".")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            out.add(key)
            for x in v:
                out |= {key + "[]." + f for f in x}
        else:
            out.add(key)
    return out


@pytest.mark.parametrize("cfg", ["configs/spa/xsum_spa.yaml", "configs/spa/sciq_lst.yaml", "configs/minions/qasper_minions.yaml",
                                 "configs/fedins/fedins.yaml", "configs/moe/symbolic_moe.yaml", "configs/default.yaml",
                                 "configs/text_classification/mmlu_subjects.yaml"])
def test_explain_documents_every_key_the_config_sets(cfg):
    table = tandem.explain_config(REPO / cfg)
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0]] = cells
    for key, (_, typ, default, _, doc) in rows.items():
        assert typ and doc, f"{cfg}: {key} lacks a type or a doc"
        if typ not in ("section", "list"):
            assert default, f"{cfg}: {key} lacks a default"
    resolved = tandem.load_config(REPO / cfg)
    undocumented = sorted(k for k in flat_keys(resolved) - {"extends"} if k not in rows)
    assert not undocumented, f"{cfg}: set but not documented: {undocumented}"


def test_cli_config_explain():
    proc = run_cli("config", "--explain", "configs/spa/xsum_spa.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "| adapter.rank | integer in [1, 65536] | 64 | 64 | width of the plugin's state and of the logit shift |" in proc.stdout


@pytest.mark.parametrize("system_cfg,old,new", [
    ("configs/spa/xsum_spa.yaml", "experiment.model=smollm2-135m", "experiment.model is now model.path"),
    ("configs/spa/xsum_spa.yaml", "experiment.task.type=xsum", "experiment.task is now task"),
    ("configs/moe/symbolic_moe.yaml", "experiment.models.memory_budget_gb=1", "experiment.models is now pool"),
    ("configs/fedins/fedins.yaml", "backbone.max_tokens=32", "backbone is now model"),
    ("configs/fedins/fedins.yaml", "model.type=ssf_pool", "model.type is now head.type"),
])
def test_old_config_keys_are_refused_with_the_new_key(system_cfg, old, new, tmp_path):
    with pytest.raises(tandem.ConfigError, match=re.escape(new)):
        tandem.run(REPO / system_cfg, [old], results_dir=tmp_path, echo_log=False, plot=False)
    assert not any(tmp_path.iterdir()), "nothing is written"
