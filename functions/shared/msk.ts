import type { MSKEvent } from "aws-lambda";

/** One Kafka record from an MSK event, decoded. */
export interface DecodedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
  readonly key: string;
  readonly value: string;
}

/** Flattens an MSK event into records in partition-then-offset order, key and value decoded. */
export function decodeMskEvent(event: MSKEvent): DecodedRecord[] {
  const out: DecodedRecord[] = [];
  for (const records of Object.values(event.records)) {
    for (const r of records) {
      out.push({
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key ? Buffer.from(r.key, "base64").toString("utf8") : "",
        value: r.value ? Buffer.from(r.value, "base64").toString("utf8") : "",
      });
    }
  }
  return out;
}
