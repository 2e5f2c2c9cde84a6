"""Representation maps: PCA, t-SNE and UMAP of a layer's codes, of pixels, or of any feature matrix.

Example:
    >>> from sklearn.datasets import make_blobs
    >>> x, y = make_blobs(300, 16, centers=3, random_state=0)
    >>> e = embed_features(x, "tsne", labels=y, perplexity=20)
    >>> e.coords.shape, e.trustworthiness > 0.9
    ((300, 2), True)
"""
from .core import EmbeddingWarning, TSNEOptions, embed_features, map_trustworthiness
from .features import FeaturesResult, embed, embed_pixels, layer_features, pixel_features
from .pca import PCAResult, pca
from .result import EmbeddingResult
from .tsne import EmbeddingFrame

# verbs (embed a layer, pixels or any features; the features themselves; PCA; the map's trustworthiness),
# their results and the warning they give; exact_knn and the t-SNE plumbing stay in their modules
__all__ = ["embed", "embed_pixels", "embed_features", "layer_features", "pixel_features", "pca", "map_trustworthiness",
           "EmbeddingResult", "EmbeddingFrame", "FeaturesResult", "PCAResult", "TSNEOptions", "EmbeddingWarning"]
