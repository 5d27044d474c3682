"""The speed options give the same results (no timing here).

channels-last memory format, token ids packed by the data pipeline,
the ``tools/train.py`` switch (bf16 ``AmpOptimWrapper``, channels-last,
TF32, compile), the bf16 frozen CLIP scorer and the batched metrics.
"""
import importlib.util
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.structures import SegDataSample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RN_ARCH = dict(
    embed_dim=64,
    vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=128),
    text_cfg=dict(
        context_length=20, vocab_size=49408, width=64, heads=2, layers=2))
PREPROCESSOR = dict(
    type='SegDataPreProcessor',
    mean=[122.7709, 116.7460, 104.0937],
    std=[68.5005, 66.6322, 70.3232],
    bgr_to_rgb=True)
TEXTS = ['the man in the red shirt on the left', 'a small dog', 'blue car']


def tris(**train_cfg):
    from mmwris.registry import MODELS
    from mmwris.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='TRISSegmentor',
        data_preprocessor=PREPROCESSOR,
        image_encoder=dict(type='CLIPVisionEncoder', arch=RN_ARCH),
        text_encoder=dict(type='CLIPTextEncoder', arch=RN_ARCH),
        decode_head=dict(type='TRISHead', in_channels=512, text_channels=64,
                         channels=32),
        train_cfg=train_cfg))


def samples(texts=TEXTS, size=(64, 64)):
    out = []
    for text in texts:
        sample = SegDataSample()
        sample.set_metainfo(dict(text=text, neg_texts=[], img_shape=size,
                                 ori_shape=size))
        out.append(sample)
    return out


def load_train_tool():
    spec = importlib.util.spec_from_file_location(
        'mmwris_train_tool', os.path.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_channels_last_same_outputs_and_gradients():
    inputs = torch.randn(3, 3, 64, 64)
    ref, fast = tris(), tris(channels_last=True)
    fast.load_state_dict(ref.state_dict())
    for model in (ref, fast):
        model.train()
    losses = [m(inputs, samples(), mode='loss') for m in (ref, fast)]
    torch.testing.assert_close(losses[1]['loss_cls'], losses[0]['loss_cls'],
                               rtol=1e-4, atol=1e-5)
    for loss in losses:
        loss['loss_cls'].backward()
    conv = fast.image_encoder.visual.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    # Another summation order: equal up to float32 rounding of the sums.
    ref_grad = ref.image_encoder.visual.conv1.weight.grad
    torch.testing.assert_close(conv.grad, ref_grad, rtol=0,
                               atol=1e-3 * ref_grad.abs().max().item())
    for model in (ref, fast):
        model.eval()
    with torch.no_grad():
        maps = [m(inputs, samples(), mode='tensor') for m in (ref, fast)]
    torch.testing.assert_close(maps[1], maps[0], rtol=1e-4, atol=1e-5)


def test_pack_tokenize_matches_model_tokenisation():
    from mmwris.datasets.transforms import PackRISInputs
    from mmwris.models.foundation.clip import clip_token_ids
    pack = PackRISInputs(tokenize=dict(context_length=20, keep_eot=True))
    packed = []
    for text in TEXTS:
        results = dict(img=np.zeros((64, 64, 3), np.uint8), text=text,
                       img_shape=(64, 64), ori_shape=(64, 64))
        packed.append(pack(results)['data_samples'])
    ids, mask = clip_token_ids(TEXTS, 20)
    torch.testing.assert_close(torch.stack([s.text_ids for s in packed]),
                               ids)
    torch.testing.assert_close(torch.stack([s.text_mask for s in packed]),
                               mask)

    model = tris().eval()
    tokens = model.tokens_of(packed)
    assert tokens is not None
    inputs = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        with_ids = model(inputs, packed, mode='tensor')
        without = model(inputs, samples(), mode='tensor')
    torch.testing.assert_close(with_ids, without)
    # Another context length than the encoder's: the model tokenises.
    short = PackRISInputs(tokenize=dict(context_length=8))
    results = dict(img=np.zeros((64, 64, 3), np.uint8), text=TEXTS[0],
                   img_shape=(64, 64), ori_shape=(64, 64))
    assert model.tokens_of([short(results)['data_samples']]) is None
    # Another truncation rule than the encoder's: the model tokenises.
    released = PackRISInputs(tokenize=dict(context_length=20,
                                           keep_eot=False))
    assert model.tokens_of([released(results)['data_samples']]) is None
    with pytest.raises(ValueError):
        PackRISInputs(tokenize=dict(keep_eot=False))


def test_workers_pack_the_bpe_ids_of_every_text_and_prime_the_cache():
    from mmwris.datasets.transforms import PackRISInputs
    from mmwris.models.foundation.clip import (BPECache, bpe_tokenizer,
                                               bpe_word_ids, clip_token_ids)
    pack = PackRISInputs(tokenize=dict(context_length=20))
    results = dict(img=np.zeros((64, 64, 3), np.uint8), text=TEXTS[0],
                   neg_texts=TEXTS[1:], phrases=['the man', 'red shirt'],
                   partner_text='a zebra far away', img_shape=(64, 64),
                   ori_shape=(64, 64))
    sample = pack(results)['data_samples']
    packed = sample.metainfo['bpe_word_ids']
    assert set(packed) == set(TEXTS) | {'the man', 'red shirt',
                                        'a zebra far away'}
    for text, ids in packed.items():
        assert ids == tuple(bpe_tokenizer().encode(text))
    # The forward primes the process's cache: no BPE work for any text.
    bpe_word_ids.clear()
    model = tris().eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64), [sample], mode='tensor')
    assert bpe_word_ids.misses == 0 and len(bpe_word_ids) == len(packed)
    ids, mask = clip_token_ids(TEXTS[1:], 20)
    assert bpe_word_ids.misses == 0 and bpe_word_ids.hits == 2
    # Token ids (and their padding mask) as open_clip's tokenizer gives.
    from open_clip.tokenizer import tokenize
    torch.testing.assert_close(ids, tokenize(TEXTS[1:], 20))
    assert mask.tolist() == (ids > 0).tolist()
    # Least recently used texts go first.
    small = BPECache(maxsize=2)
    small('a'), small('b'), small('a'), small('c')
    assert set(small._ids) == {'a', 'c'} and small.misses == 3
    empty, empty_mask = clip_token_ids([], 20)
    assert empty.shape == empty_mask.shape == (0, 20)


def test_train_switch_sets_bf16_amp_channels_last_compile():
    tool = load_train_tool()
    cfg = Config.fromfile(os.path.join(
        REPO, 'configs/tris/tris_clip-r50_1xb48-15e_refcoco-unc-320x320.py'))
    tool.apply_performance_options(cfg, amp=True, channels_last=True,
                                   tf32=True, compile=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.model.train_cfg.channels_last is True
    assert cfg.tf32 is True and cfg.compile is True
    fp16 = Config.fromfile(os.path.join(
        REPO, 'configs/tris/tris_clip-r50_1xb48-15e_refcoco-unc-320x320.py'))
    tool.apply_performance_options(fp16, amp=True, amp_dtype='float16')
    assert fp16.optim_wrapper.loss_scale == 'dynamic'
    if torch.cuda.is_available():
        from mmengine.optim import build_optim_wrapper
        wrapper = build_optim_wrapper(torch.nn.Linear(2, 2),
                                      cfg.optim_wrapper)
        assert type(wrapper).__name__ == 'AmpOptimWrapper'
        assert wrapper.cast_dtype == torch.bfloat16


def pack_steps(node):
    """Every PackRISInputs step in a loader config, nested sources too."""
    if isinstance(node, dict):
        steps = [step for step in node.get('pipeline') or []
                 if step.get('type') == 'PackRISInputs']
        return steps + [s for value in node.values()
                        for s in pack_steps(value)]
    if isinstance(node, (list, tuple)):
        return [s for value in node for s in pack_steps(value)]
    return []


@pytest.mark.parametrize('config, keep_eot', [
    ('configs/tris/tris_clip-r50_1xb48-15e_refcoco-unc-320x320.py', False),
    ('configs/ppt/ppt_clip-r50-sam-vit-h_1xb16-40k_refcoco-unc-320x320.py',
     True)])
def test_tokenize_in_workers_matches_the_text_encoder(config, keep_eot):
    tool = load_train_tool()
    cfg = Config.fromfile(os.path.join(REPO, config))
    cfg.model.text_encoder.keep_eot = keep_eot
    loaders = [cfg[name] for name in ('train_dataloader', 'val_dataloader',
                                      'test_dataloader')]
    before = sum(len(pack_steps(loader)) for loader in loaders)
    assert before >= 3
    tool.apply_performance_options(cfg, tokenize_in_workers=True)
    steps = [s for loader in loaders for s in pack_steps(loader)]
    assert len(steps) == before
    length = cfg.model.text_encoder.context_length
    assert all(s.tokenize == dict(context_length=length, keep_eot=keep_eot)
               for s in steps)


def test_tokenize_in_workers_leaves_bert_models_alone():
    tool = load_train_tool()
    cfg = Config.fromfile(os.path.join(
        REPO, 'configs/magnet/magnet_swin-b_4xb8-40e_refcoco-unc-480x480.py'))
    assert tool.pack_clip_token_ids(cfg) == 0
    # A model whose text encoder is not CLIP's never reads packed ids.
    from mmwris.datasets.transforms import PackRISInputs
    pack = PackRISInputs(tokenize=dict(context_length=20))
    results = dict(img=np.zeros((64, 64, 3), np.uint8), text=TEXTS[0],
                   img_shape=(64, 64), ori_shape=(64, 64))
    model = tris()
    sample = pack(results)['data_samples']
    assert model.tokens_of([sample]) is not None
    model.text_encoder.reads_packed_clip_ids = False
    assert model.tokens_of([sample]) is None


def test_paper_loaders_pin_memory_toy_loaders_no_workers():
    paper = Config.fromfile(os.path.join(
        REPO, 'configs/tris/tris_clip-r50_1xb48-15e_refcoco-unc-320x320.py'))
    for loader in (paper.train_dataloader, paper.val_dataloader):
        assert loader.num_workers > 0 and loader.persistent_workers
        assert loader.pin_memory
    toy = Config.fromfile(os.path.join(REPO,
                                       'configs/_base_/datasets/toy_refer.py'))
    assert toy.train_dataloader.num_workers == 0


def test_bf16_scorer_close_to_float32_and_passes_gradient():
    from mmwris.models.foundation.clip_scorer import FrozenCLIPScorer
    arch = dict(
        embed_dim=32,
        vision_cfg=dict(layers=1, width=64, patch_size=16, image_size=64,
                        head_width=32),
        text_cfg=dict(context_length=20, vocab_size=49408, width=64,
                      heads=1, layers=1))
    torch.manual_seed(0)
    ref = FrozenCLIPScorer(arch)
    bf16 = FrozenCLIPScorer(arch, dtype='bfloat16')
    bf16.clip.load_state_dict(ref.clip.state_dict())
    assert next(bf16.clip.parameters()).dtype == torch.bfloat16
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    out = bf16.encode_image(images)
    assert out.dtype == torch.float32
    cos = (out * ref.encode_image(images)).sum(-1)
    assert (cos > 0.99).all()
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    text = bf16.encode_text(TEXTS[:2])
    assert text.dtype == torch.float32
    assert ((text * ref.encode_text(TEXTS[:2])).sum(-1) > 0.99).all()


def test_binary_tris_boxes_match_the_colour_map_path():
    from mmwris.evaluation.functional import tris_generate_boxes
    rng = np.random.default_rng(0)
    for trial in range(6):
        mask = np.zeros((61, 83), bool)
        for _ in range(1 + trial):
            y, x = rng.integers(0, 50), rng.integers(0, 70)
            mask[y:y + rng.integers(2, 12), x:x + rng.integers(2, 14)] = True
        fast = tris_generate_boxes(mask)
        slow = tris_generate_boxes(mask.astype(np.float64))
        np.testing.assert_array_equal(fast, slow)
    for constant in (np.zeros((9, 9), bool), np.ones((9, 9), bool)):
        np.testing.assert_array_equal(
            tris_generate_boxes(constant),
            tris_generate_boxes(constant.astype(np.float64)))


def test_keep_freed_memory_in_a_subprocess():
    """glibc takes the CPU memory setting (in a child: it is process-wide)."""
    import subprocess
    import sys
    code = ('import importlib.util, sys; spec = importlib.util.'
            'spec_from_file_location("t", sys.argv[1]); m = importlib.util.'
            'module_from_spec(spec); spec.loader.exec_module(m); '
            'print(m.keep_freed_memory())')
    out = subprocess.run(
        [sys.executable, '-c', code, os.path.join(REPO, 'tools', 'train.py')],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] in ('True', 'False')
    if sys.platform.startswith('linux'):
        assert out.stdout.strip().splitlines()[-1] == 'True'
