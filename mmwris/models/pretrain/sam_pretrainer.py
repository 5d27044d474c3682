"""Promptable-segmentation pretraining of a ``segment_anything`` SAM."""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from mmwris.models.foundation.sam import ArchType, build_sam_model
from mmwris.registry import MODELS
from .sam_losses import mask_ious, mask_losses, min_over_masks
from .sam_prompts import (correction_points, jitter_boxes, mask_boxes,
                          uniform_points)


@MODELS.register_module()
class SAMPretrainer(BaseModel):
    """Trains ``self.sam`` (a ``segment_anything.modeling.Sam`` from
    :func:`build_sam_model`) the SAM way (paper, appendix A).

    Per image, up to ``max_instances`` GT masks are drawn. Each gets a first
    prompt: with probability ``box_prob`` its box with noise (std
    ``box_noise`` of the side, at most ``box_noise_max`` pixels), else one
    point uniformly inside it. Then ``correction_rounds`` times a point is
    drawn uniformly from the error region of the previous prediction
    (positive on missed pixels, negative on false positives) and added to
    the prompts, with the previous low-res logits as the mask prompt. A
    single point is ambiguous: the three multimask outputs are predicted and
    only the one with the lowest loss is trained; other prompts train the
    single-mask output. Loss per round: ``focal_weight * focal +
    dice_weight * dice`` on the masks (at the input resolution) and
    ``iou_weight * MSE`` of the IoU prediction of every output made against
    its actual IoU, averaged over prompts and rounds.

    Inputs: a list of RGB uint8 images ``[3, h, w]`` whose longest side is
    the SAM image size (``ResizeLongestSide``); samples carry ``gt_masks
    [N, h, w]`` and, for prediction, ``prompt_points [N, 2]`` and
    ``prompt_boxes [N, 4]`` (xyxy) in the same frame.
    Prediction sets ``pred_point_masks`` (the multimask output with the
    highest predicted IoU) and ``pred_box_masks``, ``[N, H0, W0]`` bool at
    the original size ``ori_shape``, and ``pred_point_multimasks``
    ``[N, 3, H0, W0]`` (all three outputs, for the oracle score).

    Args:
        arch (str | dict): SAM architecture (see ``SAM_ARCHS``).
        max_instances (int): GT masks trained per image. Defaults to 16.
        box_prob (float): Probability of a box first prompt. Defaults to 0.5.
        box_noise (float): Box noise std / side. Defaults to 0.1.
        box_noise_max (float): Box noise limit in pixels. Defaults to 4
            (SAM's 20 at 1024 is 2.5 at 128).
        correction_rounds (int): Extra point rounds. Defaults to 2.
        focal_weight, dice_weight, iou_weight (float): Loss weights,
            defaults 20, 1, 1.
        focal_alpha (float): Focal weight of object pixels (background:
            ``1 - alpha``; < 0: none, the default). On the toy masks (a few
            percent of the image) no alpha first predicts background only
            for ~200 iterations; 0.75 gives masks within ~60 iterations but
            a lower one-point mIoU after 600 (docs/toy_sam.md).
        focal_gamma (float): Focal exponent. Defaults to 2.
    """

    def __init__(self,
                 arch: ArchType = 'vit_tiny',
                 max_instances: int = 16,
                 box_prob: float = 0.5,
                 box_noise: float = 0.1,
                 box_noise_max: float = 4.0,
                 correction_rounds: int = 2,
                 focal_weight: float = 20.0,
                 dice_weight: float = 1.0,
                 iou_weight: float = 1.0,
                 focal_alpha: float = -1.0,
                 focal_gamma: float = 2.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor or dict(
                type='BaseDataPreprocessor'),
            init_cfg=init_cfg)
        self.arch = arch
        self.sam = build_sam_model(arch).train()
        self.max_instances = max_instances
        self.box_prob = box_prob
        self.box_noise = box_noise
        self.box_noise_max = box_noise_max
        self.correction_rounds = correction_rounds
        self.loss_weights = dict(focal_weight=focal_weight,
                                 dice_weight=dice_weight, alpha=focal_alpha,
                                 gamma=focal_gamma)
        self.iou_weight = iou_weight

    @property
    def image_size(self) -> int:
        return self.sam.image_encoder.img_size

    def embed(self, inputs: List[Tensor]) -> Tensor:
        """RGB uint8 images ``[3, h, w]`` -> embeddings ``[B, C, e, e]``
        (SAM's own normalisation and bottom-right zero padding)."""
        images = torch.stack([self.sam.preprocess(img.float())
                              for img in inputs])
        return self.sam.image_encoder(images)

    def decode(self, embeddings: Tensor, coords: Optional[Tensor],
               labels: Optional[Tensor], boxes: Optional[Tensor],
               mask_inputs: Optional[Tensor]):
        """Prompts ``[N, ...]`` on the image embeddings ``[N, C, e, e]``
        (one per prompt, any images) -> low-res logits ``[N, 4, 4e, 4e]``
        (token 0: single mask, 1-3: multimask), IoU predictions ``[N, 4]``.

        SAM's decoder expands one image's embedding to all prompts and adds
        the dense prompt embedding; a zero image plus (dense + embedding)
        is the same sum, so prompts of several images run in one call.
        """
        points = None if coords is None else (coords, labels)
        sparse, dense = self.sam.prompt_encoder(
            points=points, boxes=boxes, masks=mask_inputs)
        return self.sam.mask_decoder.predict_masks(
            image_embeddings=embeddings.new_zeros((1, ) +
                                                  embeddings.shape[1:]),
            image_pe=self.sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense + embeddings)

    def upsample(self, low_res: Tensor) -> Tensor:
        """Low-res logits ``[N, M, 4e, 4e]`` -> ``[N, M, S, S]``."""
        return F.interpolate(low_res, (self.image_size, self.image_size),
                             mode='bilinear', align_corners=False)

    def pad(self, masks: Tensor) -> Tensor:
        """``[N, h, w]`` -> ``[N, S, S]`` (bottom-right zeros, as images)."""
        h, w = masks.shape[-2:]
        return F.pad(masks, (0, self.image_size - w, 0, self.image_size - h))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.embed(inputs)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def loss(self, inputs: List[Tensor], data_samples) -> Dict[str, Tensor]:
        embeddings = self.embed(inputs)
        gts, owners = [], []
        for i, sample in enumerate(data_samples):
            gt = sample.gt_masks.bool()
            gt = gt[gt.flatten(1).any(1)]
            if len(gt) > self.max_instances:
                gt = gt[torch.randperm(len(gt))[:self.max_instances].to(
                    gt.device)]
            gts.append(self.pad(gt))
            owners += [i] * len(gt)
        gt = torch.cat(gts)
        if len(gt) == 0:
            zero = sum(p.sum() for p in self.parameters()) * 0
            return dict(loss_mask=zero, loss_iou=zero)
        owners = torch.tensor(owners, device=gt.device)
        use_box = (torch.rand(len(gt)) < self.box_prob).to(gt.device)
        totals = dict(loss_mask=[], loss_iou=[], iou=[])
        for box, group in ((True, use_box), (False, ~use_box)):
            if group.any():
                self._loss_group(embeddings[owners[group]], gt[group], box,
                                 totals)
        return dict(loss_mask=torch.cat(totals['loss_mask']).mean(),
                    loss_iou=torch.cat(totals['loss_iou']).mean(),
                    iou=torch.cat(totals['iou']).mean().detach())

    def _loss_group(self, embeddings: Tensor, gt: Tensor, box: bool,
                    totals: Dict[str, list]) -> None:
        """All rounds for the instances ``gt [N, S, S]`` (on their images'
        ``embeddings [N, C, e, e]``) that share the first prompt type."""
        size = (self.image_size, self.image_size)
        coords = labels = boxes = mask_inputs = None
        if box:
            boxes = jitter_boxes(mask_boxes(gt), self.box_noise,
                                 self.box_noise_max, size)
        else:
            coords = uniform_points(gt)[:, None]
            labels = torch.ones(len(gt), 1, dtype=torch.long,
                                device=gt.device)
        for round_index in range(self.correction_rounds + 1):
            low_res, iou_pred = self.decode(embeddings, coords, labels, boxes,
                                            mask_inputs)
            multimask = not box and round_index == 0
            outputs = slice(1, 4) if multimask else slice(0, 1)
            logits = self.upsample(low_res[:, outputs])
            losses = mask_losses(logits, gt, **self.loss_weights)
            loss, index = min_over_masks(losses)
            ious = mask_ious(logits.detach(), gt)
            iou_loss = F.mse_loss(iou_pred[:, outputs], ious,
                                  reduction='none').mean(1)
            totals['loss_mask'].append(loss)
            totals['loss_iou'].append(self.iou_weight * iou_loss)
            totals['iou'].append(ious.gather(1, index[:, None])[:, 0])
            if round_index == self.correction_rounds:
                break
            rows = torch.arange(len(gt), device=gt.device)
            chosen = logits.detach()[rows, index]
            mask_inputs = low_res.detach()[:, outputs][rows, index][:, None]
            new_coords, new_labels = correction_points(chosen > 0, gt)
            if coords is None:
                coords, labels = new_coords[:, None], new_labels[:, None]
            else:
                coords = torch.cat([coords, new_coords[:, None]], 1)
                labels = torch.cat([labels, new_labels[:, None]], 1)

    @torch.no_grad()
    def predict(self, inputs: List[Tensor], data_samples) -> list:
        embeddings = self.embed(inputs)
        for embedding, img, sample in zip(embeddings, inputs, data_samples):
            input_size = tuple(img.shape[-2:])
            ori_shape = tuple(sample.metainfo['ori_shape'])
            points = sample.prompt_points.float()
            boxes = sample.prompt_boxes.float()
            n = len(points)
            if n == 0:
                empty = torch.zeros((0, *ori_shape), dtype=torch.bool)
                sample.pred_point_masks = empty
                sample.pred_box_masks = empty
                continue
            embedding = embedding[None].expand(n, -1, -1, -1)
            labels = points.new_ones((n, 1), dtype=torch.long)
            low_res, iou_pred = self.decode(embedding, points[:, None],
                                            labels, None, None)
            best = iou_pred[:, 1:].argmax(1) + 1
            point_masks = low_res[torch.arange(n), best][:, None]
            box_masks = self.decode(embedding, None, None, boxes, None)[0]
            for name, masks in (('pred_point_masks', point_masks),
                                ('pred_point_multimasks', low_res[:, 1:]),
                                ('pred_box_masks', box_masks[:, :1])):
                full = self.sam.postprocess_masks(masks, input_size,
                                                  ori_shape) > 0
                setattr(sample, name,
                        (full[:, 0] if full.shape[1] == 1 else full).cpu())
        return data_samples
