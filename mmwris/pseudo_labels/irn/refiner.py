"""``IRNRefiner``: the released TRIS pseudo labels (seeds -> IRN -> walk)."""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import ConfigDict

from mmwris.registry import TASK_UTILS
from .instances import irn_foreground
from .seeds import irn_seed_labels, normalized_cam
from .train import IMAGENET_MEAN, IMAGENET_STD, load_irn, train_irn

__all__ = ['IRNRefiner']


@TASK_UTILS.register_module()
class IRNRefiner:
    """IRN (Ahn et al., CVPR 2019) as TRIS step 2 uses it.

    Unlike the per-image refiners it needs the whole split:
    :class:`~mmwris.pseudo_labels.PseudoLabelGenerator` runs three passes
    when ``needs_training`` is set:

    1. :meth:`seed` per ref: ``cam = relu(R) / max`` of the (PRMS-selected)
       response and its seed labels (:func:`irn_seed_labels`: ``> fg_thr``
       foreground, ``<= bg_thr`` background, each refined by a label-unary
       dense CRF), saved as ``cams/{ref_id}.npy`` and ``seeds/{ref_id}.png``;
    2. :meth:`fit`: the inter-pixel relation network (class-boundary map B
       and displacement field D) trained on every seed map of the split,
       with inter-pixel affinities ``a_ij = 1 - max_{k in path(i, j)} B_k``
       inside ``radius``;
    3. :meth:`refine_cam` per ref: instances from D's centroids, then a
       random walk ``T = (A^beta / colsum)^(2^exp_times)`` of the cam
       masked by ``1 - B``, a background score of ``bg_threshold`` and the
       union of the instances as the pseudo mask (0 / 1, no ignore).

    Defaults are the released scripts' (``IRNet/run_sample_refer.py``).
    The released ``--cam_eval_thres 0.15`` is used by none of these passes.

    Args:
        fg_thr, bg_thr (float): Seed thresholds. Defaults to 0.3 / 0.1.
        crf (dict, optional): The seed CRF, a ``DenseCRFRefiner`` config
            (released: 10 iterations, position std 3 / weight 3, bilateral
            std 50 px / 5 colour levels / weight 10, full resolution; ours
            runs on a ``max_side`` grid). ``None``: no CRF.
        gt_prob (float): CRF unary confidence of a seed label. Defaults 0.7.
        network (dict): ``AffinityDisplacementNet`` arguments (backbone:
            ResNet depth, strides, ``pretrained`` local torchvision file,
            ``frozen``).
        train (dict): :func:`train_irn` settings.
        walk (dict): :func:`irn_foreground` settings (radius, beta,
            exp_times, bg_threshold, method).
        mean, std (tuple): Input normalisation of RGB / 255 (ImageNet).
    """

    needs_training = True

    def __init__(self,
                 fg_thr: float = 0.3,
                 bg_thr: float = 0.1,
                 crf: Optional[dict] = dict(
                     type='DenseCRFRefiner', iterations=10, pos_xy_std=3.0,
                     pos_w=3.0, bi_xy_std=50.0, bi_rgb_std=5.0, bi_w=10.0),
                 gt_prob: float = 0.7,
                 network: dict = dict(backbone=dict(
                     depth=50, strides=(2, 2, 2, 1), pretrained=None,
                     frozen=True)),
                 train: Optional[dict] = None,
                 walk: Optional[dict] = None,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        self.fg_thr = float(fg_thr)
        self.bg_thr = float(bg_thr)
        self.crf = TASK_UTILS.build(crf) if crf else None
        self.gt_prob = float(gt_prob)
        # plain dicts: a ConfigDict in the weights' metadata would not load
        # back with weights_only=True
        self.network = ConfigDict(network).to_dict()
        self.train_cfg = ConfigDict(train or {}).to_dict()
        self.walk_cfg = ConfigDict(walk or {}).to_dict()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.net = None
        self.device = torch.device('cpu')

    def seed(self, response: np.ndarray,
             image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """response [H, W], image [H, W, 3] uint8 RGB -> (cam [H, W] float32,
        seed labels [H, W] uint8 in {0, 1, 255})."""
        cam = normalized_cam(response)
        return cam, irn_seed_labels(cam, image, self.fg_thr, self.bg_thr,
                                    self.crf, self.gt_prob)

    def fit(self, items: Sequence[Tuple[str, str]], work_dir: str,
            device='cpu') -> str:
        """Train on ``(image path, seed PNG path)`` pairs (resumable, every
        rank when distributed); load and return the weights' path."""
        backbone = self.network.get('backbone', {})
        if backbone.get('frozen', True) and not backbone.get('pretrained'):
            raise ValueError(
                'IRN keeps its backbone frozen (the released recipe), so it '
                'needs ImageNet weights: set pseudo_label_cfg.refiner.network'
                '.backbone.pretrained to a local torchvision ResNet file, or '
                'frozen=False to train the backbone too.')
        path = train_irn(items, work_dir, model_cfg=self.network,
                         device=device, **self.train_cfg)
        self.load(path, device)
        return path

    def load(self, path: str, device='cpu') -> None:
        """Load trained weights (``irn.pth`` written by :meth:`fit`)."""
        self.device = torch.device(device)
        self.net = load_irn(path, self.network, self.device)

    @torch.no_grad()
    def refine_cam(self, cam: np.ndarray, image: np.ndarray) -> np.ndarray:
        """cam [H, W] in [0, 1], image [H, W, 3] uint8 RGB -> labels [H, W]
        uint8 (1 inside the random-walk instances, 0 elsewhere)."""
        if self.net is None:
            raise RuntimeError('IRNRefiner is not trained: fit() or load() '
                               'first (tools/generate_pseudo_labels.py does '
                               'both)')
        cam = np.asarray(cam, dtype=np.float32)
        image = np.asarray(image)
        if image.shape != cam.shape + (3, ):
            raise ValueError(f'image must be {cam.shape + (3, )} (RGB), got '
                             f'{image.shape}')
        pixels = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        pixels = ((pixels - self.mean) / self.std).to(self.device)
        edge, displacement = self.net.predict(pixels)
        mask = irn_foreground(
            torch.from_numpy(cam).to(self.device), edge, displacement,
            **self.walk_cfg)
        return np.asarray(mask, dtype=np.uint8)

    def __call__(self, response: np.ndarray, image: np.ndarray) -> np.ndarray:
        """response [H, W], image [H, W, 3] -> labels [H, W] (trained only)."""
        return self.refine_cam(normalized_cam(response), image)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(fg_thr={self.fg_thr}, bg_thr='
                f'{self.bg_thr}, crf={self.crf is not None}, network='
                f'{self.network}, train={self.train_cfg}, walk='
                f'{self.walk_cfg})')
