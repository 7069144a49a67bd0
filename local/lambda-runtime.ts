import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Context } from "aws-lambda";
import { type FunctionName, functions } from "../lib/topology.ts";

/**
 * What the Lambda service does around a handler, and no more: load the module once (cold
 * start), hand it a Context, enforce the function's timeout. The module is the very one CDK
 * bundles from the topology's `entry`.
 */
export type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

export class LambdaTimeoutError extends Error {
  override name = "LambdaTimeoutError";
}

export interface LocalFunction {
  readonly name: FunctionName;
  invoke(event: unknown): Promise<unknown>;
}

const loaded = new Map<FunctionName, Promise<LambdaHandler>>();

async function loadHandler(name: FunctionName, root: string): Promise<LambdaHandler> {
  const url = pathToFileURL(resolve(root, functions[name].entry)).href;
  const mod = (await import(url)) as { handler?: unknown };
  if (typeof mod.handler !== "function")
    throw new Error(`${functions[name].entry} does not export a handler`);
  return mod.handler as LambdaHandler;
}

export function localFunction(name: FunctionName, root = process.cwd()): LocalFunction {
  const spec = functions[name];
  return {
    name,
    async invoke(event) {
      let handlerPromise = loaded.get(name);
      if (!handlerPromise) {
        handlerPromise = loadHandler(name, root);
        loaded.set(name, handlerPromise);
      }
      const handler = await handlerPromise;
      const deadline = Date.now() + spec.timeoutSeconds * 1000;
      const context = lambdaContext(`tidemark-${name}`, spec.memoryMb, deadline);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new LambdaTimeoutError(`${name} timed out after ${spec.timeoutSeconds} s`)),
          spec.timeoutSeconds * 1000,
        );
      });
      try {
        return await Promise.race([handler(event, context), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function lambdaContext(functionName: string, memoryMb: number, deadline: number): Context {
  const fail = (): never => {
    throw new Error("callback-style completion is not supported; return a promise");
  };
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: String(memoryMb),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: fail,
    fail,
    succeed: fail,
  };
}
