"""Overlay pictures: image + response heat map + mask outline + expression."""
import textwrap
from typing import Optional

import cv2
import numpy as np


def draw_ris_overlay(image: np.ndarray,
                     text: str,
                     response: Optional[np.ndarray] = None,
                     pred_mask: Optional[np.ndarray] = None,
                     gt_mask: Optional[np.ndarray] = None,
                     alpha: float = 0.45,
                     min_side: int = 320) -> np.ndarray:
    """Draw one referring prediction.

    Args:
        image (np.ndarray): ``[H, W, 3]`` uint8 RGB image.
        text (str): The expression, written in a banner below the image.
        response (np.ndarray, optional): ``[H, W]`` response in [0, 1],
            blended as a JET heat map.
        pred_mask (np.ndarray, optional): ``[H, W]`` predicted mask, drawn
            as a green contour and tint.
        gt_mask (np.ndarray, optional): ``[H, W]`` GT mask, drawn as a red
            contour.
        alpha (float): Heat-map opacity.
        min_side (int): Smaller pictures are enlarged (nearest neighbour)
            to this shorter side so that small images stay legible.

    Returns:
        np.ndarray: ``[H + banner, W, 3]`` uint8 RGB picture.
    """
    factor = max(1, int(np.ceil(min_side / min(image.shape[:2]))))
    if factor > 1:
        def enlarge(array):
            return None if array is None else np.repeat(
                np.repeat(array, factor, axis=0), factor, axis=1)
        image, response, pred_mask, gt_mask = map(
            enlarge, (image, response, pred_mask, gt_mask))
    canvas = image.astype(np.float32).copy()
    height, width = canvas.shape[:2]
    if response is not None:
        heat = np.clip(response, 0, 1)
        heat = cv2.applyColorMap((heat * 255).astype(np.uint8),
                                 cv2.COLORMAP_JET)[..., ::-1]
        canvas = (1 - alpha) * canvas + alpha * heat
    if pred_mask is not None:
        fg = pred_mask.astype(bool)
        canvas[fg] = 0.7 * canvas[fg] + 0.3 * np.array([0, 255, 0])
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    thickness = max(1, round(min(height, width) / 200))
    for mask, colour in ((gt_mask, (255, 0, 0)), (pred_mask, (0, 255, 0))):
        if mask is None:
            continue
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, colour, thickness)

    scale = max(0.45, width / 900)
    line_h = int(28 * scale) + 4
    chars = max(10, int(width / (11 * scale)))
    lines = textwrap.wrap(text, chars) or ['']
    banner = np.full((line_h * len(lines) + 6, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(banner, line, (4, line_h * (i + 1)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    max(1, int(scale * 1.5)), cv2.LINE_AA)
    return np.concatenate([canvas, banner], axis=0)
