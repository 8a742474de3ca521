"""Per-layer sparsity shares for DST's target controller: the Erdős–Rényi-Kernel rule.

ERK (Mocanu et al. 2018; Evci et al., RigL, ICML 2020) keeps a layer's density proportional to
`sum(shape) / prod(shape)`: small layers (the first convolution, the classifier) stay denser and
large fully connected layers give up more, at the same overall sparsity as GMP's uniform shares.
"""

import math


def erk_targets(shapes, sparsity):
    """`{name: sparsity}` for kernels of `shapes` (`{name: kernel shape}`) that together keep
    `1 - sparsity` of their weights; a layer the rule would make denser than dense stays dense
    and the rest share what is left."""
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    budget = (1 - sparsity) * sum(sizes.values())
    dense = set()
    while True:  # density = scale * sum(shape) / size, so a layer keeps scale * sum(shape) weights
        free = [name for name in shapes if name not in dense]
        scale = (budget - sum(sizes[n] for n in dense)) / sum(sum(shapes[n]) for n in free)
        over = [n for n in free if scale * sum(shapes[n]) >= sizes[n]]
        if not over:
            break
        dense.update(over)
    return {name: 0.0 if name in dense else 1 - scale * sum(shapes[name]) / sizes[name] for name in shapes}
