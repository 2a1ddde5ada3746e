// The image half of the Engine API.

import type { Context, Route } from "./api";

export function imageRoutes(x: Context): Route[] {
  void x;
  return [];
}
