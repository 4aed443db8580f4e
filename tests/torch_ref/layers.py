"""PyTorch parity of tern's fused attention (RoPE, GQA, causal, q_gain) and softcapped
cross-entropy: forward outputs and input/weight gradients within 1e-4 relative
(max |tern - torch| / max |torch|), the reference computed in float64."""
import numpy as np
import torch

from common import compare, finish, run_refdump

torch.manual_seed(0)
rng = np.random.default_rng(0)


def rotary(x, base):
    # x: [B, T, heads, D]; the parameter-golf half-split convention
    T, D = x.shape[1], x.shape[3]
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    t = torch.arange(T, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    cos = freqs.cos().double()[None, :, None, :]
    sin = freqs.sin().double()[None, :, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat((x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos), dim=-1)


def attention_ref(q, k, v, gain, use_rope, base):
    B, T, H, D = q.shape
    G = k.shape[2]
    if use_rope:
        q, k = rotary(q, base), rotary(k, base)
    q = q * gain[None, None, :, None]
    k = k.repeat_interleave(H // G, dim=2)
    v = v.repeat_interleave(H // G, dim=2)
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
    s = qh @ kh.transpose(-1, -2) / np.sqrt(D)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    s = s.masked_fill(~mask, float("-inf"))
    return (s.softmax(-1) @ vh).transpose(1, 2)


print("attention: tern vs torch (float64 reference)")
for (B, T, H, G, D, use_rope) in [(2, 33, 4, 2, 16, 1), (1, 300, 8, 4, 64, 1), (1, 1, 2, 1, 8, 1), (2, 17, 3, 3, 8, 0)]:
    q = rng.standard_normal((B, T, H, D)).astype(np.float32)
    k = rng.standard_normal((B, T, G, D)).astype(np.float32)
    v = rng.standard_normal((B, T, G, D)).astype(np.float32)
    gain = (1.5 + 0.1 * rng.standard_normal(H)).astype(np.float32)
    dout = rng.standard_normal((B, T, H, D)).astype(np.float32)
    out = run_refdump("attention", dict(q=q, k=k, v=v, q_gain=gain, dout=dout), dict(rope=use_rope, rope_base=10000.0))
    tq, tk, tv, tg = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (q, k, v, gain))
    y = attention_ref(tq, tk, tv, tg, use_rope, 10000.0)
    y.backward(torch.tensor(dout, dtype=torch.float64))
    tag = f"B{B} T{T} H{H} G{G} D{D}{' rope' if use_rope else ''}"
    # out is a convex combination of v's rows; every gradient is measured against the largest of
    # the backward pass (at T = 1, dq, dk and dq_gain are exactly 0: tern's are float32 rounding)
    grad_scale = max(np.max(np.abs(t.grad.numpy())) for t in (tq, tk, tv, tg))
    compare(f"out {tag}", out["out"], y.detach().numpy(), 1e-4, np.max(np.abs(v)))
    compare(f"dq {tag}", out["dq"], tq.grad.numpy(), 1e-4, grad_scale)
    compare(f"dk {tag}", out["dk"], tk.grad.numpy(), 1e-4, grad_scale)
    compare(f"dv {tag}", out["dv"], tv.grad.numpy(), 1e-4, grad_scale)
    compare(f"dq_gain {tag}", out["dq_gain"], tg.grad.numpy(), 1e-4, grad_scale)

print("cross-entropy (softcap, ignore_index): tern vs torch")
for (N, V, cap) in [(64, 1024, 30.0), (37, 50, 0.0), (1024, 1024, 30.0)]:
    logits = (rng.standard_normal((N, V)) * 8).astype(np.float32)
    targets = rng.integers(0, V, size=N)
    targets[3] = -100
    out = run_refdump("xent", dict(logits=logits, targets=targets.astype(np.float32)), dict(softcap=cap, ignore_index=-100))
    tl = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    z = cap * torch.tanh(tl / cap) if cap > 0 else tl
    tt = torch.tensor(targets)
    loss = torch.nn.functional.cross_entropy(z, tt, ignore_index=-100)
    per = torch.nn.functional.cross_entropy(z.detach(), tt, ignore_index=-100, reduction="none")
    loss.backward()
    tag = f"N{N} V{V} cap{cap:g}"
    # losses in nats (floor 1); a row of d(mean loss)/dlogits is (softmax - onehot) / N_valid
    row_scale = 1.0 / (targets != -100).sum()
    compare(f"loss {tag}", out["loss"], loss.detach().numpy(), 1e-5, 1.0)
    compare(f"per-token {tag}", out["per_token"], per.numpy(), 1e-5, 1.0)
    compare(f"dlogits {tag}", out["dlogits"], tl.grad.numpy(), 1e-4, row_scale)

print("distillation (top-k KL + tail class, temperature, softcap, label mix): tern vs torch autograd")
for (N, V, k, T, alpha, cap) in [(64, 1024, 32, 1.0, 0.5, 30.0), (37, 50, 5, 2.0, 0.8, 0.0), (16, 64, 64, 1.5, 1.0, 0.0), (8, 100, 1, 1.0, 0.3, 10.0)]:
    logits = (rng.standard_normal((N, V)) * 4).astype(np.float32)
    targets = rng.integers(0, V, size=N)
    teacher = torch.tensor(rng.standard_normal((N, V)) * 3, dtype=torch.float64) / T  # already divided by T
    tval, tidx = torch.topk(teacher, k, dim=1)
    tlse = torch.logsumexp(teacher, dim=1)
    out = run_refdump("distill", dict(logits=logits, targets=targets.astype(np.float32), tidx=tidx.numpy().astype(np.float32),
                                      tval=tval.numpy().astype(np.float32), tlse=tlse.numpy().astype(np.float32)),
                      dict(softcap=cap, temperature=T, alpha=alpha))
    tl = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    z = cap * torch.tanh(tl / cap) if cap > 0 else tl
    logq = torch.log_softmax(z / T, dim=1)
    lp = torch.tensor(tval.numpy().astype(np.float32), dtype=torch.float64) - torch.tensor(tlse.numpy().astype(np.float32), dtype=torch.float64)[:, None]
    p = lp.exp()
    logq_s = torch.gather(logq, 1, tidx)
    soft = (p * (lp - logq_s)).sum(1)
    if k < V:  # the tail class: teacher mass m, student mass Q outside the top-k
        m = (1 - p.sum(1)).clamp_min(0)
        Q = 1 - logq_s.exp().sum(1)
        soft = soft + torch.where(m > 0, m * (torch.log(m.clamp_min(1e-300)) - torch.log(Q)), torch.zeros_like(m))
    per = alpha * T * T * soft + (1 - alpha) * torch.nn.functional.cross_entropy(z, torch.tensor(targets), reduction="none")
    loss = per.mean()
    loss.backward()
    tag = f"N{N} V{V} k{k} T{T:g} a{alpha:g} cap{cap:g}"
    compare(f"loss {tag}", out["loss"], loss.detach().numpy(), 1e-5, 1.0)
    compare(f"per-token {tag}", out["per_token"], per.detach().numpy(), 1e-5, 1.0)
    compare(f"dlogits {tag}", out["dlogits"], tl.grad.numpy(), 1e-4, 1.0 / N)

print("quantizers: tern vs the parameter-golf int5 / BitNet ternary definitions in torch")


def int_quant_ref(w, bits, q):
    # parameter-golf _int5_fake_quantize / quantize_float_tensor, generalised to N bits
    qmax = 2 ** (bits - 1) - 1
    clip = torch.quantile(w.abs(), q, dim=1).clamp_min(1e-8)
    scale = clip / qmax
    codes = torch.clamp(torch.round(torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None]) / scale[:, None]), -qmax, qmax)
    return codes, scale, codes * scale[:, None]


for (rows, cols, bits) in [(64, 512, 5), (33, 1024, 6), (16, 100, 8), (8, 2048, 4)]:
    w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    w[3, 7] = 0.9  # an outlier the clip must handle
    out = run_refdump("quant", dict(w=w), dict(kind=1, bits=bits, quantile=0.9999984))
    c, s, f = int_quant_ref(torch.tensor(w), bits, 0.9999984)
    tag = f"int{bits} {rows}x{cols}"
    # floors: the smallest scale the quantizer makes (its clip is clamped at 1e-8)
    qfloor = 1e-8 / (2 ** (bits - 1) - 1)
    compare(f"{tag} scales", out["scales"], s.numpy(), 1e-6, qfloor)
    mism = int((out["codes"] != c.numpy()).sum())
    print(f"  {tag} codes: {mism} of {w.size} differ  {'ok' if mism == 0 else 'FAIL'}")
    if mism:
        import common
        common.failures += 1
    compare(f"{tag} dequantized", out["fake"], f.numpy(), 1e-6, qfloor)
for (rows, cols, group) in [(16, 256, 128), (7, 300, 64), (5, 64, 0)]:
    w = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    out = run_refdump("quant", dict(w=w), dict(kind=2, group=group))
    tw = torch.tensor(w)
    if group:
        g = tw.reshape(rows, -1, group) if cols % group == 0 else None
    # BitNet b1.58 weight_quant: scale = mean|w| (clamp 1e-5), round-clip to {-1, 0, 1}
    ref = np.empty_like(w)
    for r in range(rows):
        for c0 in range(0, cols, group or cols * rows):
            blk = tw[r, c0:c0 + group] if group else tw.reshape(-1)
            sc = blk.abs().mean().clamp(min=1e-5)
            qv = (blk / sc).round().clamp(-1, 1) * sc
            if group:
                ref[r, c0:c0 + group] = qv.numpy()
            else:
                ref = qv.reshape(rows, cols).numpy()
        if not group:
            break
    compare(f"ternary G{group} {rows}x{cols} dequantized", out["fake"], ref, 1e-6, 1e-5)  # BitNet's scale clamp
w = np.concatenate([rng.standard_normal(4000) * s for s in (1e-7, 1e-3, 1.0, 300.0, 7e4)]).astype(np.float32).reshape(20, 1000)
out = run_refdump("quant", dict(w=w), dict(kind=1, bits=8))
with np.errstate(over='ignore'):
    half = w.astype(np.float16).astype(np.float32)
mism = int((out["half"] != half).sum())
print(f"  fp16 conversion (incl. subnormals, overflow): {mism} of {w.size} differ from numpy  {'ok' if mism == 0 else 'FAIL'}")
if mism:
    import common
    common.failures += 1

finish("torch_layers")
