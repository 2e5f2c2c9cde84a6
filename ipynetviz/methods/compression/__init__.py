"""Deep Compression (Han, Mao & Dally 2016) and DSD training (Han et al. 2017), from a script.

Prune (``prune``, ``sensitivity``), share weights (``quantize``, trained quantization by ``retrain``),
encode in the paper's scheme into a real file (``encode``, ``save_compressed``, ``load_compressed``),
read the per-layer size table (``size_table``) and train dense-sparse-dense (``dsd``). Every method
leaves the model as it was, except ``apply`` of a result, ``retrain``/``dsd`` (which train, like
``train``) and ``load_compressed`` (which loads the file into the model given).
"""
from .dsd import DSDResult, dsd
from .encode import Encoded, LayerCode, encode
from .fileformat import CompressedFileError, LoadedFile, SavedFile, from_bytes, load_compressed, save_compressed, to_bytes
from .kmeans import KMeans1D, kmeans_1d
from .pipeline import DeepCompressionResult, copy_inspector, deep_compression, pruned_path
from .table import PAPER, SizeTable, size_table
from .layers import compressible_layers
from .probe import AccuracyProbe
from .prune import PruneResult, masks_of, prune
from .quantize import QuantizeResult, centroid_gradient, quantize
from .retrain import retrain
from .sensitivity import SensitivityResult, sensitivity

__all__ = ["prune", "PruneResult", "masks_of", "sensitivity", "SensitivityResult", "quantize", "QuantizeResult",
           "centroid_gradient", "kmeans_1d", "KMeans1D", "encode", "Encoded", "LayerCode", "save_compressed",
           "load_compressed", "to_bytes", "from_bytes", "SavedFile", "LoadedFile", "CompressedFileError",
           "retrain", "AccuracyProbe", "compressible_layers", "deep_compression", "DeepCompressionResult",
           "size_table", "SizeTable", "PAPER", "dsd", "DSDResult", "copy_inspector", "pruned_path"]
