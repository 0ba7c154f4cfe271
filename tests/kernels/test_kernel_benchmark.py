"""The kernel benchmark's plumbing, checked on the CPU with a stand-in timer.

Real timings need a GPU (``triton.testing.do_bench`` does); what can break without one is
everything around the timer: building the cases, running each implementation forward and
backward, the byte accounting and the table. A fake ``do_bench`` runs each step once.
"""

from __future__ import annotations

import pytest
import torch
import triton.testing

from benchmarks import kernels as bench


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_main_without_gpu_says_so(capsys):
    assert bench.main([]) == 0
    assert "no CUDA GPU: kernel benchmark needs one" in capsys.readouterr().out


def test_table_with_fake_timer(monkeypatch, device):
    calls = []

    def fake_do_bench(fn, grad_to_none=None, return_mode="mean"):
        assert return_mode == "median"
        fn()  # runs the real forward (and backward) once
        for t in grad_to_none:
            t.grad = None
        calls.append(fn)
        return 0.5

    monkeypatch.setattr(triton.testing, "do_bench", fake_do_bench)
    shape = (2, 3, 4, 5)
    cases = [
        bench.reparam_workload(shape, torch.float32, False, device),
        bench.reparam_workload(shape, torch.float32, True, device),
        bench.instance_norm_workload(shape, torch.bfloat16, True, device),
    ]
    table = bench.kernel_table(cases, with_compile=False, roof=1000.0)
    rows = [line for line in table.splitlines() if line.startswith("| reparam") or "IN" in line]
    assert len(rows) == 2 * len(cases) and len(calls) == 2 * 2 * len(cases)
    assert "skipped" in rows[0] and "1.00x vs eager" in rows[0]
    # 120 fp32 elements (480 bytes): forward reads mu, logvar and writes z; backward reads dz,
    # mu, logvar and writes dmu, dlogvar
    assert (cases[1].forward_bytes, cases[1].backward_bytes) == (3 * 480, 5 * 480)
    full_backward = next(r for r in rows if "(full)" in r and "forward+backward" in r)
    assert "500 µs" in full_backward and "GB/s" in full_backward


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_check_without_gpu_says_so(capsys, tmp_path):
    from benchmarks import gpu_check

    assert gpu_check.main(["--out", str(tmp_path / "page.md")]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
    assert not (tmp_path / "page.md").exists()
