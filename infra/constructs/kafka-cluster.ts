import { createHash } from "node:crypto";
import { CustomResource, Fn, Names, type RemovalPolicy, Stack } from "aws-cdk-lib";
import { type IVpc, Peer, Port, SecurityGroup, SubnetType } from "aws-cdk-lib/aws-ec2";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { CfnEventSourceMappingProps, Function as LambdaFunction } from "aws-cdk-lib/aws-lambda";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { CfnServerlessCluster } from "aws-cdk-lib/aws-msk";
import { Provider } from "aws-cdk-lib/custom-resources";
import { NagSuppressions } from "cdk-nag";
import { Construct, type IDependable } from "constructs";
import type { TopicSpec } from "../../lib/topology.ts";
import { TidemarkFunction } from "./tidemark-function.ts";

/** The VPC actions of AWSLambdaMSKExecutionRole that AWSLambdaVPCAccessExecutionRole lacks. */
export const MSK_MAPPING_VPC_ACTIONS = ["ec2:DescribeVpcs", "ec2:DescribeSecurityGroups"];

/**
 * How functions and event-source mappings reach Kafka: MSK Serverless with IAM in AWS
 * (`KafkaCluster`), or a plain self-managed broker (`SelfManagedKafka`, for LocalStack).
 */
export interface KafkaAccess {
  /** For alarms: the MSK cluster name, if any. */
  readonly clusterName?: string;
  /** What creates the topics, if Tidemark does: mappings depend on it. */
  readonly topicsReady?: IDependable;
  /** Lets the function connect and tells it how (environment). */
  grantConnect(fn: LambdaFunction): void;
  grantProduce(fn: LambdaFunction, topic: string): void;
  grantConsume(fn: LambdaFunction, topic: string, group: string): void;
  /** Read a topic's metadata and offsets (how many records it holds), not its data. */
  grantDescribe(fn: LambdaFunction, topic: string): void;
  /** The event-source properties of a mapping on `topic` for consumer group `group`. */
  eventSource(group: string): Partial<CfnEventSourceMappingProps>;
}

export interface KafkaClusterProps {
  readonly vpc: IVpc;
  /** The security group of the cluster's clients (functions, ESM pollers). */
  readonly clientSecurityGroup: SecurityGroup;
  /** Topics to create (name and partition count). */
  readonly topics: readonly TopicSpec[];
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * Amazon MSK Serverless with IAM authentication over TLS, in the VPC's private subnets, and its
 * topics created by a custom resource (MSK Serverless has no CloudFormation topic resource).
 */
export class KafkaCluster extends Construct implements KafkaAccess {
  readonly clusterArn: string;
  readonly clusterName: string;
  readonly topicsReady: IDependable;
  /** Clients (functions, ESM pollers) join this group to reach the brokers on 9098. */
  readonly clientSecurityGroup: SecurityGroup;

  constructor(scope: Construct, id: string, props: KafkaClusterProps) {
    super(scope, id);
    this.clientSecurityGroup = props.clientSecurityGroup;
    const brokerSecurityGroup = new SecurityGroup(this, "BrokerSecurityGroup", {
      vpc: props.vpc,
      description: "Tidemark MSK Serverless brokers",
    });
    brokerSecurityGroup.addIngressRule(
      Peer.securityGroupId(this.clientSecurityGroup.securityGroupId),
      Port.tcp(9098),
      "IAM-authenticated Kafka clients",
    );
    // MSK event pollers run in the *cluster's* subnets with the *cluster's* security group, not
    // the function's (Lambda docs, "Amazon MSK event source mappings: network configuration":
    // the cluster's security group must allow inbound traffic on the broker port from itself;
    // 9098 is the IAM port). Outbound stays open (CDK default) for STS/Lambda on 443.
    brokerSecurityGroup.addIngressRule(brokerSecurityGroup, Port.tcp(9098), "MSK event pollers (IAM port)");

    const clusterProps = {
      clientAuthentication: { sasl: { iam: { enabled: true } } },
      vpcConfigs: [
        {
          subnetIds: props.vpc.selectSubnets({ subnetType: SubnetType.PRIVATE_WITH_EGRESS }).subnetIds,
          securityGroups: [brokerSecurityGroup.securityGroupId],
        },
      ],
    };
    // AWS::MSK::ServerlessCluster requires ClusterName, and every property change replaces the
    // cluster; CloudFormation creates the replacement before deleting the old one, so a fixed
    // name makes every such update fail (CloudFormation docs, "Name type": "If you specify a
    // name, you cannot perform updates that require replacement of this resource"). CloudFormation
    // cannot generate this name, so it is derived from what forces a replacement: a hash of the
    // synthesized properties, and the brokers' security group id (a new VPC or group → new name).
    const fingerprint = createHash("sha256")
      .update(JSON.stringify(Stack.of(this).resolve(clusterProps)))
      .digest("hex")
      .slice(0, 8);
    const base = Names.uniqueResourceName(this, { maxLength: 35, separator: "-" }).toLowerCase();
    const sgSuffix = Fn.select(1, Fn.split("-", brokerSecurityGroup.securityGroupId));
    const cluster = new CfnServerlessCluster(this, "Cluster", {
      clusterName: Fn.join("-", [base, fingerprint, sgSuffix]),
      ...clusterProps,
    });
    // Topic/group ARNs and alarm dimensions take the name from the ARN (`cluster/<name>/<uuid>`).
    this.clusterName = Fn.select(1, Fn.split("/", cluster.attrArn));
    this.clusterArn = cluster.attrArn;

    const onEvent = new TidemarkFunction(this, "CreateTopics", {
      spec: {
        entry: "infra/custom-resources/create-topics.ts",
        description: "Creates the Tidemark Kafka topics on MSK Serverless",
        memoryMb: 256,
        timeoutSeconds: 120,
      },
      vpc: props.vpc,
      securityGroups: [this.clientSecurityGroup],
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    onEvent.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka:GetBootstrapBrokers"],
        resources: [this.clusterArn],
      }),
    );
    onEvent.fn.addToRolePolicy(
      new PolicyStatement({
        // Create, grow, and keep retention / max message size as the topology says (syncTopics).
        actions: [
          "kafka-cluster:CreateTopic",
          "kafka-cluster:DescribeTopic",
          "kafka-cluster:AlterTopic",
          "kafka-cluster:DescribeTopicDynamicConfiguration",
          "kafka-cluster:AlterTopicDynamicConfiguration",
        ],
        resources: props.topics.map((t) => this.topicArn(t.name)),
      }),
    );
    const provider = new Provider(this, "TopicsProvider", {
      onEventHandler: onEvent.fn,
      logGroup: new LogGroup(this, "TopicsProviderLogs", {
        retention: props.logRetention,
        removalPolicy: props.removalPolicy,
      }),
    });
    NagSuppressions.addResourceSuppressions(
      provider,
      [
        {
          id: "AwsSolutions-IAM4",
          reason:
            "The CDK custom-resource Provider framework's function uses AWSLambdaBasicExecutionRole for its logs.",
          appliesTo: [
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
          ],
        },
        {
          id: "AwsSolutions-IAM5",
          reason: "The Provider framework invokes any version of the topics function (`<arn>:*`).",
          appliesTo: [{ regex: "/^Resource::<KafkaCreateTopicsFunction[A-Za-z0-9]*\\.Arn>:\\*$/" }],
        },
      ],
      true,
    );
    const topicsResource = new CustomResource(this, "Topics", {
      serviceToken: provider.serviceToken,
      resourceType: "Custom::KafkaTopics",
      properties: {
        ClusterArn: this.clusterArn,
        Topics: props.topics.map((t) => ({
          Name: t.name,
          Partitions: String(t.partitions),
          RetentionMs: String(t.retentionHours * 3_600_000),
          MaxMessageBytes: String(t.maxMessageBytes),
        })),
      },
    });
    topicsResource.node.addDependency(cluster);
    this.topicsReady = topicsResource;
  }

  grantConnect(fn: LambdaFunction): void {
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka:GetBootstrapBrokers"],
        resources: [this.clusterArn],
      }),
    );
    fn.addEnvironment("KAFKA_AUTH", "iam");
    fn.addEnvironment("KAFKA_CLUSTER_ARN", this.clusterArn);
  }

  grantProduce(fn: LambdaFunction, topic: string): void {
    this.grantConnect(fn);
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
        resources: [this.topicArn(topic)],
      }),
    );
    // Every Tidemark producer is idempotent (kafkajs `idempotent: true`, and the ESM's Kafka
    // on-failure destination): MSK IAM access control requires WriteDataIdempotently on the
    // *cluster* resource for that (MSK docs, "IAM access control: semantics of actions and
    // resources"); without it every produce fails with ClusterAuthorizationException.
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ["kafka-cluster:WriteDataIdempotently"],
        resources: [this.clusterArn],
      }),
    );
  }

  grantDescribe(fn: LambdaFunction, topic: string): void {
    this.grantConnect(fn);
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ["kafka-cluster:DescribeTopic"], resources: [this.topicArn(topic)] }),
    );
  }

  grantConsume(fn: LambdaFunction, topic: string, group: string): void {
    this.grantConnect(fn);
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: [
          "kafka-cluster:DescribeTopic",
          "kafka-cluster:ReadData",
          "kafka-cluster:DescribeTopicDynamicConfiguration",
        ],
        resources: [this.topicArn(topic)],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
        resources: [this.groupArn(group)],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: [
          "kafka:DescribeClusterV2",
          "kafka:DescribeCluster",
          "kafka-cluster:DescribeClusterDynamicConfiguration",
        ],
        resources: [this.clusterArn],
      }),
    );
    // The rest of AWSLambdaMSKExecutionRole, the documented minimum for an MSK event-source
    // mapping (Lambda docs, "Configuring Lambda permissions for Amazon MSK event source
    // mappings"): the poller describes the cluster's VPC and security groups to place its ENIs.
    // The ENI actions come with AWSLambdaVPCAccessExecutionRole (VPC functions). EC2 Describe*
    // actions support no resource-level permissions, hence "*".
    fn.addToRolePolicy(new PolicyStatement({ actions: MSK_MAPPING_VPC_ACTIONS, resources: ["*"] }));
  }

  eventSource(group: string): Partial<CfnEventSourceMappingProps> {
    return {
      eventSourceArn: this.clusterArn,
      amazonManagedKafkaEventSourceConfig: { consumerGroupId: group },
    };
  }

  /** `arn:<partition>:kafka:<region>:<account>:topic/<cluster name>/<cluster uuid>/<topic>` */
  topicArn(topic: string): string {
    return this.#resourceArn("topic", topic);
  }

  groupArn(group: string): string {
    return this.#resourceArn("group", group);
  }

  #resourceArn(kind: "topic" | "group", name: string): string {
    const uuid = Fn.select(2, Fn.split("/", this.clusterArn));
    return Stack.of(this).formatArn({
      service: "kafka",
      resource: kind,
      resourceName: `${this.clusterName}/${uuid}/${name}`,
    });
  }
}

/**
 * A Kafka broker Tidemark does not manage (plain listener, no IAM): what LocalStack deployments
 * use in place of MSK, whose LocalStack emulation is only in licensed editions.
 */
export class SelfManagedKafka implements KafkaAccess {
  constructor(private readonly brokers: readonly string[]) {}

  grantConnect(fn: LambdaFunction): void {
    fn.addEnvironment("KAFKA_AUTH", "none");
    fn.addEnvironment("KAFKA_BROKERS", this.brokers.join(","));
  }

  grantProduce(fn: LambdaFunction): void {
    this.grantConnect(fn);
  }

  grantConsume(fn: LambdaFunction): void {
    this.grantConnect(fn);
  }

  grantDescribe(fn: LambdaFunction): void {
    this.grantConnect(fn);
  }

  eventSource(group: string): Partial<CfnEventSourceMappingProps> {
    return {
      selfManagedEventSource: { endpoints: { kafkaBootstrapServers: [...this.brokers] } },
      selfManagedKafkaEventSourceConfig: { consumerGroupId: group },
    };
  }
}
