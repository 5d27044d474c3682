"""Resumable pseudo-label generation from a step-1 referring model."""
import io
import json
import logging
import os
import os.path as osp
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import mmcv
import numpy as np
import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from mmwris.evaluation.functional import mask_iou, point_in_mask
from mmwris.utils.io import atomic_write_bytes
from .prms import select_response_prms

from .refiners import IGNORE_INDEX as IGNORE


def write_label_png(path: str, label: np.ndarray) -> None:
    """Save a ``[H, W]`` uint8 label map (0, 1, 255) as PNG, atomically."""
    ok, buffer = cv2.imencode('.png', label.astype(np.uint8))
    if not ok:
        raise RuntimeError(f'PNG encoding failed for {path}')
    atomic_write_bytes(path, buffer.tobytes())


def _rank_world():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class PseudoLabelGenerator:
    """Write one pseudo-label PNG per ref from a step-1 model's responses.

    For every ref of the dataset (test mode: one sample per expression) the
    step-1 model predicts each expression's response map at the original
    image size; PRMS (if a scorer is given and the ref has several
    expressions) keeps the best map; the refiner turns it into labels
    (0 background, 1 foreground, 255 ignore), saved as
    ``out_dir/masks/{ref_id}.png``. Refs whose PNG exists are skipped, so
    an interrupted run restarts where it stopped; files are written under a
    temporary name and renamed. Refs are split across ranks by position.

    A refiner that learns over the whole split (``needs_training``, e.g.
    :class:`~mmwris.pseudo_labels.irn.IRNRefiner`) runs in three passes,
    each resumable: ``refiner.seed`` writes ``cams/{ref_id}.npy`` and
    ``seeds/{ref_id}.png`` per ref; ``refiner.fit`` trains on every seed
    map (all ranks together, checkpoints in ``irn/``); ``refiner.refine_cam``
    then writes the masks.

    Args:
        model: A referring segmentor (``test_step`` fills ``seg_logits``).
        dataset: A ``RefCOCODataset`` in test mode whose pipeline loads the
            GT mask after resizing (GT quality is reported when present).
        refiner (callable): ``(response [H, W], image [H, W, 3] RGB) ->
            labels [H, W] uint8``.
        out_dir (str): Output folder.
        scorer (FrozenCLIPScorer, optional): Enables PRMS.
        batch_size (int): Expressions per forward pass.
        max_refs (int, optional): Only the first ``max_refs`` refs (by
            ref_id), for quick experiments; train step 2 on such a folder
            with ``skip_missing_pseudo_labels=True``.
    """

    def __init__(self, model, dataset, refiner: Callable, out_dir: str,
                 scorer=None, batch_size: int = 8,
                 max_refs: Optional[int] = None) -> None:
        self.model = model
        self.dataset = dataset
        self.refiner = refiner
        self.out_dir = out_dir
        self.masks_dir = osp.join(out_dir, 'masks')
        self.records_file = osp.join(out_dir, 'records.jsonl')
        self.two_pass = bool(getattr(refiner, 'needs_training', False))
        self.cams_dir = osp.join(out_dir, 'cams')
        self.seeds_dir = osp.join(out_dir, 'seeds')
        self.seed_records_file = osp.join(self.seeds_dir, 'records.jsonl')
        self.fit_dir = osp.join(out_dir, 'irn')
        self.scorer = scorer
        self.batch_size = batch_size
        self.max_refs = max_refs
        self.rank, self.world_size = _rank_world()

    def mask_path(self, ref_id) -> str:
        return osp.join(self.masks_dir, f'{ref_id}.png')

    def _group_by_ref(self) -> Dict[int, List[int]]:
        groups = defaultdict(list)
        for idx in range(len(self.dataset)):
            groups[self.dataset.get_data_info(idx)['ref_id']].append(idx)
        return dict(sorted(groups.items()))

    def seed_path(self, ref_id) -> str:
        return osp.join(self.seeds_dir, f'{ref_id}.png')

    def cam_path(self, ref_id) -> str:
        return osp.join(self.cams_dir, f'{ref_id}.npy')

    def _prepare(self):
        folders = [self.masks_dir]
        if self.two_pass:
            folders += [self.cams_dir, self.seeds_dir]
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
        if self.rank == 0:
            for folder in folders:
                for name in os.listdir(folder):
                    if '.tmp-' in name:
                        os.remove(osp.join(folder, name))
        self._barrier()

    def _barrier(self):
        if self.world_size > 1:
            dist.barrier()

    @torch.no_grad()
    def run(self) -> dict:
        """Generate; return the summary (also written to summary.json)."""
        self._prepare()
        groups = self._group_by_ref()
        if self.max_refs is not None:
            groups = dict(list(groups.items())[:self.max_refs])
        mine = list(groups)[self.rank::self.world_size]
        if self.two_pass:
            return self._run_two_pass(groups, mine)
        todo = [ref for ref in mine if not osp.isfile(self.mask_path(ref))]
        skipped = len(mine) - len(todo)
        failed = self._predict_refs(groups, todo, self._finish_ref)
        return self._summarise(len(mine), len(todo) - len(failed), skipped,
                               failed)

    def _predict_refs(self, groups: Dict[int, List[int]], todo: List[int],
                      finish: Callable) -> Dict[int, str]:
        """Run the model over every expression of the ``todo`` refs and call
        ``finish(ref_id, outputs)`` per ref; return ``{ref_id: error}``."""
        work = [(ref, idx) for ref in todo for idx in groups[ref]]
        pending = defaultdict(list)
        failed: Dict[int, str] = {}
        progress = ProgressBar(len(work)) if self.rank == 0 and work \
            else None
        self.model.eval()
        for start in range(0, len(work), self.batch_size):
            batch = work[start:start + self.batch_size]
            inputs, samples, refs = [], [], []
            for ref, idx in batch:
                if ref in failed:
                    continue
                try:
                    data = self.dataset[idx]
                except Exception as e:
                    failed[ref] = f'{type(e).__name__}: {e}'
                    continue
                inputs.append(data['inputs'])
                samples.append(data['data_samples'])
                refs.append(ref)
            if samples:
                outputs = self.model.test_step(
                    dict(inputs=inputs, data_samples=samples))
                for ref, out in zip(refs, outputs):
                    pending[ref].append(out)
            for ref in {ref for ref, _ in batch}:
                done = len(pending[ref]) == len(groups[ref])
                if ref in failed:
                    pending.pop(ref, None)
                elif done:
                    try:
                        finish(ref, pending.pop(ref))
                    except Exception as e:
                        failed[ref] = f'{type(e).__name__}: {e}'
            if progress is not None:
                for _ in batch:
                    progress.update()
        return failed

    def _select(self, outputs) -> Tuple[np.ndarray, np.ndarray, dict]:
        """PRMS over a ref's outputs: (response [H, W], image [H, W, 3] RGB,
        the record fields of the choice)."""
        responses = torch.stack(
            [o.seg_logits.data[0].float().cpu() for o in outputs])
        texts = [o.text for o in outputs]
        image = mmcv.imread(outputs[0].img_path, channel_order='rgb')
        if image is None:
            raise ValueError(f'cannot read image {outputs[0].img_path}')
        prms_scores = None
        chosen = 0
        if self.scorer is not None and len(outputs) > 1:
            device = next(iter(self.scorer.buffers())).device
            image_t = torch.from_numpy(image).permute(2, 0, 1).float() / 255
            chosen, scores = select_response_prms(
                responses.to(device), image_t.to(device), texts, self.scorer)
            prms_scores = [round(float(s), 6) for s in scores]
        response = responses[chosen].numpy()
        record = dict(image_id=outputs[0].get('image_id'),
                      sent_id=outputs[chosen].get('sent_id'),
                      text=texts[chosen], prms_scores=prms_scores)
        gt = outputs[0].get('gt_sem_seg')
        if gt is not None:
            gt_mask = gt.data[0].cpu().numpy().astype(bool)
            record['point_hit'] = bool(point_in_mask(response, gt_mask))
        return response, image, record

    def _write_mask(self, ref_id, label: np.ndarray, record: dict,
                    gt_mask: Optional[np.ndarray]) -> None:
        """Atomic PNG write and a record line for one ref."""
        write_label_png(self.mask_path(ref_id), label)
        record = dict(record, ref_id=ref_id,
                      foreground=float((label == 1).mean()),
                      ignored=float((label == IGNORE).mean()))
        if gt_mask is not None:
            record['iou'] = mask_iou(label == 1, gt_mask)
        with open(self.records_file, 'a') as f:
            f.write(json.dumps(record) + '\n')

    @staticmethod
    def _gt_mask(sample) -> Optional[np.ndarray]:
        gt = sample.get('gt_sem_seg')
        return None if gt is None else gt.data[0].cpu().numpy().astype(bool)

    def _finish_ref(self, ref_id, outputs) -> None:
        """PRMS, refinement, atomic write and a record line for one ref."""
        response, image, record = self._select(outputs)
        label = np.asarray(self.refiner(response, image), dtype=np.uint8)
        if label.shape != response.shape:
            raise ValueError(f'refiner returned {label.shape}, expected '
                             f'{response.shape}')
        self._write_mask(ref_id, label, record, self._gt_mask(outputs[0]))

    def _finish_seed(self, ref_id, outputs) -> None:
        """Pass 1 of a trained refiner: the cam and its seeds for one ref
        (the seed PNG, written last, marks the ref as done)."""
        response, image, record = self._select(outputs)
        cam, seeds = self.refiner.seed(response, image)
        buffer = io.BytesIO()
        np.save(buffer, cam.astype(np.float16), allow_pickle=False)
        atomic_write_bytes(self.cam_path(ref_id), buffer.getvalue())
        record = dict(record, ref_id=ref_id, img_path=outputs[0].img_path,
                      seed_foreground=float((seeds == 1).mean()),
                      seed_ignored=float((seeds == IGNORE).mean()))
        with open(self.seed_records_file, 'a') as f:
            f.write(json.dumps(record) + '\n')
        write_label_png(self.seed_path(ref_id), seeds)

    def _run_two_pass(self, groups: Dict[int, List[int]],
                      mine: List[int]) -> dict:
        """Seeds of every ref, the refiner trained on all of them (every
        rank), then the masks; each pass skips what is already done."""
        todo = [ref for ref in mine if not osp.isfile(self.mask_path(ref))]
        skipped = len(mine) - len(todo)
        need_seeds = [r for r in todo if not osp.isfile(self.seed_path(r))]
        if self.rank == 0:
            print_log(f'pass 1/3: seeds of {len(need_seeds)} refs '
                      f'({len(todo) - len(need_seeds)} already there)',
                      logger='current')
        failed = self._predict_refs(groups, need_seeds, self._finish_seed)
        self._barrier()
        seed_records = self._load_records(self.seed_records_file)
        items = [(seed_records[ref]['img_path'], self.seed_path(ref))
                 for ref in groups
                 if ref in seed_records and osp.isfile(self.seed_path(ref))]
        if self.rank == 0:
            print_log(f'pass 2/3: training {type(self.refiner).__name__} on '
                      f'{len(items)} seed maps in {self.fit_dir}',
                      logger='current')
        device = next(self.model.parameters()).device
        with torch.enable_grad():
            self.refiner.fit(items, self.fit_dir, device=device)
        self._barrier()
        work = [r for r in todo if r not in failed]
        if self.rank == 0:
            print_log(f'pass 3/3: masks of {len(work)} refs', logger='current')
        progress = ProgressBar(len(work)) if self.rank == 0 and work \
            else None
        for ref in work:
            try:
                record = dict(seed_records[ref])
                image = mmcv.imread(record['img_path'], channel_order='rgb')
                if image is None:
                    raise ValueError(f'cannot read image {record["img_path"]}')
                cam = np.load(self.cam_path(ref), allow_pickle=False)
                label = np.asarray(
                    self.refiner.refine_cam(cam.astype(np.float32), image),
                    dtype=np.uint8)
                sample = self.dataset[groups[ref][0]]['data_samples']
                self._write_mask(ref, label, record, self._gt_mask(sample))
            except Exception as e:
                failed[ref] = f'{type(e).__name__}: {e}'
            if progress is not None:
                progress.update()
        return self._summarise(len(mine), len(work) - len(
            [r for r in work if r in failed]), skipped, failed)

    def _load_records(self, path: Optional[str] = None) -> Dict[int, dict]:
        """Records of every written ref (a line cut by a kill is ignored)."""
        records = {}
        path = path or self.records_file
        if osp.isfile(path):
            with open(path) as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    records[record['ref_id']] = record
        return records

    def _summarise(self, total: int, written: int, skipped: int,
                   failed: Dict[int, str]) -> dict:
        counts = torch.tensor([total, written, skipped, len(failed)])
        all_failed = [failed]
        if self.world_size > 1:
            dist.all_reduce(counts)
            all_failed = [None] * self.world_size
            dist.all_gather_object(all_failed, failed)
        failures = {str(k): v for part in all_failed for k, v in part.items()}
        refs, written, skipped, num_failed = (int(c) for c in counts)
        summary = dict(refs=refs, written=written, skipped=skipped,
                       failed=num_failed, failures=failures)
        if self.rank == 0:
            records = self._load_records()
            present = sorted(int(name[:-4]) for name in os.listdir(
                self.masks_dir) if name.endswith('.png'))
            ious = [records[r]['iou'] for r in present
                    if r in records and 'iou' in records[r]]
            hits = [records[r]['point_hit'] for r in present
                    if r in records and 'point_hit' in records[r]]
            if ious:
                summary['quality'] = dict(
                    refs_with_gt=len(ious), mIoU=100 * float(np.mean(ious)),
                    PointM=100 * float(np.mean(hits)))
            index = {str(r): dict(records.get(r, {}), file=f'masks/{r}.png')
                     for r in present}
            atomic_write_bytes(osp.join(self.out_dir, 'index.json'),
                               json.dumps(index, indent=1).encode())
            atomic_write_bytes(osp.join(self.out_dir, 'summary.json'),
                               json.dumps(summary, indent=1).encode())
            print_log(
                f'pseudo labels in {self.out_dir}: {written} written, '
                f'{skipped} skipped (already there), {num_failed} failed, '
                f'{len(present)} present of {refs} refs', logger='current')
            if 'quality' in summary:
                q = summary['quality']
                print_log(
                    f'pseudo-label quality against GT ({q["refs_with_gt"]} '
                    f'refs): mIoU {q["mIoU"]:.2f}, PointM {q["PointM"]:.2f}',
                    logger='current')
            for ref, error in failures.items():
                print_log(f'ref_id={ref} failed: {error}', logger='current',
                          level=logging.ERROR)
        return summary
