"""Zero-shot retrieval and classification of a CLIP on held-out pairs."""
import re
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmwris.registry import METRICS
from mmwris.structures import fields as F


def caption_key(text: str) -> str:
    """Lower case, punctuation removed: captions equal under this key say
    the same (``'A red circle.'`` and ``'a red circle'``)."""
    return ' '.join(re.sub(r'[^\w\s]', ' ', text.lower()).split())


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor,
                k: int) -> float:
    """% of queries (rows of ``similarity [Q, G]``) with a relevant gallery
    item (``relevant [Q, G]`` bool) among their ``k`` most similar."""
    top = similarity.topk(min(k, similarity.shape[1]), dim=1).indices
    return relevant.gather(1, top).any(dim=1).float().mean().item() * 100


def chance_recall_at_k(relevant: torch.Tensor, k: int) -> float:
    """The expected :func:`recall_at_k` of a random ranking."""
    total = relevant.shape[1]
    misses = torch.ones(relevant.shape[0], dtype=torch.float64)
    for taken in range(min(k, total)):
        misses *= (total - relevant.sum(1).double() - taken).clamp(min=0) / (
            total - taken)
    return (1 - misses).mean().item() * 100


@METRICS.register_module()
class CLIPRetrievalMetric(BaseMetric):
    """Retrieval R@k between held-out images and captions, and zero-shot
    classification accuracy (:class:`CLIPPretrainer` predictions).

    ``i2t_R@k``: % of images with their caption among the ``k`` captions
    of the whole evaluation set most similar to them; ``t2i_R@k`` the
    other way round. Captions equal up to case and punctuation
    (:func:`caption_key`) cannot be told apart, so any of them counts as
    the image's caption. ``acc``: % of images whose highest
    ``class_scores`` is their ``category_id``. ``chance_R@k`` and
    ``chance_acc`` are the values of a random ranking / guess.

    Args:
        topk (Sequence[int]): The ``k`` of R@k. Defaults to (1, 5).
    """
    default_prefix = 'clip'

    def __init__(self, topk: Sequence[int] = (1, 5), **kwargs) -> None:
        super().__init__(**kwargs)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            result = dict(
                image_embed=sample['image_embed'].float().cpu(),
                text_embed=sample['text_embed'].float().cpu(),
                text=sample[F.TEXT])
            if 'class_scores' in sample:
                result['class_scores'] = sample['class_scores'].float().cpu()
                result['category_id'] = sample[F.CATEGORY_ID]
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        images = torch.stack([r['image_embed'] for r in results])
        texts = torch.stack([r['text_embed'] for r in results])
        keys = np.array([caption_key(r['text']) for r in results])
        relevant = torch.from_numpy(keys[:, None] == keys[None, :])
        similarity = images @ texts.T
        metrics = {}
        for k in self.topk:
            metrics[f'i2t_R@{k}'] = recall_at_k(similarity, relevant, k)
            metrics[f't2i_R@{k}'] = recall_at_k(similarity.T, relevant.T, k)
            metrics[f'chance_R@{k}'] = chance_recall_at_k(relevant, k)
        if all('class_scores' in r for r in results):
            scores = torch.stack([r['class_scores'] for r in results])
            labels = torch.tensor([r['category_id'] for r in results])
            metrics['acc'] = (scores.argmax(1) == labels).float().mean(
            ).item() * 100
            metrics['chance_acc'] = 100 / scores.shape[1]
        MMLogger.get_current_instance().info(
            'CLIP zero-shot on %d held-out pairs: %s', len(results),
            ', '.join(f'{k} {v:.1f}' for k, v in metrics.items()))
        return metrics
