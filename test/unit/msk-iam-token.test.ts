import { generateAuthTokenFromCredentialsProvider } from "aws-msk-iam-sasl-signer-js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mskIamToken } from "../../lib/adapters/msk-iam-token.ts";

/** Our MSK IAM token must be byte-for-byte what AWS's signer library produces. */
describe("MSK IAM token", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  for (const credentials of [
    { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
    {
      accessKeyId: "ASIAEXAMPLE",
      secretAccessKey: "secret/with+chars",
      sessionToken: "FwoGZXIvYXdzEBYaD+token/with=chars",
      expiration: new Date("2026-11-24T10:05:00Z"),
    },
  ]) {
    it(`equals aws-msk-iam-sasl-signer-js (${credentials.accessKeyId})`, async () => {
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(new Date("2026-11-24T10:00:00Z"));
      const reference = await generateAuthTokenFromCredentialsProvider({
        region: "eu-west-1",
        awsCredentialsProvider: async () => credentials,
      });
      const referenceUrl = new URL(Buffer.from(reference.token, "base64url").toString("utf8"));
      const ours = await mskIamToken({
        region: "eu-west-1",
        credentials,
        userAgent: referenceUrl.searchParams.get("User-Agent") ?? "",
      });
      expect(Buffer.from(ours.token, "base64url").toString("utf8")).toBe(referenceUrl.toString());
      expect(ours.token).toBe(reference.token);
      expect(ours.expiresAt).toBe(reference.expiryTime);
    });
  }
});
