"""Command line of ``python -m services.generator``: flags become settings (flags win over env)."""

from __future__ import annotations

import argparse
import logging

from raftflow.server import serve
from raftflow.server.entry import settings_from_flags
from services.generator.settings import GeneratorSettings


def build_parser() -> argparse.ArgumentParser:
    """Every flag defaults to None, meaning "not given": only given flags override the environment."""
    parser = argparse.ArgumentParser(
        prog="python -m services.generator",
        description="Batched K-sample generation over HTTP (OpenAI and TGI APIs). See docs/generator.md.",
    )
    parser.add_argument("--model", help="checkpoint directory or hub id [GENERATOR_MODEL]")
    parser.add_argument(
        "--reference-model", help="reference checkpoint for POST /v1/logprobs [GENERATOR_REFERENCE_MODEL]"
    )
    parser.add_argument("--host", help="bind address [GENERATOR_HOST, 127.0.0.1]")
    parser.add_argument("--port", type=int, help="[GENERATOR_PORT, 8001]")
    parser.add_argument(
        "--backend", choices=["transformers", "tgi", "vllm"], help="[GENERATOR_BACKEND, transformers]"
    )
    parser.add_argument(
        "--vllm-url", help="attach to this vLLM server for --backend vllm [GENERATOR_VLLM_URL]"
    )
    parser.add_argument(
        "--vllm-python", help="vLLM's interpreter [GENERATOR_VLLM_PYTHON, .venv-vllm/bin/python]"
    )
    parser.add_argument("--vllm-dtype", help="vLLM's --dtype [GENERATOR_VLLM_DTYPE, auto]")
    parser.add_argument("--vllm-max-model-len", type=int, help="[GENERATOR_VLLM_MAX_MODEL_LEN, 2048]")
    parser.add_argument(
        "--vllm-enable-lora",
        action="store_const",
        const=True,
        help="serve LoRA adapter checkpoints as adapters [GENERATOR_VLLM_ENABLE_LORA]",
    )
    parser.add_argument("--tgi-url", help="TGI server for --backend tgi [GENERATOR_TGI_URL]")
    parser.add_argument("--tgi-concurrency", type=int, help="[GENERATOR_TGI_CONCURRENCY, 8]")
    parser.add_argument("--max-n", type=int, help="[GENERATOR_MAX_N, 64]")
    parser.add_argument("--max-tokens", type=int, help="[GENERATOR_MAX_TOKENS, 1024]")
    parser.add_argument("--max-prompts", type=int, help="[GENERATOR_MAX_PROMPTS, 256]")
    parser.add_argument(
        "--token-budget", type=int, help="tokens per generate call [GENERATOR_TOKEN_BUDGET, 32768]"
    )
    parser.add_argument(
        "--load-root",
        dest="load_roots",
        action="append",
        help="a directory POST /v1/load may load from; repeatable [GENERATOR_LOAD_ROOTS, any]",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="[RAFTFLOW_DEVICE, auto]")
    parser.add_argument("--torch-threads", type=int, help="[RAFTFLOW_TORCH_THREADS]")
    parser.add_argument("--log-level", help="[RAFTFLOW_LOG_LEVEL, info]")
    return parser


def parse_settings(argv: list[str] | None = None) -> GeneratorSettings:
    return settings_from_flags(build_parser(), GeneratorSettings, argv)


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call to TGI drowns the log
    from services.generator.app import create_app

    serve(create_app, settings)
    return 0
