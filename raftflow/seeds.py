"""Every seed a run derives from its one ``seed``, in one place and by one scheme.

A run's seed fans out to sampling chunks, the held-out evaluation, the SFT share mixed into each
fine-tuning set and each training job; a seeded request to the generator fans out to its batches, and
the TGI client to each sample. All of them hash the parent seed with a path (:func:`derive_seed`), so
sibling streams are unrelated: ``seed + i`` schemes make run 1's chunk 0 equal run 0's chunk 1, and
linear mixes such as ``seed * 1_000_003 + i`` collide across (seed, iteration, chunk) the same way.
The values are stable across processes and Python versions (unlike ``hash()``), so a run sampled again
after a restart gets the same samples.
"""

from __future__ import annotations

import hashlib
import secrets

MAX_SEED = 2**63 - 1
"""Seeds are unsigned 63-bit: they fit torch, numpy's Generator, TGI's u64 and every JSON int64."""
MAX_TRAINING_SEED = 2**31 - 1
"""Training jobs' seeds feed ``transformers.set_seed``, whose ``np.random.seed`` takes 32 bits."""


def derive_seed(seed: int, *path: int | str) -> int:
    """A seed for a sub-part (a chunk, a batch, a sample, a named stream) of something seeded by
    ``seed``: a 63-bit hash of ``(seed, *path)``."""
    digest = hashlib.blake2b(repr((seed, *path)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def chunk_seed(seed: int, iteration: int, chunk_start: int) -> int:
    """The sampling seed of the chunk of an iteration's prompts that starts at ``chunk_start``: each
    chunk its own stream, the same whichever replica samples it and in whatever order chunks finish."""
    return derive_seed(seed, iteration, chunk_start)


def eval_seed(seed: int, stream: str = "reward") -> int:
    """The held-out evaluation's sampling seed: one per run and stream (``reward``: the samples at the
    run's decoding; ``kl``: those at temperature 1 for the KL estimate), the same after every
    iteration, so the evaluations of two iterations differ by the weights alone."""
    return derive_seed(seed, "eval", stream)


def sft_mix_seed(seed: int, iteration: int) -> int:
    """Which SFT pairs are mixed into ``iteration``'s fine-tuning set."""
    return derive_seed(seed, iteration, "sft_mix")


def training_seed(seed: int, iteration: int) -> int:
    """The training job's seed (data order, dropout) of ``iteration``."""
    return derive_seed(seed, iteration, "train") % (MAX_TRAINING_SEED + 1)


def fresh_seed() -> int:
    """A random seed for an unseeded request, so its sub-parts are still derived by one scheme."""
    return secrets.randbelow(MAX_SEED)
