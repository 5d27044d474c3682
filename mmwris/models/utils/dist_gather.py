"""Gather tensors across ranks for losses that compare against all ranks."""
from typing import List, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from torch import Tensor


def _distributed() -> bool:
    return (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


def _row_counts(x: Tensor) -> List[int]:
    """``N_r`` of every rank."""
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def _all_gather_rows(x: Tensor, sizes: Sequence[int]) -> List[Tensor]:
    """Every rank's rows (padded to the largest count for the transfer)."""
    padded = x.new_zeros((max(sizes), ) + tuple(x.shape[1:]))
    padded[:x.shape[0]] = x.detach()
    buffers = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(buffers, padded)
    return [buf[:n] for buf, n in zip(buffers, sizes)]


class _GatherSumGrad(torch.autograd.Function):
    """All-gather whose backward all-reduces (sums) the gradient of the
    gathered tensor and returns this rank's rows of it."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: Tuple[int, ...]) -> Tensor:
        ctx.start = sum(sizes[:dist.get_rank()])
        ctx.rows = x.shape[0]
        return torch.cat(_all_gather_rows(x, sizes))

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.start:ctx.start + ctx.rows], None


def gather_with_grad(x: Tensor,
                     return_offset: bool = False,
                     sum_grads: bool = True
                     ) -> Union[Tensor, Tuple[Tensor, int]]:
    """Concatenate ``x [N_r, ...]`` of every rank in rank order.

    Ranks may hold different ``N_r``. Without an initialised process group
    (or with one process) it is the identity.

    Gradients: with ``sum_grads=True`` (default) the backward all-reduces the
    gradient of the gathered tensor, so the local rows receive the gradient
    of *every* rank's loss; after DDP's gradient averaging the update equals
    that of one process holding the whole batch, whatever the number of
    processes (every rank must run backward through the result: the
    all-reduce is a collective). With ``sum_grads=False`` the other ranks'
    rows are constants and only this rank's loss reaches the local rows
    (all_gather, then the local slice replaced by ``x``).

    Args:
        x (Tensor): ``[N, ...]`` local rows.
        return_offset (bool): Also return the index of this rank's first row
            in the result (``sum of N_r`` over lower ranks), e.g. to place the
            identity target of a contrastive loss.
        sum_grads (bool): See above.

    Returns:
        Tensor | tuple: ``[sum_r N_r, ...]`` and, optionally, the offset.
    """
    if not _distributed():
        return (x, 0) if return_offset else x
    rank = dist.get_rank()
    sizes = _row_counts(x)
    if sum_grads and torch.is_grad_enabled() and x.requires_grad:
        gathered = _GatherSumGrad.apply(x, tuple(sizes))
    else:
        parts = _all_gather_rows(x, sizes)
        parts[rank] = x
        gathered = torch.cat(parts)
    if return_offset:
        return gathered, sum(sizes[:rank])
    return gathered
