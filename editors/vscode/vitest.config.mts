import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    environment: "node",
    // The real `vscode` module exists only inside VS Code; tests mock ./vscodeapi instead.
    mockReset: true,
  },
});
