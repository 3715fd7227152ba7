"""Synthesis on a Ray cluster: actors hold an engine each, the driver keeps the ledger.

The driver cuts the pending chunks into small work units (grouped by voice, in reading order, so a
long chapter spreads over several actors and a slow actor holds little). An idle actor takes the next
unit of a voice it has already prepared if there is one, else any unit. Each unit comes back as batch
outcomes that the driver commits exactly as a local run does; a unit whose actor died is put back in
the queue and a fresh actor takes over, so nothing is lost and nothing is committed twice.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from batchtts.errors import BatchttsError, EnvironmentProblem
from batchtts.state.voice import VoiceAudio, VoiceCache
from batchtts.synthesis.executors import ExecutorOptions, Work
from batchtts.synthesis.worker import BatchOutcome, History, SynthSettings, Worker
from batchtts.text.chunks import Chunk
from batchtts.verify.stage import Plans

log = logging.getLogger("batchtts")
MAX_DEATHS = 3  # actors a work unit may take down before the run gives up on it
UNIT_BATCHES = 2  # batches of work per unit: small enough to rebalance, big enough to fill a batch


class _Actor:
    """Body of the Ray actor: one Worker (engine loaded once), voices prepared once each."""

    def __init__(self, name: str, settings: SynthSettings, voices: dict[str, VoiceAudio], verify: Plans):
        logging.basicConfig(level=logging.INFO, format="batchtts[actor]: %(message)s")
        self.worker = Worker(name, settings, voices, verify=verify)

    def run_unit(self, chunks: list[Chunk], attempts: dict[str, int], history: History) -> list[BatchOutcome]:
        return list(self.worker.work(chunks, attempts, history=history))


def _connect(opts: ExecutorOptions):
    if not opts.address:  # a cluster of our own stays on loopback (Ray otherwise binds the outward interface)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise EnvironmentProblem("--executor ray needs Ray: pip install 'batchtts[ray]'") from None
    if not ray.is_initialized():
        if opts.address:
            ray.init(address=opts.address, log_to_driver=False)
        else:  # a private local cluster, on loopback only
            ray.init(include_dashboard=False, log_to_driver=False)
    return ray


def work_units(todo: list[Chunk], size: int) -> deque[tuple[str, list[Chunk]]]:
    """Small units per voice; a rolling-context chapter stays whole (its sentences run one after another)."""
    units: deque[tuple[str, list[Chunk]]] = deque()
    by_voice: dict[str, list[Chunk]] = {}
    chains: dict[str, list[Chunk]] = {}
    for c in {c.key: c for c in todo}.values():
        if c.rolling:
            chains.setdefault(c.job_id, []).append(c)
        else:
            by_voice.setdefault(c.voice, []).append(c)
    units.extend((chain[0].voice, chain) for chain in chains.values())
    for voice, chunks in by_voice.items():
        units.extend((voice, chunks[i : i + size]) for i in range(0, len(chunks), size))
    return units


class RayExecutor:
    def __init__(self, options: ExecutorOptions):
        self.options = options

    def execute(
        self,
        work: Work,
        settings: SynthSettings,
        commit: Callable[[BatchOutcome], None],
        stop: Callable[[], bool],
        cache: VoiceCache | None = None,  # actors prepare voices themselves
    ) -> None:
        _drive(work, settings, commit, stop, self.options)


def _drive(
    work: Work,
    settings: SynthSettings,
    commit: Callable[[BatchOutcome], None],
    stop: Callable[[], bool],
    opts: ExecutorOptions,
) -> None:
    ray = _connect(opts)
    from ray.exceptions import RayActorError, RayTaskError

    gpus = opts.gpus_per_worker
    resources = ray.cluster_resources()
    count = opts.workers or max(1, int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1)))
    threads = 1 if not gpus else max(1, int(resources.get("CPU", 1) // count))
    actor_settings = replace(settings, threads=threads)
    remote = ray.remote(num_cpus=0 if gpus else 1, num_gpus=gpus, max_restarts=0)(_Actor)
    prefix = f"batchtts-{os.getpid()}"
    serial = itertools.count()

    def spawn():
        return remote.options(name=f"{prefix}-{next(serial)}").remote(
            work.engine, actor_settings, work.voices, work.verify
        )

    actors = [spawn() for _ in range(count)]
    seen: list[set[str]] = [set() for _ in actors]
    size = UNIT_BATCHES * (settings.max_batch or 4)
    units = work_units(work.todo, size)
    log.info(
        "Ray: %d actors (%s each), %d work units of up to %d chunks",
        count,
        f"{gpus} GPU" if gpus else "1 CPU",
        len(units),
        size,
    )
    inflight: dict = {}  # object ref -> (actor slot, unit)
    shared = (ray.put(work.attempts), ray.put(work.history))  # sent to the object store once, not with every unit
    deaths: dict[int, int] = {}  # work unit -> actors that died running it
    try:
        while (units or inflight) and not stop():
            busy = {slot for slot, _ in inflight.values()}
            for slot in range(len(actors)):
                if slot in busy or not units:
                    continue
                pick = next((u for u in units if u[0] in seen[slot]), units[0])
                units.remove(pick)
                seen[slot].add(pick[0])
                inflight[actors[slot].run_unit.remote(pick[1], *shared)] = (slot, pick)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            slot, unit = inflight.pop(ready[0])
            try:
                outcomes = ray.get(ready[0])
            except RayTaskError as exc:  # the engine raised inside the actor: report it as a local run would
                if isinstance(exc.cause, BatchttsError):
                    raise exc.cause from None
                raise
            except RayActorError as exc:  # the actor's process died (killed, out of memory, node lost)
                deaths[id(unit)] = deaths.get(id(unit), 0) + 1
                if deaths[id(unit)] > MAX_DEATHS:  # not a lost node: this work kills every actor that takes it
                    raise EnvironmentProblem(
                        f"Ray actors died {deaths[id(unit)]} times on the same {len(unit[1])} chunks "
                        f"({type(exc).__name__}); check the actors' memory and logs (`ray logs`)"
                    ) from None
                log.warning(
                    "Ray actor %d died (%s); its %d chunks go to a fresh actor", slot, type(exc).__name__, len(unit[1])
                )
                units.appendleft(unit)
                actors[slot], seen[slot] = spawn(), set()
                continue
            for outcome in outcomes:
                commit(outcome)
    finally:
        for ref in inflight:
            ray.cancel(ref, force=True)
        for actor in actors:
            ray.kill(actor)
