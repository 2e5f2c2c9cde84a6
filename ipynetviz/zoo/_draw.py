"""Drawing of the shapes data set: antialiased masks (Pillow) and vectorised colour fills (NumPy)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "star", "cross", "ring", "stripes", "checkerboard",
           "heart", "crescent")
_STRIPES, _CHECKER = CLASSES.index("stripes"), CLASSES.index("checkerboard")
_SUPERSAMPLE = 4  # masks are drawn 4x larger and box-filtered down: antialiased edges


_UNIT = {k: np.stack([np.cos(np.arange(k) * (2 * np.pi / k)), np.sin(np.arange(k) * (2 * np.pi / k))], 1)
         for k in (3, 4, 10, 64)}


def _regular(n: int, radius: float, angle: float, cx: float, cy: float) -> np.ndarray:
    if angle == 0.0:
        return _UNIT[n] * radius + (cx, cy)
    return _rotate(_UNIT[n] * radius, angle, cx, cy)


def _rotate(points: np.ndarray, angle: float, cx: float, cy: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    x, y = points[:, 0], points[:, 1]
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], 1)


_HEART_T = np.linspace(0, 2 * np.pi, 48, endpoint=False)
_HEART = np.stack([16 * np.sin(_HEART_T) ** 3,
                   -(13 * np.cos(_HEART_T) - 5 * np.cos(2 * _HEART_T) - 2 * np.cos(3 * _HEART_T)
                     - np.cos(4 * _HEART_T))], 1)
_HEART = (_HEART - _HEART.mean(0)) / np.abs(_HEART).max()


def _polygons(label: int, r: float, angle: float, cx: float, cy: float, extra: np.ndarray):
    """The polygons (points, fill 255 or 0) whose union is the mask of one object."""
    name = CLASSES[label]
    if name == "circle":
        return [(_regular(64, r, 0.0, cx, cy), 255)]
    if name == "square":
        return [(_regular(4, r, angle, cx, cy), 255)]
    if name == "triangle":
        return [(_regular(3, r, angle, cx, cy), 255)]
    if name == "star":
        inner = 0.36 + 0.14 * extra[0]
        pts = _regular(10, 1.0, angle, 0.0, 0.0) * np.tile([[1.0], [inner]], (5, 1))
        return [(pts * r + [cx, cy], 255)]
    if name == "cross":
        w = r * (0.2 + 0.12 * extra[0])
        arm = np.array([[w, w], [r, w], [r, -w], [w, -w], [w, -r], [-w, -r], [-w, -w], [-r, -w],
                        [-r, w], [-w, w], [-w, r], [w, r]])
        return [(_rotate(arm, angle, cx, cy), 255)]
    if name == "ring":
        return [(_regular(64, r, 0.0, cx, cy), 255),
                (_regular(64, r * (0.45 + 0.2 * extra[0]), 0.0, cx, cy), 0)]
    if name in ("stripes", "checkerboard"):
        if extra[1] < 0.35:  # a round patch instead of a square one
            return [(_regular(64, 0.85 * r, 0.0, cx, cy), 255)]
        return [(_regular(4, r, angle + np.pi / 4, cx, cy), 255)]
    if name == "heart":
        return [(_rotate(_HEART * r, angle, cx, cy), 255)]
    if name == "crescent":
        d = r * (0.35 + 0.2 * extra[0])
        inner = r * (0.75 + 0.15 * extra[1])
        return [(_regular(64, r, 0.0, cx, cy), 255),
                (_regular(64, inner, 0.0, cx + d * np.cos(angle), cy + d * np.sin(angle)), 0)]
    raise AssertionError(name)


def masks(labels, radius, angle, cx, cy, extra, size: int) -> np.ndarray:
    """Antialiased coverage (N, size, size) float32 in [0, 1] of each object."""
    big = size * _SUPERSAMPLE
    n = len(labels)
    # one tall canvas with a tile per object: one reduce and one copy instead of n of each
    canvas = Image.new("L", (big, big * n), 0)
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(labels):
        shift = np.array([0.0, i * big])
        for points, fill in _polygons(int(label), radius[i], angle[i], cx[i], cy[i], extra[i]):
            draw.polygon((points * _SUPERSAMPLE + shift).ravel().tolist(), fill=fill)
    out = np.asarray(canvas.reduce(_SUPERSAMPLE), np.float32).reshape(n, size, size)
    return out * np.float32(1.0 / 255.0)


def hsv_to_rgb(h, s, v) -> np.ndarray:
    """Vectorised HSV (each in [0, 1]) to RGB in [0, 255], shape (..., 3)."""
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, -1) for c in
                      ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], 0)
    return 255.0 * np.take_along_axis(table, i[None, ..., None], 0)[0]


def _random_colours(rng: np.random.Generator, shape) -> np.ndarray:
    h = rng.random(shape)
    s = np.where(rng.random(shape) < 0.15, rng.uniform(0.0, 0.2, shape), rng.uniform(0.35, 1.0, shape))
    v = rng.uniform(0.2, 1.0, shape)
    return hsv_to_rgb(h, s, v).astype(np.float32)


def _contrasting(rng, reference: np.ndarray, candidates: int = 6, min_distance: float = 90.0):
    """Per row of ``reference`` (N, 3), a random colour at least ``min_distance`` away if possible."""
    n = len(reference)
    cand = _random_colours(rng, (n, candidates))
    dist = np.linalg.norm(cand - reference[:, None], axis=-1)
    ok = dist >= min_distance
    pick = np.where(ok.any(1), ok.argmax(1), dist.argmax(1))
    return cand[np.arange(n), pick]


def _smooth_noise(rng, n: int, size: int, cells: int = 4) -> np.ndarray:
    """Low-frequency noise (n, size, size) in [0, 1]: random values on a grid, bilinear upsampled."""
    grid = rng.random((n, cells + 1, cells + 1)).astype(np.float32)
    pos = (np.arange(size) + 0.5) * (cells / size)
    i0 = np.minimum(pos.astype(int), cells - 1)
    w = (pos - i0).astype(np.float32)
    rows = grid[:, i0] * (1 - w)[None, :, None] + grid[:, i0 + 1] * w[None, :, None]
    return rows[:, :, i0] * (1 - w) + rows[:, :, i0 + 1] * w


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    """A fixed bank of pixel-noise images; picking from it is far cheaper than fresh draws."""
    rng = np.random.default_rng(np.random.SeedSequence([20261122, size]))
    return rng.standard_normal((97, 3, size, size), dtype=np.float32)


def compose(rng: np.random.Generator, labels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Draw one object of class ``labels[i]`` over ``background[i]`` (N, 3, S, S float); uint8 out."""
    n, size = len(labels), background.shape[-1]
    radius = rng.uniform(0.2, 0.42, n) * size
    margin = 0.85 * radius
    cx = margin + rng.random(n) * (size - 2 * margin)
    cy = margin + rng.random(n) * (size - 2 * margin)
    angle = rng.uniform(0, 2 * np.pi, n)
    extra = rng.random((n, 2))
    alpha = masks(labels, radius, angle, cx, cy, extra, size)

    # colours that stand out from the background under the object, and from each other
    covered = alpha.sum((1, 2)) + 1e-6
    bg_mean = np.einsum("nchw,nhw->nc", background, alpha) / covered[:, None]
    colour_a = _contrasting(rng, bg_mean)
    colour_b = _contrasting(rng, colour_a, min_distance=110.0)

    coords = np.arange(size, dtype=np.float32) + 0.5

    def frame(sel: np.ndarray, direction: np.ndarray):
        """Coordinates (u along ``direction``, v across) relative to the centre of objects ``sel``."""
        dx = coords[None, None, :] - cx[sel, None, None].astype(np.float32)
        dy = coords[None, :, None] - cy[sel, None, None].astype(np.float32)
        c = np.cos(direction[sel]).astype(np.float32)[:, None, None]
        s = np.sin(direction[sel]).astype(np.float32)[:, None, None]
        return dx * c + dy * s, dy * c - dx * s

    # weight of colour_b per pixel: the pattern of the textures, or the fill style of the shapes
    weight = np.zeros((n, size, size), np.float32)
    style = rng.random(n)
    textured = np.isin(labels, (_STRIPES, _CHECKER))
    gradient = (style < 0.3) & ~textured
    u, _ = frame(gradient, rng.uniform(0, 2 * np.pi, n))
    weight[gradient] = np.clip(u / (2 * radius[gradient, None, None]) + 0.5, 0, 1)
    mottled = (style >= 0.3) & (style < 0.5) & ~textured
    weight[mottled] = 0.8 * _smooth_noise(rng, int(mottled.sum()), size)

    wavelength = (2 * radius / rng.uniform(2.2, 4.5, n)).astype(np.float32)[:, None, None]
    stripes = labels == _STRIPES
    u, _ = frame(stripes, angle)
    wl = wavelength[stripes]
    weight[stripes] = np.clip(0.5 + wl / (2 * np.pi) * np.sin(2 * np.pi * u / wl), 0, 1)
    checker = labels == _CHECKER
    u, v = frame(checker, angle)
    cell = wavelength[checker] / 1.3
    board = np.sin(np.pi * u / cell) * np.sin(np.pi * v / cell)
    weight[checker] = np.clip(0.5 + 0.5 * cell / np.pi * board, 0, 1)
    # half of the textures are see-through: colour_b is the background itself
    see_through = textured & (rng.random(n) < 0.5)
    alpha[see_through] *= 1.0 - weight[see_through]
    weight[see_through] = 0.0

    # in-place passes over one (N, 3, S, S) array: these dominate the time
    image = np.multiply(weight[:, None], (colour_b - colour_a)[:, :, None, None])
    image += colour_a[:, :, None, None]
    image -= background
    image *= alpha[:, None]
    image += background
    bank = _noise_bank(size)
    pick = rng.integers(0, len(bank), n)
    sigma = rng.uniform(0, 7, n).astype(np.float32)[:, None, None, None]
    image += sigma * bank[pick]
    image += 0.5  # round to nearest by truncation below
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)
