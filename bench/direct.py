"""The service without HTTP: ``GenerationService.submit`` called in-process, from asyncio tasks.

The composition root builds the real container from the same settings the API runs with
(``bootstrap.build_container``: the same pools, adapters and use cases); ``concurrency`` tasks
each await ``container.generations.submit`` in a loop. Set between the bare pipeline and the
API, it splits the service's cost in two: what the use case, its asyncio bridging and the
adapters add to the bare work, and what HTTP adds on top (uvicorn, FastAPI, the client).

It runs as a subprocess of ``bench.run`` and speaks the same stdin/stdout protocol as
``bench.bare`` (``READY``, ``GO <start> <end>``, ``DONE``); settings come from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

from bench.load import Recording
from creativeflow import __version__
from creativeflow.bootstrap import build_container
from creativeflow.observability.metrics import Metrics
from creativeflow.services.generations import SubmitGeneration
from creativeflow.settings import Settings


async def run(concurrency: int, users: list[str], body: dict[str, Any], out_path: str) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    # with a metrics registry, as the API's composition root builds it
    container = build_container(settings, metrics=Metrics(version=__version__))
    command = SubmitGeneration(
        prompt=body["prompt"],
        format=body["format"],
        width=body["width"],
        height=body["height"],
        samples=body["samples"],
        style_guidance=body.get("style_guidance"),
        brand_elements={**body["brand_elements"], "logo_url": None},
        project_id=body.get("project_id"),
    )
    counter = iter(range(10**12))

    async def submit() -> None:
        user = users[next(counter) % len(users)]
        await container.generations.submit(user, command, uuid.uuid4().hex)

    try:
        await asyncio.gather(*(submit() for _ in range(concurrency * 2)))  # warm-up
        print("READY", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        words = line.split()
        assert words and words[0] == "GO", words
        recording = Recording(window_start=float(words[1]), window_end=float(words[2]))

        async def task() -> None:
            while True:
                start = time.monotonic()
                if start >= recording.window_end:
                    return
                try:
                    await submit()
                    ok, label = True, ""
                except Exception as exc:
                    ok, label = False, type(exc).__name__
                recording.add(start, time.monotonic(), ok, label)

        await asyncio.gather(*(task() for _ in range(concurrency)))
        with open(out_path, "w") as out:
            json.dump(recording.to_json(), out)
    finally:
        await container.close()
    print("DONE", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.direct")
    parser.add_argument("--config", required=True, help="JSON: concurrency, users, body")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()
    with open(options.config) as source:
        config = json.load(source)
    coroutine = run(config["concurrency"], config["users"], config["body"], options.out)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


if __name__ == "__main__":
    main()
