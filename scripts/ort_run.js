// Runs an ONNX model once with onnxruntime (npm's onnxruntime-node, looked for as in ort_bench.js:
// $HYPERNOISE_ORT_DIR, default .ort/ at the repository root) and prints the requested output as
// JSON: {"dims": [...], "data": [...]}. The export test uses it to check `hypernoise export`'s
// graphs with a runtime other than ours.
//
//   node scripts/ort_run.js '{"model": "hn.onnx", "output": "modulated_noise",
//        "float32": {"noise": {"dims": [2,4,8,8], "data": [...]}}, "int64": {"prompt": {"dims": [2], "data": [0,1]}}}'
'use strict';
const path = require('path');

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const dir = process.env.HYPERNOISE_ORT_DIR || path.join(__dirname, '..', '.ort');
  const ort = require(require.resolve('onnxruntime-node', { paths: [dir] }));
  const session = await ort.InferenceSession.create(cfg.model, { intraOpNumThreads: 1 });
  const feeds = {};
  for (const [name, v] of Object.entries(cfg.float32 || {})) {
    feeds[name] = new ort.Tensor('float32', Float32Array.from(v.data), v.dims);
  }
  for (const [name, v] of Object.entries(cfg.int64 || {})) {
    feeds[name] = new ort.Tensor('int64', BigInt64Array.from(v.data, (x) => BigInt(x)), v.dims);
  }
  const out = (await session.run(feeds))[cfg.output];
  console.log(JSON.stringify({ dims: out.dims, data: Array.from(out.data) }));
}

main().catch((e) => { console.error(String(e && e.message || e).split('\n')[0]); process.exit(1); });
