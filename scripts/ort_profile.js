// Profiles an imported generator with onnxruntime (npm's onnxruntime-node) by op type: onnxruntime's
// own per-node profile (enableProfiling) over `runs` forwards after one warm-up, summed by op type
// and divided by the runs, printed as one JSON line {op: [ms per forward, nodes per forward]}, with the
// forwards' wall times. Profiling adds a fixed cost to every node, so the small ops' figures (and the
// wall times) are inflated; the large ones (Conv, MatMul) are what to compare with our own profile
// (HN_OPTIMES_ROWS, bench/modelforward_test.go).
//
//   node scripts/ort_profile.js '{"model": "gen.onnx", "noise_input": "noise", "noise_shape": [4,16,16],
//        "prompt_input": "prompt", "prompts": 8, "batch": 2, "runs": 20, "threads": 2}'
//
// With "nodes": K it also prints the K slowest nodes (ms per forward, op, input shapes), to set
// beside our per-shape profile (HN_OPTIMES_SHAPES=1).
//
// onnxruntime-node is looked for as in ort_bench.js ($HYPERNOISE_ORT_DIR, default .ort/).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const dir = process.env.HYPERNOISE_ORT_DIR || path.join(__dirname, '..', '.ort');
  const ort = require(require.resolve('onnxruntime-node', { paths: [dir] }));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ortprof-'));
  const session = await ort.InferenceSession.create(cfg.model, {
    intraOpNumThreads: cfg.threads || 0, graphOptimizationLevel: 'all',
    enableProfiling: true, profileFilePrefix: path.join(tmp, 'p'),
  });
  const dims = [cfg.batch, ...cfg.noise_shape];
  const n = dims.reduce((a, b) => a * b, 1);
  const noise = Float32Array.from({ length: n }, (_, i) => Math.sin(1.7 * i)); // deterministic, no RNG needed
  const feeds = { [cfg.noise_input]: new ort.Tensor('float32', noise, dims) };
  if (cfg.prompt_input) {
    const ids = BigInt64Array.from({ length: cfg.batch }, (_, i) => BigInt(i % Math.max(cfg.prompts || 1, 1)));
    feeds[cfg.prompt_input] = new ort.Tensor('int64', ids, [cfg.batch]);
  }
  const runs = cfg.runs || 20;
  const wall = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    if (i > 0) wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  session.endProfiling(); // writes the profile into tmp (its name is not returned by every version)
  await session.release();
  const files = fs.readdirSync(tmp).filter((f) => f.endsWith('.json'));
  if (files.length !== 1) throw new Error(`expected one profile file in ${tmp}, found ${files.length}`);
  const events = JSON.parse(fs.readFileSync(path.join(tmp, files[0]), 'utf8'));
  const byOp = {};
  const byNode = {};
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args.op_name;
    byOp[op] = byOp[op] || [0, 0];
    byOp[op][0] += e.dur / 1000;
    byOp[op][1] += 1;
    const shapes = (e.args.input_type_shape || []).map((s) => JSON.stringify(Object.values(s)[0])).join(',');
    byNode[e.name] = byNode[e.name] || { op, shapes, ms: 0 };
    byNode[e.name].ms += e.dur / 1000;
  }
  const rows = Object.entries(byOp).sort((a, b) => b[1][0] - a[1][0]);
  // the warm-up run is in the profile too
  const out = {};
  for (const [op, [ms, count]] of rows) out[op] = [+(ms / (runs + 1)).toFixed(3), Math.round(count / (runs + 1))];
  wall.sort((a, b) => a - b);
  console.log(JSON.stringify({ ms_per_forward_by_op: out, wall_ms_median: wall[Math.floor(wall.length / 2)], runs }));
  if (cfg.nodes) {
    const top = Object.values(byNode).sort((a, b) => b.ms - a.ms).slice(0, cfg.nodes);
    for (const n of top) console.log(`${(n.ms / (runs + 1)).toFixed(2).padStart(8)} ms  ${n.op}  ${n.shapes}`);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((e) => { console.error(String(e && e.message || e).split('\n')[0]); process.exit(1); });
