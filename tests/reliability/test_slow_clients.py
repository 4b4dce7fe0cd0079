"""Slow, stalled and huge clients against a real rewarder process: each is cut off by a limit (body
read timeout, request-head deadline, body size, header size) while ordinary requests keep answering.

Raw sockets, not an HTTP client: the point is to misbehave at the byte level (stop mid-body, trickle
a header, send a body that never ends), which well-behaved clients cannot do. A function-backed
rewarder is the cheapest real service; the limits are the shared ones of raftflow/server.py, installed
the same way in the generator and the orchestrator.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.rewarder.conftest import Rewarder, running_rewarder

BODY_TIMEOUT = 2.0
HEAD_TIMEOUT = 2.0
MAX_BODY = 64 * 1024
MAX_HEADER = 16 * 1024
SLACK = 2.0  # scheduling on a loaded 2-core box
SCORE_HEAD = (
    "POST /score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
)


@pytest.fixture(scope="module")
def rewarder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rewarder]:
    env = {
        "RAFTFLOW_BODY_READ_TIMEOUT": str(BODY_TIMEOUT),
        "RAFTFLOW_HEADER_READ_TIMEOUT": str(HEAD_TIMEOUT),
        "RAFTFLOW_MAX_BODY_BYTES": str(MAX_BODY),
        "RAFTFLOW_MAX_HEADER_BYTES": str(MAX_HEADER),
    }
    with running_rewarder(
        tmp_path_factory.mktemp("slow-clients"), "--function", "raftflow.rewards.format:well_formed",
        env=env,
    ) as server:  # fmt: skip
        yield server


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float | None]:
    """Everything the server sends until it closes the connection, and when it closed (None: still
    open after ``timeout``). A reset counts as closed."""
    sock.settimeout(timeout)
    started, data = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data, None
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def status_of(response: bytes) -> int | None:
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else None


def assert_serving(rewarder: Rewarder) -> float:
    """A normal request still works; returns its latency."""
    started = time.monotonic()
    response = httpx.post(rewarder.url + "/score", json={"texts": ["still here"]}, timeout=10)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


def test_a_stalled_or_trickled_body_gets_408_and_the_connection_closed(rewarder: Rewarder, reliability_log):
    # Headers promise 1000 bytes; 10 arrive, then nothing.
    stalled = connect(rewarder.url)
    stalled.sendall(SCORE_HEAD.format(length=1000).encode() + b'{"texts": ')
    # One byte every 0.3 s: a per-chunk idle timeout would never fire; the whole-body deadline does.
    trickled = connect(rewarder.url)
    trickled.sendall(SCORE_HEAD.format(length=1000).encode())
    started = time.monotonic()
    trickle_closed_after = None
    while time.monotonic() - started < BODY_TIMEOUT + SLACK:
        try:
            trickled.sendall(b" ")
        except OSError:
            trickle_closed_after = time.monotonic() - started
            break
        readable, _, _ = select.select([trickled], [], [], 0.3)
        if readable:
            break
    trickled_response, closed = read_until_closed(trickled, BODY_TIMEOUT + SLACK)
    trickle_closed_after = trickle_closed_after or (None if closed is None else time.monotonic() - started)
    stalled_response, _ = read_until_closed(stalled, 1.0)
    stalled_closed_after = time.monotonic() - started

    for response in (stalled_response, trickled_response):
        assert status_of(response) == 408, response
        assert b"connection: close" in response.lower() and b"not received within 2 s" in response
    assert trickle_closed_after is not None and trickle_closed_after < BODY_TIMEOUT + SLACK
    assert stalled_closed_after < BODY_TIMEOUT + SLACK
    latency = assert_serving(rewarder)
    reliability_log(
        "bad-input",
        "request body that stalls, or trickles one byte per 0.3 s",
        f"raw socket POST /score with Content-Length 1000, then 10 bytes and silence / 1 byte per 0.3 s; "
        f"RAFTFLOW_BODY_READ_TIMEOUT={BODY_TIMEOUT:g}",
        f"both got 408 and a closed connection (stalled after {stalled_closed_after:.1f} s, trickled after "
        f"{trickle_closed_after:.1f} s); a normal /score then answered in {latency * 1000:.0f} ms",
        requests=3,
    )


def test_the_unread_body_of_an_answered_request_cannot_keep_trickling(rewarder: Rewarder, reliability_log):
    # A 404 is answered before its body is read; uvicorn would then discard body bytes for as long
    # as they come. The head deadline closes the connection once no request is under way.
    sock = connect(rewarder.url)
    sock.sendall(b"POST /no-such-route HTTP/1.1\r\nHost: test\r\nContent-Length: 60000\r\n\r\n")
    started, response, closed_after = time.monotonic(), b"", None
    while time.monotonic() - started < HEAD_TIMEOUT + 2 * SLACK:
        try:
            sock.sendall(b"x" * 100)
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    closed_after = time.monotonic() - started
                    break
                response += chunk
        except OSError:
            closed_after = time.monotonic() - started
            break
    sock.close()
    assert status_of(response) == 404, response
    assert closed_after is not None and closed_after < HEAD_TIMEOUT + SLACK, closed_after
    reliability_log(
        "bad-input",
        "body still trickling after the request was answered",
        "POST to an unknown route declaring a 60 kB body (under the size limit), then 100 bytes every "
        f"0.25 s after the 404; RAFTFLOW_HEADER_READ_TIMEOUT={HEAD_TIMEOUT:g}",
        f"404, then the server closed the connection {closed_after:.1f} s after the request",
        requests=1,
    )


def test_many_idle_and_slow_connections_do_not_starve_health(rewarder: Rewarder, reliability_log):
    per_kind = 50
    silent = [connect(rewarder.url) for _ in range(per_kind)]  # connect, send nothing
    trickling = [connect(rewarder.url) for _ in range(per_kind)]  # a request head, byte by byte
    stalled = [connect(rewarder.url) for _ in range(per_kind)]  # head sent, body never finished
    for sock in trickling:
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
    for sock in stalled:
        sock.sendall(SCORE_HEAD.format(length=500).encode() + b"{")
    opened = time.monotonic()

    health = []
    for _ in range(5):
        started = time.monotonic()
        assert httpx.get(rewarder.url + "/health", timeout=5).status_code == 200
        health.append(time.monotonic() - started)
    assert max(health) < 1.0, health

    # Keep the tricklers trickling; every one of the 150 must be closed by the server in time.
    open_socks = {
        sock: kind
        for kind, socks in (("silent", silent), ("trickling", trickling), ("stalled", stalled))
        for sock in socks
    }
    closed_at: dict[str, list[float]] = {"silent": [], "trickling": [], "stalled": []}
    deadline = opened + max(BODY_TIMEOUT, HEAD_TIMEOUT) + SLACK
    while open_socks and time.monotonic() < deadline:
        for sock in [s for s, kind in open_socks.items() if kind == "trickling"]:
            with contextlib.suppress(OSError):
                sock.send(b"s")
        readable, _, _ = select.select(list(open_socks), [], [], 0.25)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data and not data.endswith(b"}"):
                continue  # a 408 arriving in pieces; the close follows
            if not data or status_of(data) == 408:
                peek = b""
                with contextlib.suppress(OSError):
                    sock.settimeout(1.0)
                    peek = sock.recv(1)
                if not peek:
                    closed_at[open_socks.pop(sock)].append(time.monotonic() - opened)
                    sock.close()
    for sock in open_socks:
        sock.close()

    assert not open_socks, {kind: sum(k == kind for k in open_socks.values()) for kind in closed_at}
    assert all(len(times) == per_kind for times in closed_at.values())
    slowest = max(max(times) for times in closed_at.values())
    latency = assert_serving(rewarder)
    reliability_log(
        "bad-input",
        f"{3 * per_kind} idle or slow connections at once",
        f"{per_kind} connect-and-say-nothing, {per_kind} trickling a request head one byte per 0.25 s, "
        f"{per_kind} sending a head and 1 of 500 body bytes; then GET /health x5; "
        f"RAFTFLOW_HEADER_READ_TIMEOUT={HEAD_TIMEOUT:g}, RAFTFLOW_BODY_READ_TIMEOUT={BODY_TIMEOUT:g}",
        f"/health answered in {max(health) * 1000:.0f} ms at worst while they were open; the server closed "
        f"all {3 * per_kind} within {slowest:.1f} s; /score afterwards in {latency * 1000:.0f} ms",
        connections=3 * per_kind,
    )


def test_a_huge_body_is_refused_without_being_read(rewarder: Rewarder, reliability_log):
    rss_before = rss_kib(rewarder.process.pid)

    # Declared: 10 GB in Content-Length, no body sent. 413 at once, connection closed.
    declared = connect(rewarder.url)
    declared.sendall(SCORE_HEAD.format(length=10 * 1024**3).encode())
    response, closed_after = read_until_closed(declared, 5.0)
    assert status_of(response) == 413 and b"65536-byte limit" in response, response
    assert closed_after is not None

    # Chunked, no length: an endless stream of 64 KiB chunks. The server answers 413 once it has read
    # past the limit and closes; the sender hits a closed connection long before 1 GiB.
    chunked = connect(rewarder.url)
    chunked.sendall(
        b"POST /score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    received: list[bytes] = []
    reader = threading.Thread(
        target=lambda: received.append(read_until_closed(chunked, 30.0)[0]), daemon=True
    )
    reader.start()
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    sent, limit = 0, 1024**3
    with contextlib.suppress(OSError):
        while sent < limit:
            chunked.sendall(chunk)
            sent += 65536
    reader.join(30)
    assert received and status_of(received[0]) == 413, received
    assert sent < 64 * 1024**2, f"sent {sent} bytes before the server stopped reading"
    rss_growth = rss_kib(rewarder.process.pid) - rss_before
    assert rss_growth < 32 * 1024, f"server memory grew {rss_growth} KiB"
    latency = assert_serving(rewarder)
    reliability_log(
        "bad-input",
        "huge request body, declared and chunked",
        f"POST /score with Content-Length 10 GiB (no body), and a chunked body streamed 64 KiB at a time "
        f"up to 1 GiB; RAFTFLOW_MAX_BODY_BYTES={MAX_BODY}",
        f"both 413 with the connection closed; the chunked sender was cut off after {sent / 1024**2:.1f} "
        f"MiB (socket buffers included), server memory grew {rss_growth / 1024:.1f} MiB; /score afterwards "
        f"in {latency * 1000:.0f} ms",
        requests=3,
    )


def test_oversized_headers_are_refused_and_the_server_stays_up(rewarder: Rewarder, reliability_log):
    cases = {
        "one 1 MiB header": b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 1024**2 + b"\r\n\r\n",
        "2000 small headers (in one read)": b"GET /health HTTP/1.1\r\nHost: test\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(2000))
        + b"\r\n",
        "a 1 MiB URL": b"GET /health?" + b"q" * 1024**2 + b" HTTP/1.1\r\nHost: test\r\n\r\n",
    }
    seen = {}
    for name, request in cases.items():
        sock = connect(rewarder.url)
        with contextlib.suppress(OSError):
            sock.sendall(request)
        response, closed_after = read_until_closed(sock, 5.0)
        sock.close()
        assert closed_after is not None, name
        status = status_of(response)
        assert status is None or 400 <= status < 500, (name, response[:200])
        seen[name] = status or "closed"
    # Just under the limit still works.
    fits = httpx.get(rewarder.url + "/health", headers={"X-Fits": "a" * (MAX_HEADER // 2)}, timeout=5)
    assert fits.status_code == 200
    latency = assert_serving(rewarder)
    reliability_log(
        "bad-input",
        "oversized request heads",
        f"{', '.join(cases)} (RAFTFLOW_MAX_HEADER_BYTES={MAX_HEADER})",
        "; ".join(f"{name}: {status}" for name, status in seen.items())
        + f", each with the connection closed; an {MAX_HEADER // 2}-byte header still served; /score "
        f"afterwards in {latency * 1000:.0f} ms",
        requests=len(cases) + 2,
    )


# Behind `make test-slow` (CI runs it after `make test`): real processes started and killed, or real
# pretrained / vLLM models; together they would take the default suite past 15 minutes on 2 cores.
pytestmark = pytest.mark.slow
