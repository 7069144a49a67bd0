/**
 * Removes the AWS SDK's logger middleware from a client. It filters every command's input and
 * output for the log — for a Query, a full copy of the items it returned — before it calls the
 * logger, even the default one that logs nothing. Tidemark gives its clients no logger (its own
 * logs go through Powertools), so that copy was pure cost: 3 % of the API's CPU under load in the
 * bench (docs/performance.md, session 10), and as much again in the garbage collector.
 */
export function withoutSdkLogging<C extends { readonly middlewareStack: { remove(name: string): boolean } }>(
  client: C,
): C {
  client.middlewareStack.remove("loggerMiddleware");
  return client;
}
