from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmseg.utils import SampleList
from torch import Tensor

from mmwris.registry import MODELS
from mmwris.structures import describe_sample
from mmwris.structures import fields
from ..utils import gather_with_grad
from .tris import TRISSegmentor


@MODELS.register_module()
class PCNetSegmentor(TRISSegmentor):
    """PCNet (NeurIPS'24): TRIS step 1 with progressive comprehension.

    Each expression comes with LLM-decomposed target-related phrases
    (``phrases`` metainfo, see ``LoadPhrases``); the ``PCNetHead`` CRM uses
    phrase ``k`` as the cue of stage ``k`` and the full sentence as the cue
    of the last stage. The segmentor encodes the expressions, their cues
    and their IaD partners (in one text-encoder call each), puts the mask
    proposals on the response grid, and the head computes its losses
    (per-stage classification / calibration, RaS, IaD).

    Args:
        decode_head (dict): ``PCNetHead`` or ``PCNetReleasedHead`` config
            with its losses.
        test_cfg (dict): TRIS's keys plus ``stage`` (which stage's map is
            the prediction, default -1: the last). PCNet's "segmentor"
            prediction (the proposal at the response peak) is the mask
            decoder ``PeakProposalMaskDecoder`` (needs ``LoadProposals``
            after ``Resize`` in the test pipeline).
        train_cfg (dict): ``proposal_loss_warmup`` (int, default 0): the
            RaS and IaD terms are scaled by ``min(1, iter / warmup)``, so a
            model trained from scratch first learns where objects are
            before its own response picks the RaS target proposal.
            ``proposal_grid`` (tuple, optional): the grid of the released
            RaS / IaD (``(32, 32)``; proposals resized nearest); default
            the response grid.
        **kwargs: The arguments of :class:`TRISSegmentor`
            (``image_encoder``, ``text_encoder``, ``decode_head``,
            ``feature_index``...).

    With ``PCNetReleasedHead`` (the released network, R50 paper configs)
    the cues are sentence embeddings ``[T, K, D]``, the IaD partners are
    always encoded (for the joint forward; a sample without a same-image
    partner borrows the next sample's expression), the texts are not
    gathered across ranks and RaS ranks the proposals by their CLIP score.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.proposal_loss_warmup = int(
            self.train_cfg.get('proposal_loss_warmup', 0))
        self.num_stages = self.decode_head.num_stages
        self.predict_stage = int(self.test_cfg.get('stage', -1))
        grid = self.train_cfg.get('proposal_grid')
        self.proposal_grid = None if grid is None else tuple(grid)

    @property
    def released(self) -> bool:
        """The head takes the cues as sentence embeddings
        (``PCNetReleasedHead``): cues ``[T, K, D]``, the B expressions of
        this rank only (the released batch-wide attention is per device)."""
        return getattr(self.decode_head, 'cue_input', None) == 'sentence'

    # ------------------------------------------------------------ text
    def cue_texts(self, text: str, phrases, where: str) -> List[str]:
        """The ``S`` cue strings of one expression: its first ``S - 1``
        phrases, then the sentence itself."""
        needed = self.num_stages - 1
        phrases = list(phrases or [])
        if len(phrases) < needed:
            raise ValueError(
                f'PCNet with {self.num_stages} stages needs {needed} phrases '
                f'per expression; {where} has {len(phrases)}. Set the '
                f'dataset\'s phrase_file and LoadPhrases(num_phrases='
                f'{needed}) in the pipeline.')
        return phrases[:needed] + [text]

    def encode_expressions(
            self, texts: List[str],
            cue_lists: List[List[str]]) -> Tuple[Tensor, Tensor, Tensor]:
        """Encode expressions and their cues in one text-encoder call.

        Returns:
            tuple: ``sentence [T, D]``, cue tokens ``[T, S, L, W]`` and cue
            masks ``[T, S, L]`` (float, 1 on valid tokens).
        """
        count, stages = len(texts), self.num_stages
        flat = list(texts) + [cue for cues in cue_lists for cue in cues]
        encoded = self.text_encoder(flat)
        sentence = encoded['sentence'][:count]
        tokens = encoded['tokens'][count:]
        mask = encoded['mask'][count:].to(tokens.dtype)
        return (sentence, tokens.reshape(count, stages, *tokens.shape[1:]),
                mask.reshape(count, stages, -1))

    def encode_cue_sentences(self, texts: List[str],
                             cue_lists: List[List[str]]) -> Tensor:
        """Sentence embeddings ``[T, S, D]`` of every expression's cues
        (phrases, then the expression itself), in one text-encoder call."""
        flat = [cue for cues in cue_lists for cue in cues]
        sentence = self.encode_text(flat)
        return sentence.reshape(len(texts), self.num_stages, -1)

    def _own_cue_sentences(self, data_samples: SampleList) -> Tensor:
        texts = self.texts_of(data_samples)
        return self.encode_cue_sentences(texts, [
            self.cue_texts(sample.text, sample.metainfo.get(fields.PHRASES),
                           self._where(sample)) for sample in data_samples
        ])

    def _own_inputs(self, data_samples: SampleList):
        texts = self.texts_of(data_samples)
        cue_lists = [
            self.cue_texts(sample.text, sample.metainfo.get(fields.PHRASES),
                           self._where(sample)) for sample in data_samples
        ]
        return texts, self.encode_expressions(texts, cue_lists)

    @staticmethod
    def _where(sample) -> str:
        return describe_sample(sample)

    @staticmethod
    def _stage_cues(tokens: Tensor,
                    mask: Tensor,
                    per_image: bool = False) -> List[Tuple[Tensor, Tensor]]:
        """Split ``[T, S, ...]`` cues into S ``(tokens, mask)`` pairs, as
        shared ``[T, ...]`` or, with ``per_image``, ``[T, 1, ...]``."""
        stages = range(tokens.shape[1])
        if per_image:
            return [(tokens[:, k, None], mask[:, k, None]) for k in stages]
        return [(tokens[:, k], mask[:, k]) for k in stages]

    # ------------------------------------------------------------ predict
    def stage_maps(self, inputs: Tensor,
                   data_samples: SampleList) -> List[Tensor]:
        """Each image's own map at every stage: S tensors ``[B, 1, h, w]``."""
        visual = self.extract_feat(inputs)
        if self.released:
            return self.decode_head.predict(
                visual, self._own_cue_sentences(data_samples))
        _, (sentence, tokens, mask) = self._own_inputs(data_samples)
        return self.decode_head.predict(visual, sentence,
                                        self._stage_cues(tokens, mask, True))

    def predict_response(self, inputs: Tensor,
                         data_samples: SampleList) -> Tensor:
        return self.stage_maps(inputs, data_samples)[self.predict_stage]

    def _forward(self,
                 inputs: Tensor,
                 data_samples: Optional[SampleList] = None) -> Tensor:
        """Own maps of every stage stacked: ``[B, S, h, w]``."""
        if data_samples is None:
            raise ValueError('PCNetSegmentor needs data samples with texts '
                             'and phrases.')
        return torch.cat(self.stage_maps(inputs, data_samples), dim=1)

    # ------------------------------------------------------------ train
    def proposals_on_grid(self,
                          data_samples: SampleList,
                          size: Tuple[int, int],
                          mode: str = 'area') -> Tuple[Tensor, Tensor]:
        """Soft proposals on the response grid.

        The binary ``gt_proposals [M, H, W]`` of every sample are padded to
        the batch input shape (as the images) and resized to ``size``:
        ``'area'`` (ours: soft masks) or ``'nearest'`` (the released RaS /
        IaD grid, binary).

        Returns:
            tuple: ``proposals [B, M, h, w]`` in [0, 1] and ``valid [B, M]``.
        """
        grids = []
        for sample in data_samples:
            if fields.GT_PROPOSALS not in sample:
                raise KeyError(
                    f'{self._where(sample)} has no mask proposals: the PCNet '
                    'RaS/IaD losses need LoadProposals in the train '
                    'pipeline (tools/generate_proposals.py writes them).')
            masks = sample.gt_proposals.data.float()
            pad_h, pad_w = sample.metainfo.get('batch_input_shape',
                                               masks.shape[-2:])
            masks = F.pad(
                masks,
                (0, pad_w - masks.shape[-1], 0, pad_h - masks.shape[-2]))
            if mode == 'area':
                grids.append(F.adaptive_avg_pool2d(masks[None], size)[0])
            else:
                grids.append(F.interpolate(masks[None], size=size,
                                           mode=mode)[0])
        num = max(grid.shape[0] for grid in grids)
        proposals = torch.stack([
            F.pad(grid, (0, 0, 0, 0, 0, num - grid.shape[0])) for grid in grids
        ])
        return proposals, proposals.flatten(2).amax(-1) > 0

    def proposal_clip_sim(self, data_samples: SampleList, num: int,
                          device) -> Optional[Tensor]:
        """``[B, M]`` CLIP similarity of each proposal to the expression, or
        None when the samples carry none."""
        sims = [
            sample.metainfo.get(fields.PROPOSAL_CLIP_SIM)
            for sample in data_samples
        ]
        if any(sim is None for sim in sims):
            return None
        out = torch.full((len(sims), num), -1.0, device=device)
        for i, sim in enumerate(sims):
            sim = torch.as_tensor(sim, dtype=torch.float32)[:num]
            out[i, :len(sim)] = sim.to(device)
        return out

    def partner_cue_sentences(self, data_samples: SampleList):
        """Cues ``[B, S, D]`` of the IaD partners and ``mark [B]`` (the
        partner is an expression of the same image). A sample without one
        takes the next sample's expression (another image, ``mark``
        False), as the released loader draws a random other image's ref."""
        texts, cue_lists, mark = [], [], []
        count = len(data_samples)
        for i, sample in enumerate(data_samples):
            text = sample.metainfo.get(fields.PARTNER_TEXT)
            if text:
                phrases = sample.metainfo.get(fields.PARTNER_PHRASES)
                where = 'the partner of ' + self._where(sample)
            else:
                other = data_samples[(i + 1) % count]
                text, where = other.text, self._where(other)
                phrases = other.metainfo.get(fields.PHRASES)
            texts.append(text)
            cue_lists.append(self.cue_texts(text, phrases, where))
            mark.append(bool(sample.metainfo.get(fields.PARTNER_TEXT)))
        return (self.encode_cue_sentences(texts, cue_lists),
                torch.tensor(mark))

    def released_loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Dispatch to ``PCNetReleasedHead.loss`` (local batch, partners
        encoded for the joint forward, proposals on ``proposal_grid``)."""
        head = self.decode_head
        visual = self.extract_feat(inputs)
        cues = self._own_cue_sentences(data_samples)
        partner = proposals = None
        if head.loss_iad is not None or head.joint_partner:
            partner_cues, mark = self.partner_cue_sentences(data_samples)
            partner = (partner_cues, mark.to(visual.device))
        if head.with_proposal_losses:
            grid, _ = self.proposals_on_grid(
                data_samples, self.proposal_grid or tuple(visual.shape[-2:]),
                mode='nearest')
            proposals = (grid, self.proposal_clip_sim(
                data_samples, grid.shape[1], visual.device))
            if proposals[1] is None and head.loss_ras is not None:
                raise ValueError(
                    'The released RaS ranks the proposals by their CLIP '
                    'score: LoadProposals(with_clip_sim=True) is needed.')
        stage_texts = [[
            sample.metainfo.get(fields.PHRASES)[k] for sample in data_samples
        ] for k in range(self.num_stages - 1)]
        iteration = MessageHub.get_current_instance().get_info('iter', 0)
        return head.loss(visual, cues, data_samples,
                         self.calibration_images(inputs),
                         proposals=proposals, partner=partner,
                         stage_texts=stage_texts,
                         image_size=tuple(inputs.shape[-2:]),
                         step=int(iteration),
                         proposal_loss_scale=self.proposal_loss_scale())

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Encode, gather and dispatch to ``PCNetHead.loss``."""
        if self.released:
            return self.released_loss(inputs, data_samples)
        visual = self.extract_feat(inputs)
        _, (sentence, tokens, mask) = self._own_inputs(data_samples)
        offset = 0
        if self.gather_texts:
            sentence, offset = gather_with_grad(sentence, return_offset=True)
            tokens = gather_with_grad(tokens)
            mask = gather_with_grad(mask)
        proposals = partner = None
        head = self.decode_head
        if head.with_proposal_losses:
            grid, valid = self.proposals_on_grid(data_samples,
                                                 visual.shape[-2:])
            proposals = (grid, valid,
                         self.proposal_clip_sim(data_samples, grid.shape[1],
                                                grid.device))
            if head.loss_iad is not None:
                partner = self.encode_partners(data_samples, visual.device)
        return head.loss(visual,
                         sentence,
                         self._stage_cues(tokens, mask),
                         data_samples,
                         self.calibration_images(inputs),
                         offset,
                         proposals=proposals,
                         partner=partner,
                         proposal_loss_scale=self.proposal_loss_scale())

    def proposal_loss_scale(self) -> float:
        """``min(1, iter / proposal_loss_warmup)`` (1 without warm-up)."""
        if self.proposal_loss_warmup <= 0:
            return 1.0
        iteration = MessageHub.get_current_instance().get_info('iter', 0)
        return min(1.0, iteration / self.proposal_loss_warmup)

    def encode_partners(self, data_samples: SampleList, device):
        """``(index [P], sentence [P, D], cues)`` of the samples with an IaD
        partner (None when no sample has one)."""
        pairs = [
            i for i, sample in enumerate(data_samples)
            if sample.metainfo.get(fields.PARTNER_TEXT)
        ]
        if not pairs:
            return None
        partners = [data_samples[i] for i in pairs]
        texts = [sample.metainfo[fields.PARTNER_TEXT] for sample in partners]
        cue_lists = [
            self.cue_texts(sample.metainfo[fields.PARTNER_TEXT],
                           sample.metainfo.get(fields.PARTNER_PHRASES),
                           'the partner of ' + self._where(sample))
            for sample in partners
        ]
        sentence, tokens, mask = self.encode_expressions(texts, cue_lists)
        return (torch.tensor(pairs, device=device), sentence,
                self._stage_cues(tokens, mask, True))
