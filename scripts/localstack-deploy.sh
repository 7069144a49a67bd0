#!/usr/bin/env bash
# Deploys the Tidemark stack to a running LocalStack (see docker-compose.localstack.yml) with
# cdklocal, swapping MSK for the plain Kafka container through self-managed Kafka event sources.
# Topic names must match lib/topology.ts (the compose file's kafka-topics service creates them).
set -euo pipefail
cd "$(dirname "$0")/.."
export CDK_DISABLE_CLI_TELEMETRY=true
export AWS_REGION="${AWS_REGION:-us-east-1}"
npx cdklocal bootstrap --no-notices -c kafkaBrokers=kafka:9092
npx cdklocal deploy --no-notices --require-approval never -c stage=dev -c kafkaBrokers=kafka:9092 "$@"
