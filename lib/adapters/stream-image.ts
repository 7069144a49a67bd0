import type { AttributeValue as SdkAttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { AttributeValue as StreamAttributeValue } from "aws-lambda";

/**
 * A DynamoDB stream image as Lambda delivers it, unmarshalled to plain values. Lambda's event is
 * JSON, so binary attributes (`B`, `BS`, also inside `M` and `L`) arrive as base64 strings, where
 * the SDK's `unmarshall()` expects bytes: given the strings, it passes them through as strings,
 * and every reader that checks for bytes then sees no binary attribute at all. They are decoded
 * here first. Bytes where Lambda sends base64 are refused: a source that delivers them does not
 * behave like AWS (the local emulation must not hide this again).
 */
export function unmarshallStreamImage(
  image: Readonly<Record<string, StreamAttributeValue>>,
): Record<string, unknown> {
  return unmarshall(toSdkMap(image));
}

function toSdkMap(map: Readonly<Record<string, StreamAttributeValue>>): Record<string, SdkAttributeValue> {
  const out: Record<string, SdkAttributeValue> = {};
  for (const [name, value] of Object.entries(map)) out[name] = toSdkValue(value, name);
  return out;
}

function toSdkValue(value: StreamAttributeValue, path: string): SdkAttributeValue {
  if (value.B !== undefined) return { B: fromBase64(value.B, path) };
  if (value.BS !== undefined) return { BS: value.BS.map((b) => fromBase64(b, path)) };
  if (value.M !== undefined) {
    const m: Record<string, SdkAttributeValue> = {};
    for (const [name, v] of Object.entries(value.M)) m[name] = toSdkValue(v, `${path}.${name}`);
    return { M: m };
  }
  if (value.L !== undefined) return { L: value.L.map((v, i) => toSdkValue(v, `${path}[${i}]`)) };
  // S, N, SS, NS, BOOL and NULL have the same shape in Lambda's JSON and in the SDK.
  return value as SdkAttributeValue;
}

function fromBase64(encoded: unknown, path: string): Uint8Array {
  if (typeof encoded !== "string") {
    throw new TypeError(
      `stream image attribute ${path}: binary value is not base64 text as Lambda delivers it`,
    );
  }
  return Buffer.from(encoded, "base64");
}
