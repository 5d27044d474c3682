"""MagNet components with random weights: the BERT encoder (contract,
blocks, transformers' own forward), the fusions, the tiny toy model's
predict path and tools/test.py on the toy data."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from mmwris.models.foundation import BertTextEncoder
from mmwris.models.foundation.bert import character_vocab
from mmwris.models.layers import MagNetImageFusion, MagNetTextFusion
from mmwris.registry import MODELS
from mmwris.structures import RISDataSample
from mmwris.utils import register_all_modules

register_all_modules()
TOY = osp.join(REPO, 'configs', 'magnet',
               'magnet_swin-tiny_1xb8-eval_toyrefer-128x128.py')
SMALL_BERT = dict(vocab_size=256, hidden_size=16, num_hidden_layers=4,
                  num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=32)


def gt_samples():
    """Two 128x128 training samples with rectangle GT masks (a few rows
    ignored)."""
    from mmengine.structures import PixelData
    samples = []
    for i, text in enumerate(('red circle left', 'the blue square')):
        gt = torch.zeros(1, 128, 128, dtype=torch.long)
        gt[:, 20 + 30 * i:70 + 30 * i, 30:90] = 1
        gt[:, :4] = 255
        sample = RISDataSample(metainfo=dict(
            text=text, ori_shape=(128, 128), img_shape=(128, 128)))
        sample.gt_sem_seg = PixelData(data=gt)
        samples.append(sample)
    return samples


def small_bert(**kwargs):
    torch.manual_seed(0)
    return BertTextEncoder(config=SMALL_BERT, vocab_file='chars',
                           context_length=12, block_layers=(2, 4), **kwargs)


def test_character_vocab_tokenize():
    encoder = small_bert()
    vocab = character_vocab()
    out = encoder.tokenize(['Red ox', 'a very long expression here'])
    want = [101, vocab['r'], vocab['##e'], vocab['##d'], vocab['o'],
            vocab['##x'], 102]
    assert out['ids'][0, :7].tolist() == want
    assert out['ids'][0, 7:].eq(0).all()
    assert out['mask'][0].tolist() == [True] * 7 + [False] * 5
    # Truncated to 12 ids: the [SEP] is lost (released tokenisation).
    assert out['mask'][1].all() and out['ids'][1, -1] != 102


def test_bert_encoder_matches_transformers_forward():
    """Block by block through the layers' own modules = transformers'
    BertModel forward with the same -10000 extended mask."""
    encoder = small_bert().eval()
    tokens = encoder.tokenize(['left zebra', 'the big blue one'])
    out = encoder(tokens)
    assert out['tokens'].shape == (2, 12, 16)
    assert out['sentence'].shape == (2, 16) and encoder.embed_dim == 16
    assert out['mask'].dtype == torch.bool
    with torch.no_grad():
        words = encoder.embeddings(input_ids=tokens['ids'])
        ext = (1.0 - tokens['mask'][:, None, None].float()) * -10000.0
        for layer in encoder.encoder.layer:
            words = layer(words, ext)
    torch.testing.assert_close(out['tokens'], words, atol=1e-5, rtol=1e-5)


def test_bert_block_layers_checked():
    with pytest.raises(ValueError):
        BertTextEncoder(config=SMALL_BERT, block_layers=(2, 3))


def test_fusions_start_switched_off():
    """Zero-initialised tanh gates: at initialisation the gated map equals
    the input and the words pass unchanged."""
    torch.manual_seed(0)
    image = MagNetImageFusion(8, 16)
    text = MagNetTextFusion(16, 8)
    visual, words = torch.randn(2, 8, 5, 5), torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    feature, gated = image(visual, words, mask)
    assert feature.shape == visual.shape
    torch.testing.assert_close(gated, visual)
    torch.testing.assert_close(text(words, visual, mask), words)


def test_text_fusion_mask_modes():
    """'released': real tokens' queries are zeroed (uniform attention);
    'standard' keeps them, so the residuals differ."""
    torch.manual_seed(0)
    released = MagNetTextFusion(16, 8, mask_mode='released')
    standard = MagNetTextFusion(16, 8, mask_mode='standard')
    standard.load_state_dict(released.state_dict())
    visual, words = torch.randn(1, 8, 4, 4), torch.randn(1, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    assert not torch.allclose(released.pwam(words, visual.flatten(2).mT,
                                            mask),
                              standard.pwam(words, visual.flatten(2).mT,
                                            mask))
    with pytest.raises(ValueError):
        MagNetTextFusion(16, 8, mask_mode='other')


def test_toy_model_predicts_masks():
    cfg = Config.fromfile(TOY)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    samples = []
    for text, ori in (('red circle left', (90, 70)),
                      ('the blue square', (128, 128))):
        samples.append(RISDataSample(metainfo=dict(
            text=text, ori_shape=ori, img_shape=(128, 128),
            batch_input_shape=(128, 128), pad_shape=(128, 128),
            padding_size=[0, 0, 0, 0])))
    inputs = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        response = model.predict_response(inputs, samples)
        assert response.shape == (2, 1, 32, 32)
        out = model.predict(inputs, samples)
    assert out[0].pred_sem_seg.data.shape == (1, 90, 70)
    assert out[1].seg_logits.data.min() >= 0  # sigmoid


def test_tools_test_on_toy_data(toy_refer_root, tmp_path):
    from test_tools import read_metrics, run
    run([sys.executable, 'tools/test.py', TOY, '--work-dir',
         str(tmp_path / 'wd'), '--cfg-options',
         f'test_dataloader.dataset.data_root={toy_refer_root}'])
    metrics = read_metrics(tmp_path / 'wd')
    for split in ('val', 'testA', 'testB'):
        for name in ('mIoU', 'oIoU', 'Prec@0.5'):
            assert 0 <= metrics[f'{split}/{name}'] <= 100


def test_head_losses_and_gradients():
    """Deep-supervised mask BCE + dice + class term; every trainable
    parameter receives a gradient (DDP needs none unused)."""
    cfg = Config.fromfile(TOY)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    losses = model.loss(torch.randn(2, 3, 128, 128), gt_samples())
    layers = cfg.model.decode_head.predictor.num_layers
    for name in ('loss_mask', 'loss_dice', 'loss_cls'):
        assert name in losses
        assert all(f'{name}_d{k}' in losses for k in range(layers))
        assert f'{name}_d{layers}' not in losses
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert missing == []


def test_tools_train_on_toy_data(toy_refer_root, tmp_path):
    from test_tools import run
    config = TOY.replace('1xb8-eval', '1xb8-2k')
    run([sys.executable, 'tools/train.py', config, '--work-dir',
         str(tmp_path / 'wd'), '--cfg-options', 'train_cfg.max_iters=2',
         'train_cfg.val_interval=10', 'train_dataloader.batch_size=2',
         f'train_dataloader.dataset.data_root={toy_refer_root}',
         f'val_dataloader.dataset.data_root={toy_refer_root}'])
    assert osp.isfile(tmp_path / 'wd' / 'iter_2.pth')


def test_dice_loss_hand_computed():
    """p = sigmoid(0) = 0.5 on 4 valid pixels, 2 of them positive, one
    pixel ignored: 1 - (2 * 1 + 1) / (2 + 2 + 1) = 0.4."""
    from mmwris.models.losses import MaskDiceLoss
    logits = torch.zeros(1, 1, 5)
    target = torch.tensor([[[1, 1, 0, 0, 255]]])
    loss = MaskDiceLoss(loss_weight=2.0)(logits[:, 0], target[:, 0])
    assert float(loss) == pytest.approx(2 * 0.4)


def test_mask_tokens():
    from mmwris.models.layers import mask_tokens
    ids = torch.tensor([[101, 5, 6, 7, 102, 0], [101, 8, 102, 0, 0, 0]])
    mask = ids != 0
    gen = torch.Generator().manual_seed(0)
    corrupted, labels = mask_tokens(ids, mask, 0.0, 103, generator=gen,
                                    replace=(1.0, 0.0))
    # ratio 0: still one word per expression, never a special token.
    assert (labels != -100).sum(1).tolist() == [1, 1]
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen])
    assert (corrupted[chosen] == 103).all()
    assert torch.equal(corrupted[~chosen], ids[~chosen])
    assert not chosen[:, 0].any() and not (ids[chosen] == 102).any()
    _, labels = mask_tokens(ids, mask, 1.0, 103, generator=gen)
    assert torch.equal(labels != -100, mask & (ids != 101) & (ids != 102))


def test_mask_grounding_and_alignment_losses():
    """The full training config: segmentation, alignment (p2t, p2p) and
    Mask Grounding losses; the last text fusion trains again."""
    cfg = Config.fromfile(TOY.replace('1xb8-eval', '1xb8-2k'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    losses = model.loss(torch.randn(2, 3, 128, 128), gt_samples())
    for name in ('loss_align_p2t', 'loss_align_p2p', 'loss_mg', 'acc_mg'):
        assert name in losses and torch.isfinite(losses[name])
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert missing == []
    assert model.text_fusions[-1].gate[0].weight.requires_grad


def test_alignment_loss_prefers_aligned_features():
    """Pixels whose features point to the sentence on the target and away
    elsewhere score lower than the reverse."""
    from mmwris.models.losses import CrossModalAlignmentLoss
    loss = CrossModalAlignmentLoss(pixel_channels=2, text_channels=2,
                                   embed_dims=2)
    with torch.no_grad():
        loss.pixel_proj.weight.copy_(torch.eye(2)[..., None, None])
        loss.pixel_proj.bias.zero_()
        loss.text_proj.weight.copy_(torch.eye(2))
        loss.text_proj.bias.zero_()
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[:, :2] = 1
    sentence = torch.tensor([[1.0, 0.0]])
    aligned = torch.zeros(1, 2, 4, 4)
    aligned[:, 0, :2], aligned[:, 1, 2:] = 1, 1
    reverse = aligned.flip(1)
    good, bad = loss(aligned, sentence, target), loss(reverse, sentence,
                                                      target)
    assert good['loss_align_p2t'] < bad['loss_align_p2t']
    # Pixel to pixel: target pixels that look like the background (one
    # target row flipped) are penalised.
    mixed = aligned.clone()
    mixed[:, :, 0] = reverse[:, :, 0]
    assert good['loss_align_p2p'] < 0.01
    assert loss(mixed, sentence, target)['loss_align_p2p'] > 1.0


def test_bert_weights_from_a_hf_style_file(tmp_path):
    """A ``bert.``-prefixed checkpoint with the old LayerNorm gamma/beta
    names, a pooler and pre-training heads loads strictly; a wrong size is
    named in the error."""
    source = small_bert()
    state = {}
    for key, value in source.state_dict().items():
        key = key.replace('LayerNorm.weight', 'LayerNorm.gamma').replace(
            'LayerNorm.bias', 'LayerNorm.beta')
        state['bert.' + key] = value.clone()
    state['bert.pooler.dense.weight'] = torch.zeros(16, 16)
    state['cls.predictions.bias'] = torch.zeros(256)
    state['bert.embeddings.position_ids'] = torch.arange(32)[None]
    path = tmp_path / 'pytorch_model.bin'
    torch.save(state, path)
    torch.manual_seed(1)
    loaded = BertTextEncoder(config=SMALL_BERT, pretrained=str(path),
                             block_layers=(2, 4))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(RuntimeError, match='shape mismatches 1'):
        BertTextEncoder(config=dict(SMALL_BERT, intermediate_size=8),
                        pretrained=str(path), block_layers=(2, 4))
