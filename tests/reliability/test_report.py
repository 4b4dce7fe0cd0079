"""The report renderer: totals sum the counts, and a row shows pytest's outcome."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "reliability_conftest", Path(__file__).with_name("conftest.py")
)
assert _spec is not None and _spec.loader is not None
conftest = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = conftest  # dataclasses look their module up there
_spec.loader.exec_module(conftest)


def test_render_sums_counts_and_shows_outcomes() -> None:
    records = [
        conftest.Record("fault", "kill worker", "SIGKILL", "run completed", {"faults": 1}, "t::a", "passed"),
        conftest.Record(
            "bad-input",
            "fuzz | gen",
            "schemathesis",
            "0 5xx",
            {"requests": 40, "faults": 0},
            "t::b",
            "failed",
        ),
    ]
    text = conftest.render(records)
    assert "- Checks: 2, passed: 1, other: 1" in text
    assert "- Total faults: 1" in text and "- Total requests: 40" in text
    assert "| kill worker | SIGKILL | run completed | passed | `t::a` |" in text
    assert "| fuzz \\| gen | schemathesis | 0 5xx | failed | `t::b` |" in text
    assert text.index("## Faults injected") < text.index("## Bad input")
