import { CfnOutput, Duration, Stack, type StackProps } from "aws-cdk-lib";
import {
  AccessLogFormat,
  ApiKeySourceType,
  AuthorizationType,
  type CfnUsagePlan,
  CognitoUserPoolsAuthorizer,
  Cors,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  type MethodOptions,
  Period,
  RequestValidator,
  ResponseType,
  RestApi,
} from "aws-cdk-lib/aws-apigateway";
import {
  WebSocketApi,
  WebSocketApiKeySelectionExpression,
  LogGroupLogDestination as WebSocketLogDestination,
  WebSocketRoute,
  WebSocketStage,
} from "aws-cdk-lib/aws-apigatewayv2";
import { WebSocketLambdaAuthorizer } from "aws-cdk-lib/aws-apigatewayv2-authorizers";
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
import { UserPool } from "aws-cdk-lib/aws-cognito";
import { AttributeType, BillingMode, StreamViewType, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import {
  FlowLogDestination,
  GatewayVpcEndpointAwsService,
  SecurityGroup,
  SubnetType,
  Vpc,
} from "aws-cdk-lib/aws-ec2";
import { CfnDatabase, CfnTable } from "aws-cdk-lib/aws-glue";
import { PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { CfnEventSourceMapping, StartingPosition } from "aws-cdk-lib/aws-lambda";
import { DynamoEventSource, SqsDlq } from "aws-cdk-lib/aws-lambda-event-sources";
import { LogGroup } from "aws-cdk-lib/aws-logs";
import { BlockPublicAccess, Bucket, BucketEncryption, StorageClass } from "aws-cdk-lib/aws-s3";
import { Topic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import type { Construct } from "constructs";
import { serviceUnavailable, toErrorBody } from "../lib/contract/errors.ts";
import {
  api as apiSettings,
  buckets,
  corsHeaders,
  type EventSourceMappingSpec,
  eventSourceMappings,
  type FunctionName,
  type FunctionSpec,
  functions,
  ingestConcurrencyOverride,
  ingestThrottle,
  kafkaConnectionBudget,
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
  probeBucket,
  probeTable,
  produceTo,
  suppressBucketWildcards,
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
  /** Email address subscribed to the alarm topic (`-c alarmEmail=…`). @default no subscription */
  readonly alarmEmail?: string;
  /**
   * Who may call the write routes of `/rules` (POST, PUT, DELETE): API key only (`apiKey`),
   * SigV4-signed IAM principals (`iam`), or users of this Cognito user pool
   * (`{ cognitoUserPoolArn }`); the API key stays required on top. @default "apiKey"
   */
  readonly rulesWriteAuth?: RulesWriteAuth;
  /**
   * Batching windows (whole seconds) by MSK mapping id, replacing the topology's: e.g.
   * `{ AggregateEvents: 1 }` for fewer write units on a quiet stream at the cost of freshness
   * (docs/performance.md).
   * @default the topology's windows
   */
  readonly batchingWindowSeconds?: Readonly<Record<string, number>>;
  /**
   * Concurrency reserved for ingest (`-c ingestReservedConcurrency=N`): at most this many
   * environments, each holding a few MSK connections, and POST /events' own throttle follows it.
   * At most what MSK Serverless's connection quota allows. @default what the connection budget
   * leaves after the consumers and the other clients (kafkaConnectionBudget in lib/topology.ts)
   */
  readonly ingestReservedConcurrency?: number;
}

export type RulesWriteAuth = "apiKey" | "iam" | { readonly cognitoUserPoolArn: string };

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
    // Athena reads catalog names in lowercase and needs hyphenated ones quoted; CloudFormation's
    // generated names have hyphens and mixed case (Athena docs, "Names for tables, databases and
    // columns": only lowercase letters, numbers and underscores). Named from the stage instead.
    const database = new CfnDatabase(this, "GlueDatabase", {
      catalogId: this.account,
      databaseInput: { name: glueName(`tidemark_${stage.name}`), description: "Tidemark event archive" },
    });
    const eventsTable = new CfnTable(this, "GlueEventsTable", {
      catalogId: this.account,
      databaseName: database.ref,
      tableInput: {
        name: "events",
        description: "Archived events (NDJSON.gz), Hive partitions projected",
        tableType: "EXTERNAL_TABLE",
        parameters: {
          classification: "json",
          "projection.enabled": "true",
          "projection.event_type.type": "injected",
          "projection.dt.type": "date",
          "projection.dt.format": "yyyy-MM-dd",
          // Events may be stamped up to 5 minutes ahead (brief, section 2), so near midnight UTC the
          // archive holds tomorrow's dt already: a range ending at NOW would hide those events from
          // GET /events until the date arrives (Athena projects no dt after the range's end).
          "projection.dt.range": "2024-01-01,NOW+1DAYS",
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
            // Keys as written: with the default (case.insensitive TRUE) the SerDe lowercases every
            // key of a line, nested ones too, and an event whose properties differ only in case
            // ("Amount", "amount"; the contract allows them) fails every query reading it with
            // "JSONException: Duplicate key" (Athena docs, "OpenX JSON SerDe"). The columns below
            // are the stored events' keys, all lowercase already.
            parameters: { "ignore.malformed.json": "false", "case.insensitive": "false" },
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
      // A workgroup that ever ran a query is "not empty": without the recursive option
      // CloudFormation cannot delete it, and `cdk destroy` of a used stack fails (Athena
      // DeleteWorkGroup: RecursiveDeleteOption). What it drops is the query history; results
      // stay in their bucket (retained in prod).
      recursiveDeleteOption: true,
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

    // Ingest is the one Kafka client that scales with API traffic: its environments are what MSK
    // Serverless's connection quota leaves after the mappings and the other functions.
    const connectionBudget = kafkaConnectionBudget(stage.maximumPollers);
    const ingestConcurrency =
      ingestConcurrencyOverride(props.ingestReservedConcurrency, connectionBudget) ??
      connectionBudget.ingestEnvironments;

    // Functions, each granted exactly what the topology says it uses.
    for (const [name, spec] of Object.entries(functions) as [FunctionName, FunctionSpec][]) {
      const reservedConcurrency = name === "ingest" ? ingestConcurrency : spec.reservedConcurrency;
      const f = new TidemarkFunction(this, `${pascal(name)}Function`, {
        spec,
        ...(reservedConcurrency === undefined ? {} : { reservedConcurrency }),
        vpc,
        securityGroups: [clientSecurityGroup],
        logRetention: stage.logRetention,
        removalPolicy: stage.removalPolicy,
      });
      this.functions.set(name, f);
      for (const key of spec.tables) {
        // Every user of the connections table writes it (connect, subscribe, delete when gone).
        const writes = (spec as FunctionSpec).writesTables?.includes(key) || key === "connections";
        useTable(f.fn, tableConstructs[key], tables[key], writes ? "readWrite" : "read");
      }
      for (const key of spec.buckets) {
        useBucket(
          f.fn,
          archive,
          buckets[key].envVar,
          (spec as FunctionSpec).writesBuckets?.includes(key) ? "readWrite" : "read",
          `${buckets[key].prefix}*`,
        );
      }
      const probes = (spec as FunctionSpec).probes;
      for (const key of probes?.tables ?? []) probeTable(f.fn, tableConstructs[key], tables[key]);
      for (const key of probes?.buckets ?? []) probeBucket(f.fn, archive, buckets[key].envVar);
      for (const key of spec.produces) produceTo(f.fn, cluster, key, topics[key]);
      for (const key of (spec as FunctionSpec).observes ?? []) observeTopic(f.fn, cluster, key, topics[key]);
    }
    // Ingest compresses what it produces: MSK Serverless takes at most 5 MB/s per partition,
    // counted on the bytes sent, so events.raw's 6 partitions would cap uncompressed JSON events
    // (~400 B) at ~75,000 a second. Gzip shrinks a batch of them about fivefold.
    this.fn("ingest").addEnvironment("KAFKA_COMPRESSION", "gzip");
    // GET /events runs Athena over the Glue table.
    const eventsFn = this.fn("events");
    eventsFn.addEnvironment("EVENTS_QUERY_ENGINE", "athena");
    eventsFn.addEnvironment("ATHENA_WORKGROUP", workGroup.name);
    eventsFn.addEnvironment("ATHENA_DATABASE", database.ref);
    eventsFn.addEnvironment("ATHENA_TABLE", eventsTable.ref);
    // Athena writes results with the caller's permissions: read and put, never delete.
    athenaResults.grantRead(eventsFn);
    athenaResults.grantPut(eventsFn);
    suppressBucketWildcards(eventsFn);
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
    for (const declared of eventSourceMappings as readonly EventSourceMappingSpec[]) {
      const window = props.batchingWindowSeconds?.[declared.id];
      const spec: EventSourceMappingSpec =
        window === undefined ? declared : { ...declared, maximumBatchingWindowSeconds: window };
      const target = this.fn(spec.function);
      consumeFrom(target, cluster, topics[spec.topic], spec.consumerGroup);
      produceTo(target, cluster, spec.onFailure, topics[spec.onFailure]);
      const mapping = new CfnEventSourceMapping(this, spec.id, {
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
      // A mapping created before its topic exists fails to enable (Lambda checks the topic when
      // it starts polling), so it waits for the topics custom resource.
      if (cluster.topicsReady) mapping.node.addDependency(cluster.topicsReady);
    }
    // DynamoDB stream mappings (the stats publisher). A stream batch that still fails after its
    // retries is skipped; its metadata (shard, sequence range) goes to an SQS queue so it can be
    // inspected and replayed (Lambda docs, "Retaining discarded batches for a DynamoDB event source").
    const streamFailures = new Queue(this, "StreamFailuresQueue", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    NagSuppressions.addResourceSuppressions(streamFailures, [
      { id: "AwsSolutions-SQS3", reason: "This queue is itself the on-failure destination (a DLQ)." },
    ]);
    for (const spec of tableStreamMappings) {
      this.fn(spec.function).addEventSource(
        new DynamoEventSource(tableConstructs[spec.table], {
          startingPosition: StartingPosition[spec.startingPosition],
          batchSize: spec.batchSize,
          maxBatchingWindow: Duration.seconds(spec.maximumBatchingWindowSeconds),
          retryAttempts: spec.maximumRetryAttempts,
          reportBatchItemFailures: spec.reportBatchItemFailures,
          onFailure: new SqsDlq(streamFailures),
        }),
      );
    }

    // Live-stats WebSocket API: the topology's routes, each a Lambda proxy integration. `$connect`
    // needs an API key of the REST API's usage plan: browsers cannot set x-api-key on a
    // WebSocket, so the key comes in `?key=` (the authorizer's identity source: absent, 401
    // before any function runs), the authorizer returns it as `usageIdentifierKey`, and API
    // Gateway checks it against the usage plan below (unknown or disabled, 403).
    const liveApi = new WebSocketApi(this, "LiveApi", {
      description: "Tidemark live statistics: subscribe and receive analytics.stats updates",
      routeSelectionExpression: webSocketApi.routeSelectionExpression,
      apiKeySelectionExpression: WebSocketApiKeySelectionExpression.AUTHORIZER_USAGE_IDENTIFIER_KEY,
    });
    const { connectAuthorizer } = webSocketApi;
    const liveAuthorizer = new WebSocketLambdaAuthorizer(
      "LiveAuthorizer",
      this.fn(connectAuthorizer.function),
      {
        identitySource: [`route.request.querystring.${connectAuthorizer.keyParameter}`],
      },
    );
    for (const route of webSocketApi.routes) {
      const id = pascal(route.routeKey.replace(/^\$/, ""));
      const integration = new WebSocketLambdaIntegration(`${id}Integration`, this.fn(route.function));
      if (route.routeKey === "$connect") {
        // addRoute's scope and id (same logical id), with the key requirement addRoute cannot set.
        new WebSocketRoute(liveApi, `${route.routeKey}-Route`, {
          webSocketApi: liveApi,
          routeKey: route.routeKey,
          integration,
          authorizer: liveAuthorizer,
          apiKeyRequired: true,
        });
        continue;
      }
      const added = liveApi.addRoute(route.routeKey, { integration });
      NagSuppressions.addResourceSuppressions(added, [
        {
          id: "AwsSolutions-APIG4",
          reason:
            "API Gateway authorizes a WebSocket once, on $connect (Lambda authorizer and API key); later messages and $disconnect belong to that authorized connection.",
        },
      ]);
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
      if (!spec.postsToConnections) continue;
      const fn = this.fn(name);
      manageConnections(fn, liveStage);
      if (fn.role)
        NagSuppressions.addResourceSuppressions(
          fn.role,
          [
            {
              id: "AwsSolutions-IAM5",
              reason:
                "PostToConnection/DeleteConnection on this stage's @connections/*: connection ids exist only at run time.",
              appliesTo: [
                { regex: "/^Resource::arn:<AWS::Partition>:execute-api:.*\\/@connections\\/\\*$/" },
              ],
            },
          ],
          true,
        );
    }
    // The dashboard page tells the browser where to connect.
    this.fn("dashboard").addEnvironment(webSocketApi.urlEnvVar, liveStage.url);

    // REST API: the topology's routes, stage throttling, API keys, access logs.
    const accessLogGroup = new LogGroup(this, "ApiAccessLogs", {
      retention: stage.logRetention,
      removalPolicy: stage.removalPolicy,
    });
    const methodMonitoring = {
      metricsEnabled: true,
      loggingLevel: MethodLoggingLevel.ERROR,
      dataTraceEnabled: false,
    } as const;
    const restApi = new RestApi(this, "Api", {
      // API Gateway's metrics (the dashboard's API widget) are keyed by API name alone; CDK's
      // default, the construct id "Api", is shared by every stage in the account and by any other
      // CDK app's `new RestApi(this, "Api")`, whose traffic would then be drawn as Tidemark's.
      restApiName: `${this.stackName}-api`,
      description: "Tidemark: send events, read history and live statistics",
      apiKeySourceType: ApiKeySourceType.HEADER,
      cloudWatchRole: true,
      deployOptions: {
        stageName: "v1",
        throttlingRateLimit: apiSettings.throttleRateLimit,
        throttlingBurstLimit: apiSettings.throttleBurstLimit,
        // POST /events admits what ingest's reserved environments serve; the rest gets the gateway's
        // 429 rather than a Lambda throttle (503, INTEGRATION_FAILURE below). A method's settings
        // entry replaces the stage-wide one for that method, and what it leaves out is off (no
        // execution logs, no detailed metrics): it repeats the stage's logging and metrics.
        methodOptions: {
          "/events/POST": {
            ...methodMonitoring,
            throttlingRateLimit: ingestThrottle(ingestConcurrency).rateLimit,
            throttlingBurstLimit: ingestThrottle(ingestConcurrency).burstLimit,
          },
        },
        tracingEnabled: true,
        ...methodMonitoring,
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
    // API Gateway's own answers (bad body, missing key, throttling, integration failure) carry
    // the CORS headers and the API's one error shape too, not only the function's responses
    // (API Gateway docs, "Enabling CORS for a REST API resource": gateway responses need the
    // headers set on them).
    const gatewayCors = Object.fromEntries(Object.entries(corsHeaders()).map(([k, v]) => [k, `'${v}'`]));
    // `$context.error.messageString` is the gateway's message already JSON-quoted.
    const gatewayResponses = [
      [ResponseType.DEFAULT_4XX, "bad_request"],
      [ResponseType.INVALID_API_KEY, "forbidden"],
      [ResponseType.ACCESS_DENIED, "forbidden"],
      [ResponseType.UNAUTHORIZED, "unauthorized"],
      [ResponseType.DEFAULT_5XX, "internal_error"],
      [ResponseType.BAD_REQUEST_BODY, "invalid_body"],
      [ResponseType.THROTTLED, "too_many_requests"],
      [ResponseType.QUOTA_EXCEEDED, "quota_exceeded"],
      [ResponseType.REQUEST_TOO_LARGE, "payload_too_large"],
    ] as const;
    for (const [type, code] of gatewayResponses) {
      restApi.addGatewayResponse(`Gateway${type.responseType}`, {
        type,
        responseHeaders: gatewayCors,
        templates: {
          "application/json": `{"error":{"code":"${code}","message":$context.error.messageString}}`,
        },
      });
    }
    // An invocation Lambda refuses never reaches a handler: a throttle (the function's reserved
    // concurrency in use, e.g. ingest's Kafka connection budget) or another invoke error. API
    // Gateway answers it through INTEGRATION_FAILURE, as 500 "Internal server error" by default
    // (Lambda docs, "Handling Lambda errors with an API Gateway API"). It is a capacity answer:
    // 503 with Retry-After, like the broker's, so that clients back off and retry, which
    // `event_id` makes safe for POST /events.
    restApi.addGatewayResponse("GatewayINTEGRATION_FAILURE", {
      type: ResponseType.INTEGRATION_FAILURE,
      statusCode: "503",
      responseHeaders: { ...gatewayCors, "retry-after": "'1'" },
      templates: {
        "application/json": JSON.stringify(
          toErrorBody(
            serviceUnavailable(
              "the function behind this route could not be invoked (throttled or unavailable); retry",
            ),
          ),
        ),
      },
    });
    const validator = new RequestValidator(this, "ApiRequestValidator", {
      restApi,
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    // POST /events has no body model: API Gateway would answer an invalid batch with its own
    // generic "Invalid request body", while the contract (brief, section 3) lists every problem by
    // index and field, which the ingest handler does. Parameters are still validated here.
    const rulesAuth = props.rulesWriteAuth ?? "apiKey";
    const rulesWriteOptions: MethodOptions =
      rulesAuth === "apiKey"
        ? {}
        : rulesAuth === "iam"
          ? { authorizationType: AuthorizationType.IAM }
          : {
              authorizationType: AuthorizationType.COGNITO,
              authorizer: new CognitoUserPoolsAuthorizer(this, "RulesAuthorizer", {
                cognitoUserPools: [
                  UserPool.fromUserPoolArn(this, "RulesUserPool", rulesAuth.cognitoUserPoolArn),
                ],
              }),
            };
    for (const route of routes) {
      const isRulesWrite = route.path.startsWith("/rules") && route.method !== "GET";
      const method = restApi.root
        .resourceForPath(route.path)
        .addMethod(route.method, new LambdaIntegration(this.fn(route.function)), {
          apiKeyRequired: route.apiKeyRequired,
          requestValidator: validator,
          ...(isRulesWrite ? rulesWriteOptions : {}),
        });
      if (!route.apiKeyRequired) {
        NagSuppressions.addResourceSuppressions(method, [
          { id: "AwsSolutions-APIG4", reason: `${route.path} is public by design (no data, no writes).` },
          { id: "AwsSolutions-COG4", reason: `${route.path} is public by design (no data, no writes).` },
        ]);
      } else if (!isRulesWrite || rulesAuth === "apiKey") {
        NagSuppressions.addResourceSuppressions(method, [
          {
            id: "AwsSolutions-APIG4",
            reason: "Machine-to-machine clients authenticate with an API key and usage plan.",
          },
          {
            id: "AwsSolutions-COG4",
            reason:
              "Machine-to-machine clients use API keys; a Cognito authorizer is offered for /rules writes.",
          },
        ]);
      } else if (rulesAuth === "iam") {
        NagSuppressions.addResourceSuppressions(method, [
          { id: "AwsSolutions-COG4", reason: "IAM (SigV4) authorization is chosen for /rules writes." },
        ]);
      }
    }
    NagSuppressions.addResourceSuppressions(
      restApi,
      [
        {
          id: "AwsSolutions-IAM4",
          reason: "API Gateway's account-level logging role uses AWS's AmazonAPIGatewayPushToCloudWatchLogs.",
          appliesTo: [
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
          ],
        },
        {
          id: "AwsSolutions-APIG3",
          reason:
            "WAF is left to the deployer (cost, rule choice); stage throttling and usage plans limit abuse.",
        },
      ],
      true,
    );
    const plan = restApi.addUsagePlan("UsagePlan", {
      description: "Default plan for Tidemark API clients",
      throttle: { rateLimit: apiSettings.throttleRateLimit, burstLimit: apiSettings.throttleBurstLimit },
      quota: { limit: stage.dailyQuota, period: Period.DAY },
    });
    // One plan for both APIs, so that every key of the plan opens the live stream too (and
    // disabling a key closes both). The REST plan's L2 only takes REST stages: the WebSocket stage
    // is added on the resource, after the stage exists (its name is no reference CloudFormation
    // would order by).
    const cfnPlan = plan.node.defaultChild as CfnUsagePlan;
    cfnPlan.apiStages = [
      { apiId: restApi.restApiId, stage: restApi.deploymentStage.stageName },
      { apiId: liveApi.apiId, stage: liveStage.stageName },
    ];
    cfnPlan.node.addDependency(liveStage);
    // A stage that logs is refused until the account's API Gateway CloudWatch role is set ("CloudWatch
    // Logs role ARN must be set in account settings to enable logging"): CDK orders the REST stage
    // after the AWS::ApiGateway::Account that `cloudWatchRole` creates, the WebSocket stage waits here.
    const apiAccount = restApi.node.tryFindChild("Account");
    if (!apiAccount)
      throw new Error("the REST API's CloudWatch account settings (cloudWatchRole) are missing");
    liveStage.node.addDependency(apiAccount);
    const apiKey = restApi.addApiKey("ApiKey", { description: "Default Tidemark API key" });
    plan.addApiKey(apiKey);

    // Alarms and a dashboard.
    const alarmKey = new Key(this, "AlarmTopicKey", {
      enableKeyRotation: true,
      removalPolicy: stage.removalPolicy,
    });
    // CloudWatch publishes to an encrypted topic only if the key lets it (SNS docs, "Configure
    // AWS KMS permissions for AWS services": CloudWatch needs kms:Decrypt and kms:GenerateDataKey*).
    alarmKey.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
        resources: ["*"],
      }),
    );
    const alarmTopic = new Topic(this, "AlarmTopic", { masterKey: alarmKey, enforceSSL: true });
    // enforceSSL gives the topic a policy of its own (the TLS-only deny), which replaces SNS's
    // default policy: CloudWatch then needs an explicit allow, or every alarm action fails with
    // "... is not authorized to perform: SNS:Publish" (AWS Knowledge Center, "Why didn't I receive
    // an SNS notification for my CloudWatch alarm trigger?"). Only this account's alarms.
    alarmTopic.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["sns:Publish"],
        resources: [alarmTopic.topicArn],
        conditions: {
          ArnLike: { "aws:SourceArn": this.formatArn({ service: "cloudwatch", resource: "alarm:*" }) },
        },
      }),
    );
    if (props.alarmEmail) alarmTopic.addSubscription(new EmailSubscription(props.alarmEmail));
    const alarm = (
      id: string,
      metric: Metric,
      threshold: number,
      description: string,
      comparisonOperator = ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ) => {
      const a = new Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator,
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
    // A mapping's lag as Lambda reports it for the mapping's function, the worst minute's.
    const mappingLag = (metricName: string, spec: { id: string; function: FunctionName }, label: string) =>
      new Metric({
        namespace: "AWS/Lambda",
        metricName,
        dimensionsMap: { FunctionName: this.fn(spec.function).functionName },
        statistic: "Maximum",
        period: Duration.minutes(1),
        label: `${spec.id} ${label}`,
      });
    const lagMetrics = eventSourceMappings.map((spec) => mappingLag("OffsetLag", spec, "offset lag"));
    eventSourceMappings.forEach((spec, i) => {
      const m = lagMetrics[i];
      if (!m) return;
      alarm(
        `${spec.id}OffsetLagAlarm`,
        m,
        100_000,
        `${spec.function} (${spec.consumerGroup}) falling behind ${topics[spec.topic].name}`,
      );
    });
    // MessagesInPerSec is a rate: one dead letter in a minute averages far below 1/s, so the alarm
    // fires on any non-zero value instead of comparing the rate with 1.
    const deadLetters = new Metric({
      namespace: "AWS/Kafka",
      metricName: "MessagesInPerSec",
      dimensionsMap: { "Cluster Name": cluster.clusterName ?? "self-managed", Topic: topics.deadLetter.name },
      statistic: "Maximum",
      period: Duration.minutes(1),
    });
    alarm(
      "DeadLetterAlarm",
      deadLetters,
      0,
      "records reached the dead-letter topic",
      ComparisonOperator.GREATER_THAN_THRESHOLD,
    );
    alarm(
      "StreamFailuresAlarm",
      streamFailures.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: "Maximum",
      }),
      0,
      "a stats-publisher stream batch was discarded after its retries",
      ComparisonOperator.GREATER_THAN_THRESHOLD,
    );
    // A stream mapping's lag: the age of the last record read. Records leave the stream after
    // 24 h; stats 10 minutes late already mean a throttled or failing publisher.
    const iteratorAgeMetrics = tableStreamMappings.map((spec) => {
      const age = mappingLag("IteratorAge", spec, "iterator age");
      alarm(
        `${spec.id}IteratorAgeAlarm`,
        age,
        Duration.minutes(10).toMilliseconds(),
        `${spec.function} falling behind the ${spec.table} table's stream (records expire after 24 h)`,
      );
      return age;
    });
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
      new GraphWidget({ title: "Stats publisher iterator age (ms)", left: iteratorAgeMetrics, width: 12 }),
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

/** Glue/Athena catalog names: lowercase letters, digits and underscores only. */
function glueName(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9_]/g, "_");
}

function pascal(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
