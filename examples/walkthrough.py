# %% [markdown]
# # archlab walkthrough
# A notebook-style script: each `# %%` cell runs in VS Code or Jupyter (jupytext), or top to
# bottom with `python examples/walkthrough.py`.

# %%
import archlab

print(archlab.list_models("resnet*"))

# %% Count a model: MACs are multiply-accumulates; FLOPs = 2 x MACs
r = archlab.count("resnet50")
print(f"ResNet-50 (paper layout): {r.macs / 1e9:.2f} GMACs, {r.flops / 1e9:.2f} GFLOPs, {r.params:,} params")
r15 = archlab.count("resnet50_v1_5")
print(f"ResNet-50 v1.5 (torchvision layout): {r15.macs / 1e9:.2f} GMACs: the stride moved to the 3x3")

# %% Everything at once, as tables
report = archlab.analyze("mobilenet_v2", analyses=("count", "rf", "memory"))
frames = report.to_pandas()
print(frames["summary"].T)
print(frames["layers"].head())

# %% Memory: the MobileNetV2 paper's M(G), with inverted residual blocks fused
m = archlab.memory("mobilenet_v2", act_dtype="fp16")
print(f"M(G) {m.mg_bytes / 2**20:.2f} MiB unfused, {m.mg_fused_bytes / 2**20:.2f} MiB fused")

# %% Depthwise-separable convolution: the course's ratio 1/N + 1/D_K^2
d = archlab.dwsc(k=3, m=512, n=1024, size=14)
print(f"separable / standard = {d.ratio:.4f} (formula {d.formula_ratio:.4f})")
