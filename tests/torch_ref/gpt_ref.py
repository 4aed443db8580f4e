"""A PyTorch twin of tern's baseline GPT (openai/parameter-golf train_gpt.py), float32, written
for Debian's torch 1.13: rms_norm and grouped-query attention are spelled out because 1.13 has
neither F.rms_norm nor F.scaled_dot_product_attention. Parameter names match tern's."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = torch.finfo(torch.float32).eps


def rms_norm(x, eps=EPS):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotary(x, base):  # x [B, T, H, D]
    T, D = x.shape[1], x.shape[3]
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos, sin = freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat((x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos), dim=-1)


def causal_attention(q, k, v):  # [B, T, H, D], [B, T, G, D]
    H, G, D = q.shape[2], k.shape[2], q.shape[3]
    k = k.repeat_interleave(H // G, dim=2)
    v = v.repeat_interleave(H // G, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    T = q.shape[2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, H, G = c["dim"], c["heads"], c["kv_heads"]
        D = C // H
        hidden = c.get("mlp_hidden") or c["mlp_mult"] * C
        self.c, self.H, self.G, self.D = c, H, G, D
        self.attn = nn.Module()
        self.attn.c_q = nn.Linear(C, C, bias=False)
        self.attn.c_k = nn.Linear(C, G * D, bias=False)
        self.attn.c_v = nn.Linear(C, G * D, bias=False)
        self.attn.proj = nn.Linear(C, C, bias=False)
        self.attn.q_gain = nn.Parameter(torch.ones(H))
        self.attn_scale = nn.Parameter(torch.ones(C))
        self.mlp_scale = nn.Parameter(torch.ones(C))
        self.resid_mix = nn.Parameter(torch.ones(2, C))
        self.mlp = nn.Module()
        swiglu = c["mlp_act"] == "swiglu"
        self.mlp.fc = nn.Linear(C, 2 * hidden if swiglu else hidden, bias=False)
        self.mlp.proj = nn.Linear(hidden, C, bias=False)

    def forward(self, x, x0):
        c, B, T = self.c, x.shape[0], x.shape[1]
        x = self.resid_mix[0] * x + self.resid_mix[1] * x0
        h = rms_norm(x)
        q = self.attn.c_q(h).reshape(B, T, self.H, self.D)
        k = self.attn.c_k(h).reshape(B, T, self.G, self.D)
        v = self.attn.c_v(h).reshape(B, T, self.G, self.D)
        q, k = rms_norm(q), rms_norm(k)
        q, k = rotary(q, c["rope_base"]), rotary(k, c["rope_base"])
        q = q * self.attn.q_gain[None, None, :, None]
        y = causal_attention(q, k, v).reshape(B, T, -1)
        x = x + self.attn_scale * self.attn.proj(y)
        m = self.mlp.fc(rms_norm(x))
        act = c["mlp_act"]
        if act == "relu2":
            m = torch.relu(m).square()
        elif act == "leaky_relu2":
            m = F.leaky_relu(m, 0.5).square()
        else:
            g, u = m.chunk(2, dim=-1)
            m = F.silu(g) * u
        return x + self.mlp_scale * self.mlp.proj(m)


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        L, C, V = c["layers"], c["dim"], c["vocab_size"]
        self.tok_emb = nn.Embedding(V, C)
        self.nenc, self.ndec = L // 2, L - L // 2
        if c["skips"]:
            self.skip_weights = nn.Parameter(torch.ones(min(self.nenc, self.ndec), C))
        self.blocks = nn.ModuleList([Block(c) for _ in range(L)])
        if not c["tie_embeddings"]:
            self.lm_head = nn.Linear(C, V, bias=False)

    def forward(self, x, y):
        c = self.c
        h = rms_norm(self.tok_emb(x))
        x0, skips = h, []
        for i in range(self.nenc):
            h = self.blocks[i](h, x0)
            if c["skips"]:
                skips.append(h)
        for i in range(self.ndec):
            if skips:
                h = h + self.skip_weights[i] * skips.pop()
            h = self.blocks[self.nenc + i](h, x0)
        h = rms_norm(h).reshape(-1, h.shape[-1])
        z = F.linear(h, self.tok_emb.weight if c["tie_embeddings"] else self.lm_head.weight)
        if c["softcap"] > 0:
            z = c["softcap"] * torch.tanh(z / c["softcap"])
        return F.cross_entropy(z, y.reshape(-1))


def newton_schulz(G, steps):
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G / (G.norm() + 1e-7)
    tr = G.shape[0] > G.shape[1]
    if tr:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if tr else X


class Muon:
    """The parameter-golf Muon (sum-form momentum, Nesterov, NS5, sqrt(max(1, rows/cols)) scale,
    momentum warm-up) in float32, plus decoupled weight decay."""

    def __init__(self, params, lr, momentum, warm_start, warm_steps, ns_steps, wd=0.0):
        self.params, self.lr, self.mom, self.ws, self.wsteps, self.ns, self.wd = params, lr, momentum, warm_start, warm_steps, ns_steps, wd
        self.bufs = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        frac = min(self.t / self.wsteps, 1.0) if self.wsteps else 1.0
        mu = (1 - frac) * self.ws + frac * self.mom
        for p, buf in zip(self.params, self.bufs):
            g = p.grad
            buf.mul_(mu).add_(g)
            u = g + mu * buf
            o = newton_schulz(u, self.ns) * max(1.0, p.shape[0] / p.shape[1]) ** 0.5
            p.mul_(1 - self.lr * self.wd)
            p.add_(o, alpha=-self.lr)
        self.t += 1
