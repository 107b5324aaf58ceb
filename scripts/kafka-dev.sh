#!/usr/bin/env bash
# Single-node KRaft Kafka broker for local development and tests, built from
# the Apache Kafka jars on Maven Central (no tarball download, no Docker).
#
#   kafka-dev.sh                                  start --port 9092 --dir ./data/kafka (foreground)
#   kafka-dev.sh fetch [--version V]              download jars into the cache only
#   kafka-dev.sh start --port P --dir D [--version V] [--controller-port C]
#                      [--advertised-port A] [--partitions N] [--daemon]
#   kafka-dev.sh stop --dir D                     stop a --daemon broker
#
# Environment: EDGE_AGENT_CACHE (jar cache root, default ~/.cache/edge-agent),
# KAFKA_VERSION (default version), KAFKA_HEAP_OPTS / KAFKA_JVM_OPTS (JVM flags),
# KAFKA_LOG_LEVEL (root log level, default INFO).
set -euo pipefail

DEFAULT_VERSION="${KAFKA_VERSION:-3.9.2}"
CACHE_ROOT="${EDGE_AGENT_CACHE:-${HOME}/.cache/edge-agent}"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

die() {
  echo "kafka-dev: $*" >&2
  exit 1
}

lib_dir() { echo "${CACHE_ROOT}/kafka-$1/lib"; }

major_of() { echo "${1%%.*}"; }

# Logging binding: Kafka 3.x logs through slf4j -> reload4j, 4.x through log4j2.
logging_deps() {
  if (($(major_of "$1") >= 4)); then
    cat <<'EOF'
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
EOF
  else
    cat <<'EOF'
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
EOF
  fi
}

fetch() {
  local version="$1" lib
  lib="$(lib_dir "$version")"
  # The marker is written last, so its presence means a complete download.
  [[ -f "${lib}/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found; install Maven or pre-populate ${lib}"

  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/kafka-fetch.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '${work}'" RETURN EXIT

  cat >"${work}/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.edge-agent</groupId>
  <artifactId>kafka-fetch</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${version}</version></dependency>
$(logging_deps "$version")
  </dependencies>
</project>
EOF

  echo "kafka-dev: fetching Kafka ${version} jars from Maven Central into ${lib} ..." >&2
  local started=$SECONDS
  # -U: retry artifacts whose earlier lookup failed (Maven caches misses for a day).
  # Download into a private directory and rename it into place, so concurrent
  # fetches (parallel test workers) never observe a half-filled lib directory.
  if ! mvn -B -q -U -Dstyle.color=never -f "${work}/pom.xml" "${DEPENDENCY_PLUGIN}:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="${work}/lib" >"${work}/mvn.log" 2>&1; then
    echo "kafka-dev: Maven fetch of org.apache.kafka:kafka_2.13:${version} FAILED. Last output:" >&2
    tail -n 40 "${work}/mvn.log" >&2
    exit 1
  fi
  ls "${work}"/lib/kafka_2.13-"${version}".jar >/dev/null 2>&1 ||
    die "Maven finished but kafka_2.13-${version}.jar is missing in ${work}/lib"
  touch "${work}/lib/.complete"

  mkdir -p "$(dirname "$lib")"
  if ! mv -T "${work}/lib" "$lib" 2>/dev/null; then
    # Another process won the race; accept its result if complete.
    [[ -f "${lib}/.complete" ]] || die "could not move jars into ${lib} (stale partial directory? remove it)"
  fi
  echo "kafka-dev: fetched $(find "$lib" -name '*.jar' | wc -l) jars in $((SECONDS - started))s" >&2
}

write_logging_config() {
  local dir="$1" level="${KAFKA_LOG_LEVEL:-INFO}"
  cat >"${dir}/log4j.properties" <<EOF
log4j.rootLogger=${level}, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=${level}
log4j.logger.org.apache.kafka=${level}
EOF
  cat >"${dir}/log4j2.properties" <<EOF
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${level}
rootLogger.appenderRef.stdout.ref = STDOUT
EOF
}

write_server_properties() {
  local dir="$1" port="$2" cport="$3" aport="$4" partitions="$5"
  cat >"${dir}/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${cport}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=PLAINTEXT://127.0.0.1:${aport}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=${dir}/data
num.partitions=${partitions}
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=16777216
log.retention.check.interval.ms=300000
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
EOF
}

# Kafka 3.x ships the format tool as kafka.tools.StorageTool; later versions may
# move it to org.apache.kafka.tools.StorageTool, so pick whichever exists.
storage_tool_class() {
  local lib="$1" jar listing
  for jar in "$lib"/kafka_2.13-*.jar "$lib"/kafka-tools-*.jar; do
    [[ -f "$jar" ]] || continue
    # Buffer the listing: piping into `grep -q` can SIGPIPE unzip under pipefail.
    listing="$(unzip -Z1 "$jar" 2>/dev/null || true)"
    if [[ "$listing" =~ (^|$'\n')((org/apache/)?kafka/tools/StorageTool)\.class ]]; then
      echo "${BASH_REMATCH[2]//\//.}"
      return 0
    fi
  done
  echo kafka.tools.StorageTool
}

# Fills the global JVM_OPTS array. C1-only JIT and a small serial-GC heap: a
# test broker starts in a few seconds on 2 cores and throughput is irrelevant.
# KAFKA_HEAP_OPTS / KAFKA_JVM_OPTS are split on whitespace, like Kafka's own scripts.
jvm_opts() {
  local dir="$1"
  # shellcheck disable=SC2206
  JVM_OPTS=(${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
    ${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true})
  JVM_OPTS+=("-Dlog4j.configuration=file:${dir}/log4j.properties"
    "-Dlog4j2.configurationFile=${dir}/log4j2.properties"
    "-Dkafka.logs.dir=${dir}/logs")
}

start() {
  local version="$DEFAULT_VERSION" port="" dir="" cport="" aport="" partitions=1 daemon=0
  while (($#)); do
    case "$1" in
      --version) version="$2"; shift 2 ;;
      --port) port="$2"; shift 2 ;;
      --dir) dir="$2"; shift 2 ;;
      --controller-port) cport="$2"; shift 2 ;;
      --advertised-port) aport="$2"; shift 2 ;;
      --partitions) partitions="$2"; shift 2 ;;
      --daemon) daemon=1; shift ;;
      *) die "unknown option for start: $1" ;;
    esac
  done
  [[ -n "$port" && -n "$dir" ]] || die "start needs --port and --dir"
  cport="${cport:-$((port + 1))}"
  aport="${aport:-$port}"

  command -v java >/dev/null || die "java not found (need Java 17+)"
  fetch "$version"
  local lib
  lib="$(lib_dir "$version")"

  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  mkdir -p "${dir}/logs"
  write_logging_config "$dir"
  write_server_properties "$dir" "$port" "$cport" "$aport" "$partitions"

  jvm_opts "$dir"
  if [[ ! -f "${dir}/data/meta.properties" ]]; then
    local cluster_id
    # A Kafka cluster id is 16 random bytes, base64url without padding. It may start with "-", which
    # the tool's argument parser takes for an option unless given as --cluster-id=ID.
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    java "${JVM_OPTS[@]}" -cp "${lib}/*" "$(storage_tool_class "$lib")" format \
      "--cluster-id=$cluster_id" -c "${dir}/server.properties" --ignore-formatted >"${dir}/logs/format.log" 2>&1 ||
      { cat "${dir}/logs/format.log" >&2; die "storage format failed"; }
  fi

  if ((daemon)); then
    if [[ -f "${dir}/kafka.pid" ]] && kill -0 "$(cat "${dir}/kafka.pid")" 2>/dev/null; then
      die "broker already running with pid $(cat "${dir}/kafka.pid")"
    fi
    nohup java "${JVM_OPTS[@]}" -cp "${lib}/*" kafka.Kafka "${dir}/server.properties" \
      >"${dir}/logs/kafka.out" 2>&1 </dev/null &
    echo $! >"${dir}/kafka.pid"
    echo "kafka-dev: Kafka ${version} starting on 127.0.0.1:${port} (pid $!, log ${dir}/logs/kafka.out)" >&2
  else
    echo "kafka-dev: Kafka ${version} on 127.0.0.1:${port} (advertised ${aport}, controller ${cport}), data in ${dir}" >&2
    exec java "${JVM_OPTS[@]}" -cp "${lib}/*" kafka.Kafka "${dir}/server.properties"
  fi
}

stop() {
  local dir="" timeout=30
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --timeout) timeout="$2"; shift 2 ;;
      *) die "unknown option for stop: $1" ;;
    esac
  done
  [[ -n "$dir" ]] || die "stop needs --dir"
  local pidfile="${dir}/kafka.pid"
  [[ -f "$pidfile" ]] || { echo "kafka-dev: no pid file in ${dir}" >&2; return 0; }
  local pid
  pid="$(cat "$pidfile")"
  if kill -TERM "$pid" 2>/dev/null; then
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        echo "kafka-dev: broker ${pid} did not stop in ${timeout}s, killing" >&2
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  fi
  rm -f "$pidfile"
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    "") start --port 9092 --dir ./data/kafka ;;
    fetch)
      local version="$DEFAULT_VERSION"
      [[ "${1:-}" == "--version" ]] && version="$2"
      fetch "$version"
      lib_dir "$version"
      ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    -h | --help | help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command: ${cmd} (try --help)" ;;
  esac
}

main "$@"
