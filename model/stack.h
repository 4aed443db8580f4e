/* stack.h — the one trunk every backbone is built on, and the presets that configure it.
 *
 *   x = tok_emb[idx]  (+ BigramHash: scale * proj(table[hash(t, t-1)]))  [emb_norm: rmsnorm]
 *   x0 = x
 *   layer i (one letter of the layout -> a token mixer and a channel mixer, either may be absent):
 *     [resid_mix: x = m0 x + m1 x0]
 *     h = rmsnorm(x) [* attn_norm gain]  [shift: h_t = mu h_t + (1 - mu) h_{t-1}, mu = sig(m)]
 *     x += [attn_scale *] mixer(h)
 *     h = rmsnorm(x) [* ffn_norm gain];   x += [mlp_scale *] channel(h)
 *   U-Net skips: the first L/2 layers push x; each later layer first adds skip_weights[j] * pop()
 *   logits = head(rmsnorm(x) [* norm gain])   (tied to tok_emb or its own; softcap applied by the
 *   loss or model_logits)
 * A preset (gpt, trn_hybrid, llama) is a name, default values for keys, its layer letters and
 * the naming / registration order its checkpoints have always had. */
#ifndef TERN_STACK_H
#define TERN_STACK_H

#include "model/block.h"

/* One letter of a preset's layout. */
typedef struct LayerType {
    char letter;
    const BlockKind *mixer, *channel; /* NULL: the layer has none */
    int shift;                        /* token shift before the mixer (when model.token_shift) */
    const char *what;                 /* for messages: "attention + MLP" */
} LayerType;

typedef struct Preset {
    const char *name;
    const char *defaults;     /* JSON object: this preset's values of stack and kind keys */
    const LayerType *types;
    size_t ntypes;
    char default_letter;      /* layout = this letter x layers when no layout is given */
    NameStyle names;
    /* a layer's parameters in checkpoint order: [shift, mixer norm, mixer, scales, channel norm,
     * channel] (the GPT's) when set, else [scales, shift, mixer norm, mixer, channel norm,
     * channel] (the TRN hybrid's and Llama's). Optimizer state is stored flat by parameter
     * offset, so the order is part of the checkpoint format. */
    int scales_after_mixer;
} Preset;

const Preset *preset_find(const char *name);
size_t preset_count(void);
const Preset *preset_at(size_t i);

/* The kinds a preset can place (its letters' mixers and channels, each once). */
size_t preset_kinds(const Preset *p, const BlockKind **out, size_t max);

#endif
