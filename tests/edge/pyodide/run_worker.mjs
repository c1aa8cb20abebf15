// Serve the Worker (wrangler's main, edge/worker/entry.py) from real Pyodide (npm `pyodide`, the version wrangler.toml's
// compatibility date selects) with the real `workers-runtime-sdk`, over a Node HTTP server.
// Only the two workerd-internal modules are stand-ins. Usage:
//   node run_worker.mjs <repo root> <vendored python_modules dir> <sdk wheel> [port]
// Worker vars come from the WORKER_ENV environment variable (a JSON object). With DRIVER set, it
// runs that Python file's `run()` instead of serving (see below).
// Prints one JSON line {"port", "load_ms", "import_ms", ...} once listening (times in ms).
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { loadPyodide } from "pyodide";

const [root, vendored, sdkWheel, portArg] = process.argv.slice(2);
const env = JSON.parse(process.env.WORKER_ENV || "{}");
const pending = new Set();
const waitUntil = (p) => {
  const done = Promise.resolve(p).catch((e) => console.error("waitUntil task failed:", e));
  pending.add(done);
  done.finally(() => pending.delete(done));
};

const t0 = performance.now();
const pyodide = await loadPyodide({
  indexURL: path.join(root, "node_modules", "pyodide"),
  stdout: (s) => console.error(s),
  stderr: (s) => console.error(s),
});
const loadMs = performance.now() - t0;

// Stand-ins for workerd's internal modules (everything else below is real).
pyodide.registerJsModule("_cloudflare_compat_flags", {
  python_workflows_implicit_dependencies: false,
});
pyodide.registerJsModule("_pyodide_entrypoint_helper", {
  cloudflareWorkersModule: { env, waitUntil },
  cloudflareSocketsModule: {},
  patchWaitUntil: () => {},
  doAnImport: (name) => import(name),
});

const site = pyodide.runPython("import site; site.getsitepackages()[0]");
pyodide.unpackArchive(new Uint8Array(fs.readFileSync(sdkWheel)), "wheel", { extractDir: site });

// Copy the vendored worker bundle (python_modules/edge) into the Pyodide FS.
function copyTree(src, dest) {
  pyodide.FS.mkdirTree(dest);
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, entry.name);
    const d = `${dest}/${entry.name}`;
    if (entry.isDirectory()) copyTree(s, d);
    else pyodide.FS.writeFile(d, new Uint8Array(fs.readFileSync(s)));
  }
}
copyTree(vendored, "/worker/python_modules");
// The uploaded top level, as wrangler lays it out: entry.py beside python_modules/.
pyodide.FS.writeFile(
  "/worker/entry.py",
  new Uint8Array(fs.readFileSync(path.join(root, "edge", "worker", "entry.py"))),
);
pyodide.runPython(
  "import sys; sys.path[:0] = ['/worker', '/worker/python_modules']",
);

// With DRIVER=<a Python file>, run its `async def run()` in this same setup instead of serving,
// and print what it returns (tests of Worker-only code, such as the quota Durable Object).
if (process.env.DRIVER) {
  pyodide.FS.writeFile("/worker/driver.py", fs.readFileSync(process.env.DRIVER, "utf8"));
  console.log(await pyodide.runPythonAsync("import driver\nawait driver.run()"));
  process.exit(0);
}

// Import cost split: the `workers` SDK (not ours to shrink), then the entry module on top.
const t1 = performance.now();
await pyodide.runPythonAsync("import workers");
const sdkMs = performance.now() - t1;
const t2 = performance.now();
await pyodide.runPythonAsync("import entry");
const entryMs = performance.now() - t2;
// Edge modules the entry imported at module level (the rest waits for the first request).
const eagerModules = pyodide
  .runPython("import sys; ','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'edge'))")
  .split(",")
  .filter((m) => m);
const importMs = sdkMs + entryMs;
// What the first request adds (the edge core and its imports, built lazily by edge.entry).
const t3 = performance.now();
await pyodide.runPythonAsync("import edge.core.app, edge.adapters.worker, edge.runtime.workers");
const firstRequestImportMs = performance.now() - t3;

const serve = await pyodide.runPythonAsync(`
import entry
from workers import Request

async def serve(js_request, ctx, env):
    response = await entry.Default(ctx, env).fetch(Request(js_request))
    return response.js_object

serve
`);
const ctx = { waitUntil, passThroughOnException() {} };

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    try {
      const headers = new Headers();
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
      }
      headers.set("cf-connecting-ip", req.socket.remoteAddress || "");
      const body = ["GET", "HEAD"].includes(req.method) ? undefined : Buffer.concat(chunks);
      const jsRequest = new Request(`http://${req.headers.host}${req.url}`, {
        method: req.method,
        headers,
        body,
      });
      const response = await serve(jsRequest, ctx, env);
      const out = Buffer.from(await response.arrayBuffer());
      const outHeaders = {};
      response.headers.forEach((v, k) => {
        outHeaders[k] = v;
      });
      outHeaders["content-length"] = String(out.length);
      res.writeHead(response.status, outHeaders);
      res.end(out);
    } catch (err) {
      console.error(err);
      res.writeHead(599);
      res.end(String(err));
    }
  });
});
server.listen(Number(portArg || 0), "127.0.0.1", () => {
  const { port } = server.address();
  console.log(
    JSON.stringify({
      port,
      load_ms: loadMs,
      import_ms: importMs,
      sdk_import_ms: sdkMs,
      entry_import_ms: entryMs,
      first_request_import_ms: firstRequestImportMs,
      eager_modules: eagerModules,
    }),
  );
});
