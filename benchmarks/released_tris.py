"""Build the released TRIS step-1 model (fawnliu/TRIS) from a checkout.

Used by the benchmarks only: the checkout is imported at run time from the
path given on the command line and is never copied into this repository.
The run-time patches only make it importable and buildable without
downloads or a GPU (the same as the parity fixtures,
``/work/shared/fixtures/official/tris/README.md`` section 2):

* ``pkg_resources.packaging`` (gone from recent setuptools) and ``turtle``
  (``model/attn.py`` imports an unused name from it) are stubbed if missing;
* ``clip.load`` builds the released ``CLIP`` class with the OpenAI RN50
  configuration and random weights (no file, no download).
"""
import argparse
import os
import sys
import types
from typing import Tuple

import torch

# OpenAI RN50 (what the released clip.load('RN50') builds from its file).
RN50 = dict(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3),
            vision_width=64, vision_patch_size=None, context_length=77,
            vocab_size=49408, transformer_width=512, transformer_heads=8,
            transformer_layers=12)


def _stub_imports() -> None:
    try:
        from pkg_resources import packaging  # noqa: F401
    except ImportError:
        import packaging
        import packaging.version
        module = types.ModuleType('pkg_resources')
        module.packaging = packaging
        sys.modules['pkg_resources'] = module
    try:
        import turtle  # noqa: F401
    except ImportError:
        module = types.ModuleType('turtle')
        module.forward = None
        sys.modules['turtle'] = module


def import_released(path: str):
    """``(model_stage1 module, clip package)`` of the checkout at ``path``."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, 'model', 'model_stage1.py')):
        raise FileNotFoundError(
            f'{path} is not a checkout of fawnliu/TRIS '
            '(model/model_stage1.py is missing).')
    _stub_imports()
    if path not in sys.path:
        sys.path.insert(0, path)
    import CLIP.clip as clip
    from CLIP.clip import model as clip_model
    import model.model_stage1 as model_stage1

    def load(name, device='cpu', jit=False, txt_length=77, **kwargs):
        model = clip_model.CLIP(txt_length=txt_length, **RN50)
        return model.float().to(device), None

    clip.load = load
    model_stage1.clip.load = load
    return model_stage1, clip


def released_args(**overrides) -> argparse.Namespace:
    """The released ``args.py`` defaults of ``scripts/train_stage1.sh``."""
    args = dict(bert_tokenizer='clip', backbone='clip-RN50', max_query_len=20,
                hidden_dim=1024, attn_multi=0.1, FOCAL_P=3, FOCAL_LAMBDA=0.01,
                lr=5e-5, lr_multi=0.1, weight_decay=1e-2)
    args.update(overrides)
    return argparse.Namespace(**args)


def build_released_step1(path: str, device: str = 'cpu'
                         ) -> Tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The released step-1 ``TRIS`` (random weights) and its AdamW with the
    released parameter groups (backbone lr x ``lr_multi``)."""
    model_stage1, _ = import_released(path)
    args = released_args()
    model = model_stage1.TRIS(args).to(device)
    backbone, new = model.trainable_parameters()
    optimizer = torch.optim.AdamW([
        dict(params=backbone, lr=args.lr * args.lr_multi,
             weight_decay=args.weight_decay),
        dict(params=new, lr=args.lr, weight_decay=args.weight_decay),
    ], lr=args.lr, weight_decay=args.weight_decay)
    return model, optimizer


def released_step(model, optimizer, images: torch.Tensor,
                  word_ids: torch.Tensor) -> torch.Tensor:
    """One released step-1 training step with the calibration off: the body
    of ``train_stage1.train_one_epoch`` (forward, ``multilabel_soft_margin``
    classification loss, weight ``w4`` = 5, backward, AdamW)."""
    import torch.nn.functional as F
    cls, _, _, _, _ = model(images, word_ids)
    labels = torch.eye(images.shape[0], device=images.device)
    loss = F.multilabel_soft_margin_loss(cls, labels) * 5.0
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()
