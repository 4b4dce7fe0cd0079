"""The static security scan (checkov + hadolint), run from the isolated tools virtualenv.

checkov is not a dev dependency of the project (its pins conflict with ours), so this test runs only
where ``python3 tests/deploy/security_scan.py --install`` created ``.venv-tools``, and skips with that
command as the reason elsewhere. The justification table is checked either way.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy import security_scan

INSTALL = "python3 tests/deploy/security_scan.py --install"


def test_exceptions_table_rows_have_a_reason() -> None:
    rows = re.findall(
        r"^\|\s*(CKV2?_[A-Z0-9_]+)\s*\|([^|]+)\|([^|]+)\|", security_scan.EXCEPTIONS.read_text(), re.M
    )
    assert rows, "no exceptions table"
    assert all(len(why.strip()) > 20 for _, _, why in rows)
    assert {(check, where.strip()) for check, where, _ in rows} == security_scan.justified()


@pytest.mark.skipif(
    not security_scan.tools_available(), reason=f"checkov/hadolint not installed: run `{INSTALL}`"
)
def test_scan_finds_nothing_unjustified() -> None:
    report = security_scan.scan()
    assert report.versions["checkov"] == security_scan.PINS["checkov"]
    assert report.failed == []
    assert report.unjustified == []
    assert report.stale == []
    assert report.hadolint == []
    assert report.passed["dockerfile"] > 0 and report.passed["kubernetes"] > 0
