"""torchrun support: environment-based initialisation, collective helpers, rank-0-only writes.

``cxr train`` works unchanged under ``torchrun --nproc_per_node=N -m ml train ...`` (or
``python -m torch.distributed.run``): torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT;
:func:`init_distributed` reads them and starts NCCL on GPUs, gloo on CPUs. Without those variables
everything runs in one process and every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init_distributed(device: torch.device) -> DistContext:
    """Start the process group when launched by torchrun; pick this rank's device."""
    world = env_world_size()
    if world <= 1:
        return DistContext(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistContext(rank, world, local_rank, device, backend)


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(ctx: DistContext, obj: Any) -> list[Any]:
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(ctx: DistContext, values: list[float]) -> list[float]:
    """Sum a few numbers over all ranks (losses, counts)."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device if ctx.backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (e.g. a stop request seen by one of them)."""
    if not ctx.distributed:
        return flag
    return all_reduce_sum(ctx, [1.0 if flag else 0.0])[0] > 0


def gather_predictions(
    ctx: DistContext, probs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Collect every rank's predictions, drop the padding duplicates, order by sample index."""
    if ctx.distributed:
        parts = all_gather_object(ctx, (probs.cpu(), targets.cpu(), indices.cpu()))
        probs = torch.cat([p[0] for p in parts])
        targets = torch.cat([p[1] for p in parts])
        indices = torch.cat([p[2] for p in parts])
    order = torch.argsort(indices, stable=True)
    probs, targets, indices = probs[order], targets[order], indices[order]
    keep = torch.ones(len(indices), dtype=torch.bool)
    if len(indices) > 1:
        keep[1:] = indices[1:] != indices[:-1]
    return probs[keep], targets[keep], indices[keep]
