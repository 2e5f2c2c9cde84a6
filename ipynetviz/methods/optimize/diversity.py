"""The diversity term: a batch of pictures for one objective, pushed apart in style (Olah et al. 2017).

Optimising one unit from several starts often gives the same picture several times. Olah, Mordvintsev &
Schubert ("Feature Visualization", Distill 2017) add a penalty on how alike the pictures' *styles* are: the
Gram matrix of a layer's activations (which features occur together, wherever they are; Gatys et al.) is
computed per picture, and the mean pairwise cosine similarity of the Gram matrices is subtracted from the
objective. The pictures then show different facets of what excites the unit.
"""
from __future__ import annotations

import torch

from ipynetviz.engine.errors import SettingError

from .objectives import BoundTerm, Term

__all__ = ["Diversity", "gram_similarity"]


def gram_similarity(acts: torch.Tensor) -> torch.Tensor:
    """Each sample's mean cosine similarity to the other samples' Gram matrices, (N,).

    Args:
        acts: activations (N, C, H, W) or (N, C).
    """
    n, c = acts.shape[:2]
    f = acts.reshape(n, c, -1)
    g = torch.bmm(f, f.transpose(1, 2)).reshape(n, -1)
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = g @ g.T
    off = sim.sum(1) - sim.diagonal()
    return off / (n - 1)


class Diversity(Term):
    """The mean pairwise cosine similarity of a layer's Gram matrices over the batch; a *penalty*.

    Subtract it (``regularizers=[Diversity("relu3")]`` or ``Unit("conv4", 3) - 2 * Diversity("relu3")``) to push
    a batch apart; it needs a batch of at least 2 pictures of one objective (``batch=4``).

    Args:
        layer: the layer whose Gram matrices are compared (a middle layer: style, not content).

    Example:
        >>> round(float(gram_similarity(torch.eye(2).view(2, 2, 1))[0]), 3)
        0.0
    """

    def __init__(self, layer: str):
        super().__init__()
        self.layer = layer

    def describe(self) -> str:
        return f"diversity({self.layer})"

    def bind(self, insp, n: int) -> BoundTerm:
        insp.module(self.layer)
        if n < 2:
            raise SettingError(f"Diversity compares pictures in a batch, but the batch has {n}; pass batch=4 "
                               "(several pictures of one objective) or drop the Diversity term")
        return BoundTerm(lambda ctx: gram_similarity(ctx.captured[self.layer]), (self.layer,), False)
