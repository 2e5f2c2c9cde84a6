"""What a unit responds to: its filters, its top activating patches, and nearest neighbours in feature space."""
from ._images import input_pictures
from .filters import FilterResult, filters
from .neighbours import Neighbours, nearest_neighbours
from .patches import TopPatches, UnitPatches, top_patches

__all__ = ["FilterResult", "filters", "TopPatches", "UnitPatches", "top_patches", "Neighbours",
           "nearest_neighbours", "input_pictures"]
