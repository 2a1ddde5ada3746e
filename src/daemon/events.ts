// The daemon's event stream (docker events): what happened to containers and images, kept for a
// while so that `--since` can look back, and handed to every listener as it happens.

export interface DockerEvent {
  Type: "container" | "image" | "daemon";
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: "local";
  time: number;
  timeNano: number;
  /** The fields of the older API, which the CLI still prints from. */
  status?: string;
  id?: string;
  from?: string;
}

const KEEP = 1000;

export class Events {
  private past: DockerEvent[] = [];
  private listeners = new Set<(e: DockerEvent) => void>();

  emit(type: DockerEvent["Type"], action: string, id: string, attributes: Record<string, string> = {}): void {
    const nanos = BigInt(Date.now()) * 1_000_000n;
    const e: DockerEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: "local",
      time: Number(nanos / 1_000_000_000n),
      timeNano: Number(nanos),
    };
    if (type === "container") Object.assign(e, { status: action, id, from: attributes.image ?? "" });
    this.past.push(e);
    if (this.past.length > KEEP) this.past.splice(0, this.past.length - KEEP);
    for (const l of this.listeners) l(e);
  }

  since(seconds: number): DockerEvent[] {
    return this.past.filter((e) => e.timeNano >= seconds * 1e9);
  }

  listen(f: (e: DockerEvent) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }
}

/** docker's filters: a JSON map of maps ({"label":{"a=b":true}}), or an older map of lists. */
export function parseFilters(text: string | null): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!text) return out;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(`invalid filters: ${text}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`invalid filters: ${text}`);
  for (const [k, vals] of Object.entries(v as Record<string, unknown>)) {
    if (Array.isArray(vals)) out.set(k, vals.map(String));
    else if (typeof vals === "object" && vals !== null) out.set(k, Object.keys(vals));
    else throw new Error(`invalid filters: ${text}`);
  }
  return out;
}

/** Whether LABELS has every one of WANT ("key" or "key=value"). */
export function labelsMatch(labels: Record<string, string> | undefined, want: string[] | undefined): boolean {
  if (!want) return true;
  return want.every((w) => {
    const eq = w.indexOf("=");
    if (eq < 0) return labels?.[w] !== undefined;
    return labels?.[w.slice(0, eq)] === w.slice(eq + 1);
  });
}

function eventMatches(e: DockerEvent, f: Map<string, string[]>): boolean {
  const one = (key: string, value: string | undefined) => !f.has(key) || f.get(key)!.includes(value ?? "");
  const attrs = e.Actor.Attributes;
  if (!one("type", e.Type) || !one("event", e.Action)) return false;
  if (f.has("container") && !(e.Type === "container" &&
    f.get("container")!.some((c) => e.Actor.ID.startsWith(c) || attrs.name === c))) return false;
  if (f.has("image") && !f.get("image")!.some((i) => attrs.image === i || e.Actor.ID === i)) return false;
  return labelsMatch(attrs, f.get("label"));
}

export { eventMatches };
