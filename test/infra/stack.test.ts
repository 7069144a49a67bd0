import { App } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { buildTidemark } from "../../infra/build.ts";
import {
  buckets,
  eventSourceMappings,
  functions,
  routes,
  tableStreamMappings,
  tables,
  topics,
  webSocketApi,
} from "../../lib/topology.ts";

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

describe("CDK stack (dev)", () => {
  let template: Template;
  let resources: Resources;
  let annotations: Annotations;

  beforeAll(() => {
    const app = new App({ context: { stage: "dev" } });
    const stack = buildTidemark(app);
    template = Template.fromStack(stack);
    resources = template.toJSON().Resources as Resources;
    annotations = Annotations.fromStack(stack);
  }, 180_000);

  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

  it("passes cdk-nag AwsSolutions with no unsuppressed error or warning", () => {
    expect(annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual([]);
    expect(annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual([]);
  });

  it("declares every route of the topology with its API key requirement", () => {
    const methods = ofType("AWS::ApiGateway::Method").map(([, r]) => r.Properties ?? {});
    for (const route of routes) {
      const found = methods.filter(
        (m) => m.HttpMethod === route.method && m.ApiKeyRequired === route.apiKeyRequired,
      );
      expect(found.length, `${route.method} ${route.path}`).toBeGreaterThan(0);
    }
    const paths = ofType("AWS::ApiGateway::Resource").map(([, r]) => r.Properties?.PathPart);
    for (const part of new Set(routes.flatMap((r) => r.path.split("/").filter(Boolean))))
      expect(paths).toContain(part);
    template.hasResourceProperties("AWS::ApiGateway::Stage", {
      StageName: "v1",
      TracingEnabled: true,
      AccessLogSetting: Match.objectLike({ DestinationArn: Match.anyValue() }),
      MethodSettings: Match.arrayWith([
        Match.objectLike({ ThrottlingRateLimit: 5000, ThrottlingBurstLimit: 2000 }),
      ]),
    });
    template.hasResourceProperties("AWS::ApiGateway::UsagePlan", {
      Throttle: { RateLimit: 5000, BurstLimit: 2000 },
      Quota: Match.objectLike({ Period: "DAY" }),
    });
    template.resourceCountIs("AWS::ApiGateway::ApiKey", 1);
  });

  it("declares the live-stats WebSocket API: routes, throttled and logged stage, @connections grants", () => {
    template.hasResourceProperties("AWS::ApiGatewayV2::Api", {
      ProtocolType: "WEBSOCKET",
      RouteSelectionExpression: webSocketApi.routeSelectionExpression,
    });
    const routeKeys = ofType("AWS::ApiGatewayV2::Route").map(([, r]) => r.Properties?.RouteKey);
    expect(routeKeys.sort()).toEqual(webSocketApi.routes.map((r) => r.routeKey).sort());
    template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: webSocketApi.stageName,
      AutoDeploy: true,
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
      DefaultRouteSettings: Match.objectLike({ ThrottlingRateLimit: 5000, ThrottlingBurstLimit: 2000 }),
    });
    // Exactly the functions that post to connections may manage them, and learn the endpoint.
    const managing = ofType("AWS::IAM::Policy").filter(([, r]) =>
      JSON.stringify(r.Properties?.PolicyDocument).includes("execute-api:ManageConnections"),
    );
    const posting = Object.values(functions).filter((f) => "postsToConnections" in f && f.postsToConnections);
    expect(managing).toHaveLength(posting.length);
    const fns = ofType("AWS::Lambda::Function").map(([, r]) => r.Properties ?? {});
    for (const spec of posting) {
      const fn = fns.find((p) => p.Description === spec.description) as
        | { Environment?: { Variables?: Record<string, unknown> } }
        | undefined;
      expect(fn?.Environment?.Variables?.[webSocketApi.managementEndpointEnvVar], spec.entry).toBeDefined();
    }
    const dashboard = fns.find((p) => p.Description === functions.dashboard.description) as
      | { Environment?: { Variables?: Record<string, unknown> } }
      | undefined;
    expect(dashboard?.Environment?.Variables?.[webSocketApi.urlEnvVar]).toBeDefined();
  });

  it("creates every topic with its partition count through the topics custom resource", () => {
    const [, custom] = ofType("Custom::KafkaTopics")[0] ?? [];
    const declared = custom?.Properties?.Topics as { Name: string; Partitions: string }[];
    expect(declared.map((t) => [t.Name, Number(t.Partitions)]).sort()).toEqual(
      Object.values(topics)
        .map((t) => [t.name, t.partitions])
        .sort(),
    );
    template.hasResourceProperties("AWS::MSK::ServerlessCluster", {
      ClientAuthentication: { Sasl: { Iam: { Enabled: true } } },
    });
  });

  it("creates every table on demand with PITR, TTL and streams as declared", () => {
    for (const spec of Object.values(tables)) {
      template.hasResourceProperties("AWS::DynamoDB::Table", {
        BillingMode: "PAY_PER_REQUEST",
        KeySchema: [
          { AttributeName: spec.partitionKey.name, KeyType: "HASH" },
          ...("sortKey" in spec ? [{ AttributeName: spec.sortKey.name, KeyType: "RANGE" }] : []),
        ],
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        ...("ttlAttribute" in spec
          ? { TimeToLiveSpecification: { AttributeName: spec.ttlAttribute, Enabled: true } }
          : {}),
        ...("stream" in spec ? { StreamSpecification: { StreamViewType: spec.stream } } : {}),
      });
    }
    template.resourceCountIs("AWS::DynamoDB::Table", Object.keys(tables).length);
  });

  it("wires every MSK event-source mapping as the local runtime does", () => {
    for (const spec of eventSourceMappings) {
      template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        Topics: [topics[spec.topic].name],
        AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: spec.consumerGroup },
        BatchSize: spec.batchSize,
        MaximumBatchingWindowInSeconds: spec.maximumBatchingWindowSeconds,
        StartingPosition: spec.startingPosition,
        MaximumRetryAttempts: spec.maximumRetryAttempts,
        DestinationConfig: { OnFailure: { Destination: `kafka://${topics[spec.onFailure].name}` } },
        FunctionResponseTypes: ["ReportBatchItemFailures"],
      });
    }
    for (const spec of tableStreamMappings) {
      template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        BatchSize: spec.batchSize,
        StartingPosition: spec.startingPosition,
        MaximumRetryAttempts: spec.maximumRetryAttempts,
        FunctionResponseTypes: ["ReportBatchItemFailures"],
        EventSourceArn: Match.objectLike({
          "Fn::GetAtt": Match.arrayWith([Match.stringLikeRegexp("AggregatesTable")]),
        }),
      });
    }
  });

  it("deploys every handler of functions/ with the defaults: Node 22, arm64, tracing, JSON logs, in the VPC", () => {
    const fns = ofType("AWS::Lambda::Function")
      .map(([, r]) => r.Properties ?? {})
      .filter((p) => p.Runtime === "nodejs22.x");
    for (const spec of Object.values(functions)) {
      const fn = fns.find((p) => p.Description === spec.description);
      expect(fn, spec.entry).toBeDefined();
      expect(fn).toMatchObject({
        Architectures: ["arm64"],
        MemorySize: spec.memoryMb,
        Timeout: spec.timeoutSeconds,
        TracingConfig: { Mode: "Active" },
      });
      expect(fn?.LoggingConfig).toMatchObject({ LogFormat: "JSON" });
      expect(fn?.VpcConfig).toBeDefined();
    }
  });

  it("grants least privilege on Kafka: only the ingest function writes events.raw", () => {
    interface Statement {
      Action: string | string[];
      Resource: unknown;
    }
    const writesRaw = ofType("AWS::IAM::Policy")
      .filter(([, r]) =>
        ((r.Properties?.PolicyDocument as { Statement?: Statement[] } | undefined)?.Statement ?? []).some(
          (st) =>
            [st.Action].flat().includes("kafka-cluster:WriteData") &&
            JSON.stringify(st.Resource).includes(`/${topics.eventsRaw.name}"`),
        ),
      )
      .map(([id]) => id);
    expect(writesRaw).toHaveLength(1);
    expect(writesRaw[0]).toMatch(/^IngestFunction/);
    const aggregatePolicy = JSON.stringify(
      ofType("AWS::IAM::Policy").find(([id]) => id.startsWith("AggregateFunction"))?.[1].Properties,
    );
    expect(aggregatePolicy).toContain("kafka-cluster:AlterGroup");
    expect(aggregatePolicy).toContain(eventSourceMappings[0]?.consumerGroup);
    expect(aggregatePolicy).not.toContain("kafka-cluster:*");
  });

  it("keeps the archive private, encrypted, TLS-only, with the brief's lifecycle", () => {
    const lifecycle = buckets.archive.lifecycle;
    template.hasResourceProperties("AWS::S3::Bucket", {
      BucketEncryption: Match.anyValue(),
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Prefix: buckets.archive.prefix,
            ExpirationInDays: lifecycle.expireDays,
            Transitions: [
              { StorageClass: "STANDARD_IA", TransitionInDays: lifecycle.transitionToInfrequentAccessDays },
              { StorageClass: "GLACIER_IR", TransitionInDays: lifecycle.transitionToGlacierDays },
            ],
          }),
        ]),
      },
    });
    template.hasResourceProperties("AWS::S3::BucketPolicy", {
      PolicyDocument: Match.objectLike({
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
        ]),
      }),
    });
  });

  it("projects the Glue table's partitions and limits Athena scans", () => {
    template.hasResourceProperties("AWS::Glue::Table", {
      TableInput: Match.objectLike({
        Parameters: Match.objectLike({
          "projection.enabled": "true",
          "projection.event_type.type": "injected",
          "projection.dt.type": "date",
          "projection.hour.type": "integer",
        }),
        PartitionKeys: [
          { Name: "event_type", Type: "string" },
          { Name: "dt", Type: "string" },
          { Name: "hour", Type: "string" },
        ],
      }),
    });
    template.hasResourceProperties("AWS::Athena::WorkGroup", {
      WorkGroupConfiguration: Match.objectLike({
        EnforceWorkGroupConfiguration: true,
        BytesScannedCutoffPerQuery: 1024 ** 3,
      }),
    });
  });

  it("alarms on errors, throttles, offset lag and dead letters, and has a dashboard", () => {
    const alarms = ofType("AWS::CloudWatch::Alarm").map(([, r]) => r.Properties ?? {});
    const metricNames = new Set(
      alarms.flatMap((a) => [
        a.MetricName,
        ...((a.Metrics as { MetricStat?: { Metric: { MetricName: string } } }[] | undefined) ?? []).map(
          (m) => m.MetricStat?.Metric.MetricName,
        ),
      ]),
    );
    for (const name of ["Errors", "Throttles", "OffsetLag", "MessagesInPerSec"])
      expect(metricNames).toContain(name);
    expect(alarms.filter((a) => a.MetricName === "Errors").length).toBeGreaterThanOrEqual(
      Object.keys(functions).length,
    );
    template.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
  });
});

describe("CDK stack (prod)", () => {
  it("retains data on delete", () => {
    const app = new App({ context: { stage: "prod" } });
    const template = Template.fromStack(buildTidemark(app));
    template.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain" });
    template.hasResource("AWS::S3::Bucket", { DeletionPolicy: "Retain" });
  }, 180_000);
});

describe("CDK stack with a self-managed Kafka (LocalStack)", () => {
  it("uses self-managed Kafka event sources and no MSK cluster", () => {
    const app = new App({ context: { stage: "dev", kafkaBrokers: "kafka:9092" } });
    const template = Template.fromStack(buildTidemark(app));
    template.resourceCountIs("AWS::MSK::ServerlessCluster", 0);
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      SelfManagedEventSource: { Endpoints: { KafkaBootstrapServers: ["kafka:9092"] } },
      SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: eventSourceMappings[0]?.consumerGroup },
    });
  }, 180_000);
});
