// Times an imported generator with onnxruntime (npm's onnxruntime-node), for `hypernoise bench
// --model`: session creation, then the median of `runs` forwards after the first run and `warmup`
// more (default 0), on seeded Gaussian noise and prompt ids cycling over the spec's prompts. Prints
// one JSON line.
//
//   node scripts/ort_bench.js '{"model": "gen.onnx", "noise_input": "noise", "noise_shape": [4,16,16],
//        "prompt_input": "prompt", "prompts": 8, "batch": 2, "warmup": 0, "runs": 3, "threads": 2}'
//
// onnxruntime-node is looked for in $HYPERNOISE_ORT_DIR (default: .ort/ at the repository root,
// git-ignored), installed there with
//   ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix .ort onnxruntime-node
// (the variable skips the post-install step that fetches GPU libraries). Nothing else needs it.
'use strict';
const path = require('path');

function gaussian(n, seed) {
  // xorshift32 and Box-Muller: reproducible noise without dependencies
  let s = seed >>> 0 || 1;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 1) / 4294967297; };
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u())), t = 2 * Math.PI * u();
    x[i] = r * Math.cos(t);
    if (i + 1 < n) x[i + 1] = r * Math.sin(t);
  }
  return x;
}

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const dir = process.env.HYPERNOISE_ORT_DIR || path.join(__dirname, '..', '.ort');
  const ort = require(require.resolve('onnxruntime-node', { paths: [dir] }));
  const opts = { intraOpNumThreads: cfg.threads || 0, graphOptimizationLevel: 'all' };
  let t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(cfg.model, opts);
  const createS = Number(process.hrtime.bigint() - t0) / 1e9;
  const dims = [cfg.batch, ...cfg.noise_shape];
  const feeds = { [cfg.noise_input]: new ort.Tensor('float32', gaussian(dims.reduce((a, b) => a * b, 1), 1), dims) };
  if (cfg.prompt_input) {
    const ids = BigInt64Array.from({ length: cfg.batch }, (_, i) => BigInt(i % Math.max(cfg.prompts || 1, 1)));
    feeds[cfg.prompt_input] = new ort.Tensor('int64', ids, [cfg.batch]);
  }
  t0 = process.hrtime.bigint();
  await session.run(feeds);
  const firstS = Number(process.hrtime.bigint() - t0) / 1e9;
  for (let i = 0; i < (cfg.warmup || 0); i++) {
    await session.run(feeds);
  }
  const times = [];
  for (let i = 0; i < (cfg.runs || 3); i++) {
    t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6 / cfg.batch);
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)];
  console.log(JSON.stringify({ session_create_s: createS, first_run_s: firstS, forward_ms_per_image: med,
    threads: cfg.threads || 0, version: ort.env.versions ? ort.env.versions.common : undefined }));
}

main().catch((e) => { console.error(String(e && e.message || e).split('\n')[0]); process.exit(1); });
