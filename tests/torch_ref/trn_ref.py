"""A PyTorch twin of tern's TRN hybrid (openai/parameter-golf PR #669: TemporalResonanceLayer,
TRNBlock, BigramHashEmbedding, HybridGPT), float32, for Debian's torch 1.13. It follows the PR's
own order of operations (erase in the rotating frame, state norm, then demodulation; Kogge-Stone
scan) rather than tern's fused rewrite, so the parity test checks that rewrite too. Parameter
names match tern's (model/trn.h); scalars are [1]-shaped as in tern.

Used by tests/torch_ref/trn.py (parity) and experiments/bench/torch_trn.py (speed)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt_ref import Block, rms_norm

DEFAULTS = dict(arch="trn_hybrid", layout="TTATTATTAT", vocab_size=1024, dim=512, heads=8, kv_heads=4,
                mlp_mult=2, mlp_hidden=0, swiglu_hidden=0, seq_len=1024, mlp_act="leaky_relu2",
                oscillators=256, amp_max=3.0, res_warmup=2000, token_shift=True, bigram_rows=10240,
                bigram_dim=128, softcap=30.0, rope_base=10000.0, tie_embeddings=True, skips=True)


def kogge_stone_scan(a, b):
    """h_t = a_t h_{t-1} + b_t along dim 1 in ceil(log2 T) passes (the PR's GPU path)."""
    T = a.shape[1]
    d = 1
    while d < T:
        b_prev = F.pad(b[:, : T - d], (0, 0, d, 0), value=0.0)
        a_prev = F.pad(a[:, : T - d], (0, 0, d, 0), value=1.0)
        b = b + a * b_prev
        a = a * a_prev
        d *= 2
    return b


def loop_scan(a, b):
    """The same recurrence as a plain loop (a second, independent form for checks)."""
    h, out = torch.zeros_like(b[:, 0]), []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def smoothstep_warm(forwards, warmup):
    if warmup <= 0:
        return 1.0
    s = min(forwards / warmup, 1.0)
    return s * s * (3.0 - 2.0 * s)


class OscillatorProjection(nn.Module):
    def __init__(self, d, K):
        super().__init__()
        self.proj = nn.Linear(d, 6 * K)
        self.omega_base = nn.Parameter(torch.zeros(K))


class Resonance(nn.Module):
    def __init__(self, d, K, amp_max, scan=kogge_stone_scan):
        super().__init__()
        self.K, self.amp_max, self.scan = K, amp_max, scan
        self.proj = OscillatorProjection(d, K)
        self.W_res = nn.Linear(4 * K - 2, d, bias=False)
        self.W_phase = nn.Linear(d, K)
        self.lambda_pcg = nn.Parameter(torch.ones(1))
        self.res_scale = nn.Parameter(torch.ones(1))

    def forward(self, x, warm):
        T = x.shape[1]
        a, o, p, g, q, e = self.proj.proj(x).chunk(6, dim=-1)
        A = F.softplus(a).clamp(max=self.amp_max)
        omega = (torch.sigmoid(o) * math.pi + self.proj.omega_base).clamp(min=1e-4, max=math.pi - 1e-4)
        phi = torch.tanh(p) * math.pi
        alpha, g_out, beta = torch.sigmoid(g), torch.sigmoid(q), torch.sigmoid(e)
        pos = torch.log1p(torch.arange(T, dtype=torch.float32)).view(1, T, 1)
        theta = omega * pos + phi
        c, s = torch.cos(theta), torch.sin(theta)
        drive = (1.0 - alpha) * A
        r_re, r_im = self.scan(alpha, drive * c), self.scan(alpha, drive * s)
        # erase along the current phase, on the output copy only
        q_t = r_re * c + r_im * s
        r_re, r_im = r_re - beta * q_t * c, r_im - beta * q_t * s
        # state norm
        m = (r_re.pow(2) + r_im.pow(2) + 1e-8).sqrt().clamp(min=1.0)
        r_re, r_im = r_re / m, r_im / m
        # demodulate
        rho_re, rho_im = r_re * c + r_im * s, -r_re * s + r_im * c
        # phase-coupled gate
        n = (rho_re.pow(2) + rho_im.pow(2) + 1e-6).sqrt()
        psi = self.W_phase(x)
        gate = torch.sigmoid(self.lambda_pcg * (rho_re / n * torch.cos(psi) + rho_im / n * torch.sin(psi)))
        rho_re, rho_im = gate * rho_re, gate * rho_im
        # cross products of neighbouring oscillators
        x_re = rho_re[..., :-1] * rho_re[..., 1:] - rho_im[..., :-1] * rho_im[..., 1:]
        x_im = rho_re[..., :-1] * rho_im[..., 1:] + rho_im[..., :-1] * rho_re[..., 1:]
        g_bar = (g_out[..., :-1] + g_out[..., 1:]) / 2.0
        feats = torch.cat([g_out * rho_re, g_out * rho_im, g_bar * x_re, g_bar * x_im], dim=-1)
        return (self.res_scale * warm) * self.W_res(feats)


class TRNBlock(nn.Module):
    def __init__(self, c, swiglu_hidden, scan):
        super().__init__()
        C = c["dim"]
        self.hidden = swiglu_hidden
        self.attn_scale = nn.Parameter(torch.ones(C))
        self.mlp_scale = nn.Parameter(torch.ones(C))
        self.resid_mix = nn.Parameter(torch.ones(2, C))
        self.token_shift_mu = nn.Parameter(torch.zeros(C)) if c["token_shift"] else None
        self.resonance = Resonance(C, c["oscillators"], c["amp_max"], scan)
        self.gate_up = nn.Linear(C, 2 * swiglu_hidden, bias=False)
        self.down = nn.Linear(swiglu_hidden, C, bias=False)

    def forward(self, x, x0, warm):
        x = self.resid_mix[0] * x + self.resid_mix[1] * x0
        h = rms_norm(x)
        if self.token_shift_mu is not None:
            mu = torch.sigmoid(self.token_shift_mu)
            h = torch.cat([h[:, :1], mu * h[:, 1:] + (1.0 - mu) * h[:, :-1]], dim=1)
        x = x + self.attn_scale * self.resonance(h, warm)
        gate, up = self.gate_up(rms_norm(x)).split(self.hidden, dim=-1)
        return x + self.mlp_scale * self.down(F.silu(gate) * up)


class BigramHash(nn.Module):
    def __init__(self, rows, dim, model_dim):
        super().__init__()
        self.rows = rows
        self.embed = nn.Embedding(rows, dim)
        self.proj = nn.Linear(dim, model_dim, bias=False)
        self.scale = nn.Parameter(torch.ones(1))

    def hash(self, tok):
        t = tok.to(torch.int32)
        mod = self.rows - 1
        out = torch.empty_like(t)
        out[..., 0] = mod
        out[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % mod
        return out.long()

    def forward(self, tok):
        return self.proj(self.embed(self.hash(tok))) * self.scale


class TRNHybrid(nn.Module):
    def __init__(self, c, scan=kogge_stone_scan):
        super().__init__()
        c = dict(DEFAULTS, **c)
        self.c = c
        L, C, V = len(c["layout"]), c["dim"], c["vocab_size"]
        mlp_hidden = c["mlp_hidden"] or c["mlp_mult"] * C
        swiglu_hidden = c["swiglu_hidden"] or (int(2 / 3 * c["mlp_mult"] * C) + 255) // 256 * 256
        self.tok_emb = nn.Embedding(V, C)
        if c["bigram_rows"]:
            self.bigram = BigramHash(c["bigram_rows"], c["bigram_dim"], C)
        self.nenc, self.ndec = L // 2, L - L // 2
        if c["skips"] and min(self.nenc, self.ndec):
            self.skip_weights = nn.Parameter(torch.ones(min(self.nenc, self.ndec), C))
        attn_cfg = dict(dim=C, heads=c["heads"], kv_heads=c["kv_heads"], mlp_hidden=mlp_hidden, mlp_mult=c["mlp_mult"],
                        mlp_act=c["mlp_act"], rope_base=c["rope_base"])
        self.blocks = nn.ModuleList([Block(attn_cfg) if ch == "A" else TRNBlock(c, swiglu_hidden, scan) for ch in c["layout"]])
        if not c["tie_embeddings"]:
            self.lm_head = nn.Linear(C, V, bias=False)
        self.train_forwards = 0

    def logits(self, idx, warm=1.0):
        c = self.c
        x = self.tok_emb(idx)
        if c["bigram_rows"]:
            x = x + self.bigram(idx)
        x = rms_norm(x)
        x0, skips = x, []
        for i, b in enumerate(self.blocks):
            if i >= self.nenc and skips:
                x = x + self.skip_weights[i - self.nenc] * skips.pop()
            x = b(x, x0) if isinstance(b, Block) else b(x, x0, warm)
            if i < self.nenc and c["skips"]:
                skips.append(x)
        x = rms_norm(x).reshape(-1, x.shape[-1])
        z = F.linear(x, self.tok_emb.weight if c["tie_embeddings"] else self.lm_head.weight)
        if c["softcap"] > 0:
            z = c["softcap"] * torch.tanh(z / c["softcap"])
        return z

    def forward(self, idx, y, training=True):
        """Mean cross-entropy; a training forward advances the readout warm-up counter first."""
        warm = 1.0
        if training:
            self.train_forwards += 1
            warm = smoothstep_warm(self.train_forwards, self.c["res_warmup"])
        return F.cross_entropy(self.logits(idx, warm), y.reshape(-1))
