"""The processes of one precompute run: one alone, or several started by `accelerate launch` / `torchrun`.

Process 0 (the main process) reads and writes the run folder; the others only
compute. Work is split by whole batches, in the same batches a single process
would form, so every number a sharded run writes equals the single-process one.
Results travel over a gloo group of their own (objects, CPU), whatever backend
accelerate chose for the GPUs, so gathering works the same on CPU and on CUDA.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence, TypeVar

T = TypeVar("T")

# Other processes wait while the main one scores a 7B capture alone; that can take hours on a CPU.
WAIT_LIMIT = timedelta(hours=24)


@dataclass
class Workers:
    rank: int = 0
    world: int = 1
    local_world: int = 1  # processes on this machine
    device: str | None = None  # the device accelerate gave this process, when several share a machine
    group: Any = None

    @classmethod
    def from_environment(cls) -> "Workers":
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
