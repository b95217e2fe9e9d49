"""Compare variants named with model specs: MobileNet widths and resolutions, and two classics.

    python examples/comparing_variants.py
"""

import archlab
from archlab.analysis.laws import compare_scaling

print("MobileNet: width and resolution multipliers against the course's O(alpha^2 rho^2)")
for alpha, res in [(1.0, 224), (0.75, 224), (0.5, 224), (0.25, 224), (1.0, 192), (1.0, 160), (1.0, 128)]:
    c = compare_scaling("mobilenet", alpha=alpha, rho=str(res))
    print(f"  alpha {alpha:<4} {res} px: {c.variant['macs'] / 1e6:7.1f} M mult-adds, "
          f"{c.variant['params'] / 1e6:4.2f} M params; MACs ratio {c.measured['macs_ratio']:.3f} "
          f"(law {c.predicted['macs_ratio']:.3f})")

print("\nThe course's comparisons")
for a, b in [("alexnet", "googlenet"), ("vgg19", "resnet152")]:
    ra, rb = archlab.count(a, depth=0), archlab.count(b, depth=0)
    print(f"  {b} vs {a}: {ra.params / rb.params:.1f}x fewer parameters, MACs ratio {rb.macs / ra.macs:.2f}")
