"""Data-set-wide scans: in-process vs a plain forward loop, and Ray Data on this machine vs in-process.

Goals (issue 18):
* in-process ``scan`` (top-9 patches of every unit of every conv block + one correspondence pair) runs at
  >= 0.9x the throughput of a plain ``model(x)`` loop over the same decoded images;
* ``engine="ray"`` on a local 2-CPU Ray: the overhead ratio (Ray time / in-process time) for 2,000 and 20,000
  images read from JPEG files (both engines decode the same files; Ray's startup is reported apart);
* the plan for resnet50 over ImageNet's 1.28M training images on 8 GPUs is worked out in the README from the
  per-GPU throughput (measured with ``--resnet50`` where a GPU is available).

    python benchmarks/bench_scan.py [--n 2000 20000] [--threads 2] [--no-ray] [--resnet50 --device cuda]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import cuda_sync, record, setup  # noqa: E402
from ipynetviz import zoo  # noqa: E402
from ipynetviz.engine import Inspector, Preprocess  # noqa: E402
from ipynetviz.methods.scan import Correspondence, TopPatches, scan  # noqa: E402

LAYERS = ["relu1", "relu2", "relu3", "relu4"]


def write_jpegs(images: np.ndarray, root: Path) -> Path:
    for i, im in enumerate(images):
        d = root / f"{i // 1000:03d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im.transpose(1, 2, 0)).save(d / f"{i:06d}.jpg", quality=90)
    return root


CLOCK = time.perf_counter  # --cpu-time: this process's CPU time (fair on a machine that others load)


def plain_forward(insp, images: torch.Tensor, bs: int) -> float:
    model = insp.model.eval()
    t = CLOCK()
    with torch.no_grad():
        for i in range(0, len(images), bs):
            model(insp.transform(images[i:i + bs]).to(insp.device))
    cuda_sync(insp.device)
    return CLOCK() - t


def timed(fn, clock=None) -> tuple[float, object]:
    clock = clock or CLOCK
    t = clock()
    out = fn()
    return clock() - t, out


def in_process(insp, other, n: int, bs: int, repeat: int) -> dict:
    """Best-of-``repeat`` times, interleaved (a busy moment on the shared machine hits every side alike)."""
    images = torch.as_tensor(zoo.shapes(n, split="test")[0])
    cases = {
        "top_patches": ([TopPatches(LAYERS, k=9)], lambda: plain_forward(insp, images, bs)),
        "top_patches+correspondence": ([TopPatches(LAYERS, k=9), Correspondence(other, "relu4")],
                                       lambda: plain_forward(insp, images, bs) + plain_forward(other, images, bs)),
    }
    out = {}
    for name, (what, plain) in cases.items():
        scan(insp, images[:bs], what, batch_size=bs)  # warm-up (receptive-field trace, LAPACK, allocator)
        plain()
        t_plain, t_scan = [], []
        for _ in range(repeat):
            t_plain.append(plain())
            t_scan.append(timed(lambda: scan(insp, images, what, batch_size=bs))[0])
        tp, ts = min(t_plain), min(t_scan)
        base = "plain model(x)" if name == "top_patches" else "plain model_a(x) + model_b(x)"
        print(f"in-process {name}, {n} in-memory images: {base} {tp:.2f} s ({n / tp:,.0f} img/s) | scan {ts:.2f} s "
              f"({n / ts:,.0f} img/s) | ratio {tp / ts:.2f}x (goal >= 0.9x)")
        out[name] = {"n": n, "plain_seconds": tp, "scan_seconds": ts, "ratio": tp / ts}
    return out


def folders(insp, other, sizes, bs: int, use_ray: bool, repeat: int) -> dict:
    out = {}
    what = [TopPatches(LAYERS, k=9), Correspondence(other, "relu4")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    try:
        if use_ray:
            from ipynetviz.methods.scan.ray_engine import start_local_ray
            t_start, _ = timed(lambda: start_local_ray(num_cpus=2), time.perf_counter)
            print(f"local Ray start (2 CPUs, loopback only): {t_start:.1f} s")
            out["ray_start_seconds"] = t_start
            # one small scan first: actors import torch once; later scans start actors again (counted in)
            scan(insp, write_jpegs(zoo.shapes(256, split="test")[0], tmp / "warm"), what, engine="ray",
                 batch_size=bs)
        for n in sizes:
            root = write_jpegs(zoo.shapes(n, split="test")[0], tmp / str(n))
            t_local, local = min((timed(lambda: scan(insp, root, what, batch_size=bs), time.perf_counter)
                                  for _ in range(repeat)), key=lambda pair: pair[0])
            row = {"local_seconds": t_local, "local_images_per_s": n / t_local}
            msg = f"{n:>6} JPEG files: in-process {t_local:6.2f} s ({n / t_local:6,.0f} img/s)"
            if use_ray:
                t_ray, remote = min((timed(lambda: scan(insp, root, what, engine="ray", batch_size=bs),
                                           time.perf_counter) for _ in range(repeat)), key=lambda pair: pair[0])
                same = all(np.array_equal(local.top_patches[l].image_indices, remote.top_patches[l].image_indices)
                           and np.array_equal(local.top_patches[l].scores, remote.top_patches[l].scores)
                           for l in LAYERS)
                row.update(ray_seconds=t_ray, ray_images_per_s=n / t_ray, overhead_ratio=t_ray / t_local,
                           exact=bool(same))
                msg += (f" | Ray Data on 2 CPUs {t_ray:6.2f} s ({n / t_ray:6,.0f} img/s) | overhead "
                        f"{t_ray / t_local:.2f}x | same top-9 {same}")
            print(msg)
            out[str(n)] = row
            shutil.rmtree(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resnet50_rate(device: str, bs: int, n_batches: int = 20) -> dict:
    """Images/s for top-9 of every unit of resnet50's 16 bottleneck outputs + layer4 on one device."""
    import torchvision
    model = torchvision.models.resnet50(weights=None)
    insp = Inspector(model, transform=Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), device=device,
                     input_size=(3, 224, 224), batch_size=bs)
    layers = [n for n in insp.layers if n.count(".") == 1 and n.startswith("layer")]
    images = torch.randint(0, 256, (bs * n_batches, 3, 224, 224), dtype=torch.uint8)
    scan(insp, images[:bs], [TopPatches(layers, k=9)], batch_size=bs)
    t, _ = timed(lambda: scan(insp, images, [TopPatches(layers, k=9)], batch_size=bs))
    t_plain = plain_forward(insp, images, bs)
    rate = len(images) / t
    print(f"resnet50 on {device}: top-9 of every unit of {len(layers)} blocks {rate:,.0f} img/s (plain "
          f"forward {len(images) / t_plain:,.0f} img/s); 1.28M images on 8 such devices: "
          f"{1.28e6 / (8 * rate) / 60:.1f} min of model time")
    return {"device": device, "layers": len(layers), "images_per_s": rate, "plain_images_per_s": len(images) / t_plain}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="*", default=[2000, 20000])
    ap.add_argument("--in-process-n", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--folder-repeat", type=int, default=1)
    ap.add_argument("--cpu-time", action="store_true", help="in-process ratios from CPU time (use --threads 1)")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--resnet50", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    setup(args.threads)
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    insp = zoo.load("shapes-cnn", seed=0, device=args.device)
    other = zoo.load("shapes-cnn", seed=1, device=args.device)
    figures = {"threads": torch.get_num_threads(), "batch_size": args.batch_size, "cpu_time": args.cpu_time,
               "load_average": list(__import__("os").getloadavg()),
               "in_process": in_process(insp, other, args.in_process_n, args.batch_size, args.repeat),
               "folders": folders(insp, other, args.n, args.batch_size, not args.no_ray, args.folder_repeat)}
    if args.resnet50:
        figures["resnet50"] = resnet50_rate(args.device, 64)
    print(f"wrote {record('scan', figures, device=args.device)}")


if __name__ == "__main__":
    main()
