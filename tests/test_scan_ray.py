"""engine="ray": exactly the in-process answer on 2,000 JPEG files, after a killed worker too; loopback only.

One local Ray (2 CPUs, started by ipynetviz as a user's scan would start it) serves every test here: Ray's
startup takes seconds, so it is paid once.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import ipynetviz as nv
from ipynetviz.methods.scan import Correspondence, TopPatches, scan

ray = pytest.importorskip("ray")

LAYERS = ["conv1", "relu2", "relu4"]


@pytest.fixture(scope="module")
def local_ray():
    from ipynetviz.methods.scan.ray_engine import start_local_ray

    if ray.is_initialized():  # pragma: no cover - another module's Ray would not be ours to check
        ray.shutdown()
    start_local_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def nets():
    return nv.zoo.load("shapes-cnn", seed=0, device="cpu"), nv.zoo.load("shapes-cnn", seed=1, device="cpu")


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """2,000 zoo test images written as JPEG files in class folders, plus one corrupt file."""
    root = tmp_path_factory.mktemp("zoo-jpeg")
    images, labels = nv.zoo.shapes(2000, split="test")
    for i, (im, label) in enumerate(zip(images, labels)):
        d = root / f"{int(label):02d}"
        d.mkdir(exist_ok=True)
        Image.fromarray(im.transpose(1, 2, 0)).save(d / f"{i:05d}.jpg", quality=90)
    (root / "00" / "corrupt.jpg").write_bytes(b"\xff\xd8 broken")
    return root


def assert_same(local, remote):
    assert remote.engine == "ray" and remote.complete
    assert (remote.n_images, remote.n_files, remote.skipped) == (local.n_images, local.n_files, local.skipped)
    for layer, got in remote.top_patches.items():
        want = local.top_patches[layer]
        np.testing.assert_array_equal(got.image_indices, want.image_indices)
        np.testing.assert_array_equal(got.positions, want.positions)
        np.testing.assert_array_equal(got.scores, want.scores)  # bit for bit
    for pair, got in remote.correspondence.items():
        want = local.correspondence[pair]
        np.testing.assert_allclose(got.correlation_.corr, want.correlation_.corr, atol=1e-6)
        assert got.cka_ == pytest.approx(want.cka_, abs=1e-6)


@pytest.fixture(scope="module")
def local_result(nets, jpeg_folder):
    a, b = nets
    return scan(a, jpeg_folder, [TopPatches(LAYERS, k=9), Correspondence(b, "relu4")], batch_size=128)


def test_ray_scan_of_2000_jpegs_equals_the_in_process_scan(local_ray, nets, jpeg_folder, local_result):
    a, b = nets
    remote = scan(a, jpeg_folder, [TopPatches(LAYERS, k=9), Correspondence(b, "relu4")], engine="ray",
                  batch_size=128, num_actors=1)
    assert local_result.n_images == 2000 and [p for p, _ in local_result.skipped] == ["00/corrupt.jpg"]
    assert_same(local_result, remote)


def test_a_worker_killed_mid_scan_is_retried_and_the_answer_is_still_exact(local_ray, nets, jpeg_folder,
                                                                           local_result, tmp_path):
    a, b = nets
    marker = tmp_path / "killed"
    remote = scan(a, jpeg_folder, [TopPatches(LAYERS, k=9), Correspondence(b, "relu4")], engine="ray",
                  batch_size=128, num_actors=1, _kill_once=str(marker))
    assert marker.exists()  # the actor died (os._exit) on its third batch; Ray ran that batch again, once
    assert_same(local_result, remote)


def test_a_model_error_in_an_actor_reaches_the_caller_with_its_fix(local_ray, nets, tmp_path):
    images = nv.zoo.shapes(4, split="test")[0]
    for i, im in enumerate(images):
        Image.fromarray(im.transpose(1, 2, 0)).resize((64, 64 + 8 * (i % 2))).save(tmp_path / f"{i}.png")
    from ipynetviz.engine.errors import InputError
    with pytest.raises(InputError, match=r"Preprocess\(mean, std, size"):
        scan(nets[0], tmp_path, [TopPatches("conv1", k=2)], engine="ray", batch_size=4)


def _session_pids(ray_module) -> set[int]:
    import psutil

    session = os.path.basename(ray_module._private.worker._global_node.get_session_dir_path())
    pids = {os.getpid()}
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(session in arg for arg in (p.info["cmdline"] or [])):
                pids.add(p.pid)
        except (psutil.Error, TypeError):
            continue
    for pid in list(pids):
        try:
            pids |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
        except psutil.Error:
            continue
    return pids


def test_the_local_ray_listens_on_loopback_only(local_ray, nets):
    import psutil

    scan(nets[0], nv.zoo.shapes(64, split="test")[0], [TopPatches("conv1", k=2)], engine="ray", batch_size=32)
    pids = _session_pids(local_ray)
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    names = {psutil.Process(c.pid).name() for c in listening}
    assert len(listening) >= 3 and any("raylet" in n or "gcs" in n for n in names), names
    for c in listening:
        assert c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), (c.laddr, psutil.Process(c.pid).name())
    assert os.environ.get("RAY_USAGE_STATS_ENABLED") == "0"
