"""Reference Hybrid-GRU stacks (tern's arch hgru / hgru_engine) written from the formulas, for
tests/torch_ref/gru.py. The `torch` GRU cell is torch.nn.GRU itself (weights copied in); the
engine's cell (sumithkumar07/Hybrid-GRU) and the MLGRU (HGRN-Bit, ridgerchu/matmulfreellm) are
written out step by step, so autograd supplies every gradient in float64.

Trunk (model/stack.c with the hgru presets' scaffold: no resid_mix, branch scales or skips):
  x = tok_emb[idx] [emb_norm: rmsnorm];  layer i: x += mixer(rmsnorm(x) [* gain]) -- or, for a
  first layer under a narrower embedding, x = mixer(x) --;  x += mlp(rmsnorm(x) [* gain]);
  logits = softcap(head(rmsnorm(x) [* gain]))."""
import numpy as np
import torch
import torch.nn.functional as F

FLT_EPS = float(np.finfo(np.float32).eps)


def rmsnorm(x, w, eps):
    y = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)
    return y * w if w is not None else y


def engine_cell(x, wz, wr, wh, b, eps):
    """x [B, T, E]; w_* [H, E + H]; b [3H] (z | r | h) -> h [B, T, H]"""
    B, T, _ = x.shape
    H = wz.shape[0]
    h = x.new_zeros(B, H)
    out = []
    for t in range(T):
        c = torch.cat([x[:, t], h], -1)
        z = torch.sigmoid(c @ wz.T + b[:H])
        r = torch.sigmoid(c @ wr.T + b[H:2 * H])
        cand = torch.tanh(torch.cat([x[:, t], r * h], -1) @ wh.T + b[2 * H:])
        u = (1 - z) * h + z * cand
        h = u / torch.sqrt((u * u).mean(-1, keepdim=True) + eps)
        out.append(h)
    return torch.stack(out, 1)


def mlgru(x, wi, wf, wg, gnorm, wo, eps):
    f = torch.sigmoid(x @ wf.T)
    i = F.silu(x @ wi.T) * (1 - f)
    h = torch.zeros_like(i[:, 0])
    hs = []
    for t in range(x.shape[1]):
        h = f[:, t] * h + i[:, t]
        hs.append(h)
    hs = torch.stack(hs, 1)
    return (rmsnorm(x @ wg.T, gnorm, eps) * F.silu(hs)) @ wo.T


class Stack(torch.nn.Module):
    """params: name -> array (tern's names); cfg: the resolved keys the reference needs."""

    def __init__(self, params, cfg, dtype):
        super().__init__()
        self.cfg = cfg
        self.p = torch.nn.ParameterDict({n.replace(".", "__"): torch.nn.Parameter(torch.from_numpy(v).to(dtype))
                                         for n, v in params.items()})
        self.grus = {}
        for i, letter in enumerate(cfg["layout"]):
            if letter in "Gg" and cfg["gru_variant"] == "torch":
                w = params[f"blocks.{i}.gru.weight_ih"]
                g = torch.nn.GRU(w.shape[1], w.shape[0] // 3, batch_first=True).to(dtype)
                for a, b in (("weight_ih_l0", "weight_ih"), ("weight_hh_l0", "weight_hh"), ("bias_ih_l0", "bias_ih"),
                             ("bias_hh_l0", "bias_hh")):
                    with torch.no_grad():
                        getattr(g, a).copy_(torch.from_numpy(params[f"blocks.{i}.gru.{b}"]).to(dtype))
                self.grus[i] = g

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def has(self, name):
        return name.replace(".", "__") in self.p

    def mixer(self, i, letter, h):
        c = self.cfg
        if letter in "Gg":
            if c["gru_variant"] == "torch":
                return self.grus[i](h)[0]
            n = f"blocks.{i}.gru."
            return engine_cell(h, self.w(n + "w_z"), self.w(n + "w_r"), self.w(n + "w_h"), self.w(n + "bias"), c["gru_state_eps"])
        n = f"blocks.{i}.mlgru."
        return mlgru(h, self.w(n + "i_proj.weight"), self.w(n + "f_proj.weight"), self.w(n + "g_proj.weight"),
                     self.w(n + "g_norm.weight"), self.w(n + "o_proj.weight"), self.eps)

    def forward(self, idx, tgt):
        c = self.cfg
        self.eps = c["norm_eps"] if c["norm_eps"] > 0 else FLT_EPS
        gain = lambda n: self.w(n) if self.has(n) else None  # noqa: E731
        x = self.w("tok_emb.weight")[idx]
        if c["emb_norm"]:
            x = rmsnorm(x, None, self.eps)
        widen = c["embed_dim"] != c["dim"]
        for i, letter in enumerate(c["layout"]):
            if i == 0 and widen:
                x = self.mixer(i, letter, x)
            else:
                x = x + self.mixer(i, letter, rmsnorm(x, gain(f"blocks.{i}.attn_norm.weight"), self.eps))
            if letter in "GM":
                h = rmsnorm(x, gain(f"blocks.{i}.ffn_norm.weight"), self.eps)
                x = x + torch.relu(h @ self.w(f"blocks.{i}.mlp.fc.weight").T).square() @ self.w(f"blocks.{i}.mlp.proj.weight").T
        x = rmsnorm(x, gain("norm.weight"), self.eps)
        head = self.w("lm_head.weight") if self.has("lm_head.weight") else self.w("tok_emb.weight")
        z = x @ head.T
        if c["softcap"] > 0:
            z = c["softcap"] * torch.tanh(z / c["softcap"])
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), tgt.reshape(-1))

    def grads(self):
        out = {n.replace("__", "."): p.grad.double().numpy() for n, p in self.p.items() if p.grad is not None}
        for i, g in self.grus.items():
            for a, b in (("weight_ih_l0", "weight_ih"), ("weight_hh_l0", "weight_hh"), ("bias_ih_l0", "bias_ih"),
                         ("bias_hh_l0", "bias_hh")):
                out[f"blocks.{i}.gru.{b}"] = getattr(g, a).grad.double().numpy()
        return out
