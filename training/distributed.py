"""The process group under the training loop: ranks, sums across processes, the data shard.

Everything torch.distributed lives here. In a single process (WORLD_SIZE unset or 1, or no
process group initialised) every operation is a no-op that returns its input, so the loop reads
the same whether one process trains or several.

The loop all-reduces gradients itself, once per phase as one flat buffer, rather than wrapping
the networks in DistributedDataParallel (see training/loop.py for why).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler

from likeness.errors import ConfigError

__all__ = ["EndlessShard", "Processes", "join_processes"]


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place among the training processes, and the collectives the loop uses."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False            # this process initialised the group (and must destroy it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and reports progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over all processes (a copy; the input itself when alone)."""
        if self.active:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is True on any of them."""
        if not self.active:
            return flag
        return bool(self.sum(torch.tensor(float(flag), device=self.device)) > 0)

    def sum_grads(self, module: torch.nn.Module) -> None:
        """Sum the gradients of `module` over all processes, as one flat all-reduce."""
        if not self.active:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        for grad, summed in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(summed.view_as(grad))

    def broadcast(self, module: torch.nn.Module) -> None:
        """Give every process rank 0's weights and buffers."""
        if self.active:
            for tensor in itertools.chain(module.parameters(), module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def leave(self, *, failed: bool = False) -> None:
        """Destroy the process group if this process created it.

        After a clean run every process first waits for the others: rank 0 is still writing the
        last snapshot and metrics when the rest are done, and a process that tears its connections
        down (or exits, which makes torchrun stop the others) under a busy peer can cut those
        writes short. After a failure there is no wait: the peers may never arrive.
        """
        if self.owns_group and dist.is_initialized():
            if self.active and not failed:
                dist.barrier()
            dist.destroy_process_group()


def join_processes(setting: str) -> Processes:
    """Read torchrun's environment; join the process group when WORLD_SIZE > 1.

    `setting` is TrainConfig.device: "auto", "cpu", "cuda" or "cuda:N". Under torchrun each
    process takes cuda:LOCAL_RANK and the group uses NCCL on CUDA, gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = setting.startswith("cuda") or (setting == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise ConfigError(f"TrainConfig.device is {setting!r} but CUDA is not available",
                          hint="use device='cpu' or 'auto'")
    if world <= 1:
        device = torch.device(("cuda" if cuda else "cpu") if setting == "auto" else setting)
        return Processes(0, 1, device)
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), device, owns)


class EndlessShard(Sampler[int]):
    """Epoch after epoch of DistributedSampler's shard, starting `start` samples in.

    Rank r's k-th sample is the global stream's sample k * world_size + r (when the dataset
    size is a multiple of world_size), so the batch does not depend on how many processes share
    it, and resuming at a sample count needs no state beyond that count.
    """

    def __init__(self, dataset: Dataset, *, procs: Processes, seed: int, start: int) -> None:
        self.shard: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=procs.world_size, rank=procs.rank, shuffle=True, seed=seed, drop_last=False)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        epoch, skip = divmod(self.start, len(self.shard))
        while True:
            self.shard.set_epoch(epoch)
            yield from itertools.islice(iter(self.shard), skip, None)
            epoch, skip = epoch + 1, 0
