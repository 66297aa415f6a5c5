"""PyTorch reference of the whole dVAE (dvae/dvae.h) on a tiny config, read by
tests/test_dvae.c.

    /usr/bin/python3 tests/make_fixtures.py dvae

The model is written out plainly from DESIGN.md; parameters are drawn in float32 with
PyTorch's default initialisation, then the training step (forward with fixed Gumbel
noise, loss, backward) runs in float64 from those exact values. Tensor names match the
C model's tensor table; gradients are stored as "grad.NAME".
"""
import torch
import torch.nn.functional as F


def make_params(cfg, gen):
    S, L, C, R, K, D = (cfg[k] for k in ("S", "L", "C", "R", "K", "D"))
    params = {}

    def conv(name, cin, cout, k, transposed=False):
        m = (torch.nn.ConvTranspose2d(cin, cout, k) if transposed
             else torch.nn.Conv2d(cin, cout, k))
        params[name + ".w"] = m.weight.detach().clone()
        params[name + ".b"] = m.bias.detach().clone()

    for i in range(L):
        conv(f"dvae.enc.conv{i}", 3 if i == 0 else C, C, 4)
    for j in range(R):
        conv(f"dvae.enc.res{j}.conv1", C, C, 3)
        conv(f"dvae.enc.res{j}.conv2", C, C, 3)
        conv(f"dvae.enc.res{j}.conv3", C, C, 1)
    conv("dvae.enc.logits", C, K, 1)
    params["dvae.codebook"] = torch.randn(K, D)
    conv("dvae.dec.in", D, C, 1)
    for j in range(R):
        conv(f"dvae.dec.res{j}.conv1", C, C, 3)
        conv(f"dvae.dec.res{j}.conv2", C, C, 3)
        conv(f"dvae.dec.res{j}.conv3", C, C, 1)
    for i in range(L):
        conv(f"dvae.dec.up{i}", C, C, 4, transposed=True)
    conv("dvae.dec.out", C, 3, 1)
    return params


def res(p, name, x):
    h = F.relu(F.conv2d(x, p[name + ".conv1.w"], p[name + ".conv1.b"], padding=1))
    h = F.relu(F.conv2d(h, p[name + ".conv2.w"], p[name + ".conv2.b"], padding=1))
    return x + F.conv2d(h, p[name + ".conv3.w"], p[name + ".conv3.b"])


def encoder(p, cfg, x):
    h = x
    for i in range(cfg["L"]):
        h = F.relu(F.conv2d(h, p[f"dvae.enc.conv{i}.w"], p[f"dvae.enc.conv{i}.b"],
                            stride=2, padding=1))
    for j in range(cfg["R"]):
        h = res(p, f"dvae.enc.res{j}", h)
    logits = F.conv2d(h, p["dvae.enc.logits.w"], p["dvae.enc.logits.b"])
    return logits.permute(0, 2, 3, 1).reshape(-1, cfg["K"])  # rows: (b, row, col)


def decoder(p, cfg, z_rows, B):
    G = cfg["S"] >> cfg["L"]
    z = z_rows.reshape(B, G, G, cfg["D"]).permute(0, 3, 1, 2)
    h = F.conv2d(z, p["dvae.dec.in.w"], p["dvae.dec.in.b"])
    for j in range(cfg["R"]):
        h = res(p, f"dvae.dec.res{j}", h)
    for i in range(cfg["L"]):
        h = F.relu(F.conv_transpose2d(h, p[f"dvae.dec.up{i}.w"], p[f"dvae.dec.up{i}.b"],
                                      stride=2, padding=1))
    return F.conv2d(h, p["dvae.dec.out.w"], p["dvae.dec.out.b"])


def step(write, name, seed, hard):
    cfg = dict(S=8, L=2, C=4, R=1, K=5, D=3, B=2, tau=0.7, beta=0.1)
    torch.manual_seed(seed)
    gen = None
    p32 = make_params(cfg, gen)
    B, S, K = cfg["B"], cfg["S"], cfg["K"]
    G = S >> cfg["L"]
    x = torch.rand(B, 3, S, S) * 2 - 1
    noise = -torch.log(-torch.log(torch.rand(B * G * G, K).clamp(1e-6, 1 - 1e-6)))

    p = {k: v.double().requires_grad_(True) for k, v in p32.items()}
    xd = x.double()
    logits = encoder(p, cfg, xd)
    q = F.softmax(logits, dim=-1)
    kl = (q * torch.log(K * q)).sum() / (B * G * G)
    y_soft = F.softmax((logits + noise.double()) / cfg["tau"], dim=-1)
    if hard:
        y_hard = F.one_hot(y_soft.argmax(-1), K).double()
        y = y_hard - y_soft.detach() + y_soft
    else:
        y = y_soft
    z = y @ p["dvae.codebook"]
    xhat = decoder(p, cfg, z, B)
    mse = F.mse_loss(xhat, xd)
    loss = mse + cfg["beta"] * kl
    loss.backward()

    with torch.no_grad():
        tokens = logits.argmax(-1)
        decoded = decoder(p, cfg, p["dvae.codebook"][tokens], B)

    out = {
        "config": torch.tensor([S, cfg["L"], cfg["C"], cfg["R"], K, cfg["D"], B, int(hard)]),
        "tau_beta": torch.tensor([cfg["tau"], cfg["beta"]]),
        "x": x, "noise": noise, "loss": loss.reshape(1), "mse": mse.reshape(1),
        "kl": kl.reshape(1), "logits": logits, "xhat": xhat,
        "tokens": tokens, "decoded": decoded,
    }
    for k, v in p32.items():
        out[k] = v
    for k, v in p.items():
        out["grad." + k] = v.grad
    write(name, out)


def generate(write):
    step(write, "dvae_step_soft", 11, hard=False)
    step(write, "dvae_step_hard", 12, hard=True)
