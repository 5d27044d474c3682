"""PCNet's RaS / IaD losses and proposal helpers on hand-built 4x4 grids.

Logits of +-30 give sigmoid probabilities of 1 and 0 up to ~1e-13, a logit
of 0 gives exactly 0.5, so the expected values below are derived by hand.
Proposals on the 4x4 grid::

    LEFT  = cols 0-1 (8 px)     TR = rows 0-1, cols 2-3 (4 px)
    BR    = rows 2-3, cols 2-3  TL = rows 0-1, cols 0-1 (4 px, inside LEFT)
"""
import math

import pytest
import torch

from mmwris.models.losses import (InstanceDisambiguationLoss,
                                  RegionShrinkingLoss)
from mmwris.models.utils import (masked_argmax, normalize_response,
                                 proposal_alignment, select_peak_proposal,
                                 soft_iou)

BIG = 30.0
TOL = dict(rel=0, abs=1e-5)


def box(r0, r1, c0, c1, size=4):
    """Binary ``[size, size]`` mask of rows r0..r1-1, cols c0..c1-1."""
    mask = torch.zeros(size, size)
    mask[r0:r1, c0:c1] = 1
    return mask


LEFT = box(0, 4, 0, 2)
TR = box(0, 2, 2, 4)
BR = box(2, 4, 2, 4)
TL = box(0, 2, 0, 2)


def logits(*parts):
    """Raw map: ``-BIG`` everywhere, then ``value`` on each (mask, value)."""
    out = torch.full((4, 4), -BIG)
    for mask, value in parts:
        out[mask.bool()] = value
    return out


def ras_inputs(stages, props=(LEFT, TR, BR), valid=None):
    """One image: maps [1, S, 4, 4], proposals [1, M, 4, 4], valid [1, M]."""
    maps = torch.stack(stages)[None]
    proposals = torch.stack(props)[None]
    if valid is None:
        valid = [True] * len(props)
    return maps, proposals, torch.tensor([valid])


# ---------------------------------------------------------------- helpers
def test_soft_iou_values():
    # p = 1 on TL (4 px) vs LEFT (8 px): 4 / (4 + 8 - 4) = 0.5
    assert soft_iou(TL, LEFT).item() == pytest.approx(0.5, **TOL)
    # p = 0.5 everywhere (sum 8) vs TL: inter 2 / (8 + 4 - 2) = 0.2
    half = torch.full((4, 4), 0.5)
    assert soft_iou(half, TL).item() == pytest.approx(0.2, **TOL)
    assert soft_iou(TL, BR).item() == 0
    # broadcasting [2, 1, h, w] x [1, 3, h, w] -> [2, 3]
    prob = torch.stack([TL, half])[:, None]
    masks = torch.stack([LEFT, TL, BR])[None]
    expected = torch.tensor([[0.5, 1.0, 0.0],
                             # half vs LEFT: 4 / (8 + 8 - 4) = 1/3;
                             # vs BR: 2 / (8 + 4 - 2) = 0.2
                             [1 / 3, 0.2, 0.2]])
    torch.testing.assert_close(
        soft_iou(prob, masks), expected, rtol=0, atol=1e-5)


def test_proposal_alignment_and_masked_argmax():
    # stage maps TL and LEFT u TR against proposals LEFT, TR, BR
    prob = torch.stack([TL, LEFT + TR])[None]
    props = torch.stack([LEFT, TR, BR])[None]
    align = proposal_alignment(prob, props)
    assert align.shape == (1, 2, 3)
    # LEFT u TR (12 px): LEFT 8 / 12, TR 4 / 12, BR 0
    expected = torch.tensor([[[0.5, 0.0, 0.0], [2 / 3, 1 / 3, 0.0]]])
    torch.testing.assert_close(align, expected, rtol=0, atol=1e-5)

    scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1],
                           [0.3, 0.2, 0.1]])
    valid = torch.tensor([[True, False, True], [False, False, False],
                          [False, True, True]])
    assert masked_argmax(scores, valid).tolist() == [2, -1, 1]
    empty = masked_argmax(torch.zeros(2, 0), torch.zeros(2, 0, dtype=bool))
    assert empty.tolist() == [-1, -1]


def test_normalize_response():
    raw = logits((LEFT, 10.0), (TR, 4.0))
    raw[~(LEFT + TR).bool()] = -2.0
    # minmax: (x + 2) / 12 -> LEFT 1, TR 0.5, rest 0
    torch.testing.assert_close(
        normalize_response(raw, 'minmax'), LEFT + 0.5 * TR, rtol=0,
        atol=1e-5)
    assert normalize_response(torch.zeros(4, 4), 'sigmoid').max() == 0.5
    assert normalize_response(torch.ones(4, 4), 'minmax').abs().max() == 0
    with pytest.raises(ValueError, match='normalize'):
        normalize_response(raw, 'softmax')


# ---------------------------------------------------------------- RaS
def test_ras_perfect_map_and_margin():
    maps, props, valid = ras_inputs([logits((LEFT, BIG))] * 2)
    out = RegionShrinkingLoss()(maps, props, valid)
    # a[LEFT] = 1 on both stages; TR and BR hold no response -> A = 0
    assert out['loss_ras_align'].item() == pytest.approx(0, **TOL)
    assert out['loss_ras_shrink'].item() == pytest.approx(0, **TOL)
    out = RegionShrinkingLoss(margin=0.1)(maps, props, valid)
    # relu(0 - 0 + 0.1)
    assert out['loss_ras_shrink'].item() == pytest.approx(0.1, **TOL)


def test_ras_spreading_stage_is_penalised():
    # stage 1 = LEFT, stage 2 = LEFT u TR. Last stage: a[LEFT] = 8/12,
    # a[TR] = 4/12 -> target LEFT. A1 = 0; A2 = mean(TR: 4/4, BR: 0) = 0.5.
    maps, props, valid = ras_inputs(
        [logits((LEFT, BIG)), logits((LEFT, BIG), (TR, BIG))])
    out = RegionShrinkingLoss()(maps, props, valid)
    # align = mean(1 - 1, 1 - 2/3) = 1/6; shrink = relu(0.5 - 0) = 0.5
    assert out['loss_ras_align'].item() == pytest.approx(1 / 6, **TOL)
    assert out['loss_ras_shrink'].item() == pytest.approx(0.5, **TOL)
    out = RegionShrinkingLoss(loss_weight=2.0, align_weight=3.0)(
        maps, props, valid)
    assert out['loss_ras_align'].item() == pytest.approx(1.0, **TOL)
    assert out['loss_ras_shrink'].item() == pytest.approx(1.0, **TOL)


def test_ras_shrinking_stage_is_free_unless_margin():
    # reverse order: last stage = LEFT -> target LEFT; A1 = 0.5, A2 = 0
    maps, props, valid = ras_inputs(
        [logits((LEFT, BIG), (TR, BIG)), logits((LEFT, BIG))])
    out = RegionShrinkingLoss()(maps, props, valid)
    assert out['loss_ras_align'].item() == pytest.approx(1 / 6, **TOL)
    assert out['loss_ras_shrink'].item() == pytest.approx(0, **TOL)
    out = RegionShrinkingLoss(margin=0.6)(maps, props, valid)
    # relu(0 - 0.5 + 0.6) = 0.1
    assert out['loss_ras_shrink'].item() == pytest.approx(0.1, **TOL)


def test_ras_three_stages_with_half_response():
    # stages LEFT; LEFT + 0.5 on TR; LEFT u TR -> A = 0, 0.25, 0.5
    maps, props, valid = ras_inputs([
        logits((LEFT, BIG)),
        logits((LEFT, BIG), (TR, 0.0)),
        logits((LEFT, BIG), (TR, BIG))])
    out = RegionShrinkingLoss()(maps, props, valid)
    # shrink = mean(relu(0.25 - 0), relu(0.5 - 0.25)) = 0.25
    assert out['loss_ras_shrink'].item() == pytest.approx(0.25, **TOL)
    # a[LEFT]: 1; 8 / (10 + 8 - 8) = 0.8; 8 / 12
    # align = (0 + 0.2 + 1/3) / 3 = 0.177777...
    assert out['loss_ras_align'].item() == pytest.approx(
        (0.2 + 1 / 3) / 3, **TOL)


def test_ras_target_from_last_stage():
    # stage 1 = TR, stage 2 = LEFT u BR: the last stage picks LEFT (8/12)
    maps, props, valid = ras_inputs(
        [logits((TR, BIG)), logits((LEFT, BIG), (BR, BIG))])
    out = RegionShrinkingLoss()(maps, props, valid)
    # align = mean(1 - 0, 1 - 2/3) = 2/3 (TR as target would give 0.5)
    assert out['loss_ras_align'].item() == pytest.approx(2 / 3, **TOL)
    # A1 = mean(TR: 1, BR: 0) = 0.5, A2 = mean(TR: 0, BR: 1) = 0.5
    assert out['loss_ras_shrink'].item() == pytest.approx(0, **TOL)


def test_ras_skips_proposals_inside_target():
    # TL lies inside the target LEFT: not an "other" proposal, so
    # A = mean(TR: 1, BR: 0) = 0.5 and not (1 + 0 + 0) / 3
    maps, props, valid = ras_inputs(
        [logits((LEFT, BIG)), logits((LEFT, BIG), (TR, BIG))],
        props=(LEFT, TR, BR, TL))
    out = RegionShrinkingLoss()(maps, props, valid)
    # stages LEFT, LEFT u TR -> shrink = 0.5 - 0
    assert out['loss_ras_shrink'].item() == pytest.approx(0.5, **TOL)


def test_ras_detach_previous_gradient():
    # stage 1: LEFT + 0.5 on TR (A1 = 0.25, sigmoid' = 0.25 on TR);
    # stage 2: LEFT + sigmoid(2) = 0.881 on TR (A2 = 0.44) -> hinge active
    def shrink_grad(detach):
        maps, props, valid = ras_inputs([
            logits((LEFT, BIG), (TR, 0.0)),
            logits((LEFT, BIG), (TR, 2.0))])
        maps.requires_grad_(True)
        loss = RegionShrinkingLoss(detach_previous=detach)(
            maps, props, valid)['loss_ras_shrink']
        loss.backward()
        return maps.grad[0]

    grad = shrink_grad(True)
    assert grad[0].abs().max().item() == 0
    assert grad[1][TR.bool()].abs().min().item() > 0
    grad = shrink_grad(False)
    # dL/dA1 = -1; dA1/dp = (1/2 others) * (1/4 px of TR); dp/dx = 0.25
    expected = -1 * 0.5 * 0.25 * 0.25
    torch.testing.assert_close(
        grad[0][TR.bool()], torch.full((4, ), expected), rtol=0, atol=1e-6)


def test_ras_select_clip():
    maps, props, valid = ras_inputs([logits((LEFT, BIG))] * 2)
    clip_sim = torch.tensor([[0.1, 0.9, 0.2]])
    out = RegionShrinkingLoss(select='clip')(maps, props, valid, clip_sim)
    # response prefers LEFT, CLIP picks TR: a[TR] = 0 -> align 1;
    # A = mean(LEFT outside TR: 8/8, BR: 0) = 0.5 on both stages
    assert out['loss_ras_align'].item() == pytest.approx(1, **TOL)
    assert out['loss_ras_shrink'].item() == pytest.approx(0, **TOL)
    out = RegionShrinkingLoss(select='clip', margin=0.2)(
        maps, props, valid, clip_sim)
    assert out['loss_ras_shrink'].item() == pytest.approx(0.2, **TOL)
    # TR invalid -> BR (0.2 > 0.1); others: LEFT only -> A = 1
    valid = torch.tensor([[True, False, True]])
    loss = RegionShrinkingLoss(select='clip', margin=0.0)
    maps2 = torch.stack([logits((LEFT, BIG)), logits()])[None]
    out = loss(maps2, props, valid, clip_sim)
    # A1 = 1 (LEFT full), A2 = 0 -> shrink 0; align = 1 on both stages
    assert out['loss_ras_align'].item() == pytest.approx(1, **TOL)
    assert out['loss_ras_shrink'].item() == pytest.approx(0, **TOL)
    out = loss(maps2[:, [1, 0]], props, valid, clip_sim)
    # now A goes 0 -> 1: shrink 1
    assert out['loss_ras_shrink'].item() == pytest.approx(1, **TOL)
    with pytest.raises(ValueError, match='clip_sim'):
        loss(maps, props, valid)


def test_ras_invalid_proposals_ignored_single_stage():
    # last (only) stage LEFT u TR; LEFT invalid -> target TR (1/3 > 0)
    maps, props, valid = ras_inputs(
        [logits((LEFT, BIG), (TR, BIG))], valid=[False, True, True])
    out = RegionShrinkingLoss()(maps, props, valid)
    # align = 1 - 1/3; S = 1 -> shrink 0 (with a graph)
    assert out['loss_ras_align'].item() == pytest.approx(2 / 3, **TOL)
    assert out['loss_ras_shrink'].item() == 0
    assert out['loss_ras_shrink'].requires_grad is False
    maps.requires_grad_(True)
    out = RegionShrinkingLoss()(maps, props, valid)
    assert out['loss_ras_shrink'].requires_grad


def test_ras_images_without_proposals_left_out():
    maps, props, valid = ras_inputs(
        [logits((LEFT, BIG)), logits((LEFT, BIG), (TR, BIG))])
    noise = torch.randn(1, 2, 4, 4) * 5
    maps = torch.cat([maps, noise])
    props = torch.cat([props, props])
    valid = torch.tensor([[True] * 3, [False] * 3])
    out = RegionShrinkingLoss()(maps, props, valid)
    # only image 0 counts (see test_ras_spreading_stage_is_penalised)
    assert out['loss_ras_align'].item() == pytest.approx(1 / 6, **TOL)
    assert out['loss_ras_shrink'].item() == pytest.approx(0.5, **TOL)

    maps.requires_grad_(True)
    out = RegionShrinkingLoss()(maps, props, torch.zeros(2, 3, dtype=bool))
    assert out['loss_ras_align'].item() == 0
    assert out['loss_ras_shrink'].item() == 0
    (out['loss_ras_align'] + out['loss_ras_shrink']).backward()
    assert maps.grad.abs().max().item() == 0


def test_ras_minmax():
    raw = logits((LEFT, 10.0), (TR, 4.0))
    raw[~(LEFT + TR).bool()] = -2.0
    maps, props, valid = ras_inputs([raw])
    out = RegionShrinkingLoss(normalize='minmax')(maps, props, valid)
    # p = LEFT + 0.5 TR: a[LEFT] = 8 / 10 -> align 0.2
    assert out['loss_ras_align'].item() == pytest.approx(0.2, **TOL)
    # under sigmoid the background keeps sigmoid(-2) = 0.12 and TR 0.98:
    # inter = 8 s(10), union = sum p + 8 - inter = 4 s(4) + 4 s(-2) + 8:
    # a[LEFT] = 0.645, align 0.355
    def sig(x):
        return 1 / (1 + math.exp(-x))

    left = 8 * sig(10)
    expected = 1 - left / (8 + 4 * sig(4) + 4 * sig(-2))
    assert expected == pytest.approx(0.355, abs=1e-3)
    out = RegionShrinkingLoss()(maps, props, valid)
    assert out['loss_ras_align'].item() == pytest.approx(expected, **TOL)


def test_ras_bad_input():
    with pytest.raises(ValueError, match='select'):
        RegionShrinkingLoss(select='best')
    with pytest.raises(ValueError, match='normalize'):
        RegionShrinkingLoss(normalize='softmax')
    maps, props, valid = ras_inputs([logits()])
    with pytest.raises(ValueError, match='valid'):
        RegionShrinkingLoss()(maps, props, valid[:, :2])


# ---------------------------------------------------------------- IaD
def iad_inputs(maps_a, maps_b, props=(LEFT, TR, BR), valid=None):
    proposals = torch.stack(props)[None].expand(len(maps_a), -1, -1, -1)
    if valid is None:
        valid = [[True] * len(props)] * len(maps_a)
    return (torch.stack(maps_a), torch.stack(maps_b), proposals,
            torch.tensor(valid))


def test_iad_identical_maps():
    # p = 0.5 everywhere: IoU(p, p) = 4 / (8 + 8 - 4) = 1/3
    inputs = iad_inputs([torch.zeros(4, 4)], [torch.zeros(4, 4)])
    out = InstanceDisambiguationLoss()(*inputs)
    assert out['loss_iad_overlap'].item() == pytest.approx(1 / 3, **TOL)
    # both select the same distribution q; a = [1/3, 0.2, 0.2] (see
    # test_soft_iou_values), q = softmax([10/3, 2, 2])
    e = math.exp(4 / 3)
    q = [e / (e + 2), 1 / (e + 2), 1 / (e + 2)]
    assert out['loss_iad_select'].item() == pytest.approx(
        sum(x * x for x in q), **TOL)


def test_iad_disjoint_maps_on_two_proposals():
    inputs = iad_inputs([logits((LEFT, BIG))], [logits((TR, BIG))])
    out = InstanceDisambiguationLoss(temperature=0.1)(*inputs)
    assert out['loss_iad_overlap'].item() == pytest.approx(0, **TOL)
    # a_a = [1, 0, 0], a_b = [0, 1, 0]; q_a = [e^10, 1, 1] / (e^10 + 2),
    # q_b = [1, e^10, 1] / (e^10 + 2):
    # sum q_a q_b = (2 e^10 + 1) / (e^10 + 2)^2 = 9.0785e-5
    e = math.exp(10)
    expected = (2 * e + 1) / (e + 2)**2
    assert expected == pytest.approx(9.0785e-5, rel=1e-4)
    assert out['loss_iad_select'].item() == pytest.approx(
        expected, rel=1e-4)
    # both on LEFT: overlap 1, select = (e^20 + 2) / (e^10 + 2)^2 ~ 0.99982
    inputs = iad_inputs([logits((LEFT, BIG))], [logits((LEFT, BIG))])
    out = InstanceDisambiguationLoss(
        loss_weight=2.0, overlap_weight=3.0, select_weight=0.5)(*inputs)
    assert out['loss_iad_overlap'].item() == pytest.approx(6, **TOL)
    assert out['loss_iad_select'].item() == pytest.approx(
        (e * e + 2) / (e + 2)**2, **TOL)


def test_iad_invalid_proposals():
    # BR invalid: q_a = [e^10, 1] / (e^10 + 1), q_b = [1, e^10] / (...)
    # select = 2 e^10 / (e^10 + 1)^2; pair 2 has no proposal: overlap only
    e = math.exp(10)
    inputs = iad_inputs(
        [logits((LEFT, BIG)), torch.zeros(4, 4)],
        [logits((TR, BIG)), torch.zeros(4, 4)],
        valid=[[True, True, False], [False, False, False]])
    out = InstanceDisambiguationLoss()(*inputs)
    assert out['loss_iad_select'].item() == pytest.approx(
        2 * e / (e + 1)**2, rel=1e-4)
    # overlap = mean(0, 1/3)
    assert out['loss_iad_overlap'].item() == pytest.approx(1 / 6, **TOL)
    inputs = inputs[:3] + (torch.zeros(2, 3, dtype=bool), )
    out = InstanceDisambiguationLoss()(*inputs)
    assert out['loss_iad_select'].item() == 0


def test_iad_empty_and_gradients():
    maps_a = torch.zeros(0, 4, 4, requires_grad=True)
    maps_b = torch.zeros(0, 4, 4, requires_grad=True)
    no_valid = torch.zeros(0, 3, dtype=bool)
    out = InstanceDisambiguationLoss()(
        maps_a, maps_b, torch.zeros(0, 3, 4, 4), no_valid)
    assert out['loss_iad_overlap'].item() == 0
    assert out['loss_iad_select'].item() == 0
    (out['loss_iad_overlap'] + out['loss_iad_select']).backward()

    maps_a, maps_b, props, valid = iad_inputs(
        [logits((LEFT, 0.0))], [logits((LEFT, 1.0), (TR, 0.0))])
    maps_a.requires_grad_(True)
    maps_b.requires_grad_(True)
    out = InstanceDisambiguationLoss()(maps_a, maps_b, props, valid)
    out['loss_iad_select'].backward()
    assert maps_a.grad.abs().sum() > 0 and maps_b.grad.abs().sum() > 0
    assert torch.isfinite(maps_a.grad).all()
    maps_a.grad = None
    InstanceDisambiguationLoss()(
        maps_a, maps_b, props, valid)['loss_iad_overlap'].backward()
    assert maps_a.grad.abs().sum() > 0


def test_iad_minmax_and_bad_input():
    raw = logits((LEFT, 10.0), (TR, 4.0))
    raw[~(LEFT + TR).bool()] = -2.0
    inputs = iad_inputs([raw], [raw])
    out = InstanceDisambiguationLoss(normalize='minmax')(*inputs)
    # p = LEFT + 0.5 TR: IoU(p, p) = (8 + 1) / (10 + 10 - 9) = 9/11
    assert out['loss_iad_overlap'].item() == pytest.approx(9 / 11, **TOL)
    with pytest.raises(ValueError, match='temperature'):
        InstanceDisambiguationLoss(temperature=0)
    with pytest.raises(ValueError, match='maps_b'):
        InstanceDisambiguationLoss()(inputs[0], inputs[1][:, :2], *inputs[2:])


# ---------------------------------------------------------------- peak
def test_select_peak_proposal():
    part = box(0, 1, 0, 1)
    # image 0: peak (0, 0) = 10 on TL = 8 -> minmax: 1, 0.8 x 3, 0 (sum 3.4)
    # part: 1 / 3.4 = 0.29, TL: 3.4 / 4 = 0.85, LEFT: 3.4 / 8 = 0.425
    resp0 = torch.zeros(4, 4)
    resp0[TL.bool()] = 8.0
    resp0[0, 0] = 10.0
    # image 1: peak (3, 3) in no proposal; 5 on TR -> minmax 0.5 on TR
    # (sum 3): LEFT 0, TR 2 / (3 + 4 - 2) = 0.4 -> fallback TR
    resp1 = torch.zeros(4, 4)
    resp1[TR.bool()] = 5.0
    resp1[3, 3] = 10.0
    response = torch.stack([resp0, resp1, resp0])
    proposals = torch.stack([
        torch.stack([LEFT, part, TL, BR]),
        torch.stack([LEFT, TR, TL, torch.zeros(4, 4)]),
        torch.stack([LEFT, part, TL, BR])])
    valid = torch.tensor([[True] * 4, [True, True, True, False],
                          [False] * 4])
    index = select_peak_proposal(response, proposals, valid)
    assert index.dtype == torch.long
    assert index.tolist() == [2, 1, -1]
    # nested order does not matter; the containing one wins over an
    # invalid better one: TL invalid -> LEFT (0.425) over part (0.29)
    order = [2, 3, 1, 0]
    index = select_peak_proposal(
        resp0[None], proposals[:1, order], valid[:1, order])
    assert index.tolist() == [0]
    valid0 = torch.tensor([[True, True, False, True]])
    assert select_peak_proposal(
        resp0[None], proposals[:1], valid0).tolist() == [0]
    # only BR valid: it does not contain the peak -> fallback BR
    valid0 = torch.tensor([[False, False, False, True]])
    assert select_peak_proposal(
        resp0[None], proposals[:1], valid0).tolist() == [3]
    with pytest.raises(ValueError, match='valid'):
        select_peak_proposal(response, proposals, valid[:, :2])


def test_build_through_registry():
    from mmwris.registry import MODELS
    from mmwris.utils import register_all_modules
    register_all_modules()
    ras = MODELS.build(dict(type='RegionShrinkingLoss', margin=0.1,
                            select='clip'))
    assert isinstance(ras, RegionShrinkingLoss)
    assert ras.margin == 0.1 and ras.select == 'clip'
    iad = MODELS.build(dict(type='InstanceDisambiguationLoss',
                            temperature=0.5, normalize='minmax'))
    assert isinstance(iad, InstanceDisambiguationLoss)
    assert iad.temperature == 0.5 and iad.normalize == 'minmax'
