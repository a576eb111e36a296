"""Fused optimizers for PyTorch: ``Adam``, ``AdamW`` and ``SGD``.

Subclasses of :class:`torch.optim.Optimizer` with torch.optim's arguments,
param groups, state names and ``state_dict`` format, whose ``step()`` updates
each param group's parameters in one call of libnormopt's fused ops
(``torch.ops.normopt.adam_step_`` / ``sgd_step_``, one call per device and
dtype): every element of a parameter, its gradient and its state is read and
written once. They are the Python counterparts of the C++ optimizers
``normopt::optim::Adam``, ``AdamW`` and ``SGD``, with the same options::

    opt = normopt.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()
    torch.save(opt.state_dict(), "opt.pt")

    # Keras's Adam (epsilon added to the uncorrected sqrt(v)), e.g. to
    # replay a Keras run; steps with NaN/Inf gradients skipped and counted:
    opt = normopt.optim.Adam(params, epsilon_mode="keras", skip_nonfinite=True)

Beyond torch.optim:

- ``epsilon_mode`` (Adam, AdamW): ``"pytorch"`` (default)
  ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``, or
  ``"keras"``: ``alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)``,
  ``p -= alpha * m / (sqrt(v) + eps)``. ``eps=None`` (default) means 1e-8
  in PyTorch's mode and 1e-7, Keras's default, in Keras's.
- ``capturable`` (Adam, AdamW): as torch.optim's, ``state["step"]`` lives
  on the parameter's device and ``torch.ops.normopt.adam_step_capturable_``
  advances it there and computes the bias corrections from it, so ``step()``
  reads nothing on the host and can be captured in a CUDA graph
  (``torch.cuda.graph``) with the forward and backward. A captured graph
  replays the hyper-parameters it was captured with. ``load_state_dict``
  keeps each group's own ``capturable`` (how this program runs, not what it
  learned) and moves the loaded counts accordingly. Not with
  ``skip_nonfinite``, which decides each step on the host.
- ``skip_nonfinite``: when any gradient holds NaN or Inf, the whole step is
  skipped (no parameter or state changes, step counts not advanced), a
  ``RuntimeWarning`` says so, and ``skipped_steps`` counts it; the count is
  saved in ``state_dict()["skipped_steps"]``.

Limits: parameters are real floating tensors (float32, float64, float16,
bfloat16) with dense gradients; ``lr`` and the other hyper-parameters are
Python numbers (no Tensor lr); there are no ``foreach``, ``fused`` or
``differentiable`` flags: the step is always fused. Bad
hyper-parameters raise ``ValueError`` (in the constructor and
``add_param_group``), a sparse gradient ``RuntimeError`` (in ``step()``).

``step()`` prepares each param group's tensor lists once and reuses them
while the group's parameters, the set of parameters with gradients and the
number of entries of ``optimizer.state`` stay the same, and after
``load_state_dict`` prepares them again. Change state tensors in place or
through ``load_state_dict``; a tensor assigned to ``optimizer.state[p][key]``
by hand is not seen by later steps.
"""

import math
import numbers
import operator
import warnings
from itertools import repeat

import torch
from torch.autograd.graph import increment_version
from torch.nn.utils import get_total_norm
from torch.optim import Optimizer

from normopt import _library

_library.load()

__all__ = ["Adam", "AdamW", "SGD"]

_adam_step = torch.ops.normopt.adam_step_.default
_adam_step_capturable = torch.ops.normopt.adam_step_capturable_.default
_sgd_step = torch.ops.normopt.sgd_step_.default

_EPSILON_MODES = ("pytorch", "keras")
_DEFAULT_EPS = {"pytorch": 1e-8, "keras": 1e-7}


def _scalar_dtype():
    """The dtype of state["step"], as torch.optim chooses it."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


class _Bucket:
    """The tensors of one fused call: a param group's parameters of one device
    and dtype, with their state. `index` picks their gradients from the
    group's list (None: all of them, in order)."""

    __slots__ = ("index", "params", "lists", "steps", "counts", "version", "fresh")

    def __init__(self, index, params):
        self.index = index
        self.params = params
        self.lists = ()  # state tensor lists, in the op's argument order
        # Adam: the step counts, a tensor whose scalar views are the states'
        # "step", and as ints (valid while the tensor's version is `version`);
        # with capturable, the views themselves (the op advances them).
        self.steps = None
        self.counts = None
        self.version = None
        self.fresh = None  # SGD: (positions, states) of new momentum buffers

    def grads(self, group_grads):
        if self.index is None:
            return group_grads
        return [group_grads[i] for i in self.index]


class _Plan:
    """One param group's prepared step, valid for `key`."""

    __slots__ = ("group", "params", "key", "buckets")

    def __init__(self, group, key):
        self.group = group
        self.params = tuple(group["params"])
        self.key = key
        self.buckets = []

    def fits(self, group, key):
        params = group["params"]
        return (
            self.group is group
            and self.key == key
            and len(self.params) == len(params)
            and all(map(operator.is_, self.params, params))
        )


class _FusedOptimizer(Optimizer):
    """What Adam, AdamW and SGD share: validation, the prepared step lists,
    skip_nonfinite and its count in the state_dict."""

    # The names of a subclass's hyper-parameters: its param groups' keys (and
    # the order in which its constructor passes their values).
    _hyper = ()

    def __init__(self, params, values, skip_nonfinite):
        """`values`: the constructor's hyper-parameters, in `_hyper`'s order;
        they become the defaults of every param group."""
        defaults = dict(zip(self._hyper, values, strict=True))
        if not isinstance(skip_nonfinite, bool):
            raise ValueError(
                f"{self._name()}: skip_nonfinite must be True or False, got {skip_nonfinite!r}"
            )
        self._check_group(defaults, "")
        self.skip_nonfinite = skip_nonfinite
        self._skipped_steps = 0
        self._reset_plans()
        super().__init__(params, defaults)

    @classmethod
    def _name(cls):
        return f"normopt.optim.{cls.__name__}"

    @property
    def skipped_steps(self):
        """Steps skipped because a gradient held NaN or Inf (skip_nonfinite)."""
        return self._skipped_steps

    # ---- Validation ----------------------------------------------------------

    def _check_number(self, group, key, where, nonnegative=True, hint=""):
        value = group[key]
        if not _is_number(value) or not math.isfinite(value) or (nonnegative and value < 0):
            bound = " >= 0" if nonnegative else ""
            raise ValueError(
                f"{self._name()}: invalid {key}={value!r}{where}; it must be a finite "
                f"number{bound}{hint}"
            )

    def _check_flag(self, group, key, where):
        if not isinstance(group[key], bool):
            raise ValueError(
                f"{self._name()}: {key} must be True or False{where}, got {group[key]!r}"
            )

    def _check_group(self, group, where):
        raise NotImplementedError

    def add_param_group(self, param_group):
        """Adds a param group (torch.optim's rules); its hyper-parameters
        default to the constructor's and are validated."""
        if isinstance(param_group, dict):
            where = f" in param group {len(self.param_groups)}"
            self._check_group({**self.defaults, **param_group}, where)
        super().add_param_group(param_group)
        for i, p in enumerate(self.param_groups[-1]["params"]):
            if not p.is_floating_point():
                self.param_groups.pop()
                raise ValueError(
                    f"{self._name()}: parameter {i} of param group {len(self.param_groups)} "
                    f"has dtype {p.dtype}; normopt optimizers update float32, float64, "
                    "float16 and bfloat16 parameters (for complex ones use torch.optim)"
                )

    # ---- state_dict ----------------------------------------------------------

    def state_dict(self):
        """torch.optim's state_dict plus "skipped_steps", the count of steps
        skipped for non-finite gradients."""
        state_dict = super().state_dict()
        state_dict["skipped_steps"] = self._skipped_steps
        return state_dict

    def load_state_dict(self, state_dict):
        """Loads a state_dict of this optimizer (or of the torch.optim one it
        mirrors: missing options take this optimizer's defaults)."""
        skipped = state_dict.get("skipped_steps", 0)
        if not isinstance(skipped, int) or isinstance(skipped, bool) or skipped < 0:
            raise ValueError(
                f"{self._name()}: the state_dict's skipped_steps is {skipped!r}; expected "
                "a count >= 0: the state_dict is corrupted or from another program"
            )
        super().load_state_dict(state_dict)
        self._skipped_steps = skipped

    def __getstate__(self):
        state = super().__getstate__()
        state["skip_nonfinite"] = self.skip_nonfinite
        state["_skipped_steps"] = self._skipped_steps
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for key in self._hyper:
                group.setdefault(key, self.defaults[key])
        self.__dict__.setdefault("skip_nonfinite", False)
        self.__dict__.setdefault("_skipped_steps", 0)
        self._reset_plans()

    # ---- The step --------------------------------------------------------------

    def _reset_plans(self):
        self._plans = {}
        self._plans_state = (None, 0)  # (optimizer.state, its length) they were made for

    def step(self, closure=None):
        """Performs one optimization step; returns the closure's loss.

        Args:
            closure (Callable, optional): re-evaluates the model and returns
                the loss (run with gradients enabled).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = self.param_groups
        grads = [[p.grad for p in group["params"]] for group in groups]
        if self.skip_nonfinite and not self._grads_finite(groups, grads):
            self._skipped_steps += 1
            warnings.warn(
                f"{self._name()}: skipped a step whose gradients hold NaN or Inf "
                f"(skip_nonfinite=True); {self._skipped_steps} step(s) skipped so far",
                RuntimeWarning,
                stacklevel=3,
            )
            return loss
        if self.state is not self._plans_state[0] or len(self.state) != self._plans_state[1]:
            self._plans = {}
        with torch.no_grad():
            for group, group_grads in zip(groups, grads):
                self._step_group(group, group_grads, self._plan(group, group_grads))
        self._plans_state = (self.state, len(self.state))
        return loss

    def _grads_finite(self, groups, grads):
        present = []
        for group, group_grads in zip(groups, grads):
            for p, g in zip(group["params"], group_grads):
                if g is not None:
                    self._refuse_sparse(p, g)
                    present.append(g)
        if not present:
            return True
        # The 2-norm is the fastest reduction and NaN and Inf propagate into
        # it, so a finite one settles it; a non-finite one may be the overflow
        # of large finite values, which the max-abs norm (exact) tells apart.
        if torch.isfinite(get_total_norm(present, 2.0)):
            return True
        return bool(torch.isfinite(get_total_norm(present, math.inf)))

    def _refuse_sparse(self, p, g):
        if g.layout != torch.strided:
            raise RuntimeError(
                f"{self._name()}: the parameter of shape {list(p.shape)} has a {g.layout} "
                "gradient, which normopt optimizers do not support; use dense gradients "
                "(e.g. nn.Embedding(..., sparse=False)) or torch.optim.SparseAdam"
            ) from None  # not chained to the op's refusal of it

    def _plan(self, group, grads):
        if all(map(operator.is_not, grads, repeat(None))):
            present = None  # every parameter has a gradient
        else:
            present = tuple(i for i, g in enumerate(grads) if g is not None)
        key = (present, self._plan_flag(group))
        plan = self._plans.get(id(group))
        if plan is None or not plan.fits(group, key):
            plan = _Plan(group, key)
            params = group["params"]
            by_kind = {}
            for i in range(len(params)) if present is None else present:
                by_kind.setdefault((params[i].device, params[i].dtype), []).append(i)
            whole = present is None and len(by_kind) == 1
            for index in by_kind.values():
                bucket = _Bucket(None if whole else index, [params[i] for i in index])
                self._prepare(group, bucket)
                plan.buckets.append(bucket)
            self._plans[id(group)] = plan
        return plan

    def _call(self, op, params, grads, *args, **kwargs):
        """op(params, grads, ...), gradients conformed to the parameters'
        strides where they differ (rare, e.g. a gradient made by expand). The
        op validates every argument before it writes, so a refused call
        changed nothing and can be repeated."""
        try:
            op(params, grads, *args, **kwargs)
        except RuntimeError:
            conformed = None
            for i, (p, g) in enumerate(zip(params, grads)):
                self._refuse_sparse(p, g)
                if g.shape == p.shape and g.stride() != p.stride():
                    conformed = conformed or list(grads)
                    conformed[i] = torch.empty_like(p).copy_(g)
            if conformed is None:
                raise
            op(params, conformed, *args, **kwargs)
        # The op's in-place writes bypass autograd: bump the parameters'
        # version counters as torch.optim's in-place updates do, so autograd
        # refuses a backward through a parameter saved before this step.
        increment_version(params)


def _resolve_eps(group):
    """A group's eps of None as the number its epsilon_mode means."""
    if group.get("eps") is None:
        group["eps"] = _DEFAULT_EPS[group.get("epsilon_mode", "pytorch")]


class Adam(_FusedOptimizer):
    r"""Adam (Kingma & Ba, 2014) with a fused step, torch.optim.Adam's update.

    Args:
        params (iterable): parameters, or dicts defining param groups (each
            may set its own values of the options below).
        lr (float, optional): learning rate (default: 1e-3).
        betas (Tuple[float, float], optional): decay rates of the first and
            second moment averages, each in [0, 1) (default: (0.9, 0.999)).
        eps (float, optional): term added to the denominator; None (default)
            means 1e-8 with epsilon_mode "pytorch" and 1e-7 (Keras's default)
            with "keras".
        weight_decay (float, optional): L2 penalty added to the gradient,
            ``g += weight_decay * p`` (default: 0).
        amsgrad (bool, optional): use the running maximum of the second
            moment (AMSGrad) (default: False). Switched on mid-run, the
            maximum starts from the current second moment.
        maximize (bool, optional): maximize the objective (default: False).
        epsilon_mode (str, optional): "pytorch" (default): PyTorch's
            formula; "keras": Keras's, eps added to the uncorrected sqrt(v)
            (see the module's documentation).
        skip_nonfinite (bool, optional): skip, warn about and count
            (``skipped_steps``) every step whose gradients hold NaN or Inf,
            for all param groups (default: False: PyTorch's behaviour).
        capturable (bool, optional): keep ``step`` on the parameter's device
            and advance it there, so that the step can be captured in a CUDA
            graph (default: False; see the module's documentation).

    State per parameter, as torch.optim.Adam's: ``step`` (a scalar tensor,
    float32, or float64 when that is torch's default dtype; on the
    parameter's device with capturable), ``exp_avg``, ``exp_avg_sq`` and,
    with amsgrad, ``max_exp_avg_sq``.
    """

    _hyper = (
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "amsgrad",
        "maximize",
        "epsilon_mode",
        "capturable",
    )
    _decoupled_weight_decay = False

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=None,
        weight_decay=0.0,
        amsgrad=False,
        *,
        maximize=False,
        epsilon_mode="pytorch",
        skip_nonfinite=False,
        capturable=False,
    ):
        if capturable is True and skip_nonfinite is True:
            raise ValueError(
                f"{self._name()}: capturable=True and skip_nonfinite=True cannot be "
                "combined: skip_nonfinite reads the gradients on the host to decide "
                "each step, which a captured CUDA graph cannot do; turn one off"
            )
        values = (
            lr, betas, eps, weight_decay, amsgrad, maximize, epsilon_mode, capturable
        )
        super().__init__(params, values, skip_nonfinite)

    def _check_group(self, group, where):
        self._check_number(group, "lr", where, hint=", e.g. 1e-3")
        betas = group["betas"]
        if (
            not isinstance(betas, (tuple, list))
            or len(betas) != 2
            or not all(_is_number(b) and 0 <= b < 1 for b in betas)
        ):
            raise ValueError(
                f"{self._name()}: invalid betas={betas!r}{where}; pass two numbers in "
                "[0, 1), e.g. betas=(0.9, 0.999)"
            )
        if group["eps"] is not None:
            self._check_number(
                group, "eps", where, hint=", or None for the epsilon_mode's default"
            )
        self._check_number(group, "weight_decay", where)
        self._check_flag(group, "amsgrad", where)
        self._check_flag(group, "maximize", where)
        self._check_flag(group, "capturable", where)
        self._check_epsilon_mode(group["epsilon_mode"], where)

    def _check_epsilon_mode(self, mode, where):
        if mode not in _EPSILON_MODES:
            raise ValueError(
                f"{self._name()}: invalid epsilon_mode={mode!r}{where}; pass 'pytorch' "
                "(PyTorch's formula) or 'keras' (Keras's: eps added to the uncorrected "
                "sqrt(v))"
            )

    def _plan_flag(self, group):
        return group["amsgrad"], group["capturable"]

    def add_param_group(self, param_group):
        """Adds a param group; an ``eps`` of None becomes the number its
        ``epsilon_mode`` means (1e-8 or 1e-7), so the group's state_dict loads
        into torch.optim.Adam too (``epsilon_mode`` stays in its own key)."""
        super().add_param_group(param_group)
        _resolve_eps(self.param_groups[-1])

    def load_state_dict(self, state_dict):
        """Loads a state_dict (see _FusedOptimizer's); each param group keeps
        its own ``capturable``, and the next step moves the loaded step
        counts where it wants them. An ``eps`` of None (older files) becomes
        its mode's number."""
        capturable = [group["capturable"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, flag in zip(self.param_groups, capturable):
            group["capturable"] = flag
            _resolve_eps(group)

    def _prepare(self, group, bucket):
        amsgrad = group["amsgrad"]
        states = [self.state[p] for p in bucket.params]
        for p, state in zip(bucket.params, states):
            if "step" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if amsgrad and "max_exp_avg_sq" not in state:
                # A fresh state, or amsgrad switched on: the max starts at v.
                state["max_exp_avg_sq"] = state["exp_avg_sq"].clone()
        # One tensor holds the bucket's step counts and each state["step"] is
        # a scalar view of it: a step advances them all with one add. With
        # capturable the tensor is on the parameters' device (one host read
        # here, when the plan is made, and none in the steps).
        counts = [int(s["step"]) for s in states]
        device = bucket.params[0].device if group["capturable"] else None
        bucket.steps = torch.tensor(counts, dtype=_scalar_dtype(), device=device)
        bucket.version = bucket.steps._version
        views = bucket.steps.unbind()
        for state, step in zip(states, views):
            state["step"] = step
        bucket.counts = list(views) if group["capturable"] else counts
        bucket.lists = (
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if amsgrad else [],
        )

    def _step_group(self, group, grads, plan):
        mode = group["epsilon_mode"]
        self._check_epsilon_mode(mode, "")
        eps = group["eps"]
        beta1, beta2 = group["betas"]
        options = dict(
            lr=float(group["lr"]),
            beta1=float(beta1),
            beta2=float(beta2),
            eps=float(_DEFAULT_EPS[mode] if eps is None else eps),
            weight_decay=float(group["weight_decay"]),
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=self._decoupled_weight_decay,
            keras_epsilon=mode == "keras",
        )
        if group["capturable"]:
            for bucket in plan.buckets:
                self._call(
                    _adam_step_capturable,
                    bucket.params,
                    bucket.grads(grads),
                    *bucket.lists,
                    bucket.counts,
                    **options,
                )
            return
        for bucket in plan.buckets:
            if bucket.steps._version != bucket.version:
                # A state["step"] was changed in place (e.g. fill_): reread.
                bucket.counts = [int(c) for c in bucket.steps.tolist()]
            counts = [c + 1 for c in bucket.counts]
            self._call(_adam_step, bucket.params, bucket.grads(grads), *bucket.lists, counts, **options)
            bucket.steps.add_(1)
            bucket.counts = counts
            bucket.version = bucket.steps._version


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2017): Adam with decoupled weight decay,
    torch.optim.AdamW's update (``p *= 1 - lr * weight_decay`` before the
    Adam step).

    Args: as :class:`Adam`'s, with ``weight_decay`` the decoupled decay
    (default: 1e-2, as torch.optim.AdamW's).
    """

    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=None, weight_decay=1e-2,
                 amsgrad=False, **options):
        # Adam's arguments; only weight_decay's meaning and default differ.
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **options)


class SGD(_FusedOptimizer):
    r"""Stochastic gradient descent with (Nesterov) momentum and a fused step,
    torch.optim.SGD's update.

    Args:
        params (iterable): parameters, or dicts defining param groups (each
            may set its own values of the options below).
        lr (float, optional): learning rate (default: 1e-3).
        momentum (float, optional): momentum factor; 0 (default): plain
            gradient descent, no momentum buffer.
        dampening (float, optional): dampening of the momentum: the
            gradient's weight in the buffer is 1 - dampening (default: 0).
        weight_decay (float, optional): L2 penalty added to the gradient
            (default: 0).
        nesterov (bool, optional): Nesterov momentum; needs momentum > 0 and
            dampening 0 (default: False).
        maximize (bool, optional): maximize the objective (default: False).
        skip_nonfinite (bool, optional): skip, warn about and count
            (``skipped_steps``) every step whose gradients hold NaN or Inf
            (default: False).

    State per parameter, as torch.optim.SGD's: ``momentum_buffer`` (with
    momentum only), set to the gradient on the parameter's first step.
    """

    _hyper = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        *,
        maximize=False,
        skip_nonfinite=False,
    ):
        values = (lr, momentum, dampening, weight_decay, nesterov, maximize)
        super().__init__(params, values, skip_nonfinite)

    def _check_group(self, group, where):
        self._check_number(group, "lr", where, hint=", e.g. 1e-3")
        self._check_number(group, "momentum", where, hint=", e.g. 0.9")
        self._check_number(group, "dampening", where, nonnegative=False)
        self._check_number(group, "weight_decay", where)
        self._check_flag(group, "nesterov", where)
        self._check_flag(group, "maximize", where)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{self._name()}: nesterov=True{where} needs momentum > 0 and dampening 0, "
                f"got momentum={group['momentum']!r} and dampening={group['dampening']!r}; "
                "set a momentum (e.g. 0.9) and dampening=0, or nesterov=False"
            )

    def _plan_flag(self, group):
        return group["momentum"] != 0

    def _prepare(self, group, bucket):
        if group["momentum"] == 0:
            bucket.lists = ([],)
            return
        buffers, positions, states = [], [], []
        for i, p in enumerate(bucket.params):
            state = self.state[p]
            buffer = state.get("momentum_buffer")
            if buffer is None:
                # Set by the first step (is_first_step), put in the state once
                # that step has succeeded.
                buffer = torch.empty_like(p, memory_format=torch.preserve_format)
                positions.append(i)
                states.append((state, buffer))
            buffers.append(buffer)
        bucket.lists = (buffers,)
        bucket.fresh = (positions, states) if positions else None

    def _step_group(self, group, grads, plan):
        options = dict(
            lr=float(group["lr"]),
            momentum=float(group["momentum"]),
            dampening=float(group["dampening"]),
            weight_decay=float(group["weight_decay"]),
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )
        for bucket in plan.buckets:
            bucket_grads = bucket.grads(grads)
            if bucket.fresh is None:
                self._call(
                    _sgd_step,
                    bucket.params,
                    bucket_grads,
                    *bucket.lists,
                    is_first_step=False,
                    **options,
                )
                continue
            # New buffers take PyTorch's first-step rule (buffer = gradient):
            # a separate call.
            positions, states = bucket.fresh
            new = set(positions)
            (buffers,) = bucket.lists
            for first in (False, True):
                pick = [i for i in range(len(bucket.params)) if (i in new) == first]
                if pick:
                    self._call(
                        _sgd_step,
                        [bucket.params[i] for i in pick],
                        [bucket_grads[i] for i in pick],
                        [buffers[i] for i in pick],
                        is_first_step=first,
                        **options,
                    )
            for state, buffer in states:
                state["momentum_buffer"] = buffer
            bucket.fresh = None
