"""Positive response map selection (PRMS, TRIS step 2)."""
from typing import List, Tuple

import torch
from torch import Tensor


@torch.no_grad()
def select_response_prms(responses: Tensor, image: Tensor, texts: List[str],
                         scorer) -> Tuple[int, Tensor]:
    """Pick the response map of a ref that best explains *all* its texts.

    Every expression ``s`` of a ref gives a map ``R_s``; the masked image
    ``R_s ⊙ I`` is scored against every expression ``t`` of the ref with a
    frozen CLIP, and the map with the largest ``Σ_t cos(E_img(R_s ⊙ I),
    E_txt(t))`` is kept.

    Args:
        responses (Tensor): ``[S, H, W]`` maps in [0, 1], one per expression.
        image (Tensor): ``[3, H, W]`` RGB in [0, 1].
        texts (list[str]): The ``S`` expressions of the ref.
        scorer (FrozenCLIPScorer): ``encode_image``/``encode_text`` giving
            unit embeddings.

    Returns:
        tuple: index of the selected map and the ``[S]`` summed similarities.
    """
    if responses.shape[0] != len(texts):
        raise ValueError(f'{responses.shape[0]} maps for {len(texts)} texts')
    masked = responses[:, None] * image[None]
    similarity = scorer.encode_image(masked) @ scorer.encode_text(texts).T
    scores = similarity.sum(dim=1)
    return int(scores.argmax()), scores
