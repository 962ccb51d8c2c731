import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  SERVER_SECTIONS,
  buildServerSettings,
  changeNeedsRestart,
  didChangeConfigurationPayload,
  serverSettingKeys,
} from "../../src/settings";

interface Property {
  default?: unknown;
  type?: string | string[];
}
const pkg = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as {
  contributes: { configuration: { properties: Record<string, Property> } };
};
const properties = pkg.contributes.configuration.properties;

describe("serverSettingKeys", () => {
  const keys = serverSettingKeys(Object.keys(properties));

  it("keeps the server's sections and drops client-side settings", () => {
    expect(keys).toContain("models.defaultModel");
    expect(keys).toContain("completion.minConfidence");
    expect(keys).toContain("cloud.localOnly");
    expect(keys).not.toContain("serverPath");
    expect(keys).not.toContain("pythonPath");
    expect(keys).not.toContain("trace.server");
  });

  it("contributes the settings docs/protocol.md names", () => {
    for (const key of [
      "models.defaultModel",
      "completion.minConfidence",
      "completion.maxTokens",
      "cloud.localOnly",
      "cloud.model",
      "guard.enabled",
    ]) {
      expect(keys).toContain(key);
    }
  });

  it("only has keys of the form section.field", () => {
    for (const key of keys) {
      const [section, field] = key.split(".");
      expect(SERVER_SECTIONS).toContain(section);
      expect(field).toMatch(/^[a-z][A-Za-z0-9]*$/);
    }
  });

  it("ignores other extensions' keys", () => {
    expect(serverSettingKeys(["python.models.x", "gearshiftx.models.y"])).toEqual([]);
  });
});

describe("buildServerSettings", () => {
  it("nests dotted keys into sections with the effective values", () => {
    const values: Record<string, unknown> = {
      "models.defaultModel": "smollm2-135m",
      "completion.minConfidence": 0.2,
      "cloud.localOnly": true,
      "models.modelPath": null,
    };
    const built = buildServerSettings(Object.keys(values), (k) => values[k]);
    expect(built).toEqual({
      models: { defaultModel: "smollm2-135m", modelPath: null },
      completion: { minConfidence: 0.2 },
      cloud: { localOnly: true },
    });
  });

  it("sends package.json defaults for every contributed server key", () => {
    const keys = serverSettingKeys(Object.keys(properties));
    const built = buildServerSettings(keys, (k) => properties[`gearshift.${k}`]?.default);
    expect(built.completion).toMatchObject({ maxTokens: 64, minConfidence: 0.25, enabled: true });
    expect(built.models).toMatchObject({ defaultModel: "qwen2.5-coder-0.5b", modelPath: null });
    expect(Object.keys(built).sort()).toEqual([...SERVER_SECTIONS].sort());
  });

  it("leaves out keys VS Code does not know", () => {
    expect(buildServerSettings(["models.defaultModel"], () => undefined)).toEqual({});
  });
});

describe("didChangeConfigurationPayload", () => {
  it("wraps the settings in the gearshift section as VS Code does", () => {
    expect(didChangeConfigurationPayload({ cloud: { localOnly: true } })).toEqual({
      settings: { gearshift: { cloud: { localOnly: true } } },
    });
  });
});

describe("changeNeedsRestart", () => {
  it.each([
    ["gearshift.serverPath", true],
    ["gearshift.pythonPath", true],
    ["gearshift.serverArgs", true],
    ["gearshift.completion.maxTokens", false],
  ])("%s → %s", (changed, expected) => {
    expect(changeNeedsRestart((key) => key === changed)).toBe(expected);
  });
});

describe("package.json settings", () => {
  it("gives every setting a default and a description", () => {
    for (const [key, prop] of Object.entries(properties)) {
      expect(prop, key).toHaveProperty("default");
      const described = prop as { description?: string; markdownDescription?: string };
      expect(described.description ?? described.markdownDescription, key).toBeTruthy();
    }
  });
});
