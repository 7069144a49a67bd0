import { z } from "zod";

/** The one error shape of every route: `{error: {code, message, details?}}`, never a stack trace. */
export const ErrorBodySchema = z
  .object({
    error: z.object({
      code: z.string().describe("machine-readable code, e.g. invalid_event"),
      message: z.string().describe("what went wrong, for a person"),
      details: z.unknown().optional().describe("structured details, e.g. every problem of a batch"),
    }),
  })
  .meta({ id: "Error" });

export interface ApiError {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly details?: unknown;
}

export function toErrorBody(e: ApiError): z.infer<typeof ErrorBodySchema> {
  return {
    error: { code: e.code, message: e.message, ...(e.details === undefined ? {} : { details: e.details }) },
  };
}

export const badRequest = (message: string, details?: unknown, code = "bad_request"): ApiError => ({
  status: 400,
  code,
  message,
  ...(details === undefined ? {} : { details }),
});
export const notFound = (message: string): ApiError => ({ status: 404, code: "not_found", message });
export const conflict = (message: string): ApiError => ({ status: 409, code: "conflict", message });
export const payloadTooLarge = (message: string): ApiError => ({
  status: 413,
  code: "payload_too_large",
  message,
});
export const tooManyRequests = (message: string): ApiError => ({
  status: 429,
  code: "too_many_requests",
  message,
});
export const serviceUnavailable = (message: string): ApiError => ({
  status: 503,
  code: "service_unavailable",
  message,
});
export const internal = (): ApiError => ({ status: 500, code: "internal_error", message: "internal error" });
