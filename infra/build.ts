import { type App, Aspects, Tags } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { batchingWindowOverride, ingestConcurrencyOverride, kafkaConnectionBudget } from "../lib/topology.ts";
import { applySuppressions } from "./nag-suppressions.ts";
import { type RulesWriteAuth, TidemarkStack } from "./stack.ts";
import { stageFrom } from "./stages.ts";

/** Adds the Tidemark stack of the app's `stage` context, checked by cdk-nag. Shared by the CLI app and tests. */
export function buildTidemark(app: App): TidemarkStack {
  const stage = stageFrom(app.node.tryGetContext("stage"));
  // `-c kafkaBrokers=host:port,…` swaps MSK for a self-managed Kafka (LocalStack deployments).
  const brokers = app.node.tryGetContext("kafkaBrokers") as string | undefined;
  // `-c alarmEmail=ops@example.com` subscribes an address to the alarm topic.
  const alarmEmail = app.node.tryGetContext("alarmEmail") as string | undefined;
  // `-c aggregateBatchingWindowSeconds=1`: fewer write units on a quiet stream, staler stats; `=0`:
  // the other way (docs/performance.md). Unset: AWS's default for Kafka sources, 500 ms.
  const aggregateWindow = batchingWindowOverride(
    app.node.tryGetContext("aggregateBatchingWindowSeconds"),
    "AggregateEvents",
  );
  // `-c ingestReservedConcurrency=N`: fewer ingest environments than the connection budget allows
  // (a small account, a cluster shared with other clients), or more, up to the quota itself.
  const ingestConcurrency = ingestConcurrencyOverride(
    app.node.tryGetContext("ingestReservedConcurrency"),
    kafkaConnectionBudget(stage.maximumPollers),
  );
  const stack = new TidemarkStack(app, `Tidemark-${stage.name}`, {
    stage,
    ...(brokers ? { selfManagedKafkaBrokers: brokers.split(",").map((b) => b.trim()) } : {}),
    ...(alarmEmail ? { alarmEmail } : {}),
    rulesWriteAuth: rulesWriteAuthFrom(app.node.tryGetContext("rulesAuth")),
    ...(aggregateWindow !== undefined ? { batchingWindowSeconds: { AggregateEvents: aggregateWindow } } : {}),
    ...(ingestConcurrency !== undefined ? { ingestReservedConcurrency: ingestConcurrency } : {}),
    description: `Tidemark real-time analytics (${stage.name})`,
  });
  Tags.of(stack).add("project", "tidemark");
  Tags.of(stack).add("stage", stage.name);
  applySuppressions(stack);
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return stack;
}

/** `-c rulesAuth=apiKey|iam|<Cognito user pool ARN>` (default apiKey). */
export function rulesWriteAuthFrom(value: unknown): RulesWriteAuth {
  if (value === undefined || value === "apiKey") return "apiKey";
  if (value === "iam") return "iam";
  if (typeof value === "string" && value.startsWith("arn:") && value.includes(":userpool/"))
    return { cognitoUserPoolArn: value };
  throw new Error(`rulesAuth must be apiKey, iam or a Cognito user pool ARN, not '${String(value)}'`);
}
