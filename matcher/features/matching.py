"""Lowe ratio-test matching of RootSIFT descriptors, the bulk of SIFT verification's cost.

Every query keypoint needs its nearest and second-nearest reference keypoint. A dense (n, m) similarity matrix
per pair does it, and in fp32 it cost about as much as the CNN on a listing in doubt, which verifies many pairs.
Here the matrix is only used to *rank*:

1. descriptors are halved to 7 bits (0..127) and multiplied as integers on ONNX Runtime's int8 kernels
   (``MatMulInteger``, VNNI where the CPU has it; 7-bit values cannot saturate the 16-bit sums of the older
   AVX2 kernels, so every CPU gets exact integer products of the halved values);
2. each query keypoint keeps its ``RANKED`` best reference keypoints by that product;
3. the cosines of those few pairs are recomputed exactly from the full 8-bit descriptors (integer dot products,
   exact in float32, over the two norms), and the ratio test runs on them.

The halving moves a cosine only slightly. That can reorder near-ties among a keypoint's runners-up, but the
ratio test only accepts a keypoint whose best match stands clear of the rest, and there the exact best two are
among the ``RANKED``: the accepted matches are the fp32 matrix's but for rare exceptions, at a clearly lower cost
per pair (figures: docs/benchmarks.md).
"""
from __future__ import annotations

from dataclasses import dataclass
import functools

import numpy as np

RANKED = 3  # reference keypoints per query keypoint whose cosines are recomputed exactly


@dataclass(frozen=True)
class Descriptors:
    """One image's RootSIFT descriptors in the forms matching needs (``prepare``).

    counts : (n, 128) float32, the stored uint8 values (integers, so their dot products are exact in float32)
    norms : (n,) float32, the rows' Euclidean norms
    halved : (n, 128) uint8, the values halved (0..127): the left operand of the integer product
    halved_columns : (128, n) int8, the same transposed: the right operand
    """

    counts: np.ndarray
    norms: np.ndarray
    halved: np.ndarray
    halved_columns: np.ndarray

    def __len__(self) -> int:
        return len(self.counts)


def prepare(descriptors: np.ndarray) -> Descriptors:
    """(n, 128) uint8 RootSIFT descriptors -> Descriptors (cheap next to the matching itself)."""
    halved = np.ascontiguousarray(descriptors >> 1)
    counts = descriptors.astype(np.float32)
    return Descriptors(counts=counts, norms=np.sqrt(np.einsum("nd,nd->n", counts, counts)) + np.float32(1e-7),
                       halved=halved, halved_columns=np.ascontiguousarray(halved.T).view(np.int8))


def ratio_matches(query: Descriptors, reference: Descriptors, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowe ratio-test matches (best cosine distance < ``ratio`` x second best) from query to reference keypoints.

    Returns (k,) int64 query indices (ascending) and (k,) int64 reference indices; each reference keypoint is used
    at most once (by the query keypoint closest to it).
    """
    empty = np.zeros(0, np.int64)
    if len(query) == 0 or len(reference) < 2:
        return empty, empty
    ranked = _best_columns(_integer_products(query.halved, reference.halved_columns), min(RANKED, len(reference)))
    rows = np.arange(len(query))
    # exact cosines of the ranked pairs: (n, RANKED)
    dots = np.einsum("nkd,nd->nk", reference.counts[ranked], query.counts)
    cosines = dots / (query.norms[:, None] * reference.norms[ranked])
    order = np.argsort(-cosines, axis=1, kind="stable")
    nearest = ranked[rows, order[:, 0]]
    best, second = cosines[rows, order[:, 0]], cosines[rows, order[:, 1]]
    # for unit vectors, distance = sqrt(2 - 2 cosine)
    best_dist = np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0))
    second_dist = np.sqrt(np.maximum(2.0 - 2.0 * second, 0.0))
    good = np.flatnonzero(best_dist < ratio * second_dist)
    # Several query points may pick the same reference point (repeated texture, duplicate keypoints): keep only
    # the closest, so each point counts once.
    by_closeness = good[np.argsort(-best[good], kind="stable")]
    _, first = np.unique(nearest[by_closeness], return_index=True)
    query_idx = np.sort(by_closeness[first])
    return query_idx.astype(np.int64), nearest[query_idx].astype(np.int64)


def _best_columns(products: np.ndarray, count: int) -> np.ndarray:
    """(n, m) int32 -> (n, count) int64 column indices of each row's ``count`` largest values, best first
    (``products`` is overwritten)."""
    rows = np.arange(len(products))
    best = np.empty((len(products), count), np.int64)
    for j in range(count):
        best[:, j] = products.argmax(axis=1)
        products[rows, best[:, j]] = np.iinfo(np.int32).min
    return best


def _integer_products(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(n, 128) uint8 @ (128, m) int8 -> (n, m) int32, exact (values 0..127), on the calling thread."""
    return load_int8_matcher().run(None, {"left": left, "right": right})[0]


@functools.lru_cache(maxsize=1)
def load_int8_matcher():
    """A one-node ONNX Runtime graph, ``MatMulInteger``, built once per process. One intra-op thread:
    verification already runs on several threads, one per listing. ``run`` is thread-safe. ``Matcher.open``
    calls it, so that importing onnx (slow) is paid when an index is opened, not by ``import matcher`` nor by the
    first listing in doubt."""
    import onnx
    from onnx import TensorProto, helper
    import onnxruntime

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["left", "right"], ["products"])], "descriptor_products",
        [helper.make_tensor_value_info("left", TensorProto.UINT8, [None, 128]),
         helper.make_tensor_value_info("right", TensorProto.INT8, [128, None])],
        [helper.make_tensor_value_info("products", TensorProto.INT32, [None, None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 8)  # readable by every onnxruntime the project accepts
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
