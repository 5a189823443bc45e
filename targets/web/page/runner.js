// wherry's browser runner: fetch the job, run each ONNX artifact with onnxruntime-web on the inputs,
// post the outputs (raw bytes) and timings back to the page server, then post done with the facts.
// Every URL is relative to the page's own (http://127.0.0.1:PORT/<session secret>/): the page server
// answers nothing outside that secret prefix, and here is the only place the page learns it.
const here = (path) => new URL(path, location.href).href;
const post = (path, body, type = 'application/json') =>
  fetch(here(path), {method: 'POST', body, headers: {'Content-Type': type}});
const say = (level, message) => post('log', JSON.stringify({level, message: String(message)}));
window.addEventListener('error', (e) => say('error', e.message));
window.addEventListener('unhandledrejection', (e) => say('error', (e.reason && e.reason.stack) || e.reason));

// numpy dtype name -> [onnxruntime-web tensor type, typed array]
const TYPES = {
  float32: ['float32', Float32Array], float64: ['float64', Float64Array], float16: ['float16', Uint16Array],
  int64: ['int64', BigInt64Array], uint64: ['uint64', BigUint64Array], int32: ['int32', Int32Array],
  uint32: ['uint32', Uint32Array], int16: ['int16', Int16Array], uint16: ['uint16', Uint16Array],
  int8: ['int8', Int8Array], uint8: ['uint8', Uint8Array], bool: ['bool', Uint8Array],
};

async function makeFeeds(ort, inputs) {
  const feeds = {};
  for (const spec of inputs) {
    const bytes = await (await fetch(here(spec.url))).arrayBuffer();
    const [type, Typed] = TYPES[spec.dtype];
    feeds[spec.name] = new ort.Tensor(type, new Typed(bytes), spec.dims);
  }
  return feeds;
}

async function runTask(ort, job, task, feeds) {
  const options = {executionProviders: [job.ep.startsWith('webgpu') ? 'webgpu' : 'wasm'],
                   graphOptimizationLevel: 'all'};
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(here(task.url), options);
  const loadMs = performance.now() - t0;
  try {
    const t1 = performance.now();
    const outputs = await session.run(feeds);
    const runMs = performance.now() - t1;
    for (const name of session.outputNames) {
      const t = outputs[name];
      const data = t.data;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      const query = new URLSearchParams({type: t.type, dims: t.dims.join(',')});
      await post(`output/${task.id}/${encodeURIComponent(name)}?${query}`, bytes, 'application/octet-stream');
    }
    const times = [];
    for (let i = 0; i < task.warmup; i++) await session.run(feeds);
    for (let i = 0; i < task.runs; i++) {
      const s = performance.now();
      await session.run(feeds);
      times.push(performance.now() - s);
    }
    return {ok: true, load_ms: loadMs, run_ms: runMs, times_ms: times, outputs: session.outputNames};
  } finally {
    await session.release();
  }
}

async function adapterFacts() {
  if (!navigator.gpu) return {available: false, why: 'navigator.gpu is undefined'};
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return {available: false, why: 'requestAdapter() returned no adapter'};
  const info = adapter.info || {};
  return {available: true, vendor: info.vendor, architecture: info.architecture, device: info.device,
          description: info.description, features: [...adapter.features]};
}

async function main() {
  const job = await (await fetch(here('job'))).json();
  const facts = {user_agent: navigator.userAgent, cross_origin_isolated: self.crossOriginIsolated,
                 hardware_concurrency: navigator.hardwareConcurrency, build: job.build};
  if (job.ep.startsWith('webgpu')) facts.webgpu = await adapterFacts();
  let ort;
  try {
    ort = await import(here(job.build));
  } catch (e) {
    await post('done', JSON.stringify({...facts, fatal: `cannot load onnxruntime-web (${job.build}): ${e}`}));
    return;
  }
  ort.env.wasm.wasmPaths = here('ort/');
  ort.env.wasm.numThreads = job.threads;
  ort.env.logLevel = 'error';
  facts.ort_version = (ort.env.versions && ort.env.versions.web) || null;
  for (const task of job.tasks) {
    let result;
    try {
      result = await runTask(ort, job, task, await makeFeeds(ort, task.inputs));
    } catch (e) {
      result = {ok: false, error: String((e && e.message) || e)};
    }
    await post(`result/${task.id}`, JSON.stringify(result));
  }
  facts.threads = ort.env.wasm.numThreads;
  document.getElementById('status').textContent = 'done';
  await post('done', JSON.stringify(facts));
}

main().catch((e) => post('done', JSON.stringify({fatal: String((e && e.stack) || e)})));
