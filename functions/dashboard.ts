import { z } from "zod";
import { readConfig } from "../lib/config.ts";
import { notFound } from "../lib/contract/errors.ts";
import { AssetCache, assetSources } from "../lib/dashboard/assets.ts";
import { functions, webSocketApi } from "../lib/topology.ts";
import { apiHandler, errorResponse } from "./shared/http.ts";

/**
 * GET /dashboard and GET /dashboard/{asset}: the live dashboard page and the static ES modules
 * and styles it loads (its own and uPlot's, vendored from the npm package at build time). The
 * page reads /stats and /rules and listens to the live-stats WebSocket, whose URL it is told here.
 */
const config = readConfig(z.object({ [webSocketApi.urlEnvVar]: z.string().min(1).optional() }));
const PAGE = "dashboard.html";
const assets = new AssetCache(assetSources(functions.dashboard.assets, import.meta.url, process.cwd()));

export const handler = apiHandler(async (event) => {
  const name = event.pathParameters?.asset ?? PAGE;
  const asset = assets.get(name);
  if (!asset) return errorResponse(notFound(`no dashboard asset ${name}`));
  const { body, contentType } = await asset;
  if (name === PAGE) {
    const liveUrl = config[webSocketApi.urlEnvVar] ?? "";
    return {
      statusCode: 200,
      headers: { "content-type": contentType, "cache-control": "no-cache" },
      body: body.replace("%LIVE_URL%", escapeAttribute(liveUrl)),
    };
  }
  return {
    statusCode: 200,
    headers: { "content-type": contentType, "cache-control": "public, max-age=300" },
    body,
  };
});

function escapeAttribute(value: string): string {
  return value.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
}
