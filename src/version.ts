// The version and commit a build names; the build defines both, a run from source has neither.

declare const TINYC_VERSION: string;
declare const TINYC_COMMIT: string;

export function versionNumber(): string {
  return typeof TINYC_VERSION === "string" ? TINYC_VERSION : "dev";
}

export function version(): string {
  const c = typeof TINYC_COMMIT === "string" ? TINYC_COMMIT : "unknown";
  return `tinyc version ${versionNumber()}\ncommit: ${c}\nspec: 1.1.0\n`;
}
