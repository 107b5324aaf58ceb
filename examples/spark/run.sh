#!/usr/bin/env bash
# Runs the reference pipeline locally (local[2]): installs PySpark and the Kafka connector jars on
# first use (setup.sh), then starts examples/spark/pipeline.py with the jars as spark.jars.
#   examples/spark/run.sh --brokers 127.0.0.1:9092 --prefix edge. [pipeline options]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
eval "$("${here}/setup.sh" | grep -E '^(PYTHON|JARS)=')"
export SPARK_KAFKA_JARS="${JARS}"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
exec "${PYTHON}" "${here}/pipeline.py" "$@"
