#!/usr/bin/python3
"""The PyTorch side of bench/run: DESIGN.md's bench configs in plain PyTorch on the CPU,
with the same architectures as dalle-c, printing the line bench/run parses:

    RESULT <config> <median seconds> <gflop per run or 0> <peak RSS MiB>

    /usr/bin/python3 bench/torch/bench_torch.py dvae-train [-t 2] [-r 10] [-w 3]

bench/run sets the environment PyTorch runs best with here (OMP_WAIT_POLICY=PASSIVE,
OPENBLAS_CORETYPE for OpenBLAS's fast kernels, 2 threads).
"""
import argparse
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- dVAE (dvae/dvae.h)
class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)
        self.c3 = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x + self.c3(F.relu(self.c2(F.relu(self.c1(x)))))


class DVAE(nn.Module):
    def __init__(self, S=64, L=3, C=64, R=2, K=512, D=256):
        super().__init__()
        enc = []
        for i in range(L):
            enc += [nn.Conv2d(3 if i == 0 else C, C, 4, stride=2, padding=1), nn.ReLU()]
        enc += [Res(C) for _ in range(R)]
        enc += [nn.Conv2d(C, K, 1)]
        self.enc = nn.Sequential(*enc)
        self.codebook = nn.Parameter(torch.randn(K, D))
        dec = [nn.Conv2d(D, C, 1)] + [Res(C) for _ in range(R)]
        for _ in range(L):
            dec += [nn.ConvTranspose2d(C, C, 4, stride=2, padding=1), nn.ReLU()]
        dec += [nn.Conv2d(C, 3, 1)]
        self.dec = nn.Sequential(*dec)
        self.K = K

    def forward(self, x, tau, beta=1e-3):
        logits = self.enc(x)                                  # B K G G
        q = F.softmax(logits, dim=1)
        kl = (q * torch.log(self.K * q + 1e-20)).sum(1).mean()
        y = F.gumbel_softmax(logits, tau=tau, hard=False, dim=1)
        z = torch.einsum("bkhw,kd->bdhw", y, self.codebook)
        xhat = self.dec(z)
        return F.mse_loss(xhat, x) + beta * kl

    def decode(self, tokens):                                 # B G G
        z = self.codebook[tokens].permute(0, 3, 1, 2)
        return self.dec(z)


def dvae_train(args):
    torch.manual_seed(0)
    m = DVAE()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x = torch.rand(16, 3, 64, 64) * 2 - 1

    def step():
        loss = m(x, tau=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def dvae_decode(args):
    torch.manual_seed(0)
    m = DVAE()
    tokens = torch.randint(0, 512, (16, 8, 8))

    def run():
        with torch.no_grad():
            m.decode(tokens)
    return run


CONFIGS = {"dvae-train": dvae_train, "dvae-decode": dvae_decode}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", choices=sorted(CONFIGS))
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-r", type=int, default=10)
    ap.add_argument("-w", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.t)
    fn = CONFIGS[a.config](a)
    for _ in range(a.w):
        fn()
    times = []
    for _ in range(a.r):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"RESULT {a.config} {statistics.median(times):.6f} 0 {rss:.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
