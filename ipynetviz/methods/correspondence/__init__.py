"""Do two networks learn the same units? Correlation, matching, regression, CCA/SVCCA/PWCCA and CKA.

After Li, Yosinski, Clune, Lipson & Hopcroft, "Convergent Learning" (ICLR 2016); Raghu, Gilmer, Yosinski &
Sohl-Dickstein, "SVCCA" (NIPS 2017); Morcos, Raghu & Bengio, PWCCA (NeurIPS 2018); Kornblith, Norouzi,
Lee & Hinton, CKA (ICML 2019). Activations are (n_samples, n_units) arrays or tensors, or conv maps
(N, C, H, W) whose every spatial position is a sample; all statistics are streamed in float64 on the
device of the activations.
"""
from ._inputs import SampleCountError, SpatialSizeError, UndefinedSimilarityError
from .cca import CCAResult, cca, pwcca, svcca
from .cka import linear_cka
from .compare import CorrespondenceResult, LayerGridResult, compare, layer_grid
from .correlation import CorrelationResult, StreamingCorrelation, correlation
from .dft import dft_svcca
from .matching import MatchingResult, bipartite_matching, semi_matching
from .moments import StreamingMoments
from .regression import RegressionResult, regression

# verbs, their results, the streaming state for data that does not fit at once, and the errors they raise;
# helpers (flatten_positions, align_spatial, *_from_moments) stay in their modules
__all__ = [
    "correlation", "semi_matching", "bipartite_matching", "regression", "cca", "svcca", "pwcca", "dft_svcca",
    "linear_cka", "compare", "layer_grid",
    "CorrelationResult", "MatchingResult", "RegressionResult", "CCAResult", "CorrespondenceResult", "LayerGridResult",
    "StreamingMoments", "StreamingCorrelation",
    "SampleCountError", "SpatialSizeError", "UndefinedSimilarityError",
]
