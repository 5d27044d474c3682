"""CLIP image and text towers built with open_clip, weights from local files.

Nothing here downloads: an architecture is built from open_clip's bundled
configs (or from explicit ``open_clip.model.CLIP`` kwargs) and weights come
only from the file given as ``pretrained``.
"""
import copy
from collections import OrderedDict
import logging
import warnings
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmwris.registry import MODELS
from ..utils.staged_encoder import StagedEncoder
from .checkpoint import load_weights_strict
from .text_encoder import BaseTextEncoder

ArchType = Union[str, dict]

# Keys of OpenAI's TorchScript checkpoints that are not parameters.
_OPENAI_EXTRA_KEYS = ('input_resolution', 'context_length', 'vocab_size')


def load_clip_weights(model: nn.Module, path: str) -> None:
    """Load ``path`` into ``model`` strictly, explaining any mismatch.

    Plain, wrapped and OpenAI TorchScript files are read (see
    :func:`load_weights_strict`); BatchNorm ``num_batches_tracked``
    counters are not required.
    """
    from open_clip.transformer import QuickGELU

    scripted = load_weights_strict(
        model, path, 'CLIP', allow_torchscript=True,
        drop_keys=_OPENAI_EXTRA_KEYS,
        optional_suffixes=('num_batches_tracked', ))
    if scripted and not any(
            isinstance(m, QuickGELU) for m in model.modules()):
        warnings.warn(
            f'"{path}" is a TorchScript (OpenAI) CLIP, trained with '
            'QuickGELU, but the architecture uses GELU: build it with the '
            '"-quickgelu" model name (e.g. "RN50-quickgelu").')


class _DropRecords(logging.Filter):
    """Drop log records starting with ``prefix`` (open_clip's "initialized
    randomly" warning, wrong when weights are loaded right after)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def build_open_clip(arch: ArchType,
                    pretrained: Optional[str] = None) -> nn.Module:
    """Build an open_clip CLIP model, optionally loading a local file.

    Args:
        arch (str | dict): An open_clip model name (``'RN50'``, ``'RN101'``,
            ``'ViT-B-16'``...; use the ``-quickgelu`` names with OpenAI
            weights) or the kwargs of ``open_clip.model.CLIP`` (``embed_dim``,
            ``vision_cfg``, ``text_cfg``...).
        pretrained (str, optional): Path of a state dict, a checkpoint dict
            with ``'state_dict'`` or an OpenAI TorchScript file. Loaded
            strictly. Never downloaded.

    Returns:
        nn.Module: The float32 CLIP model on CPU.
    """
    import open_clip

    if isinstance(arch, str):
        quiet = _DropRecords('No pretrained weights loaded')
        if pretrained:
            logging.getLogger().addFilter(quiet)
        try:
            model = open_clip.create_model(
                arch,
                pretrained=None,
                pretrained_image=False,
                pretrained_text=False,
                device=torch.empty(0).device)  # meta under torch.device('meta')
        finally:
            logging.getLogger().removeFilter(quiet)
    elif isinstance(arch, dict):
        kwargs = copy.deepcopy(dict(arch))
        kwargs.pop('type', None)
        model = open_clip.model.CLIP(**kwargs)
    else:
        raise TypeError('arch must be an open_clip model name or a dict of '
                        f'open_clip.model.CLIP kwargs, not {type(arch)}.')
    if pretrained:
        load_clip_weights(model, pretrained)
    return model.float()


@lru_cache()
def bpe_tokenizer():
    """The CLIP BPE tokenizer; its vocabulary ships inside open_clip."""
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer()


class BPECache:
    """The BPE ids of a text (no SOT/EOT), computed once per process: a
    least-recently-used cache of ``maxsize`` texts that the data workers
    can fill (:meth:`prime`, with ids they computed, ``PackRISInputs(
    tokenize=...)``), so the training process does no BPE string work."""

    def __init__(self, maxsize: int = 1 << 16) -> None:
        self.maxsize = maxsize
        self._ids: 'OrderedDict[str, Tuple[int, ...]]' = OrderedDict()
        self.hits = self.misses = 0

    def __call__(self, text: str) -> Tuple[int, ...]:
        ids = self._ids.get(text)
        if ids is not None:
            self.hits += 1
            self._ids.move_to_end(text)
            return ids
        self.misses += 1
        ids = tuple(bpe_tokenizer().encode(text))
        self._store(text, ids)
        return ids

    def _store(self, text: str, ids: Tuple[int, ...]) -> None:
        self._ids[text] = ids
        self._ids.move_to_end(text)
        if len(self._ids) > self.maxsize:
            self._ids.popitem(last=False)

    def prime(self, ids_of: Dict[str, Sequence[int]]) -> None:
        """Store ``{text: BPE ids}`` computed elsewhere (a data worker)."""
        for text, ids in ids_of.items():
            self._store(text, tuple(ids))

    def __len__(self) -> int:
        return len(self._ids)

    def clear(self) -> None:
        self._ids.clear()
        self.hits = self.misses = 0


bpe_word_ids = BPECache()


def clip_token_ids(texts: List[str],
                   context_length: int,
                   keep_eot: bool = True) -> Tuple[Tensor, Tensor]:
    """CLIP token ids of ``texts``: ``ids [T, L]`` (long), ``mask [T, L]``.

    ``keep_eot=True``: word ids are truncated to ``context_length - 2``
    *before* SOT/EOT are added, so every sequence ends with EOT (the
    sentence embedding is read there). ``keep_eot=False``: the released
    TRIS truncation ``([SOT] + words + [EOT] + padding)[:L]``, which cuts
    EOT off expressions of more than ``L - 2`` words; pooling at
    ``ids.argmax(-1)`` then reads SOT, the same feature for every long
    expression. Shared by every CLIP text tower (the trained encoder and
    the frozen scorer), so a text is BPE-encoded once.
    """
    tokenizer = bpe_tokenizer()
    rows, lengths = [], []
    for text in texts:
        words = bpe_word_ids(text)
        if keep_eot:
            words = words[:context_length - 2]
        sequence = ([tokenizer.sot_token_id] + list(words) +
                    [tokenizer.eot_token_id])[:context_length]
        lengths.append(len(sequence))
        rows.append(sequence + [0] * (context_length - len(sequence)))
    ids = torch.tensor(rows, dtype=torch.long).reshape(-1, context_length)
    mask = torch.arange(context_length) < torch.tensor(
        lengths, dtype=torch.long)[:, None]
    return ids, mask


def pooled_index(ids: Tensor) -> Tensor:
    """Where CLIP reads the sentence embedding: ``ids.argmax(-1)``, the EOT
    (the largest id), or SOT when a released-style truncation cut EOT."""
    return ids.argmax(dim=-1)


class _FreezableMixin:
    """``frozen``: no gradients and always in eval mode."""

    def _freeze(self) -> None:
        for param in self.parameters():
            param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            super().train(False)
        return self


@MODELS.register_module()
class CLIPVisionEncoder(_FreezableMixin, StagedEncoder, BaseModule):
    """The image tower of CLIP as a multi-scale backbone.

    ModifiedResNet (``RN50``...): ``out_indices`` index ``layer1..layer4``
    and give ``c1..c4`` (strides 4, 8, 16, 32; ``attnpool``, tied to a fixed
    position grid, is dropped). VisionTransformer: ``out_indices`` are block
    indices and each output is the patch tokens ``[B, C, H/p, W/p]`` (the
    position embedding is resized bicubically for other input sizes).

    A :class:`StagedEncoder`: stage ``i`` runs the layers / blocks up to
    ``out_indices[i]`` and its feature is output ``i``, so early-fusion
    models can change it before the next stage.

    Args:
        arch (str | dict): See :func:`build_open_clip`.
        pretrained (str, optional): Local CLIP weights file.
        out_indices (Sequence[int]): Which stages / blocks to return.
        frozen (bool): Freeze every parameter and stay in eval mode.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
    """

    def __init__(self,
                 arch: ArchType,
                 pretrained: Optional[str] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen: bool = False,
                 norm_eval: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        visual = build_open_clip(arch, pretrained).visual
        self.out_indices = tuple(out_indices)
        self.frozen = frozen
        self.norm_eval = norm_eval
        if isinstance(visual, ModifiedResNet):
            self.kind = 'resnet'
            if max(self.out_indices) > 3:
                raise ValueError('ModifiedResNet has 4 stages: out_indices '
                                 f'must be in 0..3, got {self.out_indices}.')
            visual.attnpool = None
            for stage in range(max(self.out_indices) + 1, 4):
                setattr(visual, f'layer{stage + 1}', None)
            width = visual.conv3.out_channels
            self.out_channels = [width * 4 * 2**i for i in self.out_indices]
        elif isinstance(visual, VisionTransformer):
            self.kind = 'vit'
            blocks = visual.transformer.resblocks
            if max(self.out_indices) >= len(blocks):
                raise ValueError(f'The ViT has {len(blocks)} blocks: '
                                 f'out_indices {self.out_indices} too large.')
            visual.transformer.resblocks = blocks[:max(self.out_indices) + 1]
            for name in ('ln_post', 'attn_pool', 'attn_pool_contrastive'):
                if hasattr(visual, name):
                    setattr(visual, name, None)
            visual.proj = None
            self.out_channels = [visual.conv1.out_channels] * len(
                self.out_indices)
        else:
            raise TypeError('CLIPVisionEncoder supports ModifiedResNet and '
                            f'VisionTransformer towers, not '
                            f'{type(visual).__name__}.')
        self.visual = visual
        if frozen:
            self._freeze()

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    @property
    def num_stages(self) -> int:
        return len(self.out_indices)

    def _layer_range(self, index: int) -> range:
        """The ResNet layers / ViT blocks (0-based) of stage ``index``: those
        after the previous output up to ``out_indices[index]``."""
        first = self.out_indices[index - 1] + 1 if index else 0
        return range(first, self.out_indices[index] + 1)

    def forward_stem(self, images: Tensor):
        """ResNet: the stem's map. ViT: ``(tokens, grid)`` with the class
        token first and the position embedding added."""
        if self.kind == 'resnet':
            return self.visual.stem(images)
        visual = self.visual
        x = visual.conv1(images)
        batch, _, grid_h, grid_w = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls_token = visual.class_embedding.to(x.dtype).expand(batch, 1, -1)
        x = torch.cat([cls_token, x], dim=1)
        x = x + self._position_embedding(grid_h, grid_w).to(x.dtype)
        x = visual.ln_pre(x)
        if not getattr(visual.transformer, 'batch_first', True):
            x = x.transpose(0, 1)
        return x, (grid_h, grid_w)

    def forward_stage(self, index: int, state):
        if self.kind == 'resnet':
            for layer in self._layer_range(index):
                state = getattr(self.visual, f'layer{layer + 1}')(state)
            return state
        x, grid = state
        for block in self._layer_range(index):
            x = self.visual.transformer.resblocks[block](x)
        return x, grid

    def _batch_first(self, x: Tensor) -> Tensor:
        if getattr(self.visual.transformer, 'batch_first', True):
            return x
        return x.transpose(0, 1)

    def stage_feature(self, index: int, state) -> Tensor:
        if self.kind == 'resnet':
            return state
        x, (grid_h, grid_w) = state
        tokens = self._batch_first(x)
        return tokens[:, 1:].transpose(1, 2).reshape(
            tokens.shape[0], -1, grid_h, grid_w)

    def replace_feature(self, index: int, state, feature: Tensor):
        if self.kind == 'resnet':
            return feature
        x, grid = state
        tokens = self._batch_first(x)
        tokens = torch.cat(
            [tokens[:, :1], feature.flatten(2).transpose(1, 2)], dim=1)
        return self._batch_first(tokens), grid

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """``x [B, 3, H, W]`` -> tuple of ``[B, C_i, h_i, w_i]``."""
        return self.forward_staged(x, range(self.num_stages))

    def _position_embedding(self, grid_h: int, grid_w: int) -> Tensor:
        """``[1 + grid_h * grid_w, C]`` position embedding for this grid."""
        pos = self.visual.positional_embedding
        old_h, old_w = self.visual.grid_size
        if (grid_h, grid_w) == (old_h, old_w):
            return pos
        cls_pos, patch_pos = pos[:1], pos[1:]
        patch_pos = patch_pos.reshape(1, old_h, old_w, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(
            patch_pos, size=(grid_h, grid_w), mode='bicubic',
            align_corners=False)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)
        return torch.cat([cls_pos, patch_pos])


@MODELS.register_module()
class CLIPTextEncoder(_FreezableMixin, BaseTextEncoder, BaseModule):
    """The text tower of CLIP with its BPE tokenizer.

    By default word tokens are truncated to ``context_length - 2`` *before*
    SOT/EOT are added, so every sequence ends with EOT; ``keep_eot=False``
    is the released TRIS truncation, which loses EOT for long expressions
    (see :func:`clip_token_ids`). The sentence embedding is read at
    ``ids.argmax(-1)`` (EOT, or SOT without one), as in CLIP. A longer CLIP
    position embedding is used through its first ``context_length``
    positions.

    Args:
        arch (str | dict): See :func:`build_open_clip`.
        pretrained (str, optional): Local CLIP weights file.
        context_length (int): Tokens per expression, SOT and EOT included.
        frozen (bool): Freeze every parameter and stay in eval mode.
        keep_eot (bool): Keep EOT when truncating (False: the released
            TRIS tokenisation).
    """
    # The ids ``PackRISInputs(tokenize=...)`` packs are this tokenizer's.
    reads_packed_clip_ids = True

    def __init__(self,
                 arch: ArchType,
                 pretrained: Optional[str] = None,
                 context_length: int = 20,
                 frozen: bool = False,
                 keep_eot: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        clip = build_open_clip(arch, pretrained)
        if not hasattr(clip, 'token_embedding'):
            raise TypeError('CLIPTextEncoder needs a CLIP with its own text '
                            'transformer (not a HuggingFace text tower).')
        positions = clip.positional_embedding.shape[0]
        if not 2 < context_length <= positions:
            raise ValueError(f'context_length must be in 3..{positions} for '
                             f'this CLIP, got {context_length}.')
        self.context_length = context_length
        self.frozen = frozen
        self.keep_eot = keep_eot
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        attn_mask = clip.attn_mask
        if attn_mask is not None:
            attn_mask = attn_mask[:context_length, :context_length].clone()
        self.register_buffer('attn_mask', attn_mask, persistent=False)
        self.width = clip.ln_final.weight.shape[0]
        self.embed_dim = self._projected_dim()
        if frozen:
            self._freeze()

    def _projected_dim(self) -> int:
        projection = self.text_projection
        if projection is None:
            return self.width
        if isinstance(projection, nn.Linear):
            return projection.out_features
        return projection.shape[1]

    def tokenize(self, texts: List[str]) -> Dict[str, Tensor]:
        """``dict(ids=[T, L] long, mask=[T, L] bool)``, see
        :func:`clip_token_ids`."""
        ids, mask = clip_token_ids(texts, self.context_length, self.keep_eot)
        return dict(ids=ids, mask=mask)

    def encode(self, tokenized: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Encode tokenised expressions.

        Returns:
            dict: ``tokens [T, L, C]`` per-token features after ``ln_final``,
            ``mask [T, L]`` valid tokens (SOT..EOT) and ``sentence [T, D]``
            the feature at ``ids.argmax(-1)`` (EOT) after
            ``text_projection``.
        """
        device = self.token_embedding.weight.device
        ids = tokenized['ids'].to(device)
        mask = tokenized['mask'].to(device)
        x = self.token_embedding(ids)
        x = x + self.positional_embedding[:self.context_length].to(x.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask)
        tokens = self.ln_final(x)
        sentence = tokens[torch.arange(len(ids), device=device),
                          pooled_index(ids)]
        if isinstance(self.text_projection, nn.Linear):
            sentence = self.text_projection(sentence)
        elif self.text_projection is not None:
            sentence = sentence @ self.text_projection
        return dict(tokens=tokens, mask=mask, sentence=sentence)
