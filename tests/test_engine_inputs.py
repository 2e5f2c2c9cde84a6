"""Every accepted image kind becomes the same model input; bad input gets an error naming the fix."""
import numpy as np
import pytest
import torch
from PIL import Image

from ipynetviz.engine import ImageSet, InputError, Inspector, Preprocess, as_imageset
from ipynetviz.engine.errors import DatasetError


def test_all_image_kinds_give_the_same_input(insp, images):
    ref = images.float() / 255.0
    hwc = images.permute(0, 2, 3, 1).numpy()
    pils = [Image.fromarray(a) for a in hwc]
    for kind in (images, images.numpy(), hwc, pils, list(hwc)):
        x = insp.prepare(kind)
        assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
        torch.testing.assert_close(x.cpu(), ref)
    one = insp.prepare(pils[2])
    torch.testing.assert_close(one.cpu(), ref[2:3])
    chw = insp.prepare(images[1])
    torch.testing.assert_close(chw.cpu(), ref[1:2])


def test_float_tensors_are_used_unchanged(insp):
    x = torch.randn(2, 3, 32, 32) * 5
    torch.testing.assert_close(insp.prepare(x).cpu(), x)
    torch.testing.assert_close(insp.prepare(x.double()).cpu(), x)  # cast to the model's dtype only


def test_preprocess_normalises_and_resizes_batched():
    p = Preprocess(mean=[0.5, 0.25, 0.0], std=[0.5, 0.25, 1.0], size=(16, 16))
    u = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    x = p(u)
    assert x.shape == (2, 3, 16, 16)
    torch.testing.assert_close(x[:, 0], torch.ones(2, 16, 16))
    torch.testing.assert_close(x[:, 1], torch.full((2, 16, 16), 3.0))
    assert torch.equal(p.invert(x), torch.full((2, 3, 16, 16), 255, dtype=torch.uint8))
    # PIL images of mixed sizes are resized by the transform
    pils = [Image.new("RGB", (20, 30), (255, 0, 0)), Image.new("RGB", (40, 40), (0, 255, 0))]
    assert p(pils).shape == (2, 3, 16, 16)


def test_per_image_torchvision_transform(cnn, images):
    from torchvision import transforms as T
    t = T.Compose([T.Resize((32, 32)), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    insp = Inspector(cnn, transform=t, input_size=(3, 32, 32))
    x = insp.prepare(images)
    torch.testing.assert_close(x.cpu(), (images.float() / 255 - 0.5) / 0.5, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad, fix", [
    (Image.new("L", (32, 32)), "img.convert('RGB')"),
    (Image.new("RGBA", (32, 32)), "img.convert('RGB')"),
    (torch.zeros(2, 1, 32, 32), "repeat(1, 3, 1, 1)"),
    (torch.zeros(0, 3, 32, 32), "at least one image"),
    ([], "at least one image"),
    (torch.full((2, 3, 32, 32), float("nan")), "NaN"),
    (torch.zeros(2, 3, 32, 32).index_fill_(0, torch.tensor([1]), float("inf")), "images [1]"),
    (torch.zeros(3, 3, 3, 3, 3), "(N, C, H, W)"),
])
def test_bad_input_names_the_fix(insp, bad, fix):
    with pytest.raises(InputError) as e:
        insp.prepare(bad)
    assert fix in str(e.value)


def test_wrong_size_names_the_expected_input():
    from torch import nn
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 2))
    insp = Inspector(m, input_size=(3, 32, 32))
    with pytest.raises(InputError, match=r"expects \(C, H, W\) = \(3, 32, 32\)"):
        insp.forward(torch.zeros(1, 3, 40, 40))


def test_imageset_kinds_and_errors(images):
    labels = np.arange(6) % 2
    for data in ((images, labels), ImageSet(images.permute(0, 2, 3, 1).numpy(), labels=labels)):
        s = as_imageset(data)
        assert len(s) == 6 and s.labels.tolist() == labels.tolist()
        assert s.images_uint8([0, 1]).shape == (2, 3, 32, 32)
        got = [sl for sl, _ in s.batches(4)]
        assert got == [slice(0, 4), slice(4, 6)]
    ds = torch.utils.data.TensorDataset(images, torch.tensor(labels))
    s = as_imageset(ds)
    assert s.labels.tolist() == labels.tolist() and len(s) == 6
    with pytest.raises(DatasetError, match="empty"):
        as_imageset(np.zeros((0, 3, 8, 8), np.uint8))
    with pytest.raises(DatasetError, match="labels"):
        ImageSet(images, labels=[1, 2])
    mixed = [Image.new("RGB", (8, 8)), Image.new("RGB", (9, 9))]
    with pytest.raises(InputError, match="mixed sizes"):
        Inspector(small := __import__("tests.conftest", fromlist=["small_cnn"]).small_cnn(),
                  input_size=(3, 32, 32)).activations(ImageSet(mixed), ["conv1"])


def test_one_way_back_to_pictures():
    """Attribution overlays, unit crops and optimised pictures all turn model input into pixels one way."""
    from ipynetviz.engine import Inspector, Preprocess
    from ipynetviz.engine.inputs import to_pictures
    from ipynetviz.methods.attribution import saliency
    from ipynetviz.methods.optimize.space import PixelSpace
    from ipynetviz.methods.units._images import input_pictures
    from tests.conftest import small_cnn

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    for transform in (Preprocess([0.4, 0.5, 0.6], [0.2, 0.25, 0.3]), None):
        insp = Inspector(small_cnn(), transform=transform, input_size=(3, 32, 32), device="cpu")
        x = insp.prepare(images)
        chw = insp.pictures(x)
        np.testing.assert_array_equal(chw, to_pictures(x, transform))
        # uint8 images survive the round trip (up to rounding)
        assert np.abs(chw.astype(int) - images.numpy().astype(int)).max() <= 1
        np.testing.assert_array_equal(PixelSpace(insp).to_uint8(x), chw)
        np.testing.assert_array_equal(saliency(insp, images, 0).images, chw.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(input_pictures(insp, x, [0, 2]), chw[[0, 2]])


def _gray_model():
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2, 3))


@pytest.mark.parametrize("n", [1, 3, 4, 7])
def test_grayscale_batches_are_read_by_the_models_channels(n):
    from ipynetviz.engine import Inspector, Preprocess
    g = torch.Generator().manual_seed(n)
    batch = torch.randint(0, 256, (n, 12, 12), dtype=torch.uint8, generator=g)
    for transform in (None, Preprocess([0.5], [0.25])):
        insp = Inspector(_gray_model(), transform=transform, input_size=(1, 12, 12), device="cpu")
        x = insp.prepare(batch.numpy())
        assert x.shape == (n, 1, 12, 12)
        torch.testing.assert_close(insp.prepare(batch[0].numpy()), x[:1])


def test_paths_negative_strides_and_far_out_floats(tmp_path):
    from PIL import Image

    from ipynetviz.engine import Inspector
    from ipynetviz.engine.errors import InputError, InputWarning
    from tests.conftest import small_cnn
    insp = Inspector(small_cnn(), input_size=(3, 32, 32), device="cpu")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    torch.testing.assert_close(insp.prepare(str(tmp_path / "a.png")), insp.prepare(img))
    torch.testing.assert_close(insp.prepare([tmp_path / "a.png"] * 2), insp.prepare(np.stack([img, img])))
    with pytest.raises(InputError, match="no image file at"):
        insp.prepare(str(tmp_path / "missing.png"))
    (tmp_path / "b.png").write_text("not an image")
    with pytest.raises(InputError, match="cannot read"):
        insp.prepare(str(tmp_path / "b.png"))
    flipped = img[::-1]  # a view with a negative stride
    torch.testing.assert_close(insp.prepare(flipped), insp.prepare(np.ascontiguousarray(flipped)))
    floats = np.ascontiguousarray(img.transpose(2, 0, 1)[None].astype(np.float32))[:, :, ::-1]
    with pytest.warns(InputWarning, match="float input reaches 255"):
        insp.prepare(floats)
