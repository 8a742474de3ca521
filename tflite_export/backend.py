"""Export needs Keras on TensorFlow: the TFLite converter traces TensorFlow graphs.

A model trained on any backend reaches TFLite as a `.keras` file loaded under TensorFlow: the CLI
chooses TensorFlow before Keras is imported (Keras fixes its backend at import), and `export`
called in a process running Keras on another backend says how to get there.
"""

import os
import sys

from tflite_export.errors import BackendError


def force_tensorflow():
    """Makes Keras load on TensorFlow in this process, whatever KERAS_BACKEND or keras.json say.

    Call it before anything imports Keras; once Keras is loaded, `check_backend` reports the clash.
    """
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "tensorflow"


def check_backend():
    """Raises a `BackendError` saying what to do unless Keras runs on TensorFlow."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise BackendError(
            f"tflite_export needs Keras on the TensorFlow backend (the TFLite converter traces "
            f"TensorFlow graphs), but this process runs Keras on '{backend}', fixed when Keras "
            "was imported. Save the model and export it from a shell, which runs under "
            "TensorFlow whatever KERAS_BACKEND says: model.save('model.keras'), then "
            "python -m tflite_export model.keras -o model.tflite"
        )
