"""Tensors cross the pybind11 boundary without copies, in both directions."""
from __future__ import annotations

import torch
from safetensors.torch import save_file

import tandem
from tandem import _C


def test_cpp_sees_the_same_memory_python_owns():
    t = torch.arange(1000, dtype=torch.float32)
    assert _C._testing.tensor_data_ptr(t) == t.data_ptr()
    view = t[10:]  # a view with an offset is passed as is, too
    assert _C._testing.tensor_data_ptr(view) == view.data_ptr() == t.data_ptr() + 40


def test_cpp_in_place_change_is_visible_and_returns_same_storage():
    t = torch.ones(16)
    out = _C._testing.scale_(t, 3.0)
    assert out.data_ptr() == t.data_ptr()
    assert torch.equal(t, torch.full((16,), 3.0))


def test_tensors_made_in_cpp_reach_python_without_copy(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.randn(256, 256)}, str(path))
    tensors, _ = tandem.load_safetensors(str(path), mmap=True)
    w = tensors["w"]
    # Python's tensor is the one C++ made: same address on both sides...
    assert _C._testing.tensor_data_ptr(w) == w.data_ptr()
    # ...and that address is inside the file mapping, not a fresh heap copy.
    maps = open("/proc/self/maps").read().splitlines()
    mapped = [line for line in maps if line.endswith(str(path))]
    assert mapped, "the safetensors file is not memory-mapped"
    lo, hi = (int(x, 16) for x in mapped[0].split()[0].split("-"))
    assert lo <= w.data_ptr() < hi
