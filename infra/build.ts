import { type App, Aspects, Tags } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { applySuppressions } from "./nag-suppressions.ts";
import { TidemarkStack } from "./stack.ts";
import { stageFrom } from "./stages.ts";

/** Adds the Tidemark stack of the app's `stage` context, checked by cdk-nag. Shared by the CLI app and tests. */
export function buildTidemark(app: App): TidemarkStack {
  const stage = stageFrom(app.node.tryGetContext("stage"));
  // `-c kafkaBrokers=host:port,…` swaps MSK for a self-managed Kafka (LocalStack deployments).
  const brokers = app.node.tryGetContext("kafkaBrokers") as string | undefined;
  const stack = new TidemarkStack(app, `Tidemark-${stage.name}`, {
    stage,
    ...(brokers ? { selfManagedKafkaBrokers: brokers.split(",").map((b) => b.trim()) } : {}),
    description: `Tidemark real-time analytics (${stage.name})`,
  });
  Tags.of(stack).add("project", "tidemark");
  Tags.of(stack).add("stage", stage.name);
  applySuppressions(stack);
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return stack;
}
