import { RemovalPolicy } from "aws-cdk-lib";
import { RetentionDays } from "aws-cdk-lib/aws-logs";

/** What differs between stages, chosen with `-c stage=dev|prod` (default dev). */
export interface StageConfig {
  readonly name: "dev" | "prod";
  /** What happens to tables, buckets and log groups when the stack is deleted. */
  readonly removalPolicy: RemovalPolicy;
  readonly logRetention: RetentionDays;
  /** NAT gateways of the VPC (one is enough to try it out; one per AZ for production). */
  readonly natGateways: number;
  /** Maximum ESM pollers per mapping (provisioned mode). */
  readonly maximumPollers: number;
  /** Athena bytes-scanned limit per query. */
  readonly athenaScanLimitBytes: number;
  /** Usage plan quota per day for the default API key. */
  readonly dailyQuota: number;
}

export const stages: Record<StageConfig["name"], StageConfig> = {
  dev: {
    name: "dev",
    removalPolicy: RemovalPolicy.DESTROY,
    logRetention: RetentionDays.ONE_WEEK,
    natGateways: 1,
    maximumPollers: 2,
    athenaScanLimitBytes: 1024 ** 3,
    dailyQuota: 1_000_000,
  },
  prod: {
    name: "prod",
    removalPolicy: RemovalPolicy.RETAIN,
    logRetention: RetentionDays.THREE_MONTHS,
    natGateways: 2,
    maximumPollers: 20,
    athenaScanLimitBytes: 100 * 1024 ** 3,
    dailyQuota: 100_000_000,
  },
};

export function stageFrom(value: unknown): StageConfig {
  const name = typeof value === "string" ? value : "dev";
  const stage = stages[name as StageConfig["name"]];
  if (!stage) throw new Error(`unknown stage '${name}'; use one of ${Object.keys(stages).join(", ")}`);
  return stage;
}
