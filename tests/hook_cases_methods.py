"""Hook-removal cases for every public method (attribution, units, embedding, correspondence, optimize).

Normal run: ``target=Unit("conv2", 1)``, ``layer="conv2"``. Bad-target run: ``target=99``, ``layer="conv_9"``.
Module-that-raises run: ``target=1``, ``layer="fc"`` on a model whose last module always raises.
"""
from __future__ import annotations

from ipynetviz import methods as M
from ipynetviz.engine import Unit
from tests.hook_cases import case


def _cls(target):
    """Class-only methods get a class: the Unit of the normal run becomes class 1; bad targets stay bad."""
    return 1 if isinstance(target, Unit) else target


for _name in ("gradient", "saliency", "guided_backprop", "deconvnet"):
    def _attr(insp, images, target, layer, fn=getattr(M, _name)):
        insp.module(layer)
        fn(insp, images, target)
    case(_name)(_attr)


@case("occlusion")
def _occlusion(insp, images, target, layer):
    insp.module(layer)
    M.occlusion(insp, images[:1], _cls(target), window=16, stride=16)


@case("occlusion_progressive")
def _occlusion_prog(insp, images, target, layer):
    insp.module(layer)
    M.occlusion(insp, images[:1], _cls(target), window=8, stride=4, progressive=True, callback=lambda r: None)


@case("filters")
def _filters(insp, images, target, layer):
    M.filters(insp, layer if layer != "fc" else "conv1")


@case("top_patches")
def _patches(insp, images, target, layer):
    M.top_patches(insp, images, layer, k=2)


@case("nearest_neighbours")
def _neighbours(insp, images, target, layer):
    M.nearest_neighbours(insp, images, [0], layer, k=2)


@case("embed")
def _embed(insp, images, target, layer):
    M.embed(insp, images, layer, method="pca")


@case("compare")
def _compare(insp, images, target, layer):
    M.compare(insp, insp, images, layer, layer)


@case("scan")
def _scan(insp, images, target, layer):
    from ipynetviz.methods.scan import Correspondence, TopPatches, scan
    scan(insp, images, [TopPatches(layer, k=2), Correspondence(insp, layer)], batch_size=2)


@case("visualize")
def _visualize(insp, images, target, layer):
    M.visualize(insp, target, steps=2)


@case("visualize_fourier_diverse")
def _visualize_fourier(insp, images, target, layer):
    from ipynetviz.methods.optimize import CenterBias, Diversity, Fourier
    regs = M.standard_transforms(32) + [CenterBias(), Diversity(layer if layer != "fc" else "conv2")]
    M.visualize(insp, target, steps=2, batch=2, param=Fourier(colour=images), regularizers=regs)


@case("multifaceted")
def _multifaceted(insp, images, target, layer):
    M.multifaceted(insp, target, images, facets=2, top=3, steps=2)


@case("invert")
def _invert(insp, images, target, layer):
    M.invert(insp, images[:1], layer, steps=2)


@case("deep_dream")
def _dream(insp, images, target, layer):
    M.deep_dream(insp, images[:1], layer, octaves=1, steps=2)


@case("style_transfer")
def _style(insp, images, target, layer):
    M.style_transfer(insp, images[:1], images[1:2], content_layer=layer, style_layers=[layer], steps=2)


@case("adversarial")
def _adversarial(insp, images, target, layer):
    insp.module(layer)
    M.adversarial(insp, images[:2], target=_cls(target), steps=2)
