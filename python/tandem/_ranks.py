"""Starting and reaping the processes of a one-machine torch.distributed launch (tandem fed
launch, tandem moe launch): rank 0 leads, the others follow it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Sequence


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker_args: Sequence[Sequence[str]], env: dict | None = None, grace_s: float = 30.0) -> int:
    """Starts one `tandem <args>` process per rank (rank 0 first), waits for rank 0, gives the
    others `grace_s` to finish and kills those that do not; returns rank 0's exit status."""
    # Through the package's own entry point: `-m tandem.fed` would run a module the package has
    # already imported, which Python warns about in every worker.
    procs = [subprocess.Popen([sys.executable, "-m", "tandem", *args], env={**os.environ, **(env or {})})
             for args in worker_args]
    rc = procs[0].wait()
    deadline = time.time() + grace_s
    for p in procs[1:]:
        try:
            p.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
    return rc
