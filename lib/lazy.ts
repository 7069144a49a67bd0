/**
 * A value created on first use and shared after; a failed creation is forgotten so the next
 * call tries again (a cold start must not be poisoned by one transient error).
 */
export function lazy<T>(create: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    value ??= create().catch((error: unknown) => {
      value = undefined;
      throw error;
    });
    return value;
  };
}
