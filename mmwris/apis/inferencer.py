"""Inference on (image, expression) pairs, in the spirit of MMSegInferencer."""
import os.path as osp
from typing import Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmwris.registry import MODELS
from mmwris.utils import register_all_modules
from mmwris.visualization import draw_ris_overlay

ImageType = Union[str, np.ndarray]
# Transforms that need files or annotations, which inference doesn't have.
_SKIPPED = ('LoadImageFromFile', 'LoadRISAnnotations', 'LoadAnnotations')


def read_image(path: str) -> np.ndarray:
    """Read an image as ``[H, W, 3]`` BGR uint8, with a clear error."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Image {path} does not exist.')
    image = mmcv.imread(path)
    if image is None:
        raise ValueError(f'Cannot read image {path}: not a readable image '
                         'file.')
    return image


class RISInferencer:
    """Segment the object an expression refers to.

    Args:
        model (str | Config): Config file or object.
        weights (str, optional): Checkpoint; loaded strictly so that a
            checkpoint of another model fails with the mismatching keys.
        device (str, optional): Defaults to CUDA when available.

    Example:
        >>> inferencer = RISInferencer('configs/tris/...py', 'iter_8000.pth')
        >>> result = inferencer('demo.jpg', 'the man on the left')
        >>> result['masks'][0].shape   # [H, W] bool at the image's size
    """

    def __init__(self,
                 model: Union[str, Config],
                 weights: Optional[str] = None,
                 device: Optional[str] = None) -> None:
        register_all_modules(init_default_scope=True)
        cfg = Config.fromfile(model) if isinstance(model, str) else model
        self.cfg = cfg
        self.device = device or ('cuda' if torch.cuda.is_available() else
                                 'cpu')
        self.model = MODELS.build(cfg.model)
        if weights is not None:
            try:
                load_checkpoint(self.model, weights, map_location='cpu',
                                strict=True)
            except RuntimeError as e:
                raise RuntimeError(
                    f'Checkpoint {weights} does not fit the model of the '
                    f'config: {e}') from e
        self.model.to(self.device).eval()
        pipeline = cfg.test_dataloader.dataset.pipeline
        self.pipeline = Compose(
            [t for t in pipeline if t['type'] not in _SKIPPED])

    def _prepare(self, image: ImageType, text: str) -> dict:
        if not text or not text.strip():
            raise ValueError('The expression is empty.')
        img_path = image if isinstance(image, str) else None
        array = read_image(image) if isinstance(image, str) else image
        results = dict(img=array, img_path=img_path, text=text.strip(),
                       img_shape=array.shape[:2], ori_shape=array.shape[:2])
        return self.pipeline(results)

    @torch.no_grad()
    def __call__(self,
                 images: Union[ImageType, Sequence[ImageType]],
                 texts: Union[str, Sequence[str]],
                 batch_size: int = 8) -> dict:
        """Predict masks and response maps.

        Args:
            images: One image (path or BGR array) or a list.
            texts: One expression or a list (one per image).

        Returns:
            dict: ``masks`` (list of ``[H, W]`` bool), ``responses`` (list
            of ``[H, W]`` float in [0, 1]), at each image's size, and
            ``texts``.
        """
        if isinstance(images, (str, np.ndarray)):
            images = [images]
        if isinstance(texts, str):
            texts = [texts]
        if len(images) != len(texts):
            raise ValueError(f'{len(images)} images but {len(texts)} '
                             'expressions: give one expression per image.')
        masks, responses = [], []
        for start in range(0, len(images), batch_size):
            batch = [self._prepare(image, text) for image, text in zip(
                images[start:start + batch_size],
                texts[start:start + batch_size])]
            data = dict(inputs=[b['inputs'] for b in batch],
                        data_samples=[b['data_samples'] for b in batch])
            for sample in self.model.test_step(data):
                masks.append(sample.pred_sem_seg.data[0].bool().cpu().numpy())
                responses.append(sample.seg_logits.data[0].float().cpu()
                                 .numpy())
        return dict(masks=masks, responses=responses, texts=list(texts))

    def visualize(self, image: ImageType, text: str,
                  out_file: Optional[str] = None) -> np.ndarray:
        """Predict one pair and draw the overlay (RGB); save if asked."""
        result = self(image, text)
        bgr = read_image(image) if isinstance(image, str) else image
        picture = draw_ris_overlay(bgr[..., ::-1], text,
                                   response=result['responses'][0],
                                   pred_mask=result['masks'][0])
        if out_file:
            mmcv.imwrite(picture[..., ::-1], out_file)
        return picture

