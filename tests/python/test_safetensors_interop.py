"""tandem's safetensors reader/writer against the reference `safetensors` package, both ways."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import tandem

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.float64, torch.int32, torch.int8,
          torch.uint8, torch.bool]


def sample(dtype: torch.dtype, shape=(3, 7)) -> torch.Tensor:
    g = torch.Generator().manual_seed(hash(str(dtype)) % 1000)
    if dtype.is_floating_point:
        t = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        t.view(-1)[0] = float("inf")  # special values must survive too
        t.view(-1)[1] = float("-0.0")
        return t
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -2**31), min(info.max, 2**31 - 1), shape, generator=g, dtype=torch.int64).to(dtype)


def bits(t: torch.Tensor) -> bytes:
    return t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tandem_writes_reference_reads_bit_exact(tmp_path, dtype):
    tensors = {"a": sample(dtype), "b.weight": sample(dtype, (5,)), "empty": torch.zeros((0, 2), dtype=dtype)}
    path = tmp_path / "t.safetensors"
    tandem.save_safetensors(str(path), tensors, {"producer": "tandem"})
    back = load_file(str(path))
    assert set(back) == set(tensors)
    for k, t in tensors.items():
        assert back[k].dtype == dtype and back[k].shape == t.shape
        assert bits(back[k]) == bits(t), k


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reference_writes_tandem_reads_bit_exact(tmp_path, dtype):
    tensors = {"x": sample(dtype), "y": sample(dtype, (2, 2, 2))}
    path = tmp_path / "r.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    for mmap in (True, False):
        back, meta = tandem.load_safetensors(str(path), mmap=mmap)
        assert meta == {"format": "pt"}
        for k, t in tensors.items():
            assert back[k].dtype == dtype and back[k].shape == t.shape
            assert bits(back[k]) == bits(t), k


def test_truncated_reference_file_is_a_clear_error(tmp_path):
    path = tmp_path / "full.safetensors"
    save_file({"w": torch.randn(64, 64)}, str(path))
    raw = path.read_bytes()
    for cut in (4, 20, len(raw) // 2, len(raw) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(raw[:cut])
        with pytest.raises(tandem.SafetensorsError, match=rf"{bad.name}: not a valid safetensors file"):
            tandem.load_safetensors(str(bad))


def test_corrupt_header_is_a_clear_error(tmp_path):
    path = tmp_path / "c.safetensors"
    save_file({"w": torch.randn(4)}, str(path))
    raw = bytearray(path.read_bytes())
    raw[9] = ord("#")  # break the JSON header
    path.write_bytes(bytes(raw))
    with pytest.raises(tandem.SafetensorsError, match="header is not valid JSON"):
        tandem.load_safetensors(str(path))
