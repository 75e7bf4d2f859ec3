// Parse every math display of Markdown files (and every align environment of LaTeX
// snippets) with KaTeX, throwOnError: true. Usage:
//   node check.js FILE.md|FILE.tex ...
// Prints one line per failure and exits 1 if any display fails; prints the count otherwise.
// .md:  $$ ... $$ blocks are display math, $ ... $ (not \$) inline math.
// .tex: each \begin{align} ... \end{align} is rendered with the macro \label -> (nothing),
//       the setting docs/latex.md gives KaTeX users.
"use strict";
const fs = require("fs");
const katex = require("katex");

function mdMath(text) {
  const out = [];
  const parts = text.split("$$");
  if (parts.length % 2 === 0) throw new Error("unbalanced $$");
  parts.forEach((part, i) => {
    if (i % 2 === 1) { out.push({ tex: part, display: true }); return; }
    // inline: $...$ with no unescaped $ inside; \$ is a literal dollar
    const re = /(^|[^\\])\$((?:[^$\\]|\\.)+?)\$/gs;
    let m;
    while ((m = re.exec(part)) !== null) out.push({ tex: m[2], display: false });
  });
  return out;
}

function texMath(text) {
  const out = [];
  const re = /\\begin\{align\}[\s\S]*?\\end\{align\}/g;
  let m;
  while ((m = re.exec(text)) !== null) out.push({ tex: m[0], display: true });
  return out;
}

let failures = 0;
let total = 0;
for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, "utf8");
  const items = file.endsWith(".md") ? mdMath(text) : texMath(text);
  for (const item of items) {
    total += 1;
    try {
      katex.renderToString(item.tex, {
        displayMode: item.display, throwOnError: true, strict: "error",
        macros: { "\\label": "\\def\\katexlabel{#1}" },
      });
    } catch (e) {
      failures += 1;
      console.log(`${file}: ${e.message.split("\n")[0]} in: ${item.tex.slice(0, 200).replace(/\n/g, " ")}`);
    }
  }
}
console.log(`${total - failures} of ${total} math items parsed by KaTeX ${katex.version}`);
process.exit(failures ? 1 : 0);
