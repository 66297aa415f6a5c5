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


# ---------------------------------------------------------------- GPT (transformer/transformer.h)
class Block(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fc_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.n_head = n_head

    def attend(self, x, cache=None):
        B, L, d = x.shape
        H, hs = self.n_head, d // self.n_head
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (t.view(B, L, H, hs).transpose(1, 2) for t in (q, k, v))
        if cache is not None:            # one new position against the cached ones
            if "k" in cache:
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
            att = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), dim=-1)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(hs)
            mask = torch.ones(L, L, dtype=torch.bool).tril()
            att = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, L, d))

    def forward(self, x, cache=None):
        x = x + self.attend(self.ln1(x), cache)
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, T=32, V=2048, G=16, K=512, d=256, n_layer=8, n_head=8, bos=2, pad=0):
        super().__init__()
        self.T, self.G, self.K, self.bos, self.pad = T, G, K, bos, pad
        self.wte_text, self.wte_image = nn.Embedding(V, d), nn.Embedding(K, d)
        self.wpe_text = nn.Parameter(torch.zeros(T + 1, d))
        self.wpe_row, self.wpe_col = nn.Parameter(torch.zeros(G, d)), nn.Parameter(torch.zeros(G, d))
        self.blocks = nn.ModuleList(Block(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head_text, self.head_image = nn.Linear(d, V), nn.Linear(d, K)

    def embed_image(self, ids, first):           # ids [B, n] at image positions first..
        i = torch.arange(first, first + ids.shape[1])
        return self.wte_image(ids) + self.wpe_row[i // self.G] + self.wpe_col[i % self.G]

    def forward(self, text, image):
        B, T, G2 = text.shape[0], self.T, self.G * self.G
        bos = torch.full((B, 1), self.bos, dtype=torch.long)
        x = torch.cat([self.wte_text(torch.cat([bos, text], 1)) + self.wpe_text,
                       self.embed_image(image[:, :G2 - 1], 0)], 1)
        for b in self.blocks:
            x = b(x)
        x = self.ln_f(x)
        ce_text = F.cross_entropy(self.head_text(x[:, :T]).reshape(-1, self.head_text.out_features),
                                  text.reshape(-1), ignore_index=self.pad)
        ce_image = F.cross_entropy(self.head_image(x[:, T:]).reshape(-1, self.K), image.reshape(-1))
        return (ce_text + 7 * ce_image) / 8

    @torch.no_grad()
    def sample(self, text, top_k=64):
        """KV-cache sampling of G*G image tokens per caption, top-k, temperature 1."""
        B, G2 = text.shape[0], self.G * self.G
        caches = [dict() for _ in self.blocks]
        bos = torch.full((B, 1), self.bos, dtype=torch.long)
        x = self.wte_text(torch.cat([bos, text], 1)) + self.wpe_text
        out = torch.empty(B, G2, dtype=torch.long)
        for i in range(G2):
            h = x
            for b, c in zip(self.blocks, caches):
                if i == 0:                          # the prompt: causal over T+1 positions
                    a = b.ln1(h)
                    B_, L, d = a.shape
                    H, hs = b.n_head, d // b.n_head
                    q, k, v = b.qkv(a).split(d, dim=2)
                    q, k, v = (t.view(B_, L, H, hs).transpose(1, 2) for t in (q, k, v))
                    c["k"], c["v"] = k, v
                    mask = torch.ones(L, L, dtype=torch.bool).tril()
                    att = F.softmax((q @ k.transpose(-2, -1) / math.sqrt(hs)).masked_fill(~mask, float("-inf")), -1)
                    h = h + b.proj((att @ v).transpose(1, 2).reshape(B_, L, d))
                    h = h + b.fc_proj(F.gelu(b.fc(b.ln2(h)), approximate="tanh"))
                else:
                    h = b(h, c)
            logits = self.head_image(self.ln_f(h[:, -1]))
            v, idx = logits.topk(top_k, dim=-1)
            tok = idx.gather(1, torch.multinomial(F.softmax(v, -1), 1))
            out[:, i] = tok[:, 0]
            x = self.embed_image(tok, i)
        return out


def gpt_train(args):
    torch.manual_seed(0)
    m = GPT()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    text = torch.randint(3, 2048, (8, 32))
    image = torch.randint(0, 512, (8, 256))

    def step():
        loss = m(text, image)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    return step


def gpt_sample(args):
    torch.manual_seed(0)
    m = GPT().eval()
    text = torch.randint(3, 2048, (4, 32))
    return lambda: m.sample(text)


CONFIGS = {"dvae-train": dvae_train, "dvae-decode": dvae_decode, "gpt-train": gpt_train,
           "gpt-sample": gpt_sample}


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
