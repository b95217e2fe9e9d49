"""A scaling sweep: EfficientNet's compound coefficient phi, predicted against counted cost.

    python examples/scaling_sweep.py
"""

from archlab.analysis.laws import compound

print(" phi  resolution        params            MACs  predicted  measured")
for phi in range(0, 5):
    r = compound(phi)
    print(f"{phi:4d}  {r.resolution:10d}  {r.params:12,}  {r.macs:14,}  {r.predicted_cost_ratio:9.3f}"
          f"  {r.measured_cost_ratio:8.3f}")
print("measured > predicted: every stage's layer count is rounded up, ceil(d * L).")
