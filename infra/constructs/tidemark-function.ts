import { createRequire } from "node:module";
import { basename, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Duration, type RemovalPolicy } from "aws-cdk-lib";
import type { ISecurityGroup, IVpc } from "aws-cdk-lib/aws-ec2";
import { SubnetType } from "aws-cdk-lib/aws-ec2";
import { Architecture, LoggingFormat, Runtime, Tracing } from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { FunctionSpec } from "../../lib/topology.ts";

export interface TidemarkFunctionProps {
  /** The function as the topology declares it (entry, memory, timeout, description). */
  readonly spec: Pick<FunctionSpec, "entry" | "description" | "memoryMb" | "timeoutSeconds" | "assets">;
  readonly vpc: IVpc;
  readonly securityGroups: ISecurityGroup[];
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  /** Extra environment; grants add their own variables. @default {} */
  readonly environment?: Record<string, string>;
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
        // The runtime ships the AWS SDK v3; DuckDB is only used by the local query engine.
        externalModules: ["@aws-sdk/*", "@duckdb/node-api"],
        banner: "import { createRequire } from 'module';const require = createRequire(import.meta.url);",
        ...(props.spec.assets?.length ? { commandHooks: copyAssets(props.spec.assets) } : {}),
      },
    });
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
