"""Sequential Fashion-MNIST models (each image is 28 tokens of 28 pixels), built in `keras` or
`tf_keras` so the tfmot baseline trains the same architecture.

The Transformer encoder has no positional embedding (tfmot cannot wrap a custom layer): the
final Flatten -> Dense reads every token position with its own weights, which carries order.
"""


def transformer(input_shape, num_classes, keras=None, d_model=64, heads=4, ffn=128):
    """Dense(d) token projection -> MultiHeadAttention + residual + LayerNorm -> Dense FFN +
    residual + LayerNorm -> Flatten -> Dense(classes)."""
    if keras is None:
        import keras
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Dense(d_model, name="embed")(inputs)
    attention = layers.MultiHeadAttention(heads, d_model // heads, name="mha")(x, x)
    x = layers.LayerNormalization(name="norm1")(layers.Add()([x, attention]))
    h = layers.Dense(ffn, activation="relu", name="ffn1")(x)
    x = layers.LayerNormalization(name="norm2")(layers.Add()([x, layers.Dense(d_model, name="ffn2")(h)]))
    outputs = layers.Dense(num_classes, name="out")(layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def gru(input_shape, num_classes, keras=None, units=64):
    """GRU(units) over the 28 rows -> Dense(classes)."""
    if keras is None:
        import keras
    inputs = keras.Input(input_shape)
    x = keras.layers.GRU(units, name="gru")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="out")(x))
