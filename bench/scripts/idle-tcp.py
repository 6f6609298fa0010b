#!/usr/bin/env python3
"""Many idle TCP connections held against clusterdns: the server's RSS before and after, and
how long a new client's query takes while they are held (issue 18). Loopback only; the server
pinned to CPU 0, this client to CPU 1. Not run in CI.

    ulimit -n 20000   # or more: the client and the server each hold one descriptor per connection
    taskset -c 1 bench/scripts/idle-tcp.py --connections 10000 [--max-tcp-connections 16384]
"""
import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

NAME = "kubernetes.default.svc.cluster.local"


def query(qid: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in NAME.split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", 1, 1)


def status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def tcp_ask(port: int, qid: int) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        q = query(qid)
        s.sendall(struct.pack(">H", len(q)) + q)
        length = struct.unpack(">H", s.recv(2))[0]
        data = b""
        while len(data) < length:
            data += s.recv(length - len(data))
    return (time.perf_counter() - started) * 1000


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--connections", type=int, default=10000)
    args.add_argument("--max-tcp-connections", type=int, default=1024)
    args.add_argument("--binary", default="target/dist/clusterdns")
    args.add_argument("--manifests", default="tests/golden/cluster.yaml")
    args.add_argument("--port", type=int, default=5453)
    a = args.parse_args()
    server = subprocess.Popen(
        ["taskset", "-c", "0", a.binary, "--manifests", a.manifests, "--listen",
         f"127.0.0.1:{a.port}", "--threads", "1", "--tcp-idle-timeout", "600",
         "--max-tcp-connections", str(a.max_tcp_connections)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                tcp_ask(a.port, 1)
                break
            except OSError:
                time.sleep(0.1)
        before = status(server.pid, "VmRSS")
        quiet = [tcp_ask(a.port, i) for i in range(20)]
        held = []
        started = time.perf_counter()
        for i in range(a.connections):
            held.append(socket.create_connection(("127.0.0.1", a.port), timeout=5))
        opened = time.perf_counter() - started
        time.sleep(1)
        during = [tcp_ask(a.port, i) for i in range(20)]
        after = status(server.pid, "VmRSS")
        peak = status(server.pid, "VmHWM")
        print(f"connections held: {a.connections} (server bound {a.max_tcp_connections}), "
              f"opened in {opened:.1f} s")
        print(f"server RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with them "
              f"(+{(after - before) / 1024:.1f} MiB, {(after - before) * 1024 / min(a.connections, a.max_tcp_connections):.0f} bytes "
              f"per open connection); peak {peak / 1024:.1f} MiB")
        print(f"a new client's TCP query (connect, ask, answer), median / max of 20: "
              f"{statistics.median(quiet):.2f} / {max(quiet):.2f} ms before, "
              f"{statistics.median(during):.2f} / {max(during):.2f} ms while they are held")
        for s in held:
            s.close()
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
