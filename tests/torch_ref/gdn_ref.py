"""A PyTorch twin of tern's Gated DeltaNet layer (the gdn block kind), written from the paper's
equations (Yang, Kautz, Hatamizadeh 2024, "Gated Delta Networks", arXiv 2412.06464, eq. for the
gated delta rule; the layer around it as fla-org/flash-linear-attention fla/layers/gated_deltanet.py):

  q, k, v = silu(causal depthwise conv(h W)),  q <- q / |q| d_k^-1/2,  k <- k / |k|  (per head)
  alpha = exp(-exp(A_log) softplus(h W_a + dt_bias)),  beta = sigmoid(h W_b)
  S_t = S_{t-1} (alpha_t (I - beta_t k_t k_t^T)) + beta_t v_t k_t^T,   o_t = S_t q_t   (S: d_v x d_k)
  y = (rmsnorm(o) * w * silu(h W_g)) W_o    per head

Two forms of the recurrence: `recurrent_gated_delta` is the equation above token by token (the
reference; autograd gives its gradients), `chunk_gated_delta` is the chunkwise WY / UT form in
batched matmuls (the fastest pure-PyTorch form we know; experiments/bench/torch_gdn.py's peer).
Parameter names match tern's ("gdn.q_proj.weight", ...); the convolution weights are torch's
[D, 1, K] where tern stores [D, K]."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def recurrent_gated_delta(q, k, v, g, beta):
    """q, k [B, T, H, dk], v [B, T, H, dv], g (log alpha), beta [B, T, H] -> o [B, T, H, dv]."""
    B, T, H, dk = q.shape
    S = q.new_zeros(B, H, v.shape[-1], dk)
    eye = torch.eye(dk, dtype=q.dtype)
    out = []
    for t in range(T):
        kt, a, b = k[:, t], torch.exp(g[:, t])[..., None, None], beta[:, t][..., None, None]
        S = S @ (a * (eye - b * kt[..., :, None] @ kt[..., None, :])) + b * v[:, t][..., :, None] @ kt[..., None, :]
        out.append((S @ q[:, t][..., None]).squeeze(-1))
    return torch.stack(out, 1)


def chunk_gated_delta(q, k, v, g, beta, chunk=64):
    """The same map in chunks of `chunk` tokens: inside a chunk, with gamma = cumsum(g),
    A = tril_{-1}(beta_i k_i.k_j e^{gamma_i - gamma_j}), T = (I + A)^-1, W = T diag(beta e^gamma) K,
    U = T diag(beta) V; then per chunk u = U - W S, o = diag(e^gamma) Q S + (Q K^T (.) Gamma) u,
    S <- e^{gamma_L} S + (diag(e^{gamma_L - gamma}) K)^T u  (S: dk x dv here). Everything but the
    last loop is batched over (batch, head, chunk); T by unit_lower_inverse."""
    B, T, H, dk = q.shape
    dv = v.shape[-1]
    L = min(chunk, T)
    pad = (-T) % L
    tr = lambda x: x.transpose(1, 2)  # [B, H, T, ...]
    q, k, v, g, beta = tr(q), tr(k), tr(v), tr(g), tr(beta)
    if pad:  # zero keys, values, strengths and decays leave the state alone; their outputs are cut
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        g, beta = F.pad(g, (0, pad)), F.pad(beta, (0, pad))
    N = (T + pad) // L
    q, k, v = (x.reshape(B, H, N, L, -1) for x in (q, k, v))
    g, beta = g.reshape(B, H, N, L), beta.reshape(B, H, N, L)
    gam = g.cumsum(-1)
    incl = torch.tril(torch.ones(L, L, dtype=torch.bool))
    E = torch.exp((gam[..., :, None] - gam[..., None, :]).masked_fill(~incl, -math.inf))
    A = (k @ k.transpose(-1, -2)) * E * beta[..., :, None]
    A = A.masked_fill(incl.logical_not().logical_or(torch.eye(L, dtype=torch.bool)), 0.0)
    Tm = unit_lower_inverse(A)
    W = Tm @ (k * (beta * gam.exp())[..., None])
    U = Tm @ (v * beta[..., None])
    P = (q @ k.transpose(-1, -2)) * E
    qe = q * gam.exp()[..., None]
    kd = k * (gam[..., -1:] - gam).exp()[..., None]
    S = q.new_zeros(B, H, dk, dv)
    out = []
    # unbind once: indexing inside the loop would make autograd scatter each slice's gradient into
    # a zeroed full-size tensor (N times per tensor)
    Us, Ws, qes, Ps, kdts = U.unbind(2), W.unbind(2), qe.unbind(2), P.unbind(2), kd.transpose(-1, -2).unbind(2)
    decay = gam[..., -1].exp()[..., None, None].unbind(2)
    for n in range(N):
        u = Us[n] - Ws[n] @ S
        out.append(qes[n] @ S + Ps[n] @ u)
        S = S * decay[n] + kdts[n] @ u
    o = torch.stack(out, 2).reshape(B, H, N * L, dv)[:, :, :T]
    return o.transpose(1, 2)


def unit_lower_inverse(A):
    """(I + A)^-1 for strictly lower triangular A [..., L, L]: A^L = 0, so the inverse is the
    finite series sum_k (-A)^k = (I - A)(I + A^2)(I + A^4) ... -- ceil(log2 L) batched squarings and
    products, where torch 1.13's batched solve_triangular loops over the matrices one by one."""
    L = A.shape[-1]
    N = -A
    Tm = torch.eye(L, dtype=A.dtype) + N
    for _ in range(max(math.ceil(math.log2(L)) - 1, 0)):
        N = N @ N
        Tm = Tm + Tm @ N
    return Tm


def causal_conv(x, w):
    """silu(depthwise causal conv1d) over [B, T, D] with w [D, 1, K] (fla's ShortConvolution)."""
    K = w.shape[-1]
    y = F.conv1d(x.transpose(1, 2), w, padding=K - 1, groups=x.shape[-1])[..., : x.shape[1]]
    return F.silu(y.transpose(1, 2))


class GainOnly(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))


class GatedDeltaNet(nn.Module):
    def __init__(self, dim, heads, dk, dv, conv=4, norm_eps=1e-5, core="recurrent", chunk=64):
        super().__init__()
        self.H, self.dk, self.dv, self.conv, self.eps, self.core, self.chunk = heads, dk, dv, conv, norm_eps, core, chunk
        KD, VD = heads * dk, heads * dv
        self.q_proj = nn.Linear(dim, KD, bias=False)
        self.k_proj = nn.Linear(dim, KD, bias=False)
        self.v_proj = nn.Linear(dim, VD, bias=False)
        self.a_proj = nn.Linear(dim, heads, bias=False)
        self.b_proj = nn.Linear(dim, heads, bias=False)
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.dt_bias = nn.Parameter(torch.zeros(heads))
        if conv:
            self.q_conv1d = nn.Conv1d(KD, KD, conv, groups=KD, bias=False)
            self.k_conv1d = nn.Conv1d(KD, KD, conv, groups=KD, bias=False)
            self.v_conv1d = nn.Conv1d(VD, VD, conv, groups=VD, bias=False)
        self.g_proj = nn.Linear(dim, VD, bias=False)
        self.o_norm = GainOnly(dv)
        self.o_proj = nn.Linear(VD, dim, bias=False)

    def forward(self, h):
        B, T, _ = h.shape
        H, dk, dv = self.H, self.dk, self.dv
        if self.conv:
            q = causal_conv(self.q_proj(h), self.q_conv1d.weight)
            k = causal_conv(self.k_proj(h), self.k_conv1d.weight)
            v = causal_conv(self.v_proj(h), self.v_conv1d.weight)
        else:
            q, k, v = F.silu(self.q_proj(h)), F.silu(self.k_proj(h)), F.silu(self.v_proj(h))
        q, k, v = q.view(B, T, H, dk), k.view(B, T, H, dk), v.view(B, T, H, dv)
        q = q / torch.sqrt((q * q).sum(-1, keepdim=True) + 1e-6) * dk ** -0.5
        k = k / torch.sqrt((k * k).sum(-1, keepdim=True) + 1e-6)
        g = -self.A_log.exp() * F.softplus(self.a_proj(h) + self.dt_bias)
        beta = torch.sigmoid(self.b_proj(h))
        if self.core == "recurrent":
            o = recurrent_gated_delta(q, k, v, g, beta)
        else:
            o = chunk_gated_delta(q, k, v, g, beta, self.chunk)
        o = o * torch.rsqrt((o * o).mean(-1, keepdim=True) + self.eps) * self.o_norm.weight
        o = o * F.silu(self.g_proj(h).view(B, T, H, dv))
        return self.o_proj(o.reshape(B, T, H * dv))


class Block(nn.Module):
    """tern's parameter names: gdn.<...> (the kind's prefix inside a layer)."""

    def __init__(self, **kw):
        super().__init__()
        self.gdn = GatedDeltaNet(**kw)

    def forward(self, h):
        return self.gdn(h)
