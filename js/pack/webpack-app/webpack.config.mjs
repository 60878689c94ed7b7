// A plain webpack 5 build: nothing for resock (webpack turns the package's
// `new URL("resock_bg.wasm", import.meta.url)` into an asset by itself).
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export default {
  mode: "production",
  entry: "./src/index.js",
  output: { path: resolve(here, "dist"), filename: "main.js", publicPath: "auto", clean: true },
  devtool: "source-map",
};
