import type { Stack } from "aws-cdk-lib";
import { NagSuppressions } from "cdk-nag";

/** Every cdk-nag finding we accept, each with the reason. Anything not listed fails synth. */
export function applySuppressions(stack: Stack): void {
  NagSuppressions.addStackSuppressions(stack, [
    {
      id: "AwsSolutions-IAM4",
      reason:
        "AWSLambdaBasicExecutionRole / AWSLambdaVPCAccessExecutionRole are the scoped AWS policies for log delivery and VPC ENIs; the API Gateway CloudWatch role uses AmazonAPIGatewayPushToCloudWatchLogs.",
    },
    {
      id: "AwsSolutions-IAM5",
      reason:
        "Wildcards are limited to object keys under the archive prefix, X-Ray segment APIs (no resource ARNs), the CDK Provider framework's own function versions, and ENI management required by VPC Lambdas.",
    },
    {
      id: "AwsSolutions-L1",
      reason:
        "Functions target Node.js 22 on purpose: the project's own Node version, so local and Lambda behave alike.",
    },
    {
      id: "AwsSolutions-APIG2",
      reason:
        "A request validator is attached; bodies are validated in the handler, which reports every problem by index and field.",
    },
    {
      id: "AwsSolutions-APIG3",
      reason:
        "WAF is left to the deployer (cost, rule choice); stage throttling and usage plans limit abuse.",
    },
    {
      id: "AwsSolutions-APIG4",
      reason:
        "Clients authenticate with API keys and usage plans (machine-to-machine ingestion); /health, /openapi.json and the /dashboard page (no data of its own) are public by design. The live-stats WebSocket carries aggregate numbers only; browsers cannot send an API key header on a WebSocket, so restricting it needs a Lambda authorizer (docs/live-stats.md).",
    },
    {
      id: "AwsSolutions-COG4",
      reason: "No Cognito user pool: clients are services using API keys.",
    },
  ]);
}
