"""Grad-CAM on the default model: how much of the heatmap lies on the lung fields.

For internal-test PNEUMONIA films (rows of the run's split.csv), Grad-CAM of the PNEUMONIA output
(``ml.explain``, what the app shows) against two masks: a simple intensity-derived lung-field mask
(:func:`lung_mask`) and the phantom-style geometry of two ellipses (:func:`ellipse_mask`). Each
share is reported with the mask's area, the share a heatmap spread evenly would get. Used by
``build_scripts/train_default_model.py gradcam``, which also writes a 12-overlay gallery.
"""

from __future__ import annotations

from pathlib import Path


def lung_mask(grey):  # noqa: ANN001
    """A simple lung-field mask of a frontal film (bool, same grid): the dark (air-filled) regions
    inside the thorax. Smooth, threshold below the mean grey level of the central window (columns
    and rows 8-92%), drop dark regions touching the image border (the air around the body), keep
    the two largest of the rest inside the window, fill holes, dilate a little (the lung edge where
    consolidation sits is inside)."""
    import numpy as np
    from scipy import ndimage

    g = ndimage.gaussian_filter(grey.astype(np.float32), max(grey.shape) / 100)
    rows, cols = g.shape
    window = np.zeros_like(g, dtype=bool)
    window[int(0.08 * rows) : int(0.92 * rows), int(0.08 * cols) : int(0.92 * cols)] = True
    dark = g < g[window].mean()
    lab, n = ndimage.label(dark)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
    inner = dark & ~np.isin(lab, list(border)) & window
    if inner.sum() < 0.05 * inner.size:  # lungs joined to the outside air: the window alone
        inner = dark & window
    lab, n = ndimage.label(inner)
    if n == 0:
        return inner
    sizes = ndimage.sum(inner, lab, range(1, n + 1))
    keep = np.argsort(sizes)[::-1][:2] + 1
    mask = ndimage.binary_fill_holes(np.isin(lab, keep))
    return ndimage.binary_dilation(mask, iterations=max(1, rows // 45))


def ellipse_mask(rows: int, cols: int):  # noqa: ANN001
    """The phantom-style geometric check: two ellipses where the lungs sit on a frontal film."""
    import numpy as np

    yy, xx = np.mgrid[0:rows, 0:cols]
    out = np.zeros((rows, cols), bool)
    for cx in (0.30, 0.70):
        out |= ((xx / cols - cx) / 0.17) ** 2 + ((yy / rows - 0.50) / 0.33) ** 2 <= 1
    return out


def gradcam_check(rows: list[dict], model_file: Path, gallery: Path | None, limit: int = 0) -> dict:
    """Share of Grad-CAM mass (target PNEUMONIA) inside the lung masks, on internal-test pneumonia images."""
    import numpy as np

    from ml.explain import make_explainer
    from ml.imaging.read import read_image
    from ml.models.bundle import load_model

    model, manifest = load_model(model_file)
    rows = rows[:limit] if limit else rows
    shares, eshares, areas, eareas, shown = [], [], [], [], []
    with make_explainer("gradcam", model, manifest) as cam:
        for r in rows:
            img = read_image(r["path"])
            grey = _grey(r["path"])  # the JPEG's grey levels (the files are 8-bit grey in RGB)
            h = cam.explain(img, target="PNEUMONIA").values
            total = float(h.sum())
            if total <= 0:
                continue
            m, e = lung_mask(grey), ellipse_mask(*h.shape)
            shares.append(float(h[m].sum()) / total)
            eshares.append(float(h[e].sum()) / total)
            areas.append(float(m.mean()))
            eareas.append(float(e.mean()))
            if len(shown) < 12:
                shown.append((grey, h, m, Path(r["path"]).name))
    out = {
        "images": len(rows),
        "with_positive_evidence": len(shares),
        "lung_mask_share_mean": round(float(np.mean(shares)), 4),
        "lung_mask_share_median": round(float(np.median(shares)), 4),
        "lung_mask_area_mean": round(float(np.mean(areas)), 4),
        "ellipse_share_mean": round(float(np.mean(eshares)), 4),
        "ellipse_area": round(float(np.mean(eareas)), 4),
        "images_with_share_over_half": round(float(np.mean(np.array(shares) > 0.5)), 4),
    }
    if gallery is not None:
        _gallery(shown, gallery)
    return out


def _grey(path: str):  # noqa: ANN001, ANN202
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"))


def _gallery(items, path: Path) -> None:  # noqa: ANN001
    """4 x 3 overlays (the app's colouring rule), lung-mask outline in green."""
    import numpy as np
    from PIL import Image
    from scipy import ndimage

    from ml.imaging.overlay import blend

    tiles = []
    for grey, h, m, _ in items:
        g = grey.astype(np.float32)
        g8 = np.clip((g - g.min()) / max(float(np.ptp(g)), 1e-6) * 255, 0, 255).astype(np.uint8)
        rgb = blend(g8, h)
        edge = m & ~ndimage.binary_erosion(m, iterations=1)
        rgb[edge] = (0, 220, 0)
        tiles.append(Image.fromarray(rgb).resize((224, 224)))
    sheet = Image.new("RGB", (4 * 224, 3 * 224), "black")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % 4) * 224, (i // 4) * 224))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
