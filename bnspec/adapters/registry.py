"""Finding adapters: the built-in table, entry points, ``module:attr`` and ``path/to/file.py:attr``.

Built-ins are lazy import strings with an install hint each, so importing bnspec never imports a
framework. Third-party packages register in the ``bnspec.adapters`` entry-point group.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import AdapterNotFound, AdapterUnavailable
from .contract import Adapter

ENTRY_POINT_GROUP = "bnspec.adapters"


@dataclass(frozen=True)
class Entry:
    """A registered adapter: where it lives, what it needs, how to get that."""

    name: str
    target: str  # "module:attr"
    requires: tuple[str, ...]  # top-level modules that must be importable
    install: str  # how to install what it needs
    summary: str
    family: str = ""  # the framework: adapters of one family are implementations of one function
    twin: str = ""  # for a compiled, jitted or exported form: the eager adapter it is the form of


_BUILTIN = (
    Entry("reference", "bnspec.adapters.reference:ReferenceAdapter", (), "", "the NumPy reference (self-check)"),
    Entry("torch", "bnspec.adapters.pytorch:TorchAdapter", ("torch",), "pip install 'bnspec[torch]'",
          "PyTorch nn.BatchNorm1d/2d/3d on the CPU"),
    Entry("torch-functional", "bnspec.adapters.pytorch:TorchFunctionalAdapter", ("torch",),
          "pip install 'bnspec[torch]'", "PyTorch torch.nn.functional.batch_norm on the CPU"),
    Entry("torch-cuda", "bnspec.adapters.pytorch:TorchCudaAdapter", ("torch",), "pip install 'bnspec[torch]'",
          "PyTorch nn.BatchNorm*d on CUDA (cuDNN where PyTorch picks it)"),
    Entry("flax-linen", "bnspec.adapters.flax:FlaxLinenAdapter", ("flax", "jax"), "pip install 'bnspec[jax]'",
          "Flax linen.BatchNorm, gradients by jax.grad"),
    Entry("flax-nnx", "bnspec.adapters.flax:FlaxNnxAdapter", ("flax", "jax"), "pip install 'bnspec[jax]'",
          "Flax nnx.BatchNorm, gradients by jax.grad"),
    Entry("keras-jax", "bnspec.adapters.keras:KerasJaxAdapter", ("keras", "jax"), "pip install 'bnspec[keras,jax]'",
          "Keras 3 BatchNormalization on the JAX backend"),
    Entry("keras-torch", "bnspec.adapters.keras:KerasTorchAdapter", ("keras", "torch"),
          "pip install 'bnspec[keras,torch]'", "Keras 3 BatchNormalization on the PyTorch backend"),
    Entry("keras-tensorflow", "bnspec.adapters.keras:KerasTensorflowAdapter", ("keras", "tensorflow"),
          "pip install 'bnspec[keras,tensorflow]'", "Keras 3 BatchNormalization on the TensorFlow backend"),
    Entry("tf-fused", "bnspec.adapters.tensorflow:TfFusedAdapter", ("tensorflow",), "pip install 'bnspec[tensorflow]'",
          "TensorFlow FusedBatchNormV3 with tf.GradientTape"),
    Entry("onnxruntime", "bnspec.adapters.onnx:OnnxRuntimeAdapter", ("onnx", "onnxruntime"),
          "pip install 'bnspec[onnx]'", "the ONNX BatchNormalization operator in ONNX Runtime (no gradients)"),
    Entry("onnx-reference", "bnspec.adapters.onnx:OnnxReferenceAdapter", ("onnx",), "pip install 'bnspec[onnx]'",
          "the ONNX BatchNormalization operator in onnx.reference.ReferenceEvaluator (no gradients)"),
    Entry("tinygrad", "bnspec.adapters.tinygrad:TinygradAdapter", ("tinygrad",), "pip install 'bnspec[tinygrad]'",
          "tinygrad nn.BatchNorm with tinygrad's autograd"),
    Entry("mlx", "bnspec.adapters.mlx:MlxAdapter", ("mlx",), "pip install 'bnspec[mlx]'",
          "MLX nn.BatchNorm with mlx.core.grad"),
    Entry("cupy", "bnspec.adapters.cupy:CupyAdapter", ("cupy",), "pip install 'bnspec[cupy]'",
          "bnspec's own CUDA kernels through CuPy (needs a CUDA device)"),
    Entry("torch-cuda-native", "bnspec.adapters.pytorch:TorchCudaNativeAdapter", ("torch",),
          "pip install 'bnspec[torch]'", "PyTorch nn.BatchNorm*d on CUDA with cuDNN disabled (its native kernels)"),
    Entry("torch-sync", "bnspec.adapters.torch_sync:TorchSyncAdapter", ("torch",), "pip install 'bnspec[torch]'",
          "PyTorch nn.SyncBatchNorm over torch.distributed (gloo), one process per replica, on CUDA"),
    Entry("flax-sync", "bnspec.adapters.flax_sync:FlaxSyncAdapter", ("flax", "jax"), "pip install 'bnspec[jax]'",
          "Flax linen.BatchNorm(axis_name=...) under jax.shard_map, one CPU device per replica"),
    Entry("keras-sync", "bnspec.adapters.keras_sync:KerasSyncAdapter", ("keras", "tensorflow"),
          "pip install 'bnspec[keras,tensorflow]'",
          "Keras 3 BatchNormalization(synchronized=True) under tf.distribute.MirroredStrategy, one CPU device per replica"),
    # Compiled, jitted and exported forms (bnspec/adapters/compiled/): what users ship (issue 16).
    Entry("torch-compile", "bnspec.adapters.compiled.torch_forms:TorchCompileAdapter", ("torch",), "pip install 'bnspec[torch]'",
          "torch.compile (Inductor, CPU) of nn.BatchNorm*d, forward and backward"),
    Entry("torch-onnx", "bnspec.adapters.compiled.torch_forms:TorchOnnxAdapter", ("torch", "onnx", "onnxruntime"),
          "pip install 'bnspec[torch,onnx]'", "torch.onnx.export of nn.BatchNorm*d (train and eval), run in onnxruntime"),
    Entry("onnxruntime-exported", "bnspec.adapters.compiled.onnx_forms:OnnxExportedAdapter", ("onnx", "onnxruntime"),
          "pip install 'bnspec[onnx]'", "ONNX BatchNormalization as exporters write it (initializers) in onnxruntime, "
          "default optimizations"),
    Entry("onnxruntime-exported-noopt", "bnspec.adapters.compiled.onnx_forms:OnnxExportedNoOptAdapter", ("onnx", "onnxruntime"),
          "pip install 'bnspec[onnx]'", "the same with onnxruntime's graph optimizations off"),
    Entry("onnxruntime-exported-dangling", "bnspec.adapters.compiled.onnx_forms:OnnxExportedDanglingAdapter",
          ("onnx", "onnxruntime"), "pip install 'bnspec[onnx]'",
          "the exported form with the training node's running outputs unconsumed, default optimizations"),
    Entry("onnxruntime-exported-dangling-noopt", "bnspec.adapters.compiled.onnx_forms:OnnxExportedDanglingNoOptAdapter",
          ("onnx", "onnxruntime"), "pip install 'bnspec[onnx]'",
          "the exported form with the training node's running outputs unconsumed, optimizations off"),
    Entry("tf-fused-xla", "bnspec.adapters.compiled.tf_forms:TfFusedXlaAdapter", ("tensorflow",), "pip install 'bnspec[tensorflow]'",
          "TensorFlow FusedBatchNormV3 and its gradient under tf.function(jit_compile=True)"),
    Entry("tf-nn", "bnspec.adapters.compiled.tf_forms:TfNnAdapter", ("tensorflow",), "pip install 'bnspec[tensorflow]'",
          "TensorFlow tf.nn.moments + tf.nn.batch_normalization, eager, with tf.GradientTape"),
    Entry("tf-nn-xla", "bnspec.adapters.compiled.tf_forms:TfNnXlaAdapter", ("tensorflow",), "pip install 'bnspec[tensorflow]'",
          "TensorFlow tf.nn.moments + tf.nn.batch_normalization under tf.function(jit_compile=True)"),
    Entry("flax-linen-jit", "bnspec.adapters.compiled.jax_forms:FlaxLinenJitAdapter", ("flax", "jax"), "pip install 'bnspec[jax]'",
          "Flax linen.BatchNorm and its jax.vjp under jax.jit"),
    Entry("keras-jax-jit", "bnspec.adapters.compiled.jax_forms:KerasJaxJitAdapter", ("keras", "jax"),
          "pip install 'bnspec[keras,jax]'", "Keras 3 BatchNormalization on JAX, stateless_call under jax.jit"),
    Entry("keras-tensorflow-xla", "bnspec.adapters.compiled.jax_forms:KerasTensorflowXlaAdapter", ("keras", "tensorflow"),
          "pip install 'bnspec[keras,tensorflow]'",
          "Keras 3 BatchNormalization on TensorFlow under tf.function(jit_compile=True)"),
    Entry("mlx-compile", "bnspec.adapters.compiled.other_forms:MlxCompileAdapter", ("mlx",), "pip install 'bnspec[mlx]'",
          "MLX nn.BatchNorm and its mx.vjp under mx.compile"),
    Entry("tinygrad-jit", "bnspec.adapters.compiled.other_forms:TinygradJitAdapter", ("tinygrad",), "pip install 'bnspec[tinygrad]'",
          "tinygrad nn.BatchNorm and its gradients under TinyJit, judged on a replay"),
    # Issue 18: more implementations people use.
    Entry("paddle", "bnspec.adapters.paddle:PaddleAdapter", ("paddle",), "pip install 'bnspec[paddle]'",
          "PaddlePaddle nn.BatchNorm1D/2D/3D on the CPU, gradients by Paddle's autograd"),
    Entry("haiku", "bnspec.adapters.haiku:HaikuAdapter", ("haiku", "jax"), "pip install 'bnspec[haiku]'",
          "dm-haiku hk.BatchNorm (ExponentialMovingAverage states), gradients by jax.vjp"),
    Entry("equinox", "bnspec.adapters.equinox:EquinoxAdapter", ("equinox", "jax"), "pip install 'bnspec[equinox]'",
          "Equinox eqx.nn.BatchNorm(mode='batch') under jax.vmap, gradients by jax.vjp"),
    Entry("equinox-ema", "bnspec.adapters.equinox:EquinoxEmaAdapter", ("equinox", "jax"),
          "pip install 'bnspec[equinox]'", "Equinox eqx.nn.BatchNorm(mode='ema'), its default, under jax.vmap"),
    Entry("openvino", "bnspec.adapters.openvino:OpenVinoAdapter", ("openvino",), "pip install 'bnspec[openvino]'",
          "OpenVINO BatchNormInference (opset5) compiled for the CPU plugin (inference only)"),
)

# The differential view (issue 16): each framework's adapters side by side, and each compiled,
# jitted or exported form beside the eager adapter it compiles.
FAMILIES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "reference": ("reference",),
    "torch": ("torch", "torch-functional", "torch-compile", "torch-onnx", "torch-cuda", "torch-cuda-native",
              "torch-sync"),
    "cupy": ("cupy",),
    "flax": ("flax-linen", "flax-linen-jit", "flax-nnx", "flax-sync"),
    "keras-jax": ("keras-jax", "keras-jax-jit"),
    "keras-torch": ("keras-torch",),
    "keras-tensorflow": ("keras-tensorflow", "keras-tensorflow-xla", "keras-sync"),
    "tensorflow": ("tf-fused", "tf-fused-xla", "tf-nn", "tf-nn-xla"),
    "onnx": ("onnxruntime", "onnxruntime-exported", "onnxruntime-exported-noopt", "onnxruntime-exported-dangling",
             "onnxruntime-exported-dangling-noopt", "onnx-reference"),
    "tinygrad": ("tinygrad", "tinygrad-jit"),
    "mlx": ("mlx", "mlx-compile"),
    "paddle": ("paddle",),
    "haiku": ("haiku",),
    "equinox": ("equinox", "equinox-ema"),
    "openvino": ("openvino",),
})
TWINS: MappingProxyType[str, str] = MappingProxyType({
    "torch-compile": "torch", "torch-onnx": "torch", "flax-linen-jit": "flax-linen", "keras-jax-jit": "keras-jax",
    "keras-tensorflow-xla": "keras-tensorflow", "tf-fused-xla": "tf-fused", "tf-nn-xla": "tf-nn",
    "onnxruntime-exported": "onnxruntime", "onnxruntime-exported-noopt": "onnxruntime",
    "onnxruntime-exported-dangling": "onnxruntime", "onnxruntime-exported-dangling-noopt": "onnxruntime",
    "tinygrad-jit": "tinygrad", "mlx-compile": "mlx",
})
_FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}

BUILTIN: MappingProxyType[str, Entry] = MappingProxyType(
    {e.name: replace(e, family=_FAMILY_OF.get(e.name, e.name), twin=TWINS.get(e.name, "")) for e in _BUILTIN})


def _declared() -> list[Any]:
    from importlib.metadata import entry_points as eps

    return list(eps(group=ENTRY_POINT_GROUP))


def entry_points() -> dict[str, Any]:
    """Third-party adapters declared in the ``bnspec.adapters`` entry-point group, by name.

    Only declared, nothing imported: a broken package costs nothing until it is used. A name
    declared twice keeps its first declaration here, and loading it is refused.
    """
    out: dict[str, Any] = {}
    for ep in _declared():
        out.setdefault(ep.name, ep)
    return out


def _package(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unnamed package"


def _from_entry_point(name: str) -> Adapter:
    """The adapter an entry point declares; any way it is broken is an error that says so."""
    same = [ep for ep in _declared() if ep.name == name]
    if len(same) > 1:
        raise AdapterNotFound(f"adapter {name!r} is declared by several packages "
                              f"({'; '.join(f'{ep.value} in {_package(ep)}' for ep in same)}); uninstall all but one")
    ep = same[0]
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - a third-party import may fail in any way
        raise AdapterNotFound(f"entry point {name} = {ep.value!r} ({_package(ep)}) cannot be imported: "
                              f"{type(exc).__name__}: {exc}") from exc
    check = getattr(obj, "unavailable_reason", None)  # the built-ins' protocol, optional
    reason = check() if callable(check) else None
    if reason:
        raise AdapterUnavailable(f"adapter {name!r} is not usable here: {reason}")
    return _instantiate(obj, f"entry point {name} = {ep.value} ({_package(ep)})")


def entry_point_problem(name: str) -> str | None:
    """Why the entry point ``name`` gives no usable adapter, or None; never raises.

    ``bnspec list`` shows each broken package with its reason and goes on with the others.
    """
    if name in BUILTIN:
        ep = entry_points()[name]
        return f"entry point {ep.value} ({_package(ep)}) is shadowed by the built-in adapter of that name"
    try:
        _from_entry_point(name)
    except Exception as exc:  # noqa: BLE001 - whatever breaks is the answer
        return str(exc) if isinstance(exc, (AdapterNotFound, AdapterUnavailable)) else f"{type(exc).__name__}: {exc}"
    return None


def available() -> list[str]:
    """Every name ``load`` accepts."""
    return sorted(set(BUILTIN) | set(entry_points()))


def _instantiate(obj: Any, target: str) -> Adapter:
    adapter = obj() if inspect.isclass(obj) else obj
    missing = [a for a in ("name", "capabilities", "run") if not hasattr(adapter, a)]
    if missing:
        raise AdapterNotFound(f"{target!r} is not an adapter: it lacks {', '.join(missing)}")
    return adapter  # type: ignore[no-any-return]


def _from_file(path: str, attr: str, target: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise AdapterNotFound(f"{target!r}: no such file {path}")
    mod_name = f"bnspec_user_adapter_{abs(hash(file.resolve()))}"
    spec = importlib.util.spec_from_file_location(mod_name, file)
    if spec is None or spec.loader is None:
        raise AdapterNotFound(f"{target!r}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return _attr(module, attr, target)


def _attr(module: Any, attr: str, target: str) -> Any:
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise AdapterNotFound(f"{target!r}: {module.__name__} has no attribute {attr!r} (it has: {', '.join(names)})") from None


def unavailable_reason(name: str) -> str | None:
    """Why a built-in adapter cannot run here (missing package, no device), or None."""
    entry = BUILTIN[name]
    for mod in entry.requires:
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed ({entry.install})"
    module_name, attr = entry.target.split(":")
    if importlib.util.find_spec(module_name) is None:
        return f"the adapter module {module_name} is missing from this bnspec installation"
    cls = getattr(importlib.import_module(module_name), attr)
    check = getattr(cls, "unavailable_reason", None)
    return check() if check is not None else None


def load(target: str) -> Adapter:
    """An adapter for a registered name, an entry point, ``module:attr`` or ``path/file.py:attr``.

    A class is instantiated with no arguments. Unknown targets raise ``AdapterNotFound`` listing
    what is available; a known adapter that cannot run here raises ``AdapterUnavailable``.
    """
    if target in BUILTIN:
        reason = unavailable_reason(target)
        if reason:
            raise AdapterUnavailable(f"adapter {target!r} is not usable here: {reason}")
        module_name, attr = BUILTIN[target].target.split(":")
        return _instantiate(getattr(importlib.import_module(module_name), attr), target)
    if target in entry_points():
        return _from_entry_point(target)
    if ":" in target:
        where, attr = target.rsplit(":", 1)
        if where.endswith(".py") or "/" in where or "\\" in where:
            return _instantiate(_from_file(where, attr, target), target)
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise AdapterNotFound(f"{target!r}: cannot import module {where!r}: {exc}") from exc
        return _instantiate(_attr(module, attr, target), target)
    raise AdapterNotFound(
        f"no adapter named {target!r}; available: {', '.join(available())} "
        "(or give module:attr, or path/to/file.py:attr)"
    )
