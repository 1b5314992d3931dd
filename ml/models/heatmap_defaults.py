"""The default heatmap per architecture, with the benchmark figure it was chosen on.

Data for :mod:`ml.models.registry` (each entry becomes the spec's ``explain_method``,
``explain_layer``, ``explain_fill`` and ``explain_evidence``; :func:`ml.explain.default_explanation`
and :func:`ml.explain.occlusion_fill` read them). Rerun ``build_scripts/bench_heatmaps.py`` and
update an entry with its figure when an architecture or a method changes (README "Heatmaps").
"""

from __future__ import annotations

#: default heatmap per architecture, chosen on build_scripts/bench_heatmaps.py (phantoms, 96 px,
#: models trained from scratch, 20 held-out lesion phantoms per seed; pointing game = the map's
#: maximum in the lesion box grown by 4 px; mean [min, max] over seeds; README "Heatmaps")
HEATMAP_DEFAULTS: dict[str, dict[str, str]] = {
    "resnet18": dict(
        explain_method="occlusion", explain_layer="", explain_fill="blur",
        explain_evidence="pointing game 0.97 [0.95, 1.00] over 2 seeds (occlusion, blurred fill; mean fill "
        "0.93, black 0.57); best CAM: Grad-CAM on layer2 0.47 [0.00, 0.95]; baseline Grad-CAM on layer4 0.08",
    ),
    "densenet121": dict(
        explain_method="occlusion", explain_layer="", explain_fill="mean",
        explain_evidence="pointing game 0.95 [0.90, 1.00] over 2 seeds (occlusion, mean fill; blurred 0.93, "
        "black 0.15); best CAM: Grad-CAM on denseblock2 0.43 [0.30, 0.55]; baseline Grad-CAM on final_relu 0.08",
    ),
    "efficientnet_b0": dict(
        explain_method="occlusion", explain_layer="", explain_fill="blur",
        explain_evidence="pointing game 0.85 [0.75, 0.95] over 2 seeds (occlusion, blurred fill; mean 0.82, "
        "black 0.10); best gradient map: integrated gradients at features.0 0.80 [0.60, 1.00]; baseline "
        "Grad-CAM on the last block 0.00 (trained with the benchmark's EfficientNet recipe)",
    ),
    # the default model's networks: a grey (mean or blurred) patch in a dark lung is itself a lesion
    # to them (pointing game 0.00 with the mean fill), so their occlusion fill is black
    "cxr_resnet_small": dict(
        explain_method="gradcam", explain_layer="layer3", explain_fill="black",
        explain_evidence="pointing game 0.97 [0.95, 1.00] over 2 seeds (Grad-CAM on layer3, the last block); "
        "occlusion: black fill 0.90, mean 0.00, blurred 0.00",
    ),
    "cxr_resnet_small4": dict(
        explain_method="occlusion", explain_layer="", explain_fill="black",
        explain_evidence="pointing game 0.97 [0.95, 1.00] over 2 seeds (occlusion, black fill; mean 0.00, "
        "blurred 0.15); Grad-CAM on layer3 0.93 [0.90, 0.95]; baseline Grad-CAM on layer4 0.28",
    ),
}  # fmt: skip
