"""``RISDataSample``: a ``SegDataSample`` with the referring fields typed."""
from typing import List, Optional

from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from . import fields as F


def _meta(key: str, doc: str) -> property:
    """A metainfo field as a property: None while unset, so
    ``sample.neg_texts`` reads like ``sample.metainfo.get('neg_texts')``.
    Assigning it (``sample.text = ...``) sets metainfo."""

    def fget(self):
        return self.__dict__.get(key)

    def fset(self, value):
        # Reached through BaseDataElement.set_field, which has recorded the
        # field's kind already.
        self.__dict__[key] = value

    def fdel(self):
        self.__dict__.pop(key, None)

    return property(fget, fset, fdel, doc)


class RISDataSample(SegDataSample):
    """A referring sample: ``SegDataSample`` (``gt_sem_seg``,
    ``pred_sem_seg``, ``seg_logits``) plus typed access to the metainfo
    that ``PackRISInputs`` packs (names in ``mmwris.structures.fields``).

    Every referring property reads the metainfo key of its name and is None
    while the sample does not carry it, so ``sample.text``,
    ``sample.metainfo.get('neg_texts')`` and ``'phrases' in sample`` keep
    working. The mask proposals are the data field ``gt_proposals``
    (``PixelData [M, H, W]``); ``'gt_proposals' in sample`` tells whether
    the sample has them.
    """

    text = _meta(F.TEXT, 'The referring expression (str).')
    sent_id = _meta(F.SENT_ID, 'The expression\'s sent_id.')
    ref_id = _meta(F.REF_ID, 'The ref (object) id.')
    image_id = _meta(F.IMAGE_ID, 'The image id.')
    split = _meta(F.SPLIT, 'The refer split of the sample.')
    gt_bbox = _meta(F.GT_BBOX, 'The GT box, xyxy, original image.')
    neg_texts = _meta(F.NEG_TEXTS, 'TRIS calibration negatives (list).')
    phrases = _meta(F.PHRASES, 'PCNet: the K phrases of the expression.')
    partner_text = _meta(
        F.PARTNER_TEXT, 'PCNet IaD partner: an expression of another '
        'object of the same image (None when the image has none).')
    partner_phrases = _meta(F.PARTNER_PHRASES,
                            'PCNet: the K phrases of the partner.')
    proposal_scores = _meta(F.PROPOSAL_SCORES,
                            'PCNet: the proposals\' scores (list of M).')
    proposal_clip_sim = _meta(
        F.PROPOSAL_CLIP_SIM, 'PCNet: the CLIP similarity of each proposal '
        'with the expression (list of M).')

    META_FIELDS = frozenset(F.META_KEYS)

    def __setattr__(self, name: str, value) -> None:
        # A referring field is metainfo, also when assigned directly.
        if name in self.META_FIELDS and isinstance(
                getattr(type(self), name, None), property):
            self.set_metainfo({name: value})
        else:
            super().__setattr__(name, value)

    def get(self, key, default=None):
        """Like ``BaseDataElement.get``, but an unset referring field gives
        ``default`` (not the property's None)."""
        return getattr(self, key) if key in self else default

    @property
    def has_proposals(self) -> bool:
        """Whether the sample carries ``gt_proposals``."""
        return F.GT_PROPOSALS in self

    @property
    def negatives(self) -> List[str]:
        """``neg_texts``, an empty list when unset."""
        return list(self.neg_texts or [])

    @property
    def proposals(self) -> Optional[PixelData]:
        """``gt_proposals`` (``PixelData [M, H, W]``), None when unset."""
        return self.get(F.GT_PROPOSALS)


def describe_sample(sample) -> str:
    """``'sent_id=S (ref_id=R)'`` of a sample, for error messages."""
    return (f'sent_id={sample.metainfo.get(F.SENT_ID)} '
            f'(ref_id={sample.metainfo.get(F.REF_ID)})')
