"""A PyTorch twin of tern's mlstm block, written from the xLSTM paper (Beck et al. 2024, arXiv
2405.04517: §2.3 the mLSTM, eqs. 16-27; appendix, the stabilised form; Fig. 10 the mLSTM block) for
Debian's torch 1.13. It runs the naive per-token recurrence in the paper's own convention
(C_t = f_t C_{t-1} + i_t v_t k_t^T with C [value, key], h~_t = C_t q_t / max(|n_t^T q_t|, 1)),
stabilised by m_t as in the appendix, and takes every gradient from autograd. The rest of the block
uses torch's own functions (conv1d with groups, group_norm, silu), so no line is shared with tern.

Used by tests/torch_ref/mlstm.py (parity) and experiments/bench/torch_mlstm.py (the speed peer has
its own chunked form)."""
import math

import torch
import torch.nn.functional as F

EPS = 1e-6  # added in the true (unstabilised) units, as tern's kernels/mlstm_math.h


def mlstm_cell_recurrent(q, k, v, ig, fg, exp_forget=False):
    """q, k, v [B, T, H, D]; ig, fg [B, T, H] -> h~ [B, T, H, D]. Naive stabilised recurrence."""
    B, T, H, D = q.shape
    k = k / math.sqrt(D)
    C = q.new_zeros(B, H, D, D)   # [value, key]
    n = q.new_zeros(B, H, D)
    m = q.new_full((B, H), -math.inf)  # the empty state weighs nothing (the first token sets m = ig)
    out = []
    for t in range(T):
        lf = fg[:, t] if exp_forget else F.logsigmoid(fg[:, t])
        m_new = torch.maximum(lf + m, ig[:, t])
        fp = torch.exp(lf + m - m_new)
        ip = torch.exp(ig[:, t] - m_new)
        C = fp[..., None, None] * C + ip[..., None, None] * torch.einsum("bhv,bhk->bhvk", v[:, t], k[:, t])
        n = fp[..., None] * n + ip[..., None] * k[:, t]
        num = torch.einsum("bhvk,bhk->bhv", C, q[:, t])
        nq = torch.einsum("bhk,bhk->bh", n, q[:, t])
        e = torch.exp(-m_new)
        den = torch.maximum(nq.abs(), e) + EPS * e
        out.append(num / den[..., None])
        m = m_new
    return torch.stack(out, dim=1)


def headwise(x, w, bs):
    """xLSTM's LinearHeadwiseExpand: x [B, T, I], w [I, bs] (rows = outputs of each block)."""
    B, T, I = x.shape
    xb = x.reshape(B, T, I // bs, bs)
    wb = w.reshape(I // bs, bs, bs)  # [block, out, in]
    return torch.einsum("btgi,goi->btgo", xb, wb).reshape(B, T, I)


def mlstm_block(x, p, cfg, cell=mlstm_cell_recurrent):
    """The mLSTM block (xLSTM Fig. 10, pre-up-projection): x [B, T, C]; p: tensors by tern's names
    without the 'blocks.0.mlstm.' prefix; cfg: head_dim, qkv_block, conv, exp_forget, norm_eps."""
    B, T, _ = x.shape
    D, bs, K = cfg["head_dim"], cfg["qkv_block"], cfg["conv"]
    I = p["norm.weight"].numel()
    H = I // D
    up = x @ p["proj_up.weight"].t()
    xm, z = up[..., :I], up[..., I:]
    conv = F.conv1d(F.pad(xm.transpose(1, 2), (K - 1, 0)), p["conv.weight"][:, None, :], p["conv.bias"], groups=I)
    xc = F.silu(conv.transpose(1, 2))
    q, k, v = headwise(xc, p["q.weight"], bs), headwise(xc, p["k.weight"], bs), headwise(xm, p["v.weight"], bs)
    gates = torch.cat([q, k, v], dim=-1) @ p["gates.weight"].t() + p["gates.bias"]
    ig, fg = gates[..., :H], gates[..., H:]
    split = lambda t: t.reshape(B, T, H, D)  # noqa: E731
    h = cell(split(q), split(k), split(v), ig, fg, cfg["exp_forget"])
    hn = F.group_norm(h.reshape(B * T, I), H, eps=cfg["norm_eps"]).reshape(B, T, I) * p["norm.weight"]
    out = (hn + p["skip"] * xc) * F.silu(z)
    return out @ p["proj_down.weight"].t()
