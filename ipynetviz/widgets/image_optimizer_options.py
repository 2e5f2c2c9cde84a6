"""The feature-visualisation part of ImageOptimizer: parametrization, robustness, centre bias, diversity,
multifaceted and "compare regularizers" controls, and the method call they stand for.

Kept apart from :mod:`.image_optimizer` (which owns modes, targets, running and the gallery) so each file
has one responsibility; everything here is a thin mapping from controls to ``methods.optimize`` calls.
"""
from __future__ import annotations

import ipywidgets as W
import numpy as np

from ..methods.optimize import (CenterBias, Diversity, Fourier, Pixels, compare_regularizers, multifaceted,
                                standard_transforms, visualize)
from ..methods.units import input_pictures
from ..render import tile

PARAMS = [("Fourier 1/f (Olah)", "fourier"), ("pixels", "pixels")]
MAX_FACET_IMAGES = 2000  # multifaceted searches at most this many of the given images
DIVERSITY_WEIGHT = 20.0  # see Diversity's docstring: weight 2 did nothing measurable on shapes-cnn, 20 did


class FeatureVisOptions:
    """Controls for class / unit / layer pictures; ``kwargs(...)`` and ``job(...)`` turn them into a call.

    Args:
        insp: the inspector.
        images: the view's ImageSet, or None (then decorrelated colour and facets are unavailable).
    """

    def __init__(self, insp, images):
        self.insp, self.images = insp, images
        self.size = insp.input_size[-1] if insp.input_size else 64
        style = {"description_width": "initial"}
        self.param = W.Dropdown(options=PARAMS, value="fourier", description="parametrization", style=style,
                                layout=W.Layout(width="260px"))
        self.param.add_class("t-optimizer-param")
        self.colour = W.Checkbox(value=False, description="decorrelated colour", indent=False,
                                 disabled=images is None, layout=W.Layout(width="170px"))
        self.colour.add_class("t-optimizer-colour")
        self.transforms = W.Checkbox(value=True, description="robustness transforms", indent=False,
                                     layout=W.Layout(width="180px"))
        self.transforms.add_class("t-optimizer-transforms")
        self.center_bias = W.Checkbox(value=False, description="centre bias", indent=False,
                                      layout=W.Layout(width="120px"))
        self.center_bias.add_class("t-optimizer-center-bias")
        self.pictures = W.BoundedIntText(value=1, min=1, max=16, description="pictures (diversity)", style=style,
                                         layout=W.Layout(width="190px"))
        self.pictures.add_class("t-optimizer-pictures")
        self.facets = W.BoundedIntText(value=0, min=0, max=8, description="facets", style=style,
                                       disabled=images is None, layout=W.Layout(width="120px"))
        self.facets.add_class("t-optimizer-facets")
        self.compare = W.Checkbox(value=False, description="compare regularizers", indent=False,
                                  layout=W.Layout(width="180px"))
        self.compare.add_class("t-optimizer-compare")
        self.facet_view = W.Image(format="png")
        self.facet_view.add_class("t-optimizer-facet-clusters")
        self.facet_caption = W.HTML("")
        self.facet_caption.add_class("t-optimizer-facet-caption")
        self.box = W.VBox([W.HBox([self.param, self.colour, self.transforms, self.center_bias]),
                           W.HBox([self.pictures, self.facets, self.compare])])
        self.clusters = W.VBox([self.facet_caption, self.facet_view], layout=W.Layout(display="none"))

    def widgets(self) -> dict:
        return {"param": self.param, "colour": self.colour, "transforms": self.transforms,
                "center_bias": self.center_bias, "pictures": self.pictures, "facets": self.facets,
                "compare": self.compare}

    def parametrization(self, param: str, colour: bool):
        cls = Fourier if param == "fourier" else Pixels
        if colour and self.images is not None:
            return cls(colour=self._data(500))
        return cls() if param == "fourier" else "pixels"

    def _data(self, n: int) -> np.ndarray:
        return input_pictures(self.insp, self.images, list(range(min(n, len(self.images)))))

    def regularizers(self, sliders: list, transforms: bool, center_bias: bool) -> list:
        regs = list(sliders)
        if transforms:
            regs += standard_transforms(self.size)
        if center_bias:
            regs.append(CenterBias())
        return regs

    def diversity_layer(self, layer: str | None) -> str:
        """An early-middle conv layer for the Gram matrices (style, not content): conv2 of a 4-conv net."""
        convs = self.insp.conv_layers
        return convs[(len(convs) - 1) // 2] if convs else layer

    def job(self, objective, target, layer, s: dict, steps: int, lr: float, every: int):
        """``fn(callback, cancel) -> result`` for these settings (``s``: the trait values)."""
        insp = self.insp
        param = self.parametrization(s["param"], s["colour"])
        regs = self.regularizers(s["sliders"], s["transforms"], s["center_bias"])
        common = dict(steps=steps, lr=lr, callback_every=every)
        if s["compare"]:
            return lambda cb, cancel: compare_regularizers(insp, objective, callback=cb, cancel=cancel, **common)
        if s["facets"] > 0 and self.images is not None:
            data = self._data(MAX_FACET_IMAGES)
            top = min(len(data), max(5 * s["facets"], 20))
            return lambda cb, cancel: multifaceted(insp, target, data, facets=s["facets"], top=top,
                                                   objective=objective, param=param, regularizers=regs,
                                                   callback=cb, cancel=cancel, **common)
        batch = None
        if s["pictures"] > 1:
            batch = s["pictures"]
            regs = regs + [DIVERSITY_WEIGHT * Diversity(self.diversity_layer(layer))]
        return lambda cb, cancel: visualize(insp, objective, regularizers=regs, param=param, batch=batch,
                                            callback=cb, cancel=cancel, **common)

    def show_clusters(self, result) -> None:
        """Each facet's picture beside (up to 8 of) the images it was clustered from; hidden otherwise."""
        members = getattr(result, "members", None)
        if members is None or self.images is None:
            self.clusters.layout.display = "none"
            return
        rows = []
        for picture, idx in zip(result.images, members):
            shown = input_pictures(self.insp, self.images, [int(i) for i in idx[:8]])
            blank = np.full((8 - len(shown),) + picture.shape, 255, np.uint8)
            rows.append(np.concatenate([picture[None], shown, blank]))
        from ..render import to_png
        self.facet_view.value = to_png(tile(np.concatenate(rows), ncols=9, pad=2, scale=2)[0])
        self.facet_caption.value = ("<b>facets</b>: each row is one facet's picture, then the images of its "
                                    "cluster (" + ", ".join(f"{len(m)}" for m in members) + " images)")
        self.clusters.layout.display = None
