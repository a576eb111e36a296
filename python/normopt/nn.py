"""Normalization modules for PyTorch on libnormopt's statistics ops.

The Python counterparts of the C++ modules ``normopt::nn::Normalization``,
``TargetStandardizer`` and ``StandardizedRegressor``. They compute with the
same dispatcher ops (``torch.ops.normopt.moments``, ``merge_moments``,
``scale_from_variance``, ``standardize``, ``destandardize``), so statistics
and outputs are bit-identical to the C++ modules', and they keep the same
buffers under the same names and dtypes, so state_dicts move between the two::

    norm = normopt.nn.Normalization()      # features along the last dim
    norm.adapt(x_train)                    # exact float64 mean and variance
    norm.adapt(loader)                     # or: one pass over batches
    z = norm(x)                            # (x - mean) / scale

    model = normopt.nn.StandardizedRegressor(torch.nn.Linear(2, 1))
    model.fit_statistics(x_train, y_train)
    loss = torch.nn.functional.mse_loss(model(x), model.transform_targets(y))
    dollars = model.predict(x_new)         # original units

Statistics are computed in float64 (two passes per batch; batches merged
with Chan et al.'s formula) and kept as float64 buffers until the module is
converted with ``.to(dtype)``; the sample count stays int64. ``forward`` of
every module traces with ``torch.export.export`` without graph breaks.

Errors say what is wrong, where, and what to do: ``TypeError`` for an input
that is not a floating-point tensor, ``ValueError`` for data that cannot be
used (empty, NaN/Inf, wrong shape), ``RuntimeError`` for a module in the wrong
state (not adapted yet, fixed statistics). ``adapt``, ``update``, ``fit``
and ``fit_statistics`` return the module, so they chain.
"""

import torch
from torch import nn

from normopt import _library

_library.load()

__all__ = ["Normalization", "TargetStandardizer", "StandardizedRegressor"]

_F64 = torch.float64
_ops = torch.ops.normopt


def _shape(t):
    return list(t.shape)


def _describe(t):
    return f"shape {_shape(t)}" if isinstance(t, torch.Tensor) else type(t).__name__


def _check_floating(x, where, what="data"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{where}: expected floating-point {what}, got {x.dtype}; convert it "
            "with x.to(torch.float32) (or torch.float64)"
        )


def _first_nonfinite_index(x):
    """The multi-index of the first NaN/Inf of `x` (row-major), or None."""
    bad = ~torch.isfinite(x)
    if not bad.any():
        return None
    # argmax returns the first maximal element: the first non-finite one.
    flat = int(bad.reshape(-1).to(torch.uint8).argmax())
    index = []
    for size in reversed(x.shape):
        index.append(flat % size)
        flat //= size
    return index[::-1]


def _batches(data, where):
    """iter(data), or a TypeError that says what was expected."""
    try:
        return iter(data)
    except TypeError:
        raise TypeError(
            f"{where}: expected a tensor or an iterable of batches, got "
            f"{type(data).__name__}"
        ) from None


def _fold_all(fold, data, owner, method):
    """What adapt and fit do with their data: `fold(state, batch, where)` from
    state None over `data`, a tensor (one batch) or an iterable of batches
    (read once); returns the last state. `owner.method` names the call in
    errors."""
    if isinstance(data, torch.Tensor):
        return fold(None, data, method)
    state = None
    for i, batch in enumerate(_batches(data, f"{owner}.{method}")):
        state = fold(state, batch, f"{method} (batch {i})")
    if state is None:
        raise ValueError(f"{owner}.{method}: got no batches; pass at least one")
    return state


def _adopt_checkpoint_shapes(module, state_dict, prefix, names):
    """Before a state_dict load: un-fitted statistics (empty buffers `names`)
    take the checkpoint's shape, as the C++ modules' load does; fitted ones
    keep theirs, so a mismatch is reported by load_state_dict."""
    stored = [state_dict.get(prefix + name) for name in names]
    if not all(isinstance(t, torch.Tensor) for t in stored):
        return
    if len({t.shape for t in stored}) != 1:
        return
    if any(getattr(module, name).numel() for name in names):
        return
    for name, t in zip(names, stored):
        local = getattr(module, name)
        setattr(module, name, torch.empty(t.shape, dtype=local.dtype, device=local.device))


class Normalization(nn.Module):
    r"""Keras-style feature normalization: ``(x - mean) / scale``.

    Per-feature statistics are learned by :meth:`adapt` or :meth:`update`
    (or given up front) and kept as buffers ``mean``, ``variance`` (float64)
    and ``count`` (int64), the names of the C++ module's, so ``state_dict()``,
    ``torch.save`` and ``.to(device)`` carry them. ``scale`` is
    ``sqrt(variance)`` floored at ``eps``, and exactly 1 for a constant
    feature.

    Args:
        axis (int, sequence of int or None): the feature dimension(s):
            statistics are kept per index along them and reduced over all
            others. Negative values count from the end of each input.
            ``None`` or ``()``: one scalar mean and variance for the whole
            tensor. Default: ``-1``.
        eps (float): smallest scale a non-constant feature is divided by.
            Default: ``1e-7``.
        invert (bool): when ``True``, :meth:`forward` maps standardized values
            back to original units and :meth:`inverse` standardizes.
            Default: ``False``.
        mean, variance (Tensor, number or list, optional): fixed statistics (shape
            of the feature dims; variance non-negative). Given together, the
            layer needs no :meth:`adapt` and refuses one.

    Shape:
        - Input: any shape whose feature dims have the adapted sizes.
        - Output: same shape and dtype as the input.

    Example::

        >>> norm = Normalization().adapt(torch.tensor([[1.0, 10.0], [3.0, 30.0]]))
        >>> norm(torch.tensor([[2.0, 20.0]]))
        tensor([[0., 0.]])
    """

    def __init__(self, axis=-1, *, eps=1e-7, invert=False, mean=None, variance=None):
        super().__init__()
        if axis is None:
            axis = ()
        elif isinstance(axis, int):
            axis = (axis,)
        self.axis = tuple(int(a) for a in axis)
        for i, a in enumerate(self.axis):
            if a in self.axis[:i]:
                raise ValueError(
                    f"Normalization: axis {a} is listed twice in axis={list(self.axis)}"
                )
        self.eps = float(eps)
        self.invert = bool(invert)
        self._fixed = self._fixed_statistics(mean, variance)
        if self._fixed is None:
            mean, variance = torch.empty(0, dtype=_F64), torch.empty(0, dtype=_F64)
        else:
            mean, variance = (t.clone() for t in self._fixed)
        self.register_buffer("mean", mean)
        self.register_buffer("variance", variance)
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    @staticmethod
    def _fixed_statistics(mean, variance):
        """(mean, variance) in float64, checked, or None when not given."""
        if (mean is None) != (variance is None):
            raise ValueError(
                "Normalization: give both mean and variance, or neither (then call "
                "adapt() on data)"
            )
        if mean is None:
            return None
        stats = []
        for name, value in (("mean", mean), ("variance", variance)):
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value, dtype=_F64)
            if not value.is_floating_point():
                raise TypeError(
                    f"Normalization: fixed {name} must be floating-point, got {value.dtype}"
                )
            stats.append(value.detach().to(_F64))
        mean, variance = stats
        if mean.shape != variance.shape:
            raise ValueError(
                f"Normalization: fixed mean has shape {_shape(mean)} but variance has "
                f"shape {_shape(variance)}; they must match"
            )
        finite = torch.isfinite(mean).all() and torch.isfinite(variance).all()
        if not (finite and (variance >= 0).all()):
            raise ValueError(
                "Normalization: fixed mean must be finite and variance finite and non-negative"
            )
        return mean, variance

    def is_adapted(self):
        """Whether statistics are available (adapted, loaded, or fixed)."""
        # The un-adapted placeholder has shape [0]; scalar statistics have 1 element.
        return self.mean.numel() > 0

    def _feature_dims(self, ndim, where):
        """`axis` resolved against an `ndim`-D input: the sorted feature dims."""
        dims = []
        for a in self.axis:
            if not -ndim <= a < ndim:
                raise ValueError(
                    f"Normalization.{where}: axis {a} is out of range for a {ndim}-D input "
                    f"(valid: {-ndim} to {ndim - 1}); set axis to the feature dimension"
                )
            dims.append(a + ndim if a < 0 else a)
        dims.sort()
        if len(set(dims)) != len(dims):
            raise ValueError(
                f"Normalization.{where}: axis {list(self.axis)} names the same dimension "
                f"twice for a {ndim}-D input"
            )
        return dims

    def _checked_moments(self, batch, where):
        """(count, mean, M2) of `batch` along the feature axis, after the
        checks of the C++ module's adapt()/update()."""
        _check_floating(batch, f"Normalization.{where}")
        if batch.numel() == 0:
            raise ValueError(
                f"Normalization.{where}: got an empty tensor of shape {_shape(batch)}; "
                "pass at least one sample"
            )
        if self._fixed is not None:
            raise RuntimeError(
                f"Normalization.{where}: this layer was built with a fixed mean and "
                "variance, which adapting would overwrite; build it without them to "
                "learn the statistics from data"
            )
        dims = self._feature_dims(batch.dim(), where)
        index = _first_nonfinite_index(batch)
        if index is not None:
            raise ValueError(
                f"Normalization.{where}: data holds a non-finite value (NaN or Inf) at "
                f"index {index}, feature {[index[d] for d in dims]}; remove or impute "
                "those values before adapting"
            )
        reduce = [d for d in range(batch.dim()) if d not in dims]
        with torch.no_grad():
            return _ops.moments(batch, reduce)

    def _fold(self, state, batch, where):
        """`state` (count, mean, variance, or None for none yet) with `batch`
        merged in; the module is not changed."""
        moments = self._checked_moments(batch, where)
        if state is None:
            # Only the dtype and device of an empty state's mean and variance matter.
            state = (torch.zeros_like(self.count), self.mean, self.variance)
        return self._merged(state, *moments, where)

    def _merged(self, state, n_b, mean_b, m2_b, where):
        """`state` (count, mean, variance) with moments (count, mean, M2) of
        more data merged in: the C++ module's merge(), step for step, on
        tensors outside the module."""
        count, mean, variance = state
        if int(n_b) == 0:
            return state  # an empty shard adds nothing
        n_local = n_b.to(count.device).to(torch.int64).reshape(())
        mean_local = mean_b.to(mean.device, _F64)
        m2_local = m2_b.to(mean.device, _F64)
        if int(count) == 0:
            return (
                n_local,
                mean_local.to(mean.dtype),
                (m2_local / n_local.to(_F64)).to(mean.dtype),
            )
        if mean_local.shape != mean.shape:
            raise ValueError(
                f"Normalization.{where}: batch has feature shape {_shape(mean_local)} "
                f"along axis {list(self.axis)} but the statistics were adapted on "
                f"{_shape(mean)}; pass batches with the same features"
            )
        m2_a = variance.to(_F64) * count.to(_F64)
        n, new_mean, m2 = _ops.merge_moments(
            count, mean.to(_F64), m2_a, n_local, mean_local, m2_local
        )
        return n, new_mean.to(mean.dtype), (m2 / n.to(_F64)).to(mean.dtype)

    def _set_state(self, state):
        self.count, self.mean, self.variance = state

    @torch.no_grad()
    def adapt(self, data):
        """Replaces the statistics with those of `data`.

        Args:
            data (Tensor or iterable of Tensor): the training data, or its
                batches (a list, a generator, a DataLoader yielding tensors),
                read once. Batches are merged exactly as by a stream of
                :meth:`update` calls; the result equals ``adapt`` on their
                concatenation to float64 rounding.

        Every batch is checked before the statistics change.
        """
        self._set_state(_fold_all(self._fold, data, "Normalization", "adapt"))
        return self

    @torch.no_grad()
    def update(self, batch):
        """Merges the statistics of one more `batch` into the current ones
        (Chan et al.'s parallel formula, in float64). On an un-adapted layer
        this is ``adapt(batch)``."""
        self._merge(*self._checked_moments(batch, "update"), "update")
        return self

    def moments_of(self, batch):
        """``(count, mean, M2)`` of `batch` along this layer's axis (the
        first half of :meth:`update`, e.g. to merge across processes)."""
        return self._checked_moments(batch, "moments_of")

    @torch.no_grad()
    def merge(self, count, mean, m2):
        """Merges moments of more data (as :meth:`moments_of` returns) into
        the statistics; a count of 0 changes nothing."""
        self._merge(count, mean, m2, "merge")
        return self

    def _merge(self, count, mean, m2, where):
        if self._fixed is not None:
            raise RuntimeError(
                f"Normalization.{where}: this layer was built with a fixed mean and "
                "variance, which merging would overwrite"
            )
        if not (
            all(isinstance(t, torch.Tensor) for t in (count, mean, m2))
            and count.numel() == 1
            and mean.shape == m2.shape
        ):
            raise ValueError(
                f"Normalization.{where}: expected a scalar count and a mean and M2 of "
                f"one shape, got {_describe(count)}, {_describe(mean)} and {_describe(m2)}"
            )
        state = (self.count, self.mean, self.variance)
        self._set_state(self._merged(state, count, mean, m2, where))

    def reset_statistics(self):
        """Drops learned statistics (fixed ones are restored)."""
        like = {"dtype": self.mean.dtype, "device": self.mean.device}
        if self._fixed is None:
            self.mean = torch.empty(0, **like)
            self.variance = torch.empty(0, **like)
        else:
            self.mean, self.variance = (t.to(**like, copy=True) for t in self._fixed)
        self.count = torch.zeros_like(self.count)

    def scale(self):
        """The per-feature divisor: ``sqrt(variance)`` floored at ``eps``, 1
        for constant features."""
        if not self.is_adapted():
            raise RuntimeError(
                "Normalization: no statistics yet; call adapt(x) on training data "
                "first (or pass mean and variance)"
            )
        return _ops.scale_from_variance(self.variance, self.mean, self.count, self.eps)

    def _broadcast_stats(self, x, where):
        """`mean` and `scale` viewed to broadcast against `x`, after checking
        that x's feature sizes match the statistics."""
        if not self.is_adapted():
            raise RuntimeError(
                f"Normalization.{where}: called before the statistics were set; call "
                "adapt(x) on training data first (or pass mean and variance)"
            )
        _check_floating(x, f"Normalization.{where}", "input")
        dims = self._feature_dims(x.dim(), where)
        sizes = [x.shape[d] for d in dims]
        if sizes != _shape(self.mean):
            raise ValueError(
                f"Normalization.{where}: input has feature shape {sizes} along axis "
                f"{list(self.axis)} but the statistics have shape {_shape(self.mean)}; "
                "pass inputs with the features the layer was adapted on"
            )
        scale = self.scale()
        if not dims:
            return self.mean, scale
        view = [1] * x.dim()
        for d in dims:
            view[d] = x.shape[d]
        return self.mean.reshape(view), scale.reshape(view)

    def forward(self, x):
        """Standardizes `x` (de-standardizes it when ``invert`` is set)."""
        mean, scale = self._broadcast_stats(x, "forward")
        op = _ops.destandardize if self.invert else _ops.standardize
        return op(x, mean, scale)

    def inverse(self, x):
        """The inverse of :meth:`forward`."""
        mean, scale = self._broadcast_stats(x, "inverse")
        op = _ops.standardize if self.invert else _ops.destandardize
        return op(x, mean, scale)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _adopt_checkpoint_shapes(self, state_dict, prefix, ("mean", "variance"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self):
        features = _shape(self.mean) if self.is_adapted() else "not adapted"
        return f"axis={list(self.axis)}, eps={self.eps}, invert={self.invert}, features={features}"


class TargetStandardizer(nn.Module):
    r"""Affine target scaling for regression: ``(y - loc) / scale``.

    Fit on training targets, train on :meth:`transform` (y), map predictions
    back with :meth:`inverse_transform`. The statistics are buffers ``loc``,
    ``scale`` (float64) and ``count`` (int64), the C++ module's names: per
    column of an (N, k) target, scalars for an (N) target.

    Args:
        method (str): ``"zscore"``: ``(y - mean) / std`` (population std);
            ``"minmax"``: ``(y - min) / (max - min)``, into [0, 1];
            ``"none"``: identity (loc 0, scale 1). Read by :meth:`fit`.
            Default: ``"zscore"``.
        eps (float): smallest divisor of a non-constant target; constant
            targets get 1. Default: ``1e-7``.

    Shape:
        - Input: (N) or (N, k), k the fitted number of columns.
        - Output: same shape and dtype as the input.
    """

    METHODS = ("zscore", "minmax", "none")

    def __init__(self, method="zscore", eps=1e-7):
        super().__init__()
        if method not in self.METHODS:
            raise ValueError(
                f"TargetStandardizer: unknown method {method!r}; use \"zscore\", "
                "\"minmax\" or \"none\""
            )
        self.method = method
        self.eps = float(eps)
        self.register_buffer("loc", torch.empty(0, dtype=_F64))
        self.register_buffer("scale", torch.empty(0, dtype=_F64))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def is_fitted(self):
        """Whether :meth:`fit` (or a state_dict load) has set the statistics."""
        return self.loc.numel() > 0

    def _batch_stats(self, y, where):
        """Checks targets `y` as the C++ fit() does; returns (count, min,
        max) in float64 for min-max scaling, else (count, mean, M2)."""
        _check_floating(y, f"TargetStandardizer.{where}", "targets")
        if y.dim() not in (1, 2):
            raise ValueError(
                f"TargetStandardizer.{where}: expected targets of shape (N) or (N, k), "
                f"got {_shape(y)}"
            )
        if y.numel() == 0:
            raise ValueError(f"TargetStandardizer.{where}: got no targets (shape {_shape(y)})")
        index = _first_nonfinite_index(y)
        if index is not None:
            raise ValueError(
                f"TargetStandardizer.{where}: target {index} is NaN or Inf; remove or "
                "impute it before fitting"
            )
        n, mean, m2 = _ops.moments(y, [0])
        if self.method == "minmax":
            yd = y.to(_F64)
            return n, torch.min(yd, 0).values, torch.max(yd, 0).values
        return n, mean, m2

    def _fold(self, stats, y, where):
        """`stats` (as _batch_stats returns, or None) with batch `y` merged in."""
        batch = self._batch_stats(y, where)
        if stats is None:
            return batch
        if stats[1].shape != batch[1].shape:
            earlier = "(N)" if stats[1].dim() == 0 else f"(N, {stats[1].shape[0]})"
            raise ValueError(
                f"TargetStandardizer.{where}: got targets of shape {_shape(y)} but earlier "
                f"batches had shape {earlier}; pass batches of one shape"
            )
        if self.method == "minmax":
            lo, hi = torch.minimum(stats[1], batch[1]), torch.maximum(stats[2], batch[2])
            return stats[0] + batch[0], lo, hi
        return _ops.merge_moments(*stats, *batch)

    def _moments_state(self, n, mean, m2):
        if int(n) <= 0:
            raise ValueError("TargetStandardizer: got no targets")
        mean64 = mean.to(_F64)
        if self.method == "zscore":
            variance = m2.to(_F64) / n.to(_F64)
            return mean64, _ops.scale_from_variance(variance, mean64, n, self.eps), n
        return torch.zeros_like(mean64), torch.ones_like(mean64), n

    def _range_state(self, n, lo, hi):
        if int(n) <= 0:
            raise ValueError("TargetStandardizer: got no targets")
        spread = hi.to(_F64) - lo.to(_F64)
        scale = torch.where(spread > 0, torch.clamp_min(spread, self.eps), torch.ones_like(spread))
        return lo.to(_F64), scale, n

    def _fitted_state(self, stats):
        if self.method == "minmax":
            return self._range_state(*stats)
        return self._moments_state(*stats)

    def _set(self, state):
        loc, scale, n = state
        self.loc = loc.to(self.loc.device, self.loc.dtype)
        self.scale = scale.to(self.scale.device, self.scale.dtype)
        self.count = n.reshape(()).to(self.count.device, self.count.dtype)

    @torch.no_grad()
    def fit(self, y):
        """Learns ``loc`` and ``scale`` from targets.

        Args:
            y (Tensor or iterable of Tensor): targets of shape (N) or (N, k),
                or batches of them (read once; z-score moments merged with
                Chan et al.'s formula, min-max ranges exactly).

        Every batch is checked before the statistics change.
        """
        stats = _fold_all(self._fold, y, "TargetStandardizer", "fit")
        self._set(self._fitted_state(stats))
        return self

    @torch.no_grad()
    def fit_moments(self, count, mean, m2):
        """Fits z-score (or identity) scaling from moments computed
        elsewhere (count, per-column mean and M2, as
        ``torch.ops.normopt.moments`` returns)."""
        if self.method == "minmax":
            raise RuntimeError(
                "TargetStandardizer.fit_moments: min-max scaling needs the range; use "
                "fit_range(count, min, max)"
            )
        self._set(self._moments_state(count, mean, m2))
        return self

    @torch.no_grad()
    def fit_range(self, count, min, max):
        """Fits min-max scaling from a per-column range computed elsewhere."""
        if self.method != "minmax":
            raise RuntimeError(
                "TargetStandardizer.fit_range: only min-max scaling is fitted from a "
                "range; use fit_moments(count, mean, m2)"
            )
        self._set(self._range_state(count, min, max))
        return self

    def _check_ready(self, t, where):
        if not self.is_fitted():
            raise RuntimeError(
                f"TargetStandardizer.{where}: called before fit(); call fit(y_train) first"
            )
        _check_floating(t, f"TargetStandardizer.{where}", "input")
        k = 1 if self.loc.dim() == 0 else self.loc.shape[0]
        cols = 1 if t.dim() <= 1 else t.shape[-1]
        if t.dim() > 2 or (cols != k and self.loc.dim() != 0):
            raise ValueError(
                f"TargetStandardizer.{where}: got shape {_shape(t)} but the statistics "
                f"were fitted on {k} target column(s); pass (N) or (N, {k})"
            )

    def transform(self, y):
        """``(y - loc) / scale``, in y's dtype."""
        self._check_ready(y, "transform")
        return _ops.standardize(y, self.loc, self.scale)

    def inverse_transform(self, z):
        """``z * scale + loc``: standardized values back to original units."""
        self._check_ready(z, "inverse_transform")
        return _ops.destandardize(z, self.loc, self.scale)

    def forward(self, y):
        """Same as :meth:`transform`."""
        return self.transform(y)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _adopt_checkpoint_shapes(self, state_dict, prefix, ("loc", "scale"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self):
        fitted = "fitted" if self.is_fitted() else "not fitted"
        return f"method={self.method!r}, eps={self.eps}, {fitted}"


class StandardizedRegressor(nn.Module):
    r"""Input :class:`Normalization` -> any regressor -> :class:`TargetStandardizer`.

    Trains in standardized space and predicts in original units, as one
    module and one state_dict. The parts are submodules ``normalization``,
    ``regressor`` and ``target``, as in the C++ module, so a C++ checkpoint's
    tensors load into it: with a linear regressor (``torch.nn.Linear``) the
    state_dict keys are ``normalization.{mean,variance,count}``,
    ``regressor.{weight,bias}`` and ``target.{loc,scale,count}``.

    Args:
        regressor (nn.Module): any module mapping standardized features to
            standardized targets, e.g. ``torch.nn.Linear(n_features, 1)``.
        normalization (Normalization, optional): the input scaling. Default:
            ``Normalization()`` (features along the last dim).
        target (TargetStandardizer, optional): the target scaling. Default:
            ``TargetStandardizer()`` (z-score).

    Example::

        >>> model = StandardizedRegressor(torch.nn.Linear(2, 1))
        >>> model.fit_statistics(x_train, y_train)      # y_train: (N, 1)
        >>> loss = F.mse_loss(model(x), model.transform_targets(y))
        >>> model.predict(x_new)                        # original units
    """

    def __init__(self, regressor, normalization=None, target=None):
        super().__init__()
        if not isinstance(regressor, nn.Module):
            raise TypeError(
                "StandardizedRegressor: regressor must be a torch.nn.Module, e.g. "
                f"torch.nn.Linear(n_features, 1); got {type(regressor).__name__}"
            )
        normalization = Normalization() if normalization is None else normalization
        target = TargetStandardizer() if target is None else target
        if not isinstance(normalization, Normalization):
            raise TypeError(
                "StandardizedRegressor: normalization must be a normopt.nn.Normalization, "
                f"got {type(normalization).__name__}"
            )
        if not isinstance(target, TargetStandardizer):
            raise TypeError(
                "StandardizedRegressor: target must be a normopt.nn.TargetStandardizer, "
                f"got {type(target).__name__}"
            )
        # Registration order = state_dict order, the C++ module's.
        self.normalization = normalization
        self.regressor = regressor
        self.target = target

    @torch.no_grad()
    def fit_statistics(self, x, y=None):
        """Adapts the input normalization on `x` and fits the target scaling
        on `y`.

        Args:
            x (Tensor or iterable): features; or, with `y` omitted, an iterable
                of ``(x, y)`` batches (e.g. a DataLoader), read once.
            y (Tensor, optional): targets, one row per row of `x`.

        Every batch is checked before either part changes.
        """
        if y is None and isinstance(x, torch.Tensor):
            raise TypeError(
                "StandardizedRegressor.fit_statistics: got x without y; pass "
                "fit_statistics(x, y) or an iterable of (x, y) batches"
            )
        single = y is not None
        pairs = [(x, y)] if single else _batches(x, "StandardizedRegressor.fit_statistics")
        norm_state, target_stats = None, None
        for i, pair in enumerate(pairs):
            suffix = "" if single else f" (batch {i})"
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(
                    f"StandardizedRegressor.fit_statistics: batch {i} is a "
                    f"{type(pair).__name__}, expected an (x, y) pair"
                )
            bx, by = pair
            if not (
                isinstance(bx, torch.Tensor)
                and isinstance(by, torch.Tensor)
                and bx.dim() >= 1
                and by.dim() >= 1
                and bx.shape[0] == by.shape[0]
            ):
                raise ValueError(
                    f"StandardizedRegressor.fit_statistics{suffix}: x and y must be "
                    "tensors with the same number of rows, got "
                    f"{_describe(bx)} and {_describe(by)}"
                )
            norm_state = self.normalization._fold(norm_state, bx, "adapt" + suffix)
            target_stats = self.target._fold(target_stats, by, "fit" + suffix)
        if norm_state is None:
            raise ValueError(
                "StandardizedRegressor.fit_statistics: got no batches; pass at least one"
            )
        target_state = self.target._fitted_state(target_stats)
        self.normalization._set_state(norm_state)
        self.target._set(target_state)
        return self

    def forward(self, x):
        """Standardized predictions, ``regressor(normalization(x))``: what the
        training loss compares with :meth:`transform_targets` (y)."""
        return self.regressor(self.normalization(x))

    def predict(self, x):
        """Predictions in the targets' original units."""
        return self.target.inverse_transform(self(x))

    def transform_targets(self, y):
        """Targets in standardized units, for the loss."""
        return self.target.transform(y)
