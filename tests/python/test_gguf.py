"""GGUF: tandem's reader and dequantizers against the reference `gguf` package, bit for bit,
on files the test writes with gguf's own writer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf", reason="the gguf package is a test requirement (requirements.txt)")
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES  # noqa: E402

from tandem import _C  # noqa: E402

# Types gguf can quantize itself (float data in, real quantized blocks out).
QUANTIZABLE = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
# K-quants: gguf only dequantizes them, so the test builds random blocks with finite scales.
K_QUANTS = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]


def random_k_blocks(qtype, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    # Overwrite the float16 scale fields with finite values so no NaN/inf bit patterns arise.
    half = lambda k: rng.normal(0, 0.05, size=(n_blocks, k)).astype(np.float16).view(np.uint8)  # noqa: E731
    if qtype in (T.Q4_K, T.Q5_K):
        raw[:, 0:4] = half(2)
    elif qtype == T.Q2_K:
        raw[:, 80:84] = half(2)
    elif qtype == T.Q3_K:
        raw[:, 108:110] = half(1)
    elif qtype == T.Q6_K:
        raw[:, 208:210] = half(1)
    return raw


def write_file(path, tensors: dict[str, tuple[np.ndarray, object, tuple[int, ...]]]):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint32("test.count", len(tensors))
    w.add_string("test.name", "tandem fixture")
    w.add_array("test.list", [1.5, 2.5])
    for name, (data, qtype, shape) in tensors.items():
        if qtype in (T.F32,):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_shape=data.shape if qtype in () else None, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def fixture_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    tensors = {}
    # rows x row length (torch order); odd, so paired-row kernels meet a lone row, and more than
    # 16, so the 8-bit tiles (16 rows each) have a full group and a partial one
    shape = (23, 512)
    for qt in QUANTIZABLE:
        x = rng.normal(0, 1, size=shape).astype(np.float32)
        q = gguf.quants.quantize(x, qt) if qt != T.F32 else x
        tensors[f"t.{qt.name}"] = (q, qt, shape)
    for qt in K_QUANTS:
        bs, ts = GGML_QUANT_SIZES[qt]
        n_blocks = shape[0] * shape[1] // bs
        raw = random_k_blocks(qt, n_blocks, rng).reshape(shape[0], -1)
        tensors[f"t.{qt.name}"] = (raw, qt, shape)
    path = tmp_path_factory.mktemp("gguf") / "fixture.gguf"
    write_file(path, tensors)
    return path, tensors


@pytest.mark.parametrize("qtype", QUANTIZABLE + K_QUANTS, ids=lambda q: q.name)
def test_dequantize_bit_exact(fixture_file, qtype):
    path, tensors = fixture_file
    data, _, shape = tensors[f"t.{qtype.name}"]
    expected = gguf.quants.dequantize(data, qtype).astype(np.float32).reshape(shape)
    f = _C.GgufFile(str(path))
    assert f.tensor_type(f"t.{qtype.name}") == qtype.name
    got = f.load(f"t.{qtype.name}").numpy()
    assert got.shape == expected.shape
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), (
        f"{qtype.name}: {np.sum(got.view(np.uint32) != expected.view(np.uint32))} values differ")


def test_metadata_and_dtype_cast(fixture_file):
    path, _ = fixture_file
    f = _C.GgufFile(str(path))
    assert f.version == 3
    assert f.get_string("general.architecture") == "llama"
    assert f.get_int("test.count") == len(QUANTIZABLE) + len(K_QUANTS)
    assert f.get_string("test.name") == "tandem fixture"
    bf = f.load("t.Q8_0", "bfloat16")
    assert bf.dtype == torch.bfloat16
    assert torch.equal(bf, f.load("t.Q8_0").to(torch.bfloat16))


def test_truncated_and_corrupt_files_are_clear_errors(fixture_file, tmp_path):
    path, _ = fixture_file
    raw = path.read_bytes()
    # (the writer pads the end to 32 bytes: cutting only padding is not truncation)
    for cut in (3, 16, 200, len(raw) // 2, len(raw) - 40):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(raw[:cut])
        with pytest.raises(_C.GgufError, match=rf"{bad.name}: (truncated GGUF file|not a GGUF file)"):
            _C.GgufFile(str(bad))
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(b"GGML" + raw[4:])
    with pytest.raises(_C.GgufError, match="not a GGUF file"):
        _C.GgufFile(str(wrong))
    with pytest.raises(_C.GgufError, match="missing metadata key 'nope'"):
        _C.GgufFile(str(path)).get_string("nope")


def float32_dot_bound(x, w):
    """The worst-case rounding error of float32 dot products of x's rows and w's rows in any
    summation order: n * u * sum |x_i w_i| (Higham, Accuracy and Stability of Numerical
    Algorithms, 3.1; u = 2^-24). Outputs that cancel (a small result of large terms) may be off by
    more than a relative tolerance of the result allows while being as exact as float32 can be."""
    return x.shape[1] * 2.0**-24 * (x.double().abs() @ w.double().abs().T)


@pytest.mark.parametrize("qtype", [T.Q4_0, T.Q4_1, T.Q5_0, T.Q8_0, T.Q4_K, T.Q6_K], ids=lambda q: q.name)
@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_packed_matmul_equals_dequantized_matmul(fixture_file, qtype, portable):
    """Decoding reads weights straight from their blocks: the result must equal x @ W^T with W
    dequantized by the gguf package (float32, up to summation order)."""
    path, tensors = fixture_file
    data, _, shape = tensors[f"t.{qtype.name}"]
    w = torch.from_numpy(gguf.quants.dequantize(data, qtype).astype(np.float32).reshape(shape))
    # 1 row (single-sequence decoding), and 3, 8 and 11 rows (batched decoding: the tiled
    # kernels' full tile of 8 and its remainders).
    for rows in (1, 3, 8, 11):
        x = torch.randn(rows, shape[1], generator=torch.Generator().manual_seed(rows))
        got = _C.GgufFile(str(path)).packed_matmul(f"t.{qtype.name}", x, portable)
        ref = x.double() @ w.double().T
        assert got.shape == (rows, shape[0])
        err = (got.double() - ref).abs()
        assert (err <= float32_dot_bound(x, w) + 1e-6).all(), (rows, err.max().item())


@pytest.mark.parametrize("qtype", [T.Q4_0, T.Q4_1, T.Q5_0, T.Q8_0, T.Q4_K, T.Q6_K], ids=lambda q: q.name)
@pytest.mark.parametrize("portable", [False, True], ids=["vnni", "portable"])
def test_int8_activation_matmul_equals_its_arithmetic(fixture_file, qtype, portable):
    """decode_kernels: int8_activations. Reference written here from llama.cpp's q8 arithmetic:
    each 32 activations quantized to int8 (d = max|x| / 127, ties to even), then the exact
    dequantized weights times the dequantized activations."""
    path, tensors = fixture_file
    data, _, shape = tensors[f"t.{qtype.name}"]
    w = torch.from_numpy(gguf.quants.dequantize(data, qtype).astype(np.float32).reshape(shape)).double()
    # Every row count takes the weights re-laid in groups of 16 rows on a VNNI CPU (int8_tiles.h;
    # the fixture's 23 rows make one full group and one partial one); 1, 2 and 8 rows run the
    # kernel's three accumulator arrangements (4, 2 and 1 integer chains), 11 a tile of 8 and one of 3.
    for rows in (1, 2, 3, 8, 11):
        x = torch.randn(rows, shape[1], generator=torch.Generator().manual_seed(10 + rows))
        blocks = x.view(rows, -1, 32)
        d = blocks.abs().amax(-1, keepdim=True) / 127
        q = torch.round(blocks / torch.where(d > 0, d, torch.ones_like(d)))  # torch.round: ties to even
        x_hat = (q * d).view(rows, -1).double()
        ref = x_hat @ w.T
        got = _C.GgufFile(str(path)).packed_matmul_int8(f"t.{qtype.name}", x, portable)
        err = (got.double() - ref).abs()
        assert (err <= float32_dot_bound(x_hat, w) + 1e-6).all(), (rows, err.max().item())
        exact = (x.double() @ w.T).float()
        assert (got - exact).abs().max().item() > 1e-6  # it is a different arithmetic, not the exact path


def test_cpu_kernels_setting_picks_the_portable_build(fixture_file):
    """`cpu_kernels: portable` (process-wide, set from a run's config) routes every packed product
    through the Eigen kernels: bit for bit what the forced-portable call gives, and not what the
    AVX-512 kernels give (their summation orders differ, so the check can tell them apart)."""
    path, tensors = fixture_file
    f = _C.GgufFile(str(path))
    x = torch.randn(3, tensors["t.Q4_K"][2][1], generator=torch.Generator().manual_seed(5))
    native, portable = f.packed_matmul("t.Q4_K", x, False), f.packed_matmul("t.Q4_K", x, True)
    native8, portable8 = f.packed_matmul_int8("t.Q4_K", x, False), f.packed_matmul_int8("t.Q4_K", x, True)
    assert not torch.equal(native, portable) and not torch.equal(native8, portable8)
    _C.set_cpu_kernels("portable")
    try:
        assert _C.cpu_kernels() == "portable"
        assert torch.equal(f.packed_matmul("t.Q4_K", x), portable)
        assert torch.equal(f.packed_matmul_int8("t.Q4_K", x), portable8)  # the 8-bit path too
    finally:
        _C.set_cpu_kernels("auto")
    assert torch.equal(f.packed_matmul("t.Q4_K", x), native)
    assert _C.portable_kernels_build().startswith(("avx2 build", "baseline build"))
