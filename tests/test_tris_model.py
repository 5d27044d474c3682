"""TRIS step-1 model components on tiny random CLIPs (no weights needed)."""
import math
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, run_env
from mmseg.structures import SegDataSample

RN_ARCH = dict(
    embed_dim=64,
    vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=128),
    text_cfg=dict(
        context_length=20, vocab_size=49408, width=64, heads=2, layers=2))
VIT_ARCH = dict(
    embed_dim=64,
    vision_cfg=dict(layers=2, width=32, patch_size=16, image_size=64,
                    head_width=16),
    text_cfg=dict(
        context_length=20, vocab_size=49408, width=64, heads=2, layers=2))
PREPROCESSOR = dict(
    type='SegDataPreProcessor',
    mean=[122.7709, 116.7460, 104.0937],
    std=[68.5005, 66.6322, 70.3232],
    bgr_to_rgb=True)
TEXTS = [
    'the man in the red shirt on the left', 'a small dog', 'blue car',
    'the woman holding an umbrella near the door'
]
LONG = ('the tall man wearing a dark blue jacket and grey trousers standing '
        'behind the white fence on the far left side of the picture')


def tiny_clip(arch=RN_ARCH, seed=0):
    from mmwris.models.foundation import build_open_clip
    torch.manual_seed(seed)
    return build_open_clip(arch).eval()


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    """A saved tiny RN CLIP and the model it came from."""
    model = tiny_clip(seed=1)
    path = tmp_path_factory.mktemp('clip') / 'tiny_rn_clip.pth'
    torch.save(model.state_dict(), path)
    return str(path), model


def samples(texts, ori_shapes=None, negs=None, size=(64, 64)):
    out = []
    for i, text in enumerate(texts):
        sample = SegDataSample()
        sample.set_metainfo(
            dict(
                text=text,
                neg_texts=(negs[i] if negs is not None else
                           [t for t in TEXTS if t != text][:2]),
                ref_id=i,
                sent_id=i,
                img_shape=size,
                ori_shape=(ori_shapes[i] if ori_shapes else size)))
        out.append(sample)
    return out


def tris_cfg(image_encoder=None, in_channels=512, loss_cal=True, **kwargs):
    return dict(
        type='TRISSegmentor',
        data_preprocessor=PREPROCESSOR,
        image_encoder=image_encoder or dict(
            type='CLIPVisionEncoder', arch=RN_ARCH),
        text_encoder=dict(type='CLIPTextEncoder', arch=RN_ARCH),
        decode_head=dict(
            type='TRISHead', in_channels=in_channels, text_channels=64,
            channels=32,
            loss_cls=dict(type='ClassificationLoss', loss_weight=5.0),
            loss_cal=(dict(type='CalibrationLoss', scorer=dict(arch=VIT_ARCH))
                      if loss_cal else None)),
        **kwargs)


def build(cfg):
    from mmwris.registry import MODELS
    return MODELS.build(cfg)


# --------------------------------------------------------------- encoders
def test_tokenize_keeps_eot():
    from mmwris.models.foundation import CLIPTextEncoder
    from mmwris.models.foundation import bpe_tokenizer
    torch.manual_seed(0)
    encoder = CLIPTextEncoder(RN_ARCH, context_length=8).eval()
    tok = bpe_tokenizer()
    tokenized = encoder.tokenize([LONG, 'blue car'])
    ids, mask = tokenized['ids'], tokenized['mask']
    assert len(tok.encode(LONG)) > 8
    assert ids[0, 0] == tok.sot_token_id and ids[0, -1] == tok.eot_token_id
    assert mask[0].all()
    assert ids[0, 1:-1].tolist() == tok.encode(LONG)[:6]
    short = [tok.sot_token_id] + tok.encode('blue car') + [tok.eot_token_id]
    assert ids[1, :len(short)].tolist() == short
    assert not ids[1, len(short):].any()
    assert mask[1].sum() == len(short)

    with torch.no_grad():
        out = encoder([LONG, 'blue car'])
        pre = encoder(tokenized)
    for key in ('tokens', 'mask', 'sentence'):
        torch.testing.assert_close(pre[key], out[key])
    assert out['tokens'].shape == (2, 8, 64)
    assert out['sentence'].shape == (2, 64)
    eot = torch.tensor([7, len(short) - 1])
    expected = out['tokens'][torch.arange(2), eot] @ encoder.text_projection
    torch.testing.assert_close(out['sentence'], expected)


def test_text_encoder_matches_open_clip(clip_file):
    """Short expressions: identical to open_clip's own encode_text."""
    import open_clip
    from mmwris.models.foundation import CLIPTextEncoder
    path, clip = clip_file
    encoder = CLIPTextEncoder(RN_ARCH, pretrained=path).eval()
    with torch.no_grad():
        ours = encoder(TEXTS[:3])['sentence']
        ref = clip.encode_text(open_clip.tokenize(TEXTS[:3], 20))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_loading_reproduces_outputs(clip_file, tmp_path):
    from mmwris.models.foundation import CLIPVisionEncoder
    path, clip = clip_file
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = clip.visual.stem(x)
        ref = clip.visual.layer4(clip.visual.layer3(
            clip.visual.layer2(clip.visual.layer1(ref))))
    wrapped = tmp_path / 'wrapped.pth'
    torch.save(
        dict(
            state_dict={
                'module.' + k: v
                for k, v in clip.state_dict().items()
            },
            meta=dict(epoch=3)), wrapped)
    for file in (path, str(wrapped)):
        torch.manual_seed(123)
        encoder = CLIPVisionEncoder(RN_ARCH, pretrained=file).eval()
        with torch.no_grad():
            torch.testing.assert_close(encoder(x)[-1], ref)


class _ScriptHolder(torch.nn.Module):
    """Carries a CLIP into a TorchScript archive (like OpenAI's files)."""

    def __init__(self, clip):
        super().__init__()
        self.module = clip

    def forward(self, x):
        return x * self.module.logit_scale


def test_loading_torchscript(tmp_path):
    from mmwris.models.foundation import build_open_clip
    clip = tiny_clip(dict(RN_ARCH, quick_gelu=True), seed=2)
    path = str(tmp_path / 'openai_style.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.save(torch.jit.trace(_ScriptHolder(clip), torch.ones(1)),
                       path)
    loaded = build_open_clip(dict(RN_ARCH, quick_gelu=True), pretrained=path)
    for (name, ref), value in zip(clip.state_dict().items(),
                                  loaded.state_dict().values()):
        assert torch.equal(ref, value), name
    with pytest.warns(UserWarning, match='quickgelu'):
        build_open_clip(RN_ARCH, pretrained=path)


def test_loading_mismatch_names_keys_and_file(tmp_path):
    from mmwris.models.foundation import CLIPVisionEncoder
    path = tmp_path / 'vit_clip.pth'
    torch.save(tiny_clip(VIT_ARCH).state_dict(), path)
    with pytest.raises(RuntimeError) as error:
        CLIPVisionEncoder(RN_ARCH, pretrained=str(path))
    message = str(error.value)
    assert str(path) in message
    assert 'Missing keys 103: [visual.bn1.weight' in message
    assert '(93 more)' in message
    assert 'unexpected keys 31: [visual.class_embedding' in message
    assert 'visual.conv1.weight (32, 3, 16, 16) vs (8, 3, 3, 3)' in message
    with pytest.raises(FileNotFoundError, match='never'):
        CLIPVisionEncoder(RN_ARCH, pretrained=str(tmp_path / 'none.pth'))


def test_vision_encoder_shapes_and_freezing():
    from mmwris.models.foundation import CLIPVisionEncoder
    torch.manual_seed(0)
    encoder = CLIPVisionEncoder(RN_ARCH)
    feats = encoder(torch.randn(2, 3, 128, 128))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 32, 32),
                                               (2, 128, 16, 16),
                                               (2, 256, 8, 8), (2, 512, 4, 4)]
    assert encoder.out_channels == [64, 128, 256, 512]
    assert not hasattr(encoder.visual, 'attnpool') or \
        encoder.visual.attnpool is None

    vit = CLIPVisionEncoder(VIT_ARCH, out_indices=(0, 1))
    feats = vit(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 4, 4)] * 2
    assert tuple(vit(torch.randn(1, 3, 96, 128))[-1].shape) == (1, 32, 6, 8)

    frozen = CLIPVisionEncoder(RN_ARCH, out_indices=(3, ), frozen=True)
    frozen.train()
    assert not frozen.training and not frozen.visual.bn1.training
    assert not any(p.requires_grad for p in frozen.parameters())


# ------------------------------------------------------------ head / scores
def test_head_maps_shape():
    from mmwris.models.decode_heads import TRISHead
    head = TRISHead(in_channels=128, text_channels=64, channels=32)
    maps = head(torch.randn(3, 128, 5, 6), torch.randn(7, 64))
    assert maps.shape == (3, 7, 5, 6)
    per_image = head(torch.randn(3, 128, 5, 6), torch.randn(3, 2, 64))
    assert per_image.shape == (3, 2, 5, 6)
    assert math.isclose(head.logit_scale.exp().item(), 1 / 0.07, rel_tol=1e-6)
    bound = head.logit_scale.exp().item() + 1e-4
    assert maps.abs().max() <= bound


def test_image_text_scores_by_hand():
    from mmwris.models.layers import image_text_scores
    # one image, two texts, a 1 x 2 grid
    s = [[1.0, 3.0], [0.0, 2.0]]
    maps = torch.tensor(s).view(1, 2, 1, 2)
    shares = [[0.0, 0.0], [0.0, 0.0]]
    for p in range(2):
        denom = math.exp(1.0) + math.exp(s[0][p]) + math.exp(s[1][p])
        for t in range(2):
            shares[t][p] = math.exp(s[t][p]) / denom
    expected = []
    for t in range(2):
        m = sum(shares[t]) / 2
        expected.append(
            sum(s[t]) / 2 + max(s[t]) + (1 - m)**3 * math.log(0.01 + m))
    torch.testing.assert_close(
        image_text_scores(maps), torch.tensor([expected]))


def test_classification_loss_matches_torch():
    from mmwris.models.losses import ClassificationLoss
    scores = torch.randn(4, 6)
    target = torch.zeros(4, 6)
    target[torch.arange(4), torch.arange(4) + 2] = 1
    ref = F.multilabel_soft_margin_loss(scores, target)
    torch.testing.assert_close(ClassificationLoss(loss_weight=1.0)(
        scores, target), ref)
    torch.testing.assert_close(ClassificationLoss()(scores, target), 5 * ref)


def test_calibration_gradient_reaches_map():
    from mmwris.models.losses import CalibrationLoss
    loss = CalibrationLoss(scorer=dict(arch=VIT_ARCH))
    maps = torch.randn(2, 1, 4, 4, requires_grad=True)
    images = torch.rand(2, 3, 64, 64)
    out = loss(maps, images, TEXTS[:2], [TEXTS[2:], []])
    assert set(out) == {'loss_cal_pos', 'loss_cal_neg'}
    assert all(torch.isfinite(v) for v in out.values())
    (out['loss_cal_pos'] + out['loss_cal_neg']).backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0
    params = list(loss.scorer.clip.parameters())
    assert params and all(not p.requires_grad and p.grad is None
                          for p in params)
    loss.train()
    assert not loss.scorer.clip.training
    assert not loss.state_dict() and not list(loss.parameters())


# --------------------------------------------------------------- segmentor
def test_segmentor_train_step_and_predict():
    torch.manual_seed(0)
    model = build(tris_cfg())
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    inputs = torch.randn(4, 3, 64, 64)
    data = samples(TEXTS)
    losses = model.loss(inputs, data)
    assert {'loss_cls', 'loss_cal_pos', 'loss_cal_neg'} <= set(losses)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    optim.step()
    changed = {
        n.split('.')[0]
        for n, p in model.named_parameters()
        if not torch.equal(p, before[n])
    }
    assert {'image_encoder', 'text_encoder', 'decode_head'} <= changed

    assert model._forward(inputs, data).shape == (4, 4, 2, 2)
    model.eval()
    shapes = [(50, 70), (64, 64), (33, 90), (120, 40)]
    with torch.no_grad():
        out = model.predict(inputs, samples(TEXTS, shapes))
    for sample, shape in zip(out, shapes):
        assert sample.seg_logits.data.shape == (1, ) + shape
        assert sample.pred_sem_seg.data.shape == (1, ) + shape
        assert set(sample.pred_sem_seg.data.unique().tolist()) <= {0, 1}
        assert 0 <= sample.seg_logits.data.min() <= 1


def test_segmentor_text_context():
    """'own' does not depend on the batch; 'batch' is the diagonal."""
    torch.manual_seed(0)
    model = build(tris_cfg(loss_cal=False)).eval()
    inputs = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        own = model.own_maps(inputs, samples(TEXTS[:3]))
        alone = model.own_maps(inputs[1:2], samples(TEXTS[1:2]))
        torch.testing.assert_close(own[1], alone[0], rtol=0, atol=1e-4)
        model.text_context = 'batch'
        maps = model._forward(inputs, samples(TEXTS[:3]))
        diagonal = model.own_maps(inputs, samples(TEXTS[:3]))
    torch.testing.assert_close(diagonal[:, 0], maps[[0, 1, 2], [0, 1, 2]])
    assert not torch.allclose(diagonal, own)


def test_segmentor_with_mmseg_backbone():
    torch.manual_seed(0)
    backbone = dict(
        type='ResNetV1c', depth=18, base_channels=16, stem_channels=16,
        out_indices=(0, 1, 2, 3))
    model = build(tris_cfg(image_encoder=backbone, in_channels=128))
    model.train()
    losses = model.loss(torch.randn(2, 3, 64, 64), samples(TEXTS[:2]))
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert model.decode_head.vis_proj.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model.predict(
            torch.randn(2, 3, 64, 64), samples(TEXTS[:2], [(40, 80)] * 2))
    assert out[0].pred_sem_seg.data.shape == (1, 40, 80)


def test_segmentor_scores_against_all_ranks_texts(monkeypatch):
    """With 3 extra texts from 'rank 0', targets sit at offset 3."""
    import mmwris.models.decode_heads.response_head as head_module
    import mmwris.models.segmentors.tris as tris_module
    torch.manual_seed(0)
    model = build(tris_cfg(loss_cal=False))
    other = torch.randn(3, 64)

    def fake_gather(x, return_offset=False, **kwargs):
        return torch.cat([other, x]), 3

    captured = {}
    original = head_module.image_text_scores

    def spy(maps):
        captured['maps'] = maps
        captured['scores'] = original(maps)
        return captured['scores']

    monkeypatch.setattr(tris_module, 'gather_with_grad', fake_gather)
    monkeypatch.setattr(head_module, 'image_text_scores', spy)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples(TEXTS[:2]))
    assert captured['maps'].shape[:2] == (2, 5)
    target = torch.zeros(2, 5)
    target[0, 3] = target[1, 4] = 1
    torch.testing.assert_close(
        losses['loss_cls'],
        5 * F.multilabel_soft_margin_loss(captured['scores'], target))


GATHER_WORKER = textwrap.dedent('''
    import importlib.util, os, sys
    import torch, torch.distributed as dist
    spec = importlib.util.spec_from_file_location(
        'dist_gather', os.path.join(sys.argv[1], 'mmwris', 'models', 'utils',
                                    'dist_gather.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    weight = torch.arange(3.).view(3, 1) * (rank + 1)
    for sum_grads in (True, False):
        x = torch.full((rank + 1, 2), float(rank + 1), requires_grad=True)
        out, offset = module.gather_with_grad(
            x * 1, return_offset=True, sum_grads=sum_grads)
        assert out.shape == (3, 2), out.shape
        assert offset == rank, offset
        assert out[:1].eq(1).all() and out[1:].eq(2).all()
        (out * weight).sum().backward()
        scale = 3 if sum_grads else rank + 1
        expected = torch.arange(3.)[offset:offset + rank + 1] * scale
        assert torch.equal(x.grad, expected.view(-1, 1).expand(-1, 2)), (
            sum_grads, x.grad)
    dist.destroy_process_group()
    print('ok', rank)
''')


def test_gather_with_grad_two_processes(tmp_path):
    from mmwris.models.utils import gather_with_grad
    x = torch.randn(3, 2)
    assert gather_with_grad(x) is x
    assert gather_with_grad(x, return_offset=True)[1] == 0

    script = tmp_path / 'worker.py'
    script.write_text(GATHER_WORKER)
    procs = []
    for rank in range(2):
        env = run_env()
        env.update(RANK=str(rank), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                   MASTER_PORT=str(29000 + os.getpid() % 1000))
        procs.append(subprocess.Popen(
            [sys.executable, str(script), REPO], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    for rank, (proc, output) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, output
        assert f'ok {rank}' in output
