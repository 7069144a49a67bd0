import { CfnOutput, Duration, Stack, type StackProps } from "aws-cdk-lib";
import {
  AccessLogFormat,
  ApiKeySourceType,
  Cors,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  Period,
  RequestValidator,
  RestApi,
} from "aws-cdk-lib/aws-apigateway";
import {
  WebSocketApi,
  LogGroupLogDestination as WebSocketLogDestination,
  WebSocketStage,
} from "aws-cdk-lib/aws-apigatewayv2";
import { WebSocketLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import { CfnWorkGroup } from "aws-cdk-lib/aws-athena";
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  Metric,
  TextWidget,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import { AttributeType, BillingMode, StreamViewType, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import {
  FlowLogDestination,
  GatewayVpcEndpointAwsService,
  SecurityGroup,
  SubnetType,
  Vpc,
} from "aws-cdk-lib/aws-ec2";
import { CfnDatabase, CfnTable } from "aws-cdk-lib/aws-glue";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { CfnEventSourceMapping, StartingPosition } from "aws-cdk-lib/aws-lambda";
import { DynamoEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { LogGroup } from "aws-cdk-lib/aws-logs";
import { BlockPublicAccess, Bucket, BucketEncryption, StorageClass } from "aws-cdk-lib/aws-s3";
import { Topic } from "aws-cdk-lib/aws-sns";
import type { Construct } from "constructs";
import {
  api as apiSettings,
  buckets,
  eventSourceMappings,
  type FunctionName,
  type FunctionSpec,
  functions,
  routes,
  type TableSpec,
  tableStreamMappings,
  tables,
  topics,
  webSocketApi,
} from "../lib/topology.ts";
import {
  consumeFrom,
  manageConnections,
  observeTopic,
  produceTo,
  useBucket,
  useKafkaCluster,
  useTable,
} from "./constructs/grants.ts";
import { type KafkaAccess, KafkaCluster, SelfManagedKafka } from "./constructs/kafka-cluster.ts";
import { TidemarkFunction } from "./constructs/tidemark-function.ts";
import type { StageConfig } from "./stages.ts";

export interface TidemarkStackProps extends StackProps {
  readonly stage: StageConfig;
  /** Days an archived event stays in S3 Standard before Standard-IA. @default topology (90) */
  readonly archiveInfrequentAccessDays?: number;
  /** Days before Glacier Instant Retrieval. @default topology (180) */
  readonly archiveGlacierDays?: number;
  /** Days before archived events expire. @default topology (365) */
  readonly archiveExpireDays?: number;
  /**
   * Use these Kafka brokers (plain, no IAM) instead of creating MSK Serverless: for LocalStack,
   * whose MSK emulation is licensed-only. @default MSK Serverless
   */
  readonly selfManagedKafkaBrokers?: readonly string[];
}

const ATTRIBUTE_TYPES = { S: AttributeType.STRING, N: AttributeType.NUMBER } as const;

/**
 * The whole topology of `lib/topology.ts` on AWS: one construct per declared route, topic,
 * table, bucket, function and mapping, with ids taken from the topology's keys (stable API).
 */
export class TidemarkStack extends Stack {
  readonly functions = new Map<FunctionName, TidemarkFunction>();

  constructor(scope: Construct, id: string, props: TidemarkStackProps) {
    super(scope, id, props);
    const { stage } = props;

    // Network: private subnets with egress for the functions and MSK; S3/DynamoDB stay on gateway endpoints.
    const flowLogs = new LogGroup(this, "VpcFlowLogs", {
      retention: stage.logRetention,
      removalPolicy: stage.removalPolicy,
    });
    const vpc = new Vpc(this, "Vpc", {
      maxAzs: 2,
      natGateways: stage.natGateways,
      subnetConfiguration: [
        { name: "public", subnetType: SubnetType.PUBLIC, cidrMask: 24 },
        { name: "private", subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      gatewayEndpoints: {
        S3: { service: GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: GatewayVpcEndpointAwsService.DYNAMODB },
      },
      flowLogs: { All: { destination: FlowLogDestination.toCloudWatchLogs(flowLogs) } },
    });

    const clientSecurityGroup = new SecurityGroup(this, "KafkaClientSecurityGroup", {
      vpc,
      description: "Tidemark functions (Kafka clients)",
    });
    const cluster: KafkaAccess = props.selfManagedKafkaBrokers
      ? new SelfManagedKafka(props.selfManagedKafkaBrokers)
      : new KafkaCluster(this, "Kafka", {
          vpc,
          clientSecurityGroup,
          topics: Object.values(topics),
          logRetention: stage.logRetention,
          removalPolicy: stage.removalPolicy,
        });

    // Tables.
    const tableConstructs = {} as Record<keyof typeof tables, Table>;
    for (const [key, spec] of Object.entries(tables) as [keyof typeof tables, TableSpec][]) {
      tableConstructs[key] = new Table(this, `${pascal(key)}Table`, {
        partitionKey: { name: spec.partitionKey.name, type: ATTRIBUTE_TYPES[spec.partitionKey.type] },
        ...(spec.sortKey
          ? { sortKey: { name: spec.sortKey.name, type: ATTRIBUTE_TYPES[spec.sortKey.type] } }
          : {}),
        billingMode: BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        encryption: TableEncryption.AWS_MANAGED,
        ...(spec.ttlAttribute ? { timeToLiveAttribute: spec.ttlAttribute } : {}),
        ...(spec.stream ? { stream: StreamViewType[spec.stream] } : {}),
        removalPolicy: stage.removalPolicy,
      });
    }

    // Buckets: the archive, its access logs, Athena results.
    const accessLogs = new Bucket(this, "AccessLogsBucket", {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: stage.removalPolicy,
      autoDeleteObjects: stage.name === "dev",
      lifecycleRules: [{ expiration: Duration.days(90) }],
    });
    const lifecycle = buckets.archive.lifecycle;
    const archive = new Bucket(this, "ArchiveBucket", {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: "archive/",
      removalPolicy: stage.removalPolicy,
      autoDeleteObjects: stage.name === "dev",
      lifecycleRules: [
        {
          id: "archive-tiers",
          prefix: buckets.archive.prefix,
          transitions: [
            {
              storageClass: StorageClass.INFREQUENT_ACCESS,
              transitionAfter: Duration.days(
                props.archiveInfrequentAccessDays ?? lifecycle.transitionToInfrequentAccessDays,
              ),
            },
            {
              storageClass: StorageClass.GLACIER_INSTANT_RETRIEVAL,
              transitionAfter: Duration.days(props.archiveGlacierDays ?? lifecycle.transitionToGlacierDays),
            },
          ],
          expiration: Duration.days(props.archiveExpireDays ?? lifecycle.expireDays),
        },
      ],
    });
    const athenaResults = new Bucket(this, "AthenaResultsBucket", {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: "athena-results/",
      removalPolicy: stage.removalPolicy,
      autoDeleteObjects: stage.name === "dev",
      lifecycleRules: [{ expiration: Duration.days(7) }],
    });

    // Glue table over the archive with partition projection (no crawler, no MSCK REPAIR).
    const database = new CfnDatabase(this, "GlueDatabase", {
      catalogId: this.account,
      databaseInput: { description: "Tidemark event archive" },
    });
    const eventsTable = new CfnTable(this, "GlueEventsTable", {
      catalogId: this.account,
      databaseName: database.ref,
      tableInput: {
        description: "Archived events (NDJSON.gz), Hive partitions projected",
        tableType: "EXTERNAL_TABLE",
        parameters: {
          classification: "json",
          "projection.enabled": "true",
          "projection.event_type.type": "injected",
          "projection.dt.type": "date",
          "projection.dt.format": "yyyy-MM-dd",
          "projection.dt.range": "2024-01-01,NOW",
          "projection.dt.interval": "1",
          "projection.dt.interval.unit": "DAYS",
          "projection.hour.type": "integer",
          "projection.hour.range": "0,23",
          "projection.hour.digits": "2",
          "storage.location.template": `s3://${archive.bucketName}/${buckets.archive.prefix}event_type=\${event_type}/dt=\${dt}/hour=\${hour}/`,
        },
        partitionKeys: [
          { name: "event_type", type: "string" },
          { name: "dt", type: "string" },
          { name: "hour", type: "string" },
        ],
        storageDescriptor: {
          location: `s3://${archive.bucketName}/${buckets.archive.prefix}`,
          inputFormat: "org.apache.hadoop.mapred.TextInputFormat",
          outputFormat: "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
          serdeInfo: {
            serializationLibrary: "org.openx.data.jsonserde.JsonSerDe",
            parameters: { "ignore.malformed.json": "false" },
          },
          columns: [
            { name: "event_id", type: "string" },
            { name: "user_id", type: "string" },
            { name: "session_id", type: "string" },
            { name: "timestamp", type: "bigint" },
            { name: "page_url", type: "string" },
            { name: "properties", type: "string" },
            { name: "metadata", type: "string" },
            { name: "received_at", type: "bigint" },
          ],
        },
      },
    });
    const workGroup = new CfnWorkGroup(this, "AthenaWorkGroup", {
      name: `${this.stackName}-events`,
      description: "GET /events queries over the archive",
      state: "ENABLED",
      recursiveDeleteOption: stage.name === "dev",
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: stage.athenaScanLimitBytes,
        engineVersion: { selectedEngineVersion: "Athena engine version 3" },
        resultConfiguration: {
          outputLocation: `s3://${athenaResults.bucketName}/results/`,
          encryptionConfiguration: { encryptionOption: "SSE_S3" },
        },
      },
    });

    // Functions, each granted exactly what the topology says it uses.
    for (const [name, spec] of Object.entries(functions) as [
      FunctionName,
      (typeof functions)[FunctionName],
    ][]) {
      const f = new TidemarkFunction(this, `${pascal(name)}Function`, {
        spec,
        vpc,
        securityGroups: [clientSecurityGroup],
        logRetention: stage.logRetention,
        removalPolicy: stage.removalPolicy,
      });
      this.functions.set(name, f);
      for (const key of spec.tables) {
        // Every user of the connections table writes it (connect, subscribe, delete when gone).
        const writes = name === "aggregate" || name === "rules" || key === "connections";
        useTable(f.fn, tableConstructs[key], tables[key], writes ? "readWrite" : "read");
      }
      for (const key of spec.buckets) {
        useBucket(
          f.fn,
          archive,
          buckets[key].envVar,
          name === "archive" ? "readWrite" : "read",
          `${buckets[key].prefix}*`,
        );
      }
      for (const key of spec.produces) produceTo(f.fn, cluster, key, topics[key]);
      for (const key of (spec as FunctionSpec).observes ?? []) observeTopic(f.fn, cluster, key, topics[key]);
    }
    // GET /events runs Athena over the Glue table.
    const eventsFn = this.fn("events");
    eventsFn.addEnvironment("EVENTS_QUERY_ENGINE", "athena");
    eventsFn.addEnvironment("ATHENA_WORKGROUP", workGroup.name);
    eventsFn.addEnvironment("ATHENA_DATABASE", database.ref);
    eventsFn.addEnvironment("ATHENA_TABLE", eventsTable.ref);
    athenaResults.grantReadWrite(eventsFn);
    eventsFn.addToRolePolicy(
      new PolicyStatement({
        actions: [
          "athena:StartQueryExecution",
          "athena:GetQueryExecution",
          "athena:GetQueryResults",
          "athena:StopQueryExecution",
        ],
        resources: [
          this.formatArn({ service: "athena", resource: "workgroup", resourceName: workGroup.name }),
        ],
      }),
    );
    eventsFn.addToRolePolicy(
      new PolicyStatement({
        actions: ["glue:GetTable", "glue:GetDatabase", "glue:GetPartitions"],
        resources: [
          this.formatArn({ service: "glue", resource: "catalog" }),
          this.formatArn({ service: "glue", resource: "database", resourceName: database.ref }),
          this.formatArn({
            service: "glue",
            resource: "table",
            resourceName: `${database.ref}/${eventsTable.ref}`,
          }),
        ],
      }),
    );
    useKafkaCluster(this.fn("health"), cluster);

    // MSK event-source mappings (provisioned mode: retries, Kafka on-failure destination, partial batch responses).
    for (const spec of eventSourceMappings) {
      const target = this.fn(spec.function);
      consumeFrom(target, cluster, topics[spec.topic], spec.consumerGroup);
      produceTo(target, cluster, spec.onFailure, topics[spec.onFailure]);
      new CfnEventSourceMapping(this, spec.id, {
        functionName: target.functionName,
        ...cluster.eventSource(spec.consumerGroup),
        topics: [topics[spec.topic].name],
        batchSize: spec.batchSize,
        maximumBatchingWindowInSeconds: spec.maximumBatchingWindowSeconds,
        startingPosition: spec.startingPosition,
        maximumRetryAttempts: spec.maximumRetryAttempts,
        provisionedPollerConfig: { minimumPollers: 1, maximumPollers: stage.maximumPollers },
        destinationConfig: { onFailure: { destination: `kafka://${topics[spec.onFailure].name}` } },
        ...(spec.reportBatchItemFailures ? { functionResponseTypes: ["ReportBatchItemFailures"] } : {}),
      });
    }
    // DynamoDB stream mappings (the stats publisher).
    for (const spec of tableStreamMappings) {
      this.fn(spec.function).addEventSource(
        new DynamoEventSource(tableConstructs[spec.table], {
          startingPosition: StartingPosition[spec.startingPosition],
          batchSize: spec.batchSize,
          maxBatchingWindow: Duration.seconds(spec.maximumBatchingWindowSeconds),
          retryAttempts: spec.maximumRetryAttempts,
          reportBatchItemFailures: spec.reportBatchItemFailures,
        }),
      );
    }

    // Live-stats WebSocket API: the topology's routes, each a Lambda proxy integration.
    const liveApi = new WebSocketApi(this, "LiveApi", {
      description: "Tidemark live statistics: subscribe and receive analytics.stats updates",
      routeSelectionExpression: webSocketApi.routeSelectionExpression,
    });
    for (const route of webSocketApi.routes) {
      const id = pascal(route.routeKey.replace(/^\$/, ""));
      liveApi.addRoute(route.routeKey, {
        integration: new WebSocketLambdaIntegration(`${id}Integration`, this.fn(route.function)),
      });
    }
    const liveStage = new WebSocketStage(this, "LiveStage", {
      webSocketApi: liveApi,
      stageName: webSocketApi.stageName,
      autoDeploy: true,
      throttle: { rateLimit: apiSettings.throttleRateLimit, burstLimit: apiSettings.throttleBurstLimit },
      accessLogSettings: {
        destination: new WebSocketLogDestination(
          new LogGroup(this, "LiveApiAccessLogs", {
            retention: stage.logRetention,
            removalPolicy: stage.removalPolicy,
          }),
        ),
      },
    });
    for (const [name, spec] of Object.entries(functions) as [FunctionName, FunctionSpec][]) {
      if (spec.postsToConnections) manageConnections(this.fn(name), liveStage);
    }
    // The dashboard page tells the browser where to connect.
    this.fn("dashboard").addEnvironment(webSocketApi.urlEnvVar, liveStage.url);

    // REST API: the topology's routes, stage throttling, API keys, access logs.
    const accessLogGroup = new LogGroup(this, "ApiAccessLogs", {
      retention: stage.logRetention,
      removalPolicy: stage.removalPolicy,
    });
    const restApi = new RestApi(this, "Api", {
      description: "Tidemark: send events, read history and live statistics",
      apiKeySourceType: ApiKeySourceType.HEADER,
      cloudWatchRole: true,
      deployOptions: {
        stageName: "v1",
        throttlingRateLimit: apiSettings.throttleRateLimit,
        throttlingBurstLimit: apiSettings.throttleBurstLimit,
        tracingEnabled: true,
        metricsEnabled: true,
        loggingLevel: MethodLoggingLevel.ERROR,
        accessLogDestination: new LogGroupLogDestination(accessLogGroup),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields(),
      },
      defaultCorsPreflightOptions: {
        allowOrigins: apiSettings.cors.allowOrigins.includes("*")
          ? Cors.ALL_ORIGINS
          : [...apiSettings.cors.allowOrigins],
        allowMethods: [...apiSettings.cors.allowMethods],
        allowHeaders: [...apiSettings.cors.allowHeaders],
        maxAge: Duration.seconds(apiSettings.cors.maxAgeSeconds),
      },
    });
    const validator = new RequestValidator(this, "ApiRequestValidator", {
      restApi,
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    for (const route of routes) {
      restApi.root
        .resourceForPath(route.path)
        .addMethod(route.method, new LambdaIntegration(this.fn(route.function)), {
          apiKeyRequired: route.apiKeyRequired,
          requestValidator: validator,
        });
    }
    const plan = restApi.addUsagePlan("UsagePlan", {
      description: "Default plan for Tidemark API clients",
      throttle: { rateLimit: apiSettings.throttleRateLimit, burstLimit: apiSettings.throttleBurstLimit },
      quota: { limit: stage.dailyQuota, period: Period.DAY },
    });
    plan.addApiStage({ stage: restApi.deploymentStage });
    const apiKey = restApi.addApiKey("ApiKey", { description: "Default Tidemark API key" });
    plan.addApiKey(apiKey);

    // Alarms and a dashboard.
    const alarmKey = new Key(this, "AlarmTopicKey", {
      enableKeyRotation: true,
      removalPolicy: stage.removalPolicy,
    });
    const alarmTopic = new Topic(this, "AlarmTopic", { masterKey: alarmKey, enforceSSL: true });
    const alarm = (id: string, metric: Metric, threshold: number, description: string) => {
      const a = new Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      a.addAlarmAction(new SnsAction(alarmTopic));
      return a;
    };
    const errorMetrics: Metric[] = [];
    for (const [name, f] of this.functions) {
      const errors = f.fn.metricErrors({ period: Duration.minutes(1) });
      errorMetrics.push(errors);
      alarm(`${pascal(name)}ErrorsAlarm`, errors, 1, `${name} function errors`);
      alarm(
        `${pascal(name)}ThrottlesAlarm`,
        f.fn.metricThrottles({ period: Duration.minutes(1) }),
        1,
        `${name} throttled`,
      );
    }
    const lagMetrics = eventSourceMappings.map(
      (spec) =>
        new Metric({
          namespace: "AWS/Lambda",
          metricName: "OffsetLag",
          dimensionsMap: { FunctionName: this.fn(spec.function).functionName },
          statistic: "Maximum",
          period: Duration.minutes(1),
          label: `${spec.id} offset lag`,
        }),
    );
    lagMetrics.forEach((m, i) => {
      alarm(`${eventSourceMappings[i]?.id}OffsetLagAlarm`, m, 100_000, "consumer falling behind events.raw");
    });
    const deadLetters = new Metric({
      namespace: "AWS/Kafka",
      metricName: "MessagesInPerSec",
      dimensionsMap: { "Cluster Name": cluster.clusterName ?? "self-managed", Topic: topics.deadLetter.name },
      statistic: "Sum",
      period: Duration.minutes(5),
    });
    alarm("DeadLetterAlarm", deadLetters, 1, "records reached the dead-letter topic");
    const dashboard = new Dashboard(this, "Dashboard", { defaultInterval: Duration.hours(3) });
    dashboard.addWidgets(
      new TextWidget({ markdown: `# Tidemark (${stage.name})`, width: 24, height: 1 }),
      new GraphWidget({
        title: "API requests and errors",
        left: [restApi.metricCount(), restApi.metricClientError(), restApi.metricServerError()],
        right: [restApi.metricLatency({ statistic: "p95" })],
        width: 12,
      }),
      new GraphWidget({ title: "Consumer offset lag", left: lagMetrics, width: 12 }),
      new GraphWidget({ title: "Function errors", left: errorMetrics, width: 12 }),
      new GraphWidget({ title: "Dead letters", left: [deadLetters], width: 12 }),
    );

    new CfnOutput(this, "ApiUrl", { value: restApi.url, description: "Base URL of the API" });
    new CfnOutput(this, "ApiKeyId", {
      value: apiKey.keyId,
      description: "aws apigateway get-api-key --include-value --api-key <id> prints the key",
    });
    new CfnOutput(this, "LiveUrl", {
      value: liveStage.url,
      description: 'Live statistics WebSocket: send {"action":"subscribe"} (docs/live-stats.md)',
    });
    new CfnOutput(this, "ArchiveBucketName", { value: archive.bucketName });
    if (cluster instanceof KafkaCluster)
      new CfnOutput(this, "KafkaClusterArn", { value: cluster.clusterArn });
    new CfnOutput(this, "AthenaWorkGroupName", { value: workGroup.name });
  }

  fn(name: FunctionName) {
    const f = this.functions.get(name);
    if (!f) throw new Error(`function ${name} is not defined`);
    return f.fn;
  }
}

function pascal(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
