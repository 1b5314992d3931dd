#!/usr/bin/env python3
"""Build the CXR Studio double-click application with PyInstaller, then smoke-test it.

    .venv/bin/python build_scripts/build_app.py              build dist/cxr-studio/, then smoke-test it
    .venv/bin/python build_scripts/build_app.py --smoke-only  only smoke-test an existing build
    .venv/bin/python build_scripts/build_app.py --no-smoke    only build

Run it with the project's virtual environment: PyInstaller freezes the interpreter that runs it,
with the packages installed there (``pip install -e .[build]`` adds PyInstaller). The result is one
folder, ``dist/cxr-studio/``; its ``cxr-studio`` executable is the GUI and, given a subcommand
(``info render models predict train evaluate``), the ``cxr`` command line.

The smoke test runs the *frozen* executable the way users and the training wizard do: image info,
rendering of JPEG / JPEG-LS / JPEG 2000 / HTJ2K / RLE DICOM files (the pylibjpeg plugins must be
found through their entry points), the model catalogue, prediction with Grad-CAM on a tiny model,
a tiny training run with auto-tune and data-loading worker processes, evaluation, a readable error
for a missing file, and the GUI starting on the offscreen platform. On Linux it also checks that
every shared library in the bundle resolves inside the bundle and that the CUDA libraries are there.

Uses only the standard library (the tiny test model is made by a child process of this Python).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "build_scripts" / "cxr_studio.spec"
APP_NAME = "cxr-studio"
DATA = ROOT.parent / "shared" / "data"  # the project's real test files, read in place
MIN_FREE_GB = 15  # the bundle with torch and the CUDA libraries is about 5 GB, plus work files
# Libraries a Linux machine provides and an application must not bring: the NVIDIA driver's, and
# the desktop's (Qt's Wayland and GTK plugins are only loaded on such desktops, which have them).
SYSTEM_LIBRARY_PREFIXES = ("libcuda.so", "libnvidia-", "libwayland-", "libgtk-3.so", "libgdk-3.so")
# CUDA libraries of the nvidia-* wheels that torch neither links nor opens: profiler extras, the
# FFTW/BLAS drop-in wrappers, multi-GPU cuSOLVER, GPUDirect RDMA and the alternative NVRTC build.
CUDA_NOT_USED = (
    "libnvperf_host.so", "libnvperf_target.so", "libpcsamplingutil.so", "libcheckpoint.so",
    "libcufftw.so", "libnvblas.so", "libcusolverMg.so", "libcufile_rdma.so", "libnvrtc.alt.so",
    "libnvrtc-builtins.alt.so", "libnvtx3interop.so",
)  # fmt: skip


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


# --------------------------------------------------------------------------- build


def check_environment(dist: Path) -> None:
    if sys.prefix == sys.base_prefix:
        log(
            f"warning: {sys.executable} is not a virtual environment; the bundle will contain "
            "whatever this interpreter has installed"
        )
    if importlib.util.find_spec("PyInstaller") is None:
        raise SystemExit(
            f"PyInstaller is not installed in {sys.prefix}.\n"
            f"Install it with:  {sys.executable} -m pip install -e '.[build]'"
        )
    dist.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(dist).free / 1e9
    if free_gb < MIN_FREE_GB:
        raise SystemExit(f"Only {free_gb:.1f} GB free under {dist}; the build needs about {MIN_FREE_GB} GB.")


def build(dist: Path, work: Path, clean: bool) -> float:
    """Run PyInstaller on the spec; return the seconds it took."""
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "WARN",
        "--distpath",
        str(dist),
        "--workpath",
        str(work),
        str(SPEC),
    ]
    if clean:
        cmd.insert(3, "--clean")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    log("running: " + " ".join(cmd))
    start = time.monotonic()
    result = subprocess.run(cmd, cwd=ROOT, env=env)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"PyInstaller failed (exit {result.returncode}) after {seconds:.0f} s")
    return seconds


def executable(dist: Path) -> Path:
    return dist / APP_NAME / (APP_NAME + (".exe" if sys.platform == "win32" else ""))


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


# --------------------------------------------------------------------------- smoke test


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str
    seconds: float = 0.0


class SmokeTest:
    """Runs the frozen executable in a scratch folder with its own user data, cache and config."""

    def __init__(self, exe: Path, data: Path, scratch: Path) -> None:
        self.exe = exe
        self.data = data
        self.tmp = scratch
        self.checks: list[Check] = []
        home = scratch / "home"
        self.env = dict(
            os.environ,
            CXR_STUDIO_HOME=str(home / "cxr-studio"),
            CXR_STUDIO_CACHE_DIR=str(home / "cache"),
            XDG_DATA_HOME=str(home / "data"),
            XDG_CACHE_HOME=str(home / "cache"),
            XDG_CONFIG_HOME=str(home / "config"),
            MPLCONFIGDIR=str(home / "mpl"),
            QT_QPA_PLATFORM="offscreen",
        )
        for var in ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH"):  # the bundle must stand alone
            self.env.pop(var, None)

    # ----------------------------------------------------------------- helpers

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.exe), *args],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def check(self, name: str, fn: Callable[[], str]) -> None:
        start = time.monotonic()
        try:
            detail, ok = fn(), True
        except Skip as exc:
            detail, ok = str(exc), None
        except Exception as exc:  # noqa: BLE001 - every failure becomes one report line
            detail, ok = f"{type(exc).__name__}: {exc}", False
        check = Check(name, ok, detail, time.monotonic() - start)
        self.checks.append(check)
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[ok]
        log(f"{status} {name} ({check.seconds:.1f} s): {detail}")

    def data_file(self, relative: str) -> Path:
        path = self.data / relative
        if not path.exists():
            raise Skip(f"{path} is missing")
        return path

    def cli_ok(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, timeout=timeout)
        if result.returncode != 0 or "Traceback" in result.stderr:
            raise AssertionError(f"exit {result.returncode}: {tail(result.stderr or result.stdout)}")
        return result

    # ----------------------------------------------------------------- checks

    def info(self) -> str:
        out = self.cli_ok("info", str(self.data_file("dicom/rsna_cxr_pa.dcm"))).stdout
        expect(out, "1024 x 1024", "JPEG Baseline")
        return "metadata of a JPEG Baseline chest radiograph"

    def render(self, relative: str, size: tuple[int, int] | None = None) -> Callable[[], str]:
        def fn() -> str:
            src = self.data_file(relative)
            png = self.tmp / (src.stem + ".png")
            self.cli_ok("render", str(src), "-o", str(png))
            width, height = png_size(png)
            if size and (width, height) != size:
                raise AssertionError(f"PNG is {width}x{height}, expected {size[0]}x{size[1]}")
            return f"{src.name} -> {width}x{height} PNG"

        return fn

    def catalogue(self) -> str:
        out = self.cli_ok("models", "list", "--catalogue").stdout
        expect(out, "densenet121-res224-all")
        return "bundled catalogue.json is read"

    def tiny_model(self) -> Path:
        """A tiny real model file, written by this (non-frozen) Python with the project's own code."""
        path = self.tmp / "tiny.safetensors"
        code = (
            "import sys\n"
            "from ml.models import registry\n"
            "from ml.models.bundle import save_model\n"
            "from ml.models.manifest import ModelManifest\n"
            "model = registry.build_model('cxr_resnet_small', 2, 1)\n"
            "manifest = ModelManifest(name='tiny', architecture='cxr_resnet_small', labels=['a', 'b'], input_size=64)\n"
            "save_model(sys.argv[1], model, manifest)\n"
        )
        subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, check=True, timeout=300)
        return path

    def predict(self) -> str:
        image = self.data_file("dicom/rsna_cxr_pa.dcm")
        model = self.tiny_model()
        csv_path, heat = self.tmp / "predictions.csv", self.tmp / "heatmaps"
        self.cli_ok(
            "predict",
            str(image),
            "--model",
            str(model),
            "-o",
            str(csv_path),
            "--device",
            "cpu",
            "--explain",
            "gradcam",
            "--explain-dir",
            str(heat),
        )
        text = csv_path.read_text(encoding="utf-8")
        expect(text, "rsna_cxr_pa")
        pngs = sorted(heat.glob("*.png"))
        if not pngs:
            raise AssertionError(f"no Grad-CAM PNG in {heat}")
        return f"tiny model: {len(text.splitlines()) - 1} prediction row(s), Grad-CAM overlay {pngs[0].name}"

    def train(self) -> str:
        source = self.data_file("cxr/kermany-val")
        run = self.tmp / "run"
        args = [
            "train",
            "--data",
            str(source),
            "--epochs",
            "1",
            "--image-size",
            "64",
            "--batch-size",
            "4",
            "--workers",
            "2",
            "--seed",
            "1",
            "--device",
            "cpu",
            "--out",
            str(run),
            "--events",
            str(run / "events.jsonl"),
            "--quiet",
        ]
        tuned = self.has_optuna()
        if tuned:
            args += ["--tune", "2"]
        self.cli_ok(*args, timeout=600)
        if not (run / "model.safetensors").is_file():
            raise AssertionError(f"no model.safetensors in {run}")
        events = [
            json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if line.strip()
        ]
        kinds = {str(e.get("event")) for e in events}
        wanted = {"start", "epoch_end", "finished"} | ({"trial", "tune_done"} if tuned else set())
        if not wanted <= kinds:
            raise AssertionError(f"events file lacks {sorted(wanted - kinds)}")
        return (
            f"16 real JPEGs, 1 epoch, 2 loader workers{', auto-tune 2 trials' if tuned else ''}: "
            f"model written, {len(events)} events incl. {', '.join(sorted(wanted))}"
        )

    def has_optuna(self) -> bool:
        internal = self.exe.parent / "_internal"
        return any(internal.glob("optuna-*.dist-info")) or any(self.exe.parent.glob("optuna-*.dist-info"))

    def evaluate(self) -> str:
        model = self.tmp / "run" / "model.safetensors"
        if not model.exists():
            raise Skip("no trained model (the train check failed)")
        out = self.tmp / "evaluation"
        self.cli_ok(
            "evaluate",
            "--model",
            str(model),
            "--data",
            str(self.data_file("cxr/kermany-val")),
            "--out",
            str(out),
            "--bootstrap",
            "20",
            "--device",
            "cpu",
        )
        if not (out / "metrics.json").is_file():
            raise AssertionError(f"no metrics.json in {out}")
        return "metrics.json written"

    def readable_error(self) -> str:
        result = self.run("info", str(self.tmp / "no-such-file.dcm"), timeout=120)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if result.returncode == 0 or "Traceback" in result.stderr or len(lines) != 1:
            raise AssertionError(f"exit {result.returncode}, stderr: {tail(result.stderr)}")
        return f"exit {result.returncode}: {lines[0]}"

    def gui(self, alive_s: float = 10.0) -> str:
        image = self.data_file("dicom/rsna_cxr_pa.dcm")
        settings = self.tmp / "settings.ini"
        stderr_path = self.tmp / "gui.stderr"
        with open(stderr_path, "w", encoding="utf-8") as err:
            proc = subprocess.Popen(
                [str(self.exe), "--settings", str(settings), str(image)],
                env=self.env,
                cwd=self.tmp,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            try:
                code = proc.wait(timeout=alive_s)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
        stderr = stderr_path.read_text(encoding="utf-8", errors="replace")
        if code is not None:
            raise AssertionError(
                f"the GUI exited after less than {alive_s:.0f} s with {code}: {tail(stderr)}"
            )
        if "Traceback" in stderr:
            raise AssertionError(f"the GUI logged a traceback: {tail(stderr)}")
        errors_log = Path(self.env["CXR_STUDIO_HOME"]) / "logs" / "errors.log"
        if errors_log.exists():
            raise AssertionError(f"unexpected error logged: {tail(errors_log.read_text(encoding='utf-8'))}")
        return f"window up on the offscreen platform with a DICOM open, still running after {alive_s:.0f} s"

    def shared_libraries(self) -> str:
        """Every ELF library in the bundle resolves inside the bundle (the bootloader's search path)."""
        if not sys.platform.startswith("linux") or shutil.which("ldd") is None:
            raise Skip("Linux with ldd only")
        internal = self.exe.parent / "_internal"
        # torch's own libraries are loaded before anything that uses them (torchvision's ops name
        # libc10.so and friends without a search path, in the virtual environment too)
        env = dict(
            self.env, LD_LIBRARY_PATH=os.pathsep.join([str(internal), str(internal / "torch" / "lib")])
        )
        missing: dict[str, set[str]] = {}
        system: set[str] = set()
        libs = [p for p in internal.rglob("*.so*") if p.is_file() and is_elf(p)]
        for lib in libs:
            out = subprocess.run(["ldd", str(lib)], env=env, capture_output=True, text=True).stdout
            for line in out.splitlines():
                if "not found" in line:
                    name = line.split("=>")[0].strip()
                    if name.startswith(SYSTEM_LIBRARY_PREFIXES):
                        system.add(name)
                    else:
                        missing.setdefault(name, set()).add(lib.name)
        if missing:
            raise AssertionError(
                "; ".join(f"{k} (needed by {', '.join(sorted(v)[:3])})" for k, v in missing.items())
            )
        note = f" (left to the system: {', '.join(sorted(system))})" if system else ""
        return f"{len(libs)} libraries, every dependency found in the bundle{note}"

    def cuda_libraries(self) -> str:
        """The NVIDIA libraries torch loads (some with dlopen) are all in the bundle."""
        spec = importlib.util.find_spec("nvidia")
        if spec is None or not spec.submodule_search_locations:
            raise Skip("this environment has no nvidia-* CUDA packages (CPU-only torch)")
        wanted = {
            p.name
            for loc in spec.submodule_search_locations
            for p in Path(loc).rglob("lib*.so*")
            if not p.name.startswith(CUDA_NOT_USED)
        }
        bundled = {p.name for p in self.exe.parent.rglob("lib*.so*")}
        missing = sorted(wanted - bundled)
        if missing:
            raise AssertionError(f"{len(missing)} CUDA libraries missing: {', '.join(missing[:8])}")
        return f"all {len(wanted)} CUDA libraries torch links or opens are bundled (no GPU here to run them)"

    def run_all(self) -> list[Check]:
        self.check("info", self.info)
        self.check("render JPEG 2000 (openjpeg)", self.render("dicom/RG3_J2KR.dcm", (1760, 1760)))
        self.check("render JPEG Baseline (libjpeg)", self.render("dicom/rsna_cxr_pa.dcm", (1024, 1024)))
        self.check("render JPEG-LS (libjpeg)", self.render("dicom/JLSL_16_15_1_1F.dcm"))
        self.check("render HTJ2K (openjpeg)", self.render("dicom/HTJ2KLossless_08_RGB.dcm"))
        self.check("render RLE", self.render("dicom/emri_small_RLE.dcm"))
        self.check("model catalogue", self.catalogue)
        self.check("predict + Grad-CAM", self.predict)
        self.check("train (wizard path)", self.train)
        self.check("evaluate", self.evaluate)
        self.check("readable error", self.readable_error)
        self.check("GUI starts", self.gui)
        self.check("shared libraries", self.shared_libraries)
        self.check("CUDA libraries", self.cuda_libraries)
        return self.checks


class Skip(Exception):
    pass


def expect(text: str, *needles: str) -> None:
    for needle in needles:
        if needle not in text:
            raise AssertionError(f"{needle!r} not in output: {tail(text)}")


def tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


def is_elf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"\x7fELF"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "build", help="PyInstaller work folder (default build/)"
    )
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's cache first")
    parser.add_argument("--no-smoke", action="store_true", help="build only")
    parser.add_argument("--smoke-only", action="store_true", help="smoke-test an existing build only")
    parser.add_argument(
        "--data", type=Path, default=DATA, help="the real test files (default ../shared/data)"
    )
    parser.add_argument("--report", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)

    dist = args.dist.resolve()
    report: dict[str, object] = {}
    if not args.smoke_only:
        check_environment(dist)
        seconds = build(dist, args.work.resolve(), args.clean)
        report["build_seconds"] = round(seconds)
        log(f"built in {seconds / 60:.1f} min")
    exe = executable(dist)
    if not exe.is_file():
        raise SystemExit(f"{exe} does not exist: build first")
    size = folder_size(exe.parent)
    report["bundle_bytes"] = size
    log(f"bundle: {exe.parent} ({size / 1e9:.2f} GB)")

    failed = 0
    if not args.no_smoke:
        with tempfile.TemporaryDirectory(prefix="cxr-smoke-") as scratch:
            checks = SmokeTest(exe, args.data.resolve(), Path(scratch)).run_all()
        failed = sum(c.ok is False for c in checks)
        report["checks"] = [asdict(c) for c in checks]
        passed = sum(c.ok is True for c in checks)
        log(f"smoke test: {passed} passed, {failed} failed, {len(checks) - passed - failed} skipped")
    if args.report:
        args.report.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
