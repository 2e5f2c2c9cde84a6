"""Tensors and arrays to pictures: normalisation, colormaps, overlays, tiling, PNG (numpy + Pillow only)."""
from .colors import colorize, lut, normalize
from .images import TileLayout, gray_tiles, overlay, resize, tile, to_data_url, to_hwc_uint8, to_png

__all__ = ["colorize", "lut", "normalize", "TileLayout", "tile", "overlay", "gray_tiles", "resize", "to_png",
           "to_data_url", "to_hwc_uint8"]
