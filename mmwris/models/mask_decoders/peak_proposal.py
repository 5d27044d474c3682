from typing import List

import torch
from mmengine.structures import PixelData
from torch import Tensor

from mmwris.registry import MODELS
from mmwris.structures import describe_sample
from mmwris.structures import fields
from ..utils.proposal_ops import select_peak_proposal
from .base import BaseMaskDecoder

OUTPUTS = ('proposal', 'both')
SELECTS = ('peak', 'max_response')


def max_response_proposal(prob: Tensor, proposals: Tensor) -> int:
    """The released PCNet pick (``validate.py``): the proposal with the
    largest ``max(P * mask)``, the first index of ``torch.topk`` (whose
    order on ties, e.g. nested masks that all hold the peak, is kept);
    ``-1`` without proposals.

    Args:
        prob (Tensor): ``[H, W]`` normalised response.
        proposals (Tensor): ``[M, H, W]`` binary masks.
    """
    if proposals.shape[0] == 0:
        return -1
    values = (prob[None].float() * proposals.float()).flatten(1).amax(-1)
    top = torch.topk(values, min(5, values.numel()), largest=True,
                     sorted=True)
    return int(top.indices[0])


@MODELS.register_module()
class PeakProposalMaskDecoder(BaseMaskDecoder):
    """PCNet's "segmentor" prediction: the mask proposal at the response
    peak (:func:`select_peak_proposal`).

    The ``response_decoder`` (default :class:`ThresholdMaskDecoder`) decodes
    the response first; then the proposal containing the response's arg-max
    is chosen among the sample's ``gt_proposals`` (``LoadProposals`` after
    ``Resize`` in the test pipeline, so they are at the original size).
    An image without proposals keeps the response mask.

    Args:
        response_decoder (dict): Decoder of the response mask.
        output (str): ``'proposal'``: the proposal is ``pred_sem_seg``;
            ``'both'``: the response mask stays ``pred_sem_seg`` and the
            proposal is ``pred_proposal_seg`` (``RISMetric`` reports it as
            ``{split}/segmentor/...``).
        select (str): ``'peak'`` (ours, :func:`select_peak_proposal`) or
            ``'max_response'`` (the released PCNet evaluation,
            :func:`max_response_proposal` on the decoded ``seg_logits``;
            use it with ``TRISOfficialMaskDecoder``).
    """

    def __init__(self,
                 response_decoder: dict = dict(type='ThresholdMaskDecoder'),
                 output: str = 'both',
                 select: str = 'peak') -> None:
        if output not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, not '
                             f'"{output}".')
        if select not in SELECTS:
            raise ValueError(f'select must be one of {SELECTS}, not '
                             f'"{select}".')
        self.select = select
        self.response_decoder = MODELS.build(response_decoder)
        self.output = output

    def to_original_size(self, response: Tensor,
                         data_samples: List) -> List[Tensor]:
        """Resized exactly as by the response decoder."""
        return self.response_decoder.to_original_size(response, data_samples)

    def decode(self, sample, response: Tensor) -> None:
        self.response_decoder.decode(sample, response)
        if fields.GT_PROPOSALS not in sample:
            raise KeyError(
                f'{type(self).__name__} needs mask proposals, but '
                f'{describe_sample(sample)} has none: add LoadProposals after '
                'Resize to the test pipeline.')
        proposals = sample.gt_proposals.data.to(response.device) > 0
        if proposals.shape[-2:] != response.shape[-2:]:
            raise ValueError(
                f'Proposals {tuple(proposals.shape[-2:])} of '
                f'{describe_sample(sample)} are not at the original size '
                f'{tuple(response.shape[-2:])}: load them after Resize in '
                'the test pipeline.')
        if self.select == 'max_response':
            index = max_response_proposal(sample.seg_logits.data[0],
                                          proposals)
        else:
            valid = proposals.flatten(1).any(1)
            index = int(select_peak_proposal(response, proposals[None],
                                             valid[None])[0])
        if index < 0:
            mask = sample.pred_sem_seg.data
        else:
            mask = proposals[index][None].long()
        sample.set_metainfo(dict(proposal_index=index))
        if self.output == 'proposal':
            sample.pred_sem_seg = PixelData(data=mask)
        else:
            sample.pred_proposal_seg = PixelData(data=mask)
