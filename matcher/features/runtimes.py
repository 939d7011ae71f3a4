"""Where the CNN runs: ONNX Runtime or OpenVINO on the CPU (fast), or PyTorch (CPU or GPU).

Each takes a float32 batch (n, 3, h, w) and returns the last feature map float32 (n, C, h', w'). The ONNX graph is
exported from the same torch module on first use and cached on disk, keyed by the weights' sha256, so it can
never drift from the weights. ONNX Runtime and PyTorch compute in fp32 and agree to cosine >= 0.999, so they
share the runtime *family* ``"fp32"`` that index manifests record: vectors from either are compatible. The
other families are their own: OpenVINO computing in bfloat16 on CPUs that have bf16 instructions (``BF16_FAMILY``,
faster than ONNX Runtime's fp32) and ONNX Runtime on a statically quantised graph (``INT8_FAMILY``).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING

import numpy as np

from ..inputs.everyday import everyday_photos
from .backbone import BackboneSpec
from .preprocess import to_batch

if TYPE_CHECKING:  # torch is imported where a runner is made, not with this module
    import torch

RUNTIMES = ("auto", "onnx", "bf16", "int8", "torch")  # what make_runner (and `--runtime`) accepts
RUNTIME_FAMILY = "fp32"
BF16_FAMILY = "bf16-openvino"  # the fp32 graph run by OpenVINO with bfloat16 inference precision
INT8_FAMILY = "int8-qdq-v2"  # ONNX Runtime static int8 (quantize_int8's recipe); its vectors are not fp32's
# (v1, without reduce_range, saturated on CPUs without VNNI: an index of it is refused, rebuild it)


def cache_dir() -> Path:
    """Folder for exported ONNX graphs: $MATCHER_CACHE, else ~/.cache/matcher, else (not writable) a temp folder."""
    preferred = Path(os.environ.get("MATCHER_CACHE") or Path.home() / ".cache" / "matcher")
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK):
            return preferred
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"matcher-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


class FeatureRunner:
    """Runs the CNN trunk. ``name`` says which runtime; ``family`` what index manifests record."""

    name = "base"
    family = RUNTIME_FAMILY

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TorchRunner(FeatureRunner):
    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str, threads: int | None):
        import torch

        if threads:
            torch.set_num_threads(threads)  # torch's thread pool is process-wide
        self.device = torch.device(device)
        self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
            return self.model.forward_features(x).float().cpu().numpy()


class OnnxRunner(FeatureRunner):
    name = "onnxruntime"

    def __init__(self, model: torch.nn.Module, spec: BackboneSpec, weights_sha256: str, threads: int | None,
                 *, int8: bool = False):
        import onnxruntime

        path = fp32_graph(model, spec, weights_sha256)
        if int8:
            quantized = path.with_name(f"{path.stem}-{INT8_FAMILY}.onnx")
            if not quantized.is_file():
                quantize_int8(path, spec, quantized)
            path, self.name, self.family = quantized, "onnxruntime-int8", INT8_FAMILY
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        # idle CNN threads sleep instead of spinning: the cores go to decoding, SIFT, search and verification
        # between batches (figures: docs/benchmarks.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": np.ascontiguousarray(batch, np.float32)})[0]


class OpenVinoRunner(FeatureRunner):
    """The fp32 ONNX graph compiled by OpenVINO's CPU plugin with bfloat16 inference precision: on a CPU with
    bf16 instructions (AVX512_BF16 or AMX) its matrix products round inputs to bf16 and accumulate in fp32.
    Raw descriptors stay close to fp32's, though not close enough to share its family, and the network runs
    markedly faster than ONNX Runtime's fp32 (figures: docs/benchmarks.md). The compiled model is cached beside
    the ONNX graph."""

    name = "openvino-bf16"
    family = BF16_FAMILY

    def __init__(self, model: torch.nn.Module, spec: BackboneSpec, weights_sha256: str, threads: int | None):
        import openvino

        path = fp32_graph(model, spec, weights_sha256)
        config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY",
                  "CACHE_DIR": str(cache_dir() / "openvino")}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = openvino.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()  # one infer request, which is not thread-safe

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            out = self.request.infer({0: np.ascontiguousarray(batch, np.float32)})
            return np.array(out[self.compiled.output(0)], np.float32)  # a copy: the request reuses its buffers


def fp32_graph(model: torch.nn.Module, spec: BackboneSpec, weights_sha256: str) -> Path:
    """The cached ONNX export of ``model`` (exported on first use)."""
    path = cache_dir() / f"{spec.timm_name}-{weights_sha256[:16]}.onnx"
    if not path.is_file():
        export_onnx(model, spec, path)
    return path


def export_onnx(model: torch.nn.Module, spec: BackboneSpec, path: Path) -> None:
    """Export the trunk (its ``forward_features``: the last feature map) with dynamic batch and image size;
    written to a temp file then renamed (atomic)."""
    import torch

    class Trunk(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.forward_features(x)

    path.parent.mkdir(parents=True, exist_ok=True)
    size = spec.preprocessing.size
    example = torch.zeros(2, 3, size, size)
    fd, temp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(Trunk(model).eval(), example, temp, input_names=["images"],
                              output_names=["features"], opset_version=17, dynamo=False,
                              dynamic_axes={"images": {0: "n", 2: "h", 3: "w"},
                                            "features": {0: "n", 2: "fh", 3: "fw"}})
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def quantize_int8(source: Path, spec: BackboneSpec, path: Path, *, calibration_images: int = 64) -> None:
    """Static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations) of an fp32 ONNX graph.

    Weights use 7 bits (``reduce_range``): x86 CPUs without VNNI multiply uint8 x int8 with an instruction
    (VPMADDUBSW) whose int16 sums saturate with full-range weights, which bent EfficientNet's descriptors far
    from fp32's (much less with 7-bit weights), and the same graph gave different vectors on CPUs with and
    without VNNI (figures: docs/benchmarks.md).

    Calibration: ``calibration_images`` crops of the bundled scikit-image photos (fixed seed), so the result
    depends only on the weights and this recipe (``INT8_FAMILY``). Written to a temp file, then renamed.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process


    rng = np.random.default_rng(0)
    photos, crops = everyday_photos(), []
    for i in range(calibration_images):
        photo = photos[i % len(photos)]
        side = rng.uniform(0.4, 1.0)
        w, h = int(photo.width * side), int(photo.height * side)
        x, y = int(rng.uniform(0, photo.width - w)), int(rng.uniform(0, photo.height - h))
        crops.append(photo.crop((x, y, x + w, y + h)))
    pre = spec.preprocessing
    batches = iter([{"images": to_batch(crops[i:i + 8], pre.size, pre.mean, pre.std)} for i in range(0, len(crops), 8)])

    class Batches(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    folder = Path(tempfile.mkdtemp(dir=path.parent))
    try:
        quant_pre_process(str(source), str(folder / "prepared.onnx"))
        quantize_static(str(folder / "prepared.onnx"), str(folder / "int8.onnx"), Batches(),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        os.replace(folder / "int8.onnx", path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_runner(model: torch.nn.Module, spec: BackboneSpec, weights_sha256: str, *, runtime: str = "auto",
                device: str = "cpu", threads: int | None = None) -> FeatureRunner:
    """Pick the runtime (one of RUNTIMES): ``auto`` = OpenVINO bf16 on a CPU with bf16 instructions
    (``has_bf16_cpu``), else ONNX Runtime fp32 on the CPU when installed, torch otherwise or on a GPU; ``bf16`` =
    OpenVINO bf16 (a CPU without bf16 instructions gets fp32 or emulated bf16 from OpenVINO, slower than ONNX
    Runtime's fp32); ``int8`` = ONNX Runtime on a statically quantised graph. bf16 and int8 are families of their
    own: indexes record them."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; use {', '.join(RUNTIMES)}")
    if runtime in ("bf16", "int8") and device != "cpu":
        raise ValueError(f"the {runtime} runtime runs on the CPU only; use runtime='torch' for a GPU")
    if runtime == "int8":
        return OnnxRunner(model, spec, weights_sha256, threads, int8=True)
    if runtime == "bf16" or (runtime == "auto" and device == "cpu" and has_bf16_cpu()):
        return OpenVinoRunner(model, spec, weights_sha256, threads)
    use_onnx = runtime == "onnx" or (runtime == "auto" and device == "cpu" and _has_onnxruntime())
    if use_onnx:
        return OnnxRunner(model, spec, weights_sha256, threads)
    return TorchRunner(model, device, threads)


def runtime_for(family: str, device: str = "cpu") -> str:
    """The ``make_runner`` runtime that embeds like an index whose manifest records ``family`` (on a GPU: torch,
    which an index of another family than fp32 refuses)."""
    if device != "cpu":
        return "auto"
    return {INT8_FAMILY: "int8", BF16_FAMILY: "bf16"}.get(family, "onnx" if _has_onnxruntime() else "torch")


@functools.lru_cache(maxsize=1)
def has_bf16_cpu() -> bool:
    """True when OpenVINO is installed and its CPU plugin can compute in bf16 on this machine."""
    try:
        import openvino

        return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # not installed, or no CPU plugin for this machine: ONNX Runtime fp32 then
        return False


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
