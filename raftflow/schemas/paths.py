"""The one rule every path field of an API body shares, whatever it names (a checkpoint, a dataset, an
output directory): no NUL character.

No file name can hold one (POSIX forbids it), and ``os`` and ``pathlib`` raise ValueError on one
instead of answering "no such file": a fuzzed ``{"path": "a\\u0000b"}`` reached ``Path.resolve()``
in the path confinement and came back as a 500. Refusing it in the schema makes it a 422 naming the
field, on every service and on both sides of the trainer's queue.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

NO_NUL = r"^[^\x00]*$"
"""``pattern=`` for path fields: any string without a NUL character."""

PathStr = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NO_NUL)]
"""A required path field of a run body or a training job (a file, a directory, or a hub id)."""
