import { FenceConflictError, type WindowStore } from "../../../lib/adapters/window-store.ts";
import { itemId, type WindowItem } from "../../../lib/stream/fold.ts";
import { INITIAL_WATERMARK, type WatermarkState } from "../../../lib/stream/watermark.ts";

/** A WindowStore with DynamoDB's conditional-write semantics, in memory (the integration tests use DynamoDB Local). */
export class MemoryWindowStore implements WindowStore {
  items = new Map<string, WindowItem>();
  watermarks = new Map<string, WatermarkState>();
  failAfterPuts = Number.POSITIVE_INFINITY;
  puts = 0;
  async getMany(keys: readonly { pk: string; sk: string }[]) {
    const out = new Map<string, WindowItem>();
    for (const k of keys) {
      const v = this.items.get(itemId(k.pk, k.sk));
      if (v) out.set(itemId(k.pk, k.sk), structuredClone(v));
    }
    return out;
  }
  async putFenced(item: WindowItem, expected: number | undefined) {
    if (this.puts >= this.failAfterPuts) throw new Error("crash");
    this.puts++;
    const current = this.items.get(itemId(item.pk, item.sk));
    if ((current?.lastOffset ?? undefined) !== expected) throw new FenceConflictError("moved");
    this.items.set(itemId(item.pk, item.sk), structuredClone(item));
  }
  async readWindows(pks: readonly string[]) {
    return [...this.items.values()].filter((i) => pks.includes(i.pk));
  }
  async getWatermark(topic: string, partition: number) {
    return this.watermarks.get(`${topic}/${partition}`) ?? INITIAL_WATERMARK;
  }
  async putWatermark(topic: string, partition: number, state: WatermarkState) {
    this.watermarks.set(`${topic}/${partition}`, state);
  }
  /** Item by item, so a crash can cut a batch anywhere (harsher than DynamoDB's per-transaction atomicity). */
  async commit(
    items: readonly { item: WindowItem; expected: number | undefined }[],
    watermark: { topic: string; partition: number; state: WatermarkState },
  ) {
    for (const { item, expected } of items) await this.putFenced(item, expected);
    await this.putWatermark(watermark.topic, watermark.partition, watermark.state);
  }
}
