"""Layout bookkeeping: each tensor's data is its ONNX (logical) tensor transposed by a permutation."""

from __future__ import annotations

Perm = tuple[int, ...]

#: NCHW logical -> NHWC physical
NHWC: Perm = (0, 2, 3, 1)


def identity(rank: int) -> Perm:
    """The permutation that keeps the ONNX layout."""
    return tuple(range(rank))


def inverse(perm: Perm) -> Perm:
    """p^-1, so that inverse(p)[p[i]] == i."""
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def physical_shape(shape: tuple[int, ...], perm: Perm) -> tuple[int, ...]:
    """Shape of the data of a tensor of logical `shape` stored in layout `perm`."""
    return tuple(shape[p] for p in perm)


def transpose_between(src: Perm, dst: Perm) -> Perm:
    """The TRANSPOSE perm turning data in layout `src` into data in layout `dst`."""
    inv = inverse(src)
    return tuple(inv[d] for d in dst)


def same_memory_order(shape: tuple[int, ...], src: Perm, dst: Perm) -> bool:
    """True when the two layouts differ only by where size-1 dims sit (a RESHAPE then moves the data)."""
    return [p for p in src if shape[p] != 1] == [p for p in dst if shape[p] != 1]


def physical_axis(axis: int, perm: Perm) -> int:
    """Where logical `axis` sits in the data of layout `perm`."""
    return perm.index(axis)


def after_transpose(perm: Perm, t: Perm) -> Perm:
    """Layout of Transpose(x, t) that keeps x's data unchanged (the op becomes free)."""
    t_inv = inverse(t)
    return tuple(t_inv[p] for p in perm)


def drop_axes(perm: Perm, axes: set[int]) -> Perm:
    """Layout after reducing away logical `axes` (keepdims=0): the remaining dims keep their relative order."""
    kept = [p for p in perm if p not in axes]
    rank_map = {old: new for new, old in enumerate(sorted(kept))}
    return tuple(rank_map[p] for p in kept)
