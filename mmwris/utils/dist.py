"""Distributed training without GPUs.

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally and
its default DDP wrapper pins ``device_ids=[LOCAL_RANK]``; both fail on a CPU
machine. :func:`setup_cpu_distributed` initialises a gloo process group
*before* the Runner is built (the Runner then skips its own ``init_dist``)
and makes the DDP wrapper use ``device_ids=None``.
"""
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.config import Config


def _init_slurm_env() -> None:
    """Export torch.distributed's env:// variables from SLURM's."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')
    os.environ.setdefault('MASTER_PORT', '29500')


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a CPU (gloo) distributed run; no-op when CUDA is available.

    Args:
        cfg (Config): The config; ``model_wrapper_cfg`` is set so that DDP
            wraps a CPU module (``device_ids=None``).
        launcher (str): ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'``.

    Returns:
        bool: Whether a CPU process group was set up.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher == 'slurm':
        _init_slurm_env()
    elif launcher != 'pytorch':
        raise ValueError(f'CPU distributed runs support the "pytorch" and '
                         f'"slurm" launchers, not "{launcher}".')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    if wrapper['type'] in ('MMDistributedDataParallel',
                           'DistributedDataParallel'):
        wrapper['device_ids'] = None
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters',
                           cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    env_cfg = dict(cfg.get('env_cfg') or {})
    env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    cfg.env_cfg = env_cfg
    return True


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    Called at the end of the tools: a gloo group left for the interpreter's
    exit can abort one rank ("terminate called without an active
    exception") after all the work is done, failing a finished run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
