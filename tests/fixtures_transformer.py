"""PyTorch reference of the transformer of transformer/transformer.h (read by tests/test_gpt.c).

    /usr/bin/python3 tests/make_fixtures.py transformer

A plain implementation of exactly that architecture: [BOS, text, image[:-1]] with separate
text/image token tables, a learned text position table (T+1 rows, BOS included), axial
row + column embeddings for image positions, pre-LN GPT-2 blocks (causal attention, GELU
tanh MLP 4d), a final LN, and biased untied text and image heads. Loss
(w_t CE_text + w_i CE_image) / (w_t + w_i) with PAD text targets ignored.

One training step on a tiny config, computed in float64 from float32 weights (as
fixtures_nn.py): loss and its parts, both logits, every parameter's gradient, and the
parameters after clip_grad_norm_ + one AdamW step (weight decay on linear weights only,
as gpt_tensor_t.decay). The optimiser is fed the gradients rounded to float32, the values
the C test loads, so the stored step is exact for those inputs.

Names: "gpt.*" the weights, "grad.gpt.*" their gradients, "after.gpt.*" the parameters
after the step.
"""
import math

import torch
import torch.nn.functional as F

CFG = dict(text_len=4, text_vocab=11, pad_id=0, bos_id=2, grid=3, image_vocab=7,
           n_layer=2, n_head=2, n_embd=16, loss_w_text=1.0, loss_w_image=7.0)
OPT = dict(lr=1e-2, lr_min=1e-3, warmup_steps=2, total_steps=10, beta1=0.9, beta2=0.95,
           eps=1e-8, weight_decay=0.1, grad_clip=0.5)


def param_shapes(c):
    d, G = c["n_embd"], c["grid"]
    s = [("gpt.wte_text", (c["text_vocab"], d)), ("gpt.wte_image", (c["image_vocab"], d)),
         ("gpt.wpe_text", (c["text_len"] + 1, d)), ("gpt.wpe_row", (G, d)),
         ("gpt.wpe_col", (G, d))]
    for l in range(c["n_layer"]):
        h = f"gpt.h{l}."
        s += [(h + "ln1.w", (d,)), (h + "ln1.b", (d,)),
              (h + "attn.qkv.w", (3 * d, d)), (h + "attn.qkv.b", (3 * d,)),
              (h + "attn.proj.w", (d, d)), (h + "attn.proj.b", (d,)),
              (h + "ln2.w", (d,)), (h + "ln2.b", (d,)),
              (h + "mlp.fc.w", (4 * d, d)), (h + "mlp.fc.b", (4 * d,)),
              (h + "mlp.proj.w", (d, 4 * d)), (h + "mlp.proj.b", (d,))]
    s += [("gpt.ln_f.w", (d,)), ("gpt.ln_f.b", (d,)),
          ("gpt.head_text.w", (c["text_vocab"], d)), ("gpt.head_text.b", (c["text_vocab"],)),
          ("gpt.head_image.w", (c["image_vocab"], d)),
          ("gpt.head_image.b", (c["image_vocab"],))]
    return s


def decays(name):
    """AdamW weight decay applies to the linear weights (2-D, not embedding tables)."""
    return name.endswith(".w") and ("attn." in name or "mlp." in name or "head_" in name)


def attention(x, w, b, n_head):
    B, L, d = x.shape
    hs = d // n_head
    q, k, v = F.linear(x, w, b).split(d, dim=2)
    q = q.view(B, L, n_head, hs).transpose(1, 2)
    k = k.view(B, L, n_head, hs).transpose(1, 2)
    v = v.view(B, L, n_head, hs).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)
    mask = torch.ones(L, L, dtype=torch.bool).tril()
    att = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return (att @ v).transpose(1, 2).reshape(B, L, d)


def forward(p, c, text, image):
    B, T, G = text.shape[0], c["text_len"], c["grid"]
    G2, d = G * G, c["n_embd"]
    bos = torch.full((B, 1), c["bos_id"], dtype=torch.long)
    x_text = p["gpt.wte_text"][torch.cat([bos, text], 1)] + p["gpt.wpe_text"][None]
    i = torch.arange(G2 - 1)
    x_img = (p["gpt.wte_image"][image[:, :G2 - 1]] + p["gpt.wpe_row"][i // G][None]
             + p["gpt.wpe_col"][i % G][None])
    x = torch.cat([x_text, x_img], 1)
    for l in range(c["n_layer"]):
        h = f"gpt.h{l}."
        a = F.layer_norm(x, (d,), p[h + "ln1.w"], p[h + "ln1.b"], eps=1e-5)
        a = attention(a, p[h + "attn.qkv.w"], p[h + "attn.qkv.b"], c["n_head"])
        x = x + F.linear(a, p[h + "attn.proj.w"], p[h + "attn.proj.b"])
        a = F.layer_norm(x, (d,), p[h + "ln2.w"], p[h + "ln2.b"], eps=1e-5)
        a = F.gelu(F.linear(a, p[h + "mlp.fc.w"], p[h + "mlp.fc.b"]), approximate="tanh")
        x = x + F.linear(a, p[h + "mlp.proj.w"], p[h + "mlp.proj.b"])
    x = F.layer_norm(x, (d,), p["gpt.ln_f.w"], p["gpt.ln_f.b"], eps=1e-5)
    logits_text = F.linear(x[:, :T], p["gpt.head_text.w"], p["gpt.head_text.b"])
    logits_image = F.linear(x[:, T:], p["gpt.head_image.w"], p["gpt.head_image.b"])
    ce_text = F.cross_entropy(logits_text.reshape(-1, c["text_vocab"]), text.reshape(-1),
                              ignore_index=c["pad_id"])
    ce_image = F.cross_entropy(logits_image.reshape(-1, c["image_vocab"]), image.reshape(-1))
    wt, wi = c["loss_w_text"], c["loss_w_image"]
    loss = (wt * ce_text + wi * ce_image) / (wt + wi)
    return loss, ce_text, ce_image, logits_text, logits_image


def lr_at(o, step):
    if step < o["warmup_steps"]:
        return o["lr"] * (step + 1) / o["warmup_steps"]
    span = o["total_steps"] - o["warmup_steps"]
    if span <= 0 or step >= o["total_steps"]:
        return o["lr_min"]
    progress = (step - o["warmup_steps"]) / span
    return o["lr_min"] + 0.5 * (o["lr"] - o["lr_min"]) * (1 + math.cos(math.pi * progress))


def train_step(write):
    c, o = CFG, OPT
    torch.manual_seed(30)
    weights = {}
    for name, shape in param_shapes(c):
        if name.endswith("ln1.w") or name.endswith("ln2.w") or name == "gpt.ln_f.w":
            weights[name] = 1 + 0.1 * torch.randn(shape)
        elif len(shape) == 1:
            weights[name] = 0.1 * torch.randn(shape)
        else:
            weights[name] = 0.3 * torch.randn(shape)
    B, T, G2 = 3, c["text_len"], c["grid"] ** 2
    pad, bos = c["pad_id"], c["bos_id"]
    text = torch.tensor([[5, 9, 3, pad],      # a caption shorter than T
                         [4, 4, 10, 7],       # a full one (with BOS's id 2 avoided)
                         [pad] * T])          # a null caption (caption dropout)
    image = torch.randint(0, c["image_vocab"], (B, G2))

    p = {k: v.double().requires_grad_(True) for k, v in weights.items()}
    loss, ce_text, ce_image, lt, li = forward(p, c, text, image)
    loss.backward()

    # clip_grad_norm_ + one AdamW step from the float32-rounded gradients
    q = {k: v.double().clone().requires_grad_(True) for k, v in weights.items()}
    for k in q:
        q[k].grad = p[k].grad.float().double()
    norm = torch.nn.utils.clip_grad_norm_(list(q.values()), o["grad_clip"])
    lr = lr_at(o, 0)
    groups = [{"params": [q[k] for k in q if decays(k)], "weight_decay": o["weight_decay"]},
              {"params": [q[k] for k in q if not decays(k)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    opt.step()
    print(f"    loss {loss.item():.6f} (text {ce_text.item():.6f}, image {ce_image.item():.6f}),"
          f" grad norm {norm.item():.4f} (clip {o['grad_clip']}), lr {lr}")

    cfg = torch.tensor([c["text_len"], c["text_vocab"], c["pad_id"], c["bos_id"], c["grid"],
                        c["image_vocab"], c["n_layer"], c["n_head"], c["n_embd"]])
    out = {"config": cfg,
           "loss_weights": torch.tensor([c["loss_w_text"], c["loss_w_image"]]),
           "opt": torch.tensor([o["lr"], o["lr_min"], o["warmup_steps"], o["total_steps"],
                                o["beta1"], o["beta2"], o["eps"], o["weight_decay"],
                                o["grad_clip"]], dtype=torch.float64),
           "lr_schedule": torch.tensor([lr_at(o, s) for s in range(12)], dtype=torch.float64),
           "text": text, "image": image,
           "loss": loss.reshape(1), "ce_text": ce_text.reshape(1),
           "ce_image": ce_image.reshape(1), "grad_norm": norm.reshape(1),
           "logits_text": lt, "logits_image": li}
    for k, v in weights.items():
        out[k] = v
    for k in weights:
        out["grad." + k] = p[k].grad
    for k in weights:
        out["after." + k] = q[k].detach()
    write("gpt_step", out)


def generate(write):
    train_step(write)
