import cv2
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs

from mmwris.registry import TRANSFORMS
from mmwris.structures import RISDataSample
from mmwris.structures import fields as F
from .sam_embedding import SAM_EMBEDDING

RIS_META_KEYS = F.META_KEYS
# Data fields PackRISInputs(tokenize=...) adds: the CLIP token ids of the
# expression ``[L]`` (long) and its valid positions ``[L]`` (bool).
TEXT_IDS = 'text_ids'
TEXT_MASK = 'text_mask'
TEXT_KEEP_EOT = 'text_keep_eot'  # the truncation rule of text_ids


def texts_of_sample(metainfo: dict) -> list:
    """Every text of a packed sample: the expression, the partner's, the
    negatives and the phrases (the ones present)."""
    texts = [metainfo[key] for key in (F.TEXT, F.PARTNER_TEXT)
             if isinstance(metainfo.get(key), str)]
    for key in (F.NEG_TEXTS, F.PHRASES, F.PARTNER_PHRASES):
        texts += [text for text in metainfo.get(key) or []
                  if isinstance(text, str)]
    return texts


@TRANSFORMS.register_module()
class PackRISInputs(PackSegInputs):
    """Pack a referring sample: image tensor plus a ``RISDataSample``.

    The data sample carries the expression (``text``), the training
    negatives (``neg_texts``), the ids (``ref_id``, ``sent_id``, ``ann_id``,
    ``image_id``), the ``split`` and the untransformed GT box ``gt_bbox``
    (xyxy, original image coordinates) as metainfo, and ``gt_sem_seg`` from
    ``gt_seg_map``. Test pipelines load the mask *after* ``Resize`` so that
    ``gt_sem_seg`` stays at the original resolution for the metrics.

    PCNet adds ``phrases`` (the K cues of the expression), the IaD partner
    (``partner_text``/``partner_phrases``: an expression of another object
    of the same image) and the mask proposals: ``gt_proposals [H, W, M]``
    (uint8, a seg field, so geometric transforms move it) is packed as
    ``data_sample.gt_proposals`` = ``PixelData [M, H, W]``.

    PPT: a ``sam_embedding`` (``LoadSAMEmbedding``, a tensor ``[C, h, w]``)
    is packed as the data field ``data_sample.sam_embedding``.

    Args:
        meta_keys (tuple): The metainfo keys kept.
        tokenize (dict, optional): ``dict(context_length=20,
            keep_eot=True)``: also pack the expression's CLIP token ids as
            the data fields ``text_ids [L]`` (long) and ``text_mask [L]``
            (bool) (:func:`mmwris.models.foundation.clip.clip_token_ids`),
            so the BPE string work runs in the data workers, not in the
            model's forward. Must match the text encoder's
            ``context_length`` and ``keep_eot``. Models tokenise ``text``
            themselves when the samples carry no ids. The BPE ids of every
            other text of the sample (negatives, phrases, the partner) go
            into the metainfo ``bpe_word_ids`` ``{text: ids}``, with which
            the segmentor fills its process's BPE cache, so the frozen
            CLIP scorer and PCNet's phrases do no string work either.
    """

    def __init__(self, meta_keys=RIS_META_KEYS, tokenize=None) -> None:
        super().__init__(meta_keys=meta_keys)
        self.tokenize = dict(tokenize) if tokenize else None
        if self.tokenize is not None and (
                'context_length' not in self.tokenize
                or set(self.tokenize) - {'context_length', 'keep_eot'}):
            raise ValueError('tokenize takes context_length (required) and '
                             f'keep_eot, got {sorted(self.tokenize)}.')

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        seg_sample = packed['data_samples']
        if F.TEXT not in seg_sample:
            raise KeyError('PackRISInputs needs the expression ("text"); '
                           'is the dataset a referring dataset?')
        sample = RISDataSample(metainfo=seg_sample.metainfo)
        sample.set_data(dict(seg_sample.items()))
        packed['data_samples'] = sample
        if F.GT_PROPOSALS in results:
            proposals = np.asarray(results[F.GT_PROPOSALS])
            if proposals.ndim == 2:
                proposals = proposals[..., None]
            # cv2.split de-interleaves [H, W, M] far faster than a numpy
            # transpose copy (it handles at most 512 channels).
            planes = (cv2.split(np.ascontiguousarray(proposals))
                      if 1 < proposals.shape[2] <= 512 else
                      list(proposals.transpose(2, 0, 1)))
            data = torch.from_numpy(np.stack(planes))
            sample.set_data({F.GT_PROPOSALS: PixelData(data=data)})
        if SAM_EMBEDDING in results:
            embedding = results[SAM_EMBEDDING]
            if not isinstance(embedding, torch.Tensor):
                embedding = torch.from_numpy(np.asarray(embedding))
            sample.set_data({SAM_EMBEDDING: embedding})
        if self.tokenize is not None:
            from mmwris.models.foundation.clip import (bpe_word_ids,
                                                       clip_token_ids)
            ids, mask = clip_token_ids([sample.metainfo[F.TEXT]],
                                       **self.tokenize)
            sample.set_metainfo({F.BPE_WORD_IDS: {
                text: bpe_word_ids(text)
                for text in texts_of_sample(sample.metainfo)}})
            sample.set_data({
                TEXT_IDS: ids[0], TEXT_MASK: mask[0],
                TEXT_KEEP_EOT: torch.tensor(
                    bool(self.tokenize.get('keep_eot', True)))})
        return packed
