"""Do two networks learn the same units? Correlation, matching, regression, CCA/SVCCA/PWCCA and CKA.

After Li, Yosinski, Clune, Lipson & Hopcroft, "Convergent Learning" (ICLR 2016); Raghu, Gilmer, Yosinski &
Sohl-Dickstein, "SVCCA" (NIPS 2017); Morcos, Raghu & Bengio, PWCCA (NeurIPS 2018); Kornblith, Norouzi,
Lee & Hinton, CKA (ICML 2019). Activations are (n_samples, n_units) arrays or tensors, or conv maps
(N, C, H, W) whose every spatial position is a sample; all statistics are streamed in float64 on the
device of the activations.
"""
from ._inputs import SampleCountError, SpatialSizeError, UndefinedSimilarityError, align_spatial, flatten_positions
from .cca import CCAResult, cca, cca_from_moments, pwcca, svcca
from .cka import linear_cka, linear_cka_from_moments
from .compare import Correspondence, LayerGrid, compare, layer_grid
from .correlation import CorrelationResult, StreamingCorrelation, correlation, correlation_from_moments
from .dft import dft_svcca
from .matching import MatchingResult, bipartite_matching, semi_matching
from .moments import StreamingMoments, accumulate
from .regression import RegressionResult, regression

__all__ = [
    "StreamingMoments", "StreamingCorrelation", "accumulate", "correlation", "correlation_from_moments",
    "CorrelationResult",
    "flatten_positions", "align_spatial", "semi_matching", "bipartite_matching", "MatchingResult",
    "regression", "RegressionResult", "cca", "svcca", "pwcca", "cca_from_moments", "dft_svcca", "CCAResult",
    "linear_cka", "linear_cka_from_moments", "compare", "layer_grid", "Correspondence", "LayerGrid",
    "SampleCountError", "SpatialSizeError", "UndefinedSimilarityError",
]
