"""What DynamicPrune's per-batch non-finite guard costs: epochs with it on and stubbed out.

    python -m bench.guard_cost            # LeNet-300-100, 200 batches of 64, XLA, 6 rounds

The two settings alternate in one process, so load from other jobs hits both alike; the first
round (tracing) is dropped and the median epoch time of the rest is printed for each.
"""

import argparse

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)

    import time

    import keras

    import tfprune
    import tfprune.callbacks as callbacks
    from tfprune.models import lenet_300_100

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64 * 200, 28, 28)).astype("float32")
    y = rng.integers(0, 10, len(x))
    model = tfprune.prunable(lenet_300_100((28, 28), 10))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    guards = callbacks.thresholds_finite, callbacks.check_finite
    stubs = (lambda layers: True), (lambda *args: None)
    times = {"guard on": [], "guard stubbed": []}
    for _ in range(args.rounds):
        for setting in times:
            chosen = guards if setting == "guard on" else stubs
            callbacks.thresholds_finite, callbacks.check_finite = chosen
            start = time.perf_counter()
            model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[tfprune.DynamicPrune()])
            times[setting].append(time.perf_counter() - start)
    callbacks.thresholds_finite, callbacks.check_finite = guards
    on, off = (float(np.median(t[1:])) for t in times.values())
    print(f"epoch: guard on {on:.3f} s, stubbed {off:.3f} s, ratio {on / off:.3f}")


if __name__ == "__main__":
    main()
