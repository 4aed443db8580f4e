"""A PyTorch twin of tern's MoE channel mixer (the moe block kind), written from DeepSeek-V3's
equations (arXiv 2412.19437, §2.1.2; the auxiliary-loss-free bias of arXiv 2408.15664):

  s = sigmoid(h W_r^T)                                   affinities [N, E]
  sel = TopK_e(s + b, K)                                 the bias b picks experts only
  w = route_scale * s_sel / sum(s_sel)
  y = sum_k w_k FFN_{sel_k}(h) + sum_j FFN_shared_j(h),  FFN(x) = down(silu(gate) * up), [gate | up] = gate_up(x)

Dense and token-parallel: every expert runs on the tokens routed to it through boolean masks,
with no sorting (an independent way to the same function as tern's counting-sort dispatch).
Autograd gives the gradients; the top-k indices carry none. Parameter names match tern's with an
empty layer prefix ("moe.router.weight", "moe.experts.3.gate_up.weight", "moe.shared.0.down.weight");
the bias is a buffer, "moe.bias"."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)  # gate rows first
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        g, u = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(g) * u)


class MoE(nn.Module):
    def __init__(self, dim, experts, shared, topk, hidden, route_scale):
        super().__init__()
        self.router = nn.Linear(dim, experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(dim, hidden) for _ in range(experts))
        self.shared = nn.ModuleList(SwiGLU(dim, hidden) for _ in range(shared))
        self.register_buffer("bias", torch.zeros(experts))
        self.topk, self.route_scale = topk, route_scale

    def route(self, x):
        """sel [N, K] (best first), gate weights w [N, K], affinities s [N, E]."""
        s = torch.sigmoid(self.router(x))
        sel = torch.topk(s.detach() + self.bias, self.topk, dim=-1).indices
        ss = s.gather(1, sel)
        return sel, ss / ss.sum(-1, keepdim=True) * self.route_scale, s

    def forward(self, h):
        x = h.reshape(-1, h.shape[-1])
        sel, w, _ = self.route(x)
        y = torch.zeros_like(x)
        for e, ffn in enumerate(self.experts):
            hit = sel == e  # [N, K]: each token at most once
            rows = hit.any(-1)
            if rows.any():
                we = (w * hit).sum(-1)[rows]
                y = y.index_add(0, rows.nonzero().squeeze(1), we[:, None] * ffn(x[rows]))
        for ffn in self.shared:
            y = y + ffn(x)
        return y.reshape(h.shape)


class Layer(nn.Module):
    """The kind under its tern prefix: named parameters "moe.*"."""

    def __init__(self, **kw):
        super().__init__()
        self.moe = MoE(**kw)

    def forward(self, h):
        return self.moe(h)
