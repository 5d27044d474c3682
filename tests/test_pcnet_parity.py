"""PCNet parity with the released code (official fixtures, ``pcnet/``).

The fixtures (``pcnet/README.md``) hold the outputs of
zaiquanyang/Boosting_WRIS on a tiny random model. The converted weights in
the PCNet paper config (``PCNetReleasedHead``, architecture read off the
state-dict shapes) must reproduce every stage's states and maps, the
per-stage classification losses, RaS, IaD and the inference maps, within
the README tolerances. Every size comes from the files.
"""
import json
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from official_fixtures import (REPO_ROOT, assert_loads_strictly,
                               fixture_path, load, load_tool, require)

require('pcnet')

from test_tris_parity_step1 import close, count_blocks  # noqa: E402
from test_tris_parity_step1 import resnet_clip_arch  # noqa: E402

from mmwris.models.layers import image_text_scores  # noqa: E402
from mmwris.models.losses.region_shrinking_released_loss import \
    released_proposal_response  # noqa: E402
from mmwris.registry import MODELS  # noqa: E402
from mmwris.utils import register_all_modules  # noqa: E402

register_all_modules()

PAPER_MODEL = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                       'pcnet_clip-r50.py')
# README 5: logit-scale quantities and features 1e-4 / 1e-4; normalised
# features, RaS / IaD terms and losses 1e-5 / 1e-4; one-hots 1e-6.
SCORE_TOL = dict(atol=1e-4, rtol=1e-4)
UNIT_TOL = dict(atol=1e-5, rtol=1e-4)
MAX_DIFFS = {}


def converter():
    return load_tool(osp.join('tools', 'model_converters', 'pcnet2mmwris.py'))


def check(name, ours, official, **tol):
    MAX_DIFFS[name] = close(ours, official, name, **(tol or UNIT_TOL))


def report():
    """Print the largest differences so far (``pytest -s``)."""
    worst = sorted(MAX_DIFFS.items(), key=lambda item: -item[1])[:5]
    print(f'{len(MAX_DIFFS)} values compared; largest differences:', worst)


@pytest.fixture(scope='module')
def inputs():
    return load('pcnet_inputs.pt', 'pcnet')


@pytest.fixture(scope='module')
def train_io():
    return load('pcnet_train_outputs.pt', 'pcnet')


@pytest.fixture(scope='module')
def eval_io():
    return load('pcnet_eval_outputs.pt', 'pcnet')


@pytest.fixture(scope='module')
def official():
    return load('pcnet_tiny_checkpoint.pt', 'pcnet')['model']


def build_paper_model(official, inputs, num_stages):
    """The paper-config segmentor with the converted weights (no
    calibration: its foreground term is 0 by default and the negative term
    needs the loss CLIP)."""
    cfg = Config.fromfile(PAPER_MODEL).model
    arch = resnet_clip_arch(official)
    arch['text_cfg']['heads'] = inputs['tiny_config']['transformer_heads']
    for encoder in (cfg.image_encoder, cfg.text_encoder):
        encoder.arch = arch
    cfg.text_encoder.context_length = inputs['max_query_len']
    cfg.text_encoder.keep_eot = False
    hidden, c4 = official['c4_vis_project.weight'].shape[:2]
    cfg.decode_head.update(
        in_channels=c4, channels=hidden,
        text_channels=official['global_lan_project.weight'].shape[1],
        num_stages=num_stages,
        num_blocks=count_blocks(official, 'attn_fusion_vl.'))
    cfg.decode_head.loss_cal = None
    model = MODELS.build(cfg)
    model.load_state_dict(converter().convert_pcnet_state_dict(official),
                          strict=True)
    return model


def encode(model, ids):
    """Sentence embeddings of token ids ``[..., L]`` -> ``[..., D]``."""
    flat = ids.reshape(-1, ids.shape[-1]).long()
    out = model.text_encoder.encode(dict(ids=flat, mask=flat > 0))
    return out['sentence'].reshape(*ids.shape[:-1], -1)


def cue_sentences(model, sentence_ids, phrase_ids, num_stages):
    """``[T, K, D]``: phrases ``0..K-2``, then the sentence."""
    sentence = encode(model, sentence_ids)
    phrases = encode(model, phrase_ids)
    return torch.cat([phrases[:, :num_stages - 1], sentence[:, None]], 1)


def stage_keys(train_io, num_stages):
    return [f'K{num_stages}/stage{k}/' for k in range(num_stages)]


def ks(train_io):
    """The K values the train fixture covers."""
    return sorted({int(k.split('/')[0][1:]) for k in train_io
                   if k.startswith('K') and k.endswith('/cls_loss')
                   and k.count('/') == 1})


def train_forward(official, inputs, num_stages):
    model = build_paper_model(official, inputs, num_stages).train()
    feats = model.image_encoder(inputs['img'])
    c4 = feats[model.feature_index]
    cues = cue_sentences(model, inputs['all_word_ids'],
                         inputs['all_llm_word_ids'], num_stages)
    states = model.decode_head.stage_states(c4, cues)
    return model, c4, states


def test_encoders_and_every_stage(official, inputs, train_io):
    """Train mode, every K: stage states, maps, cls logits and losses."""
    batch = inputs['batch_size']
    rows = torch.arange(batch)
    for num_stages in ks(train_io):
        model, c4, states = train_forward(official, inputs, num_stages)
        if num_stages == 3:
            check('c4', c4, train_io['c4'], **SCORE_TOL)
            check('text_hidden', encode(model, inputs['all_word_ids']),
                  train_io['text_hidden'], **SCORE_TOL)
            check('phrase_hidden',
                  encode(model, inputs['all_llm_word_ids']).flatten(0, 1),
                  train_io['phrase_hidden'], **SCORE_TOL)
        head = model.decode_head
        size = inputs['img_size']
        for prefix, state in zip(stage_keys(train_io, num_stages), states):
            check(prefix + 'main_lan', state['main'], train_io[
                prefix + 'main_lan'])
            check(prefix + 'vis', state['visual'].flatten(2).transpose(1, 2),
                  train_io[prefix + 'vis'])
            check(prefix + 'lan', state['lan'], train_io[prefix + 'lan'])
            maps = state['maps']
            own = maps[rows, rows][:, None]
            check(prefix + 'score_lowres', own,
                  train_io[prefix + 'score_lowres'], **SCORE_TOL)
            check(prefix + 'score_lowres_partner',
                  maps[rows, rows + batch][:, None],
                  train_io[prefix + 'score_lowres_partner'], **SCORE_TOL)
            if prefix + 'relu_map' in train_io:
                check(prefix + 'relu_map',
                      F.interpolate(own, size=(size, size), mode='bilinear',
                                    align_corners=False).relu(),
                      train_io[prefix + 'relu_map'], **SCORE_TOL)
            logits = image_text_scores(maps[:, :batch])
            check(prefix + 'cls_logits', logits,
                  train_io[prefix + 'cls_logits'], **SCORE_TOL)
            loss = head.loss_cls(logits, torch.eye(batch))
            check(prefix + 'cls_loss', loss / head.loss_cls.loss_weight,
                  train_io[prefix + 'cls_loss'])
    report()


def proposal_inputs(inputs):
    return inputs['zs_mask'].float(), inputs['clip_score']


def test_ras_and_iad_terms(official, inputs, train_io):
    """RaS overlaps, matches, anchor / shrink; IaD maxima, one-hots and
    terms, per stage and as returned, for every K."""
    batch = inputs['batch_size']
    rows = torch.arange(batch)
    size = (inputs['img_size'], ) * 2
    proposals, clip_score = proposal_inputs(inputs)
    assert torch.equal(torch.argsort(clip_score, dim=1, descending=True),
                       inputs['clip_score_order'])
    mark = inputs['same_img_mark_0']
    for num_stages in ks(train_io):
        model, _, states = train_forward(official, inputs, num_stages)
        head = model.decode_head
        own = torch.cat([s['maps'][rows, rows][:, None] for s in states], 1)
        partner = torch.cat(
            [s['maps'][rows, rows + batch][:, None] for s in states], 1)
        prob = released_proposal_response(own, size, proposals.shape[-2:])
        ras = head.loss_ras.match_terms(prob, proposals, clip_score)
        iad = head.loss_iad.stage_terms(own, partner, proposals, mark, size)
        for k, prefix in enumerate(stage_keys(train_io, num_stages)):
            check(prefix + 'ras_p', prob[:, k:k + 1], train_io[prefix +
                                                               'ras_p'])
            for side in ('left', 'right'):
                for kind in ('', 'bool_'):
                    for part in ('I', 'U'):
                        name = f'{side}_{kind}{part}'
                        check(prefix + 'ras_' + name, ras[name][:, k],
                              train_io[prefix + 'ras_' + name])
                check(prefix + f'ras_{side}_match', ras[f'{side}_match'][k],
                      train_io[prefix + f'ras_{side}_match'])
            for name in ('max', 'max_partner'):
                check(prefix + 'iad_' + name, iad[name][:, k],
                      train_io[prefix + 'iad_' + name])
            for name in ('onehot', 'onehot_partner'):
                check(prefix + 'iad_' + name, iad[name][:, k],
                      train_io[prefix + 'iad_' + name], atol=1e-6, rtol=0)
            check(prefix + 'iad_loss', iad['iad'][k],
                  train_io[prefix + 'iad_loss'])

        key = f'K{num_stages}/'
        pair = train_io[key + 'optimize_id']
        # Our seeded draw covers the released choice range.
        draws = {head.loss_ras.draw_pair(num_stages, step)
                 for step in range(64)} if num_stages > 1 else set()
        assert draws == set(range(num_stages - 1))
        if train_io[key + 'choice_range']:
            assert draws == set(range(train_io[key + 'choice_range']))
            assert pair in draws
        ras_loss = head.loss_ras(own, proposals, clip_score, size,
                                 pair=max(pair, 0) if num_stages > 1 else None)
        check(key + 'anchor_loss', ras_loss['loss_ras_anchor'] /
              head.loss_ras.anchor_weight, train_io[key + 'anchor_loss'])
        check(key + 'shrink_loss', ras_loss['loss_ras_shrink'] /
              head.loss_ras.shrink_weight, train_io[key + 'shrink_loss'])
        iad_loss = head.loss_iad(own, partner, proposals, mark, size)
        check(key + 'div_loss', iad_loss['loss_iad'] /
              head.loss_iad.loss_weight, train_io[key + 'div_loss'])
        assert ras_loss['loss_ras_shrink'].requires_grad
        assert iad_loss['loss_iad'].requires_grad
    report()


def test_head_loss_matches_returned_values(official, inputs, train_io):
    """``PCNetReleasedHead.loss`` (joint partner forward) returns the
    released ``cls_loss`` (sum over stages / K), anchor, shrink and IaD."""
    from mmwris.structures import RISDataSample
    batch = inputs['batch_size']
    size = (inputs['img_size'], ) * 2
    for num_stages in ks(train_io):
        model = build_paper_model(official, inputs, num_stages).train()
        head = model.decode_head
        pair = train_io[f'K{num_stages}/optimize_id']
        if num_stages > 2:
            # Force the fixture's draw through the loss's own seeded draw.
            head.loss_ras.draw_pair = lambda n, step, p=pair: p
        c4 = model.extract_feat(inputs['img'])
        cues = cue_sentences(model, inputs['all_word_ids'],
                             inputs['all_llm_word_ids'], num_stages)
        samples = [RISDataSample() for _ in range(batch)]
        losses = head.loss(
            c4, cues[:batch], samples, None,
            proposals=proposal_inputs(inputs),
            partner=(cues[batch:], inputs['same_img_mark_0']),
            image_size=size)
        key = f'K{num_stages}/'
        check(key + 'cls_loss',
              losses['loss_cls'] / head.loss_cls.loss_weight,
              train_io[key + 'cls_loss'])
        check(key + 'anchor_loss(head)', losses['loss_ras_anchor'],
              train_io[key + 'anchor_loss'])
        check(key + 'shrink_loss(head)', losses['loss_ras_shrink'],
              train_io[key + 'shrink_loss'])
        check(key + 'div_loss(head)', losses['loss_iad'],
              train_io[key + 'div_loss'])


def test_partner_forward_options_change_the_maps(official, inputs):
    """The joint partner forward and the batch-wide cue attention are real
    options: switching them changes the expressions' maps (batch 2)."""
    model, c4, states = train_forward(official, inputs, 3)
    batch = inputs['batch_size']
    cues = cue_sentences(model, inputs['all_word_ids'],
                         inputs['all_llm_word_ids'], 3)
    alone = model.decode_head(c4, cues[:batch])[-1]
    joint = states[-1]['maps'][:, :batch]
    assert not torch.allclose(alone, joint, atol=1e-4)
    for stage in model.decode_head.stages:
        stage.cue_attention = 'own'
    own = model.decode_head(c4, cues)[-1][:, :batch]
    assert not torch.allclose(own, joint, atol=1e-4)


def test_eval_maps(official, inputs, eval_io):
    """Eval mode, batch 1 per image: c4, every stage's low-res map and the
    inference map (relu of the up-sampled last stage)."""
    batch, size = inputs['batch_size'], inputs['img_size']
    stages = sorted({int(k.split('/')[0][1:]) for k in eval_io
                     if k.startswith('K') and '/stage' in k})
    for num_stages in stages:
        model = build_paper_model(official, inputs, num_stages).eval()
        with torch.no_grad():
            c4 = model.extract_feat(inputs['img'])
            cues = cue_sentences(model, inputs['word_ids'],
                                 inputs['llm_word_ids'][:, :3], num_stages)
            maps = model.decode_head.predict(c4, cues)
        for b in range(batch):
            if num_stages == stages[0]:
                check(f'eval_c4/img{b}', c4[b:b + 1],
                      eval_io[f'eval_c4/img{b}'], **SCORE_TOL)
            prefix = f'K{num_stages}/img{b}/'
            for k in range(num_stages):
                check(prefix + f'stage{k}/score_lowres', maps[k][b:b + 1],
                      eval_io[prefix + f'stage{k}/score_lowres'],
                      **SCORE_TOL)
            if prefix + 'relu_map' in eval_io:
                check(prefix + 'relu_map',
                      F.interpolate(maps[-1][b:b + 1], size=(size, size),
                                    mode='bilinear',
                                    align_corners=False).relu(),
                      eval_io[prefix + 'relu_map'], **SCORE_TOL)
    report()


def test_converter_gives_the_paper_config_layout():
    """The full-size released layout -> the R50 paper config, strictly."""
    layout = json.loads(
        fixture_path('checkpoint_keys.json', 'pcnet').read_text())
    released = {
        key: torch.empty(spec['shape'], dtype=getattr(torch, spec['dtype']),
                         device='meta')
        for key, spec in layout['model'].items()
    }
    assert sum(v.numel() for v in released.values()
               if v.is_floating_point()) == layout['num_float_params']
    module = converter()
    converted = module.convert_pcnet_state_dict(released)
    dropped = {k for k in released if module.convert_key(k) is None}
    assert dropped == {'backbone.logit_scale'} | {
        k for k in released if k.startswith('backbone.visual.attnpool.')}
    cfg = Config.fromfile(PAPER_MODEL).model
    cfg.decode_head.loss_cal = None
    with torch.device('meta'):
        model = MODELS.build(cfg)
    assert_loads_strictly(model, converted)


def test_converter_cli_writes_a_strict_checkpoint(official, tmp_path,
                                                  monkeypatch):
    """A released-style file (``{'model', 'optimizer', 'epoch'}``) ->
    ``{'state_dict', 'meta'}`` that loads into the paper model strictly."""
    src, dst = tmp_path / 'released.pth', tmp_path / 'converted.pth'
    torch.save(dict(model=official, optimizer={}, epoch=3), src)
    module = converter()
    monkeypatch.setattr('sys.argv', ['pcnet2mmwris.py', str(src), str(dst)])
    module.main()
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['source'] == module.SOURCE
    inputs = load('pcnet_inputs.pt', 'pcnet')
    model = build_paper_model(official, inputs, 3)
    model.load_state_dict(saved['state_dict'], strict=True)
    with pytest.raises(KeyError):
        module.convert_key('attn_fusion_vl.0.unknown.weight')


def test_calibration_per_stage_and_total(official, inputs, train_io,
                                         tmp_path):
    """The negative-text calibration of every stage with the tiny loss CLIP
    (``pcnet_tiny_loss_clip_vitb32.pt``): per-stage ``cbs_loss``, the
    returned ``cbs_loss`` / ``fg_loss`` (0: ``--clip_fg`` off) and the
    released total with the default weights (RaS / IaD weighted 0)."""
    from test_tris_parity_step1 import vit_clip_arch

    from mmwris.structures import RISDataSample, fields
    scorer_sd = load('pcnet_tiny_loss_clip_vitb32.pt', 'pcnet')
    weights = tmp_path / 'loss_clip.pth'
    torch.save(scorer_sd, weights)
    tiny = inputs['tiny_config']
    arch = vit_clip_arch(scorer_sd)
    arch['vision_cfg']['head_width'] = tiny['vit_width'] // tiny['vit_heads']
    arch['text_cfg']['heads'] = tiny['vit_heads']
    batch = inputs['batch_size']
    rows = torch.arange(batch)
    size = (inputs['img_size'], ) * 2
    args = inputs['args']
    for num_stages in ks(train_io):
        model, _, states = train_forward(official, inputs, num_stages)
        cal_cfg = Config.fromfile(PAPER_MODEL).model.decode_head.loss_cal
        cal_cfg.scorer.update(arch=arch, pretrained=str(weights),
                              context_length=inputs['max_query_len'],
                              keep_eot=False)
        head = model.decode_head
        head.loss_cal = MODELS.build(cal_cfg)
        assert (head.loss_cal.pos_weight, head.loss_cal.loss_weight,
                head.loss_cls.loss_weight) == (
                    args['w1'] * args['clip_fg'], args['w5'], args['w4'])
        scorer = head.loss_cal.scorer
        # The fixture texts are token ids of a tiny vocabulary.
        scorer.tokenize = lambda ids: torch.stack(list(ids))
        images = model.calibration_images(inputs['img'])
        assert images is inputs['img']
        negatives = [list(negs) for negs in inputs['neg_word_ids']]
        phrases = inputs['llm_word_ids']
        for k, prefix in enumerate(stage_keys(train_io, num_stages)):
            own = states[k]['maps'][rows, rows][:, None]
            positive = (inputs['word_ids'] if k == num_stages - 1 else
                        phrases[:, k])
            terms = head.loss_cal(own, images, positive, negatives)
            check(prefix + 'cbs_loss',
                  terms['loss_cal_neg'] / head.loss_cal.loss_weight,
                  train_io[prefix + 'cbs_loss'])
            check(prefix + 'fg_loss', terms['loss_cal_pos'],
                  train_io[prefix + 'fg_loss'])

        samples = []
        for b in range(batch):
            sample = RISDataSample()
            sample.set_metainfo({fields.TEXT: inputs['word_ids'][b],
                                 fields.NEG_TEXTS: negatives[b]})
            samples.append(sample)
        cues = cue_sentences(model, inputs['all_word_ids'],
                             inputs['all_llm_word_ids'], num_stages)
        losses = head.loss(
            model.extract_feat(inputs['img']), cues[:batch], samples, images,
            proposals=proposal_inputs(inputs),
            partner=(cues[batch:], inputs['same_img_mark_0']),
            stage_texts=[phrases[:, k] for k in range(num_stages - 1)],
            image_size=size)
        key = f'K{num_stages}/'
        check(key + 'cbs_loss',
              losses['loss_cal_neg'] / head.loss_cal.loss_weight,
              train_io[key + 'cbs_loss'])
        check(key + 'fg_loss', losses['loss_cal_pos'],
              train_io[key + 'fg_loss'])
        released_weights = dict(loss_ras_anchor=args['w3'],
                                loss_ras_shrink=args['w2'],
                                loss_iad=args['div_loc'])
        total = sum(value * released_weights.get(name, 1)
                    for name, value in losses.items()
                    if name.startswith('loss_'))
        check(key + 'total_loss_default_weights', total,
              train_io[key + 'total_loss_default_weights'])
