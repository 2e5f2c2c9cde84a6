"""The shared selection that links every view: which layer, unit, image and class are chosen."""
from __future__ import annotations

import traitlets


class Selection(traitlets.HasTraits):
    """Layer, channel, position, image and target class shared by widgets (a plain traitlets object).

    Views observe it and write to it, so clicking a filter tile in one view moves every other view.

    Example:
        >>> s = Selection(layer="conv1")
        >>> seen = []
        >>> s.observe(lambda ch: seen.append(ch["new"]), names="channel")
        >>> s.channel = 3
        >>> seen
        [3]
    """

    layer = traitlets.Unicode(None, allow_none=True, help="dotted module name of the selected layer")
    channel = traitlets.Int(None, allow_none=True, help="selected channel (unit) of the layer")
    position = traitlets.Tuple(None, allow_none=True, help="selected (y, x) within the feature map")
    image_index = traitlets.Int(0, help="index of the selected image in the view's image list")
    target = traitlets.Int(None, allow_none=True, help="selected class index; None means the predicted class")

    def __repr__(self) -> str:
        return (f"Selection(layer={self.layer!r}, channel={self.channel}, position={self.position}, "
                f"image_index={self.image_index}, target={self.target})")
