import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { buildTidemark } from "../../infra/build.ts";
import { stages } from "../../infra/stages.ts";
import { MAX_FUTURE_SKEW_MS } from "../../lib/contract/event.ts";
import {
  buckets,
  eventSourceMappings,
  functions,
  ingestThrottle,
  kafkaConnectionBudget,
  kafkaConnectionQuota,
  kafkaConnectionsPerEnvironment,
  routes,
  tableStreamMappings,
  tables,
  topics,
  webSocketApi,
} from "../../lib/topology.ts";

const pascalCase = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
type GlueTableInput = {
  Parameters: Record<string, string>;
  StorageDescriptor: {
    Columns: { Name: string; Type: string }[];
    SerdeInfo: { SerializationLibrary: string; Parameters?: Record<string, string> };
  };
};

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
  const glueTableInput = () => {
    const [found] = ofType("AWS::Glue::Table");
    if (!found) throw new Error("no Glue table");
    return found[1].Properties?.TableInput as GlueTableInput;
  };

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

  it("keeps the stage's error logging and metrics on POST /events, whose own throttle is a separate method setting", () => {
    // A method's settings entry replaces the stage-wide one for that method: what it leaves out is
    // off, not inherited (API Gateway's defaults: logging OFF, detailed metrics disabled).
    const [, stage] = ofType("AWS::ApiGateway::Stage")[0] ?? [];
    const settings = (stage?.Properties?.MethodSettings ?? []) as Record<string, unknown>[];
    const stageWide = settings.find((s) => s.ResourcePath === "/*" && s.HttpMethod === "*");
    expect(stageWide).toMatchObject({ LoggingLevel: "ERROR", MetricsEnabled: true });
    const postEvents = settings.find((s) => s.ResourcePath === "/~1events" && s.HttpMethod === "POST");
    expect(postEvents).toBeDefined();
    for (const s of settings) {
      expect(s, `${String(s.ResourcePath)} ${String(s.HttpMethod)}`).toMatchObject({
        LoggingLevel: stageWide?.LoggingLevel,
        MetricsEnabled: stageWide?.MetricsEnabled,
        DataTraceEnabled: stageWide?.DataTraceEnabled,
      });
    }
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

  // API Gateway refuses a stage with logging ("CloudWatch Logs role ARN must be set in account
  // settings to enable logging") until the account's CloudWatch role is set; nothing else orders
  // the WebSocket stage after AWS::ApiGateway::Account (the REST stage waits for it by CDK).
  it("creates the WebSocket stage (access logs) after API Gateway's account CloudWatch role", () => {
    const [accountId] = ofType("AWS::ApiGateway::Account")[0] ?? [];
    expect(accountId).toBeDefined();
    const stages = ofType("AWS::ApiGatewayV2::Stage") as [string, { DependsOn?: string[] }][];
    expect(stages).toHaveLength(1);
    for (const [id, stage] of stages) expect(stage.DependsOn ?? [], id).toContain(accountId);
  });

  it("puts a Lambda REQUEST authorizer and the usage plan's API key on the WebSocket's $connect", () => {
    const { function: authorizerFn, keyParameter } = webSocketApi.connectAuthorizer;
    const [authorizerId, authorizer] = ofType("AWS::ApiGatewayV2::Authorizer")[0] ?? [];
    expect(ofType("AWS::ApiGatewayV2::Authorizer")).toHaveLength(1);
    expect(authorizer?.Properties).toMatchObject({
      AuthorizerType: "REQUEST",
      IdentitySource: [`route.request.querystring.${keyParameter}`],
    });
    // The authorizer is the topology's function, built like every other one.
    const [fnId] =
      ofType("AWS::Lambda::Function").find(
        ([, r]) => r.Properties?.Description === functions[authorizerFn].description,
      ) ?? [];
    expect(fnId).toBeDefined();
    expect(JSON.stringify(authorizer?.Properties?.AuthorizerUri)).toContain(`"${fnId}","Arn"`);
    // The key the authorizer returns is the one API Gateway checks against the usage plan.
    template.hasResourceProperties("AWS::ApiGatewayV2::Api", {
      ProtocolType: "WEBSOCKET",
      ApiKeySelectionExpression: "$context.authorizer.usageIdentifierKey",
    });
    const routesByKey = new Map(
      ofType("AWS::ApiGatewayV2::Route").map(([id, r]) => [r.Properties?.RouteKey, { id, ...r }]),
    );
    expect(routesByKey.get("$connect")?.Properties).toMatchObject({
      AuthorizationType: "CUSTOM",
      AuthorizerId: { Ref: authorizerId },
      ApiKeyRequired: true,
    });
    for (const route of webSocketApi.routes.filter((r) => r.routeKey !== "$connect"))
      expect(routesByKey.get(route.routeKey)?.Properties?.ApiKeyRequired, route.routeKey).toBeUndefined();
    // $connect needs no cdk-nag exception any more.
    const connectMetadata = (resources[routesByKey.get("$connect")?.id ?? ""] as { Metadata?: unknown })
      .Metadata;
    expect(JSON.stringify(connectMetadata ?? {})).not.toContain("AwsSolutions-APIG4");
    // One usage plan holds both APIs' stages, so one key opens both; it waits for the live stage.
    const [liveApiId] = ofType("AWS::ApiGatewayV2::Api")[0] ?? [];
    const [liveStageId] = ofType("AWS::ApiGatewayV2::Stage")[0] ?? [];
    const plans = ofType("AWS::ApiGateway::UsagePlan");
    expect(plans).toHaveLength(1);
    const [, plan] = plans[0] ?? [];
    expect(plan?.Properties?.ApiStages).toEqual([
      { ApiId: { Ref: ofType("AWS::ApiGateway::RestApi")[0]?.[0] }, Stage: expect.anything() },
      { ApiId: { Ref: liveApiId }, Stage: webSocketApi.stageName },
    ]);
    expect((plan as { DependsOn?: string[] }).DependsOn).toContain(liveStageId);
    // Only API Gateway may invoke it, and only through this authorizer.
    template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunction",
      FunctionName: { "Fn::GetAtt": [fnId, "Arn"] },
      Principal: "apigateway.amazonaws.com",
      SourceArn: Match.objectLike({
        "Fn::Join": ["", Match.arrayWith([{ Ref: liveApiId }, "/authorizers/", { Ref: authorizerId }])],
      }),
    });
  });

  it("grants the WebSocket authorizer nothing but logs, ENIs and tracing (it reads no data, no keys)", () => {
    const [fnId, fn] =
      ofType("AWS::Lambda::Function").find(
        ([, r]) =>
          r.Properties?.Description === functions[webSocketApi.connectAuthorizer.function].description,
      ) ?? [];
    const role = (fn?.Properties?.Role ?? {}) as { "Fn::GetAtt"?: string[] };
    const roleRef = role["Fn::GetAtt"]?.[0];
    expect(roleRef, fnId).toBeDefined();
    const actions = ofType("AWS::IAM::Policy")
      .filter(([, r]) => JSON.stringify(r.Properties?.Roles).includes(`"${roleRef}"`))
      .flatMap(([, r]) => {
        const document = (r.Properties?.PolicyDocument ?? { Statement: [] }) as {
          Statement: { Action: string | string[] }[];
        };
        return document.Statement.flatMap((st) => [st.Action].flat());
      });
    expect(actions.sort()).toEqual(["xray:PutTelemetryRecords", "xray:PutTraceSegments"]);
    expect(JSON.stringify(fn?.Properties?.Environment ?? {})).not.toMatch(/TABLE|BUCKET|TOPIC|KAFKA/);
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
    // syncTopics reads and alters retention / max message size of existing topics (MSK IAM:
    // DescribeConfigs and AlterConfigs on a topic are its dynamic-configuration actions).
    const topicActions = ofType("AWS::IAM::Policy")
      .flatMap(
        ([, r]) =>
          (r.Properties?.PolicyDocument as { Statement?: { Action: unknown }[] } | undefined)?.Statement ??
          [],
      )
      .flatMap((st) => [st.Action].flat())
      .filter((a) => typeof a === "string" && a.startsWith("kafka-cluster:") && a.includes("TopicDynamic"));
    expect(topicActions).toContain("kafka-cluster:AlterTopicDynamicConfiguration");
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
        MaximumBatchingWindowInSeconds:
          "maximumBatchingWindowSeconds" in spec ? spec.maximumBatchingWindowSeconds : Match.absent(),
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

  it("grants least privilege on Kafka: one writer for events.raw and for analytics.stats", () => {
    const writersOf = (topic: string) =>
      ofType("AWS::IAM::Policy")
        .filter(([, r]) =>
          ((r.Properties?.PolicyDocument as { Statement?: Statement[] } | undefined)?.Statement ?? []).some(
            (st) =>
              [st.Action].flat().includes("kafka-cluster:WriteData") &&
              JSON.stringify(st.Resource).includes(`/${topic}"`),
          ),
        )
        .map(([id]) => id);
    const writesRaw = writersOf(topics.eventsRaw.name);
    expect(writesRaw).toHaveLength(1);
    expect(writesRaw[0]).toMatch(/^IngestFunction/);
    // The stats publisher alone republishes aggregates (functions/publish.ts); the aggregator
    // writes partial aggregates to DynamoDB and late events to events.late, never analytics.stats.
    const writesStats = writersOf(topics.analyticsStats.name);
    expect(writesStats).toHaveLength(1);
    expect(writesStats[0]).toMatch(/^PublishFunction/);
    const aggregatePolicy = JSON.stringify(
      ofType("AWS::IAM::Policy").find(([id]) => id.startsWith("AggregateFunction"))?.[1].Properties,
    );
    expect(aggregatePolicy).toContain("kafka-cluster:AlterGroup");
    expect(aggregatePolicy).toContain(eventSourceMappings[0]?.consumerGroup);
    expect(aggregatePolicy).not.toContain("kafka-cluster:*");
  });

  interface Statement {
    Action: string | string[];
    Resource: unknown;
  }
  /** Every statement of the inline policies of one topology function's role. */
  const statementsOf = (name: string): Statement[] =>
    ofType("AWS::IAM::Policy")
      .filter(([id]) => id.startsWith(`${pascalCase(name)}Function`))
      .flatMap(
        ([, r]) => (r.Properties?.PolicyDocument as { Statement?: Statement[] } | undefined)?.Statement ?? [],
      );
  it("lets only /rules write the rules table; the aggregator writes its own tables", () => {
    const tableId = (prefix: string) =>
      ofType("AWS::DynamoDB::Table").find(([id]) => id.startsWith(prefix))?.[0] ?? "";
    const writesTable = (name: string, prefix: string) =>
      statementsOf(name).some(
        (st) =>
          [st.Action].flat().includes("dynamodb:PutItem") &&
          JSON.stringify(st.Resource).includes(`"${tableId(prefix)}"`),
      );
    const rulesWriters = Object.keys(functions).filter((name) => writesTable(name, "RulesTable"));
    expect(rulesWriters).toEqual(["rules"]);
    expect(writesTable("aggregate", "AggregatesTable")).toBe(true);
    expect(writesTable("aggregate", "StreamStateTable")).toBe(true);
    expect(writesTable("stats", "AggregatesTable")).toBe(false);
  });

  // GET /health is public: its role may ask whether the table and bucket answer (DescribeTable,
  // HeadBucket = s3:ListBucket) and read nothing in them, least of all archived events.
  it("lets the public health probe check the table and bucket without reading them", () => {
    const actions = statementsOf("health").flatMap((st) => [st.Action].flat());
    expect(actions).toContain("dynamodb:DescribeTable");
    expect(actions).toContain("s3:ListBucket");
    for (const forbidden of [/^s3:GetObject/, /^s3:Put/, /^dynamodb:(GetItem|Query|Scan|BatchGetItem)$/])
      expect(
        actions.filter((a) => forbidden.test(a)),
        String(forbidden),
      ).toEqual([]);
    const [, health] =
      ofType("AWS::Lambda::Function").find(
        ([, r]) => r.Properties?.Description === functions.health.description,
      ) ?? [];
    const env = JSON.stringify(health?.Properties?.Environment ?? {});
    expect(env).toContain(`"${tables.aggregates.envVar}"`);
    expect(env).toContain(`"${buckets.archive.envVar}"`);
  });

  it("lets GET /events read and write Athena's results, not delete anything", () => {
    const actions = statementsOf("events").flatMap((st) => [st.Action].flat());
    expect(actions).toContain("athena:StartQueryExecution");
    expect(actions.some((a) => typeof a === "string" && a.startsWith("s3:PutObject"))).toBe(true);
    expect(actions.filter((a) => typeof a === "string" && /^s3:Delete/.test(a))).toEqual([]);
  });

  const clusterArn = () => {
    const [id] = ofType("AWS::MSK::ServerlessCluster")[0] ?? [];
    return { "Fn::GetAtt": [id, "Arn"] };
  };

  // Lambda docs, "Amazon MSK event source mappings": the pollers' ENIs use the cluster's subnets
  // and security group, so that group must admit itself on the broker port (9098 with IAM).
  it("lets the MSK cluster's security group reach itself on 9098 (ESM pollers)", () => {
    const [, msk] = ofType("AWS::MSK::ServerlessCluster")[0] ?? [];
    const vpcConfigs = msk?.Properties?.VpcConfigs as { SecurityGroups: unknown[] }[] | undefined;
    const clusterSg = vpcConfigs?.[0]?.SecurityGroups[0];
    expect(clusterSg).toBeDefined();
    const ingress = ofType("AWS::EC2::SecurityGroupIngress").map(([, r]) => r.Properties ?? {});
    expect(ingress).toContainEqual(
      expect.objectContaining({
        GroupId: clusterSg,
        SourceSecurityGroupId: clusterSg,
        IpProtocol: "tcp",
        FromPort: 9098,
        ToPort: 9098,
      }),
    );
  });

  // MSK IAM access control: an idempotent producer needs kafka-cluster:WriteDataIdempotently on the cluster.
  it("lets every producing role write idempotently on the cluster", () => {
    const producers = new Set<string>([
      ...Object.entries(functions)
        .filter(([, spec]) => spec.produces.length > 0)
        .map(([name]) => name),
      ...eventSourceMappings.map((m) => m.function),
    ]);
    expect(producers.size).toBeGreaterThan(0);
    for (const name of producers) {
      const idempotent = statementsOf(name).filter((st) =>
        [st.Action].flat().includes("kafka-cluster:WriteDataIdempotently"),
      );
      expect(
        idempotent.map((st) => st.Resource),
        name,
      ).toContainEqual(clusterArn());
    }
  });

  // AWSLambdaMSKExecutionRole is the documented minimum of an MSK mapping's execution role.
  it("grants every MSK mapping role the whole of AWSLambdaMSKExecutionRole", () => {
    const mskExecutionRole = [
      "kafka:DescribeCluster",
      "kafka:DescribeClusterV2",
      "kafka:GetBootstrapBrokers",
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeVpcs",
      "ec2:DeleteNetworkInterface",
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ];
    // What CDK's VPC functions get from AWSLambdaVPCAccessExecutionRole (its documented contents).
    const vpcAccessRole = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSubnets",
      "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
    ];
    for (const spec of eventSourceMappings) {
      const roleId = Object.entries(resources).find(
        ([id, r]) => r.Type === "AWS::IAM::Role" && id.startsWith(`${pascalCase(spec.function)}Function`),
      );
      const managed = JSON.stringify(roleId?.[1].Properties?.ManagedPolicyArns);
      expect(managed).toContain("AWSLambdaVPCAccessExecutionRole");
      const granted = new Set([
        ...vpcAccessRole,
        ...statementsOf(spec.function).flatMap((st) => [st.Action].flat()),
      ]);
      expect(
        mskExecutionRole.filter((a) => !granted.has(a)),
        spec.id,
      ).toEqual([]);
    }
  });

  // Athena docs, "Names for tables, databases and columns": lowercase letters, digits, underscores.
  it("names the Glue database and table in Athena's naming rules, from the stage", () => {
    template.hasResourceProperties("AWS::Glue::Database", {
      DatabaseInput: Match.objectLike({ Name: "tidemark_dev" }),
    });
    template.hasResourceProperties("AWS::Glue::Table", {
      TableInput: Match.objectLike({ Name: Match.stringLikeRegexp("^[a-z0-9_]+$") }),
    });
  });

  // SNS docs: CloudWatch can publish to a KMS-encrypted topic only if the key policy allows it.
  it("lets CloudWatch use the alarm topic's key, and alarms on any dead letter", () => {
    const keys = ofType("AWS::KMS::Key").map(([, r]) => JSON.stringify(r.Properties?.KeyPolicy));
    const cloudwatchKey = keys.filter((k) => k.includes("cloudwatch.amazonaws.com"));
    expect(cloudwatchKey).toHaveLength(1);
    expect(cloudwatchKey[0]).toContain("kms:Decrypt");
    expect(cloudwatchKey[0]).toContain("kms:GenerateDataKey*");
    // MessagesInPerSec is a rate: "≥ 1" would miss a single record; any non-zero value must fire.
    const [, deadLetter] =
      ofType("AWS::CloudWatch::Alarm").find(([id]) => id.startsWith("DeadLetterAlarm")) ?? [];
    expect(deadLetter?.Properties).toMatchObject({
      MetricName: "MessagesInPerSec",
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
    });
    template.resourceCountIs("AWS::SNS::Subscription", 0);
  });

  // The topic's own policy (TLS-only deny) replaces SNS's default one: without an allow for
  // CloudWatch, every alarm action fails with "not authorized to perform: SNS:Publish".
  it("lets this account's CloudWatch alarms publish to the alarm topic", () => {
    const [topicId] = ofType("AWS::SNS::Topic")[0] ?? [];
    const alarmActions = ofType("AWS::CloudWatch::Alarm").flatMap(([, r]) => [r.Properties?.AlarmActions]);
    expect(alarmActions.length).toBeGreaterThan(0);
    for (const actions of alarmActions) expect(actions).toEqual([{ Ref: topicId }]);
    template.hasResourceProperties("AWS::SNS::TopicPolicy", {
      Topics: [{ Ref: topicId }],
      PolicyDocument: Match.objectLike({
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Allow",
            Principal: { Service: "cloudwatch.amazonaws.com" },
            Action: "sns:Publish",
            Resource: { Ref: topicId },
            Condition: {
              ArnLike: { "aws:SourceArn": Match.objectLike({ "Fn::Join": Match.anyValue() }) },
            },
          }),
        ]),
      }),
    });
  });

  it("creates the MSK mappings after the topics, gives the stream mapping a failure destination, reserves consumer concurrency", () => {
    const [topicsId] = ofType("Custom::KafkaTopics")[0] ?? [];
    const mskMappings = Object.values(resources).filter(
      (r) =>
        r.Type === "AWS::Lambda::EventSourceMapping" && r.Properties?.AmazonManagedKafkaEventSourceConfig,
    ) as { DependsOn?: string[] }[];
    expect(mskMappings).toHaveLength(eventSourceMappings.length);
    for (const m of mskMappings) expect(m.DependsOn).toContain(topicsId);
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: Match.objectLike({
        "Fn::GetAtt": Match.arrayWith([Match.stringLikeRegexp("AggregatesTable")]),
      }),
      DestinationConfig: { OnFailure: { Destination: Match.anyValue() } },
    });
    const fns = ofType("AWS::Lambda::Function").map(([, r]) => r.Properties ?? {});
    // A Kafka mapping invokes at most one batch per partition: a reservation of that many holds.
    for (const spec of eventSourceMappings.map((m) => functions[m.function])) {
      const fn = fns.find((p) => p.Description === spec.description);
      expect(fn?.ReservedConcurrentExecutions, spec.entry).toBeGreaterThan(0);
    }
    const [, failureAlarm] =
      ofType("AWS::CloudWatch::Alarm").find(([id]) => id.startsWith("StreamFailuresAlarm")) ?? [];
    expect(failureAlarm?.Properties).toMatchObject({
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
    });
  });

  // A DynamoDB stream has one shard per table partition, and partitions grow with the table's size
  // and throughput: a mapping with parallelization factor 1 runs one batch per shard at a time, so
  // any fixed reservation below the shard count throttles it, and throttled shards' records age
  // towards the stream's 24-hour expiry. No reservation, and an alarm on the iterator age.
  it("lets the stats publisher run a batch per stream shard, however many, and alarms on its iterator age", () => {
    const fns = ofType("AWS::Lambda::Function");
    for (const mapping of tableStreamMappings) {
      const spec = functions[mapping.function];
      const [fnId, fn] = fns.find(([, r]) => r.Properties?.Description === spec.description) ?? [];
      expect(fnId, spec.entry).toBeDefined();
      expect(fn?.Properties?.ReservedConcurrentExecutions, spec.entry).toBeUndefined();
      const [, alarm] =
        ofType("AWS::CloudWatch::Alarm").find(([id]) => id.startsWith(`${mapping.id}IteratorAgeAlarm`)) ?? [];
      expect(alarm?.Properties, mapping.id).toMatchObject({
        Metrics: [
          {
            MetricStat: {
              Metric: {
                Namespace: "AWS/Lambda",
                MetricName: "IteratorAge",
                Dimensions: [{ Name: "FunctionName", Value: { Ref: fnId } }],
              },
              Stat: "Maximum",
            },
          },
        ],
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
      });
      // Well before the stream drops records (24 h), in milliseconds as Lambda reports it.
      expect(alarm?.Properties?.Threshold).toBeGreaterThan(0);
      expect(alarm?.Properties?.Threshold).toBeLessThanOrEqual(3_600_000);
      expect(alarm?.Properties?.AlarmActions).toHaveLength(1);
    }
  });

  // MSK Serverless: 3,000 client connections a cluster. Every function environment with a Kafka
  // client holds several; ingest scales with API traffic, so without a reservation a spike could
  // open more than the cluster accepts and lock the consumers out.
  it("holds every Kafka client within MSK Serverless's connection quota, ingest by a reservation from the budget", () => {
    const fns = ofType("AWS::Lambda::Function").map(([, r]) => r.Properties ?? {});
    const reserved = (description: string) =>
      fns.find((p) => p.Description === description)?.ReservedConcurrentExecutions as number | undefined;
    const ingest = reserved(functions.ingest.description);
    expect(ingest).toBe(kafkaConnectionBudget(stages.dev.maximumPollers).ingestEnvironments);
    // The sum, from the template's reservations: every environment's clients, the stream-fed
    // publisher at its budgeted shards, every mapping's pollers at the stage's maximum.
    let connections = 0;
    for (const [name, spec] of Object.entries(functions)) {
      const perEnvironment = kafkaConnectionsPerEnvironment(spec);
      if (perEnvironment === 0) continue;
      const streamFed = tableStreamMappings.some((m) => m.function === name);
      const environments = streamFed ? kafkaConnectionQuota.streamShards : reserved(spec.description);
      expect(environments, `${spec.entry} opens Kafka connections, unbounded`).toBeGreaterThan(0);
      connections += (environments ?? 0) * perEnvironment;
    }
    for (const m of eventSourceMappings)
      connections += stages.dev.maximumPollers * (2 + topics[m.topic].partitions);
    expect(connections).toBeLessThanOrEqual(
      kafkaConnectionQuota.connections * (1 - kafkaConnectionQuota.headroom),
    );
    // POST /events' own throttle admits no burst larger than ingest's environments.
    template.hasResourceProperties("AWS::ApiGateway::Stage", {
      StageName: "v1",
      MethodSettings: Match.arrayWith([
        Match.objectLike({
          HttpMethod: "POST",
          ResourcePath: "/~1events",
          ThrottlingBurstLimit: ingestThrottle(ingest ?? 0).burstLimit,
          ThrottlingRateLimit: ingestThrottle(ingest ?? 0).rateLimit,
        }),
      ]),
    });
    expect(ingestThrottle(ingest ?? 0).burstLimit).toBeLessThanOrEqual(ingest ?? 0);
  });

  // CloudFormation: a custom-named resource cannot be replaced; every MSK Serverless property replaces.
  it("derives the MSK cluster's name from what replaces it, not a fixed string", () => {
    const [, msk] = ofType("AWS::MSK::ServerlessCluster")[0] ?? [];
    const name = msk?.Properties?.ClusterName;
    expect(typeof name).not.toBe("string");
    const [sgId] =
      ofType("AWS::EC2::SecurityGroup").find(([id]) => id.startsWith("KafkaBrokerSecurityGroup")) ?? [];
    expect(JSON.stringify(name)).toContain(`"${sgId}","GroupId"`);
  });

  it("scopes every cdk-nag suppression to its resource", () => {
    const stackMetadata = JSON.stringify(template.toJSON().Metadata ?? {});
    const ids = [...stackMetadata.matchAll(/"id":"(AwsSolutions-[A-Z0-9]+)"/g)].map((m) => m[1]);
    expect(ids).toEqual(["AwsSolutions-L1"]);
  });

  // Brief, section 3: an invalid event gets 400 with every problem listed by index and field. A body
  // model would make API Gateway answer first, with its generic "Invalid request body".
  it("lets the ingest handler, not a body model, judge POST /events bodies", () => {
    expect(ofType("AWS::ApiGateway::Model")).toHaveLength(0);
    const post = ofType("AWS::ApiGateway::Method").find(([, r]) => r.Properties?.HttpMethod === "POST");
    expect(post).toBeDefined();
    for (const [, method] of ofType("AWS::ApiGateway::Method"))
      expect(method.Properties?.RequestModels).toBeUndefined();
    template.hasResourceProperties("AWS::ApiGateway::Method", {
      HttpMethod: "POST",
      RequestValidatorId: Match.anyValue(),
    });
  });

  // API Gateway docs, "Enabling CORS for a REST API resource": gateway responses need the headers too.
  it("puts CORS headers and the error shape on API Gateway's own 4xx/5xx answers", () => {
    for (const type of ["DEFAULT_4XX", "DEFAULT_5XX", "BAD_REQUEST_BODY", "THROTTLED"]) {
      template.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
        ResponseType: type,
        ResponseParameters: Match.objectLike({
          "gatewayresponse.header.access-control-allow-origin": "'*'",
        }),
        ResponseTemplates: {
          "application/json": Match.stringLikeRegexp(
            '^\\{"error":\\{"code":"[a-z_]+","message":\\$context\\.error\\.messageString\\}\\}$',
          ),
        },
      });
    }
  });

  // Lambda docs, "Handling Lambda errors with an API Gateway API": when Lambda refuses an
  // invocation (a throttle once the reserved concurrency is in use) API Gateway answers 500
  // "Internal server error", through its INTEGRATION_FAILURE gateway response (re:Post, "Inconsistencies
  // in response codes depending on whether API Gateway response settings are configured"). A client
  // must read that as "retry later", like the broker's 503, not as a server bug.
  it("answers an invocation Lambda refuses (throttled function) with 503 and Retry-After, not 500", () => {
    template.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
      ResponseType: "INTEGRATION_FAILURE",
      StatusCode: "503",
      ResponseParameters: Match.objectLike({
        "gatewayresponse.header.retry-after": "'1'",
        "gatewayresponse.header.access-control-allow-origin": "'*'",
      }),
      ResponseTemplates: {
        "application/json": Match.stringLikeRegexp(
          '^\\{"error":\\{"code":"service_unavailable","message":"[^"]+"\\}\\}$',
        ),
      },
    });
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

  it("projects dt far enough ahead for the newest timestamp the contract accepts (5 min ahead, next UTC day near midnight)", () => {
    const end = (glueTableInput().Parameters["projection.dt.range"] ?? "").split(",")[1]?.trim() ?? "";
    // Athena's relative dates: NOW, or NOW±N<unit> (Athena docs, "Supported types for partition projection").
    const m = /^NOW(?:([+-])(\d+)(DAYS|HOURS|MINUTES))?$/.exec(end);
    expect(m, `projection.dt.range ends with '${end}'`).not.toBeNull();
    const unitMs = { DAYS: 86_400_000, HOURS: 3_600_000, MINUTES: 60_000 } as const;
    const aheadMs = m?.[1] ? (m[1] === "+" ? 1 : -1) * Number(m[2]) * unitMs[m[3] as keyof typeof unitMs] : 0;
    // An event stamped at 23:58 UTC + 5 min is archived under tomorrow's dt, which the range must hold.
    const now = Date.UTC(2026, 11, 31, 23, 58);
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    expect(day(now + aheadMs) >= day(now + MAX_FUTURE_SKEW_MS)).toBe(true);
    expect(aheadMs).toBeGreaterThanOrEqual(MAX_FUTURE_SKEW_MS);
  });

  it("reads archived JSON keys as written: property keys differing only in case do not fail Athena", () => {
    // The OpenX SerDe's default (case.insensitive TRUE) lowercases every key of a line, nested ones
    // too, so `properties: {"Amount": 1, "amount": 2}` (the contract allows it) fails the query
    // with "JSONException: Duplicate key" (Athena docs, "OpenX JSON SerDe").
    const { SerdeInfo, Columns } = glueTableInput().StorageDescriptor;
    expect(SerdeInfo.SerializationLibrary).toBe("org.openx.data.jsonserde.JsonSerDe");
    expect(SerdeInfo.Parameters?.["case.insensitive"]).toBe("false");
    // Case-sensitive matching finds a column only under its exact key: the stored keys are lowercase.
    for (const c of Columns) expect(c.Name).toMatch(/^[a-z0-9_]+$/);
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

  it("says in each offset-lag alarm which consumer lags on which topic", () => {
    for (const spec of eventSourceMappings) {
      const [, alarm] =
        ofType("AWS::CloudWatch::Alarm").find(([id]) => id.startsWith(`${spec.id}OffsetLagAlarm`)) ?? [];
      expect(alarm?.Properties?.AlarmDescription, spec.id).toContain(topics[spec.topic].name);
      expect(alarm?.Properties?.AlarmDescription, spec.id).toContain(spec.consumerGroup);
    }
  });

  // docs/deploy.md tells the deployer how much account concurrency the stack reserves and what
  // the alarms cost; both follow the template.
  it("states in docs/deploy.md the concurrency it reserves and the alarms it creates", () => {
    const deployDoc = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");
    const reserved = ofType("AWS::Lambda::Function").reduce(
      (sum, [, r]) => sum + Number(r.Properties?.ReservedConcurrentExecutions ?? 0),
      0,
    );
    expect(reserved).toBeGreaterThan(0);
    expect(deployDoc).toContain(`at least 100 + ${reserved}`);
    expect(deployDoc).toContain(`~${ofType("AWS::CloudWatch::Alarm").length} × $0.10`);
  });

  // API Gateway metrics carry only the API's name: a generic name mixes other APIs' traffic in.
  it("names the REST API after the stack, so the dashboard's API metrics are this API's", () => {
    const [, api] = ofType("AWS::ApiGateway::RestApi")[0] ?? [];
    const name = api?.Properties?.Name;
    expect(name).toBe("Tidemark-dev-api");
    const [, dashboard] = ofType("AWS::CloudWatch::Dashboard")[0] ?? [];
    const body = JSON.stringify(dashboard?.Properties?.DashboardBody);
    expect(body).toContain(`\\"ApiName\\",\\"${name}\\"`);
    expect(body).not.toContain(`\\"ApiName\\",\\"Api\\"`);
  });

  it("compresses what ingest produces (MSK Serverless: 5 MB/s per partition, counted on the bytes sent)", () => {
    const variables = (description: string) =>
      (
        ofType("AWS::Lambda::Function")
          .map(([, r]) => r.Properties ?? {})
          .find((p) => p.Description === description) as
          | { Environment?: { Variables?: Record<string, unknown> } }
          | undefined
      )?.Environment?.Variables ?? {};
    expect(variables(functions.ingest.description).KAFKA_COMPRESSION).toBe("gzip");
    expect(variables(functions.aggregate.description).KAFKA_COMPRESSION).toBeUndefined();
  });
});

describe("CDK stack with options", () => {
  const writes = (template: Template) =>
    Object.values(template.toJSON().Resources as Resources)
      .filter((r) => r.Type === "AWS::ApiGateway::Method")
      .map((r) => r.Properties ?? {});

  it("subscribes -c alarmEmail and puts /rules writes behind IAM with -c rulesAuth=iam", () => {
    const app = new App({ context: { stage: "dev", alarmEmail: "ops@example.com", rulesAuth: "iam" } });
    const stack = buildTidemark(app);
    const template = Template.fromStack(stack);
    template.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: "ops@example.com",
    });
    const iam = writes(template).filter((m) => m.AuthorizationType === "AWS_IAM");
    expect(iam.map((m) => m.HttpMethod).sort()).toEqual(["DELETE", "POST", "PUT"]);
    const nag = Annotations.fromStack(stack);
    expect(nag.findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual([]);
  }, 180_000);

  it("sets the aggregator's batching window from -c aggregateBatchingWindowSeconds, whole seconds only", () => {
    const app = new App({ context: { stage: "dev", aggregateBatchingWindowSeconds: "0" } });
    const template = Template.fromStack(buildTidemark(app));
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: "tidemark-aggregate" },
      MaximumBatchingWindowInSeconds: 0,
    });
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: "tidemark-archive" },
      MaximumBatchingWindowInSeconds: 5,
    });
    expect(() =>
      buildTidemark(new App({ context: { stage: "dev", aggregateBatchingWindowSeconds: "0.5" } })),
    ).toThrow(/whole number of seconds/);
  }, 180_000);

  it("reserves -c ingestReservedConcurrency for ingest and throttles POST /events by it, within the connection quota only", () => {
    const template = Template.fromStack(
      buildTidemark(new App({ context: { stage: "dev", ingestReservedConcurrency: "50" } })),
    );
    template.hasResourceProperties("AWS::Lambda::Function", {
      Description: functions.ingest.description,
      ReservedConcurrentExecutions: 50,
    });
    template.hasResourceProperties("AWS::ApiGateway::Stage", {
      MethodSettings: Match.arrayWith([
        Match.objectLike({ HttpMethod: "POST", ResourcePath: "/~1events", ThrottlingBurstLimit: 50 }),
      ]),
    });
    const max = kafkaConnectionBudget(stages.dev.maximumPollers).maxIngestEnvironments;
    for (const bad of ["0", "2.5", String(max + 1)])
      expect(
        () => buildTidemark(new App({ context: { stage: "dev", ingestReservedConcurrency: bad } })),
        bad,
      ).toThrow(/ingest reserved concurrency must be a whole number/);
  }, 180_000);

  it("puts /rules writes behind a Cognito authorizer with -c rulesAuth=<user pool ARN>", () => {
    const pool = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_abc";
    const template = Template.fromStack(
      buildTidemark(new App({ context: { stage: "dev", rulesAuth: pool } })),
    );
    template.hasResourceProperties("AWS::ApiGateway::Authorizer", {
      Type: "COGNITO_USER_POOLS",
      ProviderARNs: [pool],
    });
    expect(writes(template).filter((m) => m.AuthorizationType === "COGNITO_USER_POOLS")).toHaveLength(3);
  }, 180_000);
});

describe("CDK stack (prod)", () => {
  it("retains data on delete, and can still delete what is not retained", () => {
    const app = new App({ context: { stage: "prod" } });
    const template = Template.fromStack(buildTidemark(app));
    // Ingest's share of the connection budget shrinks with prod's 20 pollers a mapping; the
    // deployer reads the account concurrency it needs in docs/deploy.md.
    const fns = Object.values(template.toJSON().Resources as Resources).filter(
      (r) => r.Type === "AWS::Lambda::Function",
    );
    const reserved = fns.reduce((n, r) => n + Number(r.Properties?.ReservedConcurrentExecutions ?? 0), 0);
    const ingest = fns.find((r) => r.Properties?.Description === functions.ingest.description)?.Properties
      ?.ReservedConcurrentExecutions;
    expect(ingest).toBe(kafkaConnectionBudget(stages.prod.maximumPollers).ingestEnvironments);
    const deployDoc = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");
    expect(deployDoc).toContain(`100 + ${reserved} in \`prod\``);
    expect(deployDoc).toContain(
      `**${kafkaConnectionBudget(stages.dev.maximumPollers).ingestEnvironments} / ${ingest}**`,
    );
    template.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain" });
    template.hasResource("AWS::S3::Bucket", { DeletionPolicy: "Retain" });
    // Athena refuses to delete a workgroup that ran queries ("WorkGroup … is not empty") unless
    // RecursiveDeleteOption is set: without it `cdk destroy` of a used prod stack fails there.
    template.hasResource("AWS::Athena::WorkGroup", {
      Properties: Match.objectLike({ RecursiveDeleteOption: true }),
      DeletionPolicy: Match.absent(),
    });
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
