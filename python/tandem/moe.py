"""Symbolic-MoE with its expert pool spread over processes, on torch.distributed.

The experiment is the one ``tandem run configs/moe/symbolic_moe.yaml`` runs; only its executor
changes. Rank 0 runs the experiment with ``executor.type=distributed``, an executor this module
registers: the recruited jobs of each call are split by the rank that holds their expert's model
(models are placed once, largest first, on the least-loaded rank within ``pool.memory_budget_gb``
per rank), sent as JSON, answered there by the same batched-by-model executor, and gathered on
rank 0, which answers its own share meanwhile. This is the Transport seam of ``tandem.fed``: one
method, two runtimes.

    $ tandem moe launch configs/moe/symbolic_moe.yaml --ranks 3      # one machine, 3 processes
    $ tandem moe worker CFG --rank R --world N --master HOST:PORT     # per machine (torchrun-style)

A rank that dies or goes silent mid-run is never asked again; its jobs (and later ones for its
models) are answered on rank 0 instead, and the report counts them. Answers are never missing.
gloo carries the messages (JSON bytes); the models run on the device the config names.
"""
from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist

from . import _C
from ._ranks import free_port, run_ranks

_WORK, _STOP = 1, 0
# Fault injection for tests: "RANK:CALL" makes that worker SIGKILL itself on receiving its
# CALL-th request (0-based): a real kill -9 mid-run.
_KILL_ENV = "TANDEM_MOE_KILL_RANK_AT"


def _send_json(obj: str, dst: int) -> None:
    data = torch.frombuffer(bytearray(obj.encode()), dtype=torch.uint8)
    dist.send(torch.tensor([_WORK, data.numel()], dtype=torch.int64), dst=dst)
    dist.send(data, dst=dst)


def _recv_json(src: int, timeout: datetime.timedelta | None = None) -> tuple[int, str]:
    head = torch.zeros(2, dtype=torch.int64)
    work = dist.irecv(head, src=src)
    work.wait(timeout) if timeout else work.wait()
    if int(head[0]) == _STOP:
        return _STOP, ""
    data = torch.empty(int(head[1]), dtype=torch.uint8)
    work = dist.irecv(data, src=src)
    work.wait(timeout) if timeout else work.wait()
    return _WORK, bytes(data.numpy()).decode()


class Dispatcher:
    """Rank 0's executor transport: place models on ranks, split each request by rank, gather."""

    def __init__(self, world: int, budget_bytes: int, pool, timeout_s: float):
        self.world, self.budget, self.pool = world, budget_bytes, pool
        self.timeout = datetime.timedelta(seconds=timeout_s)
        self.placement: dict[str, int] = {}
        self.load = [0] * world
        self.dead: dict[int, str] = {}
        self.reassigned_jobs = 0
        self.jobs_per_rank = [0] * world

    def _place(self, models: list[str]) -> None:
        new = sorted({m for m in models if m not in self.placement}, key=lambda m: (-_C.estimate_model_bytes(m), m))
        for m in new:
            size = _C.estimate_model_bytes(m)
            fits = [r for r in range(self.world) if self.budget == 0 or self.load[r] + size <= self.budget]
            if not fits:
                raise RuntimeError(f"tandem moe: model {m} ({size / 2**30:.2f} GiB) fits no rank's memory budget "
                                   f"({self.budget / 2**30:.2f} GiB each, loads {self.load}); raise pool.memory_budget_gb or --ranks")
            r = min(fits, key=lambda r: (self.load[r], r))
            self.placement[m] = r
            self.load[r] += size

    def __call__(self, request: str) -> str:
        req = json.loads(request)
        experts, jobs = req["experts"], req["jobs"]
        self._place([e["model"] for e in experts])
        share: dict[int, list[int]] = defaultdict(list)
        for k, j in enumerate(jobs):
            r = self.placement[experts[j["expert"]]["model"]]
            share[0 if r in self.dead else r].append(k)
        answers: list = [None] * len(jobs)

        def sub(idx):
            return json.dumps({"batch_size": req["batch_size"], "experts": experts, "jobs": [jobs[k] for k in idx]})

        def fill(idx, reply):
            got = json.loads(reply)["answers"]
            if len(got) != len(idx):
                raise RuntimeError(f"{len(got)} answers for {len(idx)} jobs")
            for k, a in zip(idx, got):
                answers[k] = a

        remote = [r for r in share if r != 0]
        for r in remote:  # gloo sends complete in the background; rank 0 answers its share meanwhile
            try:
                _send_json(sub(share[r]), r)
            except RuntimeError as e:
                self.dead[r] = f"send failed: {str(e).splitlines()[0][:200]}"
        if share.get(0):
            fill(share[0], _C.moe_answer_jobs_json(sub(share[0]), self.pool))
            self.jobs_per_rank[0] += len(share[0])
        for r in remote:
            try:
                if r in self.dead:
                    raise RuntimeError(self.dead[r])
                _, reply = _recv_json(r, self.timeout)
                fill(share[r], reply)
                self.jobs_per_rank[r] += len(share[r])
            except RuntimeError as e:
                # Never ask it again; its jobs are answered here (a late reply would land in a
                # later call's buffers, so a silent rank is dead too).
                self.dead.setdefault(r, str(e).splitlines()[0][:200])
                print(f"tandem moe: rank {r} failed ({self.dead[r]}); answering its {len(share[r])} jobs on rank 0",
                      file=sys.stderr, flush=True)
                fill(share[r], _C.moe_answer_jobs_json(sub(share[r]), self.pool))
                self.reassigned_jobs += len(share[r])
                self.jobs_per_rank[0] += len(share[r])
        return json.dumps({"answers": answers})

    def stop(self) -> None:
        for r in range(1, self.world):
            if r not in self.dead:
                try:
                    dist.send(torch.tensor([_STOP, 0], dtype=torch.int64), dst=r)
                except RuntimeError:
                    pass


def _serve(rank: int, pool) -> None:
    kill = os.environ.get(_KILL_ENV, "")
    kill_rank, kill_call = (int(x) for x in kill.split(":")) if kill else (-1, -1)
    calls = 0
    while True:
        cmd, request = _recv_json(0)
        if cmd == _STOP:
            return
        if rank == kill_rank and calls == kill_call:
            os.kill(os.getpid(), signal.SIGKILL)
        calls += 1
        _send_json(_C.moe_answer_jobs_json(request, pool), 0)


def worker(config: str, overrides: Sequence[str], rank: int, world: int, master: str, run_dir: str,
           timeout_s: float = 600.0) -> None:
    """One process: rank 0 runs the experiment and dispatches; the others answer jobs."""
    from .config import load_config

    cfg = load_config(config, list(overrides))
    budget = int(float(cfg.get("pool", {}).get("memory_budget_gb", 0)) * 2**30)
    device, dtype = str(cfg.get("device", "auto")), str(cfg.get("dtype", "float32"))
    dist.init_process_group("gloo", init_method=f"tcp://{master}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=max(timeout_s, 60)))
    pool = _C.ModelPool(budget, device=device, dtype=dtype)
    if rank != 0:
        try:
            _serve(rank, pool)
        except RuntimeError as e:  # rank 0 went away: nothing left to do
            print(f"tandem moe: rank {rank} stops: {str(e).splitlines()[0]}", file=sys.stderr)
        sys.stdout.flush()
        os._exit(0)
    import tandem

    disp = Dispatcher(world, budget, pool, timeout_s)
    _C.moe_register_transport_executor("distributed", disp)
    t0 = time.time()
    try:
        res = tandem.run(config, [*overrides, "executor.type=distributed"], results_dir=run_dir, echo_log=False, plot=False)
    finally:
        disp.stop()
    report = {"run_dir": str(res.run_dir), "ranks": world, "wall_seconds": time.time() - t0,
              "placement": {Path(m).name: r for m, r in disp.placement.items()}, "jobs_per_rank": disp.jobs_per_rank,
              "dead_ranks": disp.dead, "reassigned_jobs": disp.reassigned_jobs, "accuracy": res.metrics.get("accuracy")}
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "launch_report.json").write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip the group's teardown: with a dead peer it can block; everything is written


def launch(config: str, ranks: int, overrides: Sequence[str] = (), run_dir: str | None = None,
           timeout_s: float = 600.0, env: dict | None = None) -> dict:
    """Starts `ranks` processes on this machine (rank 0 runs the experiment); returns its report."""
    if ranks < 1:
        raise ValueError("tandem moe launch: --ranks must be at least 1")
    out = Path(run_dir) if run_dir else Path("results") / "moe_launch" / f"{Path(config).stem}-ranks{ranks}-{int(time.time())}"
    master = f"127.0.0.1:{free_port()}"
    ranks_args = []
    for rank in range(ranks):
        args = ["moe", "worker", str(config), "--rank", str(rank), "--world", str(ranks), "--master", master,
                "--run-dir", str(out), "--timeout", str(timeout_s)]
        for o in overrides:
            args += ["--set", o]
        ranks_args.append(args)
    rc = run_ranks(ranks_args, env)
    if rc != 0 or not (out / "launch_report.json").exists():
        raise RuntimeError(f"tandem moe launch: rank 0 exited with status {rc}; see its output above")
    return json.loads((out / "launch_report.json").read_text())
