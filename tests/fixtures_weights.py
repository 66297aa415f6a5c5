"""PyTorch's f16 and bf16 rounding, for tests/test_weights.c.

    /usr/bin/python3 tests/make_fixtures.py weights

x holds float32 edge values (signed zeros, f16/bf16 subnormals and their rounding
boundaries, ties on both sides of even, values that overflow f16, inf, NaN, f32
subnormals) followed by random values over many magnitudes. half and bf16 hold
x.half().float() and x.bfloat16().float(); the widening is exact, so the C test compares
the bit patterns of its own narrowing with them. The first n_edge entries are the edge
values; x_small holds a few of them alone so torch's scalar code path is covered too.
"""
import struct

import torch


def f32(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def edge_values():
    v = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 65504.0, -65504.0, 65519.0, 65519.996, 65520.0,
         -65520.0, 65536.0, 1e5, 1e10, 3.4028235e38, -3.4028235e38, 1e-3, 0.1, 1.0 / 3]
    v += [float("inf"), float("-inf"), float("nan")]
    for e in range(-27, -13):          # around and in the f16 subnormal range
        base = 2.0 ** e
        v += [base, -base, base * 1.5, base * 1.25, base * 1.75, base * (1 + 2 ** -23),
              base * (1 - 2 ** -24), base * 3]
    for e in (-24, -25, -14, -15):     # ties exactly between two f16 values
        for m in range(1, 8):
            v.append(2.0 ** e * (1 + m / 8))
    for m in range(0, 12):             # f16 ties at 1.0: 1 + k/2048 + 1/4096
        v += [1 + m / 1024 + 1 / 2048, -(1 + m / 1024 + 1 / 2048)]
        v += [1 + m / 128 + 1 / 256, 256 + m * 2 + 1, 1 + m / 128 + 1 / 256 + 2 ** -20]
    v += [f32(0x3F808000), f32(0x3F818000), f32(0x3F80C000), f32(0x3F807FFF),  # bf16 ties
          f32(0x7F7F8000), f32(0x7F7FFFFF), f32(0x00000001), f32(0x80000001),   # overflow, f32 subnormals
          f32(0x007FFFFF), f32(0x00800000), f32(0x7FC00000), f32(0xFFC00000)]
    return v


def generate(write):
    torch.manual_seed(7)
    edge = torch.tensor(edge_values(), dtype=torch.float32)
    mags = torch.pow(10.0, torch.empty(8000).uniform_(-9, 6))
    rand = (torch.randn(8000) * mags).to(torch.float32)
    bits = torch.randint(0, 2 ** 31 - 1, (2000,), dtype=torch.int64)
    raw = torch.from_numpy((bits.numpy().astype("uint32") * 2 + 1).view("float32").copy())
    raw = raw[torch.isfinite(raw)]      # random bit patterns, every exponent
    x = torch.cat([edge, rand, raw])
    write("weights_rounding", {
        "x": x, "half": x.half().float(), "bf16": x.bfloat16().float(),
        "n_edge": torch.tensor([edge.numel()], dtype=torch.int64),
        "x_small": edge[:8].clone(), "half_small": edge[:8].half().float(),
        "bf16_small": edge[:8].bfloat16().float(),
    })
