"""Zhang et al.'s corruptions have the stated statistics; named models and data sets; the zoo trainer's numerics."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from ipynetviz import zoo
from ipynetviz.engine.errors import ModelError, SettingError
from ipynetviz.methods.training import build, corrupt, train, zoo_data
from ipynetviz.zoo import train as zoo_train


def _labels(n=20000, k=10, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def test_partial_labels_change_at_the_stated_rate():
    y = _labels()
    for p in (0.0, 0.2, 0.5, 0.8, 1.0):
        c = corrupt(np.zeros((len(y), 1, 2, 2), np.uint8), y, "partial", p=p, num_classes=10, seed=1)
        expected = p * 0.9  # a corrupted label draws the true class again one time in ten
        sd = math.sqrt(expected * (1 - expected) / len(y))
        assert abs(c.changed.mean() - expected) <= 4 * sd + 1e-12, p
        np.testing.assert_array_equal(c.changed, c.labels != y)
        assert c.labels.dtype == y.dtype and c.labels.min() >= 0 and c.labels.max() <= 9
    assert not corrupt(np.zeros((len(y), 1, 2, 2)), y, "partial", p=0.0).changed.any()


def test_random_labels_are_uniform_and_independent_of_the_truth():
    y = _labels()
    c = corrupt(np.zeros((len(y), 1, 2, 2), np.uint8), y, "random", num_classes=10, seed=3)
    counts = np.bincount(c.labels, minlength=10)
    chi2 = ((counts - len(y) / 10) ** 2 / (len(y) / 10)).sum()
    assert chi2 < 33.7  # the 0.9999 quantile of chi-square with 9 degrees of freedom
    table = np.zeros((10, 10))
    np.add.at(table, (y, c.labels), 1)
    expected = np.outer(table.sum(1), table.sum(0)) / len(y)
    assert ((table - expected) ** 2 / expected).sum() < 150  # independence: 81 dof, 0.9999 quantile ~ 137
    again = corrupt(np.zeros((len(y), 1, 2, 2), np.uint8), y, "random", num_classes=10, seed=3)
    np.testing.assert_array_equal(again.labels, c.labels)  # fixed by the seed, so fixed across epochs


def _distinct_images(n=6, c=3, h=5, w=4):
    return np.arange(n * c * h * w).reshape(n, c, h, w).astype(np.int64)


def test_shuffled_pixels_use_one_permutation_for_every_image_and_the_test_set():
    x = _distinct_images()
    y = np.arange(6)
    c = corrupt(x, y, "shuffled_pixels", seed=2)
    np.testing.assert_array_equal(c.labels, y)
    perm = c.permutation
    assert sorted(perm.tolist()) == list(range(20)) and not np.array_equal(perm, np.arange(20))
    for i in range(6):
        for ch in range(3):  # brute force: pixel j of the output is pixel perm[j] of the input, every channel
            out, src = c.images[i, ch].ravel(), x[i, ch].ravel()
            assert all(out[j] == src[perm[j]] for j in range(20))
    test = _distinct_images(2) + 1000
    np.testing.assert_array_equal(c.apply_to_test(test), test.reshape(2, 3, -1)[:, :, perm].reshape(test.shape))


def test_random_pixels_permute_each_image_differently_moving_whole_pixels():
    x = _distinct_images(n=50)
    c = corrupt(x, np.zeros(50, int), "random_pixels", seed=4)
    perms = []
    for i in range(50):
        src, out = x[i].reshape(3, -1), c.images[i].reshape(3, -1)
        perm = np.array([np.flatnonzero(src[0] == v)[0] for v in out[0]])
        np.testing.assert_array_equal(out, src[:, perm])  # all channels moved together
        perms.append(tuple(perm))
    assert len(set(perms)) == 50


def test_gaussian_images_have_the_data_mean_and_variance():
    x, y = zoo.shapes(300, split="train", size=32)
    c = corrupt(x, y, "gaussian", seed=5)
    assert c.images.dtype == np.float32 and c.images.shape == x.shape
    np.testing.assert_array_equal(c.labels, y)
    ref = x.astype(np.float64)
    n = c.images[:, 0].size
    for ch in range(3):
        mean, std = ref[:, ch].mean(), ref[:, ch].std()
        assert abs(c.images[:, ch].mean() - mean) < 5 * std / math.sqrt(n)
        assert c.images[:, ch].std() == pytest.approx(std, rel=0.01)
    # pixels are independent: neighbouring pixels do not correlate (real images do, strongly)
    a, b = c.images[:, 0, :, :-1].ravel(), c.images[:, 0, :, 1:].ravel()
    real = np.corrcoef(ref[:, 0, :, :-1].ravel(), ref[:, 0, :, 1:].ravel())[0, 1]
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01 < 0.5 < real


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_p_outside_0_1_is_refused(p):
    with pytest.raises(SettingError, match=r"p must be in \[0, 1\]"):
        corrupt(np.zeros((4, 1, 2, 2)), np.zeros(4, int), "partial", p=p)
    with pytest.raises(SettingError, match=r"p must be in \[0, 1\]"):
        train("mlp-512", "digits", corruption="partial", p=p, n_train=64, background=False)


def test_random_labels_stay_fixed_across_epochs_in_a_run():
    seen = []

    class Pairs:
        def on_start(self, run):
            seen.append({})

        def after_step(self, run, step):
            for xi, yi in zip(run.inputs.reshape(len(run.inputs), -1).sum(1).tolist(), run.targets.tolist()):
                seen[-1].setdefault(run.epoch, {})[round(xi, 3)] = yi

    run = train("mlp-512", "digits", n_train=96, n_test=32, corruption="random", epochs=3, batch_size=32,
                hooks=[Pairs()], background=False)
    per_epoch = seen[0]
    assert per_epoch[0] == per_epoch[1] == per_epoch[2]
    original = zoo.digits("train")[1][:96]
    assert (run.y.cpu().numpy() != original).mean() > 0.7
    np.testing.assert_array_equal(run.corrupted.labels, run.y.cpu().numpy())
    np.testing.assert_array_equal(run.test[1].cpu().numpy(), zoo.digits("test")[1][:32])  # true test labels


def test_named_models_batch_norm_variants_start_from_the_same_weights():
    torch.manual_seed(0)
    plain = build("shapes-cnn")
    torch.manual_seed(0)
    bn = build("shapes-cnn", batch_norm=True)
    names = [n for n, _ in bn.named_children()]
    assert names[:5] == ["conv1", "bn1", "relu1", "pool1", "conv2"] and sum(n.startswith("bn") for n in names) == 4
    for k in range(1, 5):
        assert torch.equal(getattr(plain, f"conv{k}").weight, getattr(bn, f"conv{k}").weight)
    assert bn(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    m = build("mlp-512", input_size=(1, 32, 32))
    assert sum(p.numel() for p in m.parameters()) == 1024 * 512 + 512 + 512 * 10 + 10
    mbn = build("mlp-512", batch_norm=True, input_size=(1, 32, 32))
    assert isinstance(mbn.bn1, nn.BatchNorm1d)
    with pytest.raises(ModelError, match="unknown model|one of"):
        build("resnet-9")
    with pytest.raises(SettingError, match="3-channel images but the data have 1"):
        train("shapes-cnn", "digits", background=False)
    with pytest.raises(SettingError, match="batch_norm=True builds a zoo model by name"):
        train(nn.Linear(2, 2), (torch.zeros(4, 2), torch.zeros(4).long()), batch_norm=True, background=False)


def test_zoo_data_sizes():
    (x, y), (xt, yt) = zoo_data("shapes", 40, 20)
    assert x.shape == (40, 3, 64, 64) and xt.shape == (20, 3, 64, 64) and y.dtype == np.int64
    (x, _), (xt, _) = zoo_data("digits")
    assert len(x) == 1347 and len(xt) == 450


def test_zoo_trainer_equals_its_former_plain_loop():
    """The zoo trainer (now on the shared loop) gives the very weights of the loop it used to have inline."""
    config = replace(zoo_train.DEFAULTS["digits-cnn"], epochs=1, n_train=192, warmup_epochs=0.5)
    model, _ = zoo_train.train(config, log=lambda _: None)
    # the former inline loop, verbatim in its numerics
    x_train, y_train = zoo_train.load_split(config, "train")
    mean, std = zoo_train.channel_stats(x_train)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    torch.manual_seed(config.seed)
    ref = zoo.digits_cnn()
    for m in ref.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.bias, config.init_bias)
    order_gen = torch.Generator().manual_seed(10_000 + config.seed)
    opt = torch.optim.AdamW(zoo_train._param_groups(ref, config), lr=config.lr)
    steps_per_epoch = math.ceil(len(xt) / config.batch_size)
    total, warmup = config.epochs * steps_per_epoch, max(1, int(config.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (
        1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))
    ref.train()
    for _ in range(config.epochs):
        perm = torch.randperm(len(xt), generator=order_gen)
        for start in range(0, len(xt), config.batch_size):
            idx = perm[start:start + config.batch_size]
            xb = zoo_train.normalise(zoo_train._augment(xt[idx], order_gen, config.symmetries, config.max_shift),
                                     mean, std)
            loss = nn.functional.cross_entropy(ref(xb), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_randomization_test_in_miniature():
    """Zhang et al. in small: random labels are memorised (100% train) but predict nothing; true labels fit first."""
    settings = dict(n_train=128, n_test=200, epochs=50, batch_size=64, optimizer="adam", lr=1e-3, train_eval=128,
                    eval_every=4, background=False)
    runs = {kind: train("mlp-512", "digits", corruption=kind, **settings) for kind in ("true", "random")}
    fit = {k: next((e["step"] for e in r.history.evals if e["train_accuracy"] >= 0.99), None) for k, r in runs.items()}
    assert fit["true"] is not None and fit["random"] is not None and fit["true"] < fit["random"]
    assert runs["random"].history.evals[-1]["train_accuracy"] >= 0.99
    assert runs["true"].history.evals[-1]["test_accuracy"] > 0.6
    assert runs["random"].history.evals[-1]["test_accuracy"] < 0.2  # chance is 0.1; 128 draws leave some noise


def test_lenets_on_mnist_by_name():
    torch.manual_seed(0)
    bn = build("lenet-300-100", batch_norm=True)
    assert [n for n, _ in bn.named_children()] == ["flatten", "fc1", "bn1", "relu1", "fc2", "bn2", "relu2", "fc3"]
    assert [n for n, _ in build("lenet-5", batch_norm=True).named_children()][:4] == ["conv1", "bn1", "pool1", "conv2"]
    run = train("lenet-5", n_train=256, n_test=100, epochs=1, batch_size=64, optimizer="adam", lr=1e-3,
                background=False)
    assert run.dataset == "mnist" and run.complete and tuple(run.x.shape[1:]) == (1, 28, 28)
    assert len(run.test[0]) == 100
