"""Jobs run inline (``--local``, the benchmark): the same code path without a queue, LoRA included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftflow.modeling import load_causal_lm, load_reward_model
from raftflow.schemas.jobs import JobResult, RewardModelJob, TrainingConfig
from raftflow_cli.commands import main
from services.trainer.jobs import run_reward_model

from .conftest import pair_rewards, pairwise_accuracy, preference_pairs


def test_local_sft_with_lora_saves_a_merged_checkpoint_once(
    tiny_models, sft_data: Path, tmp_path: Path, capsys
) -> None:
    args = ["train", "sft", "--local", "--model", str(tiny_models["policy"]), "--data", str(sft_data)]
    args += ["--out", str(tmp_path), "--job-id", "lora-sft", "--max-steps", "4", "--lr", "1e-3"]
    args += ["--lora-r", "4", "--lora-target-modules", "c_attn", "--loss-on", "all", "--max-length", "32"]
    assert main(args) == 0
    result = JobResult.model_validate(json.loads(capsys.readouterr().out))
    files = {p.name for p in Path(result.checkpoint).iterdir()}
    assert "model.safetensors" in files and "adapter_config.json" not in files  # merged: a plain model
    merged = load_causal_lm(result.checkpoint)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert result.metrics["train_steps"] == 4

    # The same job again returns the stored result; no second training, the file is untouched.
    mtime = (Path(result.checkpoint) / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0
    assert JobResult.model_validate(json.loads(capsys.readouterr().out)) == result
    assert (Path(result.checkpoint) / "model.safetensors").stat().st_mtime_ns == mtime


def test_an_unmerged_sft_adapter_keeps_the_prompt_format_it_trained_in(
    tiny_models, sft_data: Path, tmp_path: Path, capsys
) -> None:
    """peft saves an adapter without config.json; the job saves the config beside it, so the policy
    merged on load is prompted in the format it trained in (``raw`` here; ``auto`` would give hh)."""
    args = ["train", "sft", "--local", "--model", str(tiny_models["policy"]), "--data", str(sft_data)]
    args += ["--out", str(tmp_path), "--job-id", "adapter-sft", "--max-steps", "2", "--prompt-format", "raw"]
    args += ["--lora-r", "4", "--lora-target-modules", "c_attn", "--lora-no-merge", "--max-length", "32"]
    assert main(args) == 0
    result = JobResult.model_validate(json.loads(capsys.readouterr().out))
    files = {p.name for p in Path(result.checkpoint).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= files
    assert "model.safetensors" not in files
    assert load_causal_lm(result.checkpoint).config.raftflow_prompt_format == "raw"
    assert load_causal_lm(str(tiny_models["policy"])).config.to_dict().get("raftflow_prompt_format") is None


def test_a_continued_unmerged_adapter_keeps_its_prompt_format(
    tiny_models, sft_data: Path, tmp_path: Path, capsys
) -> None:
    """An adapter trained in raw and continued as an adapter (the next RAFT iteration of a LoRA run, the
    format left at auto) trains in raw and records raw, as the generator samples it: the base model's
    config alone would resolve auto to hh."""
    common = ["--data", str(sft_data), "--out", str(tmp_path), "--max-steps", "2", "--max-length", "32"]
    common += ["--lora-r", "4", "--lora-target-modules", "c_attn", "--lora-no-merge"]
    first = ["train", "sft", "--local", "--model", str(tiny_models["policy"]), "--job-id", "raw-adapter"]
    assert main([*first, *common, "--prompt-format", "raw"]) == 0
    adapter = JobResult.model_validate(json.loads(capsys.readouterr().out)).checkpoint
    assert main(["train", "sft", "--local", "--model", adapter, "--job-id", "continued", *common]) == 0
    continued = JobResult.model_validate(json.loads(capsys.readouterr().out)).checkpoint
    assert (Path(continued) / "adapter_config.json").is_file()
    assert json.loads((Path(continued) / "config.json").read_text())["raftflow_prompt_format"] == "raw"
    assert load_causal_lm(continued).config.raftflow_prompt_format == "raw"


def test_lora_reward_model_from_a_classifier_checkpoint(
    tiny_models, preference_data: Path, tmp_path: Path
) -> None:
    job = RewardModelJob(
        job_id="lora-rm",
        model=str(tiny_models["reward"]),
        data=str(preference_data),
        output_dir=str(tmp_path),
        eval_fraction=0.0,
        training=TrainingConfig(
            epochs=4, learning_rate=3e-3, per_device_batch_size=8, max_length=32, lora={"r": 8}
        ),
    )
    result = run_reward_model(job)
    assert "eval_accuracy" not in result.metrics  # nothing held out
    model = load_reward_model(result.checkpoint)  # num_labels 1 and pad id survive the merge
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    assert pairwise_accuracy(result.checkpoint, preference_pairs(40, seed=7)) >= 0.8
    # The training length survives the merge, and a rewarder reads no more than that by default.
    from services.rewarder.settings import RewarderSettings
    from services.rewarder.sources.model import ModelSource

    assert model.config.raftflow_max_length == 32
    assert ModelSource(RewarderSettings(model=result.checkpoint)).max_length == 32
    assert ModelSource(RewarderSettings(model=result.checkpoint, max_length=64)).max_length == 64


def test_an_unmerged_reward_adapter_scores_in_the_rewarder(
    tiny_models, preference_data: Path, tmp_path: Path
) -> None:
    """``lora.merge`` off: the job saves the adapter (its score head with it) and, beside it, the config
    with what it recorded; the rewarder's loader merges it into the base and scores as trained."""

    def job(merge: bool) -> RewardModelJob:
        return RewardModelJob(
            job_id=f"lora-rm-merge-{merge}",
            model=str(tiny_models["reward"]),
            data=str(preference_data),
            output_dir=str(tmp_path),
            eval_fraction=0.0,
            training=TrainingConfig(
                epochs=4,
                learning_rate=3e-3,
                per_device_batch_size=8,
                max_length=32,
                lora={"r": 8, "merge": merge},
            ),
        )

    result = run_reward_model(job(merge=False))
    files = {p.name for p in Path(result.checkpoint).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= files
    assert "model.safetensors" not in files
    model = load_reward_model(result.checkpoint)
    assert model.config.num_labels == 1 and model.config.raftflow_max_length == 32
    assert model.config.raftflow_prompt_format == "hh"
    assert pairwise_accuracy(result.checkpoint, preference_pairs(40, seed=7)) >= 0.8
    # The same job merged before saving (same seed, same training) scores the same.
    merged = run_reward_model(job(merge=True))
    pairs = preference_pairs(40, seed=7)
    expected = pair_rewards(merged.checkpoint, pairs)
    assert pair_rewards(result.checkpoint, pairs) == pytest.approx(expected, abs=1e-4)
    from services.rewarder.settings import RewarderSettings
    from services.rewarder.sources.model import ModelSource

    source = ModelSource(RewarderSettings(model=result.checkpoint))
    assert source.max_length == 32


def test_reward_model_grouped_by_length_learns_and_evaluates(tiny_models, tmp_path: Path) -> None:
    """group_by_length on pair features (no input_ids column): both samplers group by the longer text
    of each pair, the model still learns, and the held-out accuracy is computed."""
    from raftflow.data import PreferencePair, write_preferences_jsonl

    pairs = preference_pairs(96, seed=3)
    # Mixed lengths, so grouping changes the batches: a long shared prompt on every third pair.
    mixed = [
        PreferencePair(p.chosen, p.rejected, ("tell me " * (i % 3) * 6) or None) for i, p in enumerate(pairs)
    ]
    data = tmp_path / "mixed.jsonl"
    write_preferences_jsonl(data, mixed)
    job = RewardModelJob(
        job_id="grouped-rm",
        model=str(tiny_models["reward"]),
        data=str(data),
        output_dir=str(tmp_path),
        eval_fraction=0.25,
        prompt_format="raw",
        training=TrainingConfig(
            epochs=4, learning_rate=3e-3, per_device_batch_size=8, max_length=64, group_by_length=True
        ),
    )
    result = run_reward_model(job)
    assert result.metrics["eval_pairs"] == 24 and result.metrics["eval_accuracy"] >= 0.75
    assert pairwise_accuracy(result.checkpoint, preference_pairs(40, seed=7)) >= 0.8
