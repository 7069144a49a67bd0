import type { Stack } from "aws-cdk-lib";
import { NagSuppressions } from "cdk-nag";

/**
 * The only stack-wide cdk-nag acceptance; every other finding is suppressed on its own resource
 * (next to the resource, in infra/) with the reason that holds for that resource.
 */
export function applySuppressions(stack: Stack): void {
  NagSuppressions.addStackSuppressions(stack, [
    {
      id: "AwsSolutions-L1",
      reason:
        "Functions target Node.js 22 on purpose: the project's own Node version, so local and Lambda behave alike.",
    },
  ]);
}
