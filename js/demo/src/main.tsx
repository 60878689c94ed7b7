import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";

const root = document.getElementById("root");
if (root) {
  // StrictMode mounts, unmounts and mounts again: the provider still opens one socket.
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
