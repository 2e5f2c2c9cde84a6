"""Representation maps: PCA, t-SNE and UMAP of a layer's codes, of pixels, or of any feature matrix.

Example:
    >>> from sklearn.datasets import make_blobs
    >>> x, y = make_blobs(300, 16, centers=3, random_state=0)
    >>> e = embed_features(x, "tsne", labels=y, perplexity=20)
    >>> e.coords.shape, e.trustworthiness > 0.9
    ((300, 2), True)
"""
from .core import EmbeddingWarning, embed_features, map_trustworthiness
from .features import Features, embed, embed_pixels, layer_features, pixel_features
from .pca import PCAResult, pca
from .result import Embedding
from .tsne import EmbeddingFrame, exact_knn

__all__ = ["Embedding", "EmbeddingFrame", "EmbeddingWarning", "Features", "PCAResult", "embed", "embed_features",
           "embed_pixels", "exact_knn", "layer_features", "map_trustworthiness", "pca", "pixel_features"]
