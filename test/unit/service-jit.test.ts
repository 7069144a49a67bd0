import { describe, expect, it } from "vitest";
import { javaCommand, type ServiceName, serviceJitArgs } from "../../local/services/index.ts";

const endpoints = {
  kafkaBrokers: ["127.0.0.1:19092"],
  dynamodbEndpoint: "http://127.0.0.1:8000",
  s3Endpoint: "http://127.0.0.1:9090",
};

describe("the local services' JIT compiler", () => {
  // C2 took half of the broker's and DynamoDB Local's CPU in their first minutes on two shared
  // cores (docs/performance.md, session 18): every service runs the client compiler alone.
  it.each<ServiceName>(["kafka", "dynamodb", "s3"])("%s runs C1 alone by default", (name) => {
    const { args } = javaCommand(name, "/tmp/data", endpoints);
    expect(args).toContain("-XX:TieredStopAtLevel=1");
    // JVM options come before the main class: after it they would be the program's arguments.
    const main = args.findIndex((a) => /^(kafka\.Kafka|com\.amazonaws\.|org\.gaul\.)/.test(a));
    expect(main).toBeGreaterThan(args.indexOf("-XX:TieredStopAtLevel=1"));
  });

  it("TIDEMARK_SERVICES_JIT=tiered restores the JVM's default; anything else is refused", () => {
    expect(serviceJitArgs({})).toEqual(["-XX:TieredStopAtLevel=1"]);
    expect(serviceJitArgs({ TIDEMARK_SERVICES_JIT: "tiered" })).toEqual([]);
    expect(() => serviceJitArgs({ TIDEMARK_SERVICES_JIT: "c2" })).toThrow(/TIDEMARK_SERVICES_JIT/);
  });
});
