import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBStreamEvent, MSKEvent } from "aws-lambda";
import { Kafka, logLevel } from "kafkajs";
import { messageBytes } from "../lib/adapters/kafka-batches.ts";
import {
  batchingWindowEnvVar,
  batchingWindowOverride,
  type EventSourceMappingSpec,
  eventSourceMappings,
  type FunctionName,
  tableStreamMappings,
  tables,
  topics,
} from "../lib/topology.ts";
import { LocalEventSourceMapping } from "./event-source-mapping.ts";
import { localFunction } from "./lambda-runtime.ts";
import { LocalTableStreamMapping } from "./table-stream-mapping.ts";

/**
 * Starts every event-source mapping of the topology (MSK topics and DynamoDB table streams)
 * against the function modules, configured from the function environment already in
 * `process.env` (KAFKA_BROKERS, DYNAMODB_ENDPOINT, table names).
 */
export interface RunningMappings {
  readonly kafka: ReadonlyMap<string, LocalEventSourceMapping>;
  readonly tableStreams: ReadonlyMap<string, LocalTableStreamMapping>;
  stop(): Promise<void>;
}

export async function startMappings(
  log: (line: string) => void,
  /** Only the mappings that invoke these functions (all when absent). */
  only?: ReadonlySet<FunctionName>,
): Promise<RunningMappings> {
  const wanted = (spec: { readonly function: FunctionName }) => !only || only.has(spec.function);
  const env = process.env;
  const brokers = (env.KAFKA_BROKERS ?? "").split(",").filter(Boolean);
  const kafka = new Kafka({ clientId: "tidemark-esm", brokers, logLevel: logLevel.NOTHING });
  const kafkaMappings = new Map<string, LocalEventSourceMapping>();
  const tableStreamMappingsById = new Map<string, LocalTableStreamMapping>();
  const failureProducer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await failureProducer.connect();
  const started: { stop(): Promise<void> }[] = [];
  const region = env.AWS_REGION ?? "us-east-1";
  const streams = new DynamoDBStreamsClient({
    region,
    ...(env.DYNAMODB_ENDPOINT ? { endpoint: env.DYNAMODB_ENDPOINT } : {}),
  });
  try {
    for (const declared of eventSourceMappings.filter(wanted)) {
      const fn = localFunction(declared.function);
      // TIDEMARK_BATCHING_WINDOW_<MAPPING_ID>=<seconds> overrides the declared window (the
      // aggregator's trades freshness for write cost).
      const window = batchingWindowOverride(env[batchingWindowEnvVar(declared.id)], declared.id);
      const spec: EventSourceMappingSpec =
        window === undefined ? declared : { ...declared, maximumBatchingWindowSeconds: window };
      const mapping = new LocalEventSourceMapping({
        spec,
        kafka,
        topic: topics[spec.topic].name,
        onFailureTopic: topics[spec.onFailure].name,
        onFailureMaxMessageBytes: topics[spec.onFailure].maxMessageBytes,
        functionName: `tidemark-${spec.function}`,
        invoke: (event: MSKEvent) => fn.invoke(event),
        log,
      });
      await mapping.start();
      started.push(mapping);
      kafkaMappings.set(spec.id, mapping);
    }
    for (const spec of tableStreamMappings.filter(wanted)) {
      const fn = localFunction(spec.function);
      const tableName = env[tables[spec.table].envVar];
      if (!tableName) throw new Error(`${tables[spec.table].envVar} is not set`);
      const mapping = new LocalTableStreamMapping({
        spec,
        client: streams,
        tableName,
        region,
        invoke: (event: DynamoDBStreamEvent) => fn.invoke(event),
        onFailure: async (failure) => {
          const destination = topics[spec.onFailure];
          // The records ride along while they fit; the batch info alone lets them be re-read.
          let value = JSON.stringify(failure);
          if (messageBytes({ value }) + 1024 > destination.maxMessageBytes)
            value = JSON.stringify({ ...failure, records: [], records_omitted: failure.records.length });
          await failureProducer.send({
            topic: destination.name,
            acks: -1,
            messages: [
              {
                key: failure.DDBStreamBatchInfo.shardId,
                value,
                headers: { "tidemark-source": `dynamodb-stream:${spec.id}` },
              },
            ],
          });
        },
        log,
      });
      await mapping.start();
      started.push(mapping);
      tableStreamMappingsById.set(spec.id, mapping);
    }
  } catch (error) {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await failureProducer.disconnect().catch(() => undefined);
    throw error;
  }
  return {
    kafka: kafkaMappings,
    tableStreams: tableStreamMappingsById,
    async stop() {
      for (const s of started.reverse()) await s.stop().catch(() => undefined);
      await failureProducer.disconnect().catch(() => undefined);
      streams.destroy();
    },
  };
}
