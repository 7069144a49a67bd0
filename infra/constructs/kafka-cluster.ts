import { CustomResource, Fn, Names, type RemovalPolicy, Stack } from "aws-cdk-lib";
import { type IVpc, Peer, Port, SecurityGroup, SubnetType } from "aws-cdk-lib/aws-ec2";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { CfnEventSourceMappingProps, Function as LambdaFunction } from "aws-cdk-lib/aws-lambda";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { CfnServerlessCluster } from "aws-cdk-lib/aws-msk";
import { Provider } from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import type { TopicSpec } from "../../lib/topology.ts";
import { TidemarkFunction } from "./tidemark-function.ts";

/**
 * How functions and event-source mappings reach Kafka: MSK Serverless with IAM in AWS
 * (`KafkaCluster`), or a plain self-managed broker (`SelfManagedKafka`, for LocalStack).
 */
export interface KafkaAccess {
  /** For alarms: the MSK cluster name, if any. */
  readonly clusterName?: string;
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
    // The ESM's pollers use the function's security groups; they must reach each other too.
    this.clientSecurityGroup.addIngressRule(this.clientSecurityGroup, Port.tcp(9098), "ESM pollers");

    this.clusterName = Names.uniqueResourceName(this, { maxLength: 64, separator: "-" }).toLowerCase();
    const cluster = new CfnServerlessCluster(this, "Cluster", {
      clusterName: this.clusterName,
      clientAuthentication: { sasl: { iam: { enabled: true } } },
      vpcConfigs: [
        {
          subnetIds: props.vpc.selectSubnets({ subnetType: SubnetType.PRIVATE_WITH_EGRESS }).subnetIds,
          securityGroups: [brokerSecurityGroup.securityGroupId],
        },
      ],
    });
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
        actions: ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic", "kafka-cluster:AlterTopic"],
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
    const topicsResource = new CustomResource(this, "Topics", {
      serviceToken: provider.serviceToken,
      resourceType: "Custom::KafkaTopics",
      properties: {
        ClusterArn: this.clusterArn,
        Topics: props.topics.map((t) => ({
          Name: t.name,
          Partitions: String(t.partitions),
          RetentionMs: String(t.retentionHours * 3_600_000),
        })),
      },
    });
    topicsResource.node.addDependency(cluster);
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
        actions: ["kafka:DescribeClusterV2", "kafka:DescribeCluster"],
        resources: [this.clusterArn],
      }),
    );
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
