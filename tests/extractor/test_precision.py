"""extractor.precision: which precision `auto` picks, on injected machines, and the rule."""
from __future__ import annotations

import warnings

import pytest

from yt8m.extractor import precision as P

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw {extra}
bogomips\t: 4000.00

processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw {extra}
"""
WITH_BF16 = CPUINFO.format(extra="avx512_bf16 avx512_vnni")
WITH_AMX = CPUINFO.format(extra="amx_bf16 amx_tile amx_int8")
WITHOUT = CPUINFO.format(extra="avx512_vnni")
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"

PASSING = (P.Validation("bfloat16", "cpu-bf16", 0.02, 0.01, "test figure"),
           P.Validation("float16", "gpu", 0.001, 0.001, "test figure"))
FAILING = (P.Validation("bfloat16", "cpu-bf16", 0.5, 0.3, "test figure"),
           P.Validation("float16", "gpu", 0.2, 0.1, "test figure"))


def test_cpu_flags_are_read_from_cpuinfo_text():
    assert "avx512_bf16" in P.cpu_flags(WITH_BF16)
    assert "amx_bf16" in P.cpu_flags(WITH_AMX)
    assert "avx512_bf16" not in P.cpu_flags(WITHOUT)
    assert "asimd" in P.cpu_flags(ARM)
    assert P.cpu_flags("") == frozenset()


@pytest.mark.parametrize("cpuinfo, gpus, env, kind", [
    (WITH_BF16, 0, {}, "cpu-bf16"),
    (WITH_AMX, 0, {}, "cpu-bf16"),
    (WITHOUT, 0, {}, "cpu"),
    (ARM, 0, {}, "cpu"),
    (WITHOUT, 1, {}, "gpu"),
    (WITH_BF16, 2, {}, "gpu"),
    # oneDNN off: bfloat16 would be emulated, slower than float32.
    (WITH_BF16, 0, {"TF_ENABLE_ONEDNN_OPTS": "0"}, "cpu"),
    (WITH_BF16, 0, {"TF_ENABLE_ONEDNN_OPTS": "1"}, "cpu-bf16"),
])
def test_device_kind(cpuinfo, gpus, env, kind):
    assert P.device_kind(cpuinfo=cpuinfo, gpus=gpus, env=env) == kind


@pytest.mark.parametrize("cpuinfo, gpus, expected", [
    (WITH_BF16, 0, "bfloat16"),
    (WITH_AMX, 0, "bfloat16"),
    (WITHOUT, 0, "float32"),
    (WITHOUT, 1, "float16"),
])
def test_auto_follows_validated_figures(cpuinfo, gpus, expected):
    got = P.resolve("auto", cpuinfo=cpuinfo, gpus=gpus, env={}, validated=PASSING)
    assert got == expected


@pytest.mark.parametrize("cpuinfo, gpus", [(WITH_BF16, 0), (WITHOUT, 1)])
def test_auto_refuses_a_precision_that_fails_the_rule(cpuinfo, gpus):
    assert P.resolve("auto", cpuinfo=cpuinfo, gpus=gpus, env={}, validated=FAILING) == "float32"
    # ... and one that was never measured.
    assert P.resolve("auto", cpuinfo=cpuinfo, gpus=gpus, env={}, validated=()) == "float32"
    unmeasured = (P.Validation("bfloat16", "cpu-bf16", None, None, "not measured"),
                  P.Validation("float16", "gpu", None, None, "not measured"))
    assert P.resolve("auto", cpuinfo=cpuinfo, gpus=gpus, env={},
                     validated=unmeasured) == "float32"
    kind = P.device_kind(cpuinfo=cpuinfo, gpus=gpus, env={})
    chosen, why = P.choose_auto(kind, FAILING)
    assert chosen == "float32" and "fails the fidelity rule" in why


def test_the_rule_boundary():
    at = P.Validation("bfloat16", "cpu-bf16", P.MAX_MSE_RATIO, 0.1, "x")
    above = P.Validation("bfloat16", "cpu-bf16", P.MAX_MSE_RATIO * 1.01, 0.1, "x")
    assert at.passes() and not above.passes()
    assert not P.Validation("bfloat16", "cpu-bf16", None, None, "x").passes()


def test_shipped_table_decides_auto_on_each_device_kind():
    """`auto` picks a 16-bit precision exactly where the shipped figure passes the rule."""
    for kind, cpuinfo, gpus in (("cpu-bf16", WITH_BF16, 0), ("gpu", WITHOUT, 1)):
        want = P.PREFERRED[kind]
        v = P.validation_for(want, kind)
        got = P.resolve("auto", cpuinfo=cpuinfo, gpus=gpus, env={})
        assert got == (want if v is not None and v.passes() else "float32"), (kind, v)
        if v is not None and v.mse_ratio is not None:
            assert v.evidence and 0 <= v.byte_diff <= 1
    assert P.resolve("auto", cpuinfo=WITHOUT, gpus=0, env={}) == "float32"


def test_explicit_precisions_pass_through_and_bad_ones_are_refused():
    for p in P.PRECISIONS:
        assert P.resolve(p, cpuinfo=WITHOUT, gpus=0, env={}) == p
    with pytest.raises(P.PrecisionError, match="float32"):
        P.resolve("fp8")


def test_the_retired_mixed_precision_flag_maps_to_float16():
    assert P.from_legacy("bfloat16", None) == "bfloat16"
    assert P.from_legacy(None, False) == "float32"
    with pytest.warns(DeprecationWarning, match="precision='float16'"):
        assert P.from_legacy("float32", True) == "float16"
    with pytest.raises(P.PrecisionError, match="contradicts"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            P.from_legacy("bfloat16", True)
