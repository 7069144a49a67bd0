import { App } from "aws-cdk-lib";
import { buildTidemark } from "./build.ts";

/**
 * `npx cdk synth -c stage=dev|prod`: environment-agnostic (no account or region baked in), so it
 * synthesizes offline without credentials; `cdk deploy` takes them from the caller.
 */
buildTidemark(new App());
