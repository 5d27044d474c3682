"""Training IRN on the seed maps of a split (the released TRIS
``IRNet/step_refer/train_irn.py`` with ``ReferAffinityDataset``).

:class:`IRNSeedDataset` turns (image, seed PNG) pairs into random crops with
their pairwise affinity labels; :func:`train_irn` trains
:class:`~mmwris.pseudo_labels.irn.net.AffinityDisplacementNet` with the
released recipe (SGD, poly lr, displacement branch at 10x lr), resumably and
optionally over several processes, then centres the displacement field
(``mean_shift.running_mean``) and saves ``irn.pth``; :func:`load_irn` reads
it back for inference.
"""
import io
import os
import os.path as osp
import time
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mmwris.models.foundation.checkpoint import (load_weights_strict,
                                                 read_state_dict)
from mmwris.utils.io import atomic_write_bytes
from ..refiners import IGNORE_INDEX
from .net import AffinityDisplacementNet
from .path_index import PathIndex, affinity_labels

__all__ = ['IRNSeedDataset', 'train_irn', 'load_irn']

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The released PolyOptimizer: lr = lr0 * (1 - step / max_step) ** 0.9.
POLY_POWER = 0.9
LOG_INTERVAL = 50
FINAL_NAME = 'irn.pth'
LATEST_NAME = 'latest.pth'
DEFAULT_MODEL_CFG = dict(
    backbone=dict(depth=50, strides=(2, 2, 2, 1), pretrained=None,
                  frozen=True))


def _read_image(path: str) -> np.ndarray:
    """uint8 RGB [H, W, 3] (grey images are expanded)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'IRN training image "{path}" does not exist')
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'Cannot read the IRN training image "{path}"')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_seed(path: str) -> np.ndarray:
    """uint8 [H, W] seed map: 0 background, 1 foreground, 255 ignore (a
    palette PNG gives its indices)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'IRN seed map "{path}" does not exist')
    try:
        with Image.open(path) as png:
            seed = np.asarray(png)
    except Exception as e:
        raise ValueError(f'Cannot read the IRN seed map "{path}": {e}') from e
    if seed.ndim != 2 or seed.dtype != np.uint8:
        raise ValueError(f'IRN seed map "{path}" must be a one-channel uint8 '
                         f'PNG, got shape {seed.shape} {seed.dtype}')
    return seed


def _pil_resize(array: np.ndarray, size: Tuple[int, int],
                resample: int) -> np.ndarray:
    """Resize a uint8 array to ``size`` = (h, w) with PIL (the released
    ``pil_resize``; bicubic on a downscale is antialiased there)."""
    if array.shape[:2] == tuple(size):
        return array
    return np.asarray(
        Image.fromarray(array).resize((size[1], size[0]), resample))


def _crop_box(size: int, crop: int, rng: np.random.Generator
              ) -> Tuple[int, int, int]:
    """(container start, image start, length) along one axis, as the
    released ``get_random_crop_box``: a random window of a larger image,
    or the whole of a smaller one placed at a random offset."""
    length = min(crop, size)
    space = size - crop
    if space > 0:
        return 0, int(rng.integers(space + 1)), length
    return int(rng.integers(-space + 1)), 0, length


class IRNSeedDataset(Dataset):
    """Random crops of the training images with IRN's pair labels.

    The released ``ReferAffinityDataset`` pipeline, per item: random rescale
    by ``s ~ U(rescale)`` (image bicubic, seed nearest, size ``round(H s)``),
    ImageNet normalisation of RGB / 255, horizontal flip (p = 0.5), random
    ``crop_size`` crop (image padded with 0, seed with 255), the seed
    reduced x0.25 (nearest), and the pair labels of
    :func:`~mmwris.pseudo_labels.irn.path_index.affinity_labels` over
    ``PathIndex(radius, (crop_size // 4, crop_size // 4))``.

    The draws of item ``idx`` depend only on ``(seed, epoch, idx)``
    (:meth:`set_epoch`), not on a global random state or the worker.

    Args:
        items (Sequence[tuple[str, str]]): (image path, seed PNG path); the
            seed map holds 0 (background), 1 (foreground), 255 (ignore) at
            the image's size.
        crop_size (int): Square crop side, a multiple of 4.
        rescale (tuple[float, float]): Scale range.
        hflip (bool): Random horizontal flip.
        radius (int): Pair search radius at stride 4.
        mean, std (tuple[float]): Normalisation of RGB in [0, 1].
        seed (int): Base of the per-item random draws.

    Returns (``__getitem__``):
        dict: ``img`` float32 [3, S, S], ``bg_pos``, ``fg_pos``, ``neg``
        float32 [P, N_src].
    """

    def __init__(self,
                 items: Sequence[Tuple[str, str]],
                 crop_size: int = 512,
                 rescale: Optional[Tuple[float, float]] = (0.5, 1.5),
                 hflip: bool = True,
                 radius: int = 10,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 seed: int = 0):
        if crop_size % 4:
            raise ValueError(f'crop_size must be a multiple of 4 (the labels '
                             f'are reduced x0.25), got {crop_size}')
        self.items = [(str(image), str(seed_map)) for image, seed_map in items]
        self.crop_size = crop_size
        self.rescale = rescale
        self.hflip = hflip
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.seed = seed
        self.epoch = 0
        self.path_index = PathIndex(radius, (crop_size // 4, crop_size // 4))

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB [H, W, 3] -> float32, ``(x / 255 - mean) / std``."""
        return (image.astype(np.float32) / 255. - self.mean) / self.std

    def load(self, idx: int) -> Tuple[np.ndarray, np.ndarray]:
        """The image (uint8 RGB) and seed map of item ``idx``."""
        image_path, seed_path = self.items[idx]
        image = _read_image(image_path)
        seed = _read_seed(seed_path)
        if seed.shape != image.shape[:2]:
            raise ValueError(
                f'The seed map "{seed_path}" is {seed.shape[0]}x'
                f'{seed.shape[1]} but the image "{image_path}" is '
                f'{image.shape[0]}x{image.shape[1]}')
        return image, seed

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        image, seed = self.load(idx)
        if self.rescale:
            low, high = self.rescale
            scale = low + rng.random() * (high - low)
            size = (int(np.round(image.shape[0] * scale)),
                    int(np.round(image.shape[1] * scale)))
            image = _pil_resize(image, size, Image.BICUBIC)
            seed = _pil_resize(seed, size, Image.NEAREST)
        image = self.normalize(image)
        if self.hflip and rng.random() < 0.5:
            image = image[:, ::-1]
            seed = seed[:, ::-1]
        crop = self.crop_size
        top, img_top, height = _crop_box(image.shape[0], crop, rng)
        left, img_left, width = _crop_box(image.shape[1], crop, rng)
        image_crop = np.zeros((crop, crop, 3), np.float32)
        seed_crop = np.full((crop, crop), IGNORE_INDEX, np.uint8)
        image_crop[top:top + height, left:left + width] = \
            image[img_top:img_top + height, img_left:img_left + width]
        seed_crop[top:top + height, left:left + width] = \
            seed[img_top:img_top + height, img_left:img_left + width]
        reduced = _pil_resize(seed_crop, (crop // 4, crop // 4),
                              Image.NEAREST)
        bg_pos, fg_pos, neg = affinity_labels(reduced, self.path_index)
        return dict(
            img=torch.from_numpy(image_crop.transpose(2, 0, 1).copy()),
            bg_pos=bg_pos,
            fg_pos=fg_pos,
            neg=neg)

    def top_left(self, idx: int) -> torch.Tensor:
        """Item ``idx``'s normalised image, top-left ``crop_size`` crop
        padded with 0, [3, S, S] (the mean-shift pass; no augmentation)."""
        image = self.normalize(_read_image(self.items[idx][0]))
        crop = self.crop_size
        out = np.zeros((crop, crop, 3), np.float32)
        height, width = min(crop, image.shape[0]), min(crop, image.shape[1])
        out[:height, :width] = image[:height, :width]
        return torch.from_numpy(out.transpose(2, 0, 1).copy())


def _dist_info() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def _save(path: str, obj: dict) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _training_state(model, optimizer, step: int, max_step: int) -> dict:
    """Everything to resume, as one flat dict of tensors (readable with
    ``weights_only``): ``model.*``, ``momentum.<param>``, ``step``,
    ``max_step``."""
    state = {f'model.{k}': v for k, v in model.state_dict().items()}
    for name, param in model.named_parameters():
        buffer = optimizer.state.get(param, {}).get('momentum_buffer')
        if buffer is not None:
            state[f'momentum.{name}'] = buffer
    state['step'] = torch.tensor(step)
    state['max_step'] = torch.tensor(max_step)
    return dict(state_dict=state)


def _restore(path: str, model, optimizer, max_step: int) -> int:
    """Load :func:`_training_state` from ``path``; return the step."""
    state, _ = read_state_dict(path, what='IRN training state')
    if int(state['max_step']) != max_step:
        raise ValueError(
            f'"{path}" was written by a run of {int(state["max_step"])} '
            f'steps, this one has {max_step} (other items, batch size, '
            'epochs or number of processes): delete it to start over.')
    model.load_state_dict({
        k[len('model.'):]: v
        for k, v in state.items() if k.startswith('model.')
    })
    params = dict(model.named_parameters())
    for key, value in state.items():
        if key.startswith('momentum.'):
            param = params[key[len('momentum.'):]]
            optimizer.state[param]['momentum_buffer'] = value.to(param.device)
    return int(state['step'])


def _batches(sampler: DistributedSampler, batch_size: int,
             skip: int) -> list:
    """The epoch's index batches (incomplete last batch dropped), without
    the first ``skip`` (already trained before a resume)."""
    indices = list(sampler)
    batches = [
        indices[i:i + batch_size]
        for i in range(0, len(indices) - batch_size + 1, batch_size)
    ]
    return batches[skip:]


@torch.no_grad()
def _mean_displacement(model: AffinityDisplacementNet,
                       dataset: IRNSeedDataset, batch_size: int,
                       device: torch.device, rank: int,
                       world_size: int) -> torch.Tensor:
    """Mean over all items of the per-image mean displacement [2] of their
    top-left crops, in eval mode before any shift (items sharded over the
    processes, then summed)."""
    model.eval()
    model.mean_shift.running_mean.zero_()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    count = torch.zeros(1, dtype=torch.float64, device=device)
    mine = list(range(rank, len(dataset), world_size))
    for start in range(0, len(mine), batch_size):
        batch = torch.stack(
            [dataset.top_left(i) for i in mine[start:start + batch_size]])
        _, disp = model(batch.to(device))
        total += disp.mean(dim=(2, 3)).sum(dim=0).double()
        count += disp.shape[0]
    if world_size > 1:
        dist.all_reduce(total)
        dist.all_reduce(count)
    return (total / count).float()


def train_irn(items: Sequence[Tuple[str, str]],
              work_dir: str,
              model_cfg: Optional[dict] = None,
              batch_size: int = 32,
              epochs: int = 3,
              lr: float = 0.1,
              dp_lr_mult: float = 10.0,
              weight_decay: float = 1e-4,
              momentum: float = 1e-4,
              crop_size: int = 512,
              rescale: Optional[Tuple[float, float]] = (0.5, 1.5),
              radius: int = 10,
              num_workers: int = 0,
              seed: int = 0,
              checkpoint_interval: int = 50,
              device: str = 'cpu',
              stop_after: Optional[int] = None) -> str:
    """Train IRN on (image, seed) pairs; return the path of ``irn.pth``.

    The released recipe: SGD, base ``lr`` for the boundary branch (and a
    trainable backbone), ``lr * dp_lr_mult`` for the displacement branch,
    weight decay on both, poly schedule ``lr * (1 - step / max_step) **
    0.9`` set before each step, ``max_step = epochs * (len(items) //
    global batch)``, shuffled batches with the last incomplete one dropped.

    ``momentum`` defaults to 1e-4 on purpose: the released ``PolyOptimizer``
    calls ``SGD(params, lr, weight_decay)``, so its weight decay lands in
    SGD's positional *momentum* slot (the groups set their own weight
    decay).

    Resuming: ``work_dir/latest.pth`` (model, momentum buffers, step) is
    written atomically every ``checkpoint_interval`` steps and at each
    epoch end; a new call resumes from it, continuing the same epoch's
    permutation (its trained batches are skipped). The data draws depend on
    ``(seed, epoch, index)`` only, so a resumed run retraces an
    uninterrupted one. If ``irn.pth`` exists nothing is done.

    Several processes: when ``torch.distributed`` is initialised the model
    is wrapped in ``DistributedDataParallel``, the items are sharded by a
    seeded ``DistributedSampler`` and ``batch_size`` is per process (the
    global batch is ``batch_size * world_size``); only rank 0 writes.

    After training, ``mean_shift.running_mean`` is set to the mean
    displacement over the top-left crops of all images, and ``irn.pth`` =
    ``{'state_dict', 'meta': dict(steps, epochs, config)}`` is written.

    Args:
        items: (image path, seed PNG path) pairs, see
            :class:`IRNSeedDataset`.
        work_dir (str): Where ``latest.pth`` and ``irn.pth`` go.
        model_cfg (dict): Keyword arguments of
            :class:`AffinityDisplacementNet` (default ResNet-50, frozen,
            strides (2, 2, 2, 1); give ``backbone.pretrained``).
        batch_size (int): Per process (released: 32).
        epochs (int): Released: 3.
        lr, dp_lr_mult, weight_decay, momentum: SGD settings (above).
        crop_size, rescale, radius: See :class:`IRNSeedDataset`.
        num_workers (int): Data loading processes.
        seed (int): Seeds the initialisation, the order and the draws.
        checkpoint_interval (int): Steps between ``latest.pth`` writes.
        device (str): ``'cpu'`` or ``'cuda[:i]'``.
        stop_after (int, optional): For tests: stop once this many steps
            are done (as if killed), right after writing ``latest.pth``,
            and return its path.

    Returns:
        str: ``work_dir/irn.pth`` (or ``latest.pth`` with ``stop_after``).

    Raises:
        ValueError: Fewer items than one global batch, or a ``latest.pth``
            of a run with another number of steps.
    """
    final_path = osp.join(work_dir, FINAL_NAME)
    latest_path = osp.join(work_dir, LATEST_NAME)
    if osp.isfile(final_path):
        return final_path
    rank, world_size = _dist_info()
    if rank == 0:
        os.makedirs(work_dir, exist_ok=True)
    device = torch.device(device)
    model_cfg = DEFAULT_MODEL_CFG if model_cfg is None else model_cfg

    dataset = IRNSeedDataset(
        items, crop_size=crop_size, rescale=rescale, hflip=True,
        radius=radius, seed=seed)
    global_batch = batch_size * world_size
    if len(dataset) < global_batch:
        raise ValueError(
            f'IRN training needs at least one full batch: {len(dataset)} '
            f'items < batch size {batch_size} x {world_size} process(es) '
            '(the incomplete last batch is dropped).')
    steps_per_epoch = len(dataset) // global_batch
    max_step = steps_per_epoch * epochs

    torch.manual_seed(seed)
    model = AffinityDisplacementNet(**model_cfg).to(device)
    if model.stride != 4:
        raise ValueError(f'IRN training needs outputs at stride 4 (the '
                         f'labels are reduced x0.25), got {model.stride}')
    edge_params, dp_params = model.param_groups()
    optimizer = torch.optim.SGD([
        dict(params=edge_params, lr=lr),
        dict(params=dp_params, lr=lr * dp_lr_mult)
    ], lr=lr, momentum=momentum, weight_decay=weight_decay)
    initial_lrs = [group['lr'] for group in optimizer.param_groups]
    step = 0
    if osp.isfile(latest_path):
        step = _restore(latest_path, model, optimizer, max_step)
        print_log(f'IRN: resuming from "{latest_path}" at step {step}/'
                  f'{max_step}', logger='current')
    network = model
    if world_size > 1:
        network = DistributedDataParallel(
            model,
            device_ids=None if device.type == 'cpu' else [device.index or 0])
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True,
        seed=seed, drop_last=True)
    path_index = dataset.path_index

    def save_latest():
        _barrier(world_size)
        if rank == 0:
            _save(latest_path,
                  _training_state(model, optimizer, step, max_step))
        _barrier(world_size)

    progress = ProgressBar(max_step - step) \
        if rank == 0 and step < max_step else None
    meter: Dict[str, float] = {}
    tic = time.time()
    model.train()
    for epoch in range(step // steps_per_epoch, epochs):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        batches = _batches(sampler, batch_size,
                           step - epoch * steps_per_epoch)
        loader = DataLoader(dataset, batch_sampler=batches,
                            num_workers=num_workers,
                            pin_memory=device.type == 'cuda')
        for data in loader:
            mult = (1 - step / max_step)**POLY_POWER
            for group, initial in zip(optimizer.param_groups, initial_lrs):
                group['lr'] = initial * mult
            edge, disp = network(data['img'].to(device, non_blocking=True))
            losses = model.loss_by_outputs(
                edge, disp, *(data[k].to(device, non_blocking=True)
                              for k in ('bg_pos', 'fg_pos', 'neg')),
                path_index)
            optimizer.zero_grad()
            losses['loss'].backward()
            optimizer.step()
            step += 1
            for key, value in losses.items():
                meter[key] = meter.get(key, 0.) + value.item()
            meter['n'] = meter.get('n', 0) + 1
            if progress is not None:
                progress.update()
            if rank == 0 and (step % LOG_INTERVAL == 1 or step == max_step):
                n = meter.pop('n')
                text = ' '.join(f'{k}: {v / n:.4f}' for k, v in meter.items())
                print_log(f'IRN step {step}/{max_step} (epoch {epoch + 1}) '
                          f'{text} lr: {optimizer.param_groups[0]["lr"]:.5f}'
                          f' ({time.time() - tic:.1f} s)', logger='current')
                meter = {}
            at_epoch_end = step % steps_per_epoch == 0
            stopping = stop_after is not None and step >= stop_after
            if at_epoch_end or stopping or step % checkpoint_interval == 0:
                save_latest()
            if stopping:
                return latest_path

    if world_size > 1:
        # DDP broadcasts buffers before each forward, so the batch norm
        # statistics of a trainable backbone differ after the last step.
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
    running_mean = _mean_displacement(model, dataset, batch_size, device,
                                      rank, world_size)
    model.mean_shift.running_mean.copy_(running_mean)
    _barrier(world_size)
    if rank == 0:
        config = dict(
            model_cfg=model_cfg, batch_size=batch_size,
            world_size=world_size, epochs=epochs, lr=lr,
            dp_lr_mult=dp_lr_mult, weight_decay=weight_decay,
            momentum=momentum, crop_size=crop_size,
            rescale=list(rescale) if rescale else None, radius=radius,
            seed=seed, items=len(dataset))
        _save(final_path, dict(
            state_dict=model.state_dict(),
            meta=dict(steps=max_step, epochs=epochs, config=config)))
        print_log(f'IRN: mean displacement {running_mean.tolist()}; saved '
                  f'"{final_path}"', logger='current')
    _barrier(world_size)
    return final_path


def load_irn(path: str, model_cfg: Optional[dict] = None,
             device: str = 'cpu') -> AffinityDisplacementNet:
    """The trained :class:`AffinityDisplacementNet` of ``irn.pth``, in eval
    mode on ``device`` (``model_cfg`` as given to :func:`train_irn`; its
    ImageNet ``pretrained`` path is not read again)."""
    model_cfg = dict(DEFAULT_MODEL_CFG if model_cfg is None else model_cfg)
    model_cfg['backbone'] = dict(model_cfg.get('backbone') or {},
                                 pretrained=None)
    model = AffinityDisplacementNet(**model_cfg)
    load_weights_strict(model, path, what='IRN')
    return model.to(device).eval()
