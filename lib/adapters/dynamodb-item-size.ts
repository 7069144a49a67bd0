/**
 * DynamoDB's size of an item, as it bills writes: the sum of its attribute names' and values'
 * lengths (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html).
 * A string is its UTF-8 bytes, a binary its bytes, a number about 1 byte per two significant
 * digits plus 1, a boolean or null 1 byte, a list or map 3 bytes plus its elements (and a map's keys).
 * DynamoDB documents the number rule as approximate; `numberSize` follows what DynamoDB Local
 * bills, base-100 digits.
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

/**
 * A number is stored in base-100 digits aligned on the decimal point, leading and trailing zero
 * pairs dropped, plus a byte: 120 is `01|20` (3 bytes), 1,200 is `12` (2), 0.5 is `.50` (2),
 * 0 is one byte, and a negative number one byte more.
 * Measured on DynamoDB Local (test/integration/dynamodb-item-size.test.ts); DynamoDB documents
 * "about 1 byte per two significant digits, plus 1", which this refines.
 */
function numberSize(n: number | bigint): number {
  if (n === 0 || n === 0n) return 1;
  let digits: string;
  let exponent: number; // the power of ten of the first significant digit
  if (typeof n === "bigint") {
    digits = (n < 0n ? -n : n).toString();
    exponent = digits.length - 1;
  } else {
    const [mantissa = "0", e = "0"] = Math.abs(n).toExponential().split("e");
    digits = mantissa.replace(".", "");
    exponent = Number(e);
  }
  digits = digits.replace(/0+$/, "");
  const last = exponent - (Math.max(1, digits.length) - 1);
  const negative = typeof n === "bigint" ? n < 0n : n < 0;
  // A negative number takes a byte more (a terminator, in the order-preserving encoding).
  return Math.floor(exponent / 2) - Math.floor(last / 2) + 1 + 1 + (negative ? 1 : 0);
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
