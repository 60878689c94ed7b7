// Unit tests of resock/react (unit/*.test.tsx) in happy-dom, with a fake Client in place of the
// wasm package: the hooks' `import ... from "./resock.js"` resolves to unit/fake-resock.ts.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: [{ find: /^\.\/resock\.js$/, replacement: fileURLToPath(new URL("./unit/fake-resock.ts", import.meta.url)) }],
  },
  test: {
    environment: "happy-dom",
    include: ["unit/**/*.test.tsx"],
    testTimeout: 10_000,
  },
});
