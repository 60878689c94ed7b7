import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

const pkg = (file: string) => fileURLToPath(new URL(`../../pkg/${file}`, import.meta.url));

// The demo uses the package as built into ../../pkg by scripts/build-pkg.sh.
export default defineConfig({
  base: "./",
  resolve: {
    // The package lives outside this folder: its `react` import must resolve to ours (one React).
    dedupe: ["react", "react-dom"],
    alias: [
      { find: /^resock\/full\/react$/, replacement: pkg("full/react.js") },
      { find: /^resock\/full$/, replacement: pkg("full/resock.js") },
      { find: /^resock\/react$/, replacement: pkg("react.js") },
      { find: /^resock$/, replacement: pkg("resock.js") },
    ],
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: {
      // The demo, and a page with the SDK alone for the browser tests.
      input: { main: fileURLToPath(new URL("index.html", import.meta.url)), sdk: fileURLToPath(new URL("sdk.html", import.meta.url)) },
      // resock/react starts with "use client" (for Next.js); a client-only bundle has no use for it.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  esbuild: { jsx: "automatic" },
});
