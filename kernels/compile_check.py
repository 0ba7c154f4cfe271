"""Compile every kernel variant for a Hopper GPU (sm_90) on a machine without one.

``python -m unitlab.kernels.compile_check [--all]``: exits 0 when all variants compile.

The interpreter (``TRITON_INTERPRET=1``, how the tests run without a GPU) executes kernels as
NumPy and forgives what the compiler does not: a variable that changes type in a loop, a Python
int where a tensor is needed, branches of an ``if`` that disagree in dtype. Triton ships
``ptxas``, so lowering to a cubin for an H100/H200 target needs no GPU and catches those errors
before a GPU session pays for finding them. By default one compile per constexpr branch and
storage dtype (seconds); ``--all`` compiles the full product. Must run *without*
``TRITON_INTERPRET`` (the kernels must be ``@triton.jit`` functions, not interpreted ones).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterator

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import instance_norm, reparam

HOPPER = GPUTarget("cuda", 90, 32)
_TYPES = {"bf16": "*bf16", "fp16": "*fp16", "fp32": "*fp32", "fp64": "*fp64"}


def compile_for_hopper(kernel, signature: dict[str, str], constexprs: dict, num_warps: int) -> int:
    """Compile as the launcher would for 16-byte-aligned tensors; return the cubin's size."""
    signature = {**signature, **dict.fromkeys(constexprs, "constexpr")}
    aligned = [i for i, kind in enumerate(signature.values()) if kind.startswith("*")]
    attrs = {(i,): [["tt.divisibility", 16]] for i in aligned}
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    compiled = triton.compile(source, target=HOPPER, options={"num_warps": num_warps})
    return len(compiled.asm["cubin"])


def _acc(dtype: str) -> tuple[tl.dtype, str]:
    return (tl.float64, "*fp64") if dtype == "fp64" else (tl.float32, "*fp32")


def _ptrs(names: str, kind: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), kind)


def reparam_variants(dtype: str, full: bool, sample: bool, has_dz: bool, has_dkl: bool):
    """The forward (when ``has_dz and has_dkl``, to count it once) and backward of one case."""
    acc, acc_ptr = _acc(dtype)
    storage = _TYPES[dtype]
    if has_dz and has_dkl:
        sig = {**_ptrs("mu_ptr lv_ptr z_ptr", storage), "partial_ptr": acc_ptr}
        sig |= {"n": "i32", "seed": "i32"}
        const = dict(FULL=full, SAMPLE=sample, ACC=acc, BLOCK=reparam.BLOCK)
        yield reparam._reparam_fwd_kernel, sig, const, reparam._NUM_WARPS
    sig = _ptrs("mu_ptr lv_ptr dz_ptr dkl_ptr dmu_ptr dlv_ptr", storage)
    sig |= {"n": "i64", "seed": "i32", "kl_denom": "i64"}
    const = dict(FULL=full, HAS_DZ=has_dz, HAS_DKL=has_dkl, ACC=acc, BLOCK=reparam.BLOCK)
    yield reparam._reparam_bwd_kernel, sig, const, reparam._NUM_WARPS


def instance_norm_variants(dtype: str, length: int, activation: str, affine: bool, res: bool):
    """Forward and backward of one case: 512 rows of ``length`` (> 4096: the chunked path)."""
    acc, acc_ptr = _acc(dtype)
    storage = _TYPES[dtype]
    config = instance_norm._launch_config(8 * 64, length, instance_norm.MAX_BLOCK)
    warps = config.pop("num_warps")
    common = dict(HAS_W=affine, HAS_B=affine, ACT=activation, ACC=acc, **config)
    sig = {**_ptrs("x_ptr", storage), **_ptrs("w_ptr b_ptr", "*fp32")}
    sig |= {**_ptrs("res_ptr y_ptr", storage), **_ptrs("mean_ptr rstd_ptr", acc_ptr)}
    sig |= {"n_rows": "i32", "C": "i32", "L": "i32", "eps": "fp32", "slope": "fp32"}
    yield instance_norm._in_act_fwd_kernel, sig, {**common, "HAS_RES": res}, warps
    sig = {**_ptrs("x_ptr dy_ptr", storage), **_ptrs("w_ptr b_ptr", "*fp32")}
    sig |= {**_ptrs("mean_ptr rstd_ptr", acc_ptr), "dx_ptr": storage}
    sig |= {**_ptrs("dw_ptr db_ptr", acc_ptr), "n_rows": "i32", "C": "i32", "L": "i32"}
    sig |= {"slope": "fp32"}
    yield instance_norm._in_act_bwd_kernel, sig, common, warps


def variants(everything: bool = False) -> Iterator[tuple]:
    """(kernel, signature, constexprs, num_warps): each branch and dtype at least once."""
    if everything:
        dtypes, flags = list(_TYPES), (False, True)
        for d, full, sample, dz, dkl in itertools.product(dtypes, *[flags] * 4):
            yield from reparam_variants(d, full, sample, dz, dkl)
        acts = ("relu", "lrelu", "none")
        lengths = (64, 4096, 16384)
        for d, n, act, aff, res in itertools.product(dtypes, lengths, acts, flags, flags):
            yield from instance_norm_variants(d, n, act, aff, res)
        return
    for case in [
        ("bf16", False, True, True, True),
        ("fp32", True, True, True, True),
        ("fp64", True, False, False, True),
        ("fp32", True, True, True, False),
    ]:
        yield from reparam_variants(*case)
    for case in [
        ("bf16", 1024, "relu", False, True),
        ("fp32", 16384, "lrelu", True, False),
        ("fp64", 16384, "none", True, True),
        ("fp16", 4096, "lrelu", True, True),
    ]:
        yield from instance_norm_variants(*case)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unitlab.kernels.compile_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--all", action="store_true", help="compile the full product of variants")
    args = parser.parse_args(argv)
    if instance_norm.INTERPRETED or reparam.INTERPRETED:
        print("TRITON_INTERPRET is set: the kernels are interpreted; run without it")
        return 2
    start, failures, count = time.perf_counter(), 0, 0
    for kernel, signature, constexprs, warps in variants(args.all):
        count += 1
        shown = ", ".join(f"{k}={v}" for k, v in constexprs.items() if k != "ACC")
        name = f"{kernel.__name__}({next(iter(signature.values()))[1:]}; {shown})"
        try:
            compile_for_hopper(kernel, signature, constexprs, warps)
        except Exception as error:  # report every failing variant, not only the first
            failures += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}")
    seconds = time.perf_counter() - start
    print(f"{count - failures}/{count} kernel variants compile for sm_90 ({seconds:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
