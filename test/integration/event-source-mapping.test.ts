import type { MSKEvent } from "aws-lambda";
import { type Admin, type Consumer, type ConsumerConfig, Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { LocalEventSourceMapping } from "../../local/event-source-mapping.ts";
import { waitFor } from "./support.ts";

/** The emulated MSK event-source mapping against the real broker: AWS's delivery semantics. */
describe("local event-source mapping", () => {
  let kafka: Kafka;
  let admin: Admin;
  const running: LocalEventSourceMapping[] = [];

  beforeAll(async () => {
    kafka = new Kafka({
      clientId: "esm-test",
      brokers: inject("endpoints").kafkaBrokers,
      logLevel: logLevel.NOTHING,
    });
    admin = kafka.admin();
    await admin.connect();
  });
  afterAll(async () => {
    for (const m of running) await m.stop();
    await admin.disconnect();
  });

  let seq = 0;
  async function freshTopics(count: number): Promise<{ topic: string; dlq: string; group: string }> {
    seq++;
    const id = `${Date.now()}-${seq}`;
    const topic = `esm-test-${id}`;
    const dlq = `esm-test-dlq-${id}`;
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic, numPartitions: 1, replicationFactor: 1 },
        { topic: dlq, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: count }, (_, i) => ({
        key: `k${i}`,
        value: JSON.stringify({ n: i }),
        headers: { trace: `t${i}` },
      })),
    });
    await producer.disconnect();
    return { topic, dlq, group: `esm-test-group-${id}` };
  }

  function mapping(
    t: { topic: string; dlq: string; group: string; onFailureTopic?: string },
    invoke: (event: MSKEvent) => Promise<unknown>,
    overrides: {
      batchSize?: number;
      maximumRetryAttempts?: number;
      reportBatchItemFailures?: boolean;
      maximumBatchingWindowSeconds?: number;
    } = {},
  ): LocalEventSourceMapping {
    const m = new LocalEventSourceMapping({
      spec: {
        id: "Test",
        consumerGroup: t.group,
        batchSize: overrides.batchSize ?? 100,
        maximumBatchingWindowSeconds: overrides.maximumBatchingWindowSeconds ?? 0,
        startingPosition: "TRIM_HORIZON",
        maximumRetryAttempts: overrides.maximumRetryAttempts ?? 3,
        reportBatchItemFailures: overrides.reportBatchItemFailures ?? true,
      },
      kafka,
      topic: t.topic,
      onFailureTopic: t.onFailureTopic ?? t.dlq,
      functionName: "test-fn",
      invoke,
      retryDelayMs: () => 20,
    });
    running.push(m);
    return m;
  }

  async function committed(group: string, topic: string): Promise<number> {
    const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return Number(entry?.partitions[0]?.offset ?? "-1");
  }

  const values = (event: MSKEvent) =>
    Object.values(event.records)
      .flat()
      .map((r) => JSON.parse(Buffer.from(r.value, "base64").toString()) as { n: number });

  it("delivers MSK-shaped batches no larger than batchSize and commits after success", async () => {
    const t = await freshTopics(25);
    const events: MSKEvent[] = [];
    const m = mapping(t, async (e) => void events.push(e), { batchSize: 10 });
    await m.start();
    await waitFor(async () => ((await committed(t.group, t.topic)) === 25 ? true : undefined));
    await m.stop();
    const first = events[0];
    expect(first?.eventSource).toBe("aws:kafka");
    expect(Object.keys(first?.records ?? {})).toEqual([`${t.topic}-0`]);
    const record = first?.records[`${t.topic}-0`]?.[0];
    expect(record).toMatchObject({ topic: t.topic, partition: 0, offset: 0, timestampType: "CREATE_TIME" });
    expect(Buffer.from(record?.key ?? "", "base64").toString()).toBe("k0");
    expect(record?.headers).toContainEqual({ trace: [...Buffer.from("t0")] });
    expect(events.every((e) => Object.values(e.records).flat().length <= 10)).toBe(true);
    expect(events.flatMap(values).map((v) => v.n)).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it("starts a consumer again after it crashed for good, and resumes from the committed offset", async () => {
    // A batch that fails every attempt goes to the on-failure topic; an invalid topic name makes
    // that produce fail with a non-retriable error, which stops a kafkajs consumer for good (it
    // leaves the group). An ESM keeps polling: the mapping starts a new consumer.
    const t = await freshTopics(3);
    let healthy = false;
    const delivered: number[] = [];
    const lines: string[] = [];
    const m = new LocalEventSourceMapping({
      spec: {
        id: "Crash",
        consumerGroup: t.group,
        batchSize: 10,
        maximumBatchingWindowSeconds: 0,
        startingPosition: "TRIM_HORIZON",
        maximumRetryAttempts: 0,
        reportBatchItemFailures: true,
      },
      kafka,
      topic: t.topic,
      onFailureTopic: "not a valid topic name!",
      functionName: "test-fn",
      invoke: async (e) => {
        if (!healthy) throw new Error("not yet");
        delivered.push(...values(e).map((v) => v.n));
        return { batchItemFailures: [] };
      },
      retryDelayMs: () => 20,
      log: (line) => lines.push(line),
    });
    running.push(m);
    await m.start();
    await waitFor(async () => (m.restarts > 0 ? true : undefined), { timeoutMs: 30_000 });
    expect(lines.some((l) => l.includes("consumer crashed"))).toBe(true);
    expect(await committed(t.group, t.topic)).toBe(-1);
    healthy = true;
    await waitFor(async () => ((await committed(t.group, t.topic)) === 3 ? true : undefined), {
      timeoutMs: 30_000,
    });
    await m.stop();
    expect(delivered).toEqual([0, 1, 2]);
  });

  it("commits nothing while the handler fails, and redelivers after a restart", async () => {
    const t = await freshTopics(5);
    let failures = 0;
    const failing = mapping(
      t,
      async () => {
        failures++;
        throw new Error("boom");
      },
      { maximumRetryAttempts: 1_000 },
    );
    await failing.start();
    await waitFor(async () => (failures >= 5 ? true : undefined));
    expect(await committed(t.group, t.topic)).toBe(-1);
    await failing.stop();

    const delivered: number[] = [];
    const healthy = mapping(t, async (e) => void delivered.push(...values(e).map((v) => v.n)));
    await healthy.start();
    await waitFor(async () => ((await committed(t.group, t.topic)) === 5 ? true : undefined));
    await healthy.stop();
    expect(delivered).toEqual([0, 1, 2, 3, 4]);
  });

  it("retries a failed batch with the same records until it succeeds", async () => {
    const t = await freshTopics(4);
    const attempts: number[][] = [];
    const m = mapping(t, async (e) => {
      attempts.push(values(e).map((v) => v.n));
      if (attempts.length < 3) throw new Error(`transient ${attempts.length}`);
    });
    await m.start();
    await waitFor(async () => ((await committed(t.group, t.topic)) === 4 ? true : undefined));
    await m.stop();
    expect(attempts).toEqual([
      [0, 1, 2, 3],
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ]);
  });

  it("honours batchItemFailures: commits before the lowest failed offset and retries from it", async () => {
    const t = await freshTopics(10);
    const batches: number[][] = [];
    const committedAtRetry: number[] = [];
    const m = mapping(t, async (e) => {
      const ns = values(e).map((v) => v.n);
      batches.push(ns);
      if (batches.length === 1) {
        return {
          batchItemFailures: [
            { itemIdentifier: { partition: `${t.topic}-0`, offset: 7 } },
            { itemIdentifier: { partition: `${t.topic}-0`, offset: 4 } },
          ],
        };
      }
      committedAtRetry.push(await committed(t.group, t.topic));
      return { batchItemFailures: [] };
    });
    await m.start();
    await waitFor(async () => ((await committed(t.group, t.topic)) === 10 ? true : undefined));
    await m.stop();
    expect(batches[0]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(batches[1]).toEqual([4, 5, 6, 7, 8, 9]);
    expect(committedAtRetry[0]).toBe(4);
  });

  it("sends the batch to the on-failure topic after the retries, with failure metadata, and moves on", async () => {
    const t = await freshTopics(3);
    let calls = 0;
    const m = mapping(
      t,
      async () => {
        calls++;
        throw new Error("poison");
      },
      { maximumRetryAttempts: 2 },
    );
    await m.start();
    await waitFor(async () => ((await committed(t.group, t.topic)) === 3 ? true : undefined));
    await m.stop();
    expect(calls).toBe(3);
    const consumer = kafka.consumer({ groupId: `${t.group}-dlq-reader` });
    await consumer.connect();
    await consumer.subscribe({ topic: t.dlq, fromBeginning: true });
    const dead: { value: string; error: string; offset: string }[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        dead.push({
          value: message.value?.toString() ?? "",
          error: message.headers?.["x-tidemark-error"]?.toString() ?? "",
          offset: message.headers?.["x-tidemark-source-offset"]?.toString() ?? "",
        });
      },
    });
    await waitFor(async () => (dead.length === 3 ? true : undefined));
    await consumer.disconnect();
    expect(dead.map((d) => JSON.parse(d.value))).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expect(dead.map((d) => d.offset)).toEqual(["0", "1", "2"]);
    expect(dead[0]?.error).toContain("poison");
  });

  it("long-polls an idle topic without a window, and still delivers a record as it arrives", async () => {
    const t = await freshTopics(0);
    // The mapping's consumer, seen through kafkajs's instrumentation: its Fetch requests.
    let fetches = 0;
    const counting: Kafka = Object.create(kafka);
    counting.consumer = (config: ConsumerConfig) => {
      const consumer = kafka.consumer(config);
      consumer.on(consumer.events.REQUEST, (e) => {
        if (e.payload.apiName === "Fetch") fetches++;
      });
      return consumer;
    };
    const delivered: number[] = [];
    const m = new LocalEventSourceMapping({
      spec: {
        id: "Idle",
        consumerGroup: t.group,
        batchSize: 100,
        maximumBatchingWindowSeconds: 0,
        startingPosition: "TRIM_HORIZON",
        maximumRetryAttempts: 0,
        reportBatchItemFailures: true,
      },
      kafka: counting,
      topic: t.topic,
      onFailureTopic: t.dlq,
      functionName: "test-fn",
      invoke: async () => {
        delivered.push(Date.now());
      },
    });
    running.push(m);
    await m.start();
    await new Promise((r) => setTimeout(r, 500));
    const before = fetches;
    await new Promise((r) => setTimeout(r, 3_000));
    // Held up to 1 s: about 3 in 3 s (every 100 ms before: about 30).
    expect(fetches - before).toBeLessThanOrEqual(6);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const sentAt = Date.now();
    await producer.send({ topic: t.topic, acks: -1, messages: [{ value: "{}" }] });
    await producer.disconnect();
    await waitFor(async () => (delivered.length > 0 ? true : undefined));
    // The held fetch answers at the record's arrival, not at its timeout.
    expect((delivered[0] ?? Number.POSITIVE_INFINITY) - sentAt).toBeLessThan(500);
    await m.stop();
  });

  // AWS: "For Amazon MSK, self-managed Apache Kafka, and Amazon MQ event sources ... A batching
  // window begins as soon as the first record arrives" (Lambda developer guide, "Batching behavior").
  it("gathers records for the batching window from the first record's arrival", async () => {
    const t = await freshTopics(0);
    const batches: { at: number; offsets: number[] }[] = [];
    const m = mapping(
      t,
      async (e) => {
        batches.push({
          at: Date.now(),
          offsets: Object.values(e.records)
            .flat()
            .map((r) => r.offset),
        });
      },
      { maximumBatchingWindowSeconds: 1 },
    );
    await m.start();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const firstAt = Date.now();
    for (let i = 0; i < 3; i++) {
      await producer.send({ topic: t.topic, acks: -1, messages: [{ value: JSON.stringify({ n: i }) }] });
      await new Promise((r) => setTimeout(r, 150));
    }
    await waitFor(async () => ((await committed(t.group, t.topic)) === 3 ? true : undefined));
    await producer.disconnect();
    await m.stop();
    // One batch, a window after the first record: not one per record, not a window per record.
    expect(batches.map((b) => b.offsets)).toEqual([[0, 1, 2]]);
    expect((batches[0]?.at ?? 0) - firstAt).toBeGreaterThanOrEqual(900);
    expect((batches[0]?.at ?? 0) - firstAt).toBeLessThan(1_900);
  });

  it("invokes at once after a long invocation when the next batch's window has already elapsed", async () => {
    const t = await freshTopics(1);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const calls: { started: number; ended: number; offsets: number[] }[] = [];
    const m = mapping(
      t,
      async (e) => {
        const started = Date.now();
        const offsets = Object.values(e.records)
          .flat()
          .map((r) => r.offset);
        // The first invocation runs 2 s; a record arrives 0.3 s into it, so its window (1 s)
        // has elapsed by the time the invocation ends.
        if (calls.length === 0) {
          await new Promise((r) => setTimeout(r, 300));
          await producer.send({ topic: t.topic, acks: -1, messages: [{ value: JSON.stringify({ n: 1 }) }] });
          await new Promise((r) => setTimeout(r, 1_700));
        }
        calls.push({ started, ended: Date.now(), offsets });
      },
      { maximumBatchingWindowSeconds: 1 },
    );
    await m.start();
    await waitFor(async () => ((await committed(t.group, t.topic)) === 2 ? true : undefined));
    await producer.disconnect();
    await m.stop();
    expect(calls.map((c) => c.offsets)).toEqual([[0], [1]]);
    const [first, second] = calls;
    expect((second?.started ?? 0) - (first?.ended ?? 0)).toBeLessThan(400);
  });

  it("delivers every record at least once and commits them all across a rebalance of buffered partitions", async () => {
    const id = `${Date.now()}-rebalance`;
    const t = { topic: `esm-test-${id}`, dlq: `esm-test-dlq-${id}`, group: `esm-test-group-${id}` };
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: t.topic, numPartitions: 3, replicationFactor: 1 },
        { topic: t.dlq, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const produce = (from: number, count: number) =>
      producer.send({
        topic: t.topic,
        acks: -1,
        messages: Array.from({ length: count }, (_, i) => ({
          partition: (from + i) % 3,
          value: JSON.stringify({ n: from + i }),
        })),
      });
    const delivered = new Set<number>();
    // Slow invocations of small batches (a second for 20 records): records wait in the buffers
    // when the second mapping joins the group and it rebalances.
    const slow = async (e: MSKEvent) => {
      await new Promise((r) => setTimeout(r, 1_000));
      for (const v of values(e)) delivered.add(v.n);
    };
    const first = mapping(t, slow, { batchSize: 20, maximumBatchingWindowSeconds: 1 });
    await produce(0, 360);
    await first.start();
    await new Promise((r) => setTimeout(r, 1_500));
    const second = mapping(t, slow, { batchSize: 20, maximumBatchingWindowSeconds: 1 });
    await second.start();
    await produce(360, 90);
    const total = async () => {
      const [entry] = await admin.fetchOffsets({ groupId: t.group, topics: [t.topic] });
      return (entry?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
    };
    await waitFor(async () => ((await total()) === 450 ? true : undefined), { timeoutMs: 60_000 });
    await producer.disconnect();
    await first.stop();
    await second.stop();
    expect([...delivered].sort((a, b) => a - b)).toEqual(Array.from({ length: 450 }, (_, i) => i));
  });
  /**
   * A mapping on a fresh topic of `partitions` partitions, with its kafkajs consumers in view (the
   * broker is the real one): when each was made and when the mapping disconnected it. `hold()`
   * makes the next invocations on every partition wait until the returned release is called.
   */
  async function observedMapping(name: string, partitions: number) {
    const id = `${Date.now()}-${name}`;
    const t = { topic: `esm-test-${id}`, dlq: `esm-test-dlq-${id}`, group: `esm-test-group-${id}` };
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: t.topic, numPartitions: partitions, replicationFactor: 1 },
        { topic: t.dlq, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    // Idempotent: a send retried on a fresh broker must not add records that nothing expects.
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    let produced = 0;
    const produce = async (perPartition: number) => {
      const from = produced;
      produced += partitions * perPartition;
      await producer.send({
        topic: t.topic,
        acks: -1,
        messages: Array.from({ length: partitions * perPartition }, (_, i) => ({
          partition: (from + i) % partitions,
          value: JSON.stringify({ n: from + i }),
        })),
      });
    };
    const consumers: { consumer: Consumer; madeAt: number; disconnectedAt?: number }[] = [];
    const observed = new Proxy(kafka, {
      get: (target, prop) =>
        prop === "consumer"
          ? (config: ConsumerConfig) => {
              const consumer = target.consumer(config);
              const entry: (typeof consumers)[number] = { consumer, madeAt: Date.now() };
              const disconnect = consumer.disconnect;
              consumer.disconnect = () => {
                entry.disconnectedAt ??= Date.now();
                return disconnect();
              };
              consumers.push(entry);
              return consumer;
            }
          : Reflect.get(target, prop),
    });
    let held: Promise<void> | undefined;
    const waiting = new Set<number>();
    const delivered = new Set<number>();
    const lines: { at: number; line: string }[] = [];
    const m = new LocalEventSourceMapping({
      spec: {
        id: name,
        consumerGroup: t.group,
        batchSize: 10,
        maximumBatchingWindowSeconds: 0,
        startingPosition: "TRIM_HORIZON",
        maximumRetryAttempts: 3,
        reportBatchItemFailures: true,
      },
      kafka: observed,
      topic: t.topic,
      onFailureTopic: t.dlq,
      functionName: "test-fn",
      invoke: async (e) => {
        const partition = Object.values(e.records).flat()[0]?.partition ?? -1;
        waiting.add(partition);
        await held;
        waiting.delete(partition);
        for (const v of values(e)) delivered.add(v.n);
      },
      retryDelayMs: () => 20,
      log: (line) => lines.push({ at: Date.now(), line }),
    });
    running.push(m);
    const hold = () => {
      let release = () => {};
      held = new Promise<void>((r) => {
        release = r;
      });
      return () => {
        held = undefined;
        release();
      };
    };
    const total = async () => {
      const [entry] = await admin.fetchOffsets({ groupId: t.group, topics: [t.topic] });
      return (entry?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
    };
    // The group's committed offsets at the end of every partition.
    const allCommitted = async (timeoutMs: number) => {
      const ends = await admin.fetchTopicOffsets(t.topic);
      const end = ends.reduce((n, p) => n + Number(p.high), 0);
      await waitFor(async () => ((await total()) === end ? true : undefined), { timeoutMs });
    };
    const crashLines = () => lines.filter((l) => l.line.includes("crashed"));
    return {
      t,
      m,
      consumers,
      delivered,
      waiting,
      hold,
      produce,
      allCommitted,
      crashLines,
      produced: () => produced,
      close: () => producer.disconnect(),
    };
  }

  /**
   * Makes the group refuse every in-flight commit of `consumer`, as a real rebalance does: a
   * member that stops answering (its handler is busy, and a kafkajs consumer does not heartbeat
   * while its handler runs) joins, then another member joins. The mapping's consumer rejoins, and
   * its JoinGroup waits for the silent member (10 s, the rebalance timeout). The invocations held
   * by `release` end meanwhile, and their commits, of the generation that is ending, are all
   * refused with "Specified group generation id is not valid" once the group moves on.
   */
  async function refuseInFlightCommits(
    group: string,
    topic: string,
    consumer: Consumer,
    release: () => void,
  ) {
    const timeouts = { sessionTimeout: 10_000, rebalanceTimeout: 10_000, heartbeatInterval: 1_000 };
    let unblock = () => {};
    const busy = new Promise<void>((r) => {
      unblock = r;
    });
    const silent = kafka.consumer({ groupId: group, ...timeouts });
    await silent.connect();
    await silent.subscribe({ topic, fromBeginning: true });
    // run() returns once the consumer is in the group.
    await silent.run({ autoCommit: false, eachBatch: () => busy });
    const rejoining = new Promise<void>((r) => {
      const off = consumer.on(consumer.events.REBALANCING, () => {
        off();
        r();
      });
    });
    const joiner = kafka.consumer({ groupId: group, ...timeouts });
    await joiner.connect();
    await joiner.subscribe({ topic, fromBeginning: true });
    // Not awaited yet: it returns after the rebalance, which waits for the silent member.
    const joined = joiner.run({ autoCommit: false, eachBatch: () => busy });
    await Promise.race([
      rejoining,
      new Promise((_, reject) => {
        setTimeout(() => reject(new Error("the mapping's consumer did not rejoin")), 20_000).unref();
      }),
    ]);
    await new Promise((r) => setTimeout(r, 500));
    release();
    await joined;
    unblock();
    await joiner.disconnect();
    await silent.disconnect();
  }

  // Seen in a real run: seven "consumer crashed for good ... Specified group generation id is not
  // valid" lines at startup, then the group's lag stood still with no further log line. Each
  // partition's refused commit reported the crash, and each report scheduled a restart of its own
  // (0.5, 1, 2, 4, 5, 5 s): each disconnected the consumer the previous one had just started
  // (another rebalance, more refused commits), and two firing together left a consumer in the
  // group that the mapping no longer delivered for, holding partitions.
  it("restarts once for a burst of refused commits across partitions, then delivers and commits everything", async () => {
    const partitions = 6;
    const s = await observedMapping("Burst", partitions);
    await s.produce(40);
    const release = s.hold();
    await s.m.start();
    await waitFor(async () => (s.waiting.size === partitions ? true : undefined), { timeoutMs: 20_000 });
    const [first] = s.consumers;
    if (!first) throw new Error("the mapping made no consumer");
    await refuseInFlightCommits(s.t.group, s.t.topic, first.consumer, release);
    const caughtUp = await s.allCommitted(60_000).then(
      () => true,
      () => false,
    );
    // Longer than any restart the burst could have scheduled; then more records, on every partition.
    await new Promise((r) => setTimeout(r, 8_000));
    await s.produce(10);
    const caughtUpAgain = await s.allCommitted(30_000).then(
      () => true,
      () => false,
    );
    await s.close();
    const [group] = (await admin.describeGroups([s.t.group])).groups;
    await s.m.stop();

    // The burst: every in-flight commit refused, each reported.
    expect(s.crashLines().length).toBeGreaterThanOrEqual(partitions);
    expect(s.crashLines()[0]?.line).toContain("Specified group generation id is not valid");
    // One restart: the crashed consumer and one more, the only member left in the group, and
    // every partition's committed offset at its end, after the burst and after more records.
    expect({
      restarts: s.m.restarts,
      consumers: s.consumers.length,
      members: group?.members.length,
      caughtUp,
      caughtUpAgain,
    }).toEqual({ restarts: 1, consumers: 2, members: 1, caughtUp: true, caughtUpAgain: true });
    expect([...s.delivered].sort((a, b) => a - b)).toEqual(Array.from({ length: s.produced() }, (_, i) => i));
  });

  it("restarts after the shortest backoff again once the new consumer has delivered", async () => {
    // One partition: one refused commit per crash, no burst.
    const partitions = 1;
    const s = await observedMapping("Backoff", partitions);
    // From the crash report to the crashed consumer's disconnect: the restart's backoff.
    const crash = async () => {
      await s.produce(20);
      const release = s.hold();
      await waitFor(async () => (s.waiting.size === partitions ? true : undefined), { timeoutMs: 20_000 });
      const current = s.consumers.at(-1);
      if (!current) throw new Error("the mapping made no consumer");
      const crashes = s.crashLines().length;
      await refuseInFlightCommits(s.t.group, s.t.topic, current.consumer, release);
      await waitFor(async () => (current.disconnectedAt ? true : undefined), { timeoutMs: 10_000 });
      return (current.disconnectedAt ?? Number.NaN) - (s.crashLines()[crashes]?.at ?? Number.NaN);
    };
    await s.m.start();
    const firstDelay = await crash();
    await s.allCommitted(30_000);
    const secondDelay = await crash();
    await s.allCommitted(30_000);
    await s.close();
    await s.m.stop();

    // 500 ms both times: the new consumer delivered in between, so the second crash is not taken
    // for the second of a row (1 s).
    const delays = `backoffs ${firstDelay} ms, ${secondDelay} ms`;
    expect(firstDelay, delays).toBeGreaterThanOrEqual(450);
    expect(firstDelay, delays).toBeLessThan(900);
    expect(secondDelay, delays).toBeGreaterThanOrEqual(450);
    expect(secondDelay, delays).toBeLessThan(900);
    expect(s.m.restarts).toBe(2);
  });
});
