"""What a unit responds to: its filters, its top activating patches, and nearest neighbours in feature space."""
from ._images import input_pictures
from .filters import FilterResult, filters
from .neighbours import NeighboursResult, nearest_neighbours
from .patches import TopPatchesResult, UnitPatches, top_patches

# verbs, their results, and the pictures of data-set images as the units saw them; streaming helpers stay in
# their modules
__all__ = ["filters", "top_patches", "nearest_neighbours", "input_pictures", "FilterResult", "TopPatchesResult",
           "UnitPatches", "NeighboursResult"]
