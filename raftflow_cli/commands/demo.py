"""``raftflow demo`` (the whole pipeline, then a report) and ``raftflow up`` (the same stack, left
running for curl). Both stop every process they started on exit, Ctrl-C and SIGTERM included."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXIT_TARGETS_MISSED = 3
EXIT_INTERRUPTED = 130


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="run SFT -> reward model -> RAFT through the real services, offline, and report",
        description="Build tiny models and the 'positive fortunes' task, start the stack as local "
        "processes, run the pipeline through the services' APIs, and write report.json/.png/.txt. "
        "See docs/demo.md.",
    )
    demo.add_argument("--out", default="raftflow-demo", help="run directory (default: ./raftflow-demo)")
    demo.add_argument(
        "--profile",
        choices=["default", "fast", "hh"],
        default="default",
        help="default: tiny models on 'positive fortunes'; fast: its CI size; hh: LMFlow-RAFT's HH-RLHF "
        "pipeline on SmolLM2-135M-Instruct (LoRA) and a MiniLM reward model (~22 min on 2 cores)",
    )
    demo.add_argument("--fast", action="store_true", help="the CI profile: tiny sizes, one RAFT iteration")
    demo.add_argument("--config", help="JSON file of DemoConfig fields, applied over the profile")
    demo.add_argument("--seed", type=int)
    demo.add_argument("--iterations", type=int, help="RAFT iterations")
    demo.add_argument("--prompts-per-iteration", type=int)
    demo.add_argument("--k", type=int, help="samples per prompt")
    demo.add_argument("--temperature", type=float)
    demo.add_argument("--raft-lr", type=float, help="learning rate of each RAFT fine-tuning step")
    demo.add_argument("--raft-epochs", type=float, help="epochs over each iteration's selected set")
    demo.add_argument("--selection", choices=["local", "global"])
    demo.add_argument("--sft-steps", type=int, help="optimizer steps of the SFT stage")
    demo.add_argument(
        "--strict", action="store_true", help=f"exit {EXIT_TARGETS_MISSED} if a target is missed"
    )
    demo.set_defaults(handler=_demo)

    up = commands.add_parser(
        "up",
        help="start the whole stack locally and keep it running until Ctrl-C",
        description="Redis (embedded unless REDIS_URL is set), trainer worker, generator, proxy and gold "
        "rewarders and orchestrator on free loopback ports, with a random API token.",
    )
    up.add_argument("--out", default="raftflow-stack", help="run directory (default: ./raftflow-stack)")
    up.add_argument("--policy", help="checkpoint the generator serves (default: a new tiny policy)")
    up.add_argument("--reward", help="reward model the proxy rewarder serves (default: a new tiny one)")
    up.add_argument("--seed", type=int, default=0)
    up.add_argument(
        "--start-timeout", type=float, default=180.0, help="seconds to wait for each service's /health"
    )
    up.set_defaults(handler=_up)


def _demo(args: argparse.Namespace) -> int:
    from raftflow_cli.demo.config import PROFILES, DemoConfig
    from raftflow_cli.demo.pipeline import DemoPipeline
    from raftflow_cli.demo.report import render_table

    updates = _config_updates(args)
    if args.config:
        updates = _merge(json.loads(Path(args.config).read_text()), updates)
    if args.profile == "hh" and not args.fast:
        from raftflow_cli.demo.hh_config import HHConfig
        from raftflow_cli.demo.hh_pipeline import HHPipeline
        from raftflow_cli.demo.hh_report import render_hh_table

        hh = HHConfig.model_validate(_merge(HHConfig().model_dump(), updates))
        return _run_demo(lambda: HHPipeline(hh, args.out, say=_say).run(), render_hh_table, args)
    config = PROFILES["fast" if args.fast else args.profile]()
    if updates:
        config = DemoConfig.model_validate(_merge(config.model_dump(), updates))
    return _run_demo(lambda: DemoPipeline(config, args.out, say=_say).run(), render_table, args)


def _run_demo(run, render, args: argparse.Namespace) -> int:
    """Run a pipeline, print its table; the exit code says interrupted (130), failed (1) or targets
    missed under --strict (3)."""
    from raftflow_cli.demo.pipeline import DemoFailed
    from raftflow_cli.demo.stack import StackInterrupted

    try:
        report = run()
    except StackInterrupted as exc:
        _say(f"interrupted ({exc}); every service was stopped")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _say("interrupted; every service was stopped")
        return EXIT_INTERRUPTED
    except (DemoFailed, RuntimeError, TimeoutError) as exc:
        # A stage or a service failed: the message names it (a service's start failure carries the
        # tail of its log); the logs are in OUT/logs.
        _say(f"demo failed: {exc}")
        _say(f"service logs: {Path(args.out) / 'logs'}")
        return 1
    print(render(report), flush=True)
    print(f"report: {Path(args.out) / 'report.txt'}, report.json, report.png", flush=True)
    if args.strict and not report.summary.all_met:
        return EXIT_TARGETS_MISSED
    return 0


def _config_updates(args: argparse.Namespace) -> dict:
    """CLI flags as a nested DemoConfig patch (only the flags given)."""
    flags = {
        "seed": ("seed",),
        "iterations": ("raft", "iterations"),
        "prompts_per_iteration": ("raft", "prompts_per_iteration"),
        "k": ("raft", "k"),
        "temperature": ("raft", "temperature"),
        "raft_lr": ("raft", "learning_rate"),
        "raft_epochs": ("raft", "epochs"),
        "selection": ("raft", "selection"),
        "sft_steps": ("sft", "steps"),
    }
    patch: dict = {}
    for flag, path in flags.items():
        value = getattr(args, flag)
        if value is None:
            continue
        node = patch
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return patch


def _merge(base: dict, patch: dict) -> dict:
    merged = dict(base)
    for key, value in patch.items():
        merged[key] = (
            _merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def _up(args: argparse.Namespace) -> int:
    import os

    from raftflow_cli.demo.config import DemoConfig
    from raftflow_cli.demo.data import build_demo_data
    from raftflow_cli.demo.stack import (
        GOLD_FUNCTION,
        LocalStack,
        StackInterrupted,
        StackSettings,
        interrupts_as_exceptions,
    )
    from raftflow_cli.tiny_models import build_models

    out = Path(args.out).resolve()
    config = DemoConfig(seed=args.seed)
    stack: LocalStack | None = None
    with interrupts_as_exceptions():
        try:
            policy, reward = args.policy, args.reward
            # Our tiny reward models are trained on HH-form pairs; a user's may carry a chat template.
            reward_format = "auto" if args.reward else "hh"
            if policy is None or reward is None:
                _say(f"building tiny models in {out / 'models'}")
                models = build_models(out / "models", config.models.tiny_config(config.seed))
                policy = policy or str(models["policy"])
                reward = reward or str(models["reward"])
            data = build_demo_data(out / "data", seed=config.seed)
            # Hub ids (not local dirs) need the network; local checkpoints load without it.
            offline = all(Path(p).is_dir() for p in (policy, reward))
            # The API stays on loopback but takes paths: confine them to the work dir, plus the
            # directory of a local --policy (runs start from it and the trainer fine-tunes it).
            roots = (out, Path(policy).resolve()) if Path(policy).is_dir() else (out,)
            settings = StackSettings(
                run_dir=out,
                redis_url=os.environ.get("REDIS_URL"),
                offline=offline,
                start_timeout=args.start_timeout,
                path_roots=roots,
            )
            stack = LocalStack(settings)
            stack.run_dir.mkdir(parents=True, exist_ok=True)
            stack.start_queue()
            generator = stack.start_generator(policy)
            proxy = stack.start_rewarder("proxy_rewarder", model=reward, pair_format=reward_format)
            gold = stack.start_rewarder("gold_rewarder", function=GOLD_FUNCTION)
            stack.start_orchestrator(generator, proxy)
            stack.wait_healthy()
            stack.wait_worker_ready()
            stack.ready = True
            stack.record()
            print(_up_banner(stack, policy, str(data.raft_prompts), str(data.eval_prompts), gold), flush=True)
            while True:
                dead = [name for name, p in stack.processes.items() if not p.alive()]
                if dead:
                    _say(f"{', '.join(dead)} exited; see {stack.logs}; stopping the stack")
                    return 1
                time.sleep(0.5)
        except StackInterrupted as exc:
            _say(f"{exc}: stopping the stack")
            return 0
        except KeyboardInterrupt:
            _say("stopping the stack")
            return 0
        finally:
            if stack is not None:
                stack.close()
                _say("stopped")


def _up_banner(stack, policy: str, prompts: str, eval_prompts: str, gold_url: str) -> str:
    orchestrator = stack.urls["orchestrator"]
    body = {
        "policy": policy,
        "prompts": prompts,
        "num_iterations": 2,
        "prompts_per_iteration": 8,
        "k": 4,
        "max_new_tokens": 16,
        "gold_rewarder_url": gold_url,
        "eval_prompts": eval_prompts,
        "seed": 0,
    }
    rows = [("orchestrator", f"{orchestrator}  (API docs: {orchestrator}/docs)")]
    rows += [("dashboard", f"{orchestrator}/dashboard/  (enter the API token below)")]
    rows += [(name.replace("_", " "), url) for name, url in stack.urls.items() if name != "orchestrator"]
    rows += [("redis", stack.redis_url), ("trainer worker", f"pid {stack.processes['trainer'].pid}")]
    rows += [("API token", stack.token), ("logs", str(stack.logs))]
    width = max(len(name) for name, _ in rows)
    lines = ["raftflow stack is up; Ctrl-C stops it.", ""]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [
        "",
        "Start a RAFT run (every /iterations call needs the token):",
        f"  export RAFTFLOW_API_TOKEN={stack.token}",
        f'  curl -s -X POST {orchestrator}/iterations -H "Authorization: Bearer $RAFTFLOW_API_TOKEN" \\',
        f"    -H 'content-type: application/json' -d '{json.dumps(body)}'",
        f'  curl -s -H "Authorization: Bearer $RAFTFLOW_API_TOKEN" {orchestrator}/iterations/<id>',
        f'  curl -s -H "Authorization: Bearer $RAFTFLOW_API_TOKEN" -o curves.png '
        f"{orchestrator}/iterations/<id>/metrics.png",
    ]
    return "\n".join(lines)


def _say(message: str) -> None:
    print(f"[raftflow] {message}", file=sys.stderr, flush=True)
