"""Gallery of the default model's heatmaps on real radiographs, with their faithfulness (issue 14).

Usage::

    .venv/bin/python build_scripts/heatmap_gallery.py [OUT.png] [--per-class 6] [--model FILE]

Takes the first ``--per-class`` images (sorted by name) of ../shared/data/cxr/kermany-val/NORMAL and
/PNEUMONIA, classifies each with the shipped default model (resources/models, or ``--model``),
explains the top label with the architecture's default method (``method="default"``, the
registry's benchmarked choice), applies the panel's gate (the model's operating point), measures
the deletion score (top 10% of the map removed vs a random 10% of the same shape,
:func:`ml.explain.faithfulness.deletion_score`) and outlines the top region
(:func:`ml.explain.contours.top_regions`). Writes a 4-column grid (the panel's colours and
outlines; each tile captioned) and prints a Markdown table for the README. Headless (Qt offscreen
for the drawing); about 2 s per image on a laptop CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "cxr" / "kermany-val"
TILE = 300


def pts(drop: float) -> str:
    """A drop of the probability as its change in percentage points ("-34 pts"; never "-0")."""
    value = round(-drop * 100)
    return f"{value:+d} pts" if value else "±0 pts"


def tile_of(rgb: np.ndarray, outlines: list[np.ndarray], lines: list[str], colour: str) -> object:
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPolygonF

    from app.analysis.report import to_qimage

    img = to_qimage(rgb)
    scale = TILE / max(img.width(), img.height())
    w, h = int(img.width() * scale), int(img.height() * scale)
    tile = QImage(TILE, TILE + 64, QImage.Format.Format_RGB32)
    tile.fill(QColor("white"))
    p = QPainter(tile)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    x0, y0 = (TILE - w) / 2, (TILE - h) / 2
    p.drawImage(QRectF(x0, y0, w, h), img)
    p.setPen(QPen(QColor(0, 230, 255), 2))
    p.setBrush(Qt.BrushStyle.NoBrush)
    for poly in outlines:
        p.drawPolygon(QPolygonF([QPointF(x0 + c * scale, y0 + r * scale) for r, c in poly]))
    font = QFont("Sans Serif")
    font.setPixelSize(11)
    p.setFont(font)
    for i, line in enumerate(lines):
        p.setPen(QColor(colour) if i == 0 else QColor(30, 30, 30))
        p.drawText(QRectF(4, TILE + 2 + 15 * i, TILE - 8, 15), Qt.AlignmentFlag.AlignLeft, line)
    p.end()
    return tile


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=str(REPO / "resources" / "screenshots" / "heatmap_gallery.png"))
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--model", help="a model file (default: the shipped default model)")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter

    from app.analysis.evidence import area_text, faithfulness_sentence
    from app.analysis.heatmap import colour_heatmap
    from ml.explain import METHOD_LABELS, make_explainer
    from ml.explain.contours import spacing_of, top_regions
    from ml.explain.faithfulness import deletion_score
    from ml.explain.gating import gate
    from ml.imaging.display import render
    from ml.imaging.overlay import blend_rgba
    from ml.imaging.read import read_image
    from ml.inference.predictor import load_predictor
    from ml.models import library

    _app = QGuiApplication.instance() or QGuiApplication([])
    model = Path(args.model) if args.model else library.bundled_default_model()
    if model is None:
        print("no default model in resources/models", file=sys.stderr)
        return 2
    predictor = load_predictor(model, device="cpu", backend="torch")
    m = predictor.manifest
    files = [(c, f) for c in ("NORMAL", "PNEUMONIA") for f in sorted((DATA / c).glob("*.jpeg"))[: args.per_class]]
    tiles, rows = [], []
    with make_explainer("default", predictor.model, m, predictor.device) as ex:
        method = METHOD_LABELS.get(ex.method, ex.method) + (f" at {ex.layer_path}" if getattr(ex, "layer_path", "")
                                                            else "")  # fmt: skip
        for truth, path in files:
            image = read_image(path)
            pred = predictor.predict_one(image)
            heatmap = ex.explain(image, 0, target=pred.top_label)
            g = gate(pred, pred.top_label, operating_points=dict(m.thresholds or {}))
            score = deletion_score(predictor.model, m, image, heatmap, 0, device=predictor.device)
            regions = top_regions(heatmap, pixel_spacing=spacing_of(image), max_regions=1)
            p_pneu = pred.probabilities[pred.labels.index("PNEUMONIA")] if "PNEUMONIA" in pred.labels else float("nan")
            rgb = render(image, 0)
            rgb = np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb[..., :3]
            rgb = blend_rgba(rgb, colour_heatmap(heatmap.values, "inferno", 0.2), 0.45) if g.shown else rgb
            right = pred.top_label == truth
            lines = [f"truth {truth} · called {pred.top_label} ({max(pred.probabilities):.0%})",
                     f"ΔP top 10% removed: {pts(score.drop)}; random 10%: {pts(score.random_drop or 0)}",
                     (f"top region {area_text(regions[0])}" if regions and g.shown else g.note or "no region"),
                     path.name[:44]]  # fmt: skip
            tiles.append(tile_of(rgb, [r.polygon for r in regions] if g.shown else [], lines,
                                 "#1d6b2a" if right else "#b41e1e"))  # fmt: skip
            rows.append((path.name, truth, pred.top_label, p_pneu, score, g, regions))
            print(f"{path.name}\t{truth}\t{pred.top_label}\t{p_pneu:.3f}\t{faithfulness_sentence(score)}", flush=True)
    cols = 4
    grid = QImage(cols * TILE, -(-len(tiles) // cols) * (TILE + 64), QImage.Format.Format_RGB32)
    grid.fill(QColor("white"))
    painter = QPainter(grid)
    for i, t in enumerate(tiles):
        painter.drawImage((i % cols) * TILE, (i // cols) * (TILE + 64), t)
    painter.end()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(str(args.out))
    print(f"\nwrote {args.out}\n\nModel {m.name} {m.version}; heatmaps: {method} (the architecture's default)\n")
    print("| image | truth | called | P(PNEUMONIA) | ΔP, top 10% of the map removed | ΔP, random 10% | top region |")
    print("|---|---|---|---|---|---|---|")
    for name, truth, called, p, s, _g, regions in rows:
        area = area_text(regions[0]) if regions else "—"
        print(f"| {name} | {truth} | {called} | {p:.1%} | {pts(s.drop)} | {pts(s.random_drop or 0)} | {area} |")
    drops = np.array([r[4].drop for r in rows]) * 100
    rand = np.array([r[4].random_drop or 0 for r in rows]) * 100
    print(f"\nΔP of the called label (percentage points): top 10% removed mean {-drops.mean():+.1f} "
          f"(from {-drops.max():+.0f} to {-drops.min():+.0f}); random 10% mean {-rand.mean():+.1f}; "
          f"the map's top lowers it more than a random region on {int((drops > rand).sum())}/{len(rows)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
