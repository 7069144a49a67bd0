import type { ConnectionRecord, ConnectionStore, SubscribeOutcome } from "../../lib/live/fan-out.ts";

/** The connections table of the live-stats tests: subscribed connections in memory, removable. */
export class MemoryConnectionStore implements ConnectionStore {
  constructor(public connections: ConnectionRecord[]) {}
  async add() {}
  async subscribe(): Promise<SubscribeOutcome> {
    return "stored";
  }
  async remove(id: string) {
    this.connections = this.connections.filter((c) => c.connection_id !== id);
  }
  async subscribed() {
    return this.connections;
  }
}
