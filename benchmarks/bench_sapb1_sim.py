"""Is the SAP B1 simulator ever the bottleneck? Single-entity GET versus `/ping/` on the same stack.

The simulator runs in a child process (so the load generator does not share its GIL). One asyncio
load generator with N keep-alive connections drives, in alternating rounds, the trivial `/ping/`
endpoint (served without a session, like the real balancer) and `GET /b1s/v2/BusinessPartners('V10000')`
with a session cookie (a full ~7 KB business partner). Prints both rates and the ratio; target >= 0.70.

    .venv/bin/python benchmarks/bench_sapb1_sim.py [--seconds 3] [--connections 8] [--rounds 3] [--client httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.sapb1 import start_simulator  # noqa: E402

TARGET = 0.70


async def _one_connection(host: str, port: int, request: bytes, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {head[:80]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            counts[0] += 1
            if b"connection: close" in head.lower():  # keep-alive max reached: reconnect
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def _drive(host: str, port: int, request: bytes, seconds: float, connections: int) -> float:
    counts = [0]
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    await asyncio.gather(*(_one_connection(host, port, request, deadline, counts) for _ in range(connections)))
    return counts[0] / (time.perf_counter() - start)


def _drive_httpx(base: str, path: str, cookie: str | None, seconds: float, connections: int) -> float:
    """The same load from `connections` threads, each with its own keep-alive httpx.Client."""
    counts = [0] * connections
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        headers = {"Cookie": cookie} if cookie else {}
        with httpx.Client(base_url=base, headers=headers) as client:
            while time.perf_counter() < deadline:
                client.get(path).raise_for_status()
                counts[index] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


def measure(seconds: float, connections: int, rounds: int, client: str = "raw") -> tuple[float, float]:
    with start_simulator(seed="demo", subprocess=True) as sim:
        host, port = sim.base_url.split("://", 1)[1].split(":")
        login = httpx.post(f"{sim.service_root('v2')}/Login", json=sim.login_body())
        login.raise_for_status()
        session = login.json()["SessionId"]
        ping = f"GET /ping/ HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        entity = (f"GET /b1s/v2/BusinessPartners('V10000') HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  f"Cookie: B1SESSION={session}; ROUTEID=.node1\r\n\r\n").encode()
        cookie = f"B1SESSION={session}; ROUTEID=.node1"
        entity_path = "/b1s/v2/BusinessPartners('V10000')"

        def run(request: bytes, path: str, with_cookie: bool, length: float) -> float:
            if client == "httpx":
                return _drive_httpx(sim.base_url, path, cookie if with_cookie else None, length, connections)
            return asyncio.run(_drive(host, int(port), request, length, connections))

        run(entity, entity_path, True, 0.5)  # warm up (render cache)
        ping_rates, entity_rates = [], []
        for _ in range(rounds):  # alternate so drift on a noisy machine hits both alike
            ping_rates.append(run(ping, "/ping/", False, seconds))
            entity_rates.append(run(entity, entity_path, True, seconds))
        return statistics.median(ping_rates), statistics.median(entity_rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measuring round")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per endpoint (median kept)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator: raw asyncio sockets (cheap, default) or threaded httpx clients")
    args = parser.parse_args(argv)
    ping, entity = measure(args.seconds, args.connections, args.rounds, args.client)
    print(f"load generator: {args.client}, {args.connections} keep-alive connections, simulator in a subprocess")
    ratio = entity / ping if ping else 0.0
    print(f"trivial endpoint GET /ping/                       : {ping:8.0f} requests/s")
    print(f"single entity   GET /b1s/v2/BusinessPartners('V10000'): {entity:8.0f} requests/s")
    print(f"ratio entity/ping: {ratio:.2f}  (target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
