"""PCNet's Conditional Referring Module, head and segmentor (tiny CLIP)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from conftest import REPO
from mmwris.models.decode_heads import PCNetHead
from mmwris.models.layers import ConditionalReferringStage, masked_softmax
from mmwris.registry import MODELS

TOY = osp.join(REPO, 'configs', 'pcnet',
               'pcnet_clip-tiny_1xb32-3k_toyrefer-128x128.py')
SIZE = 64


def test_masked_softmax_ignores_padding_and_empty_rows():
    logits = torch.tensor([[1.0, 2.0, 50.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    weights = masked_softmax(logits, mask)
    expected = torch.softmax(torch.tensor([1.0, 2.0]), 0)
    torch.testing.assert_close(weights[0, :2], expected)
    assert weights[0, 2] == 0 and weights[1].abs().sum() == 0


def _stage_inputs(batch=2, texts=3, tokens=4, channels=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    visual = torch.randn(batch, channels, 5, 5, generator=gen)
    text = torch.randn(batch, texts, channels, generator=gen)
    cue = torch.randn(batch, texts, tokens, channels, generator=gen)
    mask = torch.ones(batch, texts, tokens, dtype=torch.bool)
    mask[:, :, -1] = False
    return visual, text, cue, mask


def test_crm_text_modulation_is_per_sample_and_ignores_padding():
    """Step 2 attends over each (image, text) pair's own cue tokens only:
    changing another text's cue, or a padded token, changes nothing."""
    torch.manual_seed(0)
    stage = ConditionalReferringStage(8).eval()
    visual, text, cue, mask = _stage_inputs()
    context = stage.gather_visual_context(visual, cue)
    out = stage.modulate_text(text, context, mask)
    other = context.clone()
    other[:, 1] += 5.0          # another text's cue
    other[:, 0, -1] += 5.0      # a padded token of text 0
    changed = stage.modulate_text(text, other, mask)
    torch.testing.assert_close(changed[:, 0], out[:, 0])
    torch.testing.assert_close(changed[:, 2], out[:, 2])
    assert not torch.allclose(changed[:, 1], out[:, 1])
    # residual 0.1 around the original text
    assert (out - text).abs().max() < (text.abs().max())


def test_crm_visual_context_depends_on_own_image_only():
    torch.manual_seed(0)
    stage = ConditionalReferringStage(8).eval()
    visual, _, cue, _ = _stage_inputs()
    context = stage.gather_visual_context(visual, cue)
    visual2 = visual.clone()
    visual2[1] += 3.0
    context2 = stage.gather_visual_context(visual2, cue)
    torch.testing.assert_close(context2[0], context[0])
    assert not torch.allclose(context2[1], context[1])


def test_pcnet_head_stages_and_shared_or_per_image_text():
    torch.manual_seed(0)
    head = PCNetHead(in_channels=6, text_channels=5, token_channels=7,
                     channels=8, num_stages=3).eval()
    visual = torch.randn(2, 6, 4, 4)
    text = torch.randn(3, 5)
    cues = [(torch.randn(3, 4, 7), torch.ones(3, 4)) for _ in range(3)]
    maps = head(visual, text, cues)
    assert len(maps) == 3 and all(m.shape == (2, 3, 4, 4) for m in maps)
    # the same texts given per image give the same maps
    per_image = head(visual, text[None].expand(2, -1, -1),
                     [(t[None].expand(2, -1, -1, -1),
                       m[None].expand(2, -1, -1)) for t, m in cues])
    for a, b in zip(maps, per_image):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # stages have their own weights and differ in output
    assert not torch.allclose(maps[0], maps[2])
    with pytest.raises(ValueError, match='3 CRM stages need as many cues'):
        head(visual, text, cues[:2])


def tiny_pcnet(head=None, **overrides):
    cfg = Config.fromfile(TOY)
    cfg.model.data_preprocessor.size = (SIZE, SIZE)
    cfg.model.decode_head.update(head or {})
    cfg.model.update(overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def make_samples(count=4, partner_every=2, num_proposals=5, phrases=True):
    """Samples whose proposal 0 covers the left half, 1 the right half."""
    samples = []
    for i in range(count):
        sample = SegDataSample()
        proposals = torch.zeros(num_proposals, SIZE, SIZE, dtype=torch.uint8)
        proposals[0, :, :SIZE // 2] = 1
        proposals[1, :, SIZE // 2:] = 1
        has_partner = partner_every and i % partner_every == 0
        sample.set_metainfo(dict(
            text=f'the red circle number {i}',
            phrases=['a circle', 'the red circle'] if phrases else None,
            partner_text='the blue square' if has_partner else None,
            partner_phrases=['a square', 'the blue square']
            if has_partner else None,
            sent_id=i, ref_id=i, img_shape=(SIZE, SIZE),
            ori_shape=(SIZE, SIZE), batch_input_shape=(SIZE, SIZE)))
        sample.gt_proposals = PixelData(data=proposals)
        samples.append(sample)
    return samples


def test_pcnet_losses_and_gradients_reach_every_stage():
    model = tiny_pcnet()
    model.train()
    inputs = torch.randn(4, 3, SIZE, SIZE)
    losses = model.loss(inputs, make_samples())
    assert set(losses) == {'loss_cls', 'acc_cls', 'loss_ras_align',
                           'loss_ras_shrink', 'loss_iad_overlap',
                           'loss_iad_select'}
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    total.backward()
    for k, stage in enumerate(model.decode_head.stages):
        grad = stage.text_query.weight.grad
        assert grad is not None and grad.abs().sum() > 0, k
    assert model.decode_head.cue_proj.weight.grad.abs().sum() > 0


def test_pcnet_classification_averages_stages():
    """loss_cls is the mean of the stages' classification losses."""
    from mmwris.models.layers import image_text_scores
    model = tiny_pcnet(head=dict(loss_ras=None, loss_iad=None))
    model.train()
    inputs = torch.randn(3, 3, SIZE, SIZE)
    samples = make_samples(3)
    losses = model.loss(inputs, samples)
    visual = model.extract_feat(inputs)
    _, (sentence, tokens, mask) = model._own_inputs(samples)
    maps = model.decode_head(visual, sentence,
                             model._stage_cues(tokens, mask))
    target = torch.eye(3)
    expected = sum(model.decode_head.loss_cls(image_text_scores(m), target)
                   for m in maps) / 3
    torch.testing.assert_close(losses['loss_cls'], expected)


def test_pcnet_without_partners_gives_zero_iad():
    model = tiny_pcnet()
    model.train()
    losses = model.loss(torch.randn(2, 3, SIZE, SIZE),
                        make_samples(2, partner_every=0))
    assert losses['loss_iad_overlap'] == 0 and losses['loss_iad_select'] == 0


def test_pcnet_needs_phrases_and_proposals():
    model = tiny_pcnet()
    model.train()
    inputs = torch.randn(2, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match=r'needs 2 phrases.*sent_id=0'):
        model.loss(inputs, make_samples(2, phrases=False))
    samples = make_samples(2)
    del samples[1].gt_proposals
    with pytest.raises(KeyError, match='LoadProposals'):
        model.loss(inputs, samples)


def peak_decoder(output):
    return dict(mask_decoder=dict(type='PeakProposalMaskDecoder',
                                  output=output))


def test_pcnet_peak_proposal_mask_decoder():
    inputs = torch.randn(2, 3, SIZE, SIZE)
    model = tiny_pcnet(test_cfg=peak_decoder('both'))
    model.eval()
    with torch.no_grad():
        out = model.predict(inputs, make_samples(2))
    for sample in out:
        response = sample.seg_logits.data[0]
        peak_col = int(response.flatten().argmax()) % SIZE
        proposal = sample.pred_proposal_seg.data[0]
        # the chosen proposal is the half that contains the peak
        assert proposal[:, peak_col].all()
        assert proposal.sum() == SIZE * SIZE // 2
        assert sample.pred_sem_seg.data.shape == (1, SIZE, SIZE)
    stages = model._forward(inputs, make_samples(2))
    assert stages.shape[:2] == (2, 3)
    model = tiny_pcnet(test_cfg=peak_decoder('proposal'))
    model.eval()
    with torch.no_grad():
        out = model.predict(inputs, make_samples(2))
    assert out[0].pred_sem_seg.data.sum() == SIZE * SIZE // 2
    assert 'pred_proposal_seg' not in out[0]
    with pytest.raises(ValueError, match='output must be one of'):
        tiny_pcnet(test_cfg=peak_decoder('peak'))
    with pytest.raises(ValueError, match='replaced by test_cfg.mask_decoder'):
        tiny_pcnet(test_cfg=dict(predict_mode='both'))


def test_pcnet_proposal_loss_warmup_scales_ras_and_iad():
    from mmengine.logging import MessageHub
    inputs = torch.randn(2, 3, SIZE, SIZE)
    full = tiny_pcnet()
    full.train()
    reference = full.loss(inputs, make_samples(2))
    model = tiny_pcnet(train_cfg=dict(proposal_loss_warmup=100))
    model.train()
    hub = MessageHub.get_current_instance()
    for iteration, scale in ((0, 0.0), (25, 0.25), (400, 1.0)):
        hub.update_info('iter', iteration)
        losses = model.loss(inputs, make_samples(2))
        for name in ('loss_ras_align', 'loss_iad_overlap'):
            torch.testing.assert_close(losses[name], reference[name] * scale)
        torch.testing.assert_close(losses['loss_cls'], reference['loss_cls'])
    hub.update_info('iter', 0)
