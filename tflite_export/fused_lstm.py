"""Stock LSTMs as TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM: one operator for all time steps.

A small LSTM's file is mostly per-step dispatch, in a WHILE loop or unrolled; the fused operator
runs the whole sequence in one kernel call. LSTM-a at batch 1 on one thread, side by side
(`python -m bench.lstm_forms`, BENCHMARKS.md 9c): 38x33 units fused 80 µs, unrolled 116 µs,
looped 170 µs; 128x128 units fused 427 µs against 341 µs looped, so `export` times every form
and keeps the fastest.

TensorFlow's converter fuses a function marked `api_implements="lstm_..."` whose arguments are
Keras 2's `standard_lstm` ones (inputs, h0, c0, kernel, recurrent kernel, bias; weights as tensors,
not variables) and replaces its body (`lstm_utils.cc`, `ConvertKerasLSTMLayer`). Two properties
of the operator are handled here:
- Its states are variable tensors that keep the last sequence's final state between invocations.
  A constant zero initial state becomes that variable, so each LSTM here starts from a zero
  computed from its input (x - x) on every invocation, as Keras does.
- It clips the cell state to +-10, where Keras does not; `export`'s parity check rejects the form
  for a model whose cells go beyond that, and keeps another.
"""

import uuid

import keras
import tensorflow as tf

from tflite_export.unroll import time_steps

# Layer settings the fused operator computes: anything else is converted as a loop.
_REQUIRED = {"activation": "tanh", "recurrent_activation": "sigmoid", "return_state": False, "stateful": False}


def fused(model):
    """A copy of `model` whose LSTMs (also inside `Bidirectional`) convert to the fused operator.

    Raises:
        ValueError: a recurrent layer the fused operator cannot compute (another RNN, an
            activation other than tanh/sigmoid, a mask, state in or out, a nested model, time
            steps that are not fixed); the message names it.
    """
    for layer in model._flatten_layers(include_self=False, recursive=False):
        _check(layer)
        if isinstance(layer, keras.layers.RNN | keras.layers.Bidirectional) and None in time_steps(layer):
            raise ValueError(f"Layer '{layer.name}' has no fixed number of time steps, so it cannot be fused.")

    def clone(layer):
        if isinstance(layer, keras.layers.Bidirectional):
            return FusedBidirectional(layer)
        if isinstance(layer, keras.layers.LSTM):
            return FusedLSTM.like(layer)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _check(layer):
    if isinstance(layer, keras.Model):
        if any(isinstance(sub, keras.layers.RNN) for sub in layer._flatten_layers(include_self=False)):
            raise ValueError(f"Recurrent layers inside the nested model '{layer.name}' are not fused.")
        return
    if isinstance(layer, keras.layers.Bidirectional):
        for direction in (layer.forward_layer, layer.backward_layer):  # a backward_layer may differ
            if type(direction) is not keras.layers.LSTM:
                raise ValueError(f"Bidirectional layer '{layer.name}' wraps a {type(direction).__name__}, not an LSTM.")
            _check_lstm(layer, direction)
        return
    if isinstance(layer, keras.layers.RNN):
        if type(layer) is not keras.layers.LSTM:
            raise ValueError(f"Layer '{layer.name}' is a {type(layer).__name__}; only stock LSTMs fuse.")
        _check_lstm(layer, layer)


def _check_lstm(outer, lstm):
    config = lstm.get_config()
    for key, wanted in _REQUIRED.items():
        value = config.get(key)
        if isinstance(wanted, str):
            value = keras.activations.get(value).__name__
        if value != wanted:
            raise ValueError(f"LSTM '{outer.name}' has {key}={value!r}; the fused operator computes {wanted!r}.")
    for node in outer._inbound_nodes:
        given = node.arguments.kwargs
        if len(node.arguments.args) > 1 or any(given.get(k) is not None for k in ("mask", "initial_state")):
            raise ValueError(f"LSTM '{outer.name}' takes a mask or an initial state, which the fused operator ignores.")


class FusedLSTM(keras.layers.Layer):
    """An LSTM computed by one function the converter replaces with UNIDIRECTIONAL_SEQUENCE_LSTM.

    Export-only: it exists in the copy `fused` makes and is never saved.
    """

    def __init__(self, units, return_sequences=False, go_backwards=False, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.return_sequences = units, return_sequences
        self.go_backwards, self.use_bias = go_backwards, use_bias
        self._function = tf.function(
            _standard_lstm(go_backwards),
            autograph=False,
            experimental_attributes={
                "api_implements": f"lstm_{uuid.uuid4()}",
                "api_preferred_device": "CPU",
                "time_major": False,
                "go_backwards": go_backwards,
            },
        )

    @classmethod
    def like(cls, lstm, **overrides):
        settings = dict(
            units=lstm.units, return_sequences=lstm.return_sequences,
            go_backwards=lstm.go_backwards, use_bias=lstm.use_bias, name=lstm.name,
        )  # fmt: skip
        return cls(**{**settings, **overrides})

    def build(self, input_shape):
        gates = 4 * self.units
        self.kernel = self.add_weight(shape=(input_shape[-1], gates), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, gates), name="recurrent_kernel")
        self.bias = self.add_weight(shape=(gates,), name="bias", initializer="zeros") if self.use_bias else None

    def call(self, inputs, mask=None, training=None):
        _no_mask(self, mask)
        # Every state needs a zero of its own: the converter refuses one zero as the stateful
        # operand of two places ("cannot duplicate the value"), so h0 and c0 differ (-zero) and
        # so do Bidirectional's two LSTMs, which read one input (abs).
        zero = inputs[:, 0, :1] - inputs[:, 0, :1]  # (batch, 1): a zero the converter cannot fold
        if self.go_backwards:
            zero = tf.abs(zero)
        h0, c0 = tf.tile(zero, [1, self.units]), tf.tile(-zero, [1, self.units])
        bias = tf.zeros((4 * self.units,)) if self.bias is None else tf.convert_to_tensor(self.bias)
        weights = tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.recurrent_kernel)
        last, sequence, _, _, _ = self._function(inputs, h0, c0, *weights, bias)
        return sequence if self.return_sequences else last

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (*input_shape[:2], self.units)
        return (input_shape[0], self.units)


class FusedBidirectional(keras.layers.Layer):
    """`Bidirectional(LSTM)` as two fused LSTMs, merged as Keras merges them."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=layer.name, **kwargs)
        self.forward = FusedLSTM.like(layer.forward_layer, name="forward")
        self.backward = FusedLSTM.like(layer.backward_layer, name="backward")
        self.merge_mode = layer.merge_mode

    def build(self, input_shape):
        self.forward.build(input_shape)
        self.backward.build(input_shape)

    def call(self, inputs, mask=None, training=None):
        _no_mask(self, mask)
        forward, backward = self.forward(inputs), self.backward(inputs)
        if self.backward.return_sequences:
            backward = tf.reverse(backward, [1])
        if self.merge_mode == "concat":
            return tf.concat([forward, backward], -1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "ave":
            return (forward + backward) / 2
        if self.merge_mode == "mul":
            return forward * backward
        return [forward, backward]

    def compute_output_shape(self, input_shape):
        shape = self.forward.compute_output_shape(input_shape)
        if self.merge_mode == "concat":
            return (*shape[:-1], 2 * shape[-1])
        return shape if self.merge_mode else [shape, shape]


def _no_mask(layer, mask):
    if mask is not None:
        raise ValueError(f"LSTM '{layer.name}' takes a mask, which the fused operator ignores.")


def _standard_lstm(go_backwards):
    """The body the converter replaces: the same LSTM in plain operators, Keras' gate order."""

    def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        h, c, outputs = init_h, init_c, []
        steps = range(inputs.shape[1])
        for t in reversed(steps) if go_backwards else steps:
            z = tf.matmul(inputs[:, t], kernel) + tf.matmul(h, recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        return h, tf.stack(outputs, axis=1), h, c, tf.constant(0.0)

    return standard_lstm
