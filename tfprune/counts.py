"""Zero counts: the one place tfprune (and its export and benchmarks) counts nonzero weights."""

import numpy as np
from keras import ops


def count_nonzero(tensor):
    """`(size, nonzero)` of a tensor or array."""
    values = np.asarray(ops.convert_to_numpy(tensor))
    return values.size, int(np.count_nonzero(values))


def stored_params(model):
    """`(params, nonzero)` over every float weight of a plain model (biases and BN included).

    The nonzero count is what a file must store at least: the export's physical limit. Integer
    variables (hidden-state counters) are bookkeeping the file does not carry.
    """
    counts = [count_nonzero(w) for w in model.weights if "float" in str(w.dtype)]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)
