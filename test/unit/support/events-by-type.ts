import type { WindowStore } from "../../../lib/adapters/window-store.ts";
import { readStats } from "../../../lib/pipeline/stats-service.ts";
import { BUILT_IN_RULES } from "../../../lib/stream/rules.ts";

/** Events counted by `events_by_type` in the minute around `at`, read as GET /stats reads them. */
export async function eventsByTypeCount(store: WindowStore, at: number): Promise<number> {
  const stats = (await readStats(
    store,
    BUILT_IN_RULES,
    { kind: "rule", rule_id: "events_by_type", from: at - 30_000, to: at + 30_000 },
    at,
  )) as { count: number };
  return stats.count;
}
