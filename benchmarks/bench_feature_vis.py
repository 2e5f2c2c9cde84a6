"""Feature visualisation quality and speed, side by side with torch-lucent 0.1.8 in one process (issue 13).

For 10 classes and 10 units of the last conv layer of a teaching CNN, both libraries make one picture per
objective with their defaults at the same number of Adam steps (lr 0.05):
- ours: ``visualize(insp, obj)`` with no regularizer arguments (Fourier 1/f spectrum, sigmoid, Lucid's
  standard transforms scaled to the input size);
- Lucent: ``render_vis`` with ``param.image(size)`` (Fourier + decorrelated colour, its ImageNet colour
  matrix) and its ``standard_transforms``; ``fixed_image_size`` is the model's input size (Lucent would
  otherwise upsample to 224 px, a size the teaching models never saw) and ``preprocess=False`` with the
  model's own normalisation instead of ImageNet's.
Class objectives are the log-softmax probability of the class for both (``LogProb``), units the mean of
the feature map. Reported per library: the high-frequency power fraction (share of the grey picture's
spectral power, DC removed, above half the Nyquist frequency, radially; mean over pictures; the test
images' own value beside it), the class probability (min and mean), the unit activation (mean), time per
picture (each picture its own run) and 16 units as one batch vs 16 runs.

    python benchmarks/bench_feature_vis.py [--model shapes-cnn] [--steps 128] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import record, setup  # noqa: E402
from ipynetviz.engine import Unit  # noqa: E402
from ipynetviz.methods.optimize import LogProb, high_frequency_fraction, visualize  # noqa: E402


def unit_activation(insp, x: torch.Tensor, layer: str, channels) -> np.ndarray:
    with torch.no_grad():
        acts = insp.activations(x, [layer])[layer]
    return np.array([float(acts[i, c].mean()) for i, c in enumerate(channels)])


class Lucent:
    """torch-lucent's render_vis with its defaults, on an inspector's model and normalisation."""

    def __init__(self, insp):
        from lucent.optvis import objectives, param, render, transform
        self.objectives, self.param, self.render, self.transform = objectives, param, render, transform
        self.insp = insp
        self.c, self.h, self.w = insp.input_size
        mean, std = insp.transform.mean, insp.transform.std
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def _objective(self, kind: str, targets, layer: str | None):
        o = self.objectives
        if kind == "class":
            def logprob(k, i):
                return o.Objective(lambda model: -model("fc").log_softmax(1)[i, k])
            terms = [logprob(k, i) for i, k in enumerate(targets)]
        else:
            terms = [o.channel(layer, c, batch=i) for i, c in enumerate(targets)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    def run(self, kind: str, targets, steps: int, layer: str | None = None, seed: int = 0) -> np.ndarray:
        """Pictures (N, C, H, W) uint8 for ``targets`` as one batch."""
        torch.manual_seed(seed)
        np.random.seed(seed)
        n = len(targets)
        channels = None if self.c == 3 else self.c
        param_f = lambda: self.param.image(self.w, self.h, batch=n, channels=channels)  # noqa: E731
        normalise = lambda t: (t - self.mean) / self.std  # noqa: E731
        transforms = list(self.transform.standard_transforms) + [normalise]
        model = self.insp.model.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.render.render_vis(model, self._objective(kind, targets, layer), param_f, transforms=transforms,
                                         thresholds=(steps,), preprocess=False, progress=False, show_image=False,
                                         fixed_image_size=(self.h, self.w))
        for p in model.parameters():
            p.grad = None
        return (np.clip(out[-1], 0, 1) * 255).round().astype(np.uint8).transpose(0, 3, 1, 2)


def ours(insp, kind, targets, steps, layer=None, seed=0) -> np.ndarray:
    objs = [LogProb(k) for k in targets] if kind == "class" else [Unit(layer, c) for c in targets]
    return visualize(insp, objs, steps=steps, seed=seed).images


def measure(insp, name, run, images_ref, classes, units, layer, steps) -> dict:
    x_of = lambda ims: insp.prepare(ims)  # noqa: E731
    run("class", [0], 4)  # warm-up: first-use costs (lazy imports, FFT plans, allocator) are not per picture
    run("unit", [0], 4, layer)
    t = time.perf_counter()
    cls = np.concatenate([run("class", [k], steps) for k in classes])
    t_cls = (time.perf_counter() - t) / len(classes)
    t = time.perf_counter()
    uni = np.concatenate([run("unit", [c], steps, layer) for c in units])
    t_uni = (time.perf_counter() - t) / len(units)
    prob = insp.predict(x_of(cls))[0].numpy()[np.arange(len(classes)), classes]
    act = unit_activation(insp, x_of(uni), layer, units)
    row = {"library": name, "class_hf": float(high_frequency_fraction(cls).mean()),
           "unit_hf": float(high_frequency_fraction(uni).mean()), "class_prob_min": float(prob.min()),
           "class_prob_mean": float(prob.mean()), "unit_activation_mean": float(act.mean()),
           "s_per_class_picture": t_cls, "s_per_unit_picture": t_uni}
    return row, cls, uni


def batching(run, layer, steps) -> dict:
    units = list(range(16))
    t = time.perf_counter()
    run("unit", units, steps, layer)
    one = time.perf_counter() - t
    t = time.perf_counter()
    for c in units:
        run("unit", [c], steps, layer)
    many = time.perf_counter() - t
    return {"batch_of_16_s": one, "runs_16_s": many, "gain": many / one}


def save_pictures(path, rows_of_images) -> None:
    from PIL import Image

    from ipynetviz.render import tile
    grid = np.concatenate(rows_of_images)
    img = tile(grid, ncols=len(rows_of_images[0]), pad=1, scale=2)[0]
    Image.fromarray(img).save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-cnn")
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--batch-steps", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layer", default="conv4")
    args = ap.parse_args()
    setup(args.threads)
    from ipynetviz import zoo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        insp = zoo.load(args.model, device="cpu")
    data = zoo.shapes(100, "test")[0] if args.model.startswith("shapes") else zoo.digits("test")[0][:100]
    classes, units = list(range(10)), list(range(10))
    lucent = Lucent(insp)
    runs = {"ipynetviz": lambda *a: ours(insp, *a), "lucent": lambda *a: lucent.run(*a)}
    figures = {"model": args.model, "steps": args.steps, "layer": args.layer,
               "test_images_hf": float(high_frequency_fraction(np.asarray(data)).mean()), "rows": [],
               "batching": {}}
    pictures = []
    print(f"{args.model}: {args.steps} steps, {torch.get_num_threads()} threads; test images' high-frequency "
          f"fraction {figures['test_images_hf']:.3f}")
    print(f"{'library':10s} {'class hf':>9s} {'unit hf':>8s} {'p min':>6s} {'p mean':>7s} {'unit act':>9s} "
          f"{'s/class':>8s} {'s/unit':>7s}")
    for name, run in runs.items():
        row, cls, uni = measure(insp, name, run, data, classes, units, args.layer, args.steps)
        figures["rows"].append(row)
        pictures += [cls, uni]
        print(f"{name:10s} {row['class_hf']:9.3f} {row['unit_hf']:8.3f} {row['class_prob_min']:6.3f} "
              f"{row['class_prob_mean']:7.3f} {row['unit_activation_mean']:9.3f} {row['s_per_class_picture']:8.2f} "
              f"{row['s_per_unit_picture']:7.2f}")
    for name, run in runs.items():
        b = batching(run, args.layer, args.batch_steps)
        figures["batching"][name] = b
        print(f"{name:10s} 16 units x {args.batch_steps} steps: one batch {b['batch_of_16_s']:.2f} s, "
              f"16 runs {b['runs_16_s']:.2f} s, gain {b['gain']:.2f}x")
    out = record(f"feature_vis-{args.model}", figures, "cpu")
    png = out.with_suffix(".png")
    save_pictures(png, pictures)
    print(f"wrote {out} and {png} (rows: ours classes, ours units, Lucent classes, Lucent units)")


if __name__ == "__main__":
    main()
