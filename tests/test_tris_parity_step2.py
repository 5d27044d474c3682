"""The released TRIS step-2 network (fawnliu/TRIS model/model_stage2.py) on
the official fixtures: converted weights in TRISStep2Segmentor +
TRISPixelAttention + TRISStep2ReleasedHead give the official features, side
outputs and losses (README of the fixtures, section 7), and the full-size
step-2 checkpoint layout converts to the paper config's keys strictly.

Every width, size and length comes from the fixture files."""
import os.path as osp
import re
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from mmengine.config import Config
from mmengine.structures import PixelData
from official_fixtures import (assert_loads_strictly, load, load_state_dict,
                               meta_state_dict, require)

from mmwris.structures import RISDataSample

require('tris')
sys.path.insert(0, osp.join(REPO, 'tools', 'model_converters'))
from tris2mmwris import convert_tris_step2_state_dict  # noqa: E402

PAPER_CFG = osp.join(REPO, 'configs', 'tris',
                     'tris-step2_clip-r50_1xb48-15e_refcoco-unc-320x320.py')
ATOL, RTOL = 1e-5, 1e-4


def released_clip_arch(state_dict: dict) -> dict:
    """open_clip ``CLIP`` kwargs of the released backbone (``backbone.*``,
    OpenAI layout; QuickGELU), read from the tensor shapes."""

    def count(pattern):
        return len({m[1] for k in state_dict for m in [re.match(pattern, k)]
                    if m})

    layers = tuple(count(rf'backbone\.visual\.layer{i}\.(\d+)\.')
                   for i in range(1, 5))
    attnpool = state_dict['backbone.visual.attnpool.positional_embedding']
    text_width = state_dict['backbone.ln_final.weight'].shape[0]
    context, _ = state_dict['backbone.positional_embedding'].shape
    return dict(
        embed_dim=state_dict['backbone.text_projection'].shape[1],
        quick_gelu=True,
        vision_cfg=dict(
            layers=layers,
            width=state_dict['backbone.visual.conv1.weight'].shape[0] * 2,
            image_size=32 * round((attnpool.shape[0] - 1)**0.5)),
        text_cfg=dict(
            context_length=context,
            vocab_size=state_dict['backbone.token_embedding.weight'].shape[0],
            width=text_width,
            heads=text_width // 64,
            layers=count(r'backbone\.transformer\.resblocks\.(\d+)\.')))


@pytest.fixture(scope='module')
def official():
    stage2 = load('stage2_state_dict.pt')
    stage1 = load_state_dict('stage1_state_dict.pt')
    released = dict(stage2['model'])
    for key in stage2['shared_with_stage1']:
        released[key] = stage1[key]
    recipe_key = stage2['omitted_recipe']['key']
    released[recipe_key] = load_state_dict('stage2_state_dict.pt')[recipe_key]
    return dict(state_dict=released, io=load('stage2_io.pt'),
                inputs=load('inputs.pt'))


def build_released(official):
    """The paper config's network at the fixture's widths, converted weights
    loaded strictly."""
    from mmwris.registry import MODELS
    sd, io, inputs = official['state_dict'], official['io'], official['inputs']
    dims = io['meta/dims']
    arch = released_clip_arch(sd)
    cfg = Config.fromfile(PAPER_CFG).model
    cfg.image_encoder.arch = arch
    cfg.text_encoder.arch = arch
    cfg.text_encoder.context_length = inputs['meta/max_query_len']
    cfg.decode_head.update(
        in_channels=dims['v_chans'], reduce_channels=dims['reduced'],
        decoder_channels=dims['decoder_out'],
        side_channels=dims['final_hidden'])
    model = MODELS.build(cfg)
    assert model.visual_channels == list(dims['v_chans'])
    assert model.text_encoder.width == dims['l_chans']
    model.load_state_dict(convert_tris_step2_state_dict(sd), strict=True)
    return model


def official_texts(model, inputs):
    """``encode_text`` on the official token ids (released truncation)."""
    ids = inputs['word_ids'].long()
    mask = inputs['word_masks'].bool()

    def encode_text(data_samples):
        out = model.text_encoder.encode(dict(ids=ids, mask=mask))
        return out['tokens'], out['mask']

    return encode_text


def data_samples(io):
    size = io['meta/size']
    samples = []
    for text, target in zip(io['meta/sentences'],
                            io['inputs/pseudo_gt_uint8'].long()):
        sample = RISDataSample()
        sample.set_metainfo(dict(text=text, img_shape=(size, size),
                                 ori_shape=(size, size),
                                 batch_input_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=target)
        samples.append(sample)
    return samples


def capture(model):
    """Forward hooks recording the official intermediates."""
    seen = {}

    def keep(name, pick=lambda out: out):

        def hook(module, args, out):
            seen[name] = pick(out)

        return hook

    head = model.decode_head
    handles = [
        model.image_encoder.register_forward_hook(
            keep('c', lambda out: out)),
        model.fusions['stage3'].register_forward_hook(keep('fuse_feats4')),
        head.fuse_convs[0].register_forward_hook(keep('seg_out1')),
        head.register_forward_hook(keep('sides')),
    ]
    return seen, handles


def close(name, got, want, diffs, atol=ATOL, rtol=RTOL):
    want = torch.as_tensor(want, dtype=torch.float32)
    got = got.detach().float()
    assert got.shape == want.shape, (name, got.shape, want.shape)
    diffs[name] = (got - want).abs().max().item()
    torch.testing.assert_close(got, want, atol=atol, rtol=rtol, msg=name)


def test_train_mode_features_sides_and_losses(official, monkeypatch):
    io, inputs = official['io'], official['inputs']
    model = build_released(official).train()
    monkeypatch.setattr(model, 'encode_text', official_texts(model, inputs))
    seen, handles = capture(model)
    torch.manual_seed(0)
    losses = model.loss(inputs['img'], data_samples(io))
    for handle in handles:
        handle.remove()
    diffs = {}
    tokens, _ = model.encode_text(None)
    close('train/word_embedding', tokens, io['train/word_embedding'], diffs)
    close('train/c3', seen['c'][2], io['train/c3'], diffs)
    close('train/c4', seen['c'][3], io['train/c4'], diffs)
    close('train/fuse_feats4', seen['fuse_feats4'], io['train/fuse_feats4'],
          diffs)
    close('train/seg_out1', seen['seg_out1'], io['train/seg_out1'], diffs)
    size = io['meta/size']
    sides = seen['sides']  # coarse to fine: out4, out3, out2, out1
    total = 0
    for k in range(1, len(sides) + 1):
        side = len(sides) - k
        up = F.interpolate(sides[side], size=(size, size), mode='bilinear',
                           align_corners=False)
        close(f'train/out{k}', up, io[f'train/out{k}'], diffs)
        loss = losses[f'loss_bce_side{side}']
        close(f'loss/l{k}', loss, io[f'loss/l{k}'], diffs, rtol=0)
        total = total + loss
    assert io['loss/l5'] == 0  # EMA consistency, off in the released runs
    close('loss/total', total, io['loss/total'], diffs, rtol=0)
    print('max abs differences:', diffs)


def test_eval_mode_output(official):
    io, inputs = official['io'], official['inputs']
    model = build_released(official).eval()
    model.encode_text = official_texts(model, inputs)
    size = io['meta/size']
    with torch.no_grad():
        logits = model.predict_response(inputs['img'], data_samples(io))
    out1 = F.interpolate(logits, size=(size, size), mode='bilinear',
                         align_corners=False)
    diffs = {}
    close('eval/out1_sub2', out1[..., ::2, ::2], io['eval/out1_sub2'], diffs)
    print('max abs differences:', diffs)


def test_optimizer_groups_as_released(official):
    """The released head group (lr x1) holds the text positional embedding;
    the rest of the backbone trains at lr x0.1."""
    from mmengine.optim import build_optim_wrapper
    model = build_released(official)
    cfg = Config.fromfile(PAPER_CFG)
    assert cfg.param_scheduler == []  # the released lr is ~constant
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base = cfg.optim_wrapper.optimizer.lr
    lr_of = {id(p): g['lr'] for g in wrapper.optimizer.param_groups
             for p in g['params']}
    named = dict(model.named_parameters())
    released_head_keys = official['io']['meta/head_group_backbone_keys']
    assert 'backbone.positional_embedding' in released_head_keys
    assert lr_of[id(named['text_encoder.positional_embedding'])] == base
    assert lr_of[id(named['image_encoder.visual.conv1.weight'])] == \
        pytest.approx(base * 0.1)
    assert lr_of[id(named['text_encoder.token_embedding.weight'])] == \
        pytest.approx(base * 0.1)
    assert lr_of[id(named['fusions.stage1.w_q.weight'])] == base
    assert lr_of[id(named['decode_head.side_heads.0.0.activate.weight'])] \
        == base


def test_full_size_checkpoint_layout_converts_strictly():
    """Released step-2 keys (CLIP RN50) -> the paper config, strict."""
    from mmwris.registry import MODELS
    released = meta_state_dict('stage2_checkpoint_keys.json')
    converted = convert_tris_step2_state_dict(released)
    kept = [
        k for k in released
        if not k.startswith('backbone.visual.attnpool.')
        and k != 'backbone.logit_scale'
    ]
    assert len(converted) == len(kept)
    cfg = Config.fromfile(PAPER_CFG).model
    # open_clip's create_model moves a named model to a device (impossible
    # from 'meta'): build the same architecture from its kwargs
    import open_clip
    arch = open_clip.get_model_config(cfg.image_encoder.arch)
    assert arch is not None and cfg.text_encoder.arch == cfg.image_encoder.arch
    cfg.image_encoder.arch = cfg.text_encoder.arch = dict(
        arch, quick_gelu=cfg.image_encoder.arch.endswith('-quickgelu'))
    with torch.device('meta'):
        model = MODELS.build(cfg)
    assert_loads_strictly(model, converted)
