import { parseArgs } from "node:util";
import { z } from "zod";
import { EVENT_TYPE_PATTERN, MAX_EVENTS_PER_REQUEST } from "../../lib/contract/event.ts";

/** `npm run generate -- …` options, validated (zod at the command-line boundary too). */
export const USAGE = `npm run generate -- [options]
  --rate <n>             events per second (default 1000)
  --users <n>            simulated users (default 5000)
  --duration <d>         e.g. 90s, 10m, 1h; runs until Ctrl-C when absent
  --url <url>            API base URL (default http://localhost:$PORT or :3000)
  --api-key <key>        sent as x-api-key (default: env TIDEMARK_API_KEY)
  --batch <n>            events per POST /events (default 100; 1 sends single events)
  --concurrency <n>      requests in flight at most (default 8)
  --late-ratio <r>       share of events older than the allowed lateness, 0..1 (default 0)
  --duplicate-ratio <r>  share of sends that resend a recent event_id, 0..1 (default 0)
  --seed <n>             makes the run reproducible, event ids included (default random)
  --type-prefix <p>      prepended to every event type, e.g. run1_ (default none)
  --report-every <d>     progress line interval (default 5s)`;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** `90s`, `10m`, `1h`, `500ms`; a bare number is seconds. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[(match[2] ?? "s") as keyof typeof UNIT_MS];
}

const duration = z.string().transform((text, ctx) => {
  const ms = parseDurationMs(text);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: "custom", message: `not a duration: ${text} (e.g. 30s, 10m, 1h)` });
    return z.NEVER;
  }
  return ms;
});
const ratio = z.coerce.number().min(0).max(1);

const OptionsSchema = z
  .object({
    rate: z.coerce.number().positive().default(1000),
    users: z.coerce.number().int().positive().default(5000),
    duration: duration.optional(),
    url: z.url().transform((u) => u.replace(/\/+$/, "")),
    "api-key": z.string().min(1).optional(),
    batch: z.coerce.number().int().min(1).max(MAX_EVENTS_PER_REQUEST).default(100),
    concurrency: z.coerce.number().int().min(1).max(1000).default(8),
    "late-ratio": ratio.default(0),
    "duplicate-ratio": ratio.default(0),
    seed: z.coerce
      .number()
      .int()
      .min(0)
      .max(2 ** 32 - 1)
      .optional(),
    "type-prefix": z
      .string()
      .regex(/^[a-z][a-z0-9_.:-]{0,40}$/, "lower-case letter first, then a-z 0-9 _ . : - (at most 41)")
      .optional(),
    "report-every": duration.default(5000),
  })
  .refine((o) => o["late-ratio"] + o["duplicate-ratio"] <= 1, {
    message: "--late-ratio and --duplicate-ratio add up to more than 1",
  })
  .refine((o) => EVENT_TYPE_PATTERN.test(`${o["type-prefix"] ?? ""}purchase_completed`), {
    message: "--type-prefix makes event types longer than 64 characters",
  });

export interface GeneratorOptions {
  readonly url: string;
  readonly apiKey: string | undefined;
  readonly rate: number;
  readonly users: number;
  readonly durationMs: number | undefined;
  readonly batch: number;
  readonly concurrency: number;
  readonly lateRatio: number;
  readonly duplicateRatio: number;
  readonly seed: number | undefined;
  readonly typePrefix: string;
  readonly reportEveryMs: number;
}

export type ParsedArgs = { ok: true; options: GeneratorOptions } | { ok: false; message: string };

export function parseGeneratorArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    const flags = [
      "rate",
      "users",
      "duration",
      "url",
      "api-key",
      "batch",
      "concurrency",
      "late-ratio",
      "duplicate-ratio",
      "seed",
      "type-prefix",
      "report-every",
    ];
    values = parseArgs({
      args: [...argv],
      options: {
        ...Object.fromEntries(flags.map((f) => [f, { type: "string" as const }])),
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
  if (values.help) return { ok: false, message: "" };
  const parsed = OptionsSchema.safeParse({
    ...values,
    url: values.url ?? `http://localhost:${env.PORT ?? 3000}`,
    "api-key": values["api-key"] ?? (env.TIDEMARK_API_KEY || undefined),
  });
  if (!parsed.success) {
    return {
      ok: false,
      message: parsed.error.issues
        .map((i) => (i.path.length ? `--${i.path.join(".")}: ${i.message}` : i.message))
        .join("\n"),
    };
  }
  const o = parsed.data;
  return {
    ok: true,
    options: {
      url: o.url,
      apiKey: o["api-key"],
      rate: o.rate,
      users: o.users,
      durationMs: o.duration,
      batch: o.batch,
      concurrency: o.concurrency,
      lateRatio: o["late-ratio"],
      duplicateRatio: o["duplicate-ratio"],
      seed: o.seed,
      typePrefix: o["type-prefix"] ?? "",
      reportEveryMs: o["report-every"],
    },
  };
}
