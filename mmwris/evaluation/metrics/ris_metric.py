"""Referring image segmentation metric: PointM, PointIt, AccBox and IoUs."""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.structures import BaseDataElement
from mmengine.utils import mkdir_or_exist
from prettytable import PrettyTable

from mmwris.registry import METRICS
from ..functional import (POINT_RULES, box_iou, mask_intersection_union,
                          mask_to_box, peak_in_box, released_gt_box,
                          response_peak,
                          to_numpy, tris_box_hits, tris_generate_boxes)

_ID_KEYS = ('ref_id', 'sent_id', 'image_id')
_DUMP_KEYS = ('split', ) + _ID_KEYS + ('iou', 'point_hit', 'pointit_hit',
                                       'box_hit')
BOX_MODES = ('largest_cc', 'all', 'any_box')
GT_BOX_MODES = ('float', 'released')
# Evaluation protocols: the defaults of box_mode, point_rule and gt_box.
PROTOCOLS = dict(
    ours=dict(box_mode='largest_cc', point_rule='pixel_center',
              gt_box='float', first_expression=False),
    tris=dict(box_mode='any_box', point_rule='index_inclusive',
              gt_box='released', first_expression=False),
    # The released PCNet validate.py: TRIS's rules, but only the first
    # expression of each ref is scored.
    pcnet=dict(box_mode='any_box', point_rule='index_inclusive',
               gt_box='released', first_expression=True),
    # The released MagNet test.py: masks and GT at 480x480 (PIL's nearest =
    # cv2's INTER_NEAREST_EXACT), an empty union scores IoU 0; our box /
    # point rules. Predictions may come at 480x480 already.
    magnet=dict(box_mode='largest_cc', point_rule='pixel_center',
                gt_box='float', first_expression=False,
                eval_size=(480, 480), empty_iou=0.0, nearest_exact=True,
                predictions_at_eval_size=True))


def first_expression_per_ref(results: List[dict]) -> List[dict]:
    """The first result of each ``(split, ref_id)`` in evaluation order
    (the dataset order: a ref's expressions in the order of its
    ``sentences``); results without a ``ref_id`` are all kept."""
    seen, kept = set(), []
    for result in results:
        ref_id = result.get('ref_id')
        key = (result.get('split'), ref_id)
        if ref_id is not None and key in seen:
            continue
        seen.add(key)
        kept.append(result)
    return kept


def _choose(name: str, value, allowed: Sequence):
    if value not in allowed:
        raise ValueError(f'{name} must be one of {tuple(allowed)}, '
                         f'got {value!r}')
    return value


def _scalar(value):
    """Turn a 0-d tensor / numpy scalar into a plain Python value."""
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return to_numpy(value).item()
    return value


def _map_2d(sample: dict, key: str, device=None):
    """The ``[H, W]`` map of a ``{'data': [1, H, W]}`` field of a sample: a
    numpy array, or a tensor on ``device`` when one is given."""
    if key not in sample:
        raise KeyError(f'data sample has no {key!r} field')
    data = sample[key]['data']
    data = (to_numpy(data)
            if device is None else torch.as_tensor(data, device=device))
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f'{key} must have shape [1, H, W] or [H, W], '
                         f'got {tuple(data.shape)}')
    return data


def _host_scalars(response: np.ndarray, gt_mask: np.ndarray,
                  masks: List[np.ndarray], with_box: bool) -> List[int]:
    """The scalars of :func:`_device_scalars`, computed with numpy."""
    y, x = response_peak(response)
    values = [y, x, int(gt_mask[y, x])]
    for mask in masks:
        values += mask_intersection_union(mask, gt_mask)
        if with_box:
            box = mask_to_box(mask, 'all')
            values += [0] * 5 if box is None else [1] + [int(v) for v in box]
    return values


def _foreground_box(mask: torch.Tensor) -> List[torch.Tensor]:
    """``[nonempty, x1, y1, x2, y2]`` (0-d tensors) of the box of all
    foreground pixels of a bool mask [H, W], as ``mask_to_box(mask,
    'all')``; the coordinates are meaningless when ``nonempty`` is 0."""

    def span(hit: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(len(hit), device=hit.device)
        return (torch.where(hit, index, len(hit)).min(),
                torch.where(hit, index, -1).max() + 1)

    rows, cols = mask.any(1), mask.any(0)
    (y1, y2), (x1, x2) = span(rows), span(cols)
    return [rows.any(), x1, y1, x2, y2]


def _device_scalars(response: torch.Tensor, gt_mask: torch.Tensor,
                    masks: List[torch.Tensor], with_box: bool) -> torch.Tensor:
    """The per-sample scalars, int64 [K] on the maps' device.

    ``response`` [H, W] float32, ``gt_mask`` and ``masks`` [H, W] bool.
    ``K = 3 + len(masks) * (2 or 7)``: the response peak ``y, x`` (first
    maximum in row-major order, as ``numpy.argmax``), the GT mask at the
    peak, then per predicted mask its intersection and union with the GT
    (and, ``with_box``, :func:`_foreground_box`).
    """
    index = response.reshape(-1).argmax()
    width = response.shape[1]
    values = [index // width, index % width, gt_mask.reshape(-1)[index]]
    for mask in masks:
        values += [(mask & gt_mask).sum(), (mask | gt_mask).sum()]
        if with_box:
            values += _foreground_box(mask)
    return torch.stack([v.long() for v in values])


@METRICS.register_module()
class RISMetric(BaseMetric):
    """Referring image segmentation metric.

    Per sample it computes, from the response map ``seg_logits`` [1, H, W],
    the predicted mask and the GT mask / box:

    - ``PointM``: the response peak lies on the GT mask (TRIS).
    - ``PointIt``: the peak pixel lies in the GT box (pointing game; see
      ``point_rule``).
    - ``AccBox``: the box of the predicted mask (see ``box_mode``) has
      IoU > 0.5 with the GT box; an empty prediction is a miss.
    - ``BoxIoU`` (``box_mode='any_box'`` only): the IoU of the generated
      box that contains the peak (the released "box mIoU").
    - mask intersection, union and IoU (1.0 when both masks are empty; 0
      with ``protocol='magnet'``).

    ``compute_metrics`` reports, per ``split`` (keys ``'{split}/{name}'``;
    samples without a split give plain ``name`` keys), in percent:
    ``PointM``, ``PointIt``, ``AccBox``, ``mIoU`` (mean per-sample IoU),
    ``oIoU`` (sum of intersections / sum of unions), ``Prec@X`` (share of
    samples with IoU >= X) and ``num_samples``.

    Samples that also carry ``pred_proposal_seg`` (PCNet's "segmentor"
    variant: the mask proposal containing the response peak) get the mask
    metrics of that prediction reported separately, as
    ``'{split}/segmentor/{AccBox, mIoU, oIoU, Prec@X}'`` and an extra table
    row (the point metrics come from the response and are not repeated).

    Where it runs: when a sample's maps are torch tensors (any device) and
    no ``eval_size`` is set, the peak, PointM, PointIt, intersection /
    union / IoU and the ``box_mode='all'`` box are computed on their device
    at the original resolution (:func:`_device_scalars`) and only scalars
    reach the host, one copy per batch. The connected components
    (``'largest_cc'``) and released boxes (``'any_box'``) run with cv2 on a
    host copy of the predicted mask. Numpy inputs and ``eval_size`` (cv2
    resizing) use numpy throughout. Both give identical results.

    ``protocol`` picks the defaults of ``box_mode``, ``point_rule`` and
    ``gt_box`` (an explicit argument overrides it):

    - ``'ours'``: ``largest_cc``, ``pixel_center``, ``float``.
    - ``'tris'``: the released TRIS evaluation (fawnliu/TRIS
      ``validate.py``): ``any_box``, ``index_inclusive``, ``released``. Use
      it with ``TRISOfficialMaskDecoder``; its mIoU, oIoU and PointIt are
      the numbers of the TRIS paper tables.
    - ``'pcnet'``: the released PCNet evaluation (zaiquanyang/Boosting_WRIS
      ``validate.py``): TRIS's rules and ``first_expression``: only the
      first expression of each ref is scored. Use it with
      ``PeakProposalMaskDecoder(select='max_response',
      response_decoder=dict(type='TRISOfficialMaskDecoder'))`` (R > 0; the
      "segmentor" proposal with the largest max response). ``'ours'`` and
      ``'tris'`` score every expression.
    - ``'magnet'``: the released MagNet evaluation (yxchng/mask-grounding
      ``test.py``): ``eval_size=(480, 480)`` by default (the GT resized
      with PIL's nearest rule, ``cv2.INTER_NEAREST_EXACT``), IoU 0 for an
      empty union, ``ours``'s box / point rules; predictions may already
      be at ``eval_size`` (``MagNetMaskDecoder(output='input')``, the
      released evaluation) or at the original size (nearest-resized).

    Args:
        protocol (str): ``'ours'``, ``'tris'``, ``'pcnet'`` or
            ``'magnet'``. Defaults to 'ours'.
        mask_threshold (float, optional): If set, the predicted mask is
            ``response >= mask_threshold``; otherwise the model's
            ``pred_sem_seg`` is used. Defaults to None.
        eval_size (tuple[int, int], optional): ``(H, W)`` to evaluate at:
            the response is resized bilinearly, the GT mask and
            ``pred_sem_seg`` nearest, and the GT box scaled, before
            anything is computed (with ``mask_threshold`` set, the resized
            response is thresholded). Some repos evaluate at 480x480.
            None evaluates at each image's original resolution (or the
            protocol's size, ``'magnet'``: 480x480). Defaults to None.
        prec_thresholds (Sequence[float]): IoU thresholds of ``Prec@X``.
            Defaults to (0.5, 0.6, 0.7, 0.8, 0.9).
        box_mode (str, optional): How ``AccBox`` boxes the predicted mask:
            ``'largest_cc'`` (largest 8-connected component), ``'all'``
            (all foreground pixels) or ``'any_box'`` (the released TRIS
            boxes of :func:`tris_generate_boxes`; a hit if any of them has
            IoU > 0.5). None: the protocol's.
        point_rule (str, optional): PointIt test of the peak pixel:
            ``'pixel_center'`` (its centre) or ``'index_inclusive'`` (its
            integer index, released). None: the protocol's.
        gt_box (str, optional): ``'float'`` (the GT box as stored) or
            ``'released'`` (the COCO box cast to int first,
            :func:`released_gt_box`), for PointIt and AccBox. None: the
            protocol's.
        first_expression (bool, optional): Score only the first expression
            of each ref (:func:`first_expression_per_ref`). None: the
            protocol's.
        digits (int, optional): Decimals of the reported percentages; None
            reports them unrounded. Defaults to 2.
        collect_device (str): Device for collecting results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to None.
        output_file (str, optional): If set, one JSON line per sample with
            ``split``, ``ref_id``, ``sent_id``, ``image_id``, ``iou``,
            ``point_hit``, ``pointit_hit`` and ``box_hit`` is written there
            (atomically) after evaluation. Defaults to None.
    """

    def __init__(self,
                 protocol: str = 'ours',
                 mask_threshold: Optional[float] = None,
                 eval_size: Optional[Tuple[int, int]] = None,
                 prec_thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8,
                                                     0.9),
                 box_mode: Optional[str] = None,
                 point_rule: Optional[str] = None,
                 gt_box: Optional[str] = None,
                 first_expression: Optional[bool] = None,
                 digits: Optional[int] = 2,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 output_file: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        preset = PROTOCOLS[_choose('protocol', protocol, tuple(PROTOCOLS))]
        self.protocol = protocol
        self.box_mode = _choose('box_mode', box_mode or preset['box_mode'],
                                BOX_MODES)
        self.point_rule = _choose(
            'point_rule', point_rule or preset['point_rule'], POINT_RULES)
        self.gt_box = _choose('gt_box', gt_box or preset['gt_box'],
                              GT_BOX_MODES)
        self.first_expression = bool(
            preset['first_expression']
            if first_expression is None else first_expression)
        self.digits = None if digits is None else int(digits)
        self.empty_iou = float(preset.get('empty_iou', 1.0))
        self.nearest = (cv2.INTER_NEAREST_EXACT
                        if preset.get('nearest_exact') else cv2.INTER_NEAREST)
        self.predictions_at_eval_size = bool(
            preset.get('predictions_at_eval_size'))
        if eval_size is None:
            eval_size = preset.get('eval_size')
        if eval_size is not None:
            eval_size = tuple(int(s) for s in eval_size)
            if len(eval_size) != 2 or min(eval_size) <= 0:
                raise ValueError('eval_size must be (H, W) with positive '
                                 f'sizes, got {eval_size}')
        self.mask_threshold = (None if mask_threshold is None else
                               float(mask_threshold))
        self.eval_size = eval_size
        self.prec_thresholds = tuple(float(t) for t in prec_thresholds)
        self.output_file = output_file

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store the per-sample hits and pixel counts of a batch.

        Samples with tensor maps are scored on their device; the scalars of
        the whole batch come to the host with one synchronisation.

        Args:
            data_batch: Unused.
            data_samples (Sequence[dict]): ``SegDataSample.to_dict()``-style
                dicts with ``seg_logits``, ``pred_sem_seg``, ``gt_sem_seg``
                (each ``{'data': [1, H, W]}``) and metainfo keys
                ``gt_bbox`` (xyxy) and optionally ``split``, ``ref_id``,
                ``sent_id``, ``image_id``, ``mask_threshold``.
        """
        results, pending = [], []
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            device = self._device_of(sample)
            if device is None:
                results.append(self._process_sample(sample))
                continue
            response, gt_mask, gt_box, masks = self._inputs(sample, device)
            scalars = _device_scalars(response, gt_mask,
                                      [mask for _, mask in masks],
                                      self.box_mode == 'all')
            pending.append((len(results), sample, gt_box, masks, scalars))
            results.append(None)
        if pending:  # the batch's scalars to the host: one sync
            device = pending[0][-1].device
            values = iter(torch.cat([p[-1].to(device)
                                     for p in pending]).tolist())
            for index, sample, gt_box, masks, scalars in pending:
                results[index] = self._scores(
                    sample, gt_box, masks,
                    [next(values) for _ in range(len(scalars))])
        self.results.extend(results)

    def _device_of(self, sample: dict) -> Optional[torch.device]:
        """The device of ``seg_logits`` if the sample's maps are all torch
        tensors and no ``eval_size`` is set; None (numpy path) otherwise."""
        if self.eval_size is not None:
            return None
        keys = ['seg_logits', 'gt_sem_seg']
        if self.mask_threshold is None:
            keys.append('pred_sem_seg')
        if 'pred_proposal_seg' in sample:
            keys.append('pred_proposal_seg')
        data = [(sample.get(key) or {}).get('data') for key in keys]
        if all(isinstance(d, torch.Tensor) for d in data):
            return data[0].device
        return None

    def _process_sample(self, sample: dict) -> dict:
        """Score one sample with numpy / cv2 on the host."""
        response, gt_mask, gt_box, masks = self._inputs(sample)
        scalars = _host_scalars(response, gt_mask, [mask for _, mask in masks],
                                self.box_mode == 'all')
        return self._scores(sample, gt_box, masks, scalars)

    def _inputs(self, sample: dict, device=None) -> tuple:
        """The checked maps of a sample, as numpy arrays (resized to
        ``eval_size``) or, with ``device``, tensors there.

        Returns ``(response, gt_mask, gt_box, masks)``: the response
        [H, W] (float32), the GT mask [H, W] (bool), the GT box [4] (xyxy,
        float64, numpy) and ``masks``, ``[('pred', [H, W] bool)]`` plus
        ``('segmentor', [H, W] bool)`` with ``pred_proposal_seg``.
        """
        response = _map_2d(sample, 'seg_logits', device)
        response = (response.astype(np.float32)
                    if device is None else response.float())
        gt_mask = _map_2d(sample, 'gt_sem_seg', device) > 0
        if sample.get('gt_bbox') is None:
            raise KeyError('data sample has no gt_bbox (xyxy GT box)')
        gt_box = to_numpy(sample['gt_bbox']).astype(np.float64).reshape(4)
        if self.gt_box == 'released':
            gt_box = released_gt_box(gt_box)
        pred_sem_seg = None
        if self.mask_threshold is None:
            pred_sem_seg = _map_2d(sample, 'pred_sem_seg', device) > 0
        for name, arr in (('seg_logits', response),
                          ('pred_sem_seg', pred_sem_seg)):
            at_eval_size = (self.predictions_at_eval_size
                            and arr is not None
                            and tuple(arr.shape) == self.eval_size)
            if arr is not None and arr.shape != gt_mask.shape and \
                    not at_eval_size:
                raise ValueError(f'{name} {tuple(arr.shape)} and gt_sem_seg '
                                 f'{tuple(gt_mask.shape)} differ in shape')

        if self.eval_size is not None:
            (h, w), (eh, ew) = gt_mask.shape, self.eval_size
            response = cv2.resize(
                response, (ew, eh), interpolation=cv2.INTER_LINEAR)
            gt_mask = self._resize_mask(gt_mask)
            if pred_sem_seg is not None:
                pred_sem_seg = self._resize_mask(pred_sem_seg)
            gt_box = gt_box * np.array([ew / w, eh / h, ew / w, eh / h])

        if self.mask_threshold is not None:
            pred_mask = response >= self.mask_threshold
        else:
            pred_mask = pred_sem_seg
        masks = [('pred', pred_mask)]
        if 'pred_proposal_seg' in sample:
            proposal_mask = _map_2d(sample, 'pred_proposal_seg', device) > 0
            if self.eval_size is not None:
                proposal_mask = self._resize_mask(proposal_mask)
            elif proposal_mask.shape != gt_mask.shape:
                raise ValueError(
                    f'pred_proposal_seg {tuple(proposal_mask.shape)} and '
                    f'gt_sem_seg {tuple(gt_mask.shape)} differ in shape')
            masks.append(('segmentor', proposal_mask))
        return response, gt_mask, gt_box, masks

    def _scores(self, sample: dict, gt_box: np.ndarray, masks: list,
                scalars: List[int]) -> dict:
        """The result of a sample from its scalars (:func:`_device_scalars`
        layout; host side). ``masks`` (numpy or tensors) are only read for
        ``box_mode`` ``'largest_cc'`` / ``'any_box'``."""
        y, x, gt_at_peak = scalars[:3]
        peak = (y, x)
        result = dict(split=sample.get('split'))
        result.update({k: _scalar(sample.get(k)) for k in _ID_KEYS})
        result.update(
            mask_threshold=_scalar(sample.get('mask_threshold')),
            point_hit=bool(gt_at_peak),
            pointit_hit=peak_in_box(peak, gt_box, self.point_rule))
        per_mask = (len(scalars) - 3) // len(masks)
        for i, (name, mask) in enumerate(masks):
            counts = scalars[3 + i * per_mask:3 + (i + 1) * per_mask]
            scores = self._mask_scores(counts, mask, gt_box, peak)
            if name == 'pred':
                result.update(scores)
            else:
                result[name] = scores
        return result

    def _mask_scores(self, counts: List[int], pred_mask, gt_box: np.ndarray,
                     peak: Tuple[int, int]) -> dict:
        """Intersection, union, IoU and box hit of one predicted mask.

        ``counts``: ``[intersection, union]`` (+ the foreground box
        ``[nonempty, x1, y1, x2, y2]`` for ``box_mode='all'``); ``peak``:
        the response peak ``(y, x)``. The other box modes box ``pred_mask``
        [H, W] with cv2 (a tensor is copied to the host).
        """
        inter, union = counts[:2]
        scores = dict(intersection=inter, union=union,
                      iou=inter / union if union > 0 else self.empty_iou)
        if self.box_mode == 'any_box':
            scores['box_hit'], _, scores['box_iou'] = tris_box_hits(
                tris_generate_boxes(to_numpy(pred_mask)), peak, gt_box)
            return scores
        if self.box_mode == 'all':
            pred_box = (np.array(counts[3:], dtype=np.float64)
                        if counts[2] else None)
        else:
            pred_box = mask_to_box(to_numpy(pred_mask), self.box_mode)
        scores['box_hit'] = (pred_box is not None
                             and box_iou(pred_box, gt_box) > 0.5)
        return scores

    def _resize_mask(self, mask: np.ndarray) -> np.ndarray:
        """Nearest-neighbour resize of a bool mask [H, W] to eval_size."""
        eh, ew = self.eval_size
        return cv2.resize(
            mask.astype(np.uint8), (ew, eh),
            interpolation=self.nearest) > 0

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Aggregate per-sample results into per-split percentages."""
        if not results:
            raise ValueError(
                'RISMetric has no results to evaluate: process() received '
                'no data samples (is the evaluation dataloader empty?)')
        if self.first_expression:
            results = first_expression_per_ref(results)
        groups: Dict[Optional[str], List[dict]] = OrderedDict()
        for result in results:
            groups.setdefault(result['split'], []).append(result)

        metrics, rows = {}, []
        for split, group in groups.items():
            label = 'all' if split is None else split
            summary = self._summarize(group)
            rows.append([label] + list(summary.values()))
            for name, value in summary.items():
                metrics[name if split is None else f'{split}/{name}'] = value
            if all('segmentor' in r for r in group):
                segmentor = self._summarize(
                    [dict(r, **r['segmentor']) for r in group])
                rows.append([f'{label} (segmentor)'] +
                            list(segmentor.values()))
                for name in self._mask_metric_names():
                    key = f'segmentor/{name}'
                    metrics[key if split is None else f'{split}/{key}'] = \
                        segmentor[name]

        self._log(results, list(summary.keys()), rows)
        if self.output_file is not None:
            self._dump(results)
        return metrics

    def _summarize(self, group: List[dict]) -> Dict[str, float]:
        """Metrics (percent) of one group of per-sample results."""
        ious = np.array([r['iou'] for r in group], dtype=np.float64)
        total_union = sum(r['union'] for r in group)
        total_inter = sum(r['intersection'] for r in group)

        def percent(value: float) -> float:
            value = float(value) * 100
            return value if self.digits is None else round(value, self.digits)

        summary = OrderedDict(
            PointM=percent(np.mean([r['point_hit'] for r in group])),
            PointIt=percent(np.mean([r['pointit_hit'] for r in group])),
            AccBox=percent(np.mean([r['box_hit'] for r in group])))
        if self.box_mode == 'any_box':
            summary['BoxIoU'] = percent(np.mean([r['box_iou'] for r in group]))
        summary.update(
            mIoU=percent(ious.mean()),
            oIoU=percent((total_inter /
                          total_union) if total_union > 0 else 0.0))
        for t in self.prec_thresholds:
            summary[f'Prec@{t:g}'] = percent((ious >= t).mean())
        summary['num_samples'] = len(group)
        return summary

    def _mask_metric_names(self) -> List[str]:
        """The metrics that depend on the predicted mask only."""
        box = ['AccBox', 'BoxIoU'] if self.box_mode == 'any_box' else [
            'AccBox']
        return box + ['mIoU', 'oIoU'] + [
            f'Prec@{t:g}' for t in self.prec_thresholds]

    def _log(self, results: List[dict], names: List[str],
             rows: List[list]) -> None:
        """Log the per-split table, the mask threshold and resolution."""
        table = PrettyTable(['split'] + names)
        for row in rows:
            table.add_row(row)
        if self.mask_threshold is not None:
            threshold = f'metric option: {self.mask_threshold:g}'
        else:
            used = sorted({
                r['mask_threshold']
                for r in results if r['mask_threshold'] is not None
            })
            threshold = 'from the model: ' + (', '.join(
                f'{t:g}' for t in used) if used else 'unknown')
        resolution = ('original' if self.eval_size is None else
                      '{}x{}'.format(*self.eval_size))
        logger = MMLogger.get_current_instance()
        logger.info('RIS results:\n' + table.get_string())
        logger.info(f'Mask threshold {threshold}; '
                    f'evaluation resolution: {resolution}')

    def _dump(self, results: List[dict]) -> None:
        """Write one JSON line per sample to ``output_file`` atomically."""
        path = osp.abspath(self.output_file)
        mkdir_or_exist(osp.dirname(path))
        tmp_path = f'{path}.tmp{os.getpid()}'
        try:
            with open(tmp_path, 'w') as f:
                for result in results:
                    record = {k: result[k] for k in _DUMP_KEYS}
                    f.write(json.dumps(record) + '\n')
            os.replace(tmp_path, path)
        finally:
            if osp.exists(tmp_path):
                os.remove(tmp_path)
        MMLogger.get_current_instance().info(
            f'Per-sample RIS results written to {path}')
