import { App, Aspects, Tags } from "aws-cdk-lib";
import cdkNag from "cdk-nag";
import { applySuppressions } from "./nag-suppressions.ts";
import { TidemarkStack } from "./stack.ts";
import { stageFrom } from "./stages.ts";

/**
 * `npx cdk synth -c stage=dev|prod`: environment-agnostic (no account or region baked in, so it
 * synthesizes offline without credentials; `cdk deploy` picks them from the caller).
 */
const app = new App();
const stage = stageFrom(app.node.tryGetContext("stage"));
const stack = new TidemarkStack(app, `Tidemark-${stage.name}`, {
  stage,
  description: `Tidemark real-time analytics (${stage.name})`,
});
Tags.of(stack).add("project", "tidemark");
Tags.of(stack).add("stage", stage.name);
applySuppressions(stack);
Aspects.of(app).add(new cdkNag.AwsSolutionsChecks({ verbose: true }));
