"""SIGKILL while a run writes results and checkpoints: no half-written file, ever."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from safetensors import safe_open

import tandem
from conftest import keyword_config, write_keyword_dataset


def check_whole(run_dir: Path) -> list[str]:
    """Parses every visible file completely; returns the names checked."""
    checked = []
    for f in sorted(run_dir.iterdir()):
        if f.name.startswith("."):
            continue  # a writer's temporary: never a final name
        text_like = f.suffix in {".json", ".csv", ".md", ".yaml", ".txt"}
        if text_like:
            data = f.read_bytes()
            assert data.endswith(b"\n"), f"{f.name} does not end with a newline: partial write"
        if f.suffix == ".json":
            json.loads(f.read_text())
        elif f.suffix == ".csv":
            df = pd.read_csv(f)
            assert len(df.columns) >= 2
        elif f.suffix == ".yaml":
            yaml.safe_load(f.read_text())
        elif f.suffix == ".safetensors":
            with safe_open(str(f), "pt") as st:
                for k in st.keys():
                    st.get_tensor(k)
            tandem.load_safetensors(str(f))
        checked.append(f.name)
    return checked


def test_sigkill_during_writes_leaves_only_whole_files(tmp_path):
    data = write_keyword_dataset(tmp_path / "kw.jsonl", 600)
    # Wide features make each checkpoint a few MB, so kills often land mid-write.
    cfg = keyword_config(data, tmp_path / "results", **{"features.buckets": 1 << 17, "classifier.type": "bag_mlp",
                                                        "classifier.hidden": 16, "train.epochs": 40,
                                                        "run.id": "victim"})
    cfg_path = tmp_path / "victim.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "results" / "kw" / "victim"
    rng = random.Random(0)
    mid_training = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "tandem", "run", str(cfg_path), "--no-plot"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 60
        while not (run_dir / "checkpoint.safetensors").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        names = check_whole(run_dir)
        if "curve.csv" in names:
            mid_training += 1
        assert "metrics.json" not in names  # unfinished runs are marked by its absence
        # Remove checkpoints between attempts so each kill again races the first writes too.
        if attempt < 5:
            (run_dir / "checkpoint.safetensors").unlink(missing_ok=True)
    assert mid_training >= 3
    # The same run id with another config is refused, naming what differs; nothing is touched.
    files = lambda: sorted((f.name, f.stat().st_mtime_ns) for f in run_dir.iterdir() if f.name != ".lock")
    before = files()
    with pytest.raises(tandem.ConfigError, match=r"run.id 'victim' names .* a run of a different config \(differs in: train.epochs\)"):
        tandem.run(cfg_path, train__epochs=2, plot=False, echo_log=False)
    assert files() == before
    # Rerunning the same command clears stale temporaries and finishes from the last checkpoint.
    res = tandem.run(cfg_path, plot=False, echo_log=False)
    assert res.run_dir == run_dir
    assert not [f for f in run_dir.iterdir() if ".tmp-" in f.name]  # no writer's temporary left
    check_whole(run_dir)
