// llama_eval.mjs — runs a GGUF file in llama.cpp (the prebuilt CPU binaries of the npm package
// node-llama-cpp, installed by scripts/install-deps.sh) and prints what the GGUF tests compare
// with tern, as one JSON object on stdout.
//
//   node llama_eval.mjs NLC_DIR REQUEST.json
// NLC_DIR: the folder node-llama-cpp was installed into (node_modules/ inside it).
// REQUEST: one request or an array of them (the reply is then an array), each
//          {"model": path, "n_vocab": V, "texts": [str], "sequences": [[id]], "greedy": {"prompt": [id] | "text": str, "n": N}}
// Reply:   {"n_vocab", "bos", "eos", "tokens": [[id] per text, no BOS added],
//           "logits": [[[float] per position] per sequence]  (raw logits after each token),
//           "greedy": [id]  (argmax continuation of the prompt, one token at a time),
//           "greedy_prompt": [id]}
// The KV cache is kept in float32 (llama.cpp's default is f16) and flash attention off, so
// that an f32 model file is computed in f32 throughout.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nlcDir, reqPath] = process.argv.slice(2);
const req = JSON.parse(fs.readFileSync(reqPath, "utf8"));
const entry = path.join(nlcDir, "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true });
// One request: load, tokenize, evaluate, decode, dispose. A model llama.cpp refuses is
// {"err": message} in the reply, not a crash of the whole run.
async function run(req) {
  const model = await llama.loadModel({ modelPath: req.model, gpuLayers: 0 });
  const nVocab = req.n_vocab; // the caller knows it (the model's token_embd rows)
  const ctxSize = Math.max(64, ...(req.sequences || []).map(s => s.length + 8), req.greedy ? (req.greedy.prompt || req.greedy.text).length + req.greedy.n + 8 : 0);
  const ctx = await model.createContext({
    contextSize: ctxSize, batchSize: ctxSize, threads: 2, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
  });
  const seq = ctx.getSequence();

  function row(m) {
    const z = new Array(Number(nVocab)).fill(-Infinity);
    for (const [tok, v] of m) z[tok] = v;
    return z;
  }

  const out = { n_vocab: Number(nVocab), bos: model.tokens.bos, eos: model.tokens.eos, tokens: [], logits: [], greedy: [] };
  for (const t of req.texts || []) out.tokens.push(Array.from(model.tokenize(t, false)));
  for (const s of req.sequences || []) {
    await seq.clearHistory();
    const res = await seq.controlledEvaluate(s.map(t => [t, { generateNext: { logits: true } }]));
    out.logits.push(res.map(r => row(r.next.logits)));
  }
  if (req.greedy) {
    await seq.clearHistory();
    // the prompt as ids, or as text tokenized by llama.cpp after its BOS
    const p = req.greedy.text !== undefined ? [model.tokens.bos, ...model.tokenize(req.greedy.text, false)] : req.greedy.prompt;
    out.greedy_prompt = Array.from(p);
    let res = await seq.controlledEvaluate(p.map((t, i) => (i === p.length - 1 ? [t, { generateNext: { logits: true } }] : t)));
    let z = row(res[p.length - 1].next.logits);
    for (let k = 0; k < req.greedy.n; k++) {
      let best = 0;
      for (let i = 1; i < z.length; i++) if (z[i] > z[best]) best = i;
      out.greedy.push(best);
      if (k + 1 === req.greedy.n) break;
      res = await seq.controlledEvaluate([[best, { generateNext: { logits: true } }]]);
      z = row(res[0].next.logits);
    }
  }
  await ctx.dispose();
  await model.dispose();
  return out;
}

const reqs = Array.isArray(req) ? req : [req];
const replies = [];
for (const r of reqs) {
  try {
    replies.push(await run(r));
  } catch (e) {
    replies.push({ err: String(e && e.message ? e.message : e) });
  }
}
process.stdout.write(JSON.stringify(Array.isArray(req) ? replies : replies[0]) + "\n");
await llama.dispose();
