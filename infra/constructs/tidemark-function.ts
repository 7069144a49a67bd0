import { createRequire } from "node:module";
import { basename, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Duration, type RemovalPolicy } from "aws-cdk-lib";
import type { ISecurityGroup, IVpc } from "aws-cdk-lib/aws-ec2";
import { SubnetType } from "aws-cdk-lib/aws-ec2";
import { Architecture, LoggingFormat, Runtime, Tracing } from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import type { FunctionSpec } from "../../lib/topology.ts";
import { bundleExternals } from "../bundling.ts";

export interface TidemarkFunctionProps {
  /** The function as the topology declares it (entry, memory, timeout, description). */
  readonly spec: Pick<FunctionSpec, "entry" | "description" | "memoryMb" | "timeoutSeconds" | "assets">;
  readonly vpc: IVpc;
  readonly securityGroups: ISecurityGroup[];
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  /** Extra environment; grants add their own variables. @default {} */
  readonly environment?: Record<string, string>;
  /** Concurrency reserved for the function. @default none (the account's unreserved pool) */
  readonly reservedConcurrency?: number;
}

/**
 * Every Tidemark function's defaults in one place: bundled from its topology entry by the local
 * esbuild (never Docker) as minified ESM, arm64 on the Node 22 runtime the project runs on,
 * X-Ray tracing, JSON logs into its own log group with retention, in the VPC's private subnets.
 */
export class TidemarkFunction extends Construct {
  readonly fn: NodejsFunction;

  constructor(scope: Construct, id: string, props: TidemarkFunctionProps) {
    super(scope, id);
    const logGroup = new LogGroup(this, "Logs", {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.fn = new NodejsFunction(this, "Function", {
      entry: props.spec.entry,
      handler: "handler",
      description: props.spec.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.spec.memoryMb,
      timeout: Duration.seconds(props.spec.timeoutSeconds),
      tracing: Tracing.ACTIVE,
      loggingFormat: LoggingFormat.JSON,
      logGroup,
      vpc: props.vpc,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: props.securityGroups,
      ...(props.reservedConcurrency === undefined
        ? {}
        : { reservedConcurrentExecutions: props.reservedConcurrency }),
      environment: {
        NODE_OPTIONS: "--enable-source-maps",
        POWERTOOLS_SERVICE_NAME: "tidemark",
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: "node22",
        minify: true,
        sourceMap: true,
        mainFields: ["module", "main"],
        // Only the packages infra/bundling.ts names stay out of the bundle.
        externalModules: bundleExternals,
        banner: "import { createRequire } from 'module';const require = createRequire(import.meta.url);",
        ...(props.spec.assets?.length ? { commandHooks: copyAssets(props.spec.assets) } : {}),
      },
    });
    const role = this.fn.role;
    if (role) {
      NagSuppressions.addResourceSuppressions(
        role,
        [
          {
            id: "AwsSolutions-IAM4",
            reason:
              "AWS's scoped service-role policies for a VPC function: log delivery and the function's ENIs.",
            appliesTo: [
              "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
              "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            ],
          },
          {
            id: "AwsSolutions-IAM5",
            reason:
              "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions; for MSK mapping targets also ec2:DescribeVpcs/DescribeSecurityGroups (same).",
            appliesTo: ["Resource::*"],
          },
        ],
        true,
      );
    }
  }
}

const requireFromHere = createRequire(import.meta.url);

/**
 * The files a handler serves as they are (topology `assets`), copied from the installed npm
 * packages into the bundle's `assets/` after esbuild ran: vendored at build time, never by hand.
 */
function copyAssets(assets: readonly string[]) {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const files = assets.map((a) => (a.startsWith("./") ? resolve(root, a) : requireFromHere.resolve(a)));
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_input: string, output: string) => [
      `mkdir -p "${output}/assets"`,
      ...files.map((f) => `cp "${f}" "${output}/assets/${basename(f)}"`),
    ],
  };
}
