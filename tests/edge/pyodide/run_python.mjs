// Run a Python snippet inside real Pyodide (npm `pyodide`, as the Worker tests use) with some of
// the repository's modules copied into its file system. Usage:
//   node run_python.mjs <repo root> <code> <repo-relative file>...
// Prints what the snippet prints (stdout); exits 1 with the Python error on stderr.
import fs from "node:fs";
import path from "node:path";
import { loadPyodide } from "pyodide";

const [root, code, ...files] = process.argv.slice(2);
const pyodide = await loadPyodide({
  indexURL: path.join(root, "node_modules", "pyodide"),
  stdout: (s) => console.log(s),
  stderr: (s) => console.error(s),
});
for (const file of files) {
  pyodide.FS.mkdirTree(path.posix.dirname(`/repo/${file}`));
  pyodide.FS.writeFile(`/repo/${file}`, new Uint8Array(fs.readFileSync(path.join(root, file))));
}
try {
  pyodide.runPython(`import sys; sys.path.insert(0, "/repo")\n${code}`);
} catch (err) {
  console.error(String(err));
  process.exit(1);
}
