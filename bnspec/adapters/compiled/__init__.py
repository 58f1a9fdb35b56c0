"""Compiled, jitted and exported forms of the eager adapters: the batch norm users ship.

Each form is a thin subclass of its eager twin (same mapping, same conversions) that routes the
one call through the compiler or exporter a user would put in front of it, one module per
framework: ``torch_forms`` (``torch.compile``, ``torch.onnx.export``), ``onnx_forms`` (graphs as
exporters write them), ``tf_forms`` (XLA, the ``tf.nn`` composite), ``jax_forms`` (Flax under
``jax.jit``, Keras compiled on JAX and TensorFlow), ``other_forms`` (``mx.compile``, ``TinyJit``).

A compiled form recompiles per shape, dtype and structure; each form keeps its compiled callables
for the whole process (the compiler's own cache, or a dict keyed by what the compiler
specializes on), so a run pays each compilation once. Nothing is imported here: the registry
names each form's module, so loading one form imports one framework.
"""
