"""PyTorch references for every layer of nn/nn.h (read by tests/test_nn_*.c).

    /usr/bin/python3 tests/make_fixtures.py nn

Each fixture draws float32 inputs from its own torch.manual_seed, then computes the
forward and the autograd backward (out.backward(dout)) in float64 from those exact
float32 values, so the stored references are the correctly rounded results the C float32
code is judged against. Convolution tensors are in PyTorch's NCHW; the C tests convert
to our CNHW with nn_nchw_to_cnhw. Names: x/w/b inputs and parameters, dout the upstream
gradient, out the forward, dx/dw/db the gradients.
"""
import torch
import torch.nn.functional as F


def leaf(t):
    """float32 draw -> float64 leaf that autograd differentiates."""
    return t.to(torch.float64).requires_grad_(True)


def linear(write):
    torch.manual_seed(1)
    N, C, OC = 5, 7, 3
    x, w, b = torch.randn(N, C), torch.randn(OC, C) * 0.5, torch.randn(OC)
    dout = torch.randn(N, OC)
    xd, wd, bd = leaf(x), leaf(w), leaf(b)
    out = F.linear(xd, wd, bd)
    out.backward(dout.double())
    out_nobias = F.linear(x.double(), w.double())
    write("nn_linear", {"x": x, "w": w, "b": b, "dout": dout, "out": out,
                        "out_nobias": out_nobias,
                        "dx": xd.grad, "dw": wd.grad, "db": bd.grad})


def conv2d(write, name, seed, B, C, H, W, OC, K, stride, pad):
    torch.manual_seed(seed)
    x = torch.randn(B, C, H, W)
    w = torch.randn(OC, C, K, K) / (C * K * K) ** 0.5
    b = torch.randn(OC)
    xd, wd, bd = leaf(x), leaf(w), leaf(b)
    out = F.conv2d(xd, wd, bd, stride=stride, padding=pad)
    dout = torch.randn(out.shape)
    out.backward(dout.double())
    out_nobias = F.conv2d(x.double(), w.double(), stride=stride, padding=pad)
    dims = torch.tensor([B, C, H, W, OC, K, stride, pad])
    write(name, {"dims": dims, "x": x, "w": w, "b": b, "dout": dout, "out": out,
                 "out_nobias": out_nobias,
                 "dx": xd.grad, "dw": wd.grad, "db": bd.grad})


def convt2d(write, name, seed, B, C, H, W, OC, K, stride, pad):
    torch.manual_seed(seed)
    x = torch.randn(B, C, H, W)
    w = torch.randn(C, OC, K, K) / (C * K * K) ** 0.5
    b = torch.randn(OC)
    xd, wd, bd = leaf(x), leaf(w), leaf(b)
    out = F.conv_transpose2d(xd, wd, bd, stride=stride, padding=pad)
    dout = torch.randn(out.shape)
    out.backward(dout.double())
    out_nobias = F.conv_transpose2d(x.double(), w.double(), stride=stride, padding=pad)
    dims = torch.tensor([B, C, H, W, OC, K, stride, pad])
    write(name, {"dims": dims, "x": x, "w": w, "b": b, "dout": dout, "out": out,
                 "out_nobias": out_nobias,
                 "dx": xd.grad, "dw": wd.grad, "db": bd.grad})


def elementwise(write):
    torch.manual_seed(4)
    n = 64
    x = torch.randn(n) * 2
    x[0], x[1] = 0.0, -0.0  # ReLU's gradient at 0 is 0 (PyTorch: where out > 0)
    dout = torch.randn(n)
    xd = leaf(x)
    out = F.relu(xd)
    out.backward(dout.double())
    write("nn_relu", {"x": x, "dout": dout, "out": out, "dx": xd.grad})

    torch.manual_seed(5)
    x = torch.cat([torch.randn(n - 8) * 2, torch.tensor([0.0, -6.0, 6.0, -12.0, 12.0,
                                                         -0.5, 0.5, 3.0])])
    dout = torch.randn(n)
    xd = leaf(x)
    out = F.gelu(xd, approximate="tanh")
    out.backward(dout.double())
    write("nn_gelu", {"x": x, "dout": dout, "out": out, "dx": xd.grad})


def layernorm(write):
    torch.manual_seed(6)
    N, C = 4, 8
    x = torch.randn(N, C) * 1.5 + 0.7
    w, b = 1 + 0.3 * torch.randn(C), 0.3 * torch.randn(C)
    dout = torch.randn(N, C)
    xd, wd, bd = leaf(x), leaf(w), leaf(b)
    out = F.layer_norm(xd, (C,), wd, bd, eps=1e-5)
    out.backward(dout.double())
    xx = x.double()
    mean = xx.mean(-1)
    rstd = (xx.var(-1, unbiased=False) + 1e-5).rsqrt()
    write("nn_layernorm", {"x": x, "w": w, "b": b, "dout": dout, "out": out,
                           "mean": mean, "rstd": rstd,
                           "dx": xd.grad, "dw": wd.grad, "db": bd.grad})


def softmax(write):
    torch.manual_seed(7)
    N, C = 4, 7
    x = torch.randn(N, C) * 2
    x[3] += 90.0  # large logits: the C code must subtract the row max
    dout = torch.randn(N, C)
    xd = leaf(x)
    out = F.softmax(xd, dim=-1)
    out.backward(dout.double())
    write("nn_softmax", {"x": x, "dout": dout, "out": out, "dx": xd.grad})


def cross_entropy(write):
    torch.manual_seed(8)
    N, C = 7, 5
    logits = torch.randn(N, C) * 2
    target = torch.randint(0, C, (N,))
    target[2] = -1
    target[5] = -1
    weight = torch.rand(C) + 0.25
    dloss = torch.tensor([0.7])
    ld = leaf(logits)
    loss = F.cross_entropy(ld, target, weight=weight.double(), ignore_index=-1)
    loss.backward(dloss.double()[0])
    write("nn_cross_entropy_weighted", {
        "logits": logits, "target": target, "weight": weight,
        "ignore_index": torch.tensor([-1]), "dloss": dloss, "loss": loss.reshape(1),
        "probs": F.softmax(logits.double(), -1), "dlogits": ld.grad})

    torch.manual_seed(9)
    N, C = 6, 9
    logits = torch.randn(N, C) * 3
    target = torch.randint(0, C, (N,))
    dloss = torch.tensor([1.3])
    ld = leaf(logits)
    loss = F.cross_entropy(ld, target)
    loss.backward(dloss.double()[0])
    write("nn_cross_entropy_plain", {
        "logits": logits, "target": target, "ignore_index": torch.tensor([-100]),
        "dloss": dloss, "loss": loss.reshape(1),
        "probs": F.softmax(logits.double(), -1), "dlogits": ld.grad})


def embedding(write):
    torch.manual_seed(10)
    V, C = 6, 4
    table = torch.randn(V, C)
    ids = torch.tensor([3, 0, 3, 5, 1, 3, 0])
    dout = torch.randn(len(ids), C)
    td = leaf(table)
    out = F.embedding(ids, td)
    out.backward(dout.double())
    write("nn_embedding", {"table": table, "ids": ids, "dout": dout, "out": out,
                           "dtable": td.grad})


def attention_case(write, name, seed, B, T, C, NH):
    torch.manual_seed(seed)
    hs = C // NH
    qkv = torch.randn(B, T, 3 * C)
    dout = torch.randn(B, T, C)
    qd = leaf(qkv)
    q, k, v = qd.split(C, dim=2)
    q = q.view(B, T, NH, hs).transpose(1, 2)  # [B, NH, T, hs]
    k = k.view(B, T, NH, hs).transpose(1, 2)
    v = v.view(B, T, NH, hs).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / hs ** 0.5
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    att = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    out = (att @ v).transpose(1, 2).reshape(B, T, C)
    out.backward(dout.double())
    write(name, {"dims": torch.tensor([B, T, C, NH]), "qkv": qkv, "dout": dout,
                 "out": out, "att": att, "dqkv": qd.grad})


def attention(write):
    attention_case(write, "nn_attention", 11, 2, 5, 8, 2)
    # longer than nn/attention.c's causal row blocks (64), the last one partial
    attention_case(write, "nn_attention_long", 27, 1, 150, 16, 2)


def gumbel_softmax(write):
    torch.manual_seed(12)
    N, K, tau = 6, 5, 0.7
    logits = torch.randn(N, K) * 1.5
    u = torch.rand(N, K).clamp(1e-6, 1 - 1e-6)
    g = -torch.log(-torch.log(u))
    dout = torch.randn(N, K)
    tensors = {"tau": torch.tensor([tau]), "logits": logits, "g": g, "dout": dout}
    for mode in ("soft", "hard", "nonoise"):
        ld = leaf(logits)
        noise = g.double() if mode != "nonoise" else 0.0
        y_soft = F.softmax((ld + noise) / tau, dim=-1)
        if mode == "hard":
            index = y_soft.argmax(dim=-1)
            y_hard = F.one_hot(index, K).to(y_soft.dtype)
            out = y_hard - y_soft.detach() + y_soft
            # the stored forward is the exact one-hot the C forward writes
            assert torch.equal(out.float(), y_hard.float())
        else:
            out = y_soft
        out.backward(dout.double())
        tensors["y_soft_" + mode] = y_soft
        tensors["out_" + mode] = out
        tensors["dlogits_" + mode] = ld.grad
    write("nn_gumbel_softmax", tensors)


def adamw(write):
    torch.manual_seed(13)
    n, steps = 12, 3
    lr, b1, b2, eps, wd = 1e-2, 0.9, 0.95, 1e-8, 0.1
    p0 = torch.randn(n)
    grads = torch.randn(steps, n)
    grads[:, 0] = 0.0  # a parameter that only decays (m = v = 0: 0 / (0 + eps))
    grads[1, 1] = 0.0
    p = p0.double().clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    after = []
    for s in range(steps):
        p.grad = grads[s].double().clone()
        opt.step()
        after.append(p.detach().clone())
    st = opt.state[p]
    write("nn_adamw", {"hparams": torch.tensor([lr, b1, b2, eps, wd]), "p0": p0,
                       "grads": grads, "params": torch.stack(after),
                       "m": st["exp_avg"], "v": st["exp_avg_sq"]})


def clip_grad_norm(write):
    for name, seed, max_norm in (("nn_clip_grad_norm_clips", 14, 1.0),
                                 ("nn_clip_grad_norm_noclip", 15, 100.0)):
        torch.manual_seed(seed)
        a = torch.randn(3, 4).double().requires_grad_(True)
        b = torch.randn(5).double().requires_grad_(True)
        a.grad = torch.randn(3, 4).double()
        b.grad = torch.randn(5).double()
        before = torch.cat([a.grad.flatten(), b.grad.flatten()]).float()
        norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm)
        after = torch.cat([a.grad.flatten(), b.grad.flatten()])
        write(name, {"max_norm": torch.tensor([max_norm]), "grad": before,
                     "norm": norm.reshape(1), "clipped": after})


def generate(write):
    linear(write)
    #                            seed B  C  H  W OC  K  s  p
    conv2d(write, "nn_conv2d_k1s1p0", 20, 2, 3, 5, 4, 4, 1, 1, 0)
    conv2d(write, "nn_conv2d_k3s1p1", 21, 2, 3, 6, 6, 4, 3, 1, 1)
    conv2d(write, "nn_conv2d_k4s2p1", 22, 2, 3, 8, 8, 4, 4, 2, 1)
    conv2d(write, "nn_conv2d_k3s2p1_odd", 23, 2, 2, 7, 5, 3, 3, 2, 1)
    convt2d(write, "nn_convt2d_k4s2p1", 24, 2, 3, 4, 3, 2, 4, 2, 1)
    elementwise(write)
    layernorm(write)
    softmax(write)
    cross_entropy(write)
    embedding(write)
    attention(write)
    gumbel_softmax(write)
    adamw(write)
    clip_grad_norm(write)
