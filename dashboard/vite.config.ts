/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// Built into the Python package: `atlas serve` serves it at / (atlas_api/app.py).
export default defineConfig({
  base: "/",
  build: { outDir: "../atlas_api/dashboard_dist", emptyOutDir: true, chunkSizeWarningLimit: 900 },
  test: { environment: "jsdom", include: ["test/**/*.test.ts"] },
});
