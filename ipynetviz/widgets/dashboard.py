"""Dashboard: one page of linked views in the spirit of the Deep Visualization Toolbox (Yosinski et al. 2015).

The image strip and layer list with every feature map (ActivationBrowser), the selected unit's guided backprop
or deconvnet (NeuronPicker), the selected image's occlusion map (OcclusionExplorer), and the layer's filters with
the unit's own outlined (FilterGrid); the browser also shows the unit's top patches. All share one Selection, so
a click anywhere moves every panel. Laid out with ipywidgets' TwoByTwoLayout to fit a 1280 x 800 projector with the
page's margins (1240 x 760).
"""
from __future__ import annotations

import ipywidgets as W

from ..engine import Selection, as_imageset
from .base import FrontendSync, FrontendSynced
from .activation_browser import ActivationBrowser
from .filter_grid import FilterGrid
from .neuron_picker import NeuronPicker
from .occlusion_explorer import OcclusionExplorer

WIDTH, HEIGHT = 1240, 760  # a 1280 x 800 screen less the page's margins


class Dashboard(FrontendSynced, W.VBox):
    """Four linked views on one page, all following one :class:`ipynetviz.Selection`.

    Args:
        insp: an :class:`ipynetviz.engine.Inspector`.
        data: the images (anything :func:`ipynetviz.engine.as_imageset` accepts); the first ``max_thumbs`` form
            the strip.
        layer: the layer shown first (default: the browser's default).
        selection: the shared selection (default: a new one).
        max_thumbs: images in the strip.
        synchronous: compute in the caller's thread (scripts and tests) instead of background workers.

    Attributes: ``selection``, and the panels ``browser``, ``picker``, ``occlusion``, ``filters``.

    Example:
        >>> dash = Dashboard(insp, images)            # doctest: +SKIP
        >>> dash.selection.channel = 7                # every panel follows   # doctest: +SKIP
    """

    def __init__(self, insp, data, layer: str | None = None, selection: Selection | None = None,
                 max_thumbs: int = 16, synchronous: bool = False, **kw):
        self.insp = insp
        self.selection = selection if selection is not None else Selection()
        images = as_imageset(data)
        if layer is not None:
            self.selection.layer = layer
        self.browser = ActivationBrowser(insp, images, layer=layer, selection=self.selection,
                                         max_thumbs=max_thumbs, synchronous=synchronous)
        self.picker = NeuronPicker(insp, images, layer=self.browser.layer, selection=self.selection,
                                   max_thumbs=max_thumbs, synchronous=synchronous)
        self.occlusion = OcclusionExplorer(insp, images, selection=self.selection, max_thumbs=max_thumbs,
                                           synchronous=synchronous)
        self.filters = FilterGrid(insp, selection=self.selection)
        # one image strip and one set of maps on the page: the browser's; the others follow the selection
        for part in (self.picker.thumbs, self.picker.maps, self.occlusion.thumbs):
            part.layout.display = "none"
        self.panels = W.TwoByTwoLayout(top_left=self.browser, top_right=self.picker,
                                       bottom_left=self.filters, bottom_right=self.occlusion,
                                       merge=False, grid_gap="6px",
                                       layout=W.Layout(width=f"{WIDTH}px", height=f"{HEIGHT}px", overflow="auto"))
        self.frontend_sync = FrontendSync(self)
        super().__init__([self.panels, self.frontend_sync], **kw)
        self.add_class("t-dashboard")

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until every panel's background work is done (scripts and tests)."""
        return all(v.wait(timeout) for v in (self.browser, self.picker, self.occlusion, self.filters))
