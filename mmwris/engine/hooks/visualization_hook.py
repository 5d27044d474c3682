import os
import os.path as osp
from typing import Optional, Sequence

import mmcv
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmwris.registry import HOOKS
from mmwris.visualization import draw_ris_overlay


@HOOKS.register_module()
class RISVisualizationHook(Hook):
    """Save overlay PNGs (response heat map, masks, expression) at test/val.

    Files are named ``{image_id}_{ref_id}_{sent_id}.png`` so several
    expressions of one image never overwrite each other.

    Args:
        draw (bool): Whether to draw at all. Defaults to False.
        interval (int): Draw every ``interval``-th batch. Defaults to 1.
        out_dir (str, optional): Output folder; defaults to
            ``{work_dir}/{timestamp}/vis``.
    """
    priority = 'LOW'

    def __init__(self,
                 draw: bool = False,
                 interval: int = 1,
                 out_dir: Optional[str] = None) -> None:
        self.draw = draw
        self.interval = interval
        self.out_dir = out_dir

    def _save(self, runner: Runner, batch_idx: int,
              outputs: Sequence) -> None:
        if not self.draw or batch_idx % self.interval:
            return
        out_dir = self.out_dir or osp.join(runner.work_dir, runner.timestamp,
                                           'vis')
        os.makedirs(out_dir, exist_ok=True)
        for sample in outputs:
            image = mmcv.imread(sample.img_path, channel_order='rgb')
            gt = sample.get('gt_sem_seg')
            picture = draw_ris_overlay(
                image, sample.text,
                response=sample.seg_logits.data[0].cpu().numpy(),
                pred_mask=sample.pred_sem_seg.data[0].cpu().numpy(),
                gt_mask=None if gt is None else gt.data[0].cpu().numpy())
            name = (f'{sample.get("image_id", "img")}_'
                    f'{sample.get("ref_id", "ref")}_'
                    f'{sample.get("sent_id", batch_idx)}.png')
            mmcv.imwrite(picture[..., ::-1], osp.join(out_dir, name))

    def after_val_iter(self, runner, batch_idx, data_batch, outputs) -> None:
        self._save(runner, batch_idx, outputs)

    def after_test_iter(self, runner, batch_idx, data_batch, outputs) -> None:
        self._save(runner, batch_idx, outputs)
