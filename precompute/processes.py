"""The processes of one precompute run: one alone, or several started by `accelerate launch` / `torchrun`.

Process 0 (the main process) reads and writes the run folder; the others only
compute. Work is split by whole batches, in the same batches a single process
would form, so every number a sharded run writes equals the single-process one.
Results travel over a gloo group of their own (objects, CPU), whatever backend
accelerate chose for the GPUs, so gathering works the same on CPU and on CUDA.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence, TypeVar

from tqdm import tqdm

T = TypeVar("T")

# Other processes wait while the main one scores a 7B capture alone; that can take hours on a CPU.
WAIT_LIMIT = timedelta(hours=24)


def launch_command(processes: int) -> list[str]:
    """The command that starts `processes` precompute processes on this machine (append `run ...`): this
    interpreter alone, or accelerate's launcher, which gives every process its rank (gloo on CPU)."""
    if processes == 1:
        return [sys.executable, "-m", "precompute"]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "precompute"]


def cpu_launch_environment() -> dict[str, str]:
    """This environment for a launch on CPU: no GPU visible, and no WORLD_SIZE of a launcher around this process."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("WORLD_SIZE", None)
    return env


@dataclass
class ProcessGroup:
    rank: int = 0
    world: int = 1
    local_world: int = 1  # processes on this machine
    device: str | None = None  # the device accelerate gave this process, when several share a machine
    group: Any = None

    @classmethod
    def from_environment(cls) -> "ProcessGroup":
        """One process unless a launcher set WORLD_SIZE > 1; then join its process group through accelerate."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        import torch
        import torch.distributed as dist
        from accelerate import PartialState

        # Without cpu=True accelerate treats a GPU-less machine as a single process.
        state = PartialState(cpu=not torch.cuda.is_available(), timeout=WAIT_LIMIT)
        group = dist.new_group(backend="gloo", timeout=WAIT_LIMIT)
        return cls(state.process_index, state.num_processes, int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
                   str(state.device), group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mine(self, items: Sequence[T]) -> list[T]:
        return list(items[self.rank :: self.world])

    def broadcast(self, value: T) -> T:
        """The main process's `value`, on every process."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, value: T) -> list[T] | None:
        """Every process's `value`, in rank order, on the main process; None elsewhere."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out: list[T] | None = [None] * self.world if self.is_main else None  # type: ignore[list-item]
        dist.gather_object(value, out, dst=0, group=self.group)
        return out

    def on_main(self, work: Callable[[], T]) -> T:
        """Run `work` on the main process only; every process gets its result, or raises its error."""
        result, error = None, None
        if self.is_main:
            try:
                result = work()
            except Exception as exc:  # handed to every process, so none waits forever for the others
                error = exc
        result, error = self.broadcast((result, error))
        if error is not None:
            error.raised_on_main_process = True  # so only the main process reports it
            raise error
        return result

    def disk_share(self, items: Sequence[T]) -> list[T]:
        """This process's share of work that reads what the main process wrote (the capture) and writes files of
        the run: `mine` when every process runs on this machine; on several machines those files exist on the
        main one's disk alone, so the main process takes every item."""
        if self.local_world == self.world:
            return self.mine(items)
        return list(items) if self.is_main else []

    def each_share(self, items: Sequence[T], work: Callable[[list[T]], Any]) -> None:
        """`work` on this process's share of `items` (each item on one process); returns when every process is
        done, and raises on every process the first error any of them met (reported by the main process). Only
        processes of one machine share (`disk_share`)."""
        error = None
        try:
            work(self.disk_share(items))
        except Exception as exc:  # handed to every process, so none waits forever for the others
            error = exc
        errors = self.gather(error)
        first = self.broadcast(None if errors is None else next((e for e in errors if e is not None), None))
        if first is not None:
            first.raised_on_main_process = True  # so only the main process reports it
            raise first

    def check_agree(self, value: tuple, names: tuple[str, ...], error: Callable[[int, str], Exception]) -> None:
        """Every process's `value` must equal the main one's; else the main process raises `error(rank, what
        differs)` on every process."""
        if self.world == 1:
            return
        seen = self.gather(value)

        def compare() -> None:
            for rank, other in enumerate(seen):
                if other != seen[0]:
                    raise error(rank, " and ".join(n for n, a, b in zip(names, seen[0], other) if a != b))

        self.on_main(compare)

    def map_gathered(self, batches: Sequence[T], work: Callable[[T], Iterable[tuple[Hashable, Any]]]) -> dict | None:
        """`work` on this process's share of `batches` (each gives (key, result) pairs); every process's results
        in one dict on the main process, None elsewhere."""
        mine: dict = {}
        for batch in self.mine(batches):
            mine.update(work(batch))
        parts = self.gather(mine)
        if parts is None:
            return None
        return {key: value for part in parts for key, value in part.items()}

    def rounds(self, batches: Sequence[T]) -> Iterator[tuple[Sequence[T], T | None]]:
        """`batches` a round at a time, one batch per process: (the round, this process's batch or None)."""
        for first in range(0, len(batches), self.world):
            round_ = batches[first : first + self.world]
            yield round_, round_[self.rank] if self.rank < len(round_) else None

    def bar(self, **kwargs) -> tqdm:
        """A progress bar drawn by the main process only."""
        return tqdm(disable=not self.is_main, **kwargs)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def model_device(self, requested: str) -> str:
        """Where this process loads the model: its own GPU when several processes share a machine."""
        if self.world == 1 or not requested.startswith("cuda"):
            if requested == "auto" and self.local_world > 1:
                raise ValueError("--device auto spreads one model over all of a machine's GPUs; with several "
                                 "processes per machine use --device cuda (one GPU each), or launch one process "
                                 "per machine")
            return requested
        return self.device or requested
