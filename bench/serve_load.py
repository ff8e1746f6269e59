"""Load test of the judge HTTP service (judges/serve.py): N /score requests from C concurrent clients.

    python -m bench.serve_load --judge sentence-transformers/all-MiniLM-L6-v2 --family bradley_terry --chat_template plain \
        --requests 2000 --clients 32 --max_batch_size 32

The server runs in its own process (`python -m judges.serve`), the clients in this one (asyncio + httpx,
one connection pool, each client sending its next request when the last one is answered). Each request
scores one conversation from the built-in preference set (short prompts and responses). Records throughput,
p50/p99 latency, errors and the server's batch count, as JSON (--output) and a line for bench/RESULTS.md.
On this 2-core machine the clients share the CPU with the server, so the figure is a lower bound.

`--mix hostile` (issue 17): a third of the requests are invalid, of several kinds (malformed JSON, a schema
error, a conversation without a reply, too many items, an oversized body, an unknown /rank method, a wrong API
key; the server runs with an API key), in a fixed shuffled order. It records p50/p99 of the valid requests,
the status codes per kind, the count of 5xx answers (the goal is 0) and the server's RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench._common import rss_mib
from judges.serve import server_stack
from rm_core.models import dtype_choice

ROOT = Path(__file__).resolve().parents[1]


def conversations(n: int) -> list[list[dict]]:
    from rm_core.builtin_data import build_builtin_preferences

    rows = build_builtin_preferences(seed=0)[0]
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        response = row["chosen"] if i % 2 == 0 else row["rejected"]
        out.append([{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": response}])
    return out


async def run_clients(url: str, convs: list, clients: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    for conv in convs:
        queue.put_nowait(conv)

    async def client(http: httpx.AsyncClient):
        nonlocal errors
        while not queue.empty():
            conv = queue.get_nowait()
            t0 = time.perf_counter()
            try:
                r = await http.post("/score", json={"conversations": [conv]})
                ok = r.status_code == 200 and r.json()["scores"][0] is not None
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return latencies, errors, wall


def hostile_requests(convs: list, key: str, oversized_mb: float) -> list[tuple[str, dict]]:
    """(kind, httpx request kwargs): two valid /score requests to each invalid one, kinds in turn, shuffled."""
    import random

    good = {"Authorization": f"Bearer {key}"}
    big = "w " * int(oversized_mb * 1024 * 1024 / 2)
    kinds = [
        ("malformed_json", lambda c: {"content": b'{"conversations": [[', "headers": {**good, "Content-Type": "application/json"}}),
        ("schema", lambda c: {"json": {"convs": [c]}, "headers": good}),
        ("no_reply", lambda c: {"json": {"conversations": [c[:1]]}, "headers": good}),
        ("too_many_items", lambda c: {"json": {"conversations": [c] * 257}, "headers": good}),
        ("oversized", lambda c: {"json": {"conversations": [[c[0], {"role": "assistant", "content": big}]]},
                                 "headers": good}),
        ("bad_rank_method", lambda c: {"url": "/rank", "json": {"prompt": "q", "responses": ["a", "b"], "method": "x"},
                                       "headers": good}),
        ("wrong_key", lambda c: {"json": {"conversations": [c]}, "headers": {"Authorization": "Bearer nope"}}),
    ]
    out = []
    for i, conv in enumerate(convs):
        if i % 3 == 2:
            kind, make = kinds[(i // 3) % len(kinds)]
            out.append((kind, make(conv)))
        else:
            out.append(("valid", {"json": {"conversations": [conv]}, "headers": good}))
    random.Random(0).shuffle(out)
    return out


async def run_mixed(url: str, requests: list[tuple[str, dict]], clients: int) -> tuple[dict, list[float], float]:
    """Status codes per kind, latencies of the valid requests, wall time."""
    from collections import Counter, defaultdict

    codes: dict = defaultdict(Counter)
    latencies: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)

    async def client(http: httpx.AsyncClient):
        while not queue.empty():
            kind, kwargs = queue.get_nowait()
            kwargs = dict(kwargs)
            route = kwargs.pop("url", "/score")
            t0 = time.perf_counter()
            try:
                r = await http.post(route, **kwargs)
                status = r.status_code
                if kind == "valid" and (status != 200 or r.json()["scores"][0] is None):
                    status = f"{status} (bad answer)"
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if kind == "valid":
                latencies.append(time.perf_counter() - t0)
            codes[kind][str(status)] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return {k: dict(v) for k, v in codes.items()}, latencies, wall


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used (/proc/<pid>/stat, all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--judge", default="sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--family", default="bradley_terry")
    p.add_argument("--chat_template", default=None, help="MiniLM has none: pass 'plain' ('Role: text')")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--max_batch_size", type=int, default=32)
    p.add_argument("--max_wait_ms", type=float, default=5.0)
    p.add_argument("--batch_size", type=int, default=None, help="the judge's forward batch (server --batch_size; default the server's: --max_batch_size)")
    p.add_argument("--dtype", default="auto", help="the server's --dtype (auto: bf16 on a GPU or a CPU with native bf16)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--output", default=None, help="default bench/runs/serve_load[_hostile].json")
    p.add_argument("--mix", default="valid", choices=["valid", "hostile"])
    p.add_argument("--oversized_mb", type=float, default=40.0, help="body size of the oversized requests")
    args = p.parse_args()
    args.output = args.output or str(ROOT / "bench" / "runs" / f"serve_load{'_hostile' if args.mix == 'hostile' else ''}.json")
    key = "bench-key-0123456789"

    before_load = list(os.getloadavg())  # the machine should be to itself: say so beside the figure
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    cmd = [sys.executable, "-m", "judges.serve", "--judge", args.judge, "--family", args.family, "--port",
           str(args.port), "--max_batch_size", str(args.max_batch_size), "--max_wait_ms", str(args.max_wait_ms)]
    cmd += ["--dtype", args.dtype]
    if args.batch_size:
        cmd += ["--batch_size", str(args.batch_size)]
    if args.chat_template:
        cmd += ["--chat_template", args.chat_template]
    if args.mix == "hostile":
        env["RM_JUDGE_API_KEY"] = key
    server = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"server exited with {server.returncode}")
            time.sleep(0.5)
        convs = conversations(args.requests)
        if args.mix == "hostile":
            return hostile(args, url, server, convs, key)
        asyncio.run(run_clients(url, convs[: args.clients * 2], args.clients))  # warm-up, not measured
        before = httpx.get(url + "/health").json()["batches"]["score"]
        cpu_before = cpu_seconds(server.pid), time.process_time()
        latencies, errors, wall = asyncio.run(run_clients(url, convs, args.clients))
        cpu_used = {"server": round(cpu_seconds(server.pid) - cpu_before[0], 1),
                    "clients": round(time.process_time() - cpu_before[1], 1)}
        health = httpx.get(url + "/health").json()
    finally:
        server.terminate()
        server.wait(timeout=30)

    result = {
        "judge": args.judge, "family": args.family, "requests": len(latencies), "clients": args.clients,
        "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms, "forward_batch": args.batch_size or args.max_batch_size, "errors": errors,
        "seconds": round(wall, 2), "requests_per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1), "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "server_batches": health["batches"]["score"] - before,
        "mean_batch": round(len(latencies) / max(1, health["batches"]["score"] - before), 1),
        "judge_failures": health["failures"]["total"], "cpu_count": os.cpu_count(),
        "dtype": dtype_choice(args.dtype)[0],  # what the server resolved: the same machine, the same rule
        # where the cores went during the measured run: CPU seconds of the server and of this (client) process
        "cpu_seconds": cpu_used,
        **server_stack(),  # the server runs in this venv
        "load_average_before": before_load,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"| {args.judge} | {result['requests']} req, {args.clients} clients, batch<={args.max_batch_size} | "
          f"{result['requests_per_second']} req/s | p50 {result['p50_ms']} ms | p99 {result['p99_ms']} ms | "
          f"{errors} errors | mean batch {result['mean_batch']} |")
    print(f"CPU seconds in {result['seconds']} s: server {cpu_used['server']}, clients {cpu_used['clients']}")


def hostile(args, url: str, server, convs: list, key: str) -> None:
    requests = hostile_requests(convs, key, args.oversized_mb)
    warm = [("valid", {"json": {"conversations": [c]}, "headers": {"Authorization": f"Bearer {key}"}})
            for c in convs[: args.clients * 2]]
    asyncio.run(run_mixed(url, warm, args.clients))  # warm-up, not measured
    rss_before = rss_mib(server.pid)
    codes, latencies, wall = asyncio.run(run_mixed(url, requests, args.clients))
    rss_after = rss_mib(server.pid)
    health = httpx.get(url + "/health").json()
    server_errors = sum(n for kind in codes.values() for status, n in kind.items() if status.startswith("5"))
    result = {
        "judge": args.judge, "family": args.family, "mix": "hostile", "requests": len(requests),
        "valid_requests": len(latencies), "clients": args.clients, "max_batch_size": args.max_batch_size,
        "oversized_mb": args.oversized_mb, "seconds": round(wall, 2),
        "valid_p50_ms": round(1000 * statistics.median(latencies), 1),
        "valid_p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "status_by_kind": codes, "server_5xx": server_errors, "rss_mb_before": rss_before, "rss_mb_after": rss_after,
        "judge_failures": health["failures"]["total"], "cpu_count": os.cpu_count(),
        "dtype": dtype_choice(args.dtype)[0],  # what the server resolved: the same machine, the same rule
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
