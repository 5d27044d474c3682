"""PPT's model: the frozen SAM (gradients to the points, precomputed
embeddings, errors), the point generator and its losses, the segmentor
with both SAM mask steps, and the configs (the RN50 / ViT-H paper configs
build, and run one training iteration on the real refer fixture)."""
import glob
import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO
from mmwris.registry import MODELS
from mmwris.structures import RISDataSample

PPT = osp.join(REPO, 'configs', 'ppt')
TOY = osp.join(PPT, 'ppt_clip-tiny-sam-toy_1xb16-1k_toyrefer-128x128.py')
NO_NEG = osp.join(PPT,
                  'ppt-no-neg_clip-tiny-sam-toy_1xb16-1k_toyrefer-128x128.py')
NAIVE = osp.join(PPT,
                 'ppt-naive_clip-tiny-sam-toy_1xb16-1k_toyrefer-128x128.py')
PAPER = sorted(glob.glob(osp.join(PPT, 'ppt_clip-r50-sam-vit-h_*.py')))


def frozen_sam(arch='vit_toy', **kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(type='FrozenSAM', arch=arch, random_init=True,
                             **kwargs))


def samples(batch=3, negatives=True, size=128):
    out = []
    for i in range(batch):
        negs = ['a blue square', 'the green plus'] if negatives and i else []
        out.append(RISDataSample(metainfo=dict(
            text=f'the red circle {i}', neg_texts=negs,
            ori_shape=(size, size), img_shape=(size, size),
            batch_input_shape=(size, size))))
    return out


def random_weights(cfg):
    """The toy configs read the toy world's exports (data/toy_world/,
    written by the main job); unit tests build them with random weights."""
    cfg.model.sam.update(random_init=True, checkpoint=None)
    cfg.model.image_encoder.pretrained = None
    cfg.model.text_encoder.pretrained = None
    for loss in ('loss_mask_cal', 'loss_select'):
        if cfg.model.decode_head.get(loss):
            cfg.model.decode_head[loss].scorer.pretrained = None
    return cfg


def toy_model(config=TOY, **sam):
    cfg = random_weights(Config.fromfile(config))
    cfg.model.sam.update(**sam)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


# FrozenSAM -------------------------------------------------------------
def test_frozen_sam_is_outside_the_module_tree():
    sam = frozen_sam()
    assert list(sam.parameters()) == [] and sam.state_dict() == {}
    assert not any(p.requires_grad for p in sam.sam.parameters())
    sam.train()
    assert not sam.sam.training
    model = toy_model()
    assert not any(k.startswith('sam.') for k in model.state_dict())
    assert all(not p.requires_grad
               for p in model.image_encoder.parameters())


def test_mask_logits_are_differentiable_in_the_points():
    sam = frozen_sam()
    emb = sam.embeddings(torch.rand(2, 3, 128, 128))
    assert emb.shape == (2, 64, 16, 16) and not emb.requires_grad
    points = torch.tensor([[[0.3, 0.4], [0.7, 0.6]],
                           [[0.5, 0.5], [0.2, 0.8]]], requires_grad=True)
    labels = torch.tensor([[1., 0.], [1., 1.]])
    out = sam.predict_masks(emb, points, labels)
    assert out['masks'].shape == (2, 1, 64, 64)
    assert out['all_masks'].shape == (2, 3, 64, 64)
    assert out['iou'].shape == (2, )
    grad, = torch.autograd.grad(out['masks'].sum(), points)
    assert torch.isfinite(grad).all()
    assert (grad.abs().sum(-1) > 0).all(), grad  # every point moves it
    # multimask: the chosen mask is the one with the highest predicted IoU
    best = out['all_iou'].argmax(1)
    assert torch.equal(out['masks'][:, 0], out['all_masks'][[0, 1], best])


def test_points_outside_the_image_clamp_or_raise():
    sam = frozen_sam()
    emb = sam.embeddings(torch.rand(1, 3, 128, 128))
    labels = torch.ones(1, 1)
    outside = sam.predict_masks(emb, torch.tensor([[[1.3, -0.2]]]),
                                labels)['masks']
    border = sam.predict_masks(emb, torch.tensor([[[1.0, 0.0]]]),
                               labels)['masks']
    assert torch.equal(outside, border)
    strict = frozen_sam(out_of_bounds='raise')
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        strict.predict_masks(emb, torch.tensor([[[1.3, 0.5]]]), labels)
    with pytest.raises(ValueError, match='finite'):
        sam.predict_masks(emb, torch.tensor([[[float('nan'), 0.5]]]),
                          labels)
    with pytest.raises(ValueError, match='labels'):
        sam.predict_masks(emb, torch.rand(1, 2, 2), labels)
    with pytest.raises(ValueError, match='out_of_bounds'):
        frozen_sam(out_of_bounds='wrap')


def test_sam_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match='checkpoint'):
        MODELS.build(dict(type='FrozenSAM', arch='vit_toy'))
    with pytest.raises(FileNotFoundError):
        MODELS.build(dict(type='FrozenSAM', arch='vit_toy',
                          checkpoint=str(tmp_path / 'none.pth')))
    # weights of another architecture: the error names the file and keys
    wrong = tmp_path / 'sam_vit_tiny.pth'
    torch.save(frozen_sam('vit_tiny').sam.state_dict(), wrong)
    with pytest.raises(RuntimeError) as error:
        MODELS.build(dict(type='FrozenSAM', arch='vit_toy',
                          checkpoint=str(wrong)))
    assert 'sam_vit_tiny.pth' in str(error.value)
    assert 'image_encoder.' in str(error.value)
    # the right ones load (strictly)
    right = tmp_path / 'sam_vit_toy.pth'
    torch.save(frozen_sam('vit_toy').sam.state_dict(), right)
    loaded = MODELS.build(dict(type='FrozenSAM', arch='vit_toy',
                               checkpoint=str(right)))
    assert torch.equal(loaded.sam.mask_decoder.iou_token.weight,
                       frozen_sam().sam.mask_decoder.iou_token.weight)


def test_precomputed_embeddings(monkeypatch):
    sam = frozen_sam()
    images = torch.rand(3, 3, 128, 128)
    computed = sam.embeddings(images)
    batch = samples(3)
    stored = torch.randn(64, 16, 16).half()
    batch[1].set_metainfo(dict(sam_embedding=stored))
    encoded = []
    original = sam.encode_images

    def counting(x):
        encoded.append(x.shape[0])
        return original(x)

    monkeypatch.setattr(sam, 'encode_images', counting)
    emb = sam.embeddings(images, batch)
    assert encoded == [2]  # only the two images without one are encoded
    assert emb.dtype == torch.float32
    assert torch.equal(emb[1], stored.float())
    assert torch.allclose(emb[[0, 2]], computed[[0, 2]], atol=1e-6)
    # a data field works as well as metainfo
    field = samples(1)
    field[0].sam_embedding = stored
    assert torch.equal(sam.embeddings(images[:1], field)[0], stored.float())
    batch[2].set_metainfo(dict(sam_embedding=torch.zeros(32, 16, 16)))
    with pytest.raises(ValueError, match=r'Sample 2.*\(64, 16, 16\)'):
        sam.embeddings(images, batch)
    strict = frozen_sam(require_embeddings=True)
    with pytest.raises(ValueError, match=r'Samples \[0\].*sam_embedding'):
        strict.embeddings(images[:2], samples(2)[:1] + [batch[1]])


# Point generator and losses ----------------------------------------------
def head(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='PPTHead', in_channels=16, text_channels=8, channels=16,
               num_positive=3, num_negative=2, num_heads=2)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_point_generator_shapes():
    ppt = head()
    out = ppt.generate(torch.randn(2, 16, 6, 8), torch.randn(2, 8))
    assert out['response'].shape == (2, 1, 6, 8)
    assert out['heat'].shape == (2, 5, 6, 8)
    assert torch.allclose(out['heat'].flatten(2).sum(-1), torch.ones(2, 5))
    assert out['points'].shape == (2, 5, 2)
    assert ((out['points'] >= 0) & (out['points'] <= 1)).all()
    assert out['labels'].tolist() == [[1, 1, 1, 0, 0]] * 2
    # the points are the soft-argmax of the heat maps (x, y)
    heat = torch.zeros(1, 1, 6, 8)
    heat[0, 0, 1, 6] = 1
    from mmwris.models.decode_heads.ppt_head import grid_centers
    assert heat.flatten(2) @ grid_centers(6, 8) == pytest.approx(
        torch.tensor([[[6.5 / 8, 1.5 / 6]]]))
    assert head(num_negative=0).point_labels(1).tolist() == [[1, 1, 1]]
    with pytest.raises(ValueError, match='num_positive'):
        head(num_positive=0)


def test_spread_loss():
    loss = MODELS.build(dict(type='PPTSpreadLoss', sigma=0.1))
    heat = torch.full((1, 2, 4, 4), 1 / 16)
    share = torch.rand(1, 4, 4)
    together = loss(heat, torch.tensor([[[0.5, 0.5], [0.5, 0.51]]]), share)
    apart = loss(heat, torch.tensor([[[0.2, 0.5], [0.8, 0.5]]]), share)
    assert together['loss_spread_apart'] > 0.9
    assert apart['loss_spread_apart'] < 1e-3
    # on the referent: heat on the peak of the share costs nothing
    peak = torch.zeros(1, 1, 4, 4)
    peak[0, 0, 2, 1] = 1
    share = torch.zeros(1, 4, 4)
    share[0, 2, 1] = 0.7
    one = loss(peak, torch.rand(1, 1, 2), share)
    assert one['loss_spread_on'].item() == pytest.approx(0.0)
    assert one['loss_spread_apart'].item() == 0  # one point: no repulsion


def test_negative_point_loss_fallbacks():
    loss = MODELS.build(dict(type='PPTNegativePointLoss', min_target=0.05))
    heat = torch.softmax(torch.randn(2, 2, 4, 4).flatten(2), -1).view(
        2, 2, 4, 4).requires_grad_()
    own = torch.rand(2, 4, 4)
    other = torch.zeros(2, 4, 4)
    other[0, 0, 0] = 0.8  # image 1 has no negatives (zeros)
    both = loss(heat, own, other, None)['loss_neg_point']
    first = loss(heat[:1], own[:1], other[:1], None)['loss_neg_point']
    assert both.item() == pytest.approx(first.item())  # image 1 skipped
    # nothing to go to anywhere: zero loss, still in the graph
    empty = loss(heat, own, None, torch.zeros(2, 4, 4))['loss_neg_point']
    assert empty.item() == 0 and empty.requires_grad
    # the leak alone is a target
    leak = torch.zeros(2, 4, 4)
    leak[1, 3, 3] = 0.5
    on_leak = loss(heat[1:], own[1:], other[1:], leak[1:])
    assert on_leak['loss_neg_point'] > 0
    assert loss(heat[:, :0], own, other, None)['loss_neg_point'] == 0


def test_point_selection_loss():
    """The target is one of the top-share candidate cells, the one whose
    SAM mask the frozen CLIP scores best; the heat maps learn it by
    cross-entropy (zero when all their mass is on it)."""
    from mmengine.config import Config as _Config
    tiny = _Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models',
                                     'clip_tiny.py')).tiny_clip.to_dict()
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='PPTPointSelectionLoss',
                             scorer=dict(arch=tiny), num_candidates=3))
    sam = frozen_sam()
    images = torch.rand(2, 3, 128, 128)
    emb = sam.embeddings(images)
    share = torch.rand(2, 8, 8)
    texts, negs = ['a red circle', 'a blue square'], [['a green plus'], []]
    target = loss.targets(share, sam, emb, images, texts, negs)
    top = share.flatten(1).topk(3, -1).indices
    assert all(target[b] in top[b] for b in range(2))
    logits = torch.randn(2, 1, 64, requires_grad=True)
    heat = torch.softmax(logits, -1).view(2, 1, 8, 8)
    value = loss(heat, share, sam, emb, images, texts, negs)
    value['loss_point_select'].backward()
    assert logits.grad.abs().sum() > 0
    onehot = torch.zeros(2, 1, 64)
    onehot[[0, 1], 0, target] = 1
    exact = loss(onehot.view(2, 1, 8, 8), share, sam, emb, images, texts,
                 negs)['loss_point_select']
    assert exact.item() == pytest.approx(0.0, abs=1e-6)


# Segmentor ---------------------------------------------------------------
def test_segmentor_loss_and_gradients():
    model = toy_model()
    model.train()
    inputs = torch.randn(3, 3, 128, 128)
    losses = model.loss(inputs, samples(3))
    assert set(losses) >= {'loss_cls', 'acc_cls', 'loss_mcal_pos',
                           'loss_mcal_neg', 'loss_neg_point',
                           'loss_spread_on', 'loss_spread_apart',
                           'loss_point_select'}
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    total.backward()
    head = model.decode_head
    # the mask calibration reaches the point generator through SAM
    for param in (head.point_query.weight, head.query_embed.weight,
                  head.response_prior, head.vis_proj.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert not missing  # DDP needs a gradient for every trainable one


def test_segmentor_without_any_negatives():
    """No image has negatives: the negative terms fall back (zero /
    leak-only) and the loss stays finite."""
    model = toy_model()
    losses = model.loss(torch.randn(2, 3, 128, 128),
                        samples(2, negatives=False))
    assert losses['loss_mcal_neg'].item() == 0
    assert all(torch.isfinite(v) for v in losses.values())


def test_segmentor_predicts_with_both_sam_steps():
    model = toy_model().eval()
    inputs = torch.randn(2, 3, 128, 128)
    batch = samples(2)
    for sample in batch:
        sample.set_metainfo(dict(ori_shape=(100, 90)))
    with torch.no_grad():
        out = model.predict(inputs, batch)
        assert out[0].pred_sem_seg.data.shape == (1, 100, 90)
        ppt_logits = model.predict_response(inputs, batch)
        model.mask_decoder = MODELS.build(
            dict(type='ResponsePeakSAMDecoder'))
        naive = model.predict_response(inputs, batch)
        model.mask_decoder = MODELS.build(
            dict(type='ThresholdMaskDecoder'))
        response = model.predict_response(inputs, batch)
    assert ppt_logits.shape == naive.shape == (2, 1, 128, 128)
    assert response.shape == (2, 1, 8, 8)  # the CLIP response itself
    # the seg logits are SAM's mask probabilities, the mask its logit > 0
    seg = out[0].seg_logits.data
    assert ((seg > 0.5) == out[0].pred_sem_seg.data.bool()).float().mean(
    ) > 0.99


def test_peak_decoder_prompts_the_response_peak():
    from mmwris.models.mask_decoders import ResponsePeakSAMDecoder
    response = torch.zeros(1, 1, 4, 8)
    response[0, 0, 3, 1] = 5
    points, labels = ResponsePeakSAMDecoder().prompts(dict(response=response))
    assert points.tolist() == [[[1.5 / 8, 3.5 / 4]]]
    assert labels.tolist() == [[1.0]]


def test_ablation_configs():
    no_neg = toy_model(NO_NEG)
    assert no_neg.decode_head.num_negative == 0
    losses = no_neg.loss(torch.randn(2, 3, 128, 128), samples(2))
    assert 'loss_neg_point' not in losses and 'loss_mcal_pos' in losses
    naive = toy_model(NAIVE)
    assert type(naive.decode_head).__name__ == 'TRISHead'
    assert type(naive.mask_decoder).__name__ == 'ResponsePeakSAMDecoder'
    assert set(naive.loss(torch.randn(2, 3, 128, 128), samples(2))) == {
        'loss_cls', 'acc_cls'}
    with torch.no_grad():
        out = naive.eval().predict(torch.randn(1, 3, 128, 128), samples(1))
    assert out[0].pred_sem_seg.data.shape == (1, 128, 128)
    # the point decoder needs a point generator
    naive.mask_decoder = MODELS.build(dict(type='PointPromptSAMDecoder'))
    with pytest.raises(ValueError, match='PPTHead'):
        naive.predict(torch.randn(1, 3, 128, 128), samples(1))
    with pytest.raises(ValueError, match='frozen_encoders'):
        cfg = random_weights(Config.fromfile(TOY))
        cfg.model.frozen_encoders = ('decode_head', )
        MODELS.build(cfg.model)


# Configs -------------------------------------------------------------------
def test_config_names():
    names = {osp.basename(p) for p in PAPER}
    assert names == {
        f'ppt_clip-r50-sam-vit-h_1xb16-40k_{d}-320x320.py'
        for d in ('refcoco-unc', 'refcoco+-unc', 'refcocog-umd',
                  'refcocog-google')
    }
    for path in PAPER:
        cfg = Config.fromfile(path)
        assert cfg.model.sam.arch == 'vit_h'
        assert cfg.model.sam.checkpoint is None
        assert cfg.model.image_encoder.pretrained is None
        assert cfg.train_dataloader.batch_size == 16
        assert cfg.train_dataloader.sampler.type == 'CurriculumSampler'
        assert set(cfg.train_dataloader.dataset.sources) == {
            'crops', 'images', 'refer'}
        assert cfg.train_cfg.max_iters == 40000
        assert cfg.model.test_cfg.mask_decoder.type == \
            'PointPromptSAMDecoder'


def test_paper_config_builds_with_vit_h():
    """The full RN50 + ViT-H model builds (random weights; on the meta
    device, so the shared test machine allocates none of ViT-H's 2.5 GB):
    ViT-H's 641 M parameters stay outside the state dict and only the head
    trains."""
    cfg = Config.fromfile(PAPER[0])
    cfg.model.sam.random_init = True
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.sam.image_size == 1024
    assert model.sam.embedding_size == (64, 64)
    sam_params = sum(p.numel() for p in model.sam.sam.parameters())
    assert sam_params > 600e6
    assert not any(k.startswith('sam.') for k in model.state_dict())
    trainable = {n.split('.')[0] for n, p in model.named_parameters()
                 if p.requires_grad}
    assert trainable == {'decode_head'}


def point_to_curriculum(cfg, root):
    """Every curriculum source and the evaluation of a paper config on
    the real RefCOCOg subset at ``root`` (its instances are the COCO
    source; its val refs are excluded from it)."""
    files = dict(data_root=str(root), ann_file='instances.json',
                 data_prefix=dict(img_path='images'))
    sources = cfg.train_dataloader.dataset.sources
    for name, source in sources.items():
        source.update(files)
        if name == 'refer':
            source.refs_file = 'refs(umd).p'
        else:
            source.exclude_refs = [dict(refs_file='refs(umd).p',
                                        splits=['val'])]
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.update(files, refs_file='refs(umd).p',
                                   split='val')
        cfg[loader].update(num_workers=0, persistent_workers=False)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)


@pytest.mark.parametrize('config', PAPER,
                         ids=[osp.basename(p)[24:-12] for p in PAPER])
def test_paper_config_trains_one_iteration(config, real_refer_root,
                                           tmp_path):
    """RN50 + ViT-B-32 scorer (random weights) on the real RefCOCOg
    subset: one training iteration, then validation. SAM is vit_toy here:
    ViT-H's image encoder alone took 124.5 s for one 1024x1024 image on one
    CPU thread (measured), so one ViT-H iteration of batch 2 takes over
    4 min; the full model is built above."""
    cfg = Config.fromfile(config)
    point_to_curriculum(cfg, real_refer_root)
    cfg.model.sam.update(arch='vit_toy', random_init=True)
    cfg.model.data_preprocessor.size = (128, 128)
    pipelines = [source.pipeline for source in
                 cfg.train_dataloader.dataset.sources.values()]
    for pipeline in pipelines + [cfg.val_dataloader.dataset.pipeline]:
        for step in pipeline:
            if step.type == 'Resize':
                step.scale = (128, 128)
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.sampler.batch_size = 2
    cfg.val_dataloader.batch_size = 5
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1,
                         val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1,
                                        by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    cfg.work_dir = str(tmp_path)
    cfg.visualizer.name = f'visualizer_{tmp_path.name}'
    cfg.experiment_name = tmp_path.name
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    print('one iteration + val:', time.perf_counter() - start, 's')
    assert osp.isfile(tmp_path / 'iter_1.pth')
    scalars = open(glob.glob(str(tmp_path / '*' / 'vis_data' /
                                 'scalars.json'))[0]).read()
    assert 'loss_mcal_pos' in scalars and 'val/mIoU' in scalars
