"""One instance ingesting events from Redis: deliveries/s and publish-to-delivery latency for
1,000 jobs x 1 subscriber, jobstream's ``RedisBus`` beside naive redis-py pub/sub in one run.

Two processes per run, on their own cores where the machine has two: a publisher (the other
instances and workers of a cluster, all in one) and the receiving instance. Each event carries
its publish time; the receiver records ``now - ts`` when a subscriber's reader takes it.

- ``jobstream``: the publisher calls ``RedisBus.publish_soon`` per event (the bus batches what is
  queued into one ``PUBLISH``); the receiver's ``RedisBus`` decodes each batch once and delivers
  in position order to 1,000 ``Subscriber`` objects, each drained by its own task (a stream).
- ``naive``: one ``PUBLISH`` per event; the receiver calls ``get_message`` per event and puts it
  on the job's ``asyncio.Queue``, read by one task per job.

Run: ``.venv/bin/python benchmarks/redis_ingest.py --rate 50000 --seconds 5`` (needs the local
Redis; keys and channels under a prefix of its own, nothing left behind).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import cpu_plan, machine_info, set_affinity

REDIS_URL = os.environ.get("JOBSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- receivers ---------------------------------------------------------------------------------


async def receive_jobstream(conf: dict[str, Any], ready: Any, done: Any) -> dict[str, Any]:
    from jobstream.bus import Subscriber
    from jobstream.bus.redis import RedisBus

    bus = RedisBus(REDIS_URL, conf["prefix"])
    await bus.start()
    bus._top = 0  # order by position, as an instance on a shared store does
    latencies: list[float] = []
    counts = [0]
    first_last = [0.0, 0.0]

    async def reader(subscriber: Subscriber) -> None:
        while True:
            await subscriber.wait()
            events = subscriber.drain()
            now = time.time()
            for event in events:
                latencies.append(now - event.ts_us / 1e6)
            counts[0] += len(events)
            if not first_last[0]:
                first_last[0] = now
            first_last[1] = now

    subscribers = [bus.subscribe(Subscriber(job_id=f"j{n}")) for n in range(conf["jobs"])]
    tasks = [asyncio.create_task(reader(s)) for s in subscribers]
    ready.set()
    total = conf["rate"] * conf["seconds"]
    deadline = time.monotonic() + conf["seconds"] + 30
    while counts[0] < total and time.monotonic() < deadline:  # noqa: ASYNC110 - a poll, not a wait
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await bus.close()
    return result(latencies, counts[0], total, first_last)


async def receive_naive(conf: dict[str, Any], ready: Any, done: Any) -> dict[str, Any]:
    import orjson
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.subscribe(conf["prefix"] + "naive")
    queues: dict[str, asyncio.Queue[dict[str, Any]]] = {
        f"j{n}": asyncio.Queue() for n in range(conf["jobs"])
    }
    latencies: list[float] = []
    counts = [0]
    first_last = [0.0, 0.0]

    async def reader(queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            event = await queue.get()
            now = time.time()
            latencies.append(now - event["ts_us"] / 1e6)
            counts[0] += 1
            if not first_last[0]:
                first_last[0] = now
            first_last[1] = now

    tasks = [asyncio.create_task(reader(q)) for q in queues.values()]
    ready.set()
    total = conf["rate"] * conf["seconds"]
    deadline = time.monotonic() + conf["seconds"] + 30
    while counts[0] < total and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            event = orjson.loads(message["data"])
            queues[event["job_id"]].put_nowait(event)
    for task in tasks:
        task.cancel()
    await pubsub.aclose()
    await client.aclose()
    return result(latencies, counts[0], total, first_last)


def result(
    latencies: list[float], received: int, expected: int, first_last: list[float]
) -> dict[str, Any]:
    span = max(first_last[1] - first_last[0], 1e-9)
    return {
        "received": received,
        "expected": expected,
        "deliveries_per_s": round(received / span),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
    }


def receiver_main(mode: str, conf: dict[str, Any], ready: Any, done: Any, out: Any) -> None:
    from jobstream.server.collector import settle

    set_affinity(0, conf["receiver_cpus"])
    settle()  # the collector's settings of a server, for both modes
    run = receive_jobstream if mode == "jobstream" else receive_naive
    started = time.process_time()
    if conf.get("profile"):
        import cProfile

        profile = cProfile.Profile()
        outcome = profile.runcall(asyncio.run, run(conf, ready, done))
        profile.dump_stats(conf["profile"] + f".{mode}")
    else:
        outcome = asyncio.run(run(conf, ready, done))
    outcome["receiver_cpu_s"] = round(time.process_time() - started, 2)
    out.send(outcome)


# -- publishers --------------------------------------------------------------------------------


async def publish(mode: str, conf: dict[str, Any]) -> float:
    """Publish ``rate`` events a second for ``seconds``, round-robin over the jobs, on an
    absolute schedule (ticks of 1 ms); the rate actually reached."""
    from jobstream.models import Event, EventType

    jobs, rate, seconds = conf["jobs"], conf["rate"], conf["seconds"]
    per_tick = max(1, rate // 1000)
    total = rate * seconds
    sent = 0
    if mode == "jobstream":
        from jobstream.bus.redis import RedisBus

        bus = RedisBus(REDIS_URL, conf["prefix"], events=False)
        await bus.start()
    else:
        import orjson
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        channel = conf["prefix"] + "naive"
    start = time.monotonic()
    tick = 0
    while sent < total:
        tick += 1
        batch = []
        for _ in range(min(per_tick, total - sent)):
            sent += 1
            batch.append(
                Event(
                    job_id=f"j{sent % jobs}",
                    owner="bench",
                    seq=sent // jobs + 1,
                    type=EventType.PROGRESS,
                    data={"progress": 0.5, "message": "working"},
                    ts_us=time.time_ns() // 1000,
                    pos=sent,
                )
            )
        if mode == "jobstream":
            for event in batch:
                bus.publish_soon([event])
        else:
            # One PUBLISH per event, pipelined per tick, so the publisher keeps up and the
            # receiving side is what is measured.
            async with client.pipeline(transaction=False) as pipe:
                for event in batch:
                    pipe.publish(channel, orjson.dumps(event.to_record()))
                await pipe.execute()
        delay = start + tick / 1000 - time.monotonic()
        await asyncio.sleep(max(delay, 0))
    reached = sent / (time.monotonic() - start)
    if mode == "jobstream":
        await asyncio.sleep(0.5)
        await bus.close()
    else:
        await client.aclose()
    return reached


def run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    publisher_cpus, receiver_cpus = cpu_plan(not args.no_pin)
    conf = {
        "prefix": f"jobstream-bench-{secrets.token_hex(4)}:",
        "jobs": args.jobs,
        "rate": args.rate,
        "seconds": args.seconds,
        "receiver_cpus": receiver_cpus,
        "profile": args.profile,
    }
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=receiver_main, args=(mode, conf, ready, done, child))
    proc.start()
    if not ready.wait(30):
        raise RuntimeError("the receiver did not start")
    time.sleep(0.3)
    set_affinity(0, publisher_cpus)
    reached = asyncio.run(publish(mode, conf))
    outcome: dict[str, Any] = parent.recv()
    proc.join(10)
    return {"mode": mode, "published_per_s": round(reached), **outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=50_000, help="events a second, published")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--mode", choices=["jobstream", "naive", "both"], default="both")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the receiver into PATH.<mode>")
    args = parser.parse_args()
    modes = ["jobstream", "naive"] if args.mode == "both" else [args.mode]
    rows = [run(mode, args) for mode in modes]
    info = machine_info()
    print(f"{info['nproc']} CPUs ({info['cpu']}), Python {info['python']}")
    print(f"{args.jobs} jobs x 1 subscriber, {args.rate} events/s asked for {args.seconds} s")
    head = ["mode", "published/s", "received", "expected", "deliveries/s", "p50 ms", "p99 ms"]
    head.append("receiver cpu s")
    print(" | ".join(head))
    for row in rows:
        print(
            " | ".join(
                str(row[k])
                for k in (
                    "mode",
                    "published_per_s",
                    "received",
                    "expected",
                    "deliveries_per_s",
                    "p50_ms",
                    "p99_ms",
                    "receiver_cpu_s",
                )
            )
        )


if __name__ == "__main__":
    main()
