"""Top-9 patches for every channel of a layer vs a plain forward pass of the same images up to that layer.

Goal (issue 4): the scan runs at >= 0.8x the throughput of the plain forward pass (model truncated after the
layer, same batches, same uint8 -> model-input conversion); on the teaching model, 10,000 images in seconds
on 2 CPU threads. The top-patch time includes everything a user waits for: the streamed pass, the running
top-k on the device, and cutting the crops. Also times one nearest-neighbour query over the same images.

    python benchmarks/bench_top_patches.py [--n 10000] [--batch-size 256] [--device cpu] [--threads 2]

Uses the trained teaching model and images (``zoo.load("shapes-cnn")``, ``zoo.shapes``) when they exist, else
the same architecture with random weights and random 64x64 images (said in the output and the JSON).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from benchmarks._common import cuda_sync, record, setup  # noqa: E402
from ipynetviz.engine import Inspector  # noqa: E402
from ipynetviz.methods.units import nearest_neighbours, top_patches  # noqa: E402


def teaching_model(device):
    """(inspector, description): the trained shapes CNN, or its architecture with random weights."""
    from ipynetviz import zoo
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            insp = zoo.load("shapes-cnn")
        return Inspector(insp.model, transform=insp.transform, device=device, class_names=insp.class_names,
                         input_size=insp.input_size), "zoo shapes-cnn (trained)"
    except Exception as err:  # the zoo's weights are not built yet
        from ipynetviz.zoo.models import shapes_cnn
        torch.manual_seed(0)
        return Inspector(shapes_cnn(), device=device, input_size=(3, 64, 64)), \
            f"shapes_cnn architecture, random weights ({type(err).__name__}: {err})"


def teaching_images(n: int):
    from ipynetviz import zoo
    try:
        images, _ = zoo.shapes(n, split="test")
        return torch.as_tensor(images), "zoo.shapes test split"
    except Exception as err:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g), \
            f"random uint8 64x64 ({type(err).__name__})"


def truncated(model: nn.Module, layer: str) -> nn.Module:
    """The model up to ``layer`` as a plain module (Sequential models only)."""
    names = [n for n, _ in model.named_children()]
    if isinstance(model, nn.Sequential) and layer in names:
        return model[:names.index(layer) + 1]
    raise SystemExit(f"the plain baseline needs a Sequential model with top-level layer {layer!r}")


def best_of(fn, repeat: int, sync) -> float:
    """Fastest of ``repeat`` runs (other processes share the 2 cores; the minimum is the least disturbed)."""
    times = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layers", nargs="*", default=["conv1", "relu2", "relu4"])
    args = ap.parse_args()
    setup(args.threads)
    insp, model_desc = teaching_model(args.device)
    images, data_desc = teaching_images(args.n)
    bs, n = args.batch_size, images.shape[0]
    sync = lambda: cuda_sync(insp.device)  # noqa: E731
    print(f"model: {model_desc}\nimages: {n} x {tuple(images.shape[1:])} ({data_desc}); device {insp.device}, "
          f"{torch.get_num_threads()} threads, batch {bs}")

    def to_input(batch):  # what the inspector does to uint8 images (transform, then to the device), unchecked
        x = insp.transform(batch) if insp.transform is not None else batch.float() / 255.0
        return x.to(insp.device)

    figures = {"model": model_desc, "images": data_desc, "n_images": n, "batch_size": bs,
               "threads": torch.get_num_threads(), "k": 9, "layers": {}}
    for layer in args.layers:
        head = truncated(insp.model, layer).eval()

        def plain():
            with torch.no_grad():
                for i in range(0, n, bs):
                    head(to_input(images[i:i + bs]))

        def scan():
            return top_patches(insp, images, layer, k=9, batch_size=bs)

        def stream_only():  # the engine's pass alone: what top_patches adds on top of it is the rest
            for _ in insp.iter_batches(images, [layer], batch_size=bs):
                pass

        top_patches(insp, images[:bs], layer, k=9, batch_size=bs)  # warm-up (and the receptive-field trace)
        plain()
        t_plain, t_scan, t_stream = [], [], []
        for _ in range(args.repeat):  # interleaved, so a busy moment hits all sides
            t_plain.append(best_of(plain, 1, sync))
            t_scan.append(best_of(scan, 1, sync))
            t_stream.append(best_of(stream_only, 1, sync))
        tp, ts, tst = min(t_plain), min(t_scan), min(t_stream)
        res = scan()
        ratio = tp / ts
        figures["layers"][layer] = {"channels": int(res.channels.size), "map": list(insp.layer_shape(layer)),
                                    "plain_seconds": tp, "top_patches_seconds": ts, "throughput_ratio": ratio,
                                    "plain_images_per_s": n / tp, "top_patches_images_per_s": n / ts,
                                    "engine_stream_seconds": tst, "engine_stream_ratio": tp / tst}
        print(f"{layer:>6} ({res.channels.size:3d} channels, map {insp.layer_shape(layer)}): plain forward "
              f"{tp:6.2f} s ({n / tp:7,.0f} img/s) | top-9 patches all channels {ts:6.2f} s ({n / ts:7,.0f} img/s)"
              f" | ratio {ratio:.2f}x (goal >= 0.8); the engine's iter_batches alone: {tst:.2f} s, "
              f"ratio {tp / tst:.2f}x")

    last = args.layers[-1]
    t_nn = best_of(lambda: nearest_neighbours(insp, images, 0, last, k=9, batch_size=bs), 1, sync)
    figures["nearest_neighbours_seconds"] = t_nn
    print(f"nearest_neighbours: 1 query, {last} features and pixels, {n} images: {t_nn:.2f} s")
    out = record("top_patches", figures, device=str(insp.device))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
