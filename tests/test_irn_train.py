"""IRN training side: backbone, branches, loss normalisation, flip-averaged
inference, the seed dataset, a short real training run and resuming.

The training run (8 synthetic 64x64 images with a bright square, ResNet-18
trained from scratch, batch 4, 10 epochs = 20 steps) was measured at: total
loss on a fixed batch 1.71 -> 0.81; predicted boundary 0.54-0.64 on the
square's outline vs 0.24-0.36 inside it.
"""
import copy
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from mmwris.pseudo_labels.irn.net import (AffinityDisplacementNet,
                                          IRNBackbone)
from mmwris.pseudo_labels.irn.path_index import PathIndex, edge_to_affinity
from mmwris.pseudo_labels.irn.train import (IRNSeedDataset, load_irn,
                                            train_irn)

TINY = dict(backbone=dict(depth=18, frozen=False))


def make_squares(root, n=8, size=64, seed=0):
    """``n`` images (dark noise, one bright square) and seed maps (square
    eroded by 2 = 1, farther than 2 px from it = 0, the band between 255).

    Returns [(image path, seed path, (y0, x0, side))].
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    items = []
    for i in range(n):
        image = (40 + rng.integers(0, 20, (size, size, 3))).astype(np.uint8)
        side = int(rng.integers(20, 32))
        y0, x0 = (int(v) for v in rng.integers(6, size - side - 6, 2))
        image[y0:y0 + side, x0:x0 + side] = 220
        outside = np.maximum(
            np.maximum(y0 - yy, yy - (y0 + side - 1)),
            np.maximum(x0 - xx, xx - (x0 + side - 1)))
        seed_map = np.full((size, size), 255, np.uint8)
        seed_map[outside <= -2] = 1
        seed_map[outside >= 3] = 0
        image_path = osp.join(root, f'{i}.jpg')
        seed_path = osp.join(root, f'{i}.png')
        cv2.imwrite(image_path, image[..., ::-1])
        cv2.imwrite(seed_path, seed_map)
        items.append((image_path, seed_path, (y0, x0, side)))
    return items


@pytest.fixture(scope='module')
def squares(tmp_path_factory):
    return make_squares(str(tmp_path_factory.mktemp('irn_squares')))


def pairs(items):
    return [(image, seed) for image, seed, _ in items]


# --------------------------------------------------------------- network


@pytest.mark.parametrize('depth, channels', [
    (18, (64, 64, 128, 256, 512)),
    (50, (64, 256, 512, 1024, 2048)),
])
def test_backbone_outputs_and_strides(depth, channels):
    backbone = IRNBackbone(depth=depth)
    assert backbone.out_channels == channels
    assert backbone.strides == (4, 4, 8, 16, 16)
    outs = backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(channels, backbone.strides)
    ]
    wide = IRNBackbone(depth=depth, strides=(2, 2, 2, 2))
    assert wide.strides == (4, 4, 8, 16, 32)
    assert wide(torch.zeros(1, 3, 64, 96))[4].shape[2:] == (2, 3)


def test_backbone_loads_local_imagenet_weights(tmp_path):
    source = torchvision.models.resnet18(weights=None)
    path = str(tmp_path / 'r18.pth')
    torch.save(source.state_dict(), path)
    backbone = IRNBackbone(depth=18, pretrained=path)
    assert torch.equal(backbone.layer3[0].conv1.weight,
                       source.layer3[0].conv1.weight)
    assert torch.equal(backbone.stem[1].running_var, source.bn1.running_var)
    # the classifier may be absent too; any other key is required
    state = source.state_dict()
    del state['fc.weight'], state['fc.bias']
    torch.save(state, path)
    IRNBackbone(depth=18, pretrained=path)
    del state['layer4.1.bn2.weight']
    torch.save(state, path)
    with pytest.raises(RuntimeError, match='layer4.1.bn2.weight'):
        IRNBackbone(depth=18, pretrained=path)


def test_frozen_backbone_gets_no_gradient_and_stays_in_eval_mode():
    torch.manual_seed(0)
    model = AffinityDisplacementNet(dict(depth=18, frozen=True)).train()
    backbone = model.backbone
    assert not backbone.training
    assert not any(m.training for m in backbone.modules())
    assert model.edge_out.training and model.mean_shift.training
    stats = backbone.layer1[0].bn1.running_mean.clone()
    index = PathIndex(3, (12, 12))
    n_pairs = len(index.search_dst)
    n_src = len(index.src_indices)
    labels = torch.ones(2, n_pairs, n_src)
    losses = model.loss(torch.randn(2, 3, 48, 48), labels, labels, labels,
                        index)
    losses['loss'].backward()
    assert all(p.grad is None for p in backbone.parameters())
    assert not any(p.requires_grad for p in backbone.parameters())
    assert torch.equal(backbone.layer1[0].bn1.running_mean, stats)
    edge_params, dp_params = model.param_groups()
    assert all(p.grad is not None for p in edge_params + dp_params)
    n_heads = sum(1 for _ in model.parameters()) - sum(
        1 for _ in backbone.parameters())
    assert len(edge_params) + len(dp_params) == n_heads
    trainable = AffinityDisplacementNet(**TINY)
    edge_params, _ = trainable.param_groups()
    assert trainable.train().backbone.training
    assert {id(p) for p in trainable.backbone.parameters()} <= \
        {id(p) for p in edge_params}


@pytest.mark.parametrize('depth', [18, 50])
def test_network_outputs_at_stride_4_for_odd_sizes(depth):
    model = AffinityDisplacementNet(dict(depth=depth))
    edge, disp = model(torch.randn(2, 3, 70, 90))
    assert edge.shape == (2, 1, 18, 23)
    assert disp.shape == (2, 2, 18, 23)
    edge, disp = model.predict(torch.randn(3, 70, 90))
    assert edge.shape == (18, 23) and disp.shape == (2, 18, 23)
    assert 0 <= edge.min() and edge.max() <= 1


def test_mean_shift_applies_in_eval_mode_only():
    torch.manual_seed(0)
    model = AffinityDisplacementNet(**TINY)
    x = torch.randn(1, 3, 32, 32)
    model.eval()
    _, before = model(x)
    model.mean_shift.running_mean.copy_(torch.tensor([1.5, -2.0]))
    _, after = model(x)
    assert torch.allclose(before - after,
                          torch.tensor([1.5, -2.0]).view(1, 2, 1, 1))
    model.train()
    assert torch.equal(model(x)[1], model(x)[1])


# ------------------------------------------------------------------ loss


def brute_force_loss(edge, disp, bg_pos, fg_pos, neg, index):
    """The released normalisation with every pair written out by hand."""
    aff = edge_to_affinity(torch.sigmoid(edge), index.path_indices)
    pos_term = -torch.log(aff + 1e-5)
    neg_term = -torch.log(1 + 1e-5 - aff)
    width = disp.shape[3]
    ys = torch.as_tensor(index.src_indices) // width
    xs = torch.as_tensor(index.src_indices) % width
    dp_fg = dp_bg = 0.
    for p, (dy, dx) in enumerate(index.search_dst.tolist()):
        pair = disp[:, :, ys, xs] - disp[:, :, ys + dy, xs + dx]  # [B, 2, N]
        target = torch.tensor([dy, dx], dtype=disp.dtype).view(1, 2, 1)
        dp_fg = dp_fg + ((pair - target).abs() * fg_pos[:, None, p]).sum()
        dp_bg = dp_bg + (pair.abs() * bg_pos[:, None, p]).sum()
    pos_aff = ((bg_pos * pos_term).sum() / (bg_pos.sum() + 1e-5) / 2 +
               (fg_pos * pos_term).sum() / (fg_pos.sum() + 1e-5) / 2)
    neg_aff = (neg * neg_term).sum() / (neg.sum() + 1e-5)
    dp_fg = dp_fg / (2 * fg_pos.sum() + 1e-5)
    dp_bg = dp_bg / (2 * bg_pos.sum() + 1e-5)
    return dict(
        loss_pos_aff=pos_aff,
        loss_neg_aff=neg_aff,
        loss_dp_fg=dp_fg,
        loss_dp_bg=dp_bg,
        loss=(pos_aff + neg_aff) / 2 + (dp_fg + dp_bg) / 2)


def test_loss_on_a_hand_built_case():
    """Constant boundary logit c and D(y, x) = -(y, x) / 2: every pair has
    a = 1 - sigmoid(c) and D(src) - D(dst) = t / 2 for its offset t."""
    index = PathIndex(4, (10, 11))
    n_pairs, n_src = len(index.search_dst), len(index.src_indices)
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 2, n_pairs, n_src, generator=generator) < 0.1
    bg_pos, fg_pos, neg = masks.float()
    edge = torch.full((2, 1, 10, 11), 0.3)
    yy, xx = torch.meshgrid(
        torch.arange(10.), torch.arange(11.), indexing='ij')
    disp = -torch.stack([yy, xx])[None].repeat(2, 1, 1, 1) / 2
    losses = AffinityDisplacementNet.loss_by_outputs(
        edge, disp, bg_pos, fg_pos, neg, index)

    aff = 1 - torch.sigmoid(torch.tensor(0.3)).item()
    pos_term, neg_term = -np.log(aff + 1e-5), -np.log(1 + 1e-5 - aff)
    n_bg, n_fg, n_neg = (m.sum().item() for m in (bg_pos, fg_pos, neg))
    half_t = np.abs(index.search_dst).sum(1) / 2  # |t_y|/2 + |t_x|/2
    fg_sum = (fg_pos.sum((0, 2)).numpy() * half_t).sum()
    bg_sum = (bg_pos.sum((0, 2)).numpy() * half_t).sum()
    expected = dict(
        loss_pos_aff=(n_bg * pos_term / (n_bg + 1e-5) +
                      n_fg * pos_term / (n_fg + 1e-5)) / 2,
        loss_neg_aff=n_neg * neg_term / (n_neg + 1e-5),
        loss_dp_fg=fg_sum / (2 * n_fg + 1e-5),
        loss_dp_bg=bg_sum / (2 * n_bg + 1e-5))
    expected['loss'] = (expected['loss_pos_aff'] + expected['loss_neg_aff']
                        ) / 2 + (expected['loss_dp_fg'] +
                                 expected['loss_dp_bg']) / 2
    assert set(losses) == set(expected)
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-5), key
    # no labels at all: every term is 0, not NaN
    zeros = torch.zeros_like(bg_pos)
    empty = AffinityDisplacementNet.loss_by_outputs(edge, disp, zeros, zeros,
                                                    zeros, index)
    assert all(v.item() == 0 for v in empty.values())


def test_loss_matches_pairs_written_out_on_random_maps():
    index = PathIndex(5, (13, 15))
    generator = torch.Generator().manual_seed(1)
    edge = torch.randn(2, 1, 13, 15, generator=generator)
    disp = torch.randn(2, 2, 13, 15, generator=generator) * 3
    shape = (2, len(index.search_dst), len(index.src_indices))
    bg_pos, fg_pos, neg = (
        (torch.rand(shape, generator=generator) < 0.3).float()
        for _ in range(3))
    losses = AffinityDisplacementNet.loss_by_outputs(
        edge, disp, bg_pos, fg_pos, neg, index)
    expected = brute_force_loss(edge, disp, bg_pos, fg_pos, neg, index)
    for key, value in expected.items():
        assert torch.allclose(losses[key], value, rtol=1e-5), key


# ------------------------------------------------------------- inference


def test_predict_averages_the_flipped_boundary():
    """A fake forward: boundary = 4x4 mean of channel 0 plus the column
    index j (which does not flip with the image), displacement = 4x4 mean of
    channels 1-2, one extra row/column of 100 that the crop must drop.

    Then (E(x)[j] + flip(E(flip x))[j]) / 2 = pool(x)[j] + (w - 1) / 2.
    """
    model = AffinityDisplacementNet(**TINY).train()

    def fake_forward(x):
        pooled = F.avg_pool2d(x, 4)
        column = torch.arange(pooled.shape[3], dtype=x.dtype)
        edge = pooled[:, :1] + column
        edge = F.pad(edge, (0, 1, 0, 1), value=100.)
        disp = F.pad(pooled[:, 1:], (0, 1, 0, 1), value=100.)
        return edge, disp

    model.forward = fake_forward
    image = torch.randn(3, 32, 48)
    edge, disp = model.predict(image)
    pooled = F.avg_pool2d(image[None], 4)[0]
    assert edge.shape == (8, 12) and disp.shape == (2, 8, 12)
    assert torch.allclose(edge, torch.sigmoid(pooled[0] + 5.5), atol=1e-6)
    assert torch.allclose(disp, pooled[1:], atol=1e-6)
    assert model.training


# --------------------------------------------------------------- dataset


def test_dataset_shapes_and_draws_keyed_by_seed_epoch_index(squares):
    dataset = IRNSeedDataset(pairs(squares), crop_size=48, radius=5)
    index = dataset.path_index
    assert index.size == (12, 12)
    sample = dataset[3]
    assert sample['img'].shape == (3, 48, 48)
    assert sample['img'].dtype == torch.float32
    for key in ('bg_pos', 'fg_pos', 'neg'):
        assert sample[key].shape == (len(index.search_dst),
                                     len(index.src_indices))
    assert sample['bg_pos'].sum() > 0 and sample['fg_pos'].sum() > 0
    assert ((sample['bg_pos'] + sample['fg_pos'] + sample['neg']) <= 1).all()

    def draw(dataset, idx):
        return torch.cat([dataset[idx][k].flatten() for k in sorted(sample)])

    again = IRNSeedDataset(pairs(squares), crop_size=48, radius=5)
    torch.manual_seed(123)
    np.random.seed(123)
    assert torch.equal(draw(dataset, 3), draw(again, 3))
    assert not torch.equal(draw(dataset, 3), draw(dataset, 4))
    again.set_epoch(1)
    assert not torch.equal(draw(dataset, 3), draw(again, 3))
    other_seed = IRNSeedDataset(pairs(squares), crop_size=48, radius=5,
                                seed=1)
    assert not torch.equal(draw(dataset, 3), draw(other_seed, 3))
    # no augmentation: the normalised image itself, cropped
    plain = IRNSeedDataset(pairs(squares)[:1], crop_size=64, rescale=None,
                           hflip=False, radius=5)
    rgb = cv2.imread(squares[0][0])[..., ::-1] / 255.
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224,
                                                            0.225])
    np.testing.assert_allclose(
        plain[0]['img'].numpy().transpose(1, 2, 0), (rgb - mean) / std,
        atol=1e-5)
    # a crop larger than the image pads: image with 0, labels ignored
    large = IRNSeedDataset(pairs(squares)[:1], crop_size=96, rescale=None,
                           hflip=False, radius=5)
    sample = large[0]
    assert (sample['img'] == 0).all(dim=0).sum() == 96 * 96 - 64 * 64


def test_dataset_errors_name_the_files(squares, tmp_path):
    image, seed, _ = squares[0]
    missing = str(tmp_path / 'missing.png')
    with pytest.raises(FileNotFoundError, match='missing.png'):
        IRNSeedDataset([(image, missing)], crop_size=48, radius=5)[0]
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        IRNSeedDataset([(str(tmp_path / 'nope.jpg'), seed)], crop_size=48,
                       radius=5)[0]
    small = str(tmp_path / 'small.png')
    cv2.imwrite(small, np.zeros((60, 64), np.uint8))
    with pytest.raises(ValueError, match='small.png.*60x64.*0.jpg.*64x64'):
        IRNSeedDataset([(image, small)], crop_size=48, radius=5)[0]
    broken = str(tmp_path / 'broken.jpg')
    with open(broken, 'wb') as f:
        f.write(b'not an image')
    with pytest.raises(ValueError, match='broken.jpg'):
        IRNSeedDataset([(broken, seed)], crop_size=48, radius=5)[0]


# -------------------------------------------------------------- training


def fixed_batch_loss(model, dataset):
    """The losses of a copy of ``model`` (train mode, no update) on items
    0-7 at epoch 0."""
    samples = [dataset[i] for i in range(8)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    model = copy.deepcopy(model).train()
    with torch.no_grad():
        losses = model.loss(batch['img'], batch['bg_pos'], batch['fg_pos'],
                            batch['neg'], dataset.path_index)
    return {k: v.item() for k, v in losses.items()}


def test_training_learns_the_square_boundaries(squares, tmp_path):
    """Measured: loss 1.709 -> 0.808 (dp_fg 1.81 -> 0.57, pos_aff 0.82 ->
    0.48); boundary 0.54-0.64 vs inside 0.24-0.36 on every image."""
    settings = dict(crop_size=64, rescale=(0.75, 1.25), radius=5)
    dataset = IRNSeedDataset(pairs(squares), **settings)
    torch.manual_seed(0)
    before = fixed_batch_loss(AffinityDisplacementNet(**TINY), dataset)
    path = train_irn(pairs(squares), str(tmp_path), model_cfg=TINY,
                     batch_size=4, epochs=10, **settings)
    assert path == str(tmp_path / 'irn.pth')
    assert sorted(os.listdir(tmp_path)) == ['irn.pth', 'latest.pth']
    model = load_irn(path, TINY)
    assert not model.training
    after = fixed_batch_loss(model, dataset)
    assert after['loss'] < before['loss'] - 0.5, (before, after)
    assert after['loss_dp_fg'] < before['loss_dp_fg'] - 0.7
    assert after['loss_pos_aff'] < before['loss_pos_aff'] - 0.2

    # the stored mean shift is the mean displacement of the top-left crops
    plain = copy.deepcopy(model)
    plain.mean_shift.running_mean.zero_()
    with torch.no_grad():
        means = [plain(dataset.top_left(i)[None])[1].mean(dim=(0, 2, 3))
                 for i in range(len(dataset))]
    assert torch.allclose(model.mean_shift.running_mean,
                          torch.stack(means).mean(0), atol=1e-4)

    margins = []
    for i, (_, _, (y0, x0, side)) in enumerate(squares):
        edge, _ = model.predict(dataset.top_left(i))
        centre = (np.mgrid[:16, :16] * 4 + 1.5)
        outside = np.maximum(
            np.maximum(y0 - centre[0], centre[0] - (y0 + side - 1)),
            np.maximum(x0 - centre[1], centre[1] - (x0 + side - 1)))
        edge = edge.numpy()
        margins.append(edge[np.abs(outside) <= 2].mean() -
                       edge[outside <= -6].mean())
    # measured: smallest margin 0.24 on 1 thread, 0.14 on 2 (mean 0.19;
    # the float reductions, so the 20 SGD steps, differ)
    assert np.mean(margins) > 0.12 and min(margins) > 0.05, margins

    # a finished run is not redone
    mtime = os.path.getmtime(path)
    assert train_irn(pairs(squares), str(tmp_path), model_cfg=TINY) == path
    assert os.path.getmtime(path) == mtime


def test_resume_gives_the_weights_of_an_uninterrupted_run(squares, tmp_path):
    """8 items, batch 2: 4 steps per epoch, 2 epochs. Stop after step 5
    (mid-epoch 2), resume; also stop at 2 with checkpoints every step."""
    settings = dict(model_cfg=TINY, batch_size=2, epochs=2, crop_size=48,
                    rescale=(0.75, 1.25), radius=5)
    full = train_irn(pairs(squares), str(tmp_path / 'full'), **settings)
    reference = torch.load(full, weights_only=True)['state_dict']

    work_dir = str(tmp_path / 'resumed')
    latest = train_irn(pairs(squares), work_dir, stop_after=5, **settings)
    assert latest == osp.join(work_dir, 'latest.pth')
    assert os.listdir(work_dir) == ['latest.pth']
    state = torch.load(latest, weights_only=True)['state_dict']
    assert int(state['step']) == 5
    assert any(k.startswith('momentum.') for k in state)
    assert train_irn(pairs(squares), work_dir, **settings) == osp.join(
        work_dir, 'irn.pth')
    resumed = torch.load(osp.join(work_dir, 'irn.pth'),
                         weights_only=True)
    assert resumed['meta']['steps'] == 8 and resumed['meta']['epochs'] == 2
    for key, value in reference.items():
        assert torch.allclose(resumed['state_dict'][key], value,
                              atol=1e-6), key

    # a latest.pth of another schedule is refused, not silently reused
    other = tmp_path / 'other'
    other.mkdir()
    shutil.copy(osp.join(work_dir, 'latest.pth'), other / 'latest.pth')
    with pytest.raises(ValueError, match='8 steps, this one has 4'):
        train_irn(pairs(squares), str(other), **dict(settings, epochs=1))


def test_too_few_items_for_one_batch(squares, tmp_path):
    with pytest.raises(ValueError, match='8 items < batch size 16'):
        train_irn(pairs(squares), str(tmp_path), model_cfg=TINY,
                  batch_size=16, crop_size=48, radius=5)


def test_edge_and_displacement_groups_get_their_learning_rates():
    model = AffinityDisplacementNet(dict(depth=18))
    edge, dp = model.param_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith(('edge_layers', 'edge_out'))
               for p in edge)
    assert all(names[id(p)].startswith(('dp_layers', 'dp_up', 'dp_out'))
               for p in dp)
    assert isinstance(model.dp_out[-1], nn.Conv2d)
    assert model.dp_out[-1].bias is None and model.edge_out.bias is not None


def _two_process_worker(rank, init_file, items, work_dir):
    """One of 2 gloo processes running :func:`train_irn`."""
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    try:
        path = train_irn(items, work_dir, model_cfg=TINY, batch_size=2,
                         epochs=2, crop_size=48, radius=5,
                         checkpoint_interval=1)
        with open(osp.join(osp.dirname(init_file), f'rank{rank}'), 'w') as f:
            f.write(path)
    finally:
        dist.barrier()
        dist.destroy_process_group()


def test_two_process_gloo_training(squares, tmp_path):
    """2 processes x batch 2 over 8 items: 2 steps per epoch, rank 0 alone
    writes, and the mean shift covers the items of both shards."""
    work_dir = str(tmp_path / 'work')
    torch.multiprocessing.spawn(
        _two_process_worker,
        args=(str(tmp_path / 'pg'), pairs(squares), work_dir),
        nprocs=2)
    path = osp.join(work_dir, 'irn.pth')
    for rank in (0, 1):
        assert open(tmp_path / f'rank{rank}').read() == path
    assert sorted(os.listdir(work_dir)) == ['irn.pth', 'latest.pth']
    meta = torch.load(path, weights_only=True)['meta']
    assert meta['steps'] == 4 and meta['config']['world_size'] == 2
    model = load_irn(path, TINY)
    dataset = IRNSeedDataset(pairs(squares), crop_size=48, radius=5)
    plain = copy.deepcopy(model)
    plain.mean_shift.running_mean.zero_()
    with torch.no_grad():
        means = [plain(dataset.top_left(i)[None])[1].mean(dim=(0, 2, 3))
                 for i in range(len(dataset))]
    assert torch.allclose(model.mean_shift.running_mean,
                          torch.stack(means).mean(0), atol=1e-4)
    half = torch.stack(means[::2]).mean(0)
    assert not torch.allclose(model.mean_shift.running_mean, half,
                              atol=1e-3)
