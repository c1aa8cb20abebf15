// Run the edge's device-trust checks (edge/dpop.py, edge/attestation.py) inside real Pyodide (npm
// `pyodide`, the version wrangler.toml's compatibility date selects) on the Workers platform:
// signatures through WebCrypto (crypto.subtle), key sets through fetch. Usage:
//   node run_trust.mjs <repo root> <vendored python_modules dir> <cases.json>
// Prints one JSON line: what each case came to, and the time per proof check.
import fs from "node:fs";
import path from "node:path";
import { loadPyodide } from "pyodide";

const [root, vendored, casesFile] = process.argv.slice(2);
const pyodide = await loadPyodide({
  indexURL: path.join(root, "node_modules", "pyodide"),
  stdout: (s) => console.error(s),
  stderr: (s) => console.error(s),
});

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
pyodide.FS.writeFile("/worker/cases.json", fs.readFileSync(casesFile, "utf8"));
pyodide.FS.writeFile(
  "/worker/trust_driver.py",
  fs.readFileSync(path.join(root, "tests", "edge", "pyodide", "trust_driver.py"), "utf8"),
);
pyodide.runPython("import sys; sys.path[:0] = ['/worker', '/worker/python_modules']");
const result = await pyodide.runPythonAsync(`
import trust_driver
await trust_driver.run("/worker/cases.json")
`);
console.log(result);
