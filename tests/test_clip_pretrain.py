"""Tiny CLIP pretraining through the runner (configs/pretrain/clip-tiny_*):
the loss across ranks, the caption data, the zero-shot metric, learning,
and the export that ``pretrained=`` loads where CLIP weights load."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from conftest import REPO
from toy_world import CLIP_CONFIG, load_tool
from toy_world import pretrained_tiny_clip  # noqa: F401

export = load_tool('model_converters', 'export_clip.py')
TRIS_TINY = osp.join(REPO, 'configs', 'tris',
                     'tris_clip-tiny_1xb32-3k_toyrefer-128x128.py')
# Zero-shot accuracy over the 20 shape-colour classes (chance 5 %) after the
# fixture's 50 iterations of batch 32: 35.5 % (its corpus seed 5); 32.5,
# 23.5 and 31.5 % with corpus seeds 6, 7 and 8 (docs/toy_world.md).
MIN_ZERO_SHOT_ACC = 15.0


def build_pretrainer(**kwargs):
    from mmwris.registry import MODELS

    cfg = Config.fromfile(CLIP_CONFIG)
    cfg.model.update(kwargs)
    return MODELS.build(cfg.model)


def caption_samples(texts):
    from mmwris.structures import RISDataSample

    return [RISDataSample(metainfo=dict(text=t)) for t in texts]


def test_config_is_the_toy_clip_with_open_clip_loss():
    cfg = Config.fromfile(CLIP_CONFIG)
    tris = Config.fromfile(TRIS_TINY)
    assert cfg.model.arch == tris.model.image_encoder.arch
    assert cfg.model.data_preprocessor.mean == tris.data_preprocessor.mean
    assert cfg.model.local_loss and cfg.model.gather_with_grad
    assert len(cfg.model.zero_shot_classes) == 20
    assert cfg.train_dataloader.batch_size == 64


def _two_rank_worker(rank, init_file, images, texts, out_file):
    import torch.distributed as dist

    from mmwris.utils import register_all_modules
    register_all_modules()  # a spawned process starts without the registry
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    torch.manual_seed(0)
    model = build_pretrainer().eval()
    rows = slice(rank * 4, rank * 4 + 4)
    loss = model.loss(images[rows], caption_samples(texts[rows]))['loss_clip']
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()
                       if p.grad is not None])
    dist.all_reduce(grads)  # what DDP does (then / world size)
    dist.all_reduce(loss.detach())
    if rank == 0:
        torch.save(dict(grads=grads / 2, loss=loss.detach() / 2), out_file)
    dist.destroy_process_group()


def test_two_ranks_train_as_one_batch(tmp_path):
    """open_clip's ClipLoss with local_loss and gather_with_grad over 2 gloo
    ranks of 4 pairs: after DDP's gradient averaging, the loss and every
    gradient are those of one process with the 8 pairs (BatchNorm in eval
    mode, whose batch statistics would differ per rank)."""
    import torch.multiprocessing as mp

    torch.manual_seed(1)
    images = torch.randn(8, 3, 128, 128)
    texts = [f'a {c} {s}' for c in ('red', 'blue') for s in
             ('circle', 'square', 'triangle', 'plus')]
    mp.start_processes(
        _two_rank_worker, nprocs=2, start_method='spawn',
        args=(str(tmp_path / 'init'), images, texts,
              str(tmp_path / 'rank0.pth')))
    torch.manual_seed(0)
    model = build_pretrainer().eval()
    loss = model.loss(images, caption_samples(texts))['loss_clip']
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()
                       if p.grad is not None])
    two = torch.load(tmp_path / 'rank0.pth')
    torch.testing.assert_close(two['loss'], loss.detach())
    torch.testing.assert_close(two['grads'], grads, rtol=1e-4, atol=1e-6)


def test_loss_is_open_clip_cross_entropy_at_the_learned_temperature():
    torch.manual_seed(0)
    model = build_pretrainer().eval()
    with torch.no_grad():
        model.clip.logit_scale.fill_(np.log(200.0))  # above the clamp
    images = torch.randn(3, 3, 128, 128)
    texts = ['a red circle', 'a blue cross', 'a small green box']
    losses = model.loss(images, caption_samples(texts))
    image_embeds = model.encode_image(images)
    text_embeds = model.encode_text(texts)
    logits = 100.0 * image_embeds @ text_embeds.T
    target = torch.arange(3)
    expected = (F.cross_entropy(logits, target) +
                F.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(losses['loss_clip'], expected)
    assert losses['logit_scale'] == 100.0
    assert model.clip.logit_scale.requires_grad


def test_caption_dataset_reads_and_checks_the_csv(tmp_path):
    from mmwris.datasets import CaptionDataset

    (tmp_path / 'pairs.csv').write_text(
        'filepath\ttitle\tlabel\nimages/a.png\ta red circle\tred circle\n'
        '/abs/b.png\tA blue box.\tblue square\n')
    classes = ('red circle', 'blue square')
    dataset = CaptionDataset(
        ann_file='pairs.csv', data_root=str(tmp_path), lazy_init=False,
        metainfo=dict(classes=classes), serialize_data=False)
    infos = [dataset.get_data_info(i) for i in range(2)]
    assert infos[0]['img_path'] == osp.join(str(tmp_path), 'images/a.png')
    assert infos[1]['img_path'] == '/abs/b.png'
    assert [i['text'] for i in infos] == ['a red circle', 'A blue box.']
    assert [i['category_id'] for i in infos] == [0, 1]
    with pytest.raises(ValueError, match="label 'red circle' is not one of"):
        CaptionDataset(ann_file='pairs.csv', data_root=str(tmp_path),
                       metainfo=dict(classes=('green plus', )))
    with pytest.raises(ValueError, match=r"no column\(s\) \['caption'\]"):
        CaptionDataset(ann_file='pairs.csv', data_root=str(tmp_path),
                       caption_key='caption')


def test_retrieval_metric_by_hand():
    """Four pairs; captions 0 and 1 say the same. Image 0 ranks caption 1
    first (a hit: same caption), image 2 ranks caption 3 first (a miss)."""
    from mmwris.evaluation.metrics import CLIPRetrievalMetric

    eye = torch.eye(4)
    images = eye[[1, 1, 3, 3]]  # image i is most similar to text row
    texts = eye.clone()
    captions = ['a red circle', 'A red circle.', 'a blue box', 'a plus']
    scores = torch.tensor([[1., 0], [1, 0], [0, 1], [1, 0]])
    metric = CLIPRetrievalMetric(topk=(1, 2))
    metric.process({}, [
        dict(image_embed=images[i], text_embed=texts[i], text=captions[i],
             class_scores=scores[i], category_id=[0, 0, 1, 1][i])
        for i in range(4)])
    result = metric.evaluate(4)
    # i2t: images 0, 1 -> text 1 (hit, hit), image 2 -> text 3 (miss),
    # image 3 -> text 3 (hit).
    assert result['clip/i2t_R@1'] == 75.0
    # t2i: texts 0, 1 -> images 0/1 tie (hit); text 2 -> column of zeros,
    # topk picks image 0 (miss); text 3 -> image 2 or 3 (tie, 2 first:
    # miss).
    assert result['clip/t2i_R@1'] == 50.0
    assert result['clip/chance_R@1'] == pytest.approx(37.5)
    # R@2 of a random ranking: 1 - (2/4)(1/3) for the pairs 0, 1 and
    # 1 - (3/4)(2/3) for 2, 3.
    assert result['clip/chance_R@2'] == pytest.approx(
        100 * ((1 - 1 / 6) + (1 - 1 / 2)) / 2)
    assert result['clip/acc'] == 75.0 and result['clip/chance_acc'] == 50.0


def test_export_cli_keeps_the_clip_weights_only(tmp_path, monkeypatch,
                                                capsys):
    """``clip.*`` keys (also under DDP's ``module.``) lose their prefix;
    the data preprocessor's buffers and the runner's extras are dropped."""
    from mmwris.models.foundation import read_state_dict

    path, out = str(tmp_path / 'iter_1.pth'), str(tmp_path / 'clip.pth')
    torch.save({'meta': {'iter': 1}, 'state_dict': {
        'clip.logit_scale': torch.tensor(2.0),
        'module.clip.visual.conv1.weight': torch.ones(2, 3),
        'data_preprocessor.mean': torch.zeros(3)}}, path)
    monkeypatch.setattr('sys.argv', ['export_clip.py', path, out])
    export.main()
    assert 'Wrote 2 tensors' in capsys.readouterr().out
    state_dict, _ = read_state_dict(out)
    assert sorted(state_dict) == ['logit_scale', 'visual.conv1.weight']
    assert state_dict['logit_scale'] == 2.0


def test_export_rejects_other_checkpoints(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {'backbone.conv.weight': torch.ones(1)}}, path)
    with pytest.raises(KeyError, match='not a CLIPPretrainer checkpoint'):
        export.export_clip(path, str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def test_pretraining_learns_zero_shot(pretrained_tiny_clip):
    """The runner's evaluation of the briefly pretrained CLIP on held-out
    pairs: zero-shot classification and retrieval well above chance (R@5
    measured 4.1 to 7.2 times chance over corpus seeds 5 to 8)."""
    metrics = pretrained_tiny_clip.metrics
    assert metrics['clip/chance_acc'] == 5.0
    assert metrics['clip/acc'] >= MIN_ZERO_SHOT_ACC, metrics
    assert metrics['clip/i2t_R@5'] >= 3 * metrics['clip/chance_R@5'], metrics
    assert metrics['clip/t2i_R@5'] >= 3 * metrics['clip/chance_R@5'], metrics


def _val_images_and_labels(captions_root):
    """The held-out images (RGB in [0, 1], 128x128) and label names."""
    import csv

    with open(osp.join(captions_root, 'captions_val.csv')) as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
    images = []
    for row in rows:
        img = cv2.imread(osp.join(captions_root, row['filepath']))
        img = cv2.resize(img[:, :, ::-1], (128, 128),
                         interpolation=cv2.INTER_LINEAR)
        images.append(torch.from_numpy(img.copy()).permute(2, 0, 1))
    return torch.stack(images).float() / 255, [r['label'] for r in rows]


def test_export_loads_strictly_where_clip_weights_load(pretrained_tiny_clip):
    """The export is a plain open_clip state dict: the tiny TRIS towers
    load it strictly through pretrained= (the very tensors), and the
    FrozenCLIPScorer built on it classifies the held-out images as the
    runner measured; another architecture is refused."""
    from mmwris.models.foundation import FrozenCLIPScorer, read_state_dict
    from mmwris.models.pretrain.clip_pretrainer import PROMPT_TEMPLATES
    from mmwris.registry import MODELS

    weights, arch = pretrained_tiny_clip.weights, pretrained_tiny_clip.arch
    state_dict, _ = read_state_dict(weights)
    cfg = Config.fromfile(TRIS_TINY)
    cfg.model.image_encoder.pretrained = weights
    cfg.model.text_encoder.pretrained = weights
    tris = MODELS.build(cfg.model)
    own = tris.state_dict()
    torch.testing.assert_close(own['image_encoder.visual.conv1.weight'],
                               state_dict['visual.conv1.weight'])
    torch.testing.assert_close(own['text_encoder.token_embedding.weight'],
                               state_dict['token_embedding.weight'])

    scorer = FrozenCLIPScorer(arch=arch, pretrained=weights)
    images, labels = _val_images_and_labels(
        pretrained_tiny_clip.captions_root)
    classes = Config.fromfile(CLIP_CONFIG).model.zero_shot_classes
    prompts = [t.format(c) for c in classes for t in PROMPT_TEMPLATES]
    with torch.no_grad():
        class_embeds = F.normalize(scorer.encode_text(prompts).view(
            len(classes), len(PROMPT_TEMPLATES), -1).mean(1), dim=-1)
        predicted = (scorer.encode_image(images) @ class_embeds.T).argmax(1)
    accuracy = 100 * np.mean([classes[int(p)] == label
                              for p, label in zip(predicted, labels)])
    # The same CLIP; only the resizing of the inputs differs a little.
    assert abs(accuracy - pretrained_tiny_clip.metrics['clip/acc']) <= 5.0
    assert accuracy >= MIN_ZERO_SHOT_ACC - 5.0

    wrong = dict(arch, embed_dim=32)
    with pytest.raises(RuntimeError, match='shape mismatches'):
        FrozenCLIPScorer(arch=wrong, pretrained=weights)
