"""The released PCNet evaluation (``validate.py``) on the official fixtures
and by hand.

The paper config's mask decoder (``PeakProposalMaskDecoder(select=
'max_response')`` over ``TRISOfficialMaskDecoder``) and
``RISMetric(protocol='pcnet')`` must give the released per-ref counts,
the "segmentor" pick (torch.topk's tie order) and the aggregated metrics,
scoring only the first expression of each ref.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData

from official_fixtures import require

require('pcnet')

# The module fixtures (inputs, eval_io, official) come along.
from test_pcnet_parity import (  # noqa: E402, F401
    PAPER_MODEL, build_paper_model, check, cue_sentences, eval_io, inputs,
    official)

from mmwris.evaluation import RISMetric  # noqa: E402
from mmwris.models.mask_decoders.peak_proposal import \
    max_response_proposal  # noqa: E402
from mmwris.registry import MODELS  # noqa: E402
from mmwris.structures import RISDataSample  # noqa: E402

METRIC_ATOL = 1e-3  # README 5: aggregated metrics


def refs_of(inputs):
    return sorted({int(k.split('/')[1][3:]) for k in inputs
                   if k.startswith('val/ref')})


def val_ks(eval_io):
    return sorted({int(k.split('/')[1][1:]) for k in eval_io
                   if k.startswith('val/K') and k.endswith('/mIoU')})


def val_sample(inputs, ref, size, sent_id):
    """A test sample of ref ``ref`` as the released loader builds it: the
    GT at the original size, the proposals resized nearest to it."""
    prefix = f'val/ref{ref}/'
    target = inputs[prefix + 'target']
    height, width = target.shape
    masks = F.interpolate(inputs[prefix + 'zs_mask'].float(),
                          size=(height, width), mode='nearest')[0]
    sample = RISDataSample()
    sample.set_metainfo(dict(
        ori_shape=(height, width), img_shape=(size, size),
        batch_input_shape=(size, size), ref_id=ref, sent_id=sent_id,
        split='val', gt_bbox=inputs[prefix + 'box_xyxy'][0].double().numpy()))
    sample.gt_sem_seg = PixelData(data=target[None].long())
    sample.gt_proposals = PixelData(data=masks.to(torch.uint8))
    return sample


def decoded_refs(official, inputs, num_stages, expression=0):
    """Each ref's ``expression`` through the paper model (batch 1, as
    validate.py) and the paper config's mask decoder."""
    model = build_paper_model(official, inputs, num_stages).eval()
    size = inputs['img_size']
    samples = []
    with torch.no_grad():
        for ref in refs_of(inputs):
            prefix = f'val/ref{ref}/'
            ids = inputs[prefix + 'word_ids'][..., expression]
            phrases = inputs[prefix + 'llm_word_ids'][..., expression]
            cues = cue_sentences(model, ids, phrases[:, :3], num_stages)
            image = inputs['img'][ref % inputs['batch_size']][None]
            maps = model.decode_head.predict(model.extract_feat(image), cues)
            sample = val_sample(inputs, ref, size, 2 * ref + expression)
            model.mask_decoder.decode_batch(maps[-1], [sample])
            samples.append(sample)
    return samples


def test_paper_config_uses_the_released_evaluation():
    cfg = Config.fromfile(PAPER_MODEL).model.test_cfg.mask_decoder
    decoder = MODELS.build(cfg)
    assert decoder.select == 'max_response'
    assert type(decoder.response_decoder).__name__ == \
        'TRISOfficialMaskDecoder'


def test_validate_per_ref_and_aggregates(official, inputs, eval_io):
    """validate() counts and metrics for every K of the fixture; a second
    expression per ref (which validate.py skips) changes nothing in the
    ``pcnet`` protocol but enters ``ours``."""
    for num_stages in val_ks(eval_io):
        firsts = decoded_refs(official, inputs, num_stages)
        seconds = decoded_refs(official, inputs, num_stages, expression=1)
        key = f'val/K{num_stages}/'
        metric = RISMetric(protocol='pcnet', digits=None)
        for first, second in zip(firsts, seconds):
            metric.process(None, [first.to_dict(), second.to_dict()])
        results = list(metric.results)
        for ref, sample in zip(refs_of(inputs), firsts):
            prefix = f'{key}ref{ref}/'
            result = results[2 * refs_of(inputs).index(ref)]
            if f'{prefix}t_cam' in eval_io:
                check(prefix + 't_cam', sample.seg_logits.data[0],
                      eval_io[prefix + 't_cam'], atol=1e-5, rtol=1e-4)
            assert result['intersection'] == int(eval_io[prefix + 'I'])
            assert result['union'] == int(eval_io[prefix + 'U'])
            assert result['segmentor']['intersection'] == int(
                eval_io[prefix + 'sam_I'])
            assert result['segmentor']['union'] == int(
                eval_io[prefix + 'sam_U'])
            assert sample.proposal_index == eval_io[prefix + 'sam_pick'][0]
            assert result['pointit_hit'] == bool(eval_io[prefix + 'hit'])
            assert result['point_hit'] == bool(eval_io[prefix + 'hitm'])
            peak = np.unravel_index(
                int(sample.seg_logits.data.argmax()),
                sample.seg_logits.data.shape[-2:])
            assert list(peak) == list(eval_io[prefix + 'peak_rc'])
        metrics = metric.compute_metrics(results)
        assert metrics['val/num_samples'] == len(refs_of(inputs))
        for ours, released in (('mIoU', 'mIoU'), ('oIoU', 'overall_IoU'),
                               ('PointIt', 'hit'), ('PointM', 'Hit_M'),
                               ('segmentor/mIoU', 'SAM_mIoU'),
                               ('segmentor/oIoU', 'SAM_oIoU')):
            assert metrics[f'val/{ours}'] == pytest.approx(
                float(eval_io[key + released]), abs=METRIC_ATOL), ours
        every = RISMetric(digits=None).compute_metrics(results)
        assert every['val/num_samples'] == 2 * len(refs_of(inputs))


def test_released_pick_follows_topk_on_ties(inputs, eval_io):
    """The stored per-proposal maxima: our pick is torch.topk's first
    index (ties included, e.g. nested masks that all hold the peak)."""
    for num_stages in val_ks(eval_io):
        for ref in refs_of(inputs):
            prefix = f'val/K{num_stages}/ref{ref}/'
            values = eval_io[prefix + 'sam_per_proposal_max'].float()
            # Mask n holds pixel n only, where the map is values[n].
            count = len(values)
            pick = max_response_proposal(values[None],
                                         torch.eye(count)[:, None])
            assert pick == eval_io[prefix + 'sam_pick'][0]
            assert pick == eval_io[prefix + 'sam_pick'][0]


def hand_sample(ref_id, sent_id, response, gt, box, proposal=None):
    sample = dict(seg_logits=dict(data=response[None]),
                  pred_sem_seg=dict(data=(response > 1e-9)[None].long()),
                  gt_sem_seg=dict(data=gt[None]), gt_bbox=box, split='val',
                  ref_id=ref_id, sent_id=sent_id, image_id=0)
    if proposal is not None:
        sample['pred_proposal_seg'] = dict(data=proposal[None])
    return sample


def test_pcnet_protocol_by_hand():
    """Two refs with two expressions each: ``pcnet`` keeps the first of
    each ref (in evaluation order), ``ours`` all four; hand-computed."""
    gt = torch.zeros(4, 6, dtype=torch.long)
    gt[1:3, 1:4] = 1  # 6 pixels, box x 1..3, y 1..2
    box = np.array([1.0, 1.0, 4.0, 3.0])
    hit = torch.zeros(4, 6)
    hit[1:3, 1:3] = torch.tensor([[0.5, 1.0], [0.2, 0.1]])  # 4 px inside
    miss = torch.zeros(4, 6)
    miss[3, 5] = 1.0  # 1 px outside
    prop = torch.zeros(4, 6, dtype=torch.long)
    prop[1:3, 1:4] = 1
    samples = [hand_sample(7, 70, hit, gt, box, prop),
               hand_sample(7, 71, miss, gt, box, prop),
               hand_sample(8, 80, miss, gt, box, prop),
               hand_sample(8, 81, hit, gt, box, prop)]
    pcnet = RISMetric(protocol='pcnet', digits=None)
    pcnet.process(None, samples)
    out = pcnet.compute_metrics(pcnet.results)
    assert out['val/num_samples'] == 2
    # ref 7: I 4, U 6; ref 8: I 0, U 7.
    assert out['val/mIoU'] == pytest.approx(100 * (4 / 6 + 0) / 2)
    assert out['val/oIoU'] == pytest.approx(100 * 4 / 13)
    assert out['val/PointIt'] == pytest.approx(50.0)
    assert out['val/segmentor/mIoU'] == pytest.approx(100.0)
    ours = RISMetric(digits=None)
    ours.process(None, samples)
    out = ours.compute_metrics(ours.results)
    assert out['val/num_samples'] == 4
    assert out['val/oIoU'] == pytest.approx(100 * 8 / 26)
    # first_expression overrides the protocol's default.
    every = RISMetric(protocol='pcnet', first_expression=False, digits=None)
    every.process(None, samples)
    assert every.compute_metrics(every.results)['val/num_samples'] == 4


def test_max_response_pick_by_hand():
    """v[n] = max(P * mask_n): nested masks holding the peak tie; a mask
    away from the peak loses; no proposal gives -1."""
    prob = torch.tensor([[0.0, 0.2], [0.9, 0.4]])
    masks = torch.tensor([[[1, 1], [0, 0]],   # max 0.2
                          [[0, 0], [1, 1]],   # max 0.9
                          [[0, 1], [0, 1]]])  # max 0.4
    assert max_response_proposal(prob, masks) == 1
    assert max_response_proposal(prob, masks[:0]) == -1
