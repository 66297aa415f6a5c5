"""PyTorch references for the contrastive scorer of rerank/rerank.h and its two new nn layers
(read by tests/test_rerank.c).

    /usr/bin/python3 tests/make_fixtures.py rerank

As fixtures_nn.py: float32 draws, computed in float64 from those exact values.

- nn_l2norm: F.normalize(x, dim=1) forward and backward.
- nn_contrastive: CLIP's symmetric loss (CE(s I T^T, diag) + CE(s T I^T, diag)) / 2 with
  s = exp(log_scale), and its gradients with respect to both embeddings and log_scale.
- rerank_step: one training step of a tiny scorer: image encoder (stride-2 4x4 convs with
  ReLU, the last map flattened in CHW order, bias-free projection), text encoder (token +
  position embedding, pre-LN GPT-2 blocks with causal attention, LN_f at the last non-PAD
  position, bias-free projection), both L2-normalised; loss, embeddings, logits, every
  parameter's gradient, and the parameters after clip_grad_norm_ + one AdamW step (weight
  decay on conv and linear weights) + the clamp of logit_scale to [0, ln 100]. The
  optimiser is fed the gradients rounded to float32, the values the C test loads.

Names: "rerank.*" the weights, "grad.rerank.*" their gradients, "after.rerank.*" the
parameters after the step.
"""
import math

import torch
import torch.nn.functional as F

from fixtures_transformer import attention  # the same causal multi-head attention

CFG = dict(image_size=8, image_layers=2, image_channels=3, text_len=6, text_vocab=13,
           pad_id=0, bos_id=2, eos_id=3, text_layers=2, text_heads=2, text_width=8,
           embed_dim=5)
OPT = dict(lr=1e-2, beta1=0.9, beta2=0.98, eps=1e-6, weight_decay=0.1, grad_clip=0.5)


def leaf(t):
    return t.to(torch.float64).requires_grad_(True)


def l2norm(write):
    torch.manual_seed(40)
    x = torch.randn(5, 7) * 2
    x[3] *= 1e-3  # a short row: the backward divides by its norm
    dout = torch.randn(5, 7)
    xd = leaf(x)
    out = F.normalize(xd, dim=1)
    out.backward(dout.double())
    write("nn_l2norm", {"x": x, "dout": dout, "out": out, "dx": xd.grad})


def clip_loss(img, txt, log_scale):
    logits = log_scale.exp() * img @ txt.t()
    target = torch.arange(img.shape[0])
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2, logits


def contrastive(write):
    torch.manual_seed(41)
    n, E = 6, 5
    img = F.normalize(torch.randn(n, E), dim=1)
    txt = F.normalize(torch.randn(n, E), dim=1)
    txt[2] = F.normalize(img[2] + 0.3 * txt[2], dim=0)  # one pair that agrees
    log_scale = torch.tensor([1.3])
    dloss = 0.7
    i, t, s = leaf(img), leaf(txt), leaf(log_scale)
    loss, logits = clip_loss(i, t, s)
    (loss * dloss).backward()
    write("nn_contrastive", {"img": img, "txt": txt, "log_scale": log_scale,
                             "dloss": torch.tensor([dloss]), "loss": loss.reshape(1),
                             "logits": logits, "dimg": i.grad, "dtxt": t.grad,
                             "dlog_scale": s.grad})


def param_shapes(c):
    s = []
    ch = 3
    for i in range(c["image_layers"]):
        oc = c["image_channels"] << i
        s += [(f"rerank.img.conv{i}.w", (oc, ch, 4, 4)), (f"rerank.img.conv{i}.b", (oc,))]
        ch = oc
    side = c["image_size"] >> c["image_layers"]
    d, E = c["text_width"], c["embed_dim"]
    s += [("rerank.img.proj.w", (E, ch * side * side)),
          ("rerank.txt.wte", (c["text_vocab"], d)), ("rerank.txt.wpe", (c["text_len"], d))]
    for l in range(c["text_layers"]):
        h = f"rerank.txt.h{l}."
        s += [(h + "ln1.w", (d,)), (h + "ln1.b", (d,)),
              (h + "attn.qkv.w", (3 * d, d)), (h + "attn.qkv.b", (3 * d,)),
              (h + "attn.proj.w", (d, d)), (h + "attn.proj.b", (d,)),
              (h + "ln2.w", (d,)), (h + "ln2.b", (d,)),
              (h + "mlp.fc.w", (4 * d, d)), (h + "mlp.fc.b", (4 * d,)),
              (h + "mlp.proj.w", (d, 4 * d)), (h + "mlp.proj.b", (d,))]
    s += [("rerank.txt.ln_f.w", (d,)), ("rerank.txt.ln_f.b", (d,)),
          ("rerank.txt.proj.w", (E, d)), ("rerank.logit_scale", (1,))]
    return s


def decays(name):
    """AdamW weight decay: conv and linear weights (not embeddings, LNs, biases, the scale)."""
    return (name.endswith(".w") and (".conv" in name or "attn." in name or "mlp." in name
                                     or "proj" in name))


def encode_images(p, c, x):
    h = x
    for i in range(c["image_layers"]):
        h = F.relu(F.conv2d(h, p[f"rerank.img.conv{i}.w"], p[f"rerank.img.conv{i}.b"],
                            stride=2, padding=1))
    return F.normalize(F.linear(h.reshape(h.shape[0], -1), p["rerank.img.proj.w"]), dim=1)


def encode_texts(p, c, ids):
    B, T, d = ids.shape[0], c["text_len"], c["text_width"]
    x = p["rerank.txt.wte"][ids] + p["rerank.txt.wpe"][None]
    for l in range(c["text_layers"]):
        h = f"rerank.txt.h{l}."
        a = F.layer_norm(x, (d,), p[h + "ln1.w"], p[h + "ln1.b"], eps=1e-5)
        a = attention(a, p[h + "attn.qkv.w"], p[h + "attn.qkv.b"], c["text_heads"])
        x = x + F.linear(a, p[h + "attn.proj.w"], p[h + "attn.proj.b"])
        a = F.layer_norm(x, (d,), p[h + "ln2.w"], p[h + "ln2.b"], eps=1e-5)
        a = F.gelu(F.linear(a, p[h + "mlp.fc.w"], p[h + "mlp.fc.b"]), approximate="tanh")
        x = x + F.linear(a, p[h + "mlp.proj.w"], p[h + "mlp.proj.b"])
    # the EOS position: the last id that is not PAD
    pos = torch.arange(T)[None].expand(B, T)
    pool = torch.where(ids != c["pad_id"], pos, torch.zeros_like(pos)).max(dim=1).values
    x = x[torch.arange(B), pool]
    x = F.layer_norm(x, (d,), p["rerank.txt.ln_f.w"], p["rerank.txt.ln_f.b"], eps=1e-5)
    return F.normalize(F.linear(x, p["rerank.txt.proj.w"]), dim=1)


def step_once(weights, images, ids):
    p = {k: v.double().requires_grad_(True) for k, v in weights.items()}
    img = encode_images(p, CFG, images.double())
    txt = encode_texts(p, CFG, ids)
    loss, logits = clip_loss(img, txt, p["rerank.logit_scale"])
    loss.backward()
    return p, img, txt, loss, logits


def train_step(write):
    c, o = CFG, OPT
    torch.manual_seed(42)
    weights = {}
    for name, shape in param_shapes(c):
        if name.endswith("ln1.w") or name.endswith("ln2.w") or name.endswith("ln_f.w"):
            weights[name] = 1 + 0.1 * torch.randn(shape)
        elif name == "rerank.logit_scale":
            weights[name] = torch.zeros(shape)
        elif len(shape) == 1:
            weights[name] = 0.1 * torch.randn(shape)
        else:
            weights[name] = 0.4 * torch.randn(shape)
    B, T, S = 4, c["text_len"], c["image_size"]
    images = torch.rand(B, 3, S, S) * 2 - 1
    ids = torch.tensor([[2, 5, 9, 3, 0, 0],      # a short caption: BOS, 2 ids, EOS, PADs
                        [2, 4, 4, 10, 7, 3],     # a full one
                        [2, 3, 0, 0, 0, 0],      # an empty caption
                        [2, 12, 3, 0, 0, 0]])

    # logit_scale starts just inside a bound of [0, ln 100], on the side its first step
    # crosses, so the stored step exercises the clamp
    weights["rerank.logit_scale"] = torch.tensor([0.004])
    p, img, txt, loss, logits = step_once(weights, images, ids)
    if p["rerank.logit_scale"].grad.item() < 0:
        weights["rerank.logit_scale"] = torch.tensor([math.log(100.0) - 0.004])
        p, img, txt, loss, logits = step_once(weights, images, ids)

    q = {k: v.double().clone().requires_grad_(True) for k, v in weights.items()}
    for k in q:
        q[k].grad = p[k].grad.float().double()
    norm = torch.nn.utils.clip_grad_norm_(list(q.values()), o["grad_clip"])
    groups = [{"params": [q[k] for k in q if decays(k)], "weight_decay": o["weight_decay"]},
              {"params": [q[k] for k in q if not decays(k)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    opt.step()
    before = q["rerank.logit_scale"].item()
    with torch.no_grad():
        q["rerank.logit_scale"].clamp_(0, math.log(100.0))
    print(f"    loss {loss.item():.6f}, grad norm {norm.item():.4f} (clip {o['grad_clip']}), "
          f"logit_scale {weights['rerank.logit_scale'].item():.4f} -> {before:.4f} -> "
          f"{q['rerank.logit_scale'].item():.4f} (clamped)")

    cfg = torch.tensor([c[k] for k in ("image_size", "image_layers", "image_channels",
                                       "text_len", "text_vocab", "pad_id", "bos_id", "eos_id",
                                       "text_layers", "text_heads", "text_width", "embed_dim")])
    out = {"config": cfg,
           "opt": torch.tensor([o["lr"], o["beta1"], o["beta2"], o["eps"], o["weight_decay"],
                                o["grad_clip"]], dtype=torch.float64),
           "images": images, "ids": ids, "loss": loss.reshape(1), "logits": logits,
           "img_emb": img, "txt_emb": txt, "grad_norm": norm.reshape(1)}
    for k, v in weights.items():
        out[k] = v
    for k in weights:
        out["grad." + k] = p[k].grad
    for k in weights:
        out["after." + k] = q[k].detach()
    write("rerank_step", out)


def generate(write):
    l2norm(write)
    contrastive(write)
    train_step(write)
