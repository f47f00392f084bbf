"""An elastic pool of generator actors serving one policy (or the league's snapshots).

The driver holds it. A request is split into one contiguous shard per generator; the answers
stay in the object store (the driver checks each shard with a task that returns its length,
then joins them with another), so texts go from generators to judges and league directly.

- Growing and shrinking: `resize(n)` takes effect at once for new requests. A new generator
  joins with the pool's latest weights and version before it takes work; a removed one gets
  no new shard and is stopped once the shards it holds have come back.
- Failures: a shard whose generator died (a killed actor, a lost node) is sent to another
  generator and the dead one is replaced, up to `retries` times per shard; since games are
  recorded only once all their answers are in, none is lost and none recorded twice. An
  error raised by the engine itself is not retried: it is a bug or a bad input, and it
  surfaces as it is.
- Weight sync goes to every generator with a deadline (`sync_timeout_s`) and fails loudly
  (`GeneratorError`) rather than hang. `sync_from(learner)` sends the learner's weights either
  through the object store (every generator reloads the published tensors) or, with a
  `transfer` backend (`nccl` on GPUs, `gloo` on CPU), over vLLM's weight-transfer engine: the
  learner broadcasts to a group of the pool's generators, re-opened whenever they change. A
  generator joining takes the learner's weights once through the object store, then the group.
- Starting: `launch` starts a pool's generators without waiting for their engines, so several
  pools load side by side; `Launch.pool()` waits for them.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayTaskError

from actors.actor import stop_generator
from actors.generator import GeneratorError

StartGenerator = Callable[[int], Any]  # (serial number) -> a new generator actor handle


@ray.remote(num_cpus=0)
def _length(texts: list) -> int:
    return len(texts)


@ray.remote(num_cpus=0)
def interleave(index_lists: list[list[int]], *parts: list) -> list:
    """Answers from several generators, back in request order: `parts[k][j]` is item `index_lists[k][j]`."""
    out: list = [None] * sum(len(idx) for idx in index_lists)
    for idx, answers in zip(index_lists, parts, strict=True):
        for i, answer in zip(idx, answers, strict=True):
            out[i] = answer
    return out


@dataclass
class _Shard:
    begin: int
    end: int
    actor: Any
    ref: Any
    tries: int = 0


@dataclass
class Pending:
    """A request under way; `result()` waits for it (retrying shards of dead generators) and
    returns one object reference to the whole answer list."""

    pool: GeneratorPool
    method: str
    items: dict[str, list | None]
    shared: dict[str, Any]
    shards: list[_Shard] = field(default_factory=list)

    def result(self) -> ray.ObjectRef:
        return self.pool._collect(self)


class GeneratorPool:
    def __init__(self, start: StartGenerator, size: int = 1, retries: int = 2, sync_timeout_s: float = 300.0,
                 start_timeout_s: float = 600.0, transfer: str | None = None, ranks_per_generator: int = 1,
                 launched: Sequence[Any] = ()) -> None:
        """`launched`: generators already started for this pool (`launch`), its first ones."""
        if size < 1:
            raise ValueError(f"a generator pool needs at least one generator (got {size})")
        self.start, self.retries, self.sync_timeout_s, self.start_timeout_s = start, retries, sync_timeout_s, start_timeout_s
        self.transfer, self.ranks_per_generator = transfer, ranks_per_generator
        self.learner: Any = None  # the learner the pool syncs from over `transfer`
        self.group: list[Any] = []  # the generators of the learner's open transfer group
        self.started = len(launched)  # serial numbers of generators ever started (names stay unique)
        self.update: Any = None  # the latest weights (an object reference), what a joining generator loads
        self.policy = "current"
        self.version: int | None = None
        self.replaced = 0  # generators that died and were replaced
        self.last_sync_seconds = 0.0  # how long the latest weight sync took
        self.errors: list[str] = []  # what went wrong with generators, for the run's log
        self.requested = 0  # prompts asked for since `take_requested` (the autoscaler's queue depth)
        self.draining: list[Any] = []  # removed generators still holding shards
        self.active: list[Any] = []
        self.holding: dict[int, int] = {}  # id(actor) -> shards sent to it and not yet collected
        self.successors: list[tuple[Any, Any]] = []  # (dead generator, the one that replaced it)
        self.active.extend(self._started(size, list(launched)))

    @property
    def size(self) -> int:
        return len(self.active)

    def resize(self, n: int) -> None:
        """Grow to `n` generators (each joins with the current weights first) or shrink to `n`
        (the newest leave; each finishes the shards it holds)."""
        if n < 1:
            raise ValueError(f"a generator pool needs at least one generator (got {n})")
        while len(self.active) > n:
            self.draining.append(self.active.pop())
        self._stop_drained()
        self.active.extend(self._started(n - len(self.active)))

    def _started(self, n: int, launched: list[Any] | None = None) -> list[Any]:
        """`n` new generators (the `launched` ones first), serving the pool's weights and version.
        One that dies while it starts is started again after a pause (a lost node keeps being
        offered work until Ray's health checks declare it dead), for up to `start_timeout_s`."""
        ready: list[Any] = []
        deadline, pause = time.monotonic() + self.start_timeout_s, 1.0
        while True:
            new, launched = launched or [], None
            for _ in range(n - len(ready) - len(new)):
                self.started += 1
                new.append(self.start(self.started))
            ready += [actor for actor in new if self._joined(actor)]
            if len(ready) == n:
                return ready
            if time.monotonic() + pause > deadline:
                for actor in ready:
                    stop_generator(actor)
                last = self.errors[-1] if self.errors else "no error recorded"
                raise GeneratorError(
                    f"{n - len(ready)} new generator(s) kept dying while starting for {self.start_timeout_s:g} s; last: {last}"
                )
            time.sleep(pause)
            pause = min(2 * pause, 15.0)

    def _joined(self, actor: Any) -> bool:
        """Wait for a new generator to start, then give it the pool's weights; False if it died meanwhile."""
        try:
            ray.get(actor.serving.remote(), timeout=self.start_timeout_s)
            # the weights the others serve (a later version may be training meanwhile: the asynchronous pipeline)
            update = self.learner.publish.remote(served=True) if self.learner is not None else self.update
            if update is not None:
                ray.get(actor.load_weights.remote(update, self.policy), timeout=self.sync_timeout_s)
            return True
        except GetTimeoutError:
            stop_generator(actor)
            raise GeneratorError(
                f"a new generator did not start and take the weights within {self.start_timeout_s:g} + {self.sync_timeout_s:g} s; "
                "the cluster may lack the resources it asks for"
            ) from None
        except RayActorError as err:
            stop_generator(actor)  # releases what it held (a tensor-parallel placement group)
            self.errors.append(f"a new generator died while starting: {str(err).strip().splitlines()[0][:300]}")
            print(f"generator pool: {self.errors[-1]}", flush=True)
            return False

    def sync_from(self, learner: Any, policy: str = "current") -> int:
        """The learner's current weights (a learner actor) to every generator, served as its
        version of `policy`; returns the version."""
        if self.transfer is None:
            return self.load_weights(learner.publish.remote(), policy)
        self.learner, self.policy = learner, policy
        start = time.perf_counter()
        for actor in _dead_among(self.active):  # died since its last request: not into the group
            self._replace(actor)
        if [id(a) for a in self.group] != [id(a) for a in self.active]:
            self._wait(learner.open_transfer.remote(self.transfer, self.active, self.ranks_per_generator, self.sync_timeout_s),
                       f"opening a {self.transfer} weight-transfer group")
            self.group = list(self.active)
        self.version = self._wait(learner.send_weights.remote(policy), f"weight transfer over {self.transfer}")
        self.last_sync_seconds = time.perf_counter() - start
        return self.version

    def _wait(self, ref: Any, what: str) -> Any:
        """A learner call of the transfer. Each of its steps (at most three in one call) has the
        `sync_timeout_s` deadline and says which step failed; waiting three times that here lets
        that message through, and still fails the sync where no step deadline reaches (a peer
        stuck inside an NCCL collective). A generator lost in the middle of a transfer leaves the
        others inside it, so it fails the sync (resume goes on)."""
        deadline = 3 * self.sync_timeout_s
        try:
            return ray.get(ref, timeout=deadline)
        except GetTimeoutError:
            raise GeneratorError(f"{what} to {len(self.active)} generator(s) did not finish within {deadline:g} s") from None
        except (RayActorError, RayTaskError) as err:
            self.group = []
            raise GeneratorError(f"{what} failed: {str(err).strip().splitlines()[-1][:300]}") from None

    def load_weights(self, update: Any, policy: str = "current") -> int:
        """New weights (a `WeightUpdate` or a reference to one) to every generator; returns the version."""
        self.update, self.policy = update, policy
        versions = self._sync(self.active, update, policy)
        self.version = versions[0]
        return self.version

    def _sync(self, actors: list[Any], update: Any, policy: str) -> list[int]:
        refs = [a.load_weights.remote(update, policy) for a in actors]
        start = time.perf_counter()
        try:
            versions = ray.get(refs, timeout=self.sync_timeout_s)
        except GetTimeoutError:
            raise GeneratorError(f"weight sync to {len(actors)} generator(s) did not finish within {self.sync_timeout_s:g} s") from None
        except RayActorError:
            # a generator died during the sync: replace the dead ones (they join with these weights)
            versions = [self._sync_one(a, ref) for a, ref in zip(actors, refs)]
        self.last_sync_seconds = time.perf_counter() - start
        return versions

    def _sync_one(self, actor: Any, ref: Any) -> int:
        try:
            return ray.get(ref, timeout=self.sync_timeout_s)
        except GetTimeoutError:
            raise GeneratorError(f"weight sync to a generator did not finish within {self.sync_timeout_s:g} s") from None
        except RayActorError:
            replacement = self._replace(actor)
            return ray.get(replacement.serving.remote())[1]

    def _replace(self, dead: Any) -> Any:
        """The generator that takes a dead one's work: a new one joined with the pool's weights in
        its place if it was active; the one that already replaced it; or (it was draining) an
        active one, so a shrink stays a shrink."""
        for gone, fresh in self.successors:
            if gone is dead:
                return fresh
        self.draining = [a for a in self.draining if a is not dead]
        stop_generator(dead)  # gone already; this releases what it held (a tensor-parallel placement group)
        if not any(a is dead for a in self.active):
            return self.active[0]
        fresh = self._started(1)[0]
        self.active = [fresh if a is dead else a for a in self.active]
        self.successors.append((dead, fresh))
        self.replaced += 1
        return fresh

    # ------------------------------------------------------------ requests
    def submit(self, method: str, items: dict[str, list | None], **shared: Any) -> Pending:
        """`method` of the generators over `items` (equal-length lists, one element per prompt;
        None for an argument not given), split into one shard per generator."""
        n = len(items["prompts"])
        self.requested += n
        pending = Pending(self, method, items, shared)
        k = max(1, min(len(self.active), n))
        bounds = [round(i * n / k) for i in range(k + 1)]
        for actor, begin, end in zip(self.active, bounds, bounds[1:]):
            pending.shards.append(self._send(pending, actor, begin, end))
        return pending

    def _send(self, pending: Pending, actor: Any, begin: int, end: int, tries: int = 0) -> _Shard:
        args = {key: (None if values is None else values[begin:end]) for key, values in pending.items.items()}
        ref = getattr(actor, pending.method).remote(**args, **pending.shared)
        self.holding[id(actor)] = self.holding.get(id(actor), 0) + 1
        return _Shard(begin, end, actor, ref, tries)

    def _collect(self, pending: Pending) -> ray.ObjectRef:
        done: list[_Shard] = []
        todo = list(pending.shards)
        while todo:
            checks = [_length.remote(s.ref) for s in todo]
            retry = []
            for shard, check in zip(todo, checks):
                try:
                    ray.get(check)
                    done.append(shard)
                except (RayActorError, ObjectLostError) as err:  # a dead generator, or its answers lost with its node
                    retry.append((shard, err))
                finally:
                    self._returned(shard)
            todo = []
            for shard, err in retry:
                if shard.tries >= self.retries:
                    raise GeneratorError(f"items {shard.begin}-{shard.end} failed on {shard.tries + 1} generators; last: {err}") from None
                actor = self._replace(shard.actor) if _dead(shard.actor) else shard.actor
                todo.append(self._send(pending, actor, shard.begin, shard.end, shard.tries + 1))
        done.sort(key=lambda s: s.begin)
        if len(done) == 1:
            return done[0].ref
        return interleave.remote([list(range(s.begin, s.end)) for s in done], *[s.ref for s in done])

    def _returned(self, shard: _Shard) -> None:
        """A shard is back (answered or failed): its generator holds one fewer; a drained one holding none stops."""
        self.holding[id(shard.actor)] -= 1
        self._stop_drained()

    def _stop_drained(self) -> None:
        for actor in [a for a in self.draining if not self.holding.get(id(a))]:
            stop_generator(actor)
            self.draining.remove(actor)
            self.holding.pop(id(actor), None)

    def take_requested(self) -> int:
        """Prompts asked for since the last call (a queue depth per iteration)."""
        n, self.requested = self.requested, 0
        return n

    def take_tokens(self) -> int:
        """Tokens the pool's generators answered with since the last call. A generator lost (or
        drained and stopped) since takes its count with it: the figure is a floor, not a bill."""
        total = 0
        for ref in [actor.take_tokens.remote() for actor in self.active + self.draining]:
            try:
                total += ray.get(ref, timeout=self.sync_timeout_s)
            except (RayActorError, GetTimeoutError):
                continue
        return total

    def generate(self, prompts: list[str], sampling: Any, seeds: list[int] | None = None) -> ray.ObjectRef:
        return self.submit("generate", {"prompts": prompts, "seeds": seeds}, sampling=sampling).result()

    def generate_tokens(self, prompts: list[str], sampling: Any, seeds: list[int] | None = None) -> ray.ObjectRef:
        return self.submit("generate_tokens", {"prompts": prompts, "seeds": seeds}, sampling=sampling).result()

    def generate_as(self, prompts: list[str], policies: list[str], checkpoints: dict, sampling: Any, seeds: list[int]) -> Pending:
        """Answers, each as (text, cut off at the token limit), as the snapshot named beside each
        prompt (a snapshot pool); returns the request under way."""
        return self.submit("generate_as", {"prompts": prompts, "policies": policies, "seeds": seeds}, checkpoints=checkpoints, sampling=sampling)

    def serving(self) -> tuple[str, int]:
        return ray.get(self.active[0].serving.remote())

    def stop(self) -> None:
        for actor in self.active + self.draining:
            stop_generator(actor)


def _dead(actor: Any) -> bool:
    """Whether an actor is gone for good (its answer to a ping is an actor error)."""
    return bool(_dead_among([actor]))


def _dead_among(actors: list[Any]) -> list[Any]:
    """The actors that do not answer a ping (all pinged at once)."""
    pings = [a.serving.remote() for a in actors]
    dead = []
    for actor, ping in zip(actors, pings):
        try:
            ray.get(ping, timeout=30)
        except (RayActorError, GetTimeoutError):
            dead.append(actor)
    return dead


@dataclass
class Launch:
    """Generators whose engines are loading, started before the pool that will hold them."""

    start: StartGenerator
    actors: list[Any]
    options: dict[str, Any]  # GeneratorPool's other arguments

    def pool(self) -> GeneratorPool:
        """Wait for the launched generators and make their pool."""
        return GeneratorPool(self.start, len(self.actors), launched=self.actors, **self.options)


def launch(start: StartGenerator, size: int, **options: Any) -> Launch:
    """Start a pool's `size` generators now and return without waiting for their engines, so
    that several pools start side by side."""
    if size < 1:
        raise ValueError(f"a generator pool needs at least one generator (got {size})")
    return Launch(start, [start(serial) for serial in range(1, size + 1)], options)
