"""FedIns federation: the in-process simulation and real federation over torch.distributed.

Both runtimes drive the same C++ ``Federation`` (data, clients, model, strategy, round loop);
they differ only in the *transport* that carries the global state to clients and their updates
back. Over torch.distributed (gloo), rank 0 is the server and ranks 1..N host the clients
(client ``c`` lives on rank ``1 + c % N``), so N processes can serve more federated clients.

    >>> import tandem.fed
    >>> fed = tandem.fed.Federation("configs/fedins/fedins.yaml", ["fed.rounds=2"])
    >>> records = fed.run()                       # simulation
    $ tandem fed launch configs/fedins/fedins.yaml --clients 3   # one machine, 4 processes

A client process that dies is dropped from the round it was in (and from later rounds); the
server writes its global state after every round and resumes from it when relaunched with the
same run directory.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist

from . import _C
from ._ranks import free_port, run_ranks

Federation = _C.Federation
FedClientUpdate = _C.FedClientUpdate

_TRAIN, _STOP = 1, 0
# Fault injection for tests: "RANK:ROUND" makes that client process SIGKILL itself on
# receiving that round's work (a real kill -9, mid-round).
_KILL_ENV = "TANDEM_FED_KILL_RANK_AT"


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).to(torch.float32) for t in tensors])


def _unflat(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, pos = [], 0
    for t in like:
        n = t.numel()
        out.append(flat[pos:pos + n].view(t.shape).to(t.dtype))
        pos += n
    return out


def _rank_of(client: int, client_ranks: int) -> int:
    return 1 + client % client_ranks


def _report(run_dir: Path, records, runtime: str, extra: dict) -> dict:
    rows = [{k: getattr(r, k) for k in ("round", "accuracy", "train_loss", "clients_ok", "clients_sampled",
                                         "bytes_up", "bytes_down", "seconds", "dropped")} for r in records]
    dropped = [f"round {r['round']}, {d}" for r in rows for d in r["dropped"]]
    rep = {"runtime": runtime, "rounds": rows, "dropped": dropped,
           "final_accuracy": rows[-1]["accuracy"] if rows else None, **extra}
    (run_dir / "report.json").write_text(json.dumps(rep, indent=1))
    lines = ["| round | accuracy | loss | clients ok / sampled | bytes up | bytes down | s |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        acc = "-" if r["accuracy"] < 0 else f"{r['accuracy']:.4f}"
        lines.append(f"| {r['round']} | {acc} | {r['train_loss']:.4f} | {r['clients_ok']} / {r['clients_sampled']} | "
                     f"{r['bytes_up']} | {r['bytes_down']} | {r['seconds']:.1f} |")
    if dropped:
        lines += ["", "Dropped:"] + [f"- {d}" for d in dropped]
    (run_dir / "rounds.md").write_text("\n".join(lines) + "\n")
    return rep


class _ServerTransport:
    """Rank 0's side: send work to client ranks, wait for their updates, drop the dead."""

    def __init__(self, fed: Federation, client_ranks: int, timeout_s: float):
        self.fed, self.n, self.timeout = fed, client_ranks, datetime.timedelta(seconds=timeout_s)
        self.dead: dict[int, str] = {}
        self.pool = max(1, fed.pool_size())

    def __call__(self, round_: int, clients: list[int], global_state: list[torch.Tensor]) -> list:
        if _kill_point() == (0, round_):  # tests: the server dies after saving round_ - 1
            os.kill(os.getpid(), signal.SIGKILL)
        flat = _flat(global_state)
        sends, sent_to = [], set()
        for c in clients:  # non-blocking: one process may host several sampled clients
            rank = _rank_of(c, self.n)
            if rank in self.dead:
                continue
            try:
                sends.append(dist.isend(torch.tensor([_TRAIN, round_, c], dtype=torch.int64), dst=rank, tag=0))
                sends.append(dist.isend(flat, dst=rank, tag=c))
                sent_to.add(c)
            except RuntimeError as e:
                self.dead[rank] = f"send failed ({e})"
        out = []
        for c in clients:
            rank = _rank_of(c, self.n)
            up = FedClientUpdate()
            up.client = c
            up.sent = c in sent_to
            if rank in self.dead:
                up.error = f"process rank {rank} is gone: {self.dead[rank]}"
                out.append(up)
                continue
            try:
                head = torch.zeros(3, dtype=torch.int64)
                loss = torch.zeros(1, dtype=torch.float64)
                state = torch.empty_like(flat)
                usage = torch.zeros(self.pool, dtype=torch.int64)
                for t in (head, loss, state, usage):
                    dist.irecv(t, src=rank, tag=c).wait(self.timeout)
                up.num_examples, up.ok = int(head[1]), bool(head[2])
                up.loss = float(loss[0])
                up.state = _unflat(state, global_state)
                if self.fed.pool_size() > 1:
                    up.usage = usage
                if not up.ok:
                    up.error = "client reported a failure"
            except RuntimeError as e:
                # A dead or silent process: never talk to it again (a late reply would arrive
                # into a later round's buffers).
                self.dead[rank] = str(e).splitlines()[0][:200]
                up.ok = False
                up.error = f"process rank {rank} failed: {self.dead[rank]}"
            out.append(up)
        for w in sends:
            try:
                w.wait(self.timeout)
            except RuntimeError:
                pass  # the receive side already recorded that process as gone
        return out

    def stop(self) -> None:
        for rank in range(1, self.n + 1):
            if rank not in self.dead:
                try:
                    dist.send(torch.tensor([_STOP, 0, -1], dtype=torch.int64), dst=rank, tag=0)
                except RuntimeError:
                    pass


def _kill_point() -> tuple[int, int]:
    kill = os.environ.get(_KILL_ENV, "")
    return tuple(int(x) for x in kill.split(":")) if kill else (-1, -1)


def _client_loop(fed: Federation, rank: int) -> None:
    kill_rank, kill_round = _kill_point()
    like = fed.global_state()
    pool = max(1, fed.pool_size())
    while True:
        head = torch.zeros(3, dtype=torch.int64)
        dist.recv(head, src=0)
        cmd, round_, c = (int(x) for x in head)
        if cmd == _STOP:
            return
        flat = torch.empty(sum(t.numel() for t in like), dtype=torch.float32)
        dist.recv(flat, src=0, tag=c)
        if rank == kill_rank and round_ == kill_round:
            os.kill(os.getpid(), signal.SIGKILL)
        up = fed.train_client(c, round_, _unflat(flat, like))
        usage = up.usage if fed.pool_size() > 1 else torch.zeros(pool, dtype=torch.int64)
        dist.send(torch.tensor([c, up.num_examples, int(up.ok)], dtype=torch.int64), dst=0, tag=c)
        dist.send(torch.tensor([up.loss], dtype=torch.float64), dst=0, tag=c)
        dist.send(_flat(up.state), dst=0, tag=c)
        dist.send(usage.to(torch.int64).contiguous(), dst=0, tag=c)


def _lock_run_dir(out: Path):
    """An exclusive flock on <run_dir>/.lock for the server's lifetime (released if it is killed):
    two launches into one run directory would both write the same checkpoint."""
    import fcntl

    f = open(out / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "?"
        raise RuntimeError(f"{out} is in use by another tandem fed server (pid {pid}); wait for it to finish, "
                           "or pass another --run-dir") from None
    f.truncate(0)
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def worker(config: str, overrides: Sequence[str], rank: int, client_ranks: int, master: str, run_dir: str,
           timeout_s: float = 120.0) -> None:
    """One process of a distributed federation: rank 0 serves, ranks 1..client_ranks train."""
    fed = Federation(config, list(overrides))
    # Rank 0 also uses the store timeout to wait for every client process to come up.
    dist.init_process_group("gloo", init_method=f"tcp://{master}", rank=rank, world_size=client_ranks + 1,
                            timeout=datetime.timedelta(seconds=max(timeout_s, 60)))
    if rank == 0:
        out = Path(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        lock = _lock_run_dir(out)  # noqa: F841 - held until this process exits
        transport = _ServerTransport(fed, client_ranks, timeout_s)
        try:
            records = fed.run(transport, str(out / "server"))
        finally:
            transport.stop()  # clients stop now, not at their receive timeout, even when the run failed
        _report(out, records, "torch.distributed (gloo)",
                {"client_processes": client_ranks, "dead_processes": transport.dead,
                 "federation": json.loads(fed.describe())})
        # Skip the group's teardown: with a dead peer it can block; all results are written.
        sys.stdout.flush()
        os._exit(0)
    try:
        _client_loop(fed, rank)
    except RuntimeError as e:  # the server went away: nothing left to do
        print(f"tandem fed: client rank {rank} stops: {str(e).splitlines()[0]}", file=sys.stderr)
    sys.stdout.flush()
    os._exit(0)


def default_run_dir(config: str, overrides: Sequence[str], client_ranks: int) -> Path:
    """results/fed_launch/<config stem>-<hash of the resolved config and the process count>.

    Resolved: `extends:` files and overrides merged, so editing a base file gives a new
    directory instead of "resuming" a run of the old config."""
    resolved = _C.resolve_config(str(config), overrides=list(overrides))
    h = hashlib.sha256((resolved + f"|{client_ranks}").encode()).hexdigest()
    return Path("results") / "fed_launch" / f"{Path(config).stem}-{h[:10]}"


def launch(config: str, clients: int, overrides: Sequence[str] = (), run_dir: str | None = None,
           timeout_s: float = 120.0, env: dict | None = None) -> dict:
    """Starts a server and `clients` client processes on this machine; returns the report.

    Relaunching with the same run directory resumes from the server's last saved round."""
    out = Path(run_dir) if run_dir else default_run_dir(config, overrides, clients)
    master = f"127.0.0.1:{free_port()}"
    ranks = []
    for rank in range(clients + 1):
        args = ["fed", "worker", config, "--rank", str(rank), "--client-ranks", str(clients), "--master", master,
                "--run-dir", str(out), "--timeout", str(timeout_s)]
        for o in overrides:
            args += ["--set", o]
        ranks.append(args)
    rc = run_ranks(ranks, env)
    if rc != 0:
        raise RuntimeError(f"tandem fed launch: the server exited with status {rc}; rerun the same command "
                           f"to resume from {out / 'server'}")
    return json.loads((out / "report.json").read_text())


def _main(argv: list[str] | None = None) -> int:
    """`python -m tandem.fed worker ...`: the same as `tandem fed worker ...` (one parser, in cli)."""
    from .cli import main

    return main(["fed", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(_main())
