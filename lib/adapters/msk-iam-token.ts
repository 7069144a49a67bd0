import { createHash, createHmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";

/**
 * The SASL/OAUTHBEARER token MSK's IAM access control expects: a SigV4-presigned
 * `GET https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect`, base64url-encoded
 * (the algorithm of AWS's aws-msk-iam-sasl-signer-js, which a unit test compares this with).
 *
 * Why not that package in Lambda: it loads `@aws-sdk/credential-providers` (and a deprecated
 * util package), which the Lambda runtime does not promise to ship, and which would take a
 * bundle past 1 MB; here credentials come from the SDK client the caller already has.
 */
export interface MskTokenInput {
  readonly region: string;
  readonly credentials: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken?: string;
    readonly expiration?: Date;
  };
  /** Added to the signed URL (not signed), as AWS's signers do. */
  readonly userAgent?: string;
}

const EXPIRY_SECONDS = 900;

/** SigV4's hash: node's crypto behind the `Checksum` interface the signer wants. */
class Sha256 {
  readonly #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash("sha256") : createHmac("sha256", toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {
    throw new Error("not supported");
  }
}

function toBuffer(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === "string") return Buffer.from(data, "utf8");
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** RFC 3986 escaping, as SigV4 and the SDK's URL formatter use. */
function uriEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export async function mskIamToken(input: MskTokenInput): Promise<{ token: string; expiresAt: number }> {
  const hostname = `kafka.${input.region}.amazonaws.com`;
  const signer = new SignatureV4({
    service: "kafka-cluster",
    region: input.region,
    credentials: input.credentials,
    sha256: Sha256,
    applyChecksum: false,
  });
  const expiration = input.credentials.expiration;
  const ttl =
    expiration === undefined
      ? EXPIRY_SECONDS
      : Math.min((expiration.getTime() - Date.now()) / 1000, EXPIRY_SECONDS);
  const signed = await signer.presign(
    {
      method: "GET",
      protocol: "https:",
      hostname,
      path: "/",
      headers: { host: hostname },
      query: { Action: "kafka-cluster:Connect" },
    },
    { expiresIn: ttl },
  );
  const query: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.query ?? {})) if (typeof v === "string") query[k] = v;
  if (input.userAgent) query["User-Agent"] = input.userAgent;
  // Sorted, as the SDK's URL formatter emits them.
  const search = Object.entries(query)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${uriEscape(k)}=${uriEscape(v)}`)
    .join("&");
  const url = `https://${hostname}/?${search}`;
  return { token: Buffer.from(url, "utf8").toString("base64url"), expiresAt: Date.now() + ttl * 1000 };
}
