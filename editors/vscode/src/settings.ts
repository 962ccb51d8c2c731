/**
 * Maps the `gearshift.*` VS Code settings to what the server accepts as
 * `initializationOptions` and `workspace/didChangeConfiguration` settings.
 *
 * The server validates strictly (unknown fields are an error), so only its
 * sections are sent; client-side settings such as `serverPath` stay here.
 * Every contributed key is sent with its effective value, defaults included,
 * because the server merges a change over its previous settings: a key left
 * out would keep its old value instead of returning to the default.
 */

export const CONFIG_SECTION = "gearshift";

/** Top-level sections of the server's settings (lsp_server/settings.py). */
export const SERVER_SECTIONS = ["models", "engine", "completion", "guard", "cloud", "actions"] as const;
export type ServerSection = (typeof SERVER_SECTIONS)[number];

export type ServerSettings = Partial<Record<ServerSection, Record<string, unknown>>>;

/** Keys (without the `gearshift.` prefix) that belong to the server, from the extension's contributed properties. */
export function serverSettingKeys(contributedProperties: Iterable<string>): string[] {
  const prefix = `${CONFIG_SECTION}.`;
  const keys: string[] = [];
  for (const full of contributedProperties) {
    if (!full.startsWith(prefix)) {
      continue;
    }
    const key = full.slice(prefix.length);
    const [section, ...rest] = key.split(".");
    if ((SERVER_SECTIONS as readonly string[]).includes(section ?? "") && rest.length === 1) {
      keys.push(key);
    }
  }
  return keys.sort();
}

/**
 * Build the nested settings object from dotted keys; `get` returns the effective
 * value of `gearshift.<key>`.  Undefined values are left out (VS Code returns
 * undefined only for keys it does not know).
 */
export function buildServerSettings(keys: Iterable<string>, get: (key: string) => unknown): ServerSettings {
  const out: ServerSettings = {};
  for (const key of keys) {
    const [section, field] = key.split(".") as [ServerSection, string];
    const value = get(key);
    if (value === undefined) {
      continue;
    }
    (out[section] ??= {})[field] = value;
  }
  return out;
}

/** The `settings` payload of `workspace/didChangeConfiguration`, wrapped as VS Code sends it. */
export function didChangeConfigurationPayload(settings: ServerSettings): { settings: { gearshift: ServerSettings } } {
  return { settings: { gearshift: settings } };
}

/** Whether a change to this (full) setting key needs the server restarted rather than told. */
export function changeNeedsRestart(affects: (key: string) => boolean): boolean {
  return ["serverPath", "pythonPath", "serverArgs"].some((k) => affects(`${CONFIG_SECTION}.${k}`));
}
