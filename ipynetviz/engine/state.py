"""Mergeable scan state: per-row top-k and float64 moments, each with ``update``, ``merge`` and ``result``.

A scan over a data set too large for one pass on one machine is cut into shards (batches, workers, actors).
Each shard folds its batches into a state object; the driver merges the shards' states. Both states here give
the answer of one pass over all the data, whatever the cut and the merge order:

* :class:`TopKState` keeps, per row (a unit), the k largest values with their ids, ties going to the lower
  id. The rule "value descending, then id ascending" is a total order, so the k kept are the same set, in
  the same order, for any split: exact, bit for bit.
* :class:`MomentState` keeps sample count, means and centred second moments of two sets of units in float64,
  merged by the pairwise update of Chan, Golub & LeVeque (1979). Merging is exact in real arithmetic; in
  float64 different splits agree to rounding (about 1e-15 relative), far below what a float32 model emits.

Both are plain objects that pickle (tensors on the CPU after :meth:`cpu`), so Ray can ship them.

Example:
    >>> a, b = TopKState(2), TopKState(2)
    >>> _ = a.update(torch.tensor([[1.0, 5.0]]), torch.tensor([10, 11]))
    >>> _ = b.update(torch.tensor([[5.0, 2.0]]), torch.tensor([3, 4]))
    >>> v, i = a.merge(b).result()
    >>> v.tolist(), i.tolist()
    ([[5.0, 5.0]], [[3, 11]])
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import InputError

__all__ = ["topk_first", "TopKState", "MomentState"]

# rows up to this length are fully sorted; longer ones go through topk + a threshold (one sync, less work)
SORT_BELOW = 4096


def topk_first(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ``k`` largest values of (R, M) ``values``, ties broken by the lower column index.

    ``torch.topk`` picks among equal values arbitrarily; ReLU layers produce many exact zeros, so a
    brute-force comparison (and a reproducible gallery) needs a fixed rule. Rows are sorted by value
    descending, then by column ascending.

    Returns:
        (values (R, k), columns (R, k) int64).

    Example:
        >>> v, i = topk_first(torch.tensor([[1.0, 3.0, 3.0, 0.0]]), 2)
        >>> v.tolist(), i.tolist()
        ([[3.0, 3.0]], [[1, 2]])
    """
    r, m = values.shape
    k = min(int(k), m)
    if k == m or m <= SORT_BELOW:  # a stable sort: exact, and no device-to-host sync (which stalls a GPU)
        order = values.sort(dim=1, descending=True, stable=True).indices[:, :k]
        return values.gather(1, order), order
    threshold = values.topk(k, dim=1, sorted=True).values[:, -1:]
    above = values > threshold
    equal = values == threshold
    need = k - above.sum(1, keepdim=True)
    take = above | (equal & (equal.cumsum(1) <= need))
    cols = take.nonzero()[:, 1].view(r, k)  # row-major, so each row's columns come out ascending
    picked = values.gather(1, cols)
    order = picked.sort(dim=1, descending=True, stable=True).indices
    return picked.gather(1, order), cols.gather(1, order)


def _by_id(values: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns reordered so ids ascend (one shared sort when the ids are the same for every row)."""
    if ids.ndim == 1:
        order = ids.sort(stable=True).indices
        return values.index_select(1, order), ids[order].unsqueeze(0).expand(values.shape[0], -1)
    order = ids.sort(dim=1, stable=True).indices
    return values.gather(1, order), ids.gather(1, order)


class TopKState:
    """The k largest values per row with their ids, over any number of blocks and merged shards.

    Order: value descending, then id ascending (so among equal values the lower id wins, as a Python scan
    in id order would pick). Ids must be unique per row across everything fed (an image index, or an
    image index times positions plus a position).

    Args:
        k: values kept per row.

    Example:
        >>> s = TopKState(3).update(torch.tensor([[0.0, 2.0, 2.0, 1.0]]), torch.tensor([7, 9, 8, 6]))
        >>> s.result()[1].tolist()
        [[8, 9, 6]]
    """

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        self.k = int(k)
        self.values: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.values is None else self.values.shape[1]

    def _absorb(self, values: torch.Tensor, ids: torch.Tensor) -> "TopKState":
        """Keep the k best of the kept columns and a block (R, B) of candidates with per-row ``ids``."""
        if self.values is not None:
            if values.shape[0] != self.values.shape[0]:
                raise InputError(f"this top-k state has {self.values.shape[0]} rows but the new block has "
                                 f"{values.shape[0]}; feed the same units every time")
            values = torch.cat([self.values, values.to(self.values.device, self.values.dtype)], 1)
            ids = torch.cat([self.ids, ids.to(self.ids.device)], 1)
        values, ids = _by_id(values, ids)  # columns by id, so topk_first's "lower column" means "lower id"
        picked, cols = topk_first(values, self.k)
        self.values, self.ids = picked, ids.gather(1, cols)
        return self

    def update(self, values: torch.Tensor, ids: torch.Tensor) -> "TopKState":
        """Fold in candidate ``values`` (R, B) with ``ids`` (B,) shared by all rows, or (R, B) per row."""
        if values.ndim != 2:
            raise InputError(f"values must be (rows, candidates), got shape {tuple(values.shape)}")
        ids = torch.as_tensor(ids, dtype=torch.int64, device=values.device)
        if ids.shape[-1] != values.shape[1] or ids.ndim not in (1, 2):
            raise InputError(f"{values.shape[1]} candidates but ids of shape {tuple(ids.shape)}")
        if values.shape[1] > self.k:  # cut the block first: the merge below then sorts at most 2k columns
            values, ids = _by_id(values, ids)
            values, cols = topk_first(values, self.k)
            ids = ids.gather(1, cols)
        elif ids.ndim == 1:
            ids = ids.unsqueeze(0).expand(values.shape[0], -1)
        return self._absorb(values, ids)

    def merge(self, other: "TopKState") -> "TopKState":
        """Fold in another shard's state (same rows and k); returns ``self``."""
        if not isinstance(other, TopKState):
            raise InputError(f"can only merge a TopKState, got {type(other).__name__}")
        if other.k != self.k:
            raise InputError(f"cannot merge top-{other.k} into top-{self.k}; scan both shards with the same k")
        if other.values is None:
            return self
        if self.values is None:
            self.values, self.ids = other.values.clone(), other.ids.clone()
            return self
        return self._absorb(other.values, other.ids)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(values (R, k'), ids (R, k')) as NumPy, best first; k' = min(k, candidates seen)."""
        if self.values is None:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
        return self.values.detach().cpu().numpy(), self.ids.detach().cpu().numpy()

    def cpu(self) -> "TopKState":
        """Move the state to the CPU (to pickle it or merge it with states from other devices)."""
        if self.values is not None:
            self.values, self.ids = self.values.cpu(), self.ids.cpu()
        return self

    def __repr__(self) -> str:
        rows = 0 if self.values is None else self.values.shape[0]
        return f"TopKState(k={self.k}, rows={rows}, kept={len(self)})"


def _device_for(t: torch.Tensor) -> torch.device:
    """The device of the data, unless it cannot hold float64 (Apple MPS), then the CPU."""
    return torch.device("cpu") if t.device.type == "mps" else t.device


class MomentState:
    """Sample count, means and centred second moments of units A (and B) in float64; mergeable.

    Every similarity in :mod:`ipynetviz.methods.correspondence` (correlation, regression, CCA, SVCCA, PWCCA,
    CKA) is a function of these sums, so a scan keeps one of these per pair of layers.

    Args:
        full_a: keep the full (Ca, Ca) moment matrix of A (needed by CCA, CKA, within-net correlation);
            otherwise only its diagonal.
        full_b: the same for B.

    Attributes:
        n_samples, mean_a, m2_a, mean_b, m2_b, m2_ab: the running sums (``m2_*`` centred sums of squares
            and cross-products); ``within`` is True when only A was fed (B is then A).

    Example:
        >>> x = torch.randn(90, 3, dtype=torch.float64)
        >>> one = MomentState().update_flat(x, x[:, :2])
        >>> two = MomentState().update_flat(x[:40], x[:40, :2]).merge(MomentState().update_flat(x[40:], x[40:, :2]))
        >>> bool(torch.allclose(one.m2_ab, two.m2_ab)), two.n_samples
        (True, 90)
    """

    def __init__(self, full_a: bool = True, full_b: bool = True):
        self.full_a = bool(full_a)
        self.full_b = bool(full_b)
        self.n_samples = 0
        self.within: bool | None = None
        self.device: torch.device | None = None
        self.mean_a = self.mean_b = None
        self.m2_a = self.m2_b = self.m2_ab = None

    @property
    def n_units(self) -> tuple[int, int]:
        """(Ca, Cb); Cb equals Ca for within-net moments."""
        if self.mean_a is None:
            return (0, 0)
        return (self.mean_a.numel(), self.mean_a.numel() if self.within else self.mean_b.numel())

    def _start(self, a: torch.Tensor, b: torch.Tensor | None) -> None:
        self.within = b is None
        if self.within:
            self.full_a = True  # the cross-moments of A with itself are its full moment matrix
        self.device = _device_for(a)

    @staticmethod
    def _second(x: torch.Tensor, full: bool) -> torch.Tensor:
        return x.T @ x if full else torch.linalg.vector_norm(x, dim=0).square()

    def update_flat(self, a: torch.Tensor, b: torch.Tensor | None = None) -> "MomentState":
        """Add samples: ``a`` (n, Ca) and ``b`` (n, Cb) for the same n samples (or None: within-net)."""
        if self.within is None:
            self._start(a, b)
        elif (b is None) != self.within:
            raise InputError("this accumulator was started " + ("within one net (no B batch)" if self.within
                             else "with A and B batches") + "; pass the same kind of batch every time")
        if self.mean_a is not None and (a.shape[1] != self.mean_a.numel() or
                                        (b is not None and b.shape[1] != self.mean_b.numel())):
            raise InputError(f"batch has {a.shape[1]}" + ("" if b is None else f" and {b.shape[1]}") +
                             f" units but earlier batches had {self.n_units[0]}" +
                             ("" if b is None else f" and {self.n_units[1]}") + "; feed one pair of layers")
        # One float64 copy per batch, centred in place (copy=True: never modify the caller's tensor).
        ac = a.to(self.device, torch.float64, copy=True)
        mu_a = ac.mean(0)
        ac.sub_(mu_a)
        part = [mu_a, self._second(ac, self.full_a)]
        if b is not None:
            bc = b.to(self.device, torch.float64, copy=True)
            mu_b = bc.mean(0)
            bc.sub_(mu_b)
            part += [mu_b, self._second(bc, self.full_b), ac.T @ bc]
        return self._absorb(a.shape[0], *part)

    def update_moments(self, n_samples: int, mean_a: torch.Tensor, m2_a: torch.Tensor, mean_b=None, m2_b=None,
                       m2_ab=None) -> "MomentState":
        """Add ``n_samples`` samples given by their own moments instead of the samples themselves.

        For a batch that takes part in many pairs (a final network's layer compared with every checkpoint's
        layers), its float64 centring and second moment can be computed once and folded into each pair's state
        here, where :meth:`update_flat` would redo them per pair. The result is the same Chan update.

        Args:
            n_samples: samples in the batch (0: nothing is added).
            mean_a, m2_a: the batch's mean (Ca,) and centred sum of squares: (Ca, Ca), or its diagonal (Ca,)
                when this state keeps only the diagonal of A (``full_a=False``).
            mean_b, m2_b, m2_ab: the same for B and the centred cross-products (Ca, Cb); all three, or all
                None for moments within one net.

        Example:
            >>> x = torch.randn(50, 3, dtype=torch.float64); y = torch.randn(50, 2, dtype=torch.float64)
            >>> xc, yc = x - x.mean(0), y - y.mean(0)
            >>> s = MomentState().update_moments(50, x.mean(0), xc.T @ xc, y.mean(0), yc.T @ yc, xc.T @ yc)
            >>> bool(torch.allclose(s.m2_ab, MomentState().update_flat(x, y).m2_ab))
            True
        """
        n_samples = int(n_samples)
        if n_samples < 0:
            raise InputError(f"n_samples must be >= 0, got {n_samples}")
        parts_b = (mean_b, m2_b, m2_ab)
        if any(p is None for p in parts_b) and not all(p is None for p in parts_b):
            raise InputError("pass mean_b, m2_b and m2_ab together (two layers) or none of them (one net)")
        within = mean_b is None
        if self.within is None:
            self.within = within
            if within:
                self.full_a = True  # the cross-moments of A with itself are its full moment matrix
            self.device = _device_for(mean_a)
        elif within != self.within:
            raise InputError("this accumulator was started " + ("within one net (no B moments)" if self.within
                             else "with A and B moments") + "; pass the same kind of moments every time")
        ca = mean_a.numel()
        cb = None if within else mean_b.numel()
        expect = {"m2_a": (ca, ca) if self.full_a else (ca,)}
        if not within:
            expect.update(m2_b=(cb, cb) if self.full_b else (cb,), m2_ab=(ca, cb))
        given = {"m2_a": m2_a, "m2_b": m2_b, "m2_ab": m2_ab}
        for name, shape in expect.items():
            got = tuple(given[name].shape)
            if got != shape:
                raise InputError(f"{name} has shape {got} but {shape} fits {ca}"
                                 + ("" if within else f" and {cb}") + " units with this state's full_a/full_b")
        if self.mean_a is not None and (ca, ca if within else cb) != self.n_units:
            raise InputError(f"moments of {(ca, ca if within else cb)} units but earlier batches had "
                             f"{self.n_units}; feed one pair of layers")
        move = lambda t: None if t is None else t.to(self.device, torch.float64)  # noqa: E731
        return self._absorb(n_samples, move(mean_a), move(m2_a), move(mean_b), move(m2_b), move(m2_ab))

    def _absorb(self, nb: int, mu_a, m2_a, mu_b=None, m2_b=None, m2_ab=None) -> "MomentState":
        """Chan et al.'s pairwise update: fold in the moments of ``nb`` more samples."""
        if nb == 0:
            return self
        if self.n_samples == 0:
            self.mean_a, self.m2_a = mu_a.clone(), m2_a.clone()
            if mu_b is not None:
                self.mean_b, self.m2_b, self.m2_ab = mu_b.clone(), m2_b.clone(), m2_ab.clone()
        else:
            total = self.n_samples + nb
            f = self.n_samples * nb / total
            da = mu_a - self.mean_a
            self.m2_a += m2_a + f * (torch.outer(da, da) if self.full_a else da.square())
            self.mean_a += da * (nb / total)
            if mu_b is not None:
                db = mu_b - self.mean_b
                self.m2_b += m2_b + f * (torch.outer(db, db) if self.full_b else db.square())
                self.m2_ab += m2_ab + f * torch.outer(da, db)
                self.mean_b += db * (nb / total)
        self.n_samples += nb
        return self

    def merge(self, other: "MomentState") -> "MomentState":
        """Fold in another shard's moments (same layers and settings); returns ``self``."""
        if not isinstance(other, MomentState):
            raise InputError(f"can only merge a MomentState, got {type(other).__name__}")
        if other.n_samples == 0:
            return self
        if self.within is None:
            self.within, self.full_a, self.full_b = other.within, other.full_a, other.full_b
            self.device = other.device
        if (other.within, other.full_a, other.full_b) != (self.within, self.full_a, self.full_b):
            raise InputError("cannot merge moments accumulated with different settings (within / full_a / "
                             "full_b); scan every shard with the same measures")
        if self.n_samples and other.n_units != self.n_units:
            raise InputError(f"cannot merge moments of {other.n_units} units into {self.n_units}; "
                             "merge shards of the same pair of layers")
        move = lambda t: None if t is None else t.to(self.device)  # noqa: E731
        return self._absorb(other.n_samples, move(other.mean_a), move(other.m2_a), move(other.mean_b),
                            move(other.m2_b), move(other.m2_ab))

    def result(self) -> dict:
        """The sums as NumPy float64: ``n_samples``, ``mean_a``, ``m2_a``, and for two layers ``mean_b``, ``m2_b``,
        ``m2_ab`` (centred sums; divide by ``n_samples`` for covariances)."""
        out = {"n_samples": self.n_samples, "within": self.within}
        for name in ("mean_a", "m2_a", "mean_b", "m2_b", "m2_ab"):
            t = getattr(self, name)
            if t is not None:
                out[name] = t.detach().cpu().numpy()
        return out

    def cpu(self) -> "MomentState":
        """Move the sums to the CPU (to pickle them or merge them with states from other devices)."""
        for name in ("mean_a", "m2_a", "mean_b", "m2_b", "m2_ab"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.cpu())
        if self.device is not None:
            self.device = torch.device("cpu")
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_samples={self.n_samples}, units={self.n_units}, within={self.within})"
