"""The released-PCNet pieces by hand: the CRM's axis mixing and options,
RaS (overlap, anchor, seeded shrink pair), IaD (straight-through one-hot,
same-image marks), the head's frozen spare blocks and the segmentor's
partner fallback."""
import math

import pytest
import torch

from mmwris.models.decode_heads import PCNetReleasedHead
from mmwris.models.layers import ReleasedConditionalReferringStage
from mmwris.models.layers.conditional_referring_released import (
    mixed_axis_keys, per_image)
from mmwris.models.losses import (ReleasedInstanceDisambiguationLoss,
                                  ReleasedRegionShrinkingLoss)
from mmwris.models.losses.instance_disambiguation_released_loss import \
    straight_through_onehot
from mmwris.models.losses.region_shrinking_released_loss import \
    released_overlap


def test_mixed_axis_keys_follow_the_readme_formula():
    """``Kt[p, q, r] = K0[(f div C) mod T, f mod C]`` with
    ``f = p C B + q B + r`` (a reshape, not a transpose)."""
    texts, channels, batch = 4, 3, 2
    keys = torch.arange(texts * channels, dtype=torch.float).view(
        texts, channels)
    mixed = mixed_axis_keys(keys, batch)
    assert mixed.shape == (texts, channels, batch)
    for p in range(texts):
        for q in range(channels):
            for r in range(batch):
                f = p * channels * batch + q * batch + r
                assert mixed[p, q, r] == keys[(f // channels) % texts,
                                              f % channels]
    assert not torch.equal(mixed[:, :, 0], keys)


def test_per_image_groups_text_j_with_image_j_mod_b():
    texts = torch.arange(6.)[:, None]  # 2 images, 3 texts each
    grouped = per_image(texts, 2)
    assert grouped[:, :, 0].tolist() == [[0, 2, 4], [1, 3, 5]]
    with pytest.raises(ValueError):
        per_image(texts[:5], 2)


def stage(cue_attention='released', renormalize=True, channels=8):
    torch.manual_seed(0)
    return ReleasedConditionalReferringStage(
        channels, cue_attention=cue_attention, renormalize=renormalize)


def test_cue_attention_options():
    """At batch 1 (the released inference) every text attends over a
    single key, so ``'released'`` equals ``'own'``; with two images the
    three options differ."""
    torch.manual_seed(1)
    visual = torch.randn(1, 8, 3, 3)
    main, cue = torch.randn(1, 8), torch.randn(1, 8)
    outputs = [stage(mode)(visual, main, cue)[1]
               for mode in ('released', 'own', 'batch')]
    assert torch.allclose(outputs[0], outputs[1], atol=1e-6)
    assert torch.allclose(outputs[0], outputs[2], atol=1e-6)
    visual = torch.randn(2, 8, 3, 3)
    main, cue = torch.randn(4, 8), torch.randn(4, 8)
    outputs = [stage(mode)(visual, main, cue)[1]
               for mode in ('released', 'own', 'batch')]
    assert not torch.allclose(outputs[0], outputs[1], atol=1e-4)
    assert not torch.allclose(outputs[0], outputs[2], atol=1e-4)
    with pytest.raises(ValueError):
        stage('mixed')


def test_renormalize_option():
    torch.manual_seed(2)
    visual = 3 * torch.randn(2, 8, 3, 3)
    main, cue = 5 * torch.randn(2, 8), torch.randn(2, 8)
    released = stage()(visual, main, cue)
    unit_in = stage()(visual / visual.norm(dim=1, keepdim=True),
                      main / main.norm(dim=-1, keepdim=True), cue)
    raw = stage(renormalize=False)(visual, main, cue)
    for ours, same in zip(released, unit_in):
        assert torch.allclose(ours, same, atol=1e-5)
    assert not torch.allclose(released[0], raw[0], atol=1e-3)


def test_released_overlap_by_hand():
    prob = torch.tensor([[0.5, 1.0], [0.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    inter, union = released_overlap(prob, mask)
    assert inter.item() == pytest.approx(0.5)
    assert union.item() == pytest.approx(1.5 + 2 + 1e-5)


def ras_inputs():
    """One image, 3 stages on a 1x4 grid; proposals: A (pixels 0-1, the
    best CLIP score), B (pixel 2), C (pixels 2-3)."""
    proposals = torch.tensor([[[[1., 1., 0., 0.]], [[0., 0., 1., 0.]],
                               [[0., 0., 1., 1.]]]])
    clip_score = torch.tensor([[0.9, 0.1, 0.5]])
    return proposals, clip_score


def test_ras_terms_by_hand():
    proposals, clip_score = ras_inputs()
    # Maps already on the grid in [0, 1]: match_terms directly.
    prob = torch.tensor([[[[1., 0., 0., 0.]], [[1., 0., 1., 0.]],
                          [[1., 1., 1., 1.]]]])
    loss = ReleasedRegionShrinkingLoss()
    terms = loss.match_terms(prob, proposals, clip_score)

    def o(i, u):
        return i / (u + 1e-5 + 1e-5)
    left = torch.tensor([o(1, 3), o(1, 4), o(2, 6)])
    # others in score order: C then B.
    right = torch.tensor([max(o(0, 3), o(0, 2)), max(o(1, 4), o(1, 3)),
                          max(o(2, 6), o(1, 5))])
    assert torch.allclose(terms['left_match'], left / (1 + 1e-4))
    assert torch.allclose(terms['right_match'], right / (1 + 1e-4))
    assert terms['right_I'].shape == (1, 3, 2)


def test_ras_loss_pairs_and_draws():
    proposals, clip_score = ras_inputs()
    maps = torch.randn(2, 3, 2, 2, requires_grad=True)
    proposals = proposals.expand(2, -1, -1, -1).reshape(2, 3, 1, 4)
    proposals = torch.nn.functional.pad(proposals, (0, 0, 0, 3))
    clip_score = clip_score.expand(2, -1)
    loss = ReleasedRegionShrinkingLoss(anchor_weight=2.0, shrink_weight=3.0)
    size = (8, 8)
    out = loss(maps, proposals, clip_score, size, pair=1)
    from mmwris.models.losses.region_shrinking_released_loss import \
        released_proposal_response
    terms = loss.match_terms(
        released_proposal_response(maps, size, proposals.shape[-2:]),
        proposals, clip_score)
    assert out['loss_ras_anchor'].item() == pytest.approx(
        2 * (1 - terms['left_match']).mean().item())
    right = terms['right_match']
    assert out['loss_ras_shrink'].item() == pytest.approx(
        3 * (1 - (right[1] - right[2])).item())
    out['loss_ras_shrink'].backward()  # nothing detached
    assert maps.grad is not None
    # The draw: reproducible per (seed, step), covers every pair.
    draws = [loss.draw_pair(4, step) for step in range(50)]
    assert draws == [loss.draw_pair(4, step) for step in range(50)]
    assert set(draws) == {0, 1, 2}
    other = ReleasedRegionShrinkingLoss(seed=1)
    assert draws != [other.draw_pair(4, step) for step in range(50)]
    every = ReleasedRegionShrinkingLoss(shrink_pair='all')(
        maps, proposals, clip_score, size)
    assert every['loss_ras_shrink'].item() == pytest.approx(
        (1 - (right[:-1] - right[1:])).mean().item())
    single = loss(maps[:, :1], proposals, clip_score, size)
    assert single['loss_ras_shrink'].item() == 0


def test_straight_through_onehot():
    scores = torch.tensor([[0.2, 0.7, 0.7, 0.1]], requires_grad=True)
    onehot = straight_through_onehot(scores)
    assert onehot[0].tolist() == pytest.approx([0., 1., 0., 0.], abs=1e-7)
    (onehot * torch.tensor([1., 2., 3., 4.])).sum().backward()
    soft = torch.softmax(scores.detach(), -1)
    expected = soft * (torch.tensor([1., 2., 3., 4.]) -
                       (soft * torch.tensor([1., 2., 3., 4.])).sum())
    assert torch.allclose(scores.grad, expected, atol=1e-6)


def test_iad_by_hand():
    """Same pick -> 1, different picks -> 0 (per marked pair), unmarked
    pairs ignored; no mark at all -> the constant weight."""
    proposals = torch.tensor([[[[1., 0.]], [[0., 1.]]]]).expand(
        2, -1, -1, -1)
    left = torch.tensor([[[[5., -1.]]]])
    right = torch.tensor([[[[-1., 5.]]]])
    loss = ReleasedInstanceDisambiguationLoss(loss_weight=2.0)
    size = (1, 2)
    same = loss(torch.cat([left, left]), torch.cat([left, right]), proposals,
                torch.tensor([True, False]), size)
    assert same['loss_iad'].item() == pytest.approx(2.0, abs=1e-6)
    differ = loss(torch.cat([left, left]), torch.cat([right, left]),
                  proposals, torch.tensor([True, False]), size)
    assert differ['loss_iad'].item() == pytest.approx(2 * (1 - 2 / 2.0001),
                                                 abs=1e-6)
    none = loss(torch.cat([left, left]), torch.cat([right, right]),
                proposals, torch.tensor([False, False]), size)
    assert none['loss_iad'].item() == pytest.approx(2.0)
    # per_stage=False: the last stage only.
    maps = torch.cat([right, left], dim=1)  # stage 0 right, stage 1 left
    last = ReleasedInstanceDisambiguationLoss(per_stage=False)(
        maps, torch.cat([left, left], 1), proposals[:1],
        torch.tensor([True]), size)
    assert last['loss_iad'].item() == pytest.approx(1.0)


def head(**kwargs):
    torch.manual_seed(0)
    return PCNetReleasedHead(in_channels=6, text_channels=5, channels=8,
                             **kwargs)


def test_head_spare_blocks_are_frozen_and_unused():
    model = head(num_stages=2, num_blocks=4)
    assert len(model.stages) == 4
    assert all(not p.requires_grad for p in model.stages[2:].parameters())
    assert all(p.requires_grad for p in model.stages[:2].parameters())
    assert not model.logit_scale.requires_grad
    visual, cues = torch.randn(2, 6, 3, 3), torch.randn(2, 2, 5)
    before = model(visual, cues)
    for p in model.stages[2:].parameters():
        p.data.add_(1.0)
    after = model(visual, cues)
    for a, b in zip(before, after):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        head(num_stages=3, num_blocks=2)


def test_joint_partner_option():
    """The joint forward lets the partners change the expressions' maps;
    the separate one does not."""
    from mmwris.structures import RISDataSample
    visual = torch.randn(2, 6, 3, 3)
    cues, partner = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    samples = [RISDataSample() for _ in range(2)]
    mark = torch.tensor([True, True])
    losses = {}
    for joint in (True, False):
        model = head(joint_partner=joint,
                     loss_iad=dict(type='ReleasedInstanceDisambiguationLoss'))
        proposals = (torch.ones(2, 4, 4, 4), torch.zeros(2, 4))
        losses[joint] = model.loss(visual, cues, samples,
                                   proposals=proposals,
                                   partner=(cues.clone(), mark),
                                   image_size=(12, 12))
        alone = model.loss(visual, cues, samples, proposals=proposals,
                           partner=(partner, mark), image_size=(12, 12))
        same = math.isclose(alone['loss_cls'].item(),
                            losses[joint]['loss_cls'].item(), abs_tol=1e-6)
        assert same != joint


def test_segmentor_partner_fallback():
    """A sample without a same-image partner takes the next sample's
    expression with ``mark`` False (the released loader's other-image
    partner)."""
    from mmwris.models.segmentors import PCNetSegmentor
    from mmwris.structures import RISDataSample, fields
    seen = {}

    class Stub:
        num_stages = 2

        def cue_texts(self, text, phrases, where):
            return PCNetSegmentor.cue_texts(self, text, phrases, where)

        def encode_cue_sentences(self, texts, cue_lists):
            seen['texts'], seen['cues'] = texts, cue_lists
            return torch.zeros(len(texts), 2, 3)

        _where = staticmethod(lambda sample: 'sample')

    samples = []
    for text, partner in (('red cup', 'blue cup'), ('tall man', None)):
        sample = RISDataSample()
        sample.set_metainfo({
            fields.TEXT: text, fields.PHRASES: [text.split()[1]],
            fields.PARTNER_TEXT: partner,
            fields.PARTNER_PHRASES: [partner.split()[1]] if partner else
            None})
        samples.append(sample)
    _, mark = PCNetSegmentor.partner_cue_sentences(Stub(), samples)
    assert mark.tolist() == [True, False]
    assert seen['texts'] == ['blue cup', 'red cup']
    assert seen['cues'] == [['cup', 'blue cup'], ['cup', 'red cup']]


def test_toy_released_config_builds_the_released_head():
    """The toy three-way comparison's released-network config: the toy
    PCNet data and evaluation, PCNetReleasedHead, no RaS (the toy proposals
    have no CLIP score to rank them), IaD per stage."""
    import os.path as osp

    from mmengine.config import Config

    from mmwris.registry import MODELS
    from mmwris.utils import register_all_modules
    register_all_modules()
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    folder = osp.join(repo, 'configs', 'pcnet')
    released = Config.fromfile(osp.join(
        folder, 'pcnet-released_clip-tiny_1xb32-3k_toyrefer-128x128.py'))
    clean = Config.fromfile(osp.join(
        folder, 'pcnet_clip-tiny_1xb32-3k_toyrefer-128x128.py'))
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper',
                'param_scheduler', 'train_cfg'):
        assert released[key] == clean[key], key
    assert released.model.test_cfg == clean.model.test_cfg
    model = MODELS.build(released.model)
    assert model.released
    assert model.decode_head.loss_ras is None
    assert model.decode_head.loss_iad.per_stage
    assert model.proposal_grid == (32, 32)
