#!/usr/bin/env python3
"""Times portreap against a fake engine whose one paused container publishes N ports.

A container with a hundred thousand bindings (a port range, or an engine answering
garbage) must cost linear time: `scan --json` and `why 1000-65535` once took 13 s and
23 s here. Prints the median of a few runs for each N.

    python3 docker/bench_bindings.py [--bin target/release/portreap] [--runs 3] [N ...]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time

ID = "5" * 64


def answers(n):
    ports = {}
    for i in range(n):
        proto = "tcp" if i < 60000 else "udp"
        ports[f"{i % 60000 + 1}/{proto}"] = [
            {"HostIp": "0.0.0.0", "HostPort": str(1000 + i % 60000)}
        ]
    inspect = {
        "Id": ID, "Name": "/big", "Created": "2026-01-01T10:00:00Z",
        "State": {"Status": "paused", "Running": True, "Paused": True, "Pid": 0,
                  "ExitCode": 0, "StartedAt": "2026-01-01T10:00:01Z",
                  "FinishedAt": "0001-01-01T00:00:00Z"},
        "Config": {"Image": "img", "Labels": {}},
        "HostConfig": {"NetworkMode": "bridge", "RestartPolicy": {"Name": "no"},
                       "PortBindings": ports},
        "NetworkSettings": {"Ports": ports, "Networks": {}},
    }
    listing = [{"Id": ID, "Names": ["/big"], "Image": "img", "State": "paused", "Ports": []}]
    version = {"Version": "20.10", "ApiVersion": "1.41"}
    return {
        "/version": json.dumps(version).encode(),
        "/containers/json": json.dumps(listing).encode(),
        f"/containers/{ID}/json": json.dumps(inspect).encode(),
    }


def serve(path, bodies):
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(16)

    def handle(conn):
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                break
            request += chunk
        target = request.split(b" ")[1].split(b"?")[0].decode() if request else "/"
        body = bodies.get(target, b'{"message":"no such thing"}')
        status = "200 OK" if target in bodies else "404 Not Found"
        head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            conn.sendall(head.encode() + body)
        except OSError:
            pass
        conn.close()

    def loop():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def timed(cmd, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/portreap")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("sizes", nargs="*", type=int, default=[10000, 50000, 100000])
    args = parser.parse_args()
    print(f"{'bindings':>9} {'scan --json':>12} {'why 1000-65535':>15}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "engine.sock")
            serve(path, answers(n))
            host = f"unix://{path}"
            scan = timed([args.bin, "--host", host, "scan", "--json"], args.runs)
            why = timed([args.bin, "--host", host, "why", "1000-65535"], args.runs)
            print(f"{n:>9} {scan * 1e3:>10.0f}ms {why * 1e3:>13.0f}ms")


if __name__ == "__main__":
    main()
