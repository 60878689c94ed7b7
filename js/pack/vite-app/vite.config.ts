import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// As `npm create vite -- --template react-ts` writes it: nothing for resock.
export default defineConfig({ plugins: [react()] });
