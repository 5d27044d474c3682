"""Promptable segmentation quality: mIoU of SAM's mask per GT instance."""
from typing import Dict, List, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmwris.registry import METRICS


def instance_ious(pred, gt) -> np.ndarray:
    """IoU of each predicted mask with its GT mask, ``[N, H, W]`` each ->
    ``[N]`` (1 where both are empty)."""
    pred = np.asarray(pred).astype(bool).reshape(len(pred), -1)
    gt = np.asarray(gt).astype(bool).reshape(len(gt), -1)
    inter = (pred & gt).sum(1)
    union = (pred | gt).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


@METRICS.register_module()
class SAMPromptMetric(BaseMetric):
    """mIoU (in %, over GT instances) of the masks SAM predicts from one
    positive point inside each instance (``pred_point_masks``: the point
    farthest from the boundary; the multimask output with the highest
    predicted IoU) and from its box (``pred_box_masks``), against
    ``gt_masks_ori`` at the original size. Also reports the share of
    instances with IoU >= 0.5 / 0.75 (``point_P@50``, ...) and, when the
    model gives all three point outputs (``pred_point_multimasks``), the
    oracle ``point_oracle_mIoU`` (the best of the three per instance)."""
    default_prefix = 'val'
    PROMPTS = ('point', 'box')

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            if not isinstance(sample, dict):
                sample = sample.to_dict()
            gt = sample['gt_masks_ori'].cpu().numpy()
            result = {
                p: instance_ious(sample[f'pred_{p}_masks'].cpu().numpy(), gt)
                for p in self.PROMPTS
            }
            if 'pred_point_multimasks' in sample:
                multi = sample['pred_point_multimasks'].cpu().numpy()
                result['point_oracle'] = np.max([
                    instance_ious(multi[:, k], gt)
                    for k in range(multi.shape[1])
                ], 0) if len(gt) else np.zeros(0)
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        metrics = {}
        for p in self.PROMPTS:
            ious = np.concatenate([r[p] for r in results]) if results \
                else np.zeros(0)
            if len(ious) == 0:
                ious = np.zeros(1)
            metrics[f'{p}_mIoU'] = float(ious.mean() * 100)
            for t in (50, 75):
                metrics[f'{p}_P@{t}'] = float((ious >= t / 100).mean() * 100)
        if results and all('point_oracle' in r for r in results):
            ious = np.concatenate([r['point_oracle'] for r in results])
            metrics['point_oracle_mIoU'] = float(
                ious.mean() * 100) if len(ious) else 0.0
        return metrics
