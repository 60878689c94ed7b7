// Builds resock/react into the package folder (argument, default ../pkg): react.js (esbuild,
// ESM, react and ./resock.js left as imports, "use client" on its first line for React Server
// Components frameworks), react.js.map and react.d.ts (tsc). Needs the wasm build there.
import { copyFileSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "pkg"));
if (!existsSync(join(out, "resock.d.ts"))) {
  console.error(`build-react: ${out}/resock.d.ts is missing: build the wasm package first (scripts/build-pkg.sh)`);
  process.exit(1);
}
// The hooks import "./resock.js"; for type-checking, its declarations sit beside them.
copyFileSync(join(out, "resock.d.ts"), join(here, "src", "resock.d.ts"));

await build({
  entryPoints: [join(here, "src", "react.tsx")],
  outfile: join(out, "react.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  sourcesContent: true,
  // Next.js (app router) and other RSC frameworks: the provider and hooks are client code.
  banner: { js: '"use client";' },
  external: ["react", "./resock.js"],
  logLevel: "warning",
});

execFileSync(
  join(here, "node_modules", ".bin", "tsc"),
  ["-p", join(here, "tsconfig.json"), "--declaration", "--emitDeclarationOnly", "--noEmit", "false", "--outDir", out],
  { stdio: "inherit" },
);
console.log(`build-react: wrote ${join(out, "react.js")} and react.d.ts`);
