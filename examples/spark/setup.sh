#!/usr/bin/env bash
# Installs what the reference Spark pipeline needs, idempotently:
#   - a Python venv with PySpark (pinned) and cryptography (Ed25519 signing of control messages);
#   - the Kafka connector org.apache.spark:spark-sql-kafka-0-10_2.13 and its runtime dependencies,
#     fetched from Maven Central with Maven into a folder, passed to Spark as spark.jars.
#
#   examples/spark/setup.sh            install (prints the venv python and the jar folder)
#   examples/spark/setup.sh --print    print "PYTHON=<path>" and "JARS=<comma list>" (no install)
#
# Environment: EDGE_AGENT_CACHE (default ~/.cache/edge-agent), PYTHON (interpreter for the venv,
# default python3), SPARK_VERSION (default 4.2.0: the newest whose connector Maven Central serves here).
set -euo pipefail

SPARK_VERSION="${SPARK_VERSION:-4.2.0}"
CACHE_ROOT="${EDGE_AGENT_CACHE:-${HOME}/.cache/edge-agent}"
VENV="${CACHE_ROOT}/spark-${SPARK_VERSION}/venv"
JARS="${CACHE_ROOT}/spark-${SPARK_VERSION}/jars"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
CRYPTOGRAPHY_VERSION="48.0.0"

jar_list() { find "${JARS}" -maxdepth 1 -name '*.jar' | sort | paste -sd, -; }

if [[ "${1:-}" == "--print" ]]; then
  echo "PYTHON=${VENV}/bin/python"
  echo "JARS=$(jar_list)"
  exit 0
fi

if [[ ! -f "${VENV}/.complete" ]]; then
  py="${PYTHON:-python3}"
  echo "spark-setup: creating ${VENV} with $(command -v "${py}") ($("${py}" --version 2>&1))" >&2
  rm -rf "${VENV}"
  "${py}" -m venv "${VENV}"
  "${VENV}/bin/pip" install -q --disable-pip-version-check "pyspark==${SPARK_VERSION}" "cryptography==${CRYPTOGRAPHY_VERSION}"
  touch "${VENV}/.complete"
fi

if [[ ! -f "${JARS}/.complete" ]]; then
  command -v mvn >/dev/null || { echo "spark-setup: mvn not found" >&2; exit 1; }
  work="$(mktemp -d "${TMPDIR:-/tmp}/spark-jars.XXXXXX")"
  trap 'rm -rf "${work}"' EXIT
  # The connector's runtime closure minus what PySpark already ships (Spark itself is `provided`).
  cat >"${work}/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.edge-agent</groupId>
  <artifactId>spark-kafka-fetch</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.spark</groupId><artifactId>spark-sql-kafka-0-10_2.13</artifactId><version>${SPARK_VERSION}</version>
    </dependency>
  </dependencies>
</project>
POM
  echo "spark-setup: fetching spark-sql-kafka-0-10_2.13:${SPARK_VERSION} and dependencies into ${JARS}" >&2
  if ! mvn -B -q -U -Dstyle.color=never -f "${work}/pom.xml" "${DEPENDENCY_PLUGIN}:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="${work}/jars" >"${work}/mvn.log" 2>&1; then
    echo "spark-setup: Maven fetch FAILED. Last output:" >&2
    tail -n 40 "${work}/mvn.log" >&2
    exit 1
  fi
  # Drop jars PySpark already has (any version): two copies of a class on the classpath is a trap.
  pyjars="$("${VENV}/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
  for j in "${work}"/jars/*.jar; do
    base="$(basename "$j" .jar)"
    artifact="${base%-[0-9]*}"
    if compgen -G "${pyjars}/${artifact}-[0-9]*.jar" >/dev/null; then rm "$j"; fi
  done
  rm -rf "${JARS}"
  mkdir -p "$(dirname "${JARS}")"
  mv "${work}/jars" "${JARS}"
  touch "${JARS}/.complete"
fi

echo "PYTHON=${VENV}/bin/python"
echo "JARS=$(jar_list)"
