"""Benchmark of the image view (prints figures; not a test).

1. One window/level update including the re-render, on a synthetic 3000x3000 16-bit radiograph
   shown at fit zoom in a 1280x1024 view: the viewer (lookup table + screen-sized pyramid level)
   against pyqtgraph's plain ImageItem at full resolution with new levels, in the same run.
   Target: at most 16 ms (60 updates per second).
2. Open and display RG3_J2KR.dcm (read_image + set_image + first paint) against pydicom's bare
   ``dcmread(path).pixel_array`` of the same file. Target: at most 1.1x.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python build_scripts/bench_viewer.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402

from app.viewer import ImageViewer  # noqa: E402
from ml.imaging.image import ImageMeta, Window, XRayImage  # noqa: E402
from ml.imaging.read import read_image  # noqa: E402

VIEW_SIZE = (1280, 1024)
REPEATS = 60
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"


def synthetic_radiograph(n: int = 3000, seed: int = 0) -> XRayImage:
    """A 12-bit chest-like phantom: dark lungs in a brighter body, ribs, noise, black border."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n
    body = 2600 - 1400 * (((x - 0.5) / 0.42) ** 2 + ((y - 0.55) / 0.48) ** 2)
    lungs = np.exp(-(((x - 0.33) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2)) + np.exp(
        -(((x - 0.67) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2)
    )
    ribs = 250 * (np.sin(y * 60) > 0.7)
    img = body - 1200 * lungs + ribs + rng.normal(0, 40, (n, n)).astype(np.float32)
    img[:, : n // 40] = 0
    frame = np.clip(img, 0, 4095).astype(np.uint16)
    meta = ImageMeta(rows=n, columns=n, bits_allocated=16, bits_stored=12, modality="DX")
    return XRayImage(meta=meta, frames=frame[None], windows=[Window(2000, 3000)])


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def bench_window_level(app: QtWidgets.QApplication) -> None:
    image = synthetic_radiograph()
    viewer = ImageViewer()
    viewer.resize(*VIEW_SIZE)
    viewer.show()
    app.processEvents()
    viewer.set_image(image)
    app.processEvents()
    item = viewer.image_item()

    render, paint = [], []
    for i in range(REPEATS):
        t0 = time.perf_counter()
        viewer.set_window(2000 + (i % 20) * 10, 3000 - (i % 10) * 20)
        item.render()  # LUT -> QImage, what a paint would do
        render.append(time.perf_counter() - t0)
    for i in range(REPEATS):
        t0 = time.perf_counter()
        viewer.set_window(2000 + (i % 20) * 10, 3000 - (i % 10) * 20)
        app.processEvents()  # Qt's own update path: one paint of the view (render + draw + corner text)
        paint.append(time.perf_counter() - t0)
        assert not item._renderRequired, "the update was not painted"

    # Baseline: pyqtgraph's plain ImageItem at full resolution, new levels on each update.
    view = pg.GraphicsLayoutWidget()
    view.resize(*VIEW_SIZE)
    vb = view.addViewBox(lockAspect=True, invertY=True)
    plain = pg.ImageItem(image.frames[0], axisOrder="row-major", levels=(500, 3500))
    vb.addItem(plain)
    view.show()
    app.processEvents()
    base_render, base_paint = [], []
    for i in range(REPEATS):
        c, w = 2000 + (i % 20) * 10, 3000 - (i % 10) * 20
        t0 = time.perf_counter()
        plain.setLevels((c - w / 2, c + w / 2))
        plain.render()
        base_render.append(time.perf_counter() - t0)
    for i in range(REPEATS):
        c, w = 2000 + (i % 20) * 10, 3000 - (i % 10) * 20
        t0 = time.perf_counter()
        plain.setLevels((c - w / 2, c + w / 2))
        app.processEvents()
        base_paint.append(time.perf_counter() - t0)
        assert not plain._renderRequired, "the update was not painted"

    print(
        f"Window/level update, 3000x3000 uint16, {VIEW_SIZE[0]}x{VIEW_SIZE[1]} view at fit "
        f"(zoom {viewer.zoom_factor():.3f}, pyramid level 1/{viewer._factor}), median of {REPEATS}:"
    )
    print(
        f"  viewer   (LUT + screen-sized level): render {median_ms(render):6.2f} ms   update+paint {median_ms(paint):6.2f} ms"
    )
    print(
        f"  baseline (plain ImageItem, full res): render {median_ms(base_render):6.2f} ms   update+paint {median_ms(base_paint):6.2f} ms"
    )
    print("  target: <= 16 ms")
    view.close()
    viewer.close()


def bench_open(app: QtWidgets.QApplication, runs: int = 5) -> None:
    path = DATA / "RG3_J2KR.dcm"
    if not path.is_file():
        print(f"Open-and-display: {path} missing, skipped")
        return
    viewer = ImageViewer()
    viewer.resize(*VIEW_SIZE)
    viewer.show()
    app.processEvents()
    # warm both paths (imports, codec plugin loading) before timing
    _ = pydicom.dcmread(path).pixel_array
    viewer.set_image(read_image(path))
    app.processEvents()
    bare, ours = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        _ = pydicom.dcmread(path).pixel_array
        bare.append(time.perf_counter() - t0)
        viewer.clear()
        app.processEvents()
        t0 = time.perf_counter()
        viewer.set_image(read_image(path))
        app.processEvents()  # first paint
        ours.append(time.perf_counter() - t0)
        assert not viewer.image_item()._renderRequired, "the image was not painted"
    b, o = median_ms(bare), median_ms(ours)
    print(f"Open and display RG3_J2KR.dcm (1760x1760 JPEG 2000 lossless), median of {runs}:")
    print(f"  pydicom dcmread().pixel_array : {b:7.1f} ms")
    print(f"  read_image + set_image + paint: {o:7.1f} ms   ratio {o / b:.3f}x   (target <= 1.1x)")
    viewer.close()


def main() -> None:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    bench_window_level(app)
    bench_open(app)


if __name__ == "__main__":
    main()
