/**
 * DynamoDB's size of an item, as it bills writes: the sum of its attribute names' and values'
 * lengths (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html).
 * A string is its UTF-8 bytes, a binary its bytes, a number 1 byte per two significant digits
 * plus 1, a boolean or null 1 byte, a list or map 3 bytes plus its elements (and a map's keys).
 *
 * The write path needs it for one figure DynamoDB cannot report in advance: the write units a
 * delta item will cost again when a compaction deletes it (a delete is billed by the size of the
 * item deleted, like a put of it). `test/integration/dynamodb-item-size.test.ts` checks it against
 * the units DynamoDB Local reports.
 */
export function itemSizeBytes(item: object): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) {
    if (value === undefined) continue;
    size += utf8Length(name) + valueSize(value);
  }
  return size;
}

/** Write units of a put or delete of an item of `bytes` (transactional writes cost twice). */
export const writeUnits = (bytes: number, transactional: boolean) =>
  Math.max(1, Math.ceil(bytes / 1024)) * (transactional ? 2 : 1);

const encoder = new TextEncoder();
const utf8Length = (s: string) => {
  // ASCII (every key and most values here) without encoding it.
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  return ascii ? s.length : encoder.encode(s).length;
};

function numberSize(n: number | bigint): number {
  // Significant digits: no sign, no leading or trailing zeros, no decimal point or exponent.
  const text = typeof n === "bigint" ? n.toString() : Math.abs(n).toExponential().split("e")[0];
  const digits = (text ?? "").replace(/[-.]/g, "").replace(/^0+/, "").replace(/0+$/, "");
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

function valueSize(value: unknown): number {
  if (typeof value === "string") return utf8Length(value);
  if (typeof value === "number" || typeof value === "bigint") return numberSize(value);
  if (typeof value === "boolean" || value === null) return 1;
  if (value instanceof Uint8Array) return value.byteLength;
  if (Array.isArray(value)) return 3 + value.reduce((n: number, v) => n + valueSize(v) + 1, 0);
  if (value instanceof Set) return [...value].reduce((n: number, v) => n + valueSize(v), 0);
  if (typeof value === "object")
    return (
      3 +
      Object.entries(value as Record<string, unknown>).reduce(
        (n, [k, v]) => n + utf8Length(k) + valueSize(v) + 1,
        0,
      )
    );
  return 0;
}
