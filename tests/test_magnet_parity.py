"""MagNet parity with the released code (yxchng/mask-grounding; official
fixtures, ``magnet/README.md``).

The tiny released-architecture state dict, converted with
``tools/model_converters/magnet2mmwris.py``, is loaded strictly into a
``MagNetSegmentor`` whose sizes are read off the state-dict shapes and
``tiny_meta.json`` (heads, BERT blocks), on top of the paper config
``configs/_base_/models/magnet_swin-b.py``. One forward pass on
``tiny_inputs.pt`` must reproduce every intermediate of
``tiny_outputs.pt`` within the README tolerances (manifest.json). The
full-size layout (``checkpoint_keys.json``) must load strictly into the
paper config, on the meta device.
"""
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from official_fixtures import (REPO_ROOT, assert_loads_strictly, fixture_path,
                               load, load_tool, meta_parameters,
                               meta_state_dict, require)

require('magnet')

from mmwris.registry import MODELS  # noqa: E402
from mmwris.structures import RISDataSample  # noqa: E402
from mmwris.utils import register_all_modules  # noqa: E402

register_all_modules()

PAPER_MODEL = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                       'magnet_swin-b.py')
CONVERTER = 'tools/model_converters/magnet2mmwris.py'
MAX_ERRORS = {}


def converter():
    return load_tool(CONVERTER)


def tolerance(key):
    """``(atol, rtol)`` of a ``tiny_outputs.pt`` key from manifest.json."""
    with open(fixture_path('manifest.json', 'magnet')) as f:
        text = json.load(f)['tiny_outputs.pt'][key]['tolerance']
    atol, rtol = re.match(r'atol ([\d.e-]+), rtol ([\d.e-]+)', text).groups()
    return float(atol), float(rtol)


def count(state_dict, pattern):
    """Distinct values of the first group of ``pattern`` over the keys."""
    return len({m[1] for k in state_dict if (m := re.match(pattern, k))})


def tiny_model_cfg(released, meta):
    """The paper model config with the sizes of the tiny checkpoint."""
    sd, tiny = released, meta['tiny']
    cfg = Config.fromfile(PAPER_MODEL).model
    stages = count(sd, r'image_model\.layers\.(\d+)\.')
    depths = [count(sd, rf'image_model\.layers\.{i}\.blocks\.(\d+)\.')
              for i in range(stages)]
    table = 'image_model.layers.{}.blocks.0.attn.relative_position_{}'
    proj = sd['image_model.patch_embed.proj.weight']
    fc1 = sd['image_model.layers.0.blocks.0.mlp.fc1.weight']
    window = int(round(sd[table.format(0, 'index')].shape[0]**0.5))
    cfg.image_encoder.update(
        embed_dims=proj.shape[0], patch_size=proj.shape[-1],
        strides=(proj.shape[-1], 2, 2, 2)[:stages], depths=depths,
        num_heads=[sd[table.format(i, 'bias_table')].shape[1]
                   for i in range(stages)],
        window_size=window, mlp_ratio=fc1.shape[0] // fc1.shape[1],
        drop_path_rate=tiny['drop_path_rate'])
    emb = 'language_model.embeddings.{}.weight'
    layer0 = 'language_model.encoder.layer.0.'
    cfg.text_encoder.update(
        config=dict(
            vocab_size=sd[emb.format('word_embeddings')].shape[0],
            hidden_size=sd[emb.format('word_embeddings')].shape[1],
            num_hidden_layers=count(
                sd, r'language_model\.encoder\.layer\.(\d+)\.'),
            num_attention_heads=tiny['bert_heads'],
            intermediate_size=sd[layer0 +
                                 'intermediate.dense.weight'].shape[0],
            max_position_embeddings=sd[emb.format(
                'position_embeddings')].shape[0],
            type_vocab_size=sd[emb.format('token_type_embeddings')].shape[0]),
        block_layers=tiny['bert_pwam_idx'])
    cfg.image_fusion.num_heads = cfg.text_fusion.num_heads = list(
        tiny['num_heads_fusion'])
    pix = 'classifier.pixel_decoder.'
    enc0 = pix + 'transformer.encoder.layers.0.'
    levels = sd[pix + 'transformer.level_embed'].shape[0]
    heads = tiny['nheads']
    cfg.decode_head.pixel_decoder.update(
        conv_dim=sd[pix + 'input_proj.0.0.weight'].shape[0],
        mask_dim=sd[pix + 'mask_features.weight'].shape[0],
        num_layers=count(sd, re.escape(pix) +
                         r'transformer\.encoder\.layers\.(\d+)\.'),
        ffn_dims=sd[enc0 + 'linear1.weight'].shape[0], num_heads=heads,
        num_points=sd[enc0 + 'self_attn.attention_weights.weight'].shape[0]
        // (heads * levels))
    pred = 'classifier.predictor.'
    cfg.decode_head.predictor.update(
        hidden_dim=sd[pred + 'query_feat.weight'].shape[1],
        num_queries=sd[pred + 'query_feat.weight'].shape[0],
        num_classes=sd[pred + 'class_embed.weight'].shape[0] - 1,
        num_heads=heads,
        ffn_dims=sd[pred + 'transformer_ffn_layers.0.linear1.weight'].shape[0],
        num_layers=count(sd, re.escape(pred) +
                         r'transformer_ffn_layers\.(\d+)\.'))
    return cfg


@pytest.fixture(scope='module')
def released():
    return dict(load('tiny_checkpoint.pt', 'magnet')['model'])


@pytest.fixture(scope='module')
def meta():
    with open(fixture_path('tiny_meta.json', 'magnet')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def model(released, meta):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(released, meta))
    converted, dropped = converter().convert_magnet_state_dict(released)
    assert dropped and all(
        k.startswith(('image_model.norm', 'language_model.norms.',
                      'lang_proj.')) for k in dropped)
    assert_loads_strictly(model, converted)
    return model.eval()


@pytest.fixture(scope='module')
def run(model):
    """One forward of the converted model on ``tiny_inputs.pt``, with
    every intermediate captured by hooks on our modules."""
    inputs = load('tiny_inputs.pt', 'magnet')
    got = {}

    def keep(name, fn):
        return lambda module, args, out: got.__setitem__(name, fn(args, out))

    hooks = []
    for i, (img, txt) in enumerate(zip(model.image_fusions,
                                       model.text_fusions), 1):
        hooks += [
            img.register_forward_hook(keep(
                f'img_stage{i}_blocks',
                lambda a, o: a[0].flatten(2).transpose(1, 2))),
            img.register_forward_hook(keep(f'img_stage{i}_fused',
                                           lambda a, o: o[0])),
            img.register_forward_hook(keep(
                f'img_stage{i}_gated',
                lambda a, o: o[1].flatten(2).transpose(1, 2))),
            img.register_forward_hook(keep(f'lang_stage{i}_blocks',
                                           lambda a, o: a[1])),
            txt.register_forward_hook(keep(f'lang_stage{i}_fused',
                                           lambda a, o: o)),
            txt.pwam.register_forward_hook(keep(f'lang_stage{i}_residual',
                                                lambda a, o: o)),
        ]
    with torch.no_grad():
        tokenized = dict(ids=inputs['token_ids'],
                         mask=inputs['attention_mask'].bool())
        got['img_stem'] = model.image_encoder.forward_stem(
            inputs['image'])[0]
        got['lang_embeddings'], got['extended_attention_mask'] = \
            model.text_encoder.forward_stem(tokenized['ids'],
                                            tokenized['mask'])
        feats = model.extract_feat(inputs['image'], tokenized)
        out = model.decode_head(feats['features'])
        for hook in hooks:
            hook.remove()
        for i, level in enumerate(out['multi_scale']):
            got[f'pixdec_multi_scale_{i}'] = level
        got['pixdec_mask_features'] = out['mask_features']
        got['dec_pred_logits'] = torch.stack(out['all_logits'])
        got['dec_pred_masks'] = torch.stack(out['all_masks'])
        got['pred_logits'], got['pred_masks'] = (out['pred_logits'],
                                                 out['pred_masks'])
        size = inputs['image'].shape[-2:]
        samples = [RISDataSample(metainfo=dict(
            ori_shape=tuple(size), img_shape=tuple(size),
            batch_input_shape=tuple(size)))
            for _ in range(len(inputs['image']))]
        response = out['pred_masks'][:, :1]
        got['mask_logits_upsampled'] = torch.stack(
            model.mask_decoder.to_original_size(response, samples))
        model.mask_decoder.decode_batch(response, samples)
        got['binary_mask'] = torch.stack(
            [s.pred_sem_seg.data for s in samples]).bool()
    return got


EXPECTED = None


def expected():
    global EXPECTED
    if EXPECTED is None:
        EXPECTED = load('tiny_outputs.pt', 'magnet')
    return EXPECTED


FLOAT_KEYS = [
    'img_stem', 'lang_embeddings', 'extended_attention_mask',
    *[f'{side}_stage{s}_{what}' for s in range(1, 5)
      for side, what in (('img', 'blocks'), ('lang', 'blocks'),
                         ('img', 'fused'), ('img', 'gated'),
                         ('lang', 'fused'))],
    'pixdec_multi_scale_0', 'pixdec_multi_scale_1', 'pixdec_multi_scale_2',
    'pixdec_mask_features', 'dec_pred_logits', 'dec_pred_masks',
    'pred_logits', 'pred_masks', 'mask_logits_upsampled'
]


@pytest.mark.parametrize('key', FLOAT_KEYS)
def test_intermediate(run, key):
    want = expected()[key]
    have = run[key].reshape(want.shape)
    atol, rtol = tolerance(key)
    MAX_ERRORS[key] = float((have - want).abs().max())
    torch.testing.assert_close(have, want, atol=atol, rtol=rtol)


def test_binary_mask(run):
    want = expected()['binary_mask']
    logits = expected()['mask_logits_upsampled']
    confident = logits.abs() >= 1e-3
    have = run['binary_mask'].reshape(want.shape)
    assert torch.equal(have[confident], want[confident])
    MAX_ERRORS['binary_mask (differing pixels)'] = int((have != want).sum())


def test_unused_language_residual_norm(run, released):
    """``lang_stage{s}_residual_norm``: LayerNorm(r) of the language PWAM
    output with the released (unused, dropped) ``norms`` weights."""
    for i in range(1, 5):
        key = f'lang_stage{i}_residual_norm'
        want = expected()[key]
        weight = released[f'language_model.norms.{i - 1}.weight']
        bias = released[f'language_model.norms.{i - 1}.bias']
        have = torch.nn.functional.layer_norm(
            run[f'lang_stage{i}_residual'], weight.shape, weight, bias)
        atol, rtol = tolerance(key)
        MAX_ERRORS[key] = float((have - want).abs().max())
        torch.testing.assert_close(have, want, atol=atol, rtol=rtol)


def test_tokenizer(tmp_path):
    """The released tokenisation ([CLS] ... [SEP], first 20 ids, zero
    padding) on the fixture's WordPiece vocabulary."""
    inputs = load('tiny_inputs.pt', 'magnet')
    vocab = tmp_path / 'vocab.txt'
    vocab.write_text('\n'.join(inputs['vocab']) + '\n')
    from mmwris.models.foundation import BertTextEncoder
    encoder = BertTextEncoder(
        config=dict(vocab_size=len(inputs['vocab']), hidden_size=8,
                    num_hidden_layers=1, num_attention_heads=1,
                    intermediate_size=8, max_position_embeddings=32),
        vocab_file=str(vocab), context_length=inputs['token_ids'].shape[1],
        block_layers=(1, ))
    tokens = encoder.tokenize(list(inputs['all_expressions']))
    assert torch.equal(tokens['ids'], inputs['all_token_ids'])
    assert torch.equal(tokens['mask'].long(), inputs['all_attention_mask'])


def test_full_size_layout_loads_strictly():
    """The full released layout (1310 keys) -> the paper config, strictly,
    on the meta device; every dropped key is an unused module."""
    layout = meta_state_dict('checkpoint_keys.json', 'magnet')
    converted, dropped = converter().convert_magnet_state_dict(layout)
    assert len(converted) + len(dropped) == len(layout)
    assert {k.split('.')[0] + '.' + k.split('.')[1] for k in dropped} == {
        'image_model.norm0', 'image_model.norm1', 'image_model.norm2',
        'image_model.norm3', 'language_model.norms', 'lang_proj.weight',
        'lang_proj.bias'}
    with meta_parameters():
        model = MODELS.build(Config.fromfile(PAPER_MODEL).model)
    assert_loads_strictly(model, converted)


def test_relative_position_index_matches_mmseg(released, model):
    """The released Swin index buffer equals mmseg's (the converter copies
    it; the computed one must agree)."""
    ours = model.image_encoder.stages[0].blocks[0].attn.w_msa
    window = ours.window_size[0]
    fresh = type(ours)(ours.embed_dims, ours.num_heads, (window, window))
    key = 'image_model.layers.0.blocks.0.attn.relative_position_index'
    assert torch.equal(fresh.relative_position_index, released[key])


def test_report_max_errors():
    """Runs last: the measured max abs errors (printed with -s)."""
    if MAX_ERRORS:
        width = max(map(len, MAX_ERRORS))
        for key, err in MAX_ERRORS.items():
            print(f'{key:<{width}} {err:.3g}')
